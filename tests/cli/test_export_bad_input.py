"""tunekit export: each user mistake is exit 2 with one error line and a hint, before any model
loads, and nothing is written. No training here: a model folder is the tiny BERT plus tunekit.json."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunekit.cli.app import app
from cli_checks import assert_clean_error

runner = CliRunner()


@pytest.fixture
def model_folder(tiny_model_dir, tmp_path):
    """model_folder(task) -> a copy of the tiny BERT whose tunekit.json names `task`."""
    def make(task: str = "classification") -> Path:
        folder = tmp_path / f"{task}-model"
        shutil.copytree(tiny_model_dir, folder)
        (folder / "tunekit.json").write_text(json.dumps({"task": task}), encoding="utf-8")
        return folder
    return make


def test_run_without_a_model(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    result = runner.invoke(app, ["export", str(run)])
    assert_clean_error(result, "has no trained model", "tunekit finetune")
    assert list(run.iterdir()) == []


def test_missing_run(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path / "nope")])
    assert_clean_error(result, "not found")


@pytest.mark.parametrize("task", ["summarization", "causal_lm"])
def test_unsupported_task(model_folder, tmp_path, task):
    folder = model_folder(task)
    result = runner.invoke(app, ["export", str(folder), "--out", str(tmp_path / "out")])
    assert_clean_error(result, "ONNX export covers classification and qa", f"a {task} model", "tunekit push")
    assert not (tmp_path / "out").exists()


def test_existing_output_without_overwrite(model_folder, tmp_path):
    folder = model_folder()
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):  # not tunekit's: refused, --overwrite included
        result = runner.invoke(app, ["export", str(folder), "--out", str(out), *extra])
        assert_clean_error(result, "is not empty and is not a tunekit folder", "keep.txt")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (out / ".tunekit-run").write_text("{}")  # an earlier export: replaced only with --overwrite
    result = runner.invoke(app, ["export", str(folder), "--out", str(out)])
    assert_clean_error(result, "already exists", "--overwrite")


def test_default_output_of_a_model_folder_is_a_sibling(model_folder):
    folder = model_folder()
    (folder.parent / f"{folder.name}-onnx").mkdir()
    (folder.parent / f"{folder.name}-onnx" / ".tunekit-run").write_text("{}")  # an earlier export
    result = runner.invoke(app, ["export", str(folder)])
    assert_clean_error(result, f"{folder.name}-onnx already exists")


def test_output_inside_the_model_folder(model_folder):
    folder = model_folder()
    result = runner.invoke(app, ["export", str(folder), "--out", str(folder / "onnx")])
    assert_clean_error(result, "lies inside the model folder")
    assert not (folder / "onnx").exists()


@pytest.mark.parametrize("args, phrase", [
    (["--format", "tflite"], "--format 'tflite' is not an export format"),
    (["--limit", "0"], "--limit 0 checks nothing"),
    (["--atol", "-1"], "--atol -1.0 is not a tolerance"),
])
def test_bad_options(model_folder, tmp_path, args, phrase):
    result = runner.invoke(app, ["export", str(model_folder()), "--out", str(tmp_path / "out"), *args])
    assert_clean_error(result, phrase)
    assert not (tmp_path / "out").exists()


def test_export_help_leaves_heavy_libraries_unloaded():
    heavy = ("torch", "transformers", "datasets", "peft", "onnx", "onnxruntime", "onnxscript")
    code = ("import sys\nfrom tunekit.cli.app import app\n"
            "try:\n    app(['export', '--help'])\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY=' + ','.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--format" in out.stdout and out.stdout.splitlines()[-1] == "HEAVY=", out.stdout
