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
    data: Optional[str] = typer.Option(None, "--data", help="Data file to score with --model (any task; "
                                       "classification labels use the model's label names)."),
    column: Optional[List[str]] = typer.Option(None, "--column", metavar="ROLE=NAME",
                                               help="With --data: the file's column for a role, e.g. text=review, "
                                               "label=sentiment, source=article (default: the training recipe's)."),
    task: Optional[str] = typer.Option(None, "--task", help="With --model: the model's task, for folders "
                                       "tunekit did not write (they lack tunekit.json)."),
    split: Optional[str] = typer.Option(None, help="Split of the run to score (default: the recipe's eval.split)."),
    limit: Optional[int] = typer.Option(None, "--limit", metavar="N", help="Score N examples (a fixed random sample)."),
    metric_module: Optional[List[str]] = typer.Option(None, "--metric-module", metavar="PATH",
                                                      help="An extra local `evaluate` module (.py file or folder) "
                                                      "run on the predictions; results are named <module>_<key>. "
                                                      "Modules a model's tunekit.json names are listed, not run, "
                                                      "unless given here."),
    out: Optional[Path] = typer.Option(None, help="Folder for metrics.json and predictions.jsonl: new, empty, "
                                       "or an earlier eval output (default: <run>/eval, or a new "
                                       "./tunekit-eval-DATE-TIME with --model)."),
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
    """Score a model, with a 95% bootstrap interval per metric; with --min/--max/--max-drop it is a
    quality gate for CI. The split or --data file is scored as given: when fewer rows are scored
    (--limit, rows with no label), it says "N of M rows scored" and why.

    Exit codes: 0 all gates pass, 2 bad input (unknown metric, missing file, baseline of another
    task), 3 a gate failed. Writes metrics.json and predictions.jsonl atomically."""
    from tunekit.pipeline.gates import check_junit_path, parse_gates
    from tunekit.pipeline.metric_modules import check_module_refs, module_name
    from tunekit.recipe.schema import METRICS

    modules = tuple(metric_module or [])
    check_module_refs(modules)
    gates = parse_gates(minimum or [], maximum or [], max_drop or [],
                        extra_prefixes=tuple(f"{module_name(m)}_" for m in modules))  # typos fail before any model loads
    if junit is not None:
        check_junit_path(junit)  # a folder given as --junit fails now, not after scoring
    if task is not None and task not in METRICS:
        raise TunekitError(f"--task {task!r} is not a task", f"use one of: {', '.join(METRICS)}")
    if limit is not None and limit < 1:
        raise TunekitError(f"--limit {limit} scores nothing", "give --limit a positive number of examples")
    if (column or task) and data is None:
        raise TunekitError("--column and --task apply to --model with --data", "drop them when scoring a run")
    if max_drop and baseline is None:
        raise TunekitError("--max-drop needs --baseline", "give --baseline the metrics.json of an earlier eval")
    if (run is None) == (model is None) or (model is not None and data is None):
        raise TunekitError("give either a run directory, or --model with --data",
                           "e.g. tunekit eval runs/sentiment  or  tunekit eval --model DIR --data test.csv")
    quiet_libraries()
    from tunekit.cli.reports import show_metrics
    from tunekit.pipeline.evaluation import evaluate_model, evaluate_run, gate_values
    from tunekit.pipeline.gates import check_gates, read_baseline, write_junit
    from tunekit.cli.eval_output import eval_output
    from tunekit.model_info import find_model
    from tunekit.pipeline.metric_modules import not_run_notice
    from tunekit.runs import RunDir

    if run is not None and not Path(run).is_dir():
        raise TunekitError(f"run directory not found: {run}", "train it first: tunekit finetune RECIPE")
    # the baseline is read before anything is scored or written: a bad one costs no results
    base = read_baseline(baseline, task or find_model(run or model).task) if baseline is not None else None
    with eval_output(run, model, out) as target:
        if run is not None:
            metrics = evaluate_run(RunDir(Path(run)), split, target, limit=limit, modules=modules)
        else:
            metrics = evaluate_model(model, data, target, task=task, columns=_columns(column or []),
                                     limit=limit, modules=modules)
    if target is not None and not json_:
        console.print(f"results in {target}", soft_wrap=True)

    for name in metrics.get("metric_modules_not_run", []):  # code from a model folder never runs unasked
        console.print(f"[yellow]{not_run_notice(name)}[/]")
    results = check_gates(gates, gate_values(metrics), gate_values(base) if base else None, metrics.get("intervals"))
    if junit is not None:
        write_junit(junit, results, f"tunekit eval {run or model}")
    if json_:
        print_json({**metrics, "gates": [{"metric": r.gate.metric, r.gate.kind: r.gate.limit, "value": r.value,
                                          "baseline": r.baseline, "interval": r.interval, "passed": r.passed}
                                         for r in results]})
    else:
        show_metrics(metrics, "evaluation")
        for r in results:
            console.print(f"{'[green]pass' if r.passed else '[red]FAIL'}[/] {r.describe()}")
    failures = [r.describe() for r in results if not r.passed]
    if failures:
        raise GateFailed("quality gate failed: " + "; ".join(failures),
                         "improve the model or the data, or revisit the threshold")


def _columns(items: list[str]) -> dict[str, str]:
    from tunekit.recipe.schema import Columns

    roles = list(Columns.model_fields)
    out = {}
    for item in items:
        role, sep, name = item.partition("=")
        if not sep or not name.strip():
            raise TunekitError(f"--column {item!r} is not ROLE=NAME", "write e.g. --column text=review")
        if role.strip() not in roles:
            raise TunekitError(f"--column names unknown role {role.strip()!r}", f"use one of: {', '.join(roles)}")
        out[role.strip()] = name.strip()
    return out
