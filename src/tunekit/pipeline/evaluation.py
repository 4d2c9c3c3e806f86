"""eval: a trained model on a split -> predictions.jsonl and metrics.json (+ gates in the CLI).

Two entry points: `evaluate_run` scores a run directory's own split; `evaluate_model` scores
any saved model on a data file. Both end in `score`, so the numbers are computed one way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from tunekit.errors import DataError, ModelError, RunDirError
from tunekit.recipe.schema import Columns, DataConfig, TokenizeConfig
from tunekit.runs import RunDir, atomic_dir, read_json
from tunekit.sources import load_table, resolve_model
from tunekit.tasks import get_task

EVAL_BATCH = 64


def evaluate_run(run: RunDir, split: Optional[str] = None, out_dir: Optional[Path] = None) -> dict:
    """Score the run's model on one of its splits (default: the recipe's eval.split)."""
    import datasets
    import yaml

    if not run.model.is_dir():
        raise RunDirError(f"{run.root} has no trained model ({run.model} is missing)",
                          "train it first: tunekit finetune RECIPE")
    if not run.tokenized.is_dir():
        raise RunDirError(f"{run.root} has no tokenized data", "run: tunekit tokenize RECIPE")
    if split is None:
        resolved = yaml.safe_load(run.resolved_recipe.read_text()) if run.resolved_recipe.is_file() else {}
        split = (resolved.get("eval") or {}).get("split", "test")
    tokenized = datasets.load_from_disk(str(run.tokenized))
    prepared = datasets.load_from_disk(str(run.prepared))
    if split not in tokenized:
        raise DataError(f"{run.root} has no {split!r} split (it has {', '.join(tokenized)})",
                        "choose another with --split, or give the recipe a test file or split share")
    task_name = read_json(run.manifest).get("task", "classification") if run.manifest.exists() else "classification"
    texts = prepared[split]["text"]
    return score(str(run.model), tokenized[split], texts, task_name, split, out_dir or run.eval_dir)


def evaluate_model(model_ref: str, data_ref: str, columns: Columns, out_dir: Path,
                   max_length: Optional[int] = None, task_name: str = "classification") -> dict:
    """Score a saved model on a data file whose labels use the model's label names."""
    import datasets

    from tunekit.pipeline.prepare import clean_rows, select_columns
    from tunekit.pipeline.tokenization import apply_policy, load_tokenizer, tokenize_split

    model_path = resolve_model(model_ref)
    names = _label_names(model_path)
    task = get_task(task_name)
    data_cfg = DataConfig(train=data_ref, columns=columns)
    where = f"eval data ({data_ref})"
    table = select_columns(load_table(data_ref), columns, where)
    frame, _ = clean_rows(table, data_cfg, task, names, where)
    if frame.empty:
        raise DataError(f"{where}: no rows left to score after cleaning",
                        "check --text-column / --label-column and the file's content")
    tokenizer = load_tokenizer(model_path)
    length = max_length or min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
    ds = datasets.Dataset.from_dict({"text": frame["text"].tolist(), "label": frame["label"].astype(int).tolist()})
    encoded = tokenize_split(ds, task, tokenizer, TokenizeConfig(max_length=length), "eval")
    encoded, _ = apply_policy(encoded, TokenizeConfig(max_length=length), "eval")
    return score(model_path, encoded.remove_columns("n_tokens"), ds["text"], task_name, data_ref, out_dir)


def _label_names(model_path: str) -> list[str]:
    config = Path(model_path) / "config.json"
    if not config.is_file():
        raise ModelError(f"{model_path} has no config.json", "point --model at a saved model folder")
    id2label = read_json(config).get("id2label") or {}
    return [id2label[k] for k in sorted(id2label, key=int)]


def score(model_path: str, data, texts, task_name: str, split: str, out_dir: Path) -> dict:
    """Predict in length-sorted batches, compute metrics, write both files atomically."""
    import torch

    task = get_task(task_name)
    from tunekit.pipeline.tokenization import load_tokenizer

    tokenizer = load_tokenizer(model_path)
    model = task.load_trained(model_path)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    collate = task.collator(tokenizer)
    columns = {c: data[c] for c in data.column_names if c != "row"}  # python lists, read once
    order = sorted(range(len(data)), key=lambda i: len(columns["input_ids"][i]))  # less padding per batch
    preds: dict[int, tuple[int, list[float]]] = {}
    for start in range(0, len(order), EVAL_BATCH):
        idx = order[start:start + EVAL_BATCH]
        batch = collate([{k: values[i] for k, values in columns.items()} for i in idx])
        ids, probs = task.predict_batch(model, batch)
        preds.update(zip(idx, zip(ids, probs)))
    refs = columns["labels"]
    predicted = [preds[i][0] for i in range(len(data))]
    metrics = task.compute_metrics(predicted, refs, names)
    metrics = {"task": task_name, "split": split, "model": str(model_path), **metrics}
    rows = data["row"] if "row" in data.column_names else list(range(len(data)))
    with atomic_dir(out_dir) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        with open(tmp / "predictions.jsonl", "w", encoding="utf-8") as fh:
            for i in range(len(data)):
                label_id, probs = preds[i]
                fh.write(json.dumps({"row": rows[i], "text": texts[rows[i]], "label": names[refs[i]],
                                     "prediction": names[label_id],
                                     "scores": {n: round(p, 6) for n, p in zip(names, probs)}}) + "\n")
    return metrics


def gate_values(metrics: dict) -> dict[str, float]:
    """Every scalar a gate can name: top-level metrics plus per-class ones as f1_<class> etc."""
    values = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and k != "n"}
    for name, stats in metrics.get("per_class", {}).items():
        for key in ("precision", "recall", "f1"):
            values[f"{key}_{name}"] = float(stats[key])
    return values
