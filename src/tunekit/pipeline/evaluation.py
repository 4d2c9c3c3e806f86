"""eval: a trained model on a split -> predictions.jsonl and metrics.json (+ gates in the CLI).

Two entry points: `evaluate_run` scores a run directory's own split; `evaluate_model` scores
any saved model (a run's model folder, or one tunekit pushed or merged) on a data file, for
every task. Both end in `score`, so the numbers, their bootstrap intervals and any extra
`evaluate` modules are computed one way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from tunekit.errors import DataError, RunDirError
from tunekit.recipe.schema import EvalConfig
from tunekit.runs import RunDir, atomic_dir
from tunekit.tasks import get_task


def evaluate_run(run: RunDir, split: Optional[str] = None, out_dir: Optional[Path] = None,
                 limit: Optional[int] = None, modules: tuple[str, ...] = ()) -> dict:
    """Score the run's model on one of its splits (default: the recipe's eval.split)."""
    import datasets

    from tunekit.model_info import find_model

    if not run.model.is_dir():
        raise RunDirError(f"{run.root} has no trained model ({run.model} is missing)",
                          "train it first: tunekit finetune RECIPE")
    if not run.tokenized.is_dir():
        raise RunDirError(f"{run.root} has no tokenized data", "run: tunekit tokenize RECIPE")
    info = find_model(run.root)  # the task and eval settings the model was trained with
    split = split or info.eval.split
    tokenized = datasets.load_from_disk(str(run.tokenized))
    prepared = datasets.load_from_disk(str(run.prepared))
    if split not in tokenized:
        raise DataError(f"{run.root} has no {split!r} split (it has {', '.join(tokenized)})",
                        "choose another with --split, or give the recipe a test file or split share")
    data, examples = limit_split(tokenized[split], prepared[split], limit)
    return score(str(run.model), data, examples, info.task, split, out_dir or run.eval_dir, info.eval, modules)


def evaluate_model(model_ref: str, data_ref: str, out_dir: Path, task: Optional[str] = None,
                   columns: Optional[dict[str, str]] = None, limit: Optional[int] = None,
                   modules: tuple[str, ...] = ()) -> dict:
    """Score a saved model on a data file, prepared and tokenized the way the model was trained
    (its tunekit.json; `task` and `columns` override it for folders tunekit did not write)."""
    from tunekit.model_info import find_model
    from tunekit.pipeline.prepare import select_columns
    from tunekit.pipeline.tokenization import load_tokenizer
    from tunekit.recipe.schema import DataConfig
    from tunekit.sources import load_table

    info = find_model(model_ref, task)
    module = get_task(info.task)
    cols = info.columns.model_copy(update={k: v for k, v in (columns or {}).items() if v})
    data_cfg = DataConfig(train=data_ref, columns=cols, style=info.style)
    where = f"eval data ({data_ref})"
    roles = module.columns(data_cfg) if hasattr(module, "columns") else module.COLUMNS
    table = select_columns(load_table(data_ref), cols, roles, where)
    # a classifier keeps its own label ids; the other tasks learn nothing from the data's rows
    meta = {"label_names": info.label_names} if info.task == "classification" else module.meta(table, data_cfg)
    frame, _ = module.clean(table, data_cfg, meta, where)
    if frame.empty:
        raise DataError(f"{where}: no rows left to score after cleaning",
                        "check the column options (--text-column, ...) against the file's content")
    chosen = sample_rows(len(frame), limit)
    if chosen is not None:
        frame = frame.iloc[chosen]
    tokenizer = load_tokenizer(str(info.model_dir))
    ds = module.to_dataset(frame.reset_index(drop=True), meta)
    encoded, _ = module.encode(ds, tokenizer, info.tokenize, "eval", **info.encode_options)
    return score(str(info.model_dir), encoded, ds, info.task, data_ref, out_dir, info.eval, modules)


def sample_rows(total: int, limit: Optional[int]) -> Optional[list[int]]:
    """A fixed random sample of `limit` example indices (seed 0, kept in order), or None for all.
    Random rather than the first N: a prepared split can be ordered by label."""
    import random

    if not limit or limit >= total:
        return None
    return sorted(random.Random(0).sample(range(total), limit))


def limit_split(data, prepared, limit: Optional[int]):
    """`limit` examples of a split (sample_rows), tokenized and prepared alike; QA keeps every
    window of the kept questions, and `row` columns are renumbered to the kept rows."""
    chosen = sample_rows(len(prepared), limit)
    if chosen is None:
        return data, prepared
    prepared = prepared.select(chosen)
    if "row" in data.column_names:
        new_index = {old: new for new, old in enumerate(chosen)}
        rows = data["row"]
        keep = [i for i, r in enumerate(rows) if r in new_index]
        data = data.select(keep)
        data = data.remove_columns("row").add_column("row", [new_index[rows[i]] for i in keep])
    elif "example_id" in data.column_names:
        ids = set(prepared["id"])
        data = data.select([i for i, e in enumerate(data["example_id"]) if e in ids])
    else:  # one tokenized row per prepared row
        data = data.select(chosen)
    return data, prepared


def score(model_path: str, data, prepared, task_name: str, split: str, out_dir: Path, cfg: EvalConfig,
          modules: tuple[str, ...] = ()) -> dict:
    """The task predicts and scores; intervals and extra modules are added; both files are
    written atomically."""
    from tunekit.pipeline.intervals import bootstrap, describe
    from tunekit.pipeline.metric_modules import run_modules

    metrics, rows, groups = get_task(task_name).evaluate(model_path, data, prepared, cfg)
    metrics = {"task": task_name, "split": split, "model": str(model_path), **metrics}
    extra = run_modules(tuple(cfg.metric_modules) + tuple(modules), task_name, rows, metrics)
    if extra:
        metrics.update(extra, module_metrics=sorted(extra))
    if cfg.bootstrap and groups:
        metrics["intervals"] = bootstrap(groups, cfg.bootstrap)
        metrics["interval"] = describe(cfg.bootstrap)
    with atomic_dir(out_dir) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        with open(tmp / "predictions.jsonl", "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
    return metrics


def gate_values(metrics: dict) -> dict[str, float]:
    """Every scalar a gate can name: top-level metrics plus per-class ones as f1_<class> etc."""
    values = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and k != "n"}
    for name, stats in metrics.get("per_class", {}).items():
        for key in ("precision", "recall", "f1"):
            values[f"{key}_{name}"] = float(stats[key])
    return values
