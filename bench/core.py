#!/usr/bin/env python
"""tunekit core benchmarks: CLI start-up and training throughput, each against a baseline
measured in this same invocation (so machine speed and library versions largely cancel out).

    python bench/core.py [--quick] [--steps N] [--skip-train]

Prints a table of ratios and writes bench/results/core-<YYYY-MM-DD>.json. Not a test: it
always exits 0 once it has measured; read the PASS/FAIL column. See bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Offline-first (DESIGN §1): set before any HF import and inherited by the subprocesses,
# so nothing waits on a network that is not there.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "sentiment.yaml"
RESULTS = ROOT / "bench" / "results"
HELP_GOAL_S = 0.2  # `tunekit --help` median must stay under this
THROUGHPUT_GOAL = 2.5  # tunekit real tokens/s must be at least this multiple of the baseline
BASELINE_MAX_LENGTH = 128  # the HF example scripts' default max_seq_length (pad_to_max_length)


# ---- 1. CLI start-up ---------------------------------------------------------------------------

def bench_startup(runs: int) -> dict:
    # The console script next to this interpreter (not resolved: a venv's python is a symlink).
    script = Path(sys.executable).parent / "tunekit"
    if not script.is_file():
        raise SystemExit(f"no console script at {script}; run with the venv's python")
    commands = {
        "tunekit --help": [str(script), "--help"],
        "tunekit finetune --help": [str(script), "finetune", "--help"],
        "import transformers": [sys.executable, "-c", "import transformers"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    # Interleave the commands round by round so load drifting over the run hits all of them
    # alike; round 0 warms the page cache and .pyc files and is discarded.
    for round_no in range(runs + 1):
        for name, cmd in commands.items():
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            elapsed = time.perf_counter() - start
            if proc.returncode != 0:
                raise SystemExit(f"`{name}` exited {proc.returncode}:\n{proc.stderr.decode()[-2000:]}")
            if round_no:
                times[name].append(elapsed)
    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians["import transformers"]
    return {
        "runs": runs,
        "median_s": medians,
        "times_s": times,
        "ratio_help": medians["tunekit --help"] / base,
        "ratio_finetune_help": medians["tunekit finetune --help"] / base,
        "goal_help_s": HELP_GOAL_S,
        "pass": medians["tunekit --help"] < HELP_GOAL_S,
        "pass_finetune_help": medians["tunekit finetune --help"] < HELP_GOAL_S,
    }


# ---- 2. Training throughput ------------------------------------------------------------------

class CountingCollator:
    """Wraps a collator and records, per batch, the real and the padded token counts.

    Real tokens are counted from the rows before collation (their input_ids, which tokenize
    leaves unpadded), so the count is the same for rows with an attention mask and for packed
    causal-LM rows, which carry none; padded tokens are the collated batch's input_ids size."""

    def __init__(self, inner):
        self.inner = inner
        self.real: list[int] = []
        self.padded: list[int] = []

    def __call__(self, features):
        batch = self.inner(features)
        self.real.append(sum(len(f["input_ids"]) for f in features))
        self.padded.append(int(batch["input_ids"].numel()))
        return batch


def make_step_timer(cuda: bool):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Time at the end of every optimizer step. Step 1 (sampler set-up, lazy init, first-touch
        allocations) is the warm-up: throughput is measured from the end of step 1 to the end of
        the last step, the same way on both sides."""

        def __init__(self):
            self.marks: dict[int, float] = {}

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                import torch

                torch.cuda.synchronize()  # GPU kernels are asynchronous; wait before reading the clock
            self.marks[state.global_step] = time.perf_counter()

    return StepTimer()


def prepare_data(tmp: Path, overrides: tuple[str, ...] = ()):
    """tunekit's own prepare + tokenize of the shipped recipe (with `--set`-style overrides),
    written into a temporary run dir."""
    import datasets

    datasets.disable_progress_bars()  # display only; keeps the table readable
    from tunekit.pipeline.tokenization import load_tokenizer, run_tokenize
    from tunekit.recipe import load_recipe
    from tunekit.runs import RunDir
    from tunekit.sources import resolve_model

    recipe = load_recipe(RECIPE, [f"output_dir={tmp / 'run'}", *overrides])
    run = RunDir(Path(recipe.output_dir))
    prepared, _ = run_tokenize(recipe, run)
    train = datasets.load_from_disk(str(run.tokenized))["train"]
    tokenizer = load_tokenizer(resolve_model(recipe.model.tokenizer or recipe.model.name))
    return recipe, run, prepared.report["label_names"], train, tokenizer


def time_training(recipe, run, names, train, tokenizer, collator, steps: int, threads: int,
                  **arg_changes) -> dict:
    import torch
    from transformers import PrinterCallback, Trainer, set_seed

    from tunekit.pipeline.training import training_arguments
    from tunekit.sources import resolve_model
    from tunekit.tasks import get_task

    torch.set_num_threads(threads)  # both sides get the same intra-op thread count
    set_seed(recipe.train.seed)  # same classifier-head initialisation on both sides
    model = get_task(recipe.task).build_model(resolve_model(recipe.model.name), {"label_names": names})
    # tunekit's own arguments (group_by_length, lr, warmup, precision...), changed only where the
    # benchmark needs it. dataclasses.replace re-runs TrainingArguments' validation (__post_init__).
    args = dataclasses.replace(training_arguments(recipe.train, run, has_validation=False),
                               max_steps=steps, save_strategy="no", report_to="none", **arg_changes)
    counter = CountingCollator(collator)
    timer = make_step_timer(torch.cuda.is_available())
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=counter,
                      processing_class=tokenizer, callbacks=[timer])
    trainer.remove_callback(PrinterCallback)  # as tunekit does; keeps log printing out of the timing
    start = time.perf_counter()
    trainer.train()  # model loading above is not timed
    call_s = time.perf_counter() - start
    if torch.get_num_threads() != threads:
        raise SystemExit(f"torch threads changed during training: {torch.get_num_threads()} != {threads}")
    ga = args.gradient_accumulation_steps
    # Batches are recorded in order; the dataloader may collate one batch ahead, so slice by
    # position: steps 2..S consumed batches ga..S*ga-1.
    real = sum(counter.real[ga:steps * ga])
    padded = sum(counter.padded[ga:steps * ga])
    timed_s = timer.marks[steps] - timer.marks[1]
    result = {
        "sampling": str(args.train_sampling_strategy), "batch_size": args.per_device_train_batch_size,
        "steps": steps, "timed_steps": steps - 1, "timed_s": timed_s, "real_tokens": real,
        "padded_tokens": padded, "pad_share": 1 - real / padded, "tokens_per_s": real / timed_s,
        "mean_real_len": real / ((steps - 1) * ga * args.per_device_train_batch_size),
        "train_call_s": call_s, "tokens_per_s_whole_call": sum(counter.real[:steps * ga]) / call_s,
        "device": str(args.device),
    }
    del trainer, model
    gc.collect()
    return result


def bench_training(steps: int) -> dict:
    if steps < 2:
        raise SystemExit("--steps must be at least 2 (step 1 is the untimed warm-up)")
    import torch
    import transformers
    from transformers import DataCollatorWithPadding

    from tunekit.tasks import get_task

    transformers.logging.set_verbosity_error()  # the "newly initialized head" notice, twice
    transformers.logging.disable_progress_bar()
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="tunekit-bench-") as tmp:
        recipe, run, names, train, tokenizer = prepare_data(Path(tmp))
        common = (recipe, run, names, train, tokenizer)
        # tunekit first, baseline second: any warm-cache advantage of running later goes to the
        # baseline, so the ratio errs on the conservative side.
        tunekit = time_training(*common, get_task(recipe.task).collator(tokenizer), steps, threads)
        fixed = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=BASELINE_MAX_LENGTH)
        baseline = time_training(*common, fixed, steps, threads, train_sampling_strategy="random")
    ratio = tunekit["tokens_per_s"] / baseline["tokens_per_s"]
    # The length-grouped sampler serves each megabatch (50 batches) longest first, so a short
    # timed window sees longer-than-average rows; compare mean_real_len with this to judge it.
    dataset_mean_len = sum(map(sum, train["attention_mask"])) / len(train)
    return {"train_rows": len(train), "dataset_mean_len": dataset_mean_len,
            "torch_threads": threads, "tunekit": tunekit,
            "baseline": baseline, "ratio": ratio, "goal_ratio": THROUGHPUT_GOAL,
            "pass": ratio >= THROUGHPUT_GOAL}


# ---- report ------------------------------------------------------------------------------------

def print_table(startup: dict, training: dict | None) -> None:
    rows = [("measure", "tunekit", "baseline", "ratio", "goal", "result")]
    m = startup["median_s"]
    base = f"{m['import transformers']:.3f} s"
    rows.append(("`tunekit --help` median", f"{m['tunekit --help']:.3f} s", base,
                 f"{startup['ratio_help']:.2f}", f"< {HELP_GOAL_S} s", "PASS" if startup["pass"] else "FAIL"))
    rows.append(("`tunekit finetune --help` median", f"{m['tunekit finetune --help']:.3f} s", base,
                 f"{startup['ratio_finetune_help']:.2f}", f"< {HELP_GOAL_S} s",
                 "PASS" if startup["pass_finetune_help"] else "FAIL"))
    if training:
        t, b = training["tunekit"], training["baseline"]
        rows.append(("train real tokens/s", f"{t['tokens_per_s']:.0f}", f"{b['tokens_per_s']:.0f}",
                     f"{training['ratio']:.2f}", f">= {THROUGHPUT_GOAL}", "PASS" if training["pass"] else "FAIL"))
        rows.append(("train pad share", f"{t['pad_share']:.1%}", f"{b['pad_share']:.1%}", "-", "-", "-"))
        rows.append(("train mean real tokens/row", f"{t['mean_real_len']:.1f}", f"{b['mean_real_len']:.1f}",
                     "-", "-", f"(all rows: {training['dataset_mean_len']:.1f})"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print(f"(start-up baseline: `python -c \"import transformers\"`, {startup['runs']} runs each;")
    if training:
        t = training["tunekit"]
        print(f" training baseline: same model and data padded to {BASELINE_MAX_LENGTH}, random order; "
              f"{t['timed_steps']} timed steps after 1 warm-up, {training['torch_threads']} torch threads, {t['device']})")
    else:
        print(" training skipped)")


def environment() -> dict:
    from importlib.metadata import version

    versions = {dist: version(dist) for dist in ("tunekit", "torch", "transformers", "datasets", "accelerate")}
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "load_avg": list(os.getloadavg()), "versions": versions}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 start-up runs and 12 training steps")
    parser.add_argument("--steps", type=int, help="training steps per side (default 51: one full length-grouped megabatch after the warm-up; --quick 12)")
    parser.add_argument("--skip-train", action="store_true", help="measure CLI start-up only")
    opts = parser.parse_args()
    runs = 3 if opts.quick else 7
    steps = opts.steps or (12 if opts.quick else 51)

    started = datetime.datetime.now()
    startup = bench_startup(runs)  # first, so the parent holds no torch or model while it spawns
    training = None if opts.skip_train else bench_training(steps)
    print()
    print_table(startup, training)

    result = {"benchmark": "core", "started": started.isoformat(timespec="seconds"),
              "argv": sys.argv[1:], "quick": opts.quick, "environment": environment(),
              "startup": startup, "training": training}
    write_result(RESULTS / f"core-{started.date().isoformat()}.json", result)
    return 0


def save_benchmark(name: str, started, result: dict) -> Path:
    """bench/results/<name>-<date>.json: the result with when, how it was called, and where."""
    out = {"benchmark": name, "started": started.isoformat(timespec="seconds"), "argv": sys.argv[1:],
           "environment": environment(), **result}
    return write_result(RESULTS / f"{name}-{started.date().isoformat()}.json", out)


def write_result(path: Path, result: dict) -> Path:
    """Write a benchmark's JSON (then rename: never a half-written result file) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


if __name__ == "__main__":
    sys.exit(main())
