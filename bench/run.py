#!/usr/bin/env python
"""Run every tunekit benchmark, print one table of ratios (each against a baseline measured in
this same run) and write bench/results/<YYYY-MM-DD>.json.

    python bench/run.py [--quick]

Not a test: it exits 0 once it has measured; read the result column (see bench/README.md).
The GPU benchmark (bench/gpu_mfu.py) is separate: it needs a CUDA machine.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import core  # noqa: E402  (bench/core.py: start-up and training throughput)
import lm_packing  # noqa: E402  (bench/lm_packing.py: causal-LM packing vs padding)
import pipeline_benches  # noqa: E402
import train_overhead  # noqa: E402  (bench/train_overhead.py: tunekit's loop vs a minimal Trainer script)

ROOT = Path(__file__).resolve().parents[1]
HELP_GOAL_S = 0.3  # the suite's goal for `tunekit --help` (core.py's own, stricter, is 0.2 s)
TRAIN_GOAL = 3.5  # real tokens/s vs padding every row to 128


def quiet() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def rows_of(results: dict) -> list[tuple[str, str, str, str, str]]:
    """(benchmark, ratio, goal, result, note) per benchmark, measured or not."""
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    s = results["startup"]
    help_s = s["median_s"]["tunekit --help"]
    out = [("`tunekit --help` vs `import transformers`", f"{s['ratio_help']:.2f}", f"median < {HELP_GOAL_S} s",
            verdict(help_s < HELP_GOAL_S), f"median {help_s:.3f} s")]
    t = results["tokenize"]
    out.append(("tokenize throughput vs raw encode_batch", f"{t['ratio']:.2f}", f">= {t['goal']}", verdict(t["pass"]),
                f"{t['tunekit_texts_per_s']:.0f} vs {t['raw_texts_per_s']:.0f} texts/s"))
    tr = results.get("training")
    if tr:
        out.append(("train tokens/s vs padded to 128", f"{tr['ratio']:.2f}", f">= {TRAIN_GOAL}",
                    verdict(tr["ratio"] >= TRAIN_GOAL),
                    f"{tr['tunekit']['tokens_per_s']:.0f} vs {tr['baseline']['tokens_per_s']:.0f} tokens/s"))
    o = results.get("train_overhead")
    if o:
        out.append(("train overhead vs minimal Trainer script", f"{o['ratio']:.3f}", f"<= {o['goal_overhead']:.0%}",
                    verdict(o["pass"]) if o["fair"] else "NOT COMPARABLE",
                    f"overhead {o['overhead']:+.1%}; {o['tunekit_tokens_per_s']:.0f} vs "
                    f"{o['minimal_tokens_per_s']:.0f} tokens/s; {o['timed_steps']} timed steps x {o['rounds']} rounds; "
                    f"first loss "
                    f"{o['first_loss']['tunekit']:.3f} vs {o['first_loss']['minimal']:.3f}"))
    p = results.get("lm_packing")
    if p:
        init = p["loss_at_init"]
        ref = (f"; {p['ratio_vs_length_grouped']:.2f}x length-grouped padding" if p.get("ratio_vs_length_grouped")
               else "")
        out.append(("causal-LM packing vs padding (random order)", f"{p['ratio']:.2f}", f">= {p['goal']}",
                    verdict(p["pass"]) if p["equal_loss"] else "LOSS DIFFERS",
                    f"{p['packed_tokens_per_s']:.0f} vs {p['padded_tokens_per_s']:.0f} tokens/s; pad "
                    f"{p['packed'][0]['pad_share']:.0%} vs {p['padded'][0]['pad_share']:.0%}; init loss equal "
                    f"(rel {init['relative_diff']:.0e}){ref}"))
    g = results["generation"]
    out.append(("batched generation vs one at a time", f"{g['ratio']:.2f}", f">= {g['goal']}", verdict(g["pass"]),
                f"{g['prompts']} prompts, {g['same_texts']} identical texts"))
    c = results["warm_cache"]
    out.append(("prepare+tokenize rerun vs first run", f"{c['ratio']:.2%}", f"<= {c['goal']:.0%}", verdict(c["pass"]),
                f"{c['rerun_s']:.3f} s vs {c['first_s']:.2f} s"))
    return out


def print_table(rows: list[tuple[str, ...]]) -> None:
    header = ("benchmark", "ratio", "goal", "result", "figures")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for n, row in enumerate([header, *rows]):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps: a smoke run, noisy")
    opts = parser.parse_args()
    started = datetime.datetime.now()
    results: dict = {"benchmark": "suite", "started": started.isoformat(timespec="seconds"),
                     "quick": opts.quick}
    print("start-up ...", flush=True)
    results["startup"] = core.bench_startup(3 if opts.quick else 7)  # first: no torch in this process yet
    quiet()
    print("tokenize ...", flush=True)
    results["tokenize"] = pipeline_benches.bench_tokenize(5000 if opts.quick else 20000, 2 if opts.quick else 3)
    print("warm cache ...", flush=True)
    results["warm_cache"] = pipeline_benches.bench_warm_cache()
    print("generation ...", flush=True)
    results["generation"] = pipeline_benches.bench_generation(8 if opts.quick else 16, 16, 8 if opts.quick else 16)
    print("training ...", flush=True)
    results["training"] = core.bench_training(12 if opts.quick else 51)
    print("training overhead vs a minimal Trainer script ...", flush=True)
    results["train_overhead"] = train_overhead.bench_overhead(480 if opts.quick else 960, 2 if opts.quick else 3)
    print("causal-LM packing vs padding ...", flush=True)
    results["lm_packing"] = lm_packing.bench_packing(200 if opts.quick else 480, 1 if opts.quick else 2,
                                                     grouped_reference=not opts.quick)
    results["environment"] = core.environment()
    rows = rows_of(results)
    results["table"] = [dict(zip(("benchmark", "ratio", "goal", "result", "figures"), r)) for r in rows]
    print()
    print_table(rows)
    core.write_result(core.RESULTS / f"{started.date().isoformat()}.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
