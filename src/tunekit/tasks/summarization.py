"""Summarization: a document in, a summary out, scored with ROUGE-1/2/L/Lsum (0-100).

Everything but the metric names and one data check is tasks/seq2seq.py (either model kind).
"""

from __future__ import annotations

from tunekit.recipe.schema import METRICS
from tunekit.tasks import seq2seq
from tunekit.tasks.seq2seq import (COLUMNS, PEFT_TASK_TYPE, TRAINER, build_model, clean, collator,
                                   encode, encode_options, leakage_key, load_trained, meta,
                                   meta_from_report, peft_task_type, split_units, to_dataset, trainer_kind)

__all__ = ["COLUMNS", "PEFT_TASK_TYPE", "TRAINER", "METRIC_NAMES", "build_model", "clean", "collator",
           "describe", "encode", "encode_options", "evaluate", "leakage_key", "load_trained", "meta",
           "meta_from_report", "peft_task_type", "split_units", "to_dataset", "trainer_kind",
           "trainer_metrics"]

METRIC_NAMES = METRICS["summarization"]


def describe(frames: dict, meta: dict) -> dict:
    """seq2seq's word counts, plus a warning when summaries are not shorter than their documents
    (usually data.columns.source and data.columns.target swapped)."""
    report = seq2seq.describe(frames, meta)
    train = report["text_stats"].get("train", {})
    if train and train["target_words_mean"] >= train["source_words_mean"]:
        report["warnings"].append(f"training targets average {train['target_words_mean']} words, sources "
                                  f"{train['source_words_mean']}: are data.columns.source and target swapped?")
    return report


def trainer_metrics(meta: dict, tokenizer=None):
    return seq2seq.trainer_metrics(meta, tokenizer, METRIC_NAMES)


def evaluate(model_path: str, data, prepared, cfg):
    return seq2seq.evaluate(model_path, data, prepared, cfg, METRIC_NAMES)
