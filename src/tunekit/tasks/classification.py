"""Sequence classification: labels from names, integers or a thresholded score column.

Plain functions called by the pipeline steps; the steps never know what a label is.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Optional, Sequence

from tunekit.errors import DataError
from tunekit.recipe.schema import LabelConfig

if TYPE_CHECKING:
    import pandas as pd

TRAINER = "Trainer"
PEFT_TASK_TYPE = "SEQ_CLS"  # peft's name for the task (adapter config, base class to load)
METRIC_NAMES = ("accuracy", "f1_macro", "precision_macro", "recall_macro")
COLUMNS = ("text", "label")  # the data.columns roles this task reads


# ---- prepare ---------------------------------------------------------------------------------

def _label_text(value: Any) -> Optional[str]:
    """A raw label cell as a string, or None when missing (1.0 and 1 both become "1")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def label_names(raw: "pd.Series", cfg: LabelConfig) -> list[str]:
    """Class names in id order: from the recipe, or the sorted labels of the training data."""
    if cfg.names:
        return list(cfg.names)
    if cfg.from_score:
        return sorted(cfg.from_score, key=lambda name: cfg.from_score[name][0])
    found = {t for t in map(_label_text, raw) if t is not None}
    return sorted(found, key=lambda t: (0, int(t), "") if _is_int(t) else (1, 0, t))


def encode_targets(raw: "pd.Series", names: Sequence[str], cfg: LabelConfig, where: str):
    """Raw labels -> (ids, reasons): reasons[i] names the rule that drops row i, else None.

    Missing labels and scores in the dead zone are dropped and counted; an unknown label
    is an error (it usually means a wrong column or a missing class name).
    """
    if cfg.from_score:
        return _encode_scores(raw, names, cfg, where)
    index = {name: i for i, name in enumerate(names)}
    ids: list[Optional[int]] = []
    reasons: list[Optional[str]] = []
    unknown: dict[str, int] = {}
    for value in raw:
        text = _label_text(value)
        label = None
        if text is None:
            pass
        elif text in index:
            label = index[text]
        elif cfg.names and _is_int(text) and 0 <= int(text) < len(names):
            label = int(text)  # integer labels given as ids into data.labels.names
        else:
            unknown[text] = unknown.get(text, 0) + 1
        ids.append(label)
        reasons.append(None if label is not None else "missing_label")
    if unknown:
        shown = ", ".join(f"{k!r} ({v} rows)" for k, v in list(unknown.items())[:5])
        raise DataError(f"{where}: unknown label {shown}; known labels: {', '.join(names)}",
                        "fix the data, or list every class in data.labels.names")
    return ids, reasons


def _encode_scores(raw: "pd.Series", names: Sequence[str], cfg: LabelConfig, where: str):
    ids: list[Optional[int]] = []
    reasons: list[Optional[str]] = []
    ranges = [(names.index(name), lo, hi) for name, (lo, hi) in cfg.from_score.items()]
    for value in raw:
        text = _label_text(value)
        if text is None:
            ids.append(None)
            reasons.append("missing_label")
            continue
        try:
            score = float(text)
        except ValueError:
            raise DataError(f"{where}: label {text!r} is not a number, but data.labels.from_score "
                            "maps a numeric score to classes",
                            "point data.columns.label at the score column, or remove from_score") from None
        hit = next((i for i, lo, hi in ranges if lo <= score <= hi), None)
        ids.append(hit)
        reasons.append(None if hit is not None else "score_dead_zone")
    return ids, reasons


def check_data(label_ids: dict[str, list[int]], names: Sequence[str]) -> list[str]:
    """The task's own rules, run before any training. Returns warnings; raises on errors."""
    train = set(label_ids.get("train", []))
    if len(train) < 2:
        only = names[next(iter(train))] if train else "none"
        raise DataError(f"the training data has a single class ({only}); a classifier needs two or more",
                        "check data.columns.label and data.labels, or add rows of the other classes")
    warnings = []
    missing = [names[i] for i in range(len(names)) if i not in train]
    if missing:
        warnings.append(f"classes never seen in training: {', '.join(missing)}")
    return warnings


# ---- the task protocol: prepare ---------------------------------------------------------------

def meta(train: "pd.DataFrame", data) -> dict:
    """What later steps need to know from the training data: the class names in id order."""
    return {"label_names": label_names(train["label"], data.labels)}


def meta_from_report(report: dict) -> dict:
    return {"label_names": report["label_names"]}


def clean(table: "pd.DataFrame", data, meta: dict, where: str, drop: bool = True):
    """Apply the cleaning rules in order, counting the rows each one drops.

    `drop=False` (a split kept whole, see data.clean.splits): empty texts and duplicates stay and
    are counted under `would_drop`; rows with no text at all or no label still go (nothing to score)."""
    import pandas as pd

    rules = data.clean
    texts = [None if _missing(t) else str(t) for t in table["text"]]
    if rules.normalize_whitespace:
        texts = [" ".join(t.split()) if t is not None else None for t in texts]
    ids, reasons = encode_targets(table["label"], meta["label_names"], data.labels, where)
    counts = {"rows_in": len(table), "missing_or_empty_text": 0, "missing_label": 0}
    would: dict[str, int] = {}
    rows = []
    for text, label, why in zip(texts, ids, reasons):
        if text is None or (rules.drop_empty and drop and text == ""):
            counts["missing_or_empty_text"] += 1
        elif why:
            counts[why] = counts.get(why, 0) + 1
        else:
            if rules.drop_empty and text == "":
                would["empty_text"] = would.get("empty_text", 0) + 1
            rows.append((text, label))
    if rules.drop_duplicates:
        unique = list(dict.fromkeys(rows))  # keeps first occurrences, in order
        if drop:
            counts["duplicates"] = len(rows) - len(unique)
            rows = unique
        else:
            would["duplicates"] = len(rows) - len(unique)
    counts["rows_out"] = len(rows)
    if not drop:
        counts["would_drop"] = would
    return pd.DataFrame(rows, columns=["text", "label"]), counts


def _missing(value) -> bool:
    if value is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def split_units(frame: "pd.DataFrame", stratify: bool) -> list[list[list[int]]]:
    """Strata of units of row indices for carving out validation/test: one row per unit,
    stratified by label so every split keeps the class balance."""
    if not stratify:
        return [[[i] for i in frame.index]]
    return [[[i] for i in group.index] for _, group in frame.groupby("label", sort=True)]


def leakage_key(frame: "pd.DataFrame"):
    return frame["text"]


def describe(frames: dict, meta: dict) -> dict:
    """The task's part of prepare_report.json (checks that raise come first)."""
    names = meta["label_names"]
    return {
        "label_names": names,
        "label_distribution": {
            s: {names[i]: int((f["label"] == i).sum()) for i in range(len(names))} for s, f in frames.items()
        },
        "warnings": check_data({s: f["label"].tolist() for s, f in frames.items()}, names),
    }


def to_dataset(frame: "pd.DataFrame", meta: dict):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=meta["label_names"])})
    return datasets.Dataset.from_dict({"text": frame["text"].tolist(), "label": frame["label"].astype(int).tolist()},
                                      features=features)


def encode(ds, tokenizer, cfg, split: str):
    """One prepared split -> model inputs (+ labels, row) and the tokenize report's stats for it."""
    from tunekit.pipeline.text_encoding import encode_texts

    return encode_texts(ds, tokenizer, cfg, split, text="text", carry={"labels": "label"})


# ---- tokenize / train ------------------------------------------------------------------------

def preprocess(batch: dict, tokenizer, max_length: Optional[int]) -> dict:
    """Batched, fast-tokenizer encoding; max_length=None means no truncation (to measure)."""
    enc = tokenizer(batch["text"], truncation=max_length is not None, max_length=max_length)
    out = {k: v for k, v in enc.items()}
    out["labels"] = list(batch["label"])
    return out


def build_model(model_path: str, meta: dict, recipe=None, tokenizer=None, **load_kwargs):
    """load_kwargs: extra from_pretrained arguments (qlora's 4-bit quantization, see pipeline/adapters.py)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from tunekit.tasks.model_init import build

    names = meta["label_names"]
    model = build(  # pretrained weights, or new ones from a config (model.init)
        AutoModelForSequenceClassification, model_path, recipe, tokenizer,
        config_values={"num_labels": len(names), "id2label": dict(enumerate(names)),
                       "label2id": {n: i for i, n in enumerate(names)}},
        dtype=torch.float32,  # fp32 master weights (transformers 5 defaults to the checkpoint's dtype)
        ignore_mismatched_sizes=True,  # a run's own head may have another label count
        **load_kwargs,
    )
    # The head's loss is a plain per-batch mean. The Trainer takes a forward(**kwargs) as a
    # sign that the loss normalises by a token count it passes in, and then skips dividing by
    # gradient accumulation and multiplies by the process count: gradients (and logged losses)
    # grad_accum or N times too large. Saying so keeps its default averaging.
    model.accepts_loss_kwargs = False
    return model


def load_trained(model_path: str):
    """A model written by finetune: full weights, or a PEFT adapter on its base (config carries id2label)."""
    from transformers import AutoModelForSequenceClassification

    from tunekit.pipeline.adapters import load_model

    return load_model(model_path, AutoModelForSequenceClassification)


def collator(tokenizer):
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer)  # dynamic padding: pad to the longest in the batch


def predict_batch(model, batch: dict) -> tuple[list[int], list[list[float]]]:
    """Predicted ids and class probabilities for one collated batch."""
    import torch

    inputs = {k: v.to(model.device) for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        logits = model(**inputs).logits.float()
    probs = torch.softmax(logits, dim=-1)
    return probs.argmax(-1).tolist(), probs.tolist()


def predict_encoded(model, collate, columns: dict[str, list], batch_size: int) -> list[tuple[int, list[float]]]:
    """(predicted id, class probabilities) per encoded row, in row order; computed in
    length-sorted batches (less padding). Used by eval and by predict/serve alike."""
    n = len(columns["input_ids"])
    order = sorted(range(n), key=lambda i: len(columns["input_ids"][i]))
    out: list = [None] * n
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        ids, probs = predict_batch(model, collate([{k: values[i] for k, values in columns.items()} for i in idx]))
        for i, label, p in zip(idx, ids, probs):
            out[i] = (label, p)
    return out


def compute_metrics(preds: Sequence[int], refs: Sequence[int], names: Sequence[str]) -> dict:
    """accuracy, macro precision/recall/F1, per-class precision/recall/F1, confusion matrix."""
    k = len(names)
    confusion = [[0] * k for _ in range(k)]
    for p, r in zip(preds, refs):
        confusion[r][p] += 1
    total = len(refs)
    correct = sum(confusion[i][i] for i in range(k))
    per_class = {}
    for i, name in enumerate(names):
        tp = confusion[i][i]
        predicted = sum(confusion[r][i] for r in range(k))
        actual = sum(confusion[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    # Macro averages over classes present in the references or predictions (as sklearn does
    # with labels inferred from the data), so a class absent from both does not drag them down.
    seen = [n for i, n in enumerate(names) if per_class[n]["support"] or sum(confusion[r][i] for r in range(k))]
    def macro(key: str) -> float:
        return sum(per_class[n][key] for n in seen) / len(seen) if seen else 0.0
    return {
        "accuracy": correct / total if total else 0.0,
        "f1_macro": macro("f1"),
        "precision_macro": macro("precision"),
        "recall_macro": macro("recall"),
        "per_class": per_class,
        "confusion_matrix": {"labels": list(names), "matrix": confusion},
        "n": total,
    }


def per_example(preds: Sequence[int], refs: Sequence[int], names: Sequence[str]):
    """Bootstrap statistics: one-hot predicted, reference and true-positive class per example.
    Their sums rebuild accuracy and the macro scores exactly as compute_metrics does."""
    import numpy as np

    from tunekit.pipeline.intervals import PerExample

    k = len(names)
    pred = np.eye(k)[list(preds)] if len(preds) else np.zeros((0, k))
    ref = np.eye(k)[list(refs)] if len(refs) else np.zeros((0, k))

    def aggregate(s) -> dict:
        tp, predicted, actual = s["tp"], s["pred"], s["ref"]
        precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
        recall = np.divide(tp, actual, out=np.zeros(k), where=actual > 0)
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=precision + recall > 0)
        seen = (actual > 0) | (predicted > 0)  # the classes compute_metrics averages over
        macro = (lambda v: float(v[seen].mean()) if seen.any() else 0.0)
        out = {"accuracy": float(tp.sum() / s["one"]) if s["one"] else 0.0,
               "f1_macro": macro(f1), "precision_macro": macro(precision), "recall_macro": macro(recall)}
        out.update({f"f1_{name}": float(f1[i]) for i, name in enumerate(names)})
        return out

    return PerExample({"one": np.ones(len(refs)), "tp": pred * ref, "pred": pred, "ref": ref}, aggregate)


def trainer_metrics(meta: dict):
    """compute_metrics for the Trainer's evaluation loop (flat scalars only)."""
    names = meta["label_names"]

    def compute(eval_pred) -> dict:
        logits, refs = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        metrics = compute_metrics(logits.argmax(-1).tolist(), refs.tolist(), names)
        return {name: metrics[name] for name in METRIC_NAMES}
    return compute


# ---- eval ------------------------------------------------------------------------------------

EVAL_BATCH = 64


def evaluate(model_path: str, data, prepared, cfg) -> tuple[dict, list[dict], list]:
    """Predict a tokenized split in length-sorted batches -> (metrics, prediction rows, bootstrap stats).

    `prepared` is the split before tokenization (its `text` column is shown beside each
    prediction); `cfg` is the recipe's eval section (unused by this task)."""
    import torch

    from tunekit.pipeline.tokenization import load_tokenizer

    tokenizer = load_tokenizer(model_path)
    model = load_trained(model_path)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    columns = {c: data[c] for c in data.column_names if c != "row"}  # python lists, read once
    preds = predict_encoded(model, collator(tokenizer), columns, EVAL_BATCH)
    refs = columns["labels"]
    predicted = [preds[i][0] for i in range(len(data))]
    metrics = compute_metrics(predicted, refs, names)
    texts = prepared["text"]
    rows_of = data["row"] if "row" in data.column_names else list(range(len(data)))
    rows = [{"row": rows_of[i], "text": texts[rows_of[i]], "label": names[refs[i]],
             "prediction": names[preds[i][0]],
             "scores": {n: round(p, 6) for n, p in zip(names, preds[i][1])}} for i in range(len(data))]
    return metrics, rows, [per_example(predicted, refs, names)]
