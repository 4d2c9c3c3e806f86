"""tunekit finetune/eval for causal_lm through the installed command, on a tiny Llama: instruction
style packed (full weights, then LoRA) and chat style; eval repeats the numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from causal_lm_tiny import chat_rows, instruction_rows, save_tiny_lm, write_jsonl

TUNEKIT = str(Path(sys.executable).with_name("tunekit"))


def tunekit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([TUNEKIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def recipe(tmp_path: Path, name: str, model: Path, data: dict, **sections) -> Path:
    body = {"name": name, "task": "causal_lm", "output_dir": str(tmp_path / name), "model": {"name": str(model)},
            "data": {"split": {"validation": 0.1, "test": 0.1, "seed": 1}, **data},
            "tokenize": {"max_length": 64},
            "train": {"epochs": 2, "batch_size": 8, "lr": 3e-3, "scheduler": "constant", "seed": 1,
                      "logging_steps": 5},
            "eval": {"generation": {"max_new_tokens": 4}, "samples": 3}}
    for key, value in sections.items():
        body[key] = {**body.get(key, {}), **value}
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def check_run(run: Path, out: subprocess.CompletedProcess, samples=None) -> dict:
    """samples: generations expected (default: every test example)."""
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["task"] == "causal_lm" and metrics["perplexity"] > 1 and metrics["tokens"] > 0
    samples = metrics["n"] if samples is None else samples
    assert metrics["generated"] == samples and 0 <= metrics["capped"] <= samples and metrics["gen_len_mean"] > 0
    rows = [json.loads(line) for line in (run / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == samples and all({"prompt", "generation", "reference"} <= set(r) for r in rows)
    return metrics


def test_instruction_packed_then_lora_and_eval_repeats(tmp_path):
    model = save_tiny_lm(tmp_path / "tiny-lm", chat_template=True)
    data = {"train": str(write_jsonl(tmp_path / "pairs.jsonl", instruction_rows(120)))}
    out = tunekit("finetune", str(recipe(tmp_path, "instr", model, data)), "--json", cwd=tmp_path)
    metrics = check_run(tmp_path / "instr", out, 3)
    tokenize_report = json.loads((tmp_path / "instr" / "data" / "tokenize_report.json").read_text())
    train = tokenize_report["splits"]["train"]
    assert train["packed"] and train["rows"] < train["examples"]  # several examples per row
    assert not tokenize_report["splits"]["test"]["packed"]
    before = json.loads(out.stdout)["eval"]
    assert before["perplexity"] == metrics["perplexity"]

    again = tunekit("eval", str(tmp_path / "instr"), "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    repeated = json.loads((tmp_path / "instr" / "eval" / "metrics.json").read_text())
    for key in ("perplexity", "loss", "tokens", "capped", "gen_len_mean"):
        assert repeated[key] == metrics[key], key

    lora = recipe(tmp_path, "lora", model, data, train={"epochs": 1, "peft": {"method": "lora"}})
    out = tunekit("finetune", str(lora), "--json", cwd=tmp_path)
    check_run(tmp_path / "lora", out, 3)
    adapter = json.loads((tmp_path / "lora" / "model" / "adapter_config.json").read_text())
    assert not adapter["modules_to_save"]  # a language model's head is pretrained: the adapter alone trains


def test_chat_style_with_generation_scores(tmp_path):
    model = save_tiny_lm(tmp_path / "tiny-lm", chat_template=True)
    data = {"train": str(write_jsonl(tmp_path / "chats.jsonl", chat_rows(80))), "style": "chat"}
    path = recipe(tmp_path, "chat", model, data, eval={"metrics": ["perplexity", "rouge1", "chrf"],
                                                      "generation": {"max_new_tokens": 4}, "samples": 2})
    out = tunekit("finetune", str(path), "--json", cwd=tmp_path)
    metrics = check_run(tmp_path / "chat", out)  # ROUGE/chrF named: every test prompt generated
    assert 0 <= metrics["rouge1"] <= 100 and 0 <= metrics["chrf"] <= 100
