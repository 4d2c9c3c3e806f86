"""Task registry: a task name -> the module that implements it (imported on first use).

The pipeline steps never know what a label or an answer is; each task module provides:

    COLUMNS                         data.columns roles it reads
    meta(train_table, data)         what later steps need from the training data (label names)
    meta_from_report(report)        the same, read back from prepare_report.json
    clean(table, data, meta, where, drop=True) -> (rows kept, counts per rule); raises on bad data.
                                    drop=False (a split kept whole): rows that drop rules (empty
                                    text, duplicates) match stay, counted under counts["would_drop"];
                                    rows that cannot be scored (no label, no input) still go
    split_units(frame, stratify)    strata of units (row lists kept together) for carving splits
    leakage_key(frame)              what counts as the same example across splits
    describe(frames, meta)          the task's part of prepare_report.json (incl. warnings)
    to_dataset(frame, meta)         a split as a datasets.Dataset
    encode(ds, tokenizer, cfg, split, **encode_options(recipe)) -> (model inputs, tokenize stats)
    encode_options(recipe)          optional: extra encode arguments (model kind, generation length);
                                    they are part of the tokenize fingerprint
    build_model(path, meta, recipe=, tokenizer=, **load_kwargs)   the model to train (head included)
    load_trained(path), collator(tokenizer)
    trainer_metrics(meta)           compute_metrics for validation, or None (validation reports loss);
                                    for a Seq2SeqTrainer: trainer_metrics(meta, tokenizer) (decodes)
    TRAINER                         "Trainer", or "Seq2SeqTrainer" (generation during validation)
    trainer_kind(recipe)            optional, overrides TRAINER where it depends on the model
                                    (seq2seq: Seq2SeqTrainer for encoder-decoder, Trainer for decoder-only)
    PEFT_TASK_TYPE                  peft's task type for adapters
    peft_task_type(model)           optional, overrides PEFT_TASK_TYPE (SEQ_2_SEQ_LM or CAUSAL_LM)
    evaluate(model_path, tokenized, prepared, eval_cfg) -> (metrics, prediction rows)

Adding a task means one new module plus one line here (and its metric names in the schema).
"""

from __future__ import annotations

import importlib
from types import ModuleType

TASKS: dict[str, str] = {
    "classification": "tunekit.tasks.classification",
    "qa": "tunekit.tasks.qa",
    "summarization": "tunekit.tasks.summarization",
    "translation": "tunekit.tasks.translation",
    "causal_lm": "tunekit.tasks.causal_lm",
}


def get_task(name: str) -> ModuleType:
    return importlib.import_module(TASKS[name])
