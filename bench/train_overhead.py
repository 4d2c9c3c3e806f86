#!/usr/bin/env python
"""tunekit's training overhead: `tunekit finetune`'s own loop vs a minimal hand-written
`transformers.Trainer` script with identical settings, interleaved, real tokens per second.

    python bench/train_overhead.py [--quick] [--rows N] [--rounds R]

Goal: overhead = 1 - tunekit/minimal at most 3%. Prints the figures and writes
bench/results/train-overhead-<YYYY-MM-DD>.json; bench/run.py runs it as one row of the suite.
Not a test: exits 0 once measured. See bench/README.md.

What is identical on both sides: the model (all-MiniLM-L6-v2 with a new 2-class head, created
after set_seed(42)), the data (tunekit's own tokenized split of recipes/sentiment.yaml, read from
the run directory), batch size, learning rate, scheduler and warm-up, weight decay, gradient
clipping, precision, seed, collator (dynamic padding, DataCollatorWithPadding), length grouping
(`train_sampling_strategy="group_by_length"`), logging interval, torch thread count and the number
of steps: one epoch of the same rows, so both train on exactly the same examples. Neither
evaluates nor saves inside the timed window. What differs is tunekit itself: its Trainer subclass
and seeded sampler, its callbacks (progress, loss guard, metrics.jsonl + TensorBoard, signal
handling) and its argument handling, which is what the overhead measures.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import core  # noqa: E402
import harness  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OVERHEAD_GOAL = 0.03  # tunekit may cost at most 3% of the minimal script's real tokens/s
LOSS_TOLERANCE = 0.05  # relative: first-step and mean losses of the two sides must agree this well

# The minimal script's settings, written out by hand as a user copying recipes/sentiment.yaml
# would. check_same_settings() stops the bench if the recipe no longer says the same.
MINIMAL = {"batch_size": 16, "lr": 1.0e-4, "scheduler": "linear", "warmup_ratio": 0.06, "weight_decay": 0.01,
           "max_grad_norm": 1.0, "seed": 42, "logging_steps": 10, "grad_accum": 1, "epochs": 1.0}


def check_same_settings(recipe) -> None:
    t = recipe.train
    found = {"batch_size": t.batch_size, "lr": t.lr, "scheduler": t.scheduler, "warmup_ratio": t.warmup_ratio,
             "weight_decay": t.weight_decay, "max_grad_norm": t.max_grad_norm, "seed": t.seed,
             "logging_steps": t.logging_steps, "grad_accum": t.grad_accum, "epochs": t.epochs}
    differ = {k: (found[k], v) for k, v in MINIMAL.items() if found[k] != v}
    if differ or t.warmup_steps is not None or not t.group_by_length or t.peft or t.label_smoothing:
        raise SystemExit(f"recipes/sentiment.yaml no longer matches the minimal script's settings {differ}: "
                         "update MINIMAL in bench/train_overhead.py")


def minimal_script(model_path: str, train, label_names: list[str], out_dir: Path, callbacks: list):
    """What a user writes: a plain Trainer with hand-written TrainingArguments. Returns the
    collator (wrapped by the caller for counting) and the train() call, so model loading is not
    timed."""
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments, set_seed)

    set_seed(MINIMAL["seed"])
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=len(label_names), id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)})
    args = TrainingArguments(
        output_dir=str(out_dir),
        num_train_epochs=MINIMAL["epochs"],
        per_device_train_batch_size=MINIMAL["batch_size"],
        learning_rate=MINIMAL["lr"],
        lr_scheduler_type=MINIMAL["scheduler"],
        warmup_steps=MINIMAL["warmup_ratio"],  # transformers 5: a float below 1 is a ratio
        weight_decay=MINIMAL["weight_decay"],
        max_grad_norm=MINIMAL["max_grad_norm"],
        seed=MINIMAL["seed"],
        train_sampling_strategy="group_by_length",
        logging_steps=MINIMAL["logging_steps"],
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,  # the one liberty: no progress bar in the bench's output (it only helps this side)
    )
    collator = core.CountingCollator(DataCollatorWithPadding(tokenizer))
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collator,
                      processing_class=tokenizer, callbacks=callbacks)
    return collator, trainer, model


def run_minimal(model_path, train, names, out_dir, threads: int) -> dict:
    import torch

    timer = core.make_step_timer(torch.cuda.is_available())
    probe = harness.make_probe()
    collator, trainer, model = minimal_script(model_path, train, names, out_dir, [timer, probe])
    trainer.train()
    steps = trainer.state.global_step
    result = harness.window(collator, timer, steps)
    result.update(losses=probe.losses, dtype=str(model.dtype), threads=torch.get_num_threads())
    del trainer, model
    gc.collect()
    return result


def run_tunekit(recipe) -> dict:
    import torch

    from tunekit.pipeline.training import run_finetune
    from tunekit.tasks import get_task

    timer = core.make_step_timer(torch.cuda.is_available())
    probe = harness.make_probe(end_run=True)
    with harness.counting_task_collator(get_task(recipe.task)) as counters:
        try:
            run_finetune(recipe, overwrite=True, callbacks=[timer, probe])
        except harness.WindowEnd:
            pass  # training is over; the final save and evaluation are not measured
    steps = max(timer.marks)
    result = harness.window(counters[-1], timer, steps)
    result.update(losses=probe.losses, threads=torch.get_num_threads())
    gc.collect()
    return result


def bench_overhead(rows: int, rounds: int) -> dict:
    import datasets
    import torch
    import transformers

    from tunekit.sources import resolve_model

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    harness.quiet_warnings()
    datasets.disable_progress_bars()
    threads = torch.get_num_threads()
    overrides = (f"data.max_train_rows={rows}", "train.eval_every=never")
    with tempfile.TemporaryDirectory(prefix="tunekit-bench-overhead-") as tmp:
        recipe, run, names, train, _ = core.prepare_data(Path(tmp), overrides)
        check_same_settings(recipe)
        model_path = resolve_model(recipe.model.name)
        sides: dict[str, list[dict]] = {"tunekit": [], "minimal": []}
        for n in range(rounds):
            # Alternate which side goes first (A B, B A, ...): drift in the machine's load over
            # the run then falls on both sides alike.
            order = ("tunekit", "minimal") if n % 2 == 0 else ("minimal", "tunekit")
            for side in order:
                print(f"  overhead round {n + 1}/{rounds}: {side} ...", flush=True)
                result = run_tunekit(recipe) if side == "tunekit" else \
                    run_minimal(model_path, train, names, Path(tmp) / "minimal", threads)
                if result["threads"] != threads:
                    raise SystemExit(f"torch threads changed: {result['threads']} != {threads}")
                sides[side].append(result)
    t_rates = [r["tokens_per_s"] for r in sides["tunekit"]]
    m_rates = [r["tokens_per_s"] for r in sides["minimal"]]
    pair_ratios = [t / m for t, m in zip(t_rates, m_rates)]
    ratio = harness.median(pair_ratios)
    overhead = 1 - ratio
    t0, m0 = sides["tunekit"][0], sides["minimal"][0]
    first_t, first_m = t0["losses"][0], m0["losses"][0]
    mean_t = sum(t0["losses"]) / len(t0["losses"])
    mean_m = sum(m0["losses"]) / len(m0["losses"])
    first_diff = abs(first_t - first_m) / first_m
    mean_diff = abs(mean_t - mean_m) / mean_m
    same_steps = len({r["steps"] for r in sides["tunekit"] + sides["minimal"]}) == 1
    same_tokens = len({r["real_tokens"] for r in sides["tunekit"] + sides["minimal"]}) == 1
    fair = same_steps and first_diff <= LOSS_TOLERANCE and mean_diff <= LOSS_TOLERANCE
    summary = lambda rs: [{k: v for k, v in r.items() if k != "losses"} for r in rs]  # noqa: E731
    return {
        "train_rows": len(train), "rounds": rounds, "torch_threads": threads,
        "steps": t0["steps"], "timed_steps": t0["timed_steps"],
        "tunekit_tokens_per_s": harness.median(t_rates), "minimal_tokens_per_s": harness.median(m_rates),
        "pair_ratios": pair_ratios, "ratio": ratio, "overhead": overhead, "goal_overhead": OVERHEAD_GOAL,
        "first_loss": {"tunekit": first_t, "minimal": first_m, "relative_diff": first_diff},
        "mean_loss": {"tunekit": mean_t, "minimal": mean_m, "relative_diff": mean_diff},
        "loss_tolerance": LOSS_TOLERANCE, "same_steps": same_steps, "same_timed_tokens": same_tokens,
        "fair": fair, "pass": fair and overhead <= OVERHEAD_GOAL,
        "tunekit": summary(sides["tunekit"]), "minimal": summary(sides["minimal"]),
        "loss_trajectory": {"tunekit": t0["losses"], "minimal": m0["losses"]},
    }


def describe(r: dict) -> list[str]:
    return [
        f"real tokens/s, median of {r['rounds']} interleaved rounds: tunekit {r['tunekit_tokens_per_s']:.0f}, "
        f"minimal Trainer {r['minimal_tokens_per_s']:.0f}",
        f"ratio {r['ratio']:.3f} (per round: {', '.join(f'{x:.3f}' for x in r['pair_ratios'])}), "
        f"overhead {r['overhead']:+.1%} (goal <= {r['goal_overhead']:.0%}): {'PASS' if r['pass'] else 'FAIL'}",
        f"{r['train_rows']} rows, {r['steps']} steps per run, {r['timed_steps']} timed (step 1 is warm-up); "
        f"same steps {r['same_steps']}, same timed tokens {r['same_timed_tokens']}",
        f"first-step loss {r['first_loss']['tunekit']:.4f} vs {r['first_loss']['minimal']:.4f} "
        f"({r['first_loss']['relative_diff']:.2%}); mean loss {r['mean_loss']['tunekit']:.4f} vs "
        f"{r['mean_loss']['minimal']:.4f} ({r['mean_loss']['relative_diff']:.2%}); "
        f"tolerance {r['loss_tolerance']:.0%}: {'fair' if r['fair'] else 'NOT comparable'}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="480 rows (30 steps), 2 rounds: a smoke run, noisy")
    parser.add_argument("--rows", type=int, help="training rows (steps = rows / 16); default 960, --quick 480")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (one run per side each); default 3")
    opts = parser.parse_args()
    rows = opts.rows or (480 if opts.quick else 960)
    rounds = opts.rounds or (2 if opts.quick else 3)
    started = datetime.datetime.now()
    result = bench_overhead(rows, rounds)
    print("\n".join(describe(result)))
    core.save_benchmark("train-overhead", started, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
