"""Translation: a sentence in one language in, its translation out, scored with corpus BLEU and
chrF (sacrebleu, 0-100). Everything but the metric names is tasks/seq2seq.py (either model kind).
"""

from __future__ import annotations

from tunekit.recipe.schema import METRICS
from tunekit.tasks import seq2seq
from tunekit.tasks.seq2seq import (COLUMNS, PEFT_TASK_TYPE, TRAINER, build_model, clean, collator,
                                   describe, encode, encode_options, leakage_key, load_trained, meta,
                                   meta_from_report, peft_task_type, split_units, to_dataset, trainer_kind)

__all__ = ["COLUMNS", "PEFT_TASK_TYPE", "TRAINER", "METRIC_NAMES", "build_model", "clean", "collator",
           "describe", "encode", "encode_options", "evaluate", "leakage_key", "load_trained", "meta",
           "meta_from_report", "peft_task_type", "split_units", "to_dataset", "trainer_kind",
           "trainer_metrics"]

METRIC_NAMES = METRICS["translation"]


def trainer_metrics(meta: dict, tokenizer=None):
    return seq2seq.trainer_metrics(meta, tokenizer, METRIC_NAMES)


def evaluate(model_path: str, data, prepared, cfg):
    return seq2seq.evaluate(model_path, data, prepared, cfg, METRIC_NAMES)
