"""Rich tables for the step reports and metrics."""

from __future__ import annotations

from rich.table import Table

from tunekit.console import console


def show_prepare(report: dict, reused: bool) -> None:
    note = " (cached, inputs unchanged)" if reused else ""
    rules = report["rules"]
    names = sorted({k for counts in rules.values() for k in counts} - {"rows_in", "rows_out"})
    table = Table(title=f"prepare{note}", title_justify="left")
    table.add_column("source")
    table.add_column("rows in", justify="right")
    for name in names:
        table.add_column(name.replace("_", " "), justify="right")
    table.add_column("rows out", justify="right")
    for split, counts in rules.items():
        table.add_row(split, str(counts["rows_in"]), *(str(counts.get(n, 0)) for n in names), str(counts["rows_out"]))
    console.print(table)

    # classification: rows per class; other tasks: their own counts per split (e.g. qa: answerable)
    distribution = report.get("label_distribution") or report.get("distribution") or {}
    labels = report.get("label_names") or (list(next(iter(distribution.values()))) if distribution else [])
    dist = Table(title="splits", title_justify="left")
    dist.add_column("split")
    dist.add_column("rows", justify="right")
    for name in labels:
        dist.add_column(name, justify="right")
    for split, total in report["rows"].items():  # every split, also where a task counts nothing per row kind
        counts = distribution.get(split, {})
        dist.add_row(split, str(total), *(f"{counts.get(n, 0)} ({100 * counts.get(n, 0) / max(total, 1):.0f}%)"
                                          for n in labels))
    console.print(dist)
    if report.get("split_from_train"):
        console.print(f"split from train: {', '.join(report['split_from_train'])}")
    leaks = {k: v for k, v in report["leakage"].items() if v}
    console.print("leakage: " + (", ".join(f"{k} share {v} examples" for k, v in leaks.items()) if leaks else "none"))
    for warning in report.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}")


def show_tokenize(report: dict, reused: bool) -> None:
    note = " (cached, inputs unchanged)" if reused else ""
    table = Table(title=f"tokenize: max_length {report['max_length']}, policy {report['truncation']}{note}",
                  title_justify="left")
    for col in ("split", "rows", "truncated", "dropped", "p50", "p95", "max"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split, s in report["splits"].items():
        table.add_row(split, str(s["rows"]), str(s["truncated"]), str(s["dropped"]),
                      f"{s['tokens_p50']:.0f}", f"{s['tokens_p95']:.0f}", str(s["tokens_max"]))
    console.print(table)


def show_metrics(metrics: dict, title: str) -> None:
    table = Table(title=f"{title}: {metrics.get('split')} split, {metrics.get('n')} examples", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    intervals = metrics.get("intervals") or {}
    if intervals:
        table.add_column(f"{int(100 * metrics['interval']['confidence'])}% interval", justify="right")
    from tunekit.recipe.schema import METRICS

    def row(key: str, label: str, value) -> None:
        cells = [label, f"{value:.4f}" if isinstance(value, float) else str(value)]
        if intervals:
            cells.append(f"{intervals[key][0]:.4f} - {intervals[key][1]:.4f}" if key in intervals else "")
        table.add_row(*cells)

    shown = [k for k in METRICS.get(metrics.get("task", "classification"), ()) if k in metrics]
    extra = metrics.get("module_metrics", [])
    for key in shown + extra:  # the task's metrics, then any extra metric module's <module>_<key>
        row(key, key, float(metrics[key]))
    # generative tasks: how long the outputs were and how many the max_new_tokens cap cut off
    for key, label in (("loss", "loss per target token"), ("tokens", "target tokens"),
                       ("generated", "generations"), ("gen_len_mean", "mean generated tokens"),
                       ("capped", "generations cut at max_new_tokens")):
        if key in metrics:
            row(key, label, metrics[key])
    console.print(table)
    per_class = metrics.get("per_class")
    if per_class:
        pc = Table(title="per class", title_justify="left")
        for col in ("class", "precision", "recall", "f1", "support"):
            pc.add_column(col, justify="left" if col == "class" else "right")
        for name, s in per_class.items():
            pc.add_row(name, f"{s['precision']:.4f}", f"{s['recall']:.4f}", f"{s['f1']:.4f}", str(s["support"]))
        console.print(pc)
        cm = metrics["confusion_matrix"]
        grid = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
        grid.add_column("")
        for name in cm["labels"]:
            grid.add_column(name, justify="right")
        for name, row in zip(cm["labels"], cm["matrix"]):
            grid.add_row(name, *map(str, row))
        console.print(grid)


def show_training(train: dict, timings: dict) -> None:
    table = Table(title="training summary", title_justify="left")
    table.add_column("item")
    table.add_column("value", justify="right")
    for key, label in (("global_step", "steps"), ("train_loss", "final mean train loss"),
                       ("train_samples_per_second", "samples/s"), ("best_checkpoint", "best checkpoint"),
                       ("peak_gpu_memory_mib", "peak GPU memory (MiB)")):
        value = train.get(key)
        if value is not None:
            table.add_row(label, f"{value:.4f}" if isinstance(value, float) else str(value))
    for key, value in timings.items():
        table.add_row(key.replace("_s", " (s)"), f"{value:.1f}")
    console.print(table)
