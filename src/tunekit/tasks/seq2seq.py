"""Text to text (summarization, translation): a source in, a generated target out.

The shared implementation behind tasks/summarization.py and tasks/translation.py; they set
the metric names. Rows are (id, source, target); a list or mapping of strings in a cell
(sentence lists, a summary in parts) is joined into one text (prepare.text_value).

Two model kinds, chosen by `model_kind(recipe)`:

* encoder-decoder: the model's config says `is_encoder_decoder` (T5, BART), or model.decoder is
  set and an EncoderDecoderModel is warm-started from two checkpoints (BERT2BERT). The source
  is the encoder's input, the target the labels; training uses Seq2SeqTrainer, which generates
  during validation so checkpoints are chosen by ROUGE / BLEU.
* decoder-only (Llama, SmolLM2): one sequence `prefix + source + "\\n" + target + end token`, with
  the loss on the target alone (generation.join_prompt_target); plain Trainer, whose validation
  reports the loss (generating needs the prompt alone, which the Trainer's loop cannot feed).

Data rules:

* An empty or missing source or target is dropped and counted (data.clean.drop_empty, the
  default); with drop_empty: false it is an error. A file left with no rows is an error.
* tokenize.max_length caps the source (prompt) tokens, tokenize.max_target_length the target
  tokens (end token included); a longer one follows tokenize.truncation (truncate, drop and
  count, or error).
* A training target the model could never generate (more tokens than
  eval.generation.max_new_tokens, after truncation) is an error: the model would learn outputs
  that evaluation always cuts off. Set max_target_length <= max_new_tokens to truncate instead.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

from tunekit.errors import DataError, ModelError, RecipeError

if TYPE_CHECKING:
    import pandas as pd

TRAINER = "Seq2SeqTrainer"  # for encoder-decoder models; trainer_kind(recipe) decides per model
PEFT_TASK_TYPE = "SEQ_2_SEQ_LM"  # likewise: peft_task_type(model)
COLUMNS = ("id", "source", "target")
# Encoder-only architectures: they cannot generate alone, only as half of a warm-started pair.
ENCODER_ONLY = ("bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta", "deberta-v2", "albert",
                "camembert", "modernbert", "mpnet")


# ---- model kind ------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def _config_facts(model_path: str) -> tuple[bool, str]:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the model config in {model_path}: {str(exc).splitlines()[0]}",
                         "point model.name at a folder with config.json") from None
    return bool(getattr(config, "is_encoder_decoder", False)), str(getattr(config, "model_type", ""))


def model_kind(recipe) -> str:
    """"encoder-decoder" or "decoder-only", from model.decoder or the model's own config."""
    from tunekit.sources import resolve_model

    if recipe.model.decoder:
        return "encoder-decoder"
    if recipe.model.init == "config":  # a config the recipe builds (model.name may be an architecture name)
        from tunekit.tasks.model_init import base_config, model_source

        config = base_config(model_source(recipe), recipe.model.config)
        encoder_decoder, model_type = bool(getattr(config, "is_encoder_decoder", False)), config.model_type
    else:
        encoder_decoder, model_type = _config_facts(resolve_model(recipe.model.name))
    if encoder_decoder:
        return "encoder-decoder"
    if model_type in ENCODER_ONLY:
        raise RecipeError(f"model.name is an encoder-only model ({model_type}); it cannot generate "
                          f"{recipe.task} outputs alone",
                          "set model.decoder to warm-start an encoder-decoder (e.g. the same checkpoint), "
                          "or use a seq2seq or decoder-only model")
    return "decoder-only"


def trainer_kind(recipe) -> str:
    return "Seq2SeqTrainer" if model_kind(recipe) == "encoder-decoder" else "Trainer"


def peft_task_type(model) -> str:
    return "SEQ_2_SEQ_LM" if getattr(model.config, "is_encoder_decoder", False) else "CAUSAL_LM"


def encode_options(recipe) -> dict:
    """What encode needs beyond the tokenize section (also part of the tokenize fingerprint)."""
    return {"decoder_only": model_kind(recipe) == "decoder-only",
            "warm_start": bool(recipe.model.decoder),
            "max_new_tokens": recipe.eval.generation.max_new_tokens}


# ---- prepare ---------------------------------------------------------------------------------

def meta(train: "pd.DataFrame", data) -> dict:
    return {}


def meta_from_report(report: dict) -> dict:
    return {}


def _text(cell, normalize: bool):
    from tunekit.pipeline.prepare import clean_text, text_value

    if text_value(cell) is None and cell is not None and not isinstance(cell, (float, list, dict)):
        cell = str(cell)  # a number or other scalar given as a target ("3")
    return clean_text(cell, normalize)


def clean(table: "pd.DataFrame", data, meta: dict, where: str, drop: bool = True):
    """Empty or missing sources/targets: dropped and counted (drop_empty), else an error; such a
    row has nothing to score, so this holds in every split. `drop=False` (a split kept whole):
    duplicates stay, counted under `would_drop`."""
    import pandas as pd

    rules = data.clean
    counts = {"rows_in": len(table), "empty_source": 0, "empty_target": 0}
    rows = []
    for n, (rid, source, target) in enumerate(table[list(COLUMNS)].itertuples(index=False)):
        source, target = _text(source, rules.normalize_whitespace), _text(target, rules.normalize_whitespace)
        for role, value in (("source", source), ("target", target)):
            if not value and not rules.drop_empty:
                raise DataError(f"{where}: row {n} has an empty {role} (data.columns.{role})",
                                "fix the data, or set data.clean.drop_empty: true to drop such rows")
        if not source:
            counts["empty_source"] += 1
        elif not target:
            counts["empty_target"] += 1
        else:
            rows.append((str(rid), source, target))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    would: dict[str, int] = {}
    if rules.drop_duplicates:
        repeated = frame.duplicated(subset=["source", "target"])
        if drop:
            counts["duplicates"] = int(repeated.sum())
            frame = frame[~repeated].reset_index(drop=True)
        else:
            would["duplicates"] = int(repeated.sum())
    counts["rows_out"] = len(frame)
    if not drop:
        counts["would_drop"] = would
    return frame, counts


def split_units(frame: "pd.DataFrame", stratify: bool) -> list[list[list[int]]]:
    """Rows with the same source stay together (else a test source was trained on)."""
    groups = frame.groupby("source", sort=False).indices
    return [[list(map(int, idx)) for idx in groups.values()]]


def leakage_key(frame: "pd.DataFrame"):
    return frame["source"]


def describe(frames: dict, meta: dict) -> dict:
    """Word counts per split (no tokenizer here: prepare does not depend on the model)."""
    import numpy as np

    stats = {}
    for split, frame in frames.items():
        src = np.array([len(t.split()) for t in frame["source"]] or [0])
        tgt = np.array([len(t.split()) for t in frame["target"]] or [0])
        stats[split] = {"source_words_mean": round(float(src.mean()), 1), "source_words_max": int(src.max()),
                        "target_words_mean": round(float(tgt.mean()), 1), "target_words_max": int(tgt.max())}
    return {"text_stats": stats, "warnings": []}


def to_dataset(frame: "pd.DataFrame", meta: dict):
    import datasets

    features = datasets.Features({c: datasets.Value("string") for c in COLUMNS})
    return datasets.Dataset.from_dict({c: frame[c].tolist() for c in COLUMNS}, features=features)


# ---- tokenize --------------------------------------------------------------------------------

def encode(ds, tokenizer, cfg, split: str, decoder_only: bool = False, warm_start: bool = False,
           max_new_tokens=None):
    """One prepared split -> input_ids, attention_mask, labels, row (+ prompt_length for
    decoder-only models: evaluation generates from the prompt alone) and the split's stats."""
    import datasets
    import numpy as np

    from tunekit.tasks.seq2seq_features import decoder_only_features, encoder_decoder_features, length_policy

    sources = [cfg.prefix + s for s in ds["source"]]
    targets = list(ds["target"])
    if decoder_only:
        src, tgt, make = decoder_only_features(tokenizer, sources, targets, cfg)
    else:
        src, tgt, make = encoder_decoder_features(tokenizer, sources, targets, cfg, strip_start=warm_start)
    keep, stats = length_policy([len(s) for s in src], [len(t) for t in tgt], cfg, split)
    columns = make(keep)
    columns["row"] = keep
    lengths = [sum(1 for t in labels if t >= 0) for labels in columns["labels"]]  # target tokens, not the prompt
    _check_generation_length(lengths, keep, max_new_tokens, cfg, split)
    target_lengths = np.asarray([len(t) for t in tgt] or [0])
    stats.update(target_tokens_p50=float(np.percentile(target_lengths, 50)),
                 target_tokens_max=int(target_lengths.max()))
    return datasets.Dataset.from_dict(columns), stats


def _check_generation_length(lengths: Sequence[int], rows: Sequence[int], max_new_tokens, cfg, split: str) -> None:
    """A kept target longer than the model may generate is an error (see the module docstring)."""
    if max_new_tokens is None:
        return
    over = [(r, n) for r, n in zip(rows, lengths) if n > max_new_tokens]
    if over:
        row, n = over[0]
        raise DataError(f"{len(over)} {split} targets are longer than eval.generation.max_new_tokens="
                        f"{max_new_tokens} (first: row {row}, {n} tokens with the end token): the model "
                        "could never generate them",
                        "raise eval.generation.max_new_tokens, or set tokenize.max_target_length to at most "
                        f"{max_new_tokens} with tokenize.truncation: truncate (or drop)")


# ---- train -----------------------------------------------------------------------------------

def build_model(model_path: str, meta: dict, recipe=None, tokenizer=None, **load_kwargs):
    import torch

    from tunekit.sources import resolve_model

    if tokenizer.pad_token is None:  # decoder-only tokenizers often have none; saved with the model
        tokenizer.pad_token = tokenizer.eos_token
    kind = model_kind(recipe)
    if recipe.train.best_metric and recipe.train.best_metric != "loss" and kind == "decoder-only":
        raise RecipeError(f"train.best_metric {recipe.train.best_metric} needs generation during validation, "
                          "which tunekit runs for encoder-decoder models only; this is a decoder-only model",
                          "remove train.best_metric (validation loss picks the checkpoint); eval scores the test split")
    if recipe.model.decoder:
        if recipe.model.init == "config":
            raise RecipeError("model.decoder warm-starts from two pretrained checkpoints; model.init: config "
                              "builds a new model", "remove model.decoder and name an encoder-decoder architecture "
                              "(e.g. model.name: t5 or bart) or a decoder-only one (llama, gpt2)")
        return _warm_start(model_path, resolve_model(recipe.model.decoder), tokenizer)
    from tunekit.tasks.model_init import build

    if kind == "encoder-decoder":
        from transformers import AutoModelForSeq2SeqLM

        return build(AutoModelForSeq2SeqLM, model_path, recipe, tokenizer, dtype=torch.float32, **load_kwargs)
    from transformers import AutoModelForCausalLM

    model = build(AutoModelForCausalLM, model_path, recipe, tokenizer, dtype=torch.float32, **load_kwargs)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def _warm_start(encoder_path: str, decoder_path: str, tokenizer):
    """EncoderDecoderModel from two checkpoints; the decoder gains cross-attention (new weights)
    and a causal mask. The token ids it starts, stops and pads with go on its config, so
    generation and a save/load round trip need nothing else."""
    import warnings

    import torch
    from transformers import EncoderDecoderModel

    # Its forward warns on every step that v4.12 moved the loss into the model: nothing to act on.
    warnings.filterwarnings("ignore", message="Version v4.12.0 introduces", category=FutureWarning)
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(
        encoder_path, decoder_path, encoder_dtype=torch.float32, decoder_dtype=torch.float32)
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if start is None or end is None or tokenizer.pad_token_id is None:
        raise ModelError("the tokenizer has no start (cls/bos), end (sep/eos) or pad token for the decoder",
                         "use a tokenizer with [CLS]/[SEP]/[PAD] (BERT) or <s>/</s>/<pad> tokens")
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = start
        config.eos_token_id = end
        config.pad_token_id = tokenizer.pad_token_id
    model.config.vocab_size = model.config.decoder.vocab_size
    model.accepts_loss_kwargs = False  # its loss is a plain per-batch mean (see classification.build_model)
    return model


def load_trained(model_path: str):
    """A model written by finetune (full weights or an adapter), of either kind."""
    from pathlib import Path

    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from tunekit.pipeline.adapters import load_model
    from tunekit.runs import read_json

    config = Path(model_path) / "config.json"
    encoder_decoder = config.is_file() and bool(read_json(config).get("is_encoder_decoder"))
    return load_model(model_path, AutoModelForSeq2SeqLM if encoder_decoder else AutoModelForCausalLM)


class PadCollator:
    """Dynamic padding on the right: input ids with the pad token, labels with the ignored -100.
    (Right padding keeps a decoder-only model's positions from 0, as the prompt-only generation
    does after left padding with an attention mask.)"""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        from tunekit.pipeline.generation import IGNORE_INDEX

        width = max(len(f["input_ids"]) for f in features)
        label_width = max(len(f["labels"]) for f in features)
        def pad(key, value, n):
            return [list(f[key]) + [value] * (n - len(f[key])) for f in features]
        return {"input_ids": torch.tensor(pad("input_ids", self.pad_id, width)),
                "attention_mask": torch.tensor(pad("attention_mask", 0, width)),
                "labels": torch.tensor(pad("labels", IGNORE_INDEX, label_width))}


def collator(tokenizer):
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return PadCollator(pad)


def trainer_metrics(meta: dict, tokenizer=None, names: Sequence[str] = ()):
    """compute_metrics for Seq2SeqTrainer's generating validation; None without a tokenizer
    (the plain Trainer of decoder-only models: validation reports the loss)."""
    if tokenizer is None or not names:
        return None
    from tunekit.tasks.text_metrics import generation_scores

    def compute(eval_pred) -> dict:
        import numpy as np

        preds, labels = eval_pred.predictions, eval_pred.label_ids
        preds = preds[0] if isinstance(preds, tuple) else preds
        pad = tokenizer.pad_token_id
        preds = np.where(preds < 0, pad, preds)  # batches are joined with -100 padding
        labels = np.where(labels < 0, pad, labels)
        texts = tokenizer.batch_decode(preds, skip_special_tokens=True)
        refs = tokenizer.batch_decode(labels, skip_special_tokens=True)
        scores = generation_scores(names, [t.strip() for t in texts], [r.strip() for r in refs])
        return {name: scores[name] for name in names}
    return compute


# ---- eval ------------------------------------------------------------------------------------

def evaluate(model_path: str, data, prepared, cfg, names: Sequence[str] = ()) -> tuple[dict, list[dict], list]:
    """Generate for every row of a tokenized split (from the source, or the prompt alone for a
    decoder-only model), then score against the untruncated reference texts."""
    import torch

    from tunekit.pipeline.generation import generate, is_encoder_decoder
    from tunekit.pipeline.tokenization import load_tokenizer
    from tunekit.tasks.text_metrics import generation_scores_with_stats

    gen_cfg = cfg.generation
    if gen_cfg.max_new_tokens is None:
        raise RecipeError("eval.generation.max_new_tokens is not set",
                          "set it in the recipe (the longest output to generate, in tokens)")
    tokenizer = load_tokenizer(model_path)
    model = load_trained(model_path)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    ids = data["input_ids"]
    if is_encoder_decoder(model):
        inputs = ids
    else:
        inputs = [row[:n] for row, n in zip(ids, data["prompt_length"])]
    out = generate(model, tokenizer, inputs, gen_cfg)
    rows_of = data["row"]
    sources, targets, row_ids = prepared["source"], prepared["target"], prepared["id"]
    references = [targets[r] for r in rows_of]
    metrics, stats = generation_scores_with_stats(names, out.texts, references)
    metrics.update(n=len(inputs),
                   gen_len_mean=round(sum(out.lengths) / max(len(inputs), 1), 2),
                   capped=sum(out.capped),
                   generation=gen_cfg.model_dump(mode="json"),
                   model_kind="encoder-decoder" if is_encoder_decoder(model) else "decoder-only")
    rows = [{"id": row_ids[r], "source": sources[r], "prediction": text, "reference": targets[r], "capped": capped}
            for r, text, capped in zip(rows_of, out.texts, out.capped)]
    return metrics, rows, [stats] if stats else []
