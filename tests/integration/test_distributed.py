"""Multi-process runs on the CPU: 2 processes over gloo, launched by tunekit or by the user."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TUNEKIT = str(Path(sys.executable).with_name("tunekit"))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def no_dropout_model(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model without dropout, so one and two processes differ only by float rounding."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return folder


def losses(run_dir: Path) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


def test_two_processes_match_one_at_the_same_global_batch(write_recipe, no_dropout_model, tmp_path):
    # same shuffled order either way: no length grouping, the order depends on (seed, epoch) only
    common = {"model": {"name": str(no_dropout_model)}}
    one = write_recipe("one.yaml", output_dir=str(tmp_path / "one"), **common,
                       train={"batch_size": 16, "group_by_length": False})
    two = write_recipe("two.yaml", output_dir=str(tmp_path / "two"), **common,
                       train={"batch_size": 8, "group_by_length": False})
    single = run(TUNEKIT, "finetune", str(one), "--json", cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    double = run(TUNEKIT, "finetune", str(two), "--nproc", "2", "--json", cwd=tmp_path)
    assert double.returncode == 0, double.stderr
    a, b = json.loads(single.stdout), json.loads(double.stdout)  # one JSON document: rank 0 only

    assert a["train"]["global_step"] == b["train"]["global_step"] == 55  # 168 rows / 16 per step, 5 epochs
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["status"] == "complete"
    # averaged over processes, not summed: the first logged loss is ~ln 2 in both runs
    la, lb = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(la) == len(lb) == 11  # one writer: no duplicated log lines
    assert la[0] == pytest.approx(0.693, abs=0.01)
    assert lb[0] == pytest.approx(la[0], abs=1e-4)
    assert b["train"]["train_loss"] == pytest.approx(a["train"]["train_loss"], abs=0.05)
    assert b["eval"]["accuracy"] >= 0.9 and b["eval"]["n"] == a["eval"]["n"] == 48
    # the outputs are complete and nothing of the launch is left behind
    assert (tmp_path / "two" / "model" / "model.safetensors").is_file()
    assert not list((tmp_path / "two").glob(".model*"))
    assert "rank 1" not in double.stderr and "Traceback" not in double.stderr


def test_user_launched_torchrun_with_fsdp(write_recipe, tmp_path):
    """torchrun started by the user, with FSDP passed through (FSDP2 shards over gloo on CPU)."""
    recipe = write_recipe(train={"epochs": 1, "batch_size": 8, "distributed": {
        "fsdp": ["full_shard", "auto_wrap"], "fsdp_config": {"transformer_layer_cls_to_wrap": ["BertLayer"]}}})
    out = run(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
              "--module", "tunekit", "finetune", str(recipe), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["train"]["global_step"] == 11  # 168 rows / (8 x 2 processes)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["processes"] == 2
    # rank 0 prepared the data once; the other process reused it
    assert len(list((tmp_path / "run" / "data").glob("*_report.json"))) == 2
    # the sharded weights were gathered into one ordinary checkpoint that evaluation loaded
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert result["eval"]["n"] == 48


def test_sigterm_stops_every_process_at_one_step(write_recipe, tmp_path):
    recipe = write_recipe(train={"epochs": 300, "batch_size": 8, "eval_every": "never", "logging_steps": 1})
    proc = subprocess.Popen([TUNEKIT, "finetune", str(recipe), "--nproc", "2"], cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 143, err
    assert err.count("training interrupted by SIGTERM") == 1  # rank 0 speaks for both
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    step = manifest["global_step"]
    saved = tmp_path / "run" / "checkpoints" / f"checkpoint-{step}"
    # one checkpoint for the stop step, with each process's RNG state for an exact resume
    assert (saved / "trainer_state.json").is_file()
    assert {p.name for p in saved.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
