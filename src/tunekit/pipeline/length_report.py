"""Token-length reports: a small histogram for tokenize_report.json, and a PNG of it.

histogram(lengths, max_length) -> {"edges", "counts", "max_length", "over", ...}
length_fields(lengths, max_length) -> {"histogram", "histogram_fine", "longest"}  for a split's report
write_png(histograms_by_split, path)           one panel per split, max_length marked

The bins are few (BINS), of a round width, from 0 to just past the longest row, and
max_length + 1 is always a bin edge, so "how many rows does max_length cut" reads straight off
the bars (and off the terminal bars `tunekit tokenize` draws from the same dict).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Optional, Sequence

BINS = 12         # bars per split in the terminal
PLOT_BINS = 48    # bars per panel in the PNG
LONGEST_SHOWN = 5  # the longest rows listed in the tokenize report


def _nice_width(span: float, bins: int) -> int:
    """A round bin width (1, 2, 5 x 10^k) that covers `span` in about `bins` bins."""
    raw = max(span / bins, 1.0)
    base = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 5, 10):
        if step * base >= raw:
            return int(step * base)
    return int(10 * base)


def histogram(lengths: Sequence[int], max_length: Optional[int], bins: int = BINS) -> dict:
    """Counts of token lengths in about `bins` bins [edges[i], edges[i+1]) of a round width.

    When max_length is set, max_length + 1 is always an edge: the bars up to it hold the rows
    that fit, the bars after it the rows truncation cuts (or the length policy drops). Also:
    `max_length`, `over` (rows longer than it), `rows` and `max` (the longest row)."""
    import numpy as np

    values = np.asarray(lengths, dtype=np.int64)
    top = int(values.max()) if len(values) else 0
    reach = max(top, max_length or 0) + 1          # one past the longest row (or the limit)
    width = _nice_width(reach, bins)
    if max_length:
        # the rows that fit, [0, max_length], in bins of width ~`width` (integers, differing by
        # at most 1), then bins of `width` past it
        fit = max_length + 1
        inner = np.unique(np.round(np.linspace(0, fit, max(1, round(fit / width)) + 1)).astype(np.int64))
        outer = np.arange(fit + width, reach + width, width, dtype=np.int64) if top >= fit else np.zeros(0, np.int64)
        edges = np.concatenate([inner, outer])
    else:
        edges = np.arange(0, reach + width, width, dtype=np.int64)
        edges = edges[: int(np.searchsorted(edges, reach, side="left")) + 1]
    counts, _ = np.histogram(values, bins=edges)
    return {
        "edges": edges.tolist(),
        "counts": counts.astype(int).tolist(),
        "max_length": max_length,
        "over": int((values > max_length).sum()) if max_length else 0,
        "rows": int(len(values)),
        "max": top,
    }


def length_fields(lengths: Sequence[int], max_length: Optional[int], rows_are_prepared: bool = True) -> dict:
    """The tokenize report's length picture of one split: `histogram` (terminal), `histogram_fine`
    (the PNG) and, when lengths[i] is prepared row i, the `longest` rows with their numbers."""
    import numpy as np

    values = np.asarray(lengths, dtype=np.int64)
    out = {"histogram": histogram(values, max_length), "histogram_fine": histogram(values, max_length, PLOT_BINS)}
    if rows_are_prepared:
        longest = np.argsort(-values, kind="stable")[:LONGEST_SHOWN]
        out["longest"] = [{"row": int(i), "tokens": int(values[i])} for i in longest]
    return out


def write_png(histograms: Mapping[str, dict], path) -> Path:
    """One panel per split from its `histogram` dict (so a split reused from the cache, whose
    lengths are not at hand, is drawn too), a dashed line at max_length; returns the path."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers, and no GUI toolkit import
    import matplotlib.pyplot as plt

    path = Path(path)
    splits = list(histograms) or ["(no rows)"]
    fig, axes = plt.subplots(len(splits), 1, figsize=(7, 1.2 + 1.8 * len(splits)), sharex=True, squeeze=False)
    for ax, split in zip(axes[:, 0], splits):
        h = histograms.get(split) or {"edges": [0, 1], "counts": [0], "max_length": None, "over": 0, "rows": 0}
        ax.stairs(h["counts"], h["edges"], fill=True, color="#4C72B0")
        if h.get("max_length"):
            ax.axvline(h["max_length"], color="#C44E52", linestyle="--",
                       label=f"max_length {h['max_length']} ({h['over']} rows over)")
            ax.legend(loc="upper right", fontsize="small")
        ax.set_ylabel("rows")
        ax.set_title(f"{split}: {h['rows']} rows", fontsize="medium", loc="left")
    axes[-1, 0].set_xlabel("tokens per row")
    fig.suptitle("token lengths per split")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
