"""Run folders: tunekit writes only into folders it made, one writer at a time, and an
--overwrite keeps the previous run whole until the new one is saved."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_checks import assert_clean_error
from tunekit.cli.app import app
from tunekit.ownership import LOCK_FILE, MARKER

runner = CliRunner()


def tree_hash(folder: Path) -> str:
    """Names and bytes of every file under `folder` (what 'untouched' means)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def user_folder(root: Path) -> Path:
    folder = root / "mine"
    (folder / "eval").mkdir(parents=True)
    (folder / "eval" / "notes.txt").write_text("my own notes\n")
    (folder / "model").mkdir()
    (folder / "model" / "weights.bin").write_bytes(b"\x00\x01")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """One tiny trained run (read-only for the tests that use it)."""
    from conftest import make_rows, tiny_recipe, write_rows_csv

    root = tmp_path_factory.mktemp("trained")
    csv = write_rows_csv(root / "reviews.csv", make_rows(240))
    recipe = tiny_recipe(root, tiny_model_dir, csv, train={"epochs": 1})
    result = runner.invoke(app, ["finetune", str(recipe)])
    assert result.exit_code == 0, result.output
    return root / "run", recipe


def test_finetune_refuses_a_foreign_folder_even_with_overwrite(write_recipe, tmp_path):
    mine = user_folder(tmp_path)
    before = tree_hash(mine)
    for extra in ([], ["--overwrite"]):
        result = runner.invoke(app, ["finetune", str(write_recipe()), "--set", f"output_dir={mine}", *extra])
        assert_clean_error(result, "is not empty and is not a tunekit folder", "eval/", "model/")
    assert tree_hash(mine) == before


@pytest.mark.parametrize("value, phrase", [("/", "filesystem root"), (".", "working directory"),
                                           ('""', "output_dir is empty"), ("~", "home folder")])
def test_reserved_output_dirs_are_refused(write_recipe, value, phrase, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    path = write_recipe()
    text = path.read_text().replace(f"output_dir: {tmp_path / 'run'}", f"output_dir: {value if value != '~' else '~/'}")
    path.write_text(text)
    result = runner.invoke(app, ["prepare", str(path)])
    assert_clean_error(result, phrase)


def test_output_dir_holding_the_data_or_a_file_in_the_way(write_recipe, tmp_path, sentiment_csv):
    result = runner.invoke(app, ["prepare", str(write_recipe()), "--set", f"output_dir={sentiment_csv.parent}"])
    assert_clean_error(result, "an input of this run")
    (tmp_path / "afile").write_text("x")
    result = runner.invoke(app, ["prepare", str(write_recipe()), "--set", f"output_dir={tmp_path / 'afile'}"])
    assert_clean_error(result, "is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "x"


def test_tilde_output_dir_is_the_home_folder(write_recipe, tmp_path, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    result = runner.invoke(app, ["prepare", str(write_recipe()), "--set", "output_dir=~/runs/x"])
    assert result.exit_code == 0, result.output
    assert (home / "runs" / "x" / MARKER).is_file() and (home / "runs" / "x" / "data" / "prepared").is_dir()
    assert not (work / "~").exists()


def test_a_run_is_marked_first_and_an_empty_folder_is_taken(write_recipe, tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["prepare", str(write_recipe()), "--set", f"output_dir={tmp_path / 'empty'}"])
    assert result.exit_code == 0, result.output
    marker = json.loads((tmp_path / "empty" / MARKER).read_text())
    assert marker["kind"] == "run" and len(marker["id"]) == 32


def test_a_failed_first_command_leaves_no_folder(write_recipe, tmp_path):
    path = write_recipe(data={"train": str(tmp_path / "missing.csv")})
    result = runner.invoke(app, ["prepare", str(path)])
    assert_clean_error(result, "data file not found")
    assert not (tmp_path / "run").exists()


LOCK_HOLDER = """
import fcntl, json, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps({"pid": os.getpid(), "command": "tunekit finetune other.yaml"}).encode())
print("locked", flush=True)
time.sleep(60)
"""


def test_second_writer_is_refused_and_a_dead_holders_lock_is_taken_over(write_recipe, tmp_path):
    path = write_recipe()
    assert runner.invoke(app, ["prepare", str(path)]).exit_code == 0
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(run / LOCK_FILE)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = runner.invoke(app, ["tokenize", str(path)])
        assert_clean_error(result, "is being written by another tunekit process",
                           f"pid {holder.pid}", "tunekit finetune other.yaml")
        assert not (run / "data" / "tokenized").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: its pid is still in the file, the kernel freed the lock
    result = runner.invoke(app, ["tokenize", str(path)])
    assert result.exit_code == 0, result.output
    assert "taking over the lock" in result.stderr and f"pid {holder.pid}" in result.stderr
    assert (run / LOCK_FILE).read_text() == ""  # released cleanly this time


def test_diverged_overwrite_keeps_the_previous_run(write_recipe, tmp_path):
    path = write_recipe(train={"epochs": 1})
    assert runner.invoke(app, ["finetune", str(path)]).exit_code == 0
    run = tmp_path / "run"
    before = tree_hash(run / "model"), (run / "manifest.json").read_bytes(), tree_hash(run / "eval")
    result = runner.invoke(app, ["finetune", str(path), "--overwrite", "--set", "train.lr=1e30"])
    assert_clean_error(result, "training diverged", "the previous run", "is unchanged")
    assert (tree_hash(run / "model"), (run / "manifest.json").read_bytes(), tree_hash(run / "eval")) == before
    assert not any(p.name.startswith(".run.") for p in tmp_path.iterdir())  # no staging left behind
    assert runner.invoke(app, ["eval", str(run)]).exit_code == 0  # still usable

    result = runner.invoke(app, ["finetune", str(path), "--overwrite", "--set", "train.seed=7"])
    assert result.exit_code == 0, result.output
    assert tree_hash(run / "model") != before[0]
    assert json.loads((run / "manifest.json").read_text())["seed"] == 7
    assert not any(p.name.startswith(".run.") for p in tmp_path.iterdir())
    assert ".run.overwrite" not in (run / "manifest.json").read_text()  # no staging path recorded


def test_eval_model_without_out_never_touches_an_eval_folder(trained, tmp_path, monkeypatch, sentiment_csv):
    run, _ = trained
    monkeypatch.chdir(tmp_path)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "mine.txt").write_text("keep me")
    result = runner.invoke(app, ["eval", "--model", str(run / "model"), "--data", str(sentiment_csv)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "eval" / "mine.txt").read_text() == "keep me"
    [made] = tmp_path.glob("tunekit-eval-*")
    assert (made / "metrics.json").is_file() and f"results in {made}" in result.stderr


def test_eval_out_refuses_the_run_and_foreign_folders(trained, tmp_path, sentiment_csv):
    run, _ = trained
    mine = user_folder(tmp_path)
    before = tree_hash(mine), tree_hash(run)
    for out, phrase in ((run, "is the run"), (run.parent, "a parent of"), (mine, "not a tunekit folder")):
        result = runner.invoke(app, ["eval", "--model", str(run / "model"), "--data", str(sentiment_csv),
                                     "--out", str(out)])
        assert_clean_error(result, phrase)
    assert (tree_hash(mine), tree_hash(run)) == before


@pytest.mark.parametrize("command", ["export", "merge", "push"])
def test_outputs_never_replace_the_run_or_cwd(trained, tmp_path, monkeypatch, command):
    run, _ = trained
    monkeypatch.chdir(tmp_path)
    before = tree_hash(run)
    flag = "--to" if command == "push" else "--out"
    for out in (str(run), ".", str(run / "model")):
        result = runner.invoke(app, [command, str(run), flag, out, "--overwrite"])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
    assert tree_hash(run) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no stray temporary folder


def test_predict_out_must_be_a_file_outside_the_model(trained, tmp_path):
    run, _ = trained
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "good movie"}\n')
    for out, phrase in ((tmp_path, "is a folder"), (run / "model" / "p.jsonl", "inside the model folder")):
        result = runner.invoke(app, ["predict", str(run), "--file", str(inputs), "--out", str(out)])
        assert_clean_error(result, phrase)


def test_interrupted_overwrite_keeps_the_previous_run_and_resumes(write_recipe, tmp_path):
    """SIGTERM during an --overwrite: the old run stays as it was; --overwrite --resume finishes
    the new one from its checkpoint and only then swaps it in."""
    import signal

    from transformers import TrainerCallback

    from tunekit.pipeline.preemption import Interrupted
    from tunekit.pipeline.training import run_finetune
    from tunekit.recipe import load_recipe

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 4:
                os.kill(os.getpid(), signal.SIGTERM)

    path = write_recipe(train={"epochs": 1, "eval_every": 2, "keep_best": False})
    run = tmp_path / "run"
    run_finetune(load_recipe(path))
    before = tree_hash(run)
    new = load_recipe(path, ["train.seed=9"])
    with pytest.raises(Interrupted) as info:
        run_finetune(new, overwrite=True, callbacks=[StopAt()])
    assert "--overwrite --resume" in info.value.hint
    assert tree_hash(run) == before  # the previous run, byte for byte
    assert list((tmp_path / ".run.overwrite" / "checkpoints").glob("checkpoint-*"))  # resumable

    result = run_finetune(new, overwrite=True, resume=True)
    assert result.run.root == run and result.train_metrics["global_step"] == 11
    assert json.loads((run / "manifest.json").read_text())["seed"] == 9
    assert not (tmp_path / ".run.overwrite").exists()


def test_eval_out_may_be_the_runs_own_eval_folder_but_no_other_part(trained):
    run, _ = trained
    result = runner.invoke(app, ["eval", str(run), "--out", str(run / "eval")])
    assert result.exit_code == 0, result.output
    before = tree_hash(run / "data")
    result = runner.invoke(app, ["eval", str(run), "--out", str(run / "data")])
    assert_clean_error(result, "is not a tunekit folder")
    assert tree_hash(run / "data") == before
