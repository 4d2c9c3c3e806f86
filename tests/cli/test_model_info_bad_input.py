"""A model folder's tunekit.json (and a run's recipe.resolved.yaml, its fallback) broken or edited
by hand: exit 2 with one error line naming the file and a hint, no traceback, for every command
that reads it (predict, eval --model, push). Nothing here loads a model: the file is read first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_checks import assert_clean_error
from tunekit.cli.app import app

runner = CliRunner()
GOOD = {"task": "classification", "recipe": "tiny", "base_model": "org/base", "tokenize": {"max_length": 32},
        "data": {"columns": {"text": "text", "label": "label"}, "style": "instruction"}, "eval": {"split": "test"},
        "encode_options": {}, "version_2": False}


def model_folder(root: Path, info: str) -> Path:
    folder = root / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "id2label": {"0": "a", "1": "b"}}))
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (folder / "tokenizer.json").write_text("{}")
    (folder / "tunekit.json").write_text(info)
    return folder


def predict(folder: Path):
    return runner.invoke(app, ["predict", str(folder), "a good film"])


BROKEN = [
    ('{"task": "classification", "tokenize": {', "is not valid JSON"),
    ("", "is not valid JSON"),
    ('["classification"]', "must hold a JSON object of model settings, not a list"),
    ('"classification"', "must hold a JSON object of model settings, not a string"),
    (json.dumps({**GOOD, "task": "sentiment"}), "unknown task 'sentiment'"),
    (json.dumps({**GOOD, "task": 5}), "'task' must be a string, not a number"),
    (json.dumps({**GOOD, "tokenize": 5}), "'tokenize' must be a mapping, not a number"),
    (json.dumps({**GOOD, "tokenize": {"max_length": "long"}}), "tokenize.max_length"),
    (json.dumps({**GOOD, "tokenize": {"max_len": 32}}), "tokenize.max_len"),
    (json.dumps({**GOOD, "eval": ["test"]}), "'eval' must be a mapping, not a list"),
    (json.dumps({**GOOD, "data": {"columns": {"txt": "review"}}}), "data.columns.txt"),
    (json.dumps({**GOOD, "data": {"style": 3}}), "'style' must be a string"),
    (json.dumps({**GOOD, "version_2": "yes"}), "'version_2' must be true/false"),
    (json.dumps({**GOOD, "base_model": ["org/base"]}), "'base_model' must be a string"),
    (json.dumps({**GOOD, "encode_options": "fast"}), "'encode_options' must be a mapping"),
]


@pytest.mark.parametrize("text, phrase", BROKEN)
def test_predict_names_the_broken_file(tmp_path, text, phrase):
    folder = model_folder(tmp_path, text)
    result = predict(folder)
    assert_clean_error(result, str(folder / "tunekit.json"), phrase)
    assert "fix or delete that file" in result.stderr


def test_eval_and_push_report_it_the_same_way(tmp_path):
    folder = model_folder(tmp_path, json.dumps({**GOOD, "tokenize": 5}))
    (tmp_path / "data.csv").write_text("text,label\ngood,a\n")
    evaluated = runner.invoke(app, ["eval", "--model", str(folder), "--data", str(tmp_path / "data.csv"),
                                    "--out", str(tmp_path / "scores")])
    assert_clean_error(evaluated, "tunekit.json", "'tokenize' must be a mapping")
    assert not (tmp_path / "scores").exists()
    pushed = runner.invoke(app, ["push", str(folder), "--to", str(tmp_path / "out")])
    assert_clean_error(pushed, "tunekit.json", "'tokenize' must be a mapping")
    assert not (tmp_path / "out").exists()


def test_a_run_directory_names_the_file_too(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    model_folder(run, "[]")
    assert_clean_error(predict(run), str(run / "model" / "tunekit.json"), "not a list")
    (run / "model" / "tunekit.json").write_text(json.dumps(GOOD))  # fixed: read as before
    from tunekit.model_info import find_model

    info = find_model(run)
    assert (info.task, info.tokenize.max_length, info.base_model, info.version_2) == \
        ("classification", 32, "org/base", False)


def test_the_run_recipe_fallback_is_checked_as_well(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (model_folder(run, "{}") / "tunekit.json").unlink()  # a run from before tunekit.json
    (run / "recipe.resolved.yaml").write_text("name: old\ntask: classification\nmodel: {name: org/base}\n"
                                              "tokenize: {max_length: [1, 2]}\n")
    result = predict(run)
    assert_clean_error(result, "recipe.resolved.yaml", "tokenize.max_length")
    assert "restore the run's recipe.resolved.yaml" in result.stderr
    (run / "recipe.resolved.yaml").write_text("name: old\nmodel: [org/base]\n")
    assert_clean_error(predict(run), "recipe.resolved.yaml", "'model' must be a mapping")
    (run / "recipe.resolved.yaml").write_text("name: [unclosed\n")
    assert_clean_error(predict(run), "recipe.resolved.yaml", "is not a readable recipe")
