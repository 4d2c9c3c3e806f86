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
                                                help="Fail (exit 3) when METRIC < VALUE (repeatable)."),
    maximum: Optional[List[str]] = typer.Option(None, "--max", metavar="METRIC=VALUE",
                                                help="Fail (exit 3) when METRIC > VALUE, e.g. perplexity (repeatable)."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", metavar="METRICS_JSON",
                                            help="An earlier metrics.json (same task) for --max-drop."),
    max_drop: Optional[List[str]] = typer.Option(None, "--max-drop", metavar="METRIC=DELTA",
                                                 help="Fail (exit 3) when METRIC is worse than the baseline's by "
                                                 "more than DELTA (repeatable)."),
    junit: Optional[Path] = typer.Option(None, "--junit", metavar="FILE",
                                         help="Write the gates as JUnit XML (one test case per gate) for CI."),
    json_: bool = JsonOption,
) -> None:
    """Score a model; with --min/--max/--max-drop, act as a quality gate (exit code 3 on failure)."""
    from tunekit.pipeline.gates import parse_gates

    gates = parse_gates(minimum or [], maximum or [], max_drop or [])  # typos fail before any model loads
    if max_drop and baseline is None:
        raise TunekitError("--max-drop needs --baseline", "give --baseline the metrics.json of an earlier eval")
    if (run is None) == (model is None) or (model is not None and data is None):
        raise TunekitError("give either a run directory, or --model with --data",
                           "e.g. tunekit eval runs/sentiment  or  tunekit eval --model DIR --data test.csv")
    quiet_libraries()
    from tunekit.cli.reports import show_metrics
    from tunekit.pipeline.evaluation import evaluate_model, evaluate_run, gate_values
    from tunekit.pipeline.gates import check_gates, read_baseline, write_junit
    from tunekit.recipe.schema import Columns
    from tunekit.runs import RunDir

    if run is not None:
        root = Path(run)
        if not root.is_dir():
            raise TunekitError(f"run directory not found: {run}", "train it first: tunekit finetune RECIPE")
        metrics = evaluate_run(RunDir(root), split, out)
    else:
        metrics = evaluate_model(model, data, Columns(text=text_column, label=label_column), out or Path("eval"))

    base = gate_values(read_baseline(baseline, metrics["task"])) if baseline is not None else None
    results = check_gates(gates, gate_values(metrics), base)
    if junit is not None:
        write_junit(junit, results, f"tunekit eval {run or model}")
    if json_:
        print_json({**metrics, "gates": [{"metric": r.gate.metric, r.gate.kind: r.gate.limit, "value": r.value,
                                          "baseline": r.baseline, "passed": r.passed} for r in results]})
    else:
        show_metrics(metrics, "evaluation")
        for r in results:
            console.print(f"{'[green]pass' if r.passed else '[red]FAIL'}[/] {r.describe()}")
    failures = [r.describe() for r in results if not r.passed]
    if failures:
        raise GateFailed("quality gate failed: " + "; ".join(failures),
                         "improve the model or the data, or revisit the threshold")
