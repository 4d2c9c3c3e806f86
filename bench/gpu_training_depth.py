"""GPU check of training depth: precision auto, full fine-tune vs LoRA vs QLoRA, and the
--dry-run memory estimate beside each run's measured peak.

Everything is built here, offline: a word-level tokenizer, a MiniLM-shaped BERT (6 layers,
384 wide) from a config, and a synthetic sentiment set. The random body is first trained in
full ("pretrain") so that the adapter runs start from a body that knows the task's words;
then full, lora and qlora runs start from it. Each run goes through the `tunekit` command.

    python bench/gpu_training_depth.py [--out DIR] [--smoke]

--smoke: a tiny CPU run of the same flow (qlora is then expected to fail with exit 2).
Writes DIR/results.json and DIR/summary.txt (default bench/results/gpu-depth-<date>).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import yaml

POSITIVE = ["good", "great", "excellent", "love", "wonderful", "fun", "brilliant", "superb", "moving"]
NEGATIVE = ["bad", "awful", "terrible", "hate", "boring", "dull", "weak", "poor", "tedious"]
FILLER = ["the", "movie", "film", "was", "plot", "actors", "story", "a", "and", "really", "this",
          "it", "of", "but", "not", "quite", "very", "scenes", "ending", "cast"]
TUNEKIT = [sys.executable, "-m", "tunekit"]


def build_assets(root: Path, smoke: bool) -> tuple[Path, Path]:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    rng = random.Random(0)
    rows = []
    for i in range(600 if smoke else 6000):
        label = "positive" if i % 2 == 0 else "negative"
        words = rng.sample(FILLER, 8) + rng.sample(POSITIVE if label == "positive" else NEGATIVE, 2)
        if rng.random() < 0.3:  # a word of the other side: the model must weigh, not just spot
            words.append(rng.choice(NEGATIVE if label == "positive" else POSITIVE))
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    data = root / "reviews.csv"
    with open(data, "w", encoding="utf-8") as fh:
        fh.write("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))

    model_dir = root / "random-minilm"
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {tok: i for i, tok in enumerate(specials + POSITIVE + NEGATIVE + FILLER)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]", model_max_length=64).save_pretrained(model_dir)
    size = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64) if smoke else \
        dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(vocab_size=len(vocab), max_position_embeddings=64, pad_token_id=0,
                                             **size)).save_pretrained(model_dir)
    return model_dir, data


def recipe(root: Path, name: str, model: Path, data: Path, **train) -> Path:
    body = {"name": name, "task": "classification", "output_dir": str(root / "runs" / name),
            "model": {"name": str(model)},
            "data": {"train": str(data), "split": {"validation": 0.1, "test": 0.2, "seed": 1}},
            "tokenize": {"max_length": 32},
            "train": {"epochs": 2, "batch_size": 64, "lr": 3e-4, "warmup_ratio": 0.1, "seed": 1,
                      "logging_steps": 20, **train}}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path


def tunekit(*args: str) -> tuple[int, dict, str, float]:
    start = time.time()
    out = subprocess.run([*TUNEKIT, *args], capture_output=True, text=True)
    try:
        result = json.loads(out.stdout) if out.stdout.strip() else {}
    except ValueError:
        result = {}
    return out.returncode, result, out.stderr, time.time() - start


def measure(root: Path, name: str, path: Path, budget: str) -> dict:
    rc, plan, err, _ = tunekit("finetune", str(path), "--dry-run", "--gpu-memory", budget, "--json")
    row: dict = {"name": name, "dry_run_exit": rc}
    if rc == 0:
        mem = plan["memory"]
        row["estimate_mib"] = round((mem["total"] - mem["overhead"]) / 2**20, 1)  # live tensors, no context
        row["estimate_parts_mib"] = {k: round(mem[k] / 2**20, 1) for k in
                                     ("weights", "gradients", "optimizer", "activations", "overhead")}
    else:
        row["dry_run_error"] = err.strip().splitlines()[-2:]
    rc, result, err, wall = tunekit("finetune", str(path), "--json")
    row.update(exit=rc, wall_s=round(wall, 1))
    if rc != 0:
        row["error"] = [line for line in err.splitlines() if line.startswith(("error:", "hint:"))]
        return row
    run = root / "runs" / name
    manifest = json.loads((run / "manifest.json").read_text())
    line = next((ln for ln in err.splitlines() if "precision" in ln), "")
    row.update(precision=line.split("precision")[1].split(",")[0].strip() if line else None,
               trainable=manifest["parameters"]["trainable"], total=manifest["parameters"]["total"],
               train_s=round(result["timings"]["train_s"], 1),
               samples_per_s=round(result["train"]["train_samples_per_second"], 1),
               accuracy=result["eval"]["accuracy"], f1_macro=result["eval"]["f1_macro"],
               peak_mib=result["train"].get("peak_gpu_memory_mib"),
               model_files=sorted(p.name for p in (run / "model").iterdir()))
    if row.get("peak_mib") and row.get("estimate_mib"):
        row["estimate_error"] = round(row["estimate_mib"] / row["peak_mib"] - 1, 3)
    rc, again, _, _ = tunekit("eval", str(run), "--json")  # a fresh process loads the saved run
    row.update(eval_exit=rc, eval_accuracy=again.get("accuracy"))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=f"bench/results/gpu-depth-{dt.date.today().isoformat()}")
    parser.add_argument("--root", default="/tmp/tk-gpu-depth")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    import torch

    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    root, out = Path(args.root), Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    model, data = build_assets(root, args.smoke)
    env = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    budget = "139GiB"
    body = root / "runs" / "pretrain" / "model"
    lora = {"method": "lora", "r": 16, "alpha": 32}
    plans = [("pretrain", model, {"epochs": 3}),
             ("qlora", body, {"lr": 1e-3, "peft": {**lora, "method": "qlora"}}),
             ("lora", body, {"lr": 1e-3, "peft": lora}),
             ("full", body, {"lr": 5e-5}),
             ("full-ckpt", body, {"lr": 5e-5, "gradient_checkpointing": True})]
    rows = []
    for name, base, train in plans:  # results are written after each run: a timeout keeps the rest
        rows.append(measure(root, name, recipe(root, name, base, data, **train), budget))
        (out / "results.json").write_text(json.dumps({"environment": env, "runs": rows}, indent=2) + "\n")
    lines = [f"{env}"]
    for r in rows:
        lines.append(f"{r['name']:10s} exit {r.get('exit')}  precision {r.get('precision')}  "
                     f"trainable {r.get('trainable')}/{r.get('total')}  acc {r.get('accuracy')}  "
                     f"eval-again {r.get('eval_accuracy')}  train_s {r.get('train_s')}  "
                     f"peak {r.get('peak_mib')} MiB  estimate {r.get('estimate_mib')} MiB  "
                     f"error {r.get('estimate_error')}  {r.get('error', '')}")
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
