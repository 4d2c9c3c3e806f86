"""eval: a trained model on a split -> predictions.jsonl and metrics.json (+ gates in the CLI).

Two entry points: `evaluate_run` scores a run directory's own split; `evaluate_model` scores
any saved model (a run's model folder, or one tunekit pushed or merged) on a data file, for
every task. Both end in `score`, so the numbers, their bootstrap intervals and any extra
`evaluate` modules are computed one way.

Rows: metrics.json says how many rows were scored of how many the split or file has as given
(`rows_scored`, `rows_total`, and `rows_not_scored` by reason when they differ). A data file given
with --data is scored whole: only rows no model can be scored on (no label, no question) are left
out, never duplicates or rows a quality rule dislikes.

Trust: metric modules are code. They run only when the caller names them (`modules`: the command
line's --metric-module, or finetune's own recipe); the ones a model folder's tunekit.json records
are listed in metrics.json as `metric_modules_not_run`, never imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from tunekit.errors import DataError, RunDirError
from tunekit.recipe.schema import EvalConfig
from tunekit.runs import RunDir, atomic_dir, read_json
from tunekit.tasks import get_task

NOT_ROWS = ("rows_in", "rows_out", "unanswerable", "would_drop")  # clean's counts that drop no row


def evaluate_run(run: RunDir, split: Optional[str] = None, out_dir: Optional[Path] = None,
                 limit: Optional[int] = None, modules: tuple[str, ...] = ()) -> dict:
    """Score the run's model on one of its splits (default: the recipe's eval.split).

    `modules`: metric modules the caller vouches for (--metric-module, or finetune passing its
    recipe's); those the model's tunekit.json records are only listed."""
    import datasets

    from tunekit.model_info import find_model
    from tunekit.pipeline.prepare import report_path

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
    report = read_json(report_path(run)) if report_path(run).is_file() else {}
    given = (report.get("rows_given") or {}).get(split, len(prepared[split]))  # a split's own file, as given
    left_out = {"prepare": given - len(prepared[split]), "limit": len(prepared[split]) - len(examples)}
    return score(str(run.model), data, examples, info.task, split, out_dir or run.eval_dir, info.eval, modules,
                 rows=(given, left_out), recorded=info.eval.metric_modules)


def evaluate_model(model_ref: str, data_ref: str, out_dir: Path, task: Optional[str] = None,
                   columns: Optional[dict[str, str]] = None, limit: Optional[int] = None,
                   modules: tuple[str, ...] = ()) -> dict:
    """Score a saved model on a data file, prepared and tokenized the way the model was trained
    (its tunekit.json; `task` and `columns` override it for folders tunekit did not write).
    The file is scored whole (the task's clean with drop=False): only unusable rows are left out."""
    from tunekit.model_info import find_model
    from tunekit.pipeline.prepare import select_columns
    from tunekit.pipeline.tokenization import load_tokenizer
    from tunekit.recipe.schema import DataConfig
    from tunekit.sources import load_table

    info = find_model(model_ref, task)
    module = get_task(info.task)
    cols = info.columns.model_copy(update={k: v for k, v in (columns or {}).items() if v})
    data_cfg = DataConfig(train=data_ref, columns=cols, style=info.style,
                          clean={"normalize_whitespace": info.normalize_whitespace})
    where = f"eval data ({data_ref})"
    roles = module.columns(data_cfg) if hasattr(module, "columns") else module.COLUMNS
    table = select_columns(load_table(data_ref), cols, roles, where)
    # a classifier keeps its own label ids; the other tasks learn nothing from the data's rows
    meta = {"label_names": info.label_names} if info.task == "classification" else module.meta(table, data_cfg)
    frame, counts = module.clean(table, data_cfg, meta, where, drop=False)
    if frame.empty:
        raise DataError(f"{where}: none of its {len(table)} rows can be scored",
                        "check the column options (--column ROLE=NAME) against the file's content")
    left_out = {k: n for k, n in counts.items() if k not in NOT_ROWS and isinstance(n, int)}
    chosen = sample_rows(len(frame), limit)
    left_out["limit"] = len(frame) - (len(chosen) if chosen is not None else len(frame))
    if chosen is not None:
        frame = frame.iloc[chosen]
    tokenizer = load_tokenizer(str(info.model_dir))
    ds = module.to_dataset(frame.reset_index(drop=True), meta)
    encoded, _ = module.encode(ds, tokenizer, info.tokenize, "eval", **info.encode_options)
    return score(str(info.model_dir), encoded, ds, info.task, Path(data_ref).name, out_dir, info.eval, modules,
                 rows=(len(table), left_out), recorded=info.eval.metric_modules)


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
          modules: tuple[str, ...] = (), rows: Optional[tuple[int, dict]] = None,
          recorded: "tuple[str, ...] | list[str]" = ()) -> dict:
    """The task predicts and scores; intervals and the caller's metric modules are added; both
    files are written atomically.

    `rows`: (rows of the split or file as given, {reason: rows left out before scoring});
    `recorded`: metric modules a model folder names, listed as not run unless in `modules`.
    metrics.json names the model by its folder's name, never by a local path."""
    from tunekit.pipeline.intervals import bootstrap, describe
    from tunekit.pipeline.metric_modules import not_run, run_modules

    metrics, predictions, groups = get_task(task_name).evaluate(model_path, data, prepared, cfg)
    metrics = {"task": task_name, "split": split, "model": Path(model_path).resolve().name, **metrics,
               **row_counts(metrics.get("n", len(prepared)), len(prepared), rows)}
    skipped = not_run(recorded, modules)
    if skipped:
        metrics["metric_modules_not_run"] = skipped
    extra = run_modules(tuple(modules), task_name, predictions, metrics)
    if extra:
        metrics.update(extra, module_metrics=sorted(extra))
    if cfg.bootstrap and groups:
        metrics["intervals"] = bootstrap(groups, cfg.bootstrap)
        metrics["interval"] = describe(cfg.bootstrap)
    with atomic_dir(out_dir) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        with open(tmp / "predictions.jsonl", "w", encoding="utf-8") as fh:
            for row in predictions:
                fh.write(json.dumps(row) + "\n")
    return metrics


def row_counts(scored: int, examples: int, rows: Optional[tuple[int, dict]]) -> dict:
    """rows_scored and rows_total; `rows_not_scored` by reason when they differ (rows the tokenize
    step did not encode show as `tokenize`)."""
    total, left_out = rows if rows is not None else (examples, {})
    reasons = {**left_out, "tokenize": examples - scored}
    out = {"rows_scored": scored, "rows_total": total}
    if scored != total:
        out["rows_not_scored"] = {k: n for k, n in reasons.items() if n}
    return out


def gate_values(metrics: dict) -> dict[str, float]:
    """Every scalar a gate can name: top-level metrics plus per-class ones as f1_<class> etc."""
    values = {k: float(v) for k, v in metrics.items()
              if isinstance(v, (int, float)) and k not in ("n", "rows_scored", "rows_total")}
    for name, stats in metrics.get("per_class", {}).items():
        for key in ("precision", "recall", "f1"):
            values[f"{key}_{name}"] = float(stats[key])
    return values
