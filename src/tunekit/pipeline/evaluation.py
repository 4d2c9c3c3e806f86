"""eval: a trained model on a split -> predictions.jsonl and metrics.json (+ gates in the CLI).

Two entry points: `evaluate_run` scores a run directory's own split; `evaluate_model` scores
any saved model on a data file. Both end in `score`, so the numbers are computed one way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from tunekit.errors import DataError, ModelError, RunDirError
from tunekit.recipe.schema import Columns, DataConfig, EvalConfig, TokenizeConfig
from tunekit.runs import RunDir, atomic_dir, read_json
from tunekit.sources import load_table, resolve_model
from tunekit.tasks import get_task



def evaluate_run(run: RunDir, split: Optional[str] = None, out_dir: Optional[Path] = None) -> dict:
    """Score the run's model on one of its splits (default: the recipe's eval.split)."""
    import datasets
    import yaml

    if not run.model.is_dir():
        raise RunDirError(f"{run.root} has no trained model ({run.model} is missing)",
                          "train it first: tunekit finetune RECIPE")
    if not run.tokenized.is_dir():
        raise RunDirError(f"{run.root} has no tokenized data", "run: tunekit tokenize RECIPE")
    resolved = yaml.safe_load(run.resolved_recipe.read_text()) if run.resolved_recipe.is_file() else {}
    eval_cfg = EvalConfig(**(resolved.get("eval") or {}))
    split = split or eval_cfg.split
    tokenized = datasets.load_from_disk(str(run.tokenized))
    prepared = datasets.load_from_disk(str(run.prepared))
    if split not in tokenized:
        raise DataError(f"{run.root} has no {split!r} split (it has {', '.join(tokenized)})",
                        "choose another with --split, or give the recipe a test file or split share")
    task_name = read_json(run.manifest).get("task", "classification") if run.manifest.exists() else "classification"
    return score(str(run.model), tokenized[split], prepared[split], task_name, split, out_dir or run.eval_dir,
                 eval_cfg)


def evaluate_model(model_ref: str, data_ref: str, columns: Columns, out_dir: Path,
                   max_length: Optional[int] = None, task_name: str = "classification") -> dict:
    """Score a saved classifier on a data file whose labels use the model's label names."""
    from tunekit.pipeline.prepare import select_columns
    from tunekit.pipeline.tokenization import load_tokenizer

    if task_name != "classification":
        raise DataError(f"eval --model with --data scores classification models; this is a {task_name} model",
                        "evaluate a run directory instead: tunekit eval RUN")
    model_path = resolve_model(model_ref)
    meta = {"label_names": _label_names(model_path)}
    task = get_task(task_name)
    data_cfg = DataConfig(train=data_ref, columns=columns)
    where = f"eval data ({data_ref})"
    table = select_columns(load_table(data_ref), columns, task.COLUMNS, where)
    frame, _ = task.clean(table, data_cfg, meta, where)
    if frame.empty:
        raise DataError(f"{where}: no rows left to score after cleaning",
                        "check --text-column / --label-column and the file's content")
    tokenizer = load_tokenizer(model_path)
    length = max_length or min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
    ds = task.to_dataset(frame, meta)
    encoded, _ = task.encode(ds, tokenizer, TokenizeConfig(max_length=length), "eval")
    return score(model_path, encoded, ds, task_name, data_ref, out_dir, EvalConfig())


def _label_names(model_path: str) -> list[str]:
    config = Path(model_path) / "config.json"
    if not config.is_file():
        raise ModelError(f"{model_path} has no config.json", "point --model at a saved model folder")
    id2label = read_json(config).get("id2label") or {}
    return [id2label[k] for k in sorted(id2label, key=int)]


def score(model_path: str, data, prepared, task_name: str, split: str, out_dir: Path, cfg: EvalConfig) -> dict:
    """The task predicts and scores; both files are written atomically."""
    metrics, rows = get_task(task_name).evaluate(model_path, data, prepared, cfg)
    metrics = {"task": task_name, "split": split, "model": str(model_path), **metrics}
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
