"""Exact resume: a run stopped by SIGTERM and resumed ends with the same weights, and saw the
same batches in the same order, as a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import TrainerCallback

from tunekit.pipeline.preemption import Interrupted
from tunekit.pipeline.checkpoints import last_checkpoint
from tunekit.pipeline.training import run_finetune
from tunekit.recipe import load_recipe
from tunekit.runs import RunDir

STEPS_PER_EPOCH = 11  # 168 training rows, batch 16
TUNEKIT = str(Path(sys.executable).with_name("tunekit"))


class SignalAt(TrainerCallback):
    """Sends the process a real signal once training reaches `step`."""

    def __init__(self, step: int, signum: int = signal.SIGTERM):
        self.step, self.signum = step, signum

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def weights(run: Path, folder: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / folder / "model.safetensors"))


def train(write_recipe, tmp_path, monkeypatch, name: str, callbacks=(), resume=False):
    recipe = load_recipe(str(write_recipe(f"{name}.yaml", output_dir=str(tmp_path / name),
                                          train={"epochs": 3, "keep_best": False, "logging_steps": 1})))
    monkeypatch.setenv("TUNEKIT_TRACE_BATCHES", str(tmp_path / f"{name}.trace"))
    return run_finetune(recipe, resume=resume, callbacks=callbacks)


@pytest.fixture
def uninterrupted(write_recipe, tmp_path, monkeypatch):
    train(write_recipe, tmp_path, monkeypatch, "straight")
    return tmp_path / "straight"


@pytest.mark.parametrize("stop_step", [4, STEPS_PER_EPOCH + 5], ids=["mid-first-epoch", "mid-second-epoch"])
def test_sigterm_then_resume_is_exact(uninterrupted, write_recipe, tmp_path, monkeypatch, stop_step):
    with pytest.raises(Interrupted) as info:
        train(write_recipe, tmp_path, monkeypatch, "stopped", callbacks=[SignalAt(stop_step)])
    assert info.value.exit_code == 143
    run = tmp_path / "stopped"
    # the signal lands during step `stop_step`'s callbacks; the stop comes at the next boundary
    saved = last_checkpoint(RunDir(run))
    assert saved is not None and saved.name in (f"checkpoint-{stop_step}", f"checkpoint-{stop_step + 1}")
    assert not (run / "model").exists()  # no final model from an interrupted run
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and "SIGTERM" in manifest["error"]

    result = train(write_recipe, tmp_path, monkeypatch, "stopped", resume=True)
    assert result.train_metrics["global_step"] == 3 * STEPS_PER_EPOCH

    straight, resumed = weights(uninterrupted, "model"), weights(run, "model")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert (straight[name] == resumed[name]).all(), name  # bit-identical, not merely close
    order = (tmp_path / "straight.trace").read_text().splitlines()
    assert len(order) == 3 * STEPS_PER_EPOCH
    assert (tmp_path / "stopped.trace").read_text().splitlines() == order
    # the resumed run's logs continue the interrupted run's, without repeated steps
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 3 * STEPS_PER_EPOCH + 1))


def test_incomplete_checkpoint_is_skipped(uninterrupted, write_recipe, tmp_path, monkeypatch, capsys):
    """A checkpoint missing its optimizer state (a kill mid-save) is passed over for an older one."""
    run = RunDir(uninterrupted)
    newest = last_checkpoint(run)
    (newest / "optimizer.pt").unlink()
    said = []
    older = last_checkpoint(run, say=said.append)
    assert older is not None and older != newest
    assert said == [f"skipping {newest.name}: missing optimizer.pt"]


def test_cli_sigterm_exits_143_and_resume_finishes(write_recipe, tmp_path):
    """The installed command: SIGTERM mid-run -> checkpoint + exit 143; --resume completes it."""
    recipe = write_recipe(train={"epochs": 400, "keep_best": False, "eval_every": "never"})
    trace = tmp_path / "cli.trace"
    env = {**os.environ, "TUNEKIT_TRACE_BATCHES": str(trace)}
    proc = subprocess.Popen([TUNEKIT, "finetune", str(recipe)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not trace.exists() or len(trace.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "training interrupted by SIGTERM" in err and "--resume" in err
    assert "Traceback" not in err
    saved = last_checkpoint(RunDir(tmp_path / "run"))
    assert saved is not None
    # a plain rerun refuses to clobber the interrupted run
    again = subprocess.run([TUNEKIT, "finetune", str(recipe)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--resume" in again.stderr
