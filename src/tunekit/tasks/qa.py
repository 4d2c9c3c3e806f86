"""Extractive question answering: find the answer span in a passage (SQuAD v1.1 and v2.0).

Rows are (id, context, question, answers) with answers in the SQuAD layout
{text: [...], answer_start: [...]}; an empty list means the passage does not answer the
question (v2.0). The building blocks live beside this module: qa_features (windows with a
stride, labels, offsets), qa_decode (n-best spans back to text), qa_metrics (official
SQuAD exact match and F1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunekit.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

TRAINER = "Trainer"
PEFT_TASK_TYPE = "QUESTION_ANS"  # peft's name for the task (adapter config, base class to load)
COLUMNS = ("id", "context", "question", "answers")
EVAL_BATCH = 32


# ---- prepare ---------------------------------------------------------------------------------

def meta(train: "pd.DataFrame", data) -> dict:
    return {}


def meta_from_report(report: dict) -> dict:
    return {"version_2": report.get("version_2", False)}


def _answers(value) -> dict:
    """An answers cell as {text: [...], answer_start: [...]} (pandas gives dicts or arrays)."""
    if isinstance(value, dict):
        texts = [] if value.get("text") is None else list(value.get("text"))
        starts = [] if value.get("answer_start") is None else [int(s) for s in value.get("answer_start")]
        return {"text": [str(t) for t in texts], "answer_start": starts}
    if value is None or (isinstance(value, float) and value != value):
        return {"text": [], "answer_start": []}
    raise DataError(f"an answers cell is {type(value).__name__}, not {{text: [...], answer_start: [...]}}",
                    "give answers in the SQuAD layout, or point data.columns.answers at such a column")


def clean(table: "pd.DataFrame", data, meta: dict, where: str, drop: bool = True):
    """Drop rows without a question or context (counted); answer offsets must match the context.

    Contexts are kept byte for byte: answer_start counts characters, so whitespace is never
    normalised here. `drop=False` (a split kept whole): duplicates stay, counted under `would_drop`."""
    import pandas as pd

    from tunekit.tasks.qa_features import check_answers

    counts = {"rows_in": len(table), "missing_question_or_context": 0}
    rows = []
    for rid, context, question, answers in table[["id", "context", "question", "answers"]].itertuples(index=False):
        if not isinstance(context, str) or not context.strip() or not isinstance(question, str) or not question.strip():
            counts["missing_question_or_context"] += 1
            continue
        rows.append((str(rid), context, question.strip(), _answers(answers)))
    frame = pd.DataFrame(rows, columns=["id", "context", "question", "answers"])
    checked = check_answers(frame["context"].tolist(), frame["answers"].tolist(), where)
    would: dict[str, int] = {}
    if not drop:  # kept whole: a row repeating an earlier one, id included, is one question (scored once)
        same = frame.duplicated(subset=["id", "context", "question"])
        counts["repeated_question_id"] = int(same.sum())
        frame = frame[~same].reset_index(drop=True)
    if data.clean.drop_duplicates:
        repeated = frame.duplicated(subset=["context", "question"])
        if drop:
            counts["duplicates"] = int(repeated.sum())
            frame = frame[~repeated].reset_index(drop=True)
        else:
            would["duplicates"] = int(repeated.sum())
    if frame["id"].duplicated().any():
        raise DataError(f"{where}: question ids repeat (e.g. {frame['id'][frame['id'].duplicated()].iloc[0]!r})",
                        "give each question its own id, or drop the id column to number the rows")
    counts["unanswerable"] = checked["unanswerable"]  # kept, not dropped: v2.0 trains on them
    counts["rows_out"] = len(frame)
    if not drop:
        counts["would_drop"] = would
    return frame, counts


def split_units(frame: "pd.DataFrame", stratify: bool) -> list[list[list[int]]]:
    """All questions on one passage go to the same split (else the test passage was trained on)."""
    groups = frame.groupby("context", sort=False).indices
    return [[list(map(int, idx)) for idx in groups.values()]]


def leakage_key(frame: "pd.DataFrame"):
    return frame["context"] + "\n" + frame["question"]


def describe(frames: dict, meta: dict) -> dict:
    distribution = {s: {"answerable": int(sum(bool(a["text"]) for a in f["answers"])),
                        "unanswerable": int(sum(not a["text"] for a in f["answers"])),
                        "passages": int(f["context"].nunique())} for s, f in frames.items()}
    return {"distribution": distribution,
            "version_2": any(d["unanswerable"] for d in distribution.values()),
            "warnings": []}


def to_dataset(frame: "pd.DataFrame", meta: dict):
    import datasets

    features = datasets.Features({
        "id": datasets.Value("string"), "context": datasets.Value("string"), "question": datasets.Value("string"),
        "answers": {"text": datasets.Sequence(datasets.Value("string")),
                    "answer_start": datasets.Sequence(datasets.Value("int32"))},
    })
    return datasets.Dataset.from_dict({c: frame[c].tolist() for c in ("id", "context", "question", "answers")},
                                      features=features)


# ---- tokenize --------------------------------------------------------------------------------

def encode(ds, tokenizer, cfg, split: str):
    """Each question -> one or more windows of the passage (stride cfg.stride), labelled with the
    answer's token span, plus the example id and offsets that evaluation maps spans back with.
    tokenize.truncation does not apply: a long passage is windowed, never cut."""
    import numpy as np

    from tunekit.pipeline.length_report import length_fields
    from tunekit.tasks.qa_features import prepare_eval_features, prepare_train_features

    where = f"{split} data"

    def windows(batch: dict) -> dict:
        train = prepare_train_features(batch["question"], batch["context"], batch["answers"], tokenizer,
                                       cfg.max_length, cfg.stride, where=where)
        extra = prepare_eval_features(batch["id"], batch["question"], batch["context"], tokenizer,
                                      cfg.max_length, cfg.stride, where=where)
        train["example_id"] = extra["example_id"]  # same tokenizer call, so the same windows in order
        train["offset_mapping"] = [[list(o) if o is not None else None for o in row] for row in extra["offset_mapping"]]
        return train

    mapped = ds.map(windows, batched=True, batch_size=256, remove_columns=ds.column_names,
                    desc=f"tokenize {split}", load_from_cache_file=False, keep_in_memory=True)
    lengths = [len(ids) for ids in mapped["input_ids"]]
    per_example: dict[str, int] = {}
    for example_id in mapped["example_id"]:
        per_example[example_id] = per_example.get(example_id, 0) + 1
    stats = {"rows": len(ds), "features": len(mapped), "truncated": 0, "dropped": 0,
             "windowed": sum(1 for n in per_example.values() if n > 1),
             "tokens_p50": float(np.percentile(lengths, 50)) if lengths else 0.0,
             "tokens_p95": float(np.percentile(lengths, 95)) if lengths else 0.0,
             "tokens_max": max(lengths, default=0),
             **length_fields(lengths, cfg.max_length, rows_are_prepared=False)}  # windows, not questions
    return mapped, stats


# ---- train -----------------------------------------------------------------------------------

def build_model(model_path: str, meta: dict, recipe=None, tokenizer=None, **load_kwargs):
    import torch
    from transformers import AutoModelForQuestionAnswering

    from tunekit.tasks.model_init import build

    model = build(AutoModelForQuestionAnswering, model_path, recipe, tokenizer, dtype=torch.float32, **load_kwargs)
    # The span loss is a per-batch mean: keep the Trainer's own grad_accum/process averaging
    # (see tasks/classification.py build_model).
    model.accepts_loss_kwargs = False
    return model


def load_trained(model_path: str):
    from transformers import AutoModelForQuestionAnswering

    from tunekit.pipeline.adapters import load_model

    return load_model(model_path, AutoModelForQuestionAnswering)


def collator(tokenizer):
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer)


def trainer_metrics(meta: dict):
    """None: validation during training reports the span loss; EM/F1 need whole-example decoding,
    which `eval` does after training."""
    return None


# ---- eval ------------------------------------------------------------------------------------

def window_logits(model, collate, columns: dict[str, list], batch_size: int) -> tuple[list, list]:
    """Start and end logits (numpy, padding cut off) per window, in window order; computed in
    length-sorted batches. Used by eval and by predict/serve alike."""
    import torch

    device = next(model.parameters()).device
    n = len(columns["input_ids"])
    order = sorted(range(n), key=lambda i: len(columns["input_ids"][i]))
    starts: list = [None] * n
    ends: list = [None] * n
    for first in range(0, n, batch_size):
        idx = order[first:first + batch_size]
        batch = collate([{c: values[i] for c, values in columns.items()} for i in idx])
        with torch.no_grad():
            out = model(**{k: v.to(device) for k, v in batch.items()})
        for j, i in enumerate(idx):
            length = len(columns["input_ids"][i])  # drop the padding this batch added
            starts[i] = out.start_logits[j, :length].float().cpu().numpy()
            ends[i] = out.end_logits[j, :length].float().cpu().numpy()
    return starts, ends


def evaluate(model_path: str, data, prepared, cfg) -> tuple[dict, list[dict], list]:
    """Windows -> start/end logits (length-sorted batches) -> best span per question -> SQuAD scores."""
    import torch

    from tunekit.pipeline.tokenization import load_tokenizer
    from tunekit.tasks.qa_decode import decode_predictions
    from tunekit.tasks.qa_metrics import per_question, squad_scores

    tokenizer = load_tokenizer(model_path)
    model = load_trained(model_path)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    inputs = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in data.column_names]
    starts, ends = window_logits(model, collator(tokenizer), {c: data[c] for c in inputs}, EVAL_BATCH)
    examples = {"id": prepared["id"], "context": prepared["context"]}
    features = {"example_id": data["example_id"], "offset_mapping": data["offset_mapping"]}
    answers = prepared["answers"]
    version_2 = any(not a["text"] for a in answers)
    predictions, nbest = decode_predictions(examples, features, starts, ends, n_best=cfg.n_best,
                                            max_answer_length=cfg.max_answer_length, version_2=version_2,
                                            null_threshold=cfg.null_threshold)
    references = {rid: list(a["text"]) for rid, a in zip(prepared["id"], answers)}
    metrics = squad_scores(predictions, references, version_2=version_2)
    metrics.update(n=len(prepared), version_2=version_2, windows=len(data))
    rows = [{"id": rid, "question": q, "prediction": predictions.get(rid, ""), "answers": references[rid],
             "score": round(float(nbest[rid][0]["score"]), 4) if nbest.get(rid) else None}
            for rid, q in zip(prepared["id"], prepared["question"])]
    return metrics, rows, [per_question(predictions, references, version_2)]
