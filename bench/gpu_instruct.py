"""GPU check of the instruction recipe's model: bf16 LoRA and a bf16 full fine-tune, a short run
each, with tokens per second, the measured peak GPU memory, and `--dry-run`'s estimate beside it.

    python bench/gpu_instruct.py [--model-dir DIR] [--data FILE] [--steps N] [--out DIR] [--smoke]

--model-dir: a folder with the model's config.json and tokenizer. Without weights in it (the
device machine cannot install the 93 MB model package), a model of the same architecture and size
is initialised from the config (seeded): speed and memory depend on the shape, not the values.
Default: the dequantized SmolLM2 folder that `tunekit` caches for recipes/instruct.yaml.
--data: a copy of the recipe's training file (moviedialog.csv) where its package is not installed.
--smoke: a few CPU steps of the same flow on a 2-layer model (checks the script, not the GPU).

Every run goes through the `tunekit` command with recipes/instruct.yaml and `--set` overrides.
Tokens per second = real (non-padding) tokens in the training rows seen / training seconds, with
the rows' mean length read from the run's tokenized data. Writes OUT/results.json and
OUT/summary.txt (default bench/results/gpu-instruct-<date>).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

TUNEKIT = [sys.executable, "-m", "tunekit"]
RECIPE = "recipes/instruct.yaml"


def default_model_dir() -> Path:
    """The folder tunekit dequantized the recipe's .gguf into (run the recipe once to make it)."""
    from tunekit.recipe import load_recipe
    from tunekit.sources import resolve_model

    return Path(resolve_model(load_recipe(RECIPE).model.name))


def model_with_weights(model_dir: Path, work: Path, smoke: bool) -> Path:
    """model_dir itself when it holds weights; else a seeded model initialised from its config."""
    if any(model_dir.glob("*.safetensors")) and not smoke:
        return model_dir
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    if smoke:
        config.num_hidden_layers, config.hidden_size, config.intermediate_size = 2, 64, 128
        config.num_attention_heads, config.num_key_value_heads, config.head_dim = 4, 2, 16
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    out = work / "model"
    model.save_pretrained(out)
    for item in model_dir.iterdir():  # tokenizer and chat template files
        if item.is_file() and not item.name.endswith((".safetensors", ".bin")) and item.name != "config.json":
            shutil.copy2(item, out / item.name)
    return out


def tunekit(args: list[str], log: Path) -> tuple[int, dict, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.run(TUNEKIT + args, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    log.write_text(proc.stderr + "\n--- stdout ---\n" + proc.stdout, encoding="utf-8")
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        data = {}
    return proc.returncode, data, wall


def mean_train_tokens(run_dir: Path) -> float:
    import datasets

    train = datasets.load_from_disk(str(run_dir / "data" / "tokenized"))["train"]
    masks = train["attention_mask"] if "attention_mask" in train.column_names else None
    lengths = [sum(m) for m in masks] if masks else [len(ids) for ids in train["input_ids"]]
    return sum(lengths) / max(len(lengths), 1)


def measure(name: str, extra: list[str], model: Path, work: Path, out: Path, steps: int, smoke: bool,
            data: Path | None = None) -> dict:
    run_dir = work / "runs" / name
    common = [*(["--set", f"data.train={data}"] if data else []), "--set", f"model.name={model}", "--set", f"model.tokenizer={model}", "--set", f"output_dir={run_dir}",
              "--set", f"train.max_steps={steps}", "--set", "train.eval_every=never",
              "--set", f"train.precision={'fp32' if smoke else 'bf16'}", "--set", "eval.samples=2", *extra]
    plan_rc, plan, _ = tunekit(["finetune", RECIPE, "--dry-run", "--json", *common], out / f"{name}-plan.log")
    rc, result, wall = tunekit(["finetune", RECIPE, "--json", "--overwrite", *common], out / f"{name}.log")
    row = {"name": name, "overrides": extra, "exit": rc, "wall_s": round(wall, 1), "plan_exit": plan_rc}
    if plan:
        row["estimate_mib"] = round(plan["memory"]["total"] / 2**20, 1)
        row["estimate_parts_mib"] = {k: round(plan["memory"][k] / 2**20, 1)
                                     for k in ("weights", "gradients", "optimizer", "activations", "overhead")}
        row["parameters"] = plan["parameters"]
    if rc == 0 and result:
        train = result["train"]
        seconds = train.get("train_runtime") or result["timings"]["train_s"]
        rows_seen = train.get("train_samples_per_second", 0) * seconds
        tokens = mean_train_tokens(run_dir) * rows_seen
        row.update(steps=train["global_step"], train_s=round(seconds, 2), rows_seen=round(rows_seen),
                   tokens_per_s=round(tokens / seconds, 1), train_loss=train.get("train_loss"),
                   peak_mib=train.get("peak_gpu_memory_mib"), eval=result.get("eval", {}))
        if row.get("peak_mib") and row.get("estimate_mib"):
            row["estimate_error_pct"] = round(100 * (row["estimate_mib"] - row["peak_mib"]) / row["peak_mib"], 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    out = args.out or Path("bench/results") / f"gpu-instruct-{dt.date.today().isoformat()}"
    out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "tunekit-gpu-instruct"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    model = model_with_weights(args.model_dir or default_model_dir(), work, args.smoke)
    steps = 3 if args.smoke else args.steps

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    rows = [measure("lora", [], model, work, out, steps, args.smoke, args.data),
            measure("full", ["--set", "train.peft=null", "--set", "train.lr=2e-5"], model, work, out, steps,
                    args.smoke, args.data)]
    result = {"device": device, "torch": torch.__version__, "model": str(model), "steps": steps, "runs": rows}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [f"device {device}, torch {torch.__version__}, {steps} steps each, recipe {RECIPE}"]
    for r in rows:
        lines.append(f"{r['name']:5s} exit {r['exit']}  tokens/s {r.get('tokens_per_s')}  peak {r.get('peak_mib')} MiB"
                     f"  estimate {r.get('estimate_mib')} MiB ({r.get('estimate_error_pct')}%)"
                     f"  trainable {r.get('parameters', {}).get('trainable')}  wall {r['wall_s']} s")
    (out / "summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
