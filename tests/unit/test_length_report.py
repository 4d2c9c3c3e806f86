"""Token-length reports (pipeline/length_report.py): the histogram dict tokenize_report.json
carries, the PNG, and the terminal bars of `tunekit tokenize`, old reports included."""

import numpy as np

from tunekit.pipeline.length_report import histogram, write_png


def test_histogram_counts_every_row_and_marks_max_length():
    lengths = list(range(60)) + [200]
    h = histogram(lengths, 32)
    assert sum(h["counts"]) == 61 and len(h["counts"]) == len(h["edges"]) - 1
    assert 33 in h["edges"]                      # max_length + 1: the first length that does not fit
    assert h["over"] == 28 and h["max"] == 200 and h["max_length"] == 32
    fit = h["edges"].index(33)
    assert sum(h["counts"][:fit]) == 33          # lengths 0..32 fit
    assert len(h["counts"]) <= 20                # a small number of bins, even with a far outlier
    widths = np.diff(h["edges"][:fit + 1])
    assert widths.max() - widths.min() <= 1      # bars that fit are (nearly) equal


def test_histogram_without_limit_or_rows():
    h = histogram([3, 3, 10], None)
    assert sum(h["counts"]) == 3 and h["over"] == 0 and h["max_length"] is None
    empty = histogram([], 64)
    assert sum(empty["counts"]) == 0 and empty["rows"] == 0 and empty["edges"][-1] >= 65


def test_write_png(tmp_path):
    rng = np.random.default_rng(0)
    hists = {"train": histogram(rng.integers(1, 300, 200), 128), "validation": histogram(rng.integers(1, 100, 20), 128),
             "test": histogram([], 128)}
    path = write_png(hists, tmp_path / "plots" / "lengths.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_show_tokenize_renders_bars_and_old_reports(capsys):
    from tunekit.cli.reports import show_tokenize

    split = {"rows": 61, "truncated": 28, "dropped": 0, "tokens_p50": 30, "tokens_p95": 57, "tokens_max": 200}
    show_tokenize({"max_length": 32, "truncation": "truncate", "splits": {"train": split}}, False)  # no histogram
    new = dict(split, histogram=histogram(list(range(60)) + [200], 32), longest=[{"row": 60, "tokens": 200}])
    show_tokenize({"max_length": 32, "truncation": "truncate", "splits": {"train": new},
                   "histogram_png": "run/data/token_lengths.png"}, False)
    err = capsys.readouterr().err
    edges = new["histogram"]["edges"]
    first_over = edges.index(33)
    assert f"33-{edges[first_over + 1] - 1}" in err and "█" in err  # a bar per bin, labelled by its range
    assert "row 60 (200 tokens)" in err and "token_lengths.png" in err
