"""Hostile or odd input through the CLI (issue 13): each is exit code 2 with one `error:` line and
a `hint:` line, no traceback, and none hangs: YAML alias bombs, binary recipes, empty paths,
non-finite numbers, data paths that are pipes or sockets, JSON errors, YAML 1.1 booleans,
max_length above the model's positions, and a --junit path that is a folder."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

from cli_checks import assert_clean_error
from tunekit.cli.app import app

runner = CliRunner()

BOMB = "\n".join(["name: tiny", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
                 + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
                 + ["output_dir: *a9", ""])


def validate(path: Path, *args: str):
    return runner.invoke(app, ["validate", str(path), *args])


def spliced(recipe: Path, text: str) -> Path:
    """The valid recipe extended by `text` (YAML): its keys replace the recipe's (through
    `extends:`, since a key written twice in one file is an error)."""
    base = recipe.with_name("base-" + recipe.name)
    base.write_text(recipe.read_text(encoding="utf-8"), encoding="utf-8")
    recipe.write_text(f"extends: {base.name}\n" + text, encoding="utf-8")
    return recipe


# ---- 1. alias bombs and recursive aliases ----------------------------------------------------

GUARDED = """
import json, resource, sys, time, tracemalloc
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a regression fails, it does not swap
from typer.testing import CliRunner
from tunekit.cli.app import app
runner = CliRunner()
runner.invoke(app, ["validate", "/nonexistent.yaml"])  # imports done before timing
tracemalloc.start()
start = time.perf_counter()
result = runner.invoke(app, ["validate", *sys.argv[1:]])
print(json.dumps({"exit_code": result.exit_code, "stderr": result.stderr, "output": result.output,
                  "seconds": time.perf_counter() - start, "peak": tracemalloc.get_traced_memory()[1]}))
"""


def guarded_validate(*args: str) -> SimpleNamespace:
    """`tunekit validate ARGS` in a subprocess with a time and memory limit (an alias bomb that gets
    through would otherwise take the test run down with it), timed in-process there."""
    proc = subprocess.run([sys.executable, "-c", GUARDED, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TUNEKIT_DEBUG": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return SimpleNamespace(**json.loads(proc.stdout.strip().splitlines()[-1]))


def test_alias_bomb_is_refused_fast_and_small(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB, encoding="utf-8")
    assert len(BOMB) < 1024
    result = guarded_validate(str(path))
    assert_clean_error(result, "aliases expand", str(path))
    assert result.seconds < 1.0 and result.peak < 20_000_000, (result.seconds, result.peak)


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "model: &m {name: x, inner: *m}\n", "name: &n [[*n]]\n"])
def test_recursive_alias_is_refused(tmp_path, text):
    path = tmp_path / "loop.yaml"
    path.write_text(text, encoding="utf-8")
    assert_clean_error(validate(path), "recursive alias")


def test_alias_bomb_in_set_is_refused(write_recipe):
    text = "[&a0 [x, x, x, x, x, x, x, x, x, x], " + ", ".join(
        f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)) + "]"  # 10^9 values
    result = guarded_validate(str(write_recipe()), "--set", f"model.config={text}")
    assert_clean_error(result, "aliases expand", "--set model.config")
    assert result.seconds < 1.0


def test_anchors_merge_keys_and_extends_still_work(tmp_path, write_recipe):
    write_recipe("base.yaml")
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\n"
                     "train: {epochs: &two 2, freeze: {layers: *two}}\n"
                     "tokenize: {<<: &tok {max_length: 16, truncation: drop}, stride: 8}\n"
                     "eval: {metrics: &m [accuracy], split: validation}\n", encoding="utf-8")
    result = validate(child, "--print")
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.stdout.split("ok:")[0])
    assert resolved["train"]["epochs"] == 2 and resolved["train"]["freeze"]["layers"] == 2
    assert resolved["tokenize"]["max_length"] == 16 and resolved["tokenize"]["truncation"] == "drop"
    assert resolved["name"] == "tiny" and resolved["train"]["batch_size"] == 16  # from base.yaml


# ---- 2. binary and non-UTF-8 recipes ---------------------------------------------------------

@pytest.mark.parametrize("content", [
    random.Random(0).randbytes(2048),
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01",
    b"name: tiny\x00\x00\x00\n",
    "name: caf\u00e9\n".encode("latin-1"),
    b"name: tiny\x07\n",
], ids=["random", "png", "nul", "latin1", "control"])
def test_binary_or_non_utf8_recipe(tmp_path, content):
    path = tmp_path / "recipe.yaml"
    path.write_bytes(content)
    assert_clean_error(validate(path), "not a text/YAML file")


# ---- 3. empty paths --------------------------------------------------------------------------

@pytest.mark.parametrize("data", [{"train": ""}, {"train": ["  "]}, {"test": [{"path": ""}]}])
def test_empty_data_path(write_recipe, data):
    assert_clean_error(validate(write_recipe(data=data)), "empty path", "data.")


def test_empty_model_name(write_recipe):
    assert_clean_error(validate(write_recipe(), "--set", "model.name="), "model.name", "empty path")


# ---- 4. non-finite numbers -------------------------------------------------------------------

@pytest.mark.parametrize("text", ["train: {lr: .nan}\n", "eval: {generation: {length_penalty: -.inf}}\n",
                                  "data: {labels: {from_score: {a: [-.inf, 0], b: [1, .inf]}}}\n",
                                  "eval: {null_threshold: nan}\n", "model: {config: {x: .NaN}}\n"])
def test_non_finite_number_in_recipe(write_recipe, text):
    assert_clean_error(validate(spliced(write_recipe(), text)), "not a finite number")


@pytest.mark.parametrize("item", ["train.lr=nan", "eval.null_threshold=-inf", "train.weight_decay=.inf",
                                  "eval.generation.length_penalty=Infinity"])
def test_non_finite_number_in_set(write_recipe, item):
    assert_clean_error(validate(write_recipe(), "--set", item), "not a finite number", "--set")


@pytest.mark.parametrize("flag", [["--min", "accuracy=nan"], ["--max", "loss=inf"], ["--max-drop", "accuracy=nan"],
                                  ["--min", "f1_macro=-Infinity"]])
def test_non_finite_gate(tmp_path, flag):
    result = runner.invoke(app, ["eval", str(tmp_path / "run"), *flag, "--baseline", str(tmp_path / "m.json")])
    assert_clean_error(result, "not a finite number", flag[0])


# ---- 5. data paths that are not files or folders ---------------------------------------------

def tunekit(*args: str, cwd: Path) -> SimpleNamespace:
    """The CLI in a subprocess with a timeout, so a read that blocks fails the test, not the suite."""
    proc = subprocess.run([sys.executable, "-m", "tunekit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "TUNEKIT_DEBUG": ""})
    return SimpleNamespace(exit_code=proc.returncode, output=proc.stdout + proc.stderr, stderr=proc.stderr)


@pytest.mark.parametrize("reference", ["file", "glob", "list"])
def test_fifo_is_refused_without_reading(write_recipe, tmp_path, reference):
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    if reference == "file":
        train = str(fifo)
    elif reference == "list":
        train = [str(fifo)]
    else:  # a glob whose only match is a pipe: no file matches
        (tmp_path / "data").mkdir()
        os.mkfifo(tmp_path / "data" / "x.csv")
        train = str(tmp_path / "data" / "*.csv")
    result = tunekit("prepare", str(write_recipe(data={"train": train})), cwd=tmp_path)
    assert_clean_error(result, "no files match" if "*" in train else "named pipe")


def test_socket_is_refused(write_recipe, tmp_path):
    path = tmp_path / "s.csv"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        result = runner.invoke(app, ["prepare", str(write_recipe(data={"train": str(path)}))])
    finally:
        server.close()
    assert_clean_error(result, "a socket", "s.csv")


# ---- 6. JSON errors name the line ------------------------------------------------------------

@pytest.mark.parametrize("name", ["bad.jsonl", "bad.json", "bad.jsonl.gz"])
def test_json_lines_error_names_file_and_line(write_recipe, tmp_path, name):
    import gzip

    text = ('{"text": "good film 1", "label": "positive"}\n{"text": "bad film 2", "label": "negative"}\n'
            '{"text": "broken, "label": "positive"}\n{"text": "fine 4", "label": "negative"}\n')
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    result = runner.invoke(app, ["prepare", str(write_recipe(data={"train": str(path)}))])
    assert_clean_error(result, name, "line 3")


def test_json_document_error_names_line(write_recipe, tmp_path):
    path = tmp_path / "doc.json"
    path.write_text('[\n {"text": "a", "label": "x"},\n {"text": "b", "label": "y"},,\n]\n', encoding="utf-8")
    result = runner.invoke(app, ["prepare", str(write_recipe(data={"train": str(path)}))])
    assert_clean_error(result, "doc.json", "line 3")


# ---- 7. YAML 1.1 booleans --------------------------------------------------------------------

def test_unquoted_off_in_an_enum_means_off(write_recipe):
    path = spliced(write_recipe(), "data:\n  train: x.csv\n  quality: {near_duplicates: {within: off, across: off}}\n")
    result = validate(path, "--print", "--set", "data.quality.label_conflicts=drop")
    assert result.exit_code == 0, result.output
    quality = yaml.safe_load(result.stdout.split("ok:")[0])["data"]["quality"]
    assert quality["near_duplicates"] == {**quality["near_duplicates"], "within": "off", "across": "off"}


def test_yaml_word_where_no_word_fits_names_what_was_written(write_recipe):
    result = validate(spliced(write_recipe(), "tokenize: {truncation: off}\ntrain: {eval_every: yes}\n"))
    assert_clean_error(result, "tokenize.truncation", "(got 'off')", "train.eval_every", "(got 'yes')")


# ---- 8. tokenize.max_length above the model's positions --------------------------------------

def test_max_length_above_model_positions(write_recipe, tmp_path):
    result = runner.invoke(app, ["tokenize", str(write_recipe(tokenize={"max_length": 100}))])
    assert_clean_error(result, "tokenize.max_length (100)", "64 positions")
    assert not (tmp_path / "run" / "data" / "tokenized").exists()


# ---- 9. --junit is a folder ------------------------------------------------------------------

def test_junit_folder_is_refused_before_scoring(tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path / "no-run"), "--min", "accuracy=0.5", "--junit", str(tmp_path)])
    assert_clean_error(result, "--junit", "is a folder")
