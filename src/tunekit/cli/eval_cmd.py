from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tunekit.cli.common import JsonOption, print_json, quiet_libraries, report_errors
from tunekit.console import console
from tunekit.errors import GateFailed, TunekitError


@report_errors
def evaluate(
    run: Optional[str] = typer.Argument(None, metavar="RUN", help="Run directory written by `tunekit finetune`."),
    model: Optional[str] = typer.Option(None, "--model", help="A saved model folder (instead of a run)."),
    data: Optional[str] = typer.Option(None, "--data", help="Data file to score with --model."),
    text_column: str = typer.Option("text", help="Text column of --data."),
    label_column: str = typer.Option("label", help="Label column of --data (the model's label names)."),
    split: Optional[str] = typer.Option(None, help="Split of the run to score (default: the recipe's eval.split)."),
    out: Optional[Path] = typer.Option(None, help="Folder for metrics.json and predictions.jsonl "
                                                  "(default: <run>/eval, or ./eval with --model)."),
    minimum: Optional[List[str]] = typer.Option(None, "--min", metavar="METRIC=VALUE",
                                                help="Fail with exit code 3 when METRIC < VALUE (repeatable)."),
    json_: bool = JsonOption,
) -> None:
    """Score a model; with --min, act as a quality gate (exit code 3 on failure)."""
    gates = _parse_gates(minimum or [])
    if (run is None) == (model is None) or (model is not None and data is None):
        raise TunekitError("give either a run directory, or --model with --data",
                           "e.g. tunekit eval runs/sentiment  or  tunekit eval --model DIR --data test.csv")
    quiet_libraries()
    from tunekit.cli.reports import show_metrics
    from tunekit.pipeline.evaluation import evaluate_model, evaluate_run, gate_values
    from tunekit.recipe.schema import Columns
    from tunekit.runs import RunDir

    if run is not None:
        root = Path(run)
        if not root.is_dir():
            raise TunekitError(f"run directory not found: {run}", "train it first: tunekit finetune RECIPE")
        metrics = evaluate_run(RunDir(root), split, out)
    else:
        metrics = evaluate_model(model, data, Columns(text=text_column, label=label_column), out or Path("eval"))

    values = gate_values(metrics)
    failures = []
    for name, threshold in gates:
        if name not in values:
            raise TunekitError(f"--min names unknown metric {name!r}",
                               f"use one of: {', '.join(sorted(values))}")
        if values[name] < threshold:
            failures.append(f"{name} {values[name]:.4f} < {threshold}")
    if json_:
        print_json({**metrics, "gates": [{"metric": n, "min": t, "value": values[n], "passed": values[n] >= t}
                                         for n, t in gates]})
    else:
        show_metrics(metrics, "evaluation")
        for name, threshold in gates:
            ok = values[name] >= threshold
            console.print(f"{'[green]pass' if ok else '[red]FAIL'}[/] {name} {values[name]:.4f} >= {threshold}")
    if failures:
        raise GateFailed("quality gate failed: " + "; ".join(failures),
                         "improve the model or the data, or revisit the threshold")


def _parse_gates(items: List[str]) -> list[tuple[str, float]]:
    """Parse and check --min gates before any model is loaded (a typo should fail fast)."""
    from tunekit.recipe.schema import METRICS

    known = sorted({name for names in METRICS.values() for name in names})  # any task's metrics
    gates = []
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            threshold = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise TunekitError(f"--min {item!r} is not METRIC=VALUE", "write e.g. --min accuracy=0.8")
        if name not in known and not name.startswith(("precision_", "recall_", "f1_")):
            raise TunekitError(f"--min names unknown metric {name!r}",
                               f"use one of: {', '.join(known)}, or precision_/recall_/f1_<class>")
        gates.append((name, threshold))
    return gates
