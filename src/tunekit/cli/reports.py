"""Rich tables for the step reports and metrics."""

from __future__ import annotations

from rich.table import Table

from tunekit.console import console


def show_prepare(report: dict, reused: bool) -> None:
    note = " (cached, inputs unchanged)" if reused else ""
    rules = report["rules"]
    whole = set(report.get("kept_whole") or ())
    names = sorted(({k for counts in rules.values() for k, v in counts.items() if not isinstance(v, dict)}
                    | {k for counts in rules.values() for k, n in (counts.get("would_drop") or {}).items() if n})
                   - {"rows_in", "rows_out"})
    caption = ("kept N: rows a drop rule matches in a split kept whole (its own file; data.clean.splits "
               "lists the splits cleaned): they stay and are scored") if whole else None
    table = Table(title=f"prepare{note}", title_justify="left", caption=caption, caption_justify="left")
    table.add_column("source")
    table.add_column("rows in", justify="right")
    for name in names:
        table.add_column(name.replace("_", " "), justify="right")
    table.add_column("rows out", justify="right")
    for split, counts in rules.items():
        would = counts.get("would_drop") or {}
        cells = [f"kept {would[n]}" if would.get(n) else str(counts.get(n, 0)) for n in names]
        table.add_row(f"{split} (kept whole)" if split in whole else split, str(counts["rows_in"]), *cells,
                      str(counts["rows_out"]))
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
    quality = report.get("quality") or {}  # absent in reports written before data.quality existed
    _show_quality_counts(quality)
    _show_balance(quality.get("balance") or {}, report.get("label_names") or [])
    _show_offenders(quality.get("offenders") or {}, report.get("label_names") or [])
    for warning in report.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}")


QUALITY_COLUMNS = (("exact_duplicates", "exact dup"), ("near_duplicates", "near dup"),
                   ("leaked_exact", "leaked exact"), ("leaked_near", "leaked near"),
                   ("label_conflicts", "label conflicts"), ("dropped", "dropped"))
BAR = 24  # characters of the longest bar


def _bar(value: float, top: float, width: int = BAR) -> str:
    """A horizontal bar in eighths of a character, so small differences still show."""
    eighths = int(round(width * 8 * value / top)) if top > 0 else 0
    return "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]


def _show_quality_counts(quality: dict) -> None:
    counts = quality.get("counts") or {}
    columns = [(k, label) for k, label in QUALITY_COLUMNS if any(k in c for c in counts.values())]
    if not columns:
        return
    policies = quality.get("policies") or {}
    note = (f"near-duplicates: similarity >= {policies.get('threshold')}; within a split: {policies.get('within')}; "
            f"across splits: {policies.get('across')}") if policies else None
    table = Table(title="data quality", title_justify="left", caption=note, caption_justify="left")
    table.add_column("split")
    for _, label in columns:
        table.add_column(label, justify="right")
    for split, c in counts.items():
        table.add_row(split, *(str(c[k]) if k in c else "-" for k, _ in columns))
    console.print(table)


def _show_balance(balance: dict, names: list) -> None:
    """Class shares per split as bars, and the majority/minority ratio."""
    if not balance:
        return
    table = Table(title="label balance", title_justify="left")
    table.add_column("class")
    splits = list(balance)
    for split in splits:
        table.add_column(f"{split} (ratio {balance[split].get('ratio', 0):g}:1)")
    n = max(len(b.get("shares", [])) for b in balance.values())
    for i in range(n):
        cells = []
        for split in splits:
            shares = balance[split].get("shares", [])
            share = shares[i] if i < len(shares) else 0.0
            cells.append(f"{_bar(share, 1.0, 16):<17}{100 * share:5.1f}%")
        table.add_row(names[i] if i < len(names) else str(i), *cells)
    console.print(table)


def _where(ref: dict) -> str:
    """A row reference: `test 12`, or `test (dropped)` for a row a policy removed."""
    return f"{ref['split']} {ref['row']}" if ref.get("row") is not None else f"{ref['split']} (dropped)"


def _show_offenders(offenders: dict, names: list) -> None:
    """The worst rows of each kind, with row numbers in the prepared splits."""
    def pairs(title: str, items: list) -> None:
        table = Table(title=title, title_justify="left")
        for col in ("similarity", "row", "text", "row", "text"):
            table.add_column(col, justify="right" if col == "similarity" else "left", overflow="fold")
        for p in items:
            table.add_row(f"{p['similarity']:.2f}", _where(p["a"]), p["a"].get("text", ""),
                          _where(p["b"]), p["b"].get("text", ""))
        console.print(table)

    if offenders.get("leaks"):
        pairs("rows repeated across splits (later split first seen in the earlier one)", offenders["leaks"])
    if offenders.get("near_duplicates"):
        pairs("near-duplicate rows within a split", offenders["near_duplicates"])
    if offenders.get("duplicate_groups"):
        table = Table(title="duplicate rows within a split (same words)", title_justify="left")
        for col in ("split", "rows", "count", "text"):
            table.add_column(col, justify="right" if col == "count" else "left", overflow="fold")
        for g in offenders["duplicate_groups"]:
            rows = ", ".join(str(r["row"]) if r.get("row") is not None else "dropped" for r in g["rows"])
            table.add_row(g["split"], rows + (", ..." if g["size"] > len(g["rows"]) else ""), str(g["size"]), g["text"])
        console.print(table)
    if offenders.get("label_conflicts"):
        table = Table(title="same text, different labels", title_justify="left")
        table.add_column("text", overflow="fold")
        table.add_column("rows: label", overflow="fold")
        for c in offenders["label_conflicts"]:
            labels = ", ".join(f"{_where(r)}: {_label(r, names)}" for r in c["rows"])
            table.add_row(c["text"], labels)
        console.print(table)
    if offenders.get("longest"):
        table = Table(title="longest rows", title_justify="left")
        for col in ("row", "chars", "text"):
            table.add_column(col, justify="right" if col == "chars" else "left", overflow="fold")
        for r in offenders["longest"]:
            table.add_row(_where(r), str(r["chars"]), r["text"])
        console.print(table)


def _label(ref: dict, names: list) -> str:
    i = ref.get("label_id")
    return names[i] if isinstance(i, int) and 0 <= i < len(names) else str(ref.get("label"))


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
    for split, s in report["splits"].items():  # optional: reports before the histogram existed lack them
        if s.get("histogram"):
            _show_histogram(split, s["histogram"])
        if s.get("longest"):
            shown = ", ".join(f"row {r['row']} ({r['tokens']} tokens)" for r in s["longest"])
            console.print(f"{split}: longest rows: {shown}")
    if report.get("histogram_png"):
        console.print(f"token-length histogram: {report['histogram_png']}")


def _show_histogram(split: str, hist: dict) -> None:
    """Token lengths as horizontal bars; bars past max_length (cut or dropped rows) in red."""
    edges, counts = hist["edges"], hist["counts"]
    limit = hist.get("max_length")
    title = f"{split}: tokens per row ({hist.get('rows', sum(counts))} rows"
    title += f", {hist.get('over', 0)} over max_length {limit})" if limit else ")"
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 1))
    table.add_column("tokens", justify="right")
    table.add_column("bar")
    table.add_column("rows", justify="right")
    top = max(counts) if counts else 0
    for lo, hi, n in zip(edges, edges[1:], counts):
        over = limit is not None and lo > limit
        bar = _bar(n, top, 40)
        table.add_row(f"{lo}-{hi - 1}", f"[red]{bar}[/]" if over else bar, str(n))
    console.print(table)


def rows_line(metrics: dict) -> "str | None":
    """`1185 of 1190 rows scored (prepare 5)` when fewer rows were scored than the split or file has."""
    scored, total = metrics.get("rows_scored"), metrics.get("rows_total")
    if scored is None or total is None or scored == total:
        return None
    why = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in (metrics.get("rows_not_scored") or {}).items())
    return f"{scored} of {total} rows scored" + (f" (not scored: {why})" if why else "")


def show_metrics(metrics: dict, title: str) -> None:
    table = Table(title=f"{title}: {metrics.get('split')} split, {metrics.get('n')} examples", title_justify="left",
                  caption=rows_line(metrics), caption_justify="left")
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
