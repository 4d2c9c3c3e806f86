#!/usr/bin/env python
"""How good is `finetune --dry-run`'s memory estimate? Train a few steps of small models built
from a config and compare the measured peak of tensor memory with tunekit's estimate.

    python bench/memory_estimate.py [--device cpu|cuda] [--only NAME ...]

Each configuration runs in a fresh forked process through the Trainer with tunekit's own
`training_arguments` (AdamW fused, the run's precision and checkpointing), for 2 optimizer
steps (step 2 is the first with optimizer state in place). Prints a table of estimated vs
measured peak and the relative error; writes bench/results/memory-estimate-<device>-<date>.json.

How the peak is measured:
* CPU: torch.profiler with profile_memory=True, started before the model is built. PyTorch's
  CPU allocator then reports every tensor allocation and free (with its size) to the profiler;
  the running sum of those events is the live tensor memory, and its maximum the peak. This
  counts exactly what the estimate models (tensors). The alternatives measure something else:
  tracemalloc sees only Python's allocator, never torch's; ru_maxrss is the process's resident
  high-water mark, which also holds the interpreter, the libraries, glibc's cached free memory
  and oneDNN scratch, and pages a tensor never touched are not resident at all.
* CUDA: torch.cuda.max_memory_allocated() (the caching allocator's own peak of live tensor
  bytes); the estimate's 0.5 GiB CUDA context is left out of the comparison, since allocated
  memory excludes it. The JSON keeps max_memory_reserved and the device's used memory too.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # the checkout's tunekit, also where it is not installed
RESULTS = ROOT / "bench" / "results"
STEPS = 2

BERT_VOCAB = 30522  # bert-base-uncased's vocabulary: embeddings as large as a real BERT's
CPU_CONFIGS = [
    # name, model, hidden, layers, batch, seq, extra settings
    dict(name="bert-h128-L2-b8-s64", model="bert", hidden=128, layers=2, batch=8, seq=64),
    dict(name="bert-h128-L2-b8-s64-accum2", model="bert", hidden=128, layers=2, batch=8, seq=64, grad_accum=2),
    dict(name="bert-h128-L2-b32-s128", model="bert", hidden=128, layers=2, batch=32, seq=128),
    dict(name="bert-h256-L4-b8-s64", model="bert", hidden=256, layers=4, batch=8, seq=64),
    dict(name="bert-h256-L4-b32-s128", model="bert", hidden=256, layers=4, batch=32, seq=128),
    dict(name="bert-h256-L4-b32-s128-ckpt", model="bert", hidden=256, layers=4, batch=32, seq=128, checkpointing=True),
    dict(name="bert-h256-L4-b32-s128-lora", model="bert", hidden=256, layers=4, batch=32, seq=128, lora=True),
    dict(name="bert-h256-L4-b32-s128-freeze2", model="bert", hidden=256, layers=4, batch=32, seq=128, freeze=2),
    dict(name="bert-h256-L4-b32-s128-nodrop", model="bert", hidden=256, layers=4, batch=32, seq=128, dropout=0.0),
    dict(name="llama-h256-L4-b8-s128", model="llama", hidden=256, layers=4, batch=8, seq=128, vocab=8000),
]
CUDA_CONFIGS = [  # MiniLM-sized BERT and a SmolLM2-135M-sized Llama, fp32 and bf16
    dict(name="bert-h384-L6-b32-s128-fp32", model="bert", hidden=384, layers=6, batch=32, seq=128, precision="fp32"),
    dict(name="bert-h384-L6-b32-s128-bf16", model="bert", hidden=384, layers=6, batch=32, seq=128, precision="bf16"),
    dict(name="bert-h384-L6-b32-s128-bf16-ckpt", model="bert", hidden=384, layers=6, batch=32, seq=128,
         precision="bf16", checkpointing=True),
    dict(name="bert-h384-L6-b32-s128-bf16-eager", model="bert", hidden=384, layers=6, batch=32, seq=128,
         precision="bf16", attention="eager"),
    dict(name="llama-h576-L30-b8-s512-bf16", model="llama", hidden=576, layers=30, batch=8, seq=512,
         precision="bf16", vocab=49152, heads=9),
    dict(name="llama-h576-L30-b8-s512-bf16-lora", model="llama", hidden=576, layers=30, batch=8, seq=512,
         precision="bf16", vocab=49152, heads=9, lora=True),
]


def build(spec: dict):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    h, heads = spec["hidden"], spec.get("heads", max(spec["hidden"] // 64, 2))
    attention = spec.get("attention", "sdpa")
    if spec["model"] == "bert":
        drop = spec.get("dropout", 0.1)
        config = BertConfig(vocab_size=spec.get("vocab", BERT_VOCAB), hidden_size=h, num_hidden_layers=spec["layers"],
                            num_attention_heads=heads, intermediate_size=4 * h, max_position_embeddings=512,
                            hidden_dropout_prob=drop, attention_probs_dropout_prob=drop, num_labels=2,
                            attn_implementation=attention)
        model = BertForSequenceClassification(config)
    else:
        config = LlamaConfig(vocab_size=spec["vocab"], hidden_size=h, num_hidden_layers=spec["layers"],
                             num_attention_heads=heads, num_key_value_heads=heads, intermediate_size=int(h * 8 / 3),
                             max_position_embeddings=2048, tie_word_embeddings=True, attn_implementation=attention)
        model = LlamaForCausalLM(config)
    if spec.get("freeze"):
        from tunekit.pipeline.freezing import apply_freeze
        from tunekit.recipe.schema import FreezeConfig

        apply_freeze(model, FreezeConfig(embeddings=True, layers=spec["freeze"]))
    if spec.get("lora"):  # what `train.peft: {method: lora}` builds (tunekit's defaults)
        from tunekit.pipeline.adapters import apply_adapters
        from tunekit.recipe.schema import TrainConfig

        task = "SEQ_CLS" if spec["model"] == "bert" else "CAUSAL_LM"
        model, _, _ = apply_adapters(model, TrainConfig(peft={"method": "lora"}), None, task)
    return model


def dataset(spec: dict, vocab: int):
    import torch

    g = torch.Generator().manual_seed(0)
    rows = []
    # every row as long as the padded batch: the peak case
    for _ in range(spec["batch"] * spec.get("grad_accum", 1) * STEPS):
        ids = torch.randint(5, vocab, (spec["seq"],), generator=g)
        row = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        row["labels"] = ids.clone() if spec["model"] == "llama" else torch.tensor(int(ids[0]) % 2)
        rows.append(row)
    return rows


def measure(spec: dict, device: str) -> dict:
    """Runs in the child process: build, estimate, train STEPS steps, return the peak."""
    import tempfile

    import torch
    from transformers import PrinterCallback, Trainer, default_data_collator

    from tunekit.pipeline import planning
    from tunekit.pipeline.training import training_arguments
    from tunekit.recipe.schema import TrainConfig
    from tunekit.runs import RunDir

    precision = spec.get("precision", "fp32")
    cfg = TrainConfig(batch_size=spec["batch"], grad_accum=spec.get("grad_accum", 1), max_steps=STEPS,
                      precision=precision, eval_every="never", group_by_length=False, logging_steps=1000,
                      gradient_checkpointing=spec.get("checkpointing", False), lr=1e-4)

    def train(tmp: str):
        model = build(spec)
        shape = planning.read_shape(model)
        params = planning.read_params(model, shape.layers)
        knobs = planning.Knobs(spec["batch"], spec["seq"], precision, cfg.gradient_checkpointing, device)
        estimate = planning.estimate_memory(shape, params, knobs)
        # as bench/core.py: dataclasses.replace re-runs TrainingArguments' validation
        args = dataclasses.replace(training_arguments(cfg, RunDir(Path(tmp)), has_validation=False),
                                   save_strategy="no", report_to="none")
        trainer = Trainer(model=model, args=args, train_dataset=dataset(spec, shape.vocab),
                          data_collator=default_data_collator)
        trainer.remove_callback(PrinterCallback)  # no raw log dicts in the table
        trainer.train()
        return estimate, params, shape

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            estimate, params, shape = train(tmp)
            measured = torch.cuda.max_memory_allocated() - base
            free, total = torch.cuda.mem_get_info()
            extra = {"max_reserved": torch.cuda.max_memory_reserved(), "device_used_at_end": total - free}
        else:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                estimate, params, shape = train(tmp)
            events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                            if e.name() == "[memory]")
            live = measured = 0
            for _, nbytes in events:
                live += nbytes
                measured = max(measured, live)
            extra = {"memory_events": len(events)}
    tensors = estimate.total - estimate.overhead  # what the measurement can see
    return {"spec": spec, "device": device, "estimate": {**vars(estimate), "total": estimate.total},
            "estimate_tensors": tensors, "measured": measured, "error": (tensors - measured) / measured,
            "parameters": vars(params), "shape": vars(shape), "seconds": time.perf_counter() - start, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--only", nargs="*", help="run only these configuration names")
    args = parser.parse_args()

    configs = CUDA_CONFIGS if args.device == "cuda" else CPU_CONFIGS
    configs = [c for c in configs if not args.only or c["name"] in args.only]
    # Import the heavy libraries once and fork a fresh process per configuration: each child
    # starts with no tensor allocated, and no child pays the ~10 s of imports again.
    import multiprocessing

    import torch
    import transformers
    import transformers.trainer  # noqa: F401  (the Trainer's own imports, once for all children)

    if any(c.get("lora") for c in configs):
        import peft  # noqa: F401
    fork = multiprocessing.get_context("fork")
    results = []
    started = time.time()
    for spec in configs:
        with fork.Pool(1) as pool:
            results.append(pool.apply(measure, (spec, args.device)))
        r = results[-1]
        print(f"{spec['name']:<34} estimated {r['estimate_tensors'] / 2**20:8.1f} MiB  "
              f"measured {r['measured'] / 2**20:8.1f} MiB  error {100 * r['error']:+6.1f}%  ({r['seconds']:.0f} s)",
              flush=True)
    print_table(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"memory-estimate-{args.device}-{datetime.date.today().isoformat()}.json"
    out.write_text(json.dumps({
        "benchmark": "memory_estimate", "device": args.device, "steps": STEPS,
        "seconds": time.time() - started,
        "environment": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpu_count": os.cpu_count(), "torch": torch.__version__,
                        "transformers": transformers.__version__},
        "results": results}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


def print_table(results: list[dict]) -> None:
    mib = 2 ** 20
    head = ("configuration", "weights", "grads", "optim", "activ.", "estimated", "measured", "error")
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in results:
        e = r["estimate"]
        parts = ("weights", "gradients", "optimizer", "activations")
        cells = [r["spec"]["name"]] + [f"{e[k] / mib:.1f}" for k in parts]
        cells += [f"{r['estimate_tensors'] / mib:.1f}", f"{r['measured'] / mib:.1f}", f"{100 * r['error']:+.1f}%"]
        print("| " + " | ".join(cells) + " |")
    print("\nMiB of tensor memory; error = (estimated - measured) / measured; the estimate's CUDA "
          "context overhead is not in 'estimated'.")


if __name__ == "__main__":
    main()
