"""How long near-duplicate detection takes on N short texts (default 1,000,000 of ~20 words).

    .venv/bin/python bench/minhash_scale.py [N]

Prints the seconds of each stage and the process's peak RSS. Not a test: nothing is asserted.
A share of the rows are planted near-duplicates (one word changed) and exact copies, so the
pair-finding and grouping stages do real work.
"""

from __future__ import annotations

import resource
import sys
import time


def make_texts(n: int, seed: int = 0) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20_000)], dtype=object)
    words = vocab[rng.zipf(1.3, size=(n, 20)) % len(vocab)]
    texts = [" ".join(row) for row in words]
    for i in rng.choice(n, size=n // 100, replace=False):  # 1%: a near-copy of an earlier row
        src = texts[int(rng.integers(0, max(i, 1)))].split()
        src[int(rng.integers(0, len(src)))] = "changed"
        texts[i] = " ".join(src)
    for i in rng.choice(n, size=n // 100, replace=False):  # 1%: an exact copy (case changed)
        texts[i] = texts[int(rng.integers(0, n))].upper()
    return texts


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    import pandas as pd

    from tunekit.pipeline import minhash
    from tunekit.pipeline.quality import check_splits, filter_rows
    from tunekit.recipe.schema import Recipe
    from tunekit.tasks import get_task

    t0 = time.perf_counter()
    texts = make_texts(n)
    frame = pd.DataFrame({"text": texts, "label": [k % 2 for k in range(n)]})
    base = rss_mib()
    print(f"generated {n:,} texts in {time.perf_counter() - t0:.1f} s; RSS with the data: {base:.0f} MiB")

    # prepare's part, as it runs: the row filters (defaults: unprintable) on the whole file, then
    # the checks across rows on 80/10/10 splits, classification, default policies (warn)
    recipe = Recipe.model_validate({"name": "bench", "task": "classification", "output_dir": "/tmp/bench-run",
                                    "model": {"name": "/nonexistent"}, "data": {"train": "x.csv"}})
    task = get_task("classification")
    t = time.perf_counter()
    frame, counts = filter_rows(frame, recipe, task)
    print(f"filter_rows: {time.perf_counter() - t:.1f} s {counts}")
    a, b = int(n * 0.8), int(n * 0.9)
    frames = {"train": frame.iloc[:a].reset_index(drop=True), "validation": frame.iloc[a:b].reset_index(drop=True),
              "test": frame.iloc[b:].reset_index(drop=True)}
    t = time.perf_counter()
    frames, section = check_splits(frames, recipe, task)
    print(f"check_splits (duplicates, leaks, label conflicts, offenders, balance): {time.perf_counter() - t:.1f} s")
    for w in section["warnings"]:
        print("  warning:", w[:120])
    print(f"peak RSS {rss_mib():.0f} MiB: {rss_mib() - base:.0f} MiB over the data's")

    # the MinHash stages alone
    t = time.perf_counter()
    keys, sig = minhash.fingerprints(texts, 5)
    print(f"  fingerprints: normalise + shingle + {minhash.NUM_PERM} hash functions: {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    bands, rows = minhash.lsh_params(0.8)
    i, j = minhash.candidate_pairs(sig, bands, rows)
    sim = minhash.similarity(sig, i, j)
    print(f"  LSH {bands} bands x {rows} rows: {len(i):,} candidate pairs, {(sim >= 0.8).sum():,} at >= 0.8, "
          f"{time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
