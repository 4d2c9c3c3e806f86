"""tunekit finetune/eval for extractive QA through the installed command, on the tiny BERT:
the answer is always the number after "plot", which a 1-layer model learns in a few epochs."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from cli_checks import run_in_process

TUNEKIT = str(Path(sys.executable).with_name("tunekit"))
WORDS = ["the", "movie", "film", "was", "actors", "story", "a", "and", "really", "this", "good", "dull"]


def tunekit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([TUNEKIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def write_jsonl(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            number = str(rng.randrange(100, 999))
            words = rng.sample(WORDS, 5) + ["plot", number] + rng.sample(WORDS, 4)
            context = " ".join(words)
            fh.write(json.dumps({"id": f"{seed}-{i}", "context": context, "question": "which plot number",
                                 "answers": {"text": [number], "answer_start": [context.index(f"plot {number}") + 5]}})
                     + "\n")
    return path


def test_qa_trains_evaluates_and_gates(tmp_path, tiny_model_dir):
    recipe = tmp_path / "qa.yaml"
    recipe.write_text(json.dumps({
        "name": "tiny-qa", "task": "qa", "output_dir": str(tmp_path / "run"),
        "model": {"name": str(tiny_model_dir)},
        "data": {"train": str(write_jsonl(tmp_path / "train.jsonl", 240, 1)),
                 "test": str(write_jsonl(tmp_path / "test.jsonl", 40, 2)), "split": {"validation": 0.1}},
        "tokenize": {"max_length": 24, "stride": 8},
        "train": {"epochs": 8, "batch_size": 16, "lr": 5e-3, "scheduler": "constant", "seed": 1},
    }), encoding="utf-8")
    out = tunekit("finetune", str(recipe), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    run = tmp_path / "run"
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["task"] == "qa" and metrics["n"] == 40 and metrics["version_2"] is False
    assert metrics["exact_match"] == result["eval"]["exact_match"]
    assert metrics["exact_match"] >= 80, metrics  # the span head found the number after "plot"
    rows = [json.loads(line) for line in (run / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and all(set(r) == {"id", "question", "prediction", "answers", "score"} for r in rows)
    hits = sum(r["prediction"] in r["answers"] for r in rows)
    assert 100 * hits / 40 == metrics["exact_match"]  # the file and the score agree
    # checkpoints were chosen by validation loss (span decoding runs in eval, not in training)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["task"] == "qa" and manifest["status"] == "complete"

    gate = run_in_process("eval", str(run), "--min", "exact_match=80")
    assert gate.returncode == 0, gate.stderr
    failed = run_in_process("eval", str(run), "--min", "f1=101")
    assert failed.returncode == 3
    unknown = run_in_process("eval", str(run), "--min", "accuracy=0.5")
    assert unknown.returncode == 2 and "accuracy" in unknown.stderr
    low, high = metrics["intervals"]["exact_match"]
    assert low <= metrics["exact_match"] <= high

    # the model folder alone (its tunekit.json says qa and how it was tokenized) on the test file
    info = json.loads((run / "model" / "tunekit.json").read_text())
    assert info["task"] == "qa" and info["tokenize"]["stride"] == 8
    alone = run_in_process("eval", "--model", str(run / "model"), "--data", str(tmp_path / "test.jsonl"),
                    "--out", str(tmp_path / "alone"), "--json")
    assert alone.returncode == 0, alone.stderr
    scored = json.loads(alone.stdout)
    assert scored["task"] == "qa" and scored["n"] == 40
    assert (scored["exact_match"], scored["f1"]) == (metrics["exact_match"], metrics["f1"])


def test_qa_with_a_lora_adapter_trains_and_reloads(tmp_path, tiny_model_dir):
    """The span head (qa_outputs) trains in full beside the adapter, and `eval` reloads both."""
    recipe = tmp_path / "qa-lora.yaml"
    recipe.write_text(json.dumps({
        "name": "tiny-qa-lora", "task": "qa", "output_dir": str(tmp_path / "run"),
        "model": {"name": str(tiny_model_dir)},
        "data": {"train": str(write_jsonl(tmp_path / "train.jsonl", 240, 1)),
                 "test": str(write_jsonl(tmp_path / "test.jsonl", 40, 2)), "split": {"validation": 0.1}},
        "tokenize": {"max_length": 24, "stride": 8},
        "train": {"epochs": 8, "batch_size": 16, "lr": 5e-3, "scheduler": "constant", "seed": 1,
                  "peft": {"method": "lora", "r": 4}},
    }), encoding="utf-8")
    out = tunekit("finetune", str(recipe), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "run"
    adapter = json.loads((run / "model" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "QUESTION_ANS" and "qa_outputs" in adapter["modules_to_save"]
    assert not (run / "model" / "model.safetensors").exists()  # the adapter alone, not full weights
    first = json.loads((run / "eval" / "metrics.json").read_text())
    again = tunekit("eval", str(run), "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["exact_match"] == first["exact_match"]
    assert first["exact_match"] >= 50, first  # better than chance at picking the number
