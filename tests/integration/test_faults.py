"""Faults a run meets for real: `kill -9` while a checkpoint or the final model is written, a
full disk (a file size limit, RLIMIT_FSIZE) during prepare, tokenize and save, a read-only folder,
torn log lines and a plot that fails. Each leaves the last complete state usable."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_rows, tiny_recipe, write_rows_csv

TUNEKIT = str(Path(sys.executable).with_name("tunekit"))

# Runs tunekit in this interpreter after making one save step kill the process with SIGKILL.
KILL_DRIVER = """
import os, signal, sys
where = sys.argv[1]
if where == "checkpoint":  # the weights of checkpoint 6 are on disk, its optimizer state is not
    import transformers
    original = transformers.Trainer._save_optimizer_and_scheduler
    def killing(self, output_dir):
        if self.state.global_step >= 6:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, output_dir)
    transformers.Trainer._save_optimizer_and_scheduler = killing
else:  # the final model's weights are written into the partial folder, nothing else yet
    import tunekit.pipeline.adapters as adapters
    original = adapters.save_trained
    def killing(*args, **kwargs):
        original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    adapters.save_trained = killing
from tunekit.cli.app import main
sys.argv = ["tunekit", *sys.argv[2:]]
main()
"""


def tunekit(*args: str, limit: int | None = None):
    """`tunekit ARGS` in a subprocess; `limit`: the largest file it may write, in bytes (as a full disk)."""
    def setup():
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return subprocess.run([TUNEKIT, *args], capture_output=True, text=True, timeout=300, preexec_fn=setup)


def killed(where: str, *args: str):
    ran = subprocess.run([sys.executable, "-c", KILL_DRIVER, where, *args], capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == -signal.SIGKILL, ran.stderr
    return ran


def flat(text: str) -> str:
    """The console wraps long lines: compare with every run of whitespace as one space."""
    return " ".join(text.split())


def one_error(stderr: str, *phrases: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and any(line.startswith("hint:") for line in lines), stderr
    assert "Traceback" not in stderr
    for phrase in phrases:
        assert phrase in flat(stderr), (phrase, stderr)


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files tunekit may leave only while it runs."""
    return [str(p) for p in folder.rglob("*") if p.name.endswith((".tmp", ".tmp.png", ".partial", ".old"))
            or ".overwrite" in p.name]


@pytest.fixture
def recipe(tmp_path, tiny_model_dir):
    csv = write_rows_csv(tmp_path / "reviews.csv", make_rows(240))
    return tiny_recipe(tmp_path, tiny_model_dir, csv, train={"epochs": 1, "eval_every": 3, "keep_best": False,
                                                             "save_total_limit": 5})


def test_kill_during_a_checkpoint_then_resume(recipe, tmp_path):
    killed("checkpoint", "finetune", str(recipe))
    run = tmp_path / "run"
    assert not (run / "checkpoints" / "checkpoint-6" / "optimizer.pt").exists()
    resumed = tunekit("finetune", str(recipe), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    err = flat(resumed.stderr)
    assert "skipping checkpoint-6: missing trainer_state.json, optimizer.pt" in err
    assert "resuming from checkpoint-3" in err
    assert "taking over the lock" in err  # the killed holder's pid was still recorded
    assert (run / "model" / "model.safetensors").is_file()


def test_kill_during_the_final_save(recipe, tmp_path):
    killed("model", "finetune", str(recipe))
    run = tmp_path / "run"
    assert not (run / "model").exists() and (run / ".model.partial").is_dir()
    evaluated = tunekit("eval", str(run))
    one_error(evaluated.stderr, "has no trained model")
    resumed = tunekit("finetune", str(recipe), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "an earlier save of the final model was interrupted" in flat(resumed.stderr)
    assert (run / "model" / "model.safetensors").is_file() and not leftovers(tmp_path)


def test_kill_during_an_overwrite_keeps_the_previous_model(recipe, tmp_path):
    assert tunekit("finetune", str(recipe)).returncode == 0
    run = tmp_path / "run"
    before = (run / "model" / "model.safetensors").read_bytes()
    killed("model", "finetune", str(recipe), "--overwrite", "--set", "train.seed=5")
    assert (run / "model" / "model.safetensors").read_bytes() == before
    assert tunekit("eval", str(run)).returncode == 0


@pytest.mark.parametrize("step", ["prepare", "tokenize", "finetune"])
def test_full_disk_is_exit_2_and_leaves_nothing_half_written(tmp_path, tiny_model_dir, step):
    # prepare: a data set far larger than the limit; tokenize: prepared before the limit is set;
    # finetune: data fits, the first checkpoint (weights + optimizer state) does not
    rows = 240 if step == "finetune" else 4000
    csv = write_rows_csv(tmp_path / "reviews.csv", make_rows(rows))
    recipe = tiny_recipe(tmp_path, tiny_model_dir, csv, train={"epochs": 1})
    if step == "tokenize":
        assert tunekit("prepare", str(recipe)).returncode == 0
    ran = tunekit(step, str(recipe), limit=60_000)
    assert ran.returncode == 2, ran.stderr
    one_error(ran.stderr, "no space left")
    run = tmp_path / "run"
    assert not leftovers(tmp_path)
    if step == "prepare":
        assert not (run / "data" / "prepared").exists()
    if step == "tokenize":
        assert not (run / "data" / "tokenized").exists() and (run / "data" / "prepared").is_dir()
    if step == "finetune":
        assert not (run / "model").exists()
        assert not list((run / "checkpoints").glob("checkpoint-*"))  # the torn checkpoint was removed


def read_only(folder: Path) -> list[str]:
    """A command prefix under which `folder` is a read-only filesystem: a read-only tmpfs mounted
    in a private user and mount namespace (works as root too), else (not root) a chmod."""
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True) if shutil.which("unshare") else None
    if probe is not None and probe.returncode == 0:
        return ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o ro tmpfs "{folder}" && exec "$@"', "sh"]
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    pytest.skip("no way to make a read-only folder here: unshare -rm is unavailable and root ignores modes")


def test_read_only_output_folder(tmp_path, tiny_model_dir):
    csv = write_rows_csv(tmp_path / "reviews.csv", make_rows(60))
    locked = tmp_path / "locked"
    locked.mkdir()
    recipe = tiny_recipe(tmp_path, tiny_model_dir, csv, output_dir=str(locked / "run"))
    try:
        ran = subprocess.run([*read_only(locked), TUNEKIT, "prepare", str(recipe)], capture_output=True, text=True,
                             timeout=300)
    finally:
        locked.chmod(0o755)
    assert ran.returncode == 2, ran.stderr
    one_error(ran.stderr, "read-only filesystem" if os.geteuid() == 0 else "permission denied")
    assert list(locked.iterdir()) == []


def test_torn_log_line_and_failing_plot_never_cost_the_model(recipe, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from tunekit.cli.app import app

    runner = CliRunner()
    killed("checkpoint", "finetune", str(recipe))
    log = tmp_path / "run" / "metrics.jsonl"
    with open(log, "a", encoding="utf-8") as fh:
        fh.write('{"step": 4, "loss": 0.6')  # torn by the kill
        fh.write("\nnot json at all\n")
    monkeypatch.setattr("tunekit.pipeline.run_logs.plot_curves",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no fonts")))
    result = runner.invoke(app, ["finetune", str(recipe), "--resume"])
    assert result.exit_code == 0, result.output
    err = flat(result.stderr)
    assert "skipped 2 unreadable line(s)" in err and "no fonts" in err
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == sorted(r["step"] for r in records)
