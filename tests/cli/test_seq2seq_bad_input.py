"""Text-to-text mistakes: exit code 2, one error line and one hint, no traceback. They are all
found before training (recipe validation, prepare or tokenize), so no model is trained here."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from tunekit.cli.app import app
from cli_checks import assert_clean_error

runner = CliRunner()
ROWS = [{"source": "the movie was really good and the plot was fun", "target": "good movie"},
        {"source": "the film was dull and the actors were weak", "target": "dull film"}] * 10


@pytest.fixture
def recipe(tmp_path, tiny_model_dir):
    """recipe(rows=..., **sections) -> a summarization recipe on a warm-started tiny BERT2BERT."""
    def write(rows=ROWS, **sections) -> str:
        data = tmp_path / "data.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        body = {"name": "bad", "task": "summarization", "output_dir": str(tmp_path / "run"),
                "model": {"name": str(tiny_model_dir), "decoder": str(tiny_model_dir)},
                "data": {"train": str(data), "split": {"validation": 0.1, "test": 0.1}},
                "tokenize": {"max_length": 32, "max_target_length": 8},
                "eval": {"generation": {"max_new_tokens": 8}}}
        for key, value in sections.items():
            body[key] = {**body.get(key, {}), **value} if isinstance(value, dict) else value
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
        return str(path)
    return write


def test_missing_target_column(recipe):
    result = runner.invoke(app, ["tokenize", recipe(data={"columns": {"target": "summary"}})])
    assert_clean_error(result, "no column 'summary' (data.columns.target)", "it has: source, target")


def test_missing_source_column(recipe):
    result = runner.invoke(app, ["tokenize", recipe(data={"columns": {"source": "document"}})])
    assert_clean_error(result, "no column 'document' (data.columns.source)")


def test_all_targets_empty(recipe):
    result = runner.invoke(app, ["tokenize", recipe(rows=[{**r, "target": " "} for r in ROWS])])
    assert_clean_error(result, "no training rows are left after cleaning", "20 empty_target")


def test_empty_target_without_drop_empty(recipe):
    rows = [*ROWS, {"source": "the plot was fun", "target": ""}]
    result = runner.invoke(app, ["tokenize", recipe(rows=rows, data={"clean": {"drop_empty": False}})])
    assert_clean_error(result, "row 20 has an empty target", "data.clean.drop_empty")


def test_target_longer_than_max_new_tokens(recipe):
    result = runner.invoke(app, ["tokenize", recipe(eval={"generation": {"max_new_tokens": 2}})])
    assert_clean_error(result, "longer than eval.generation.max_new_tokens=2", "could never generate them",
                       "tokenize.max_target_length")


def test_target_over_max_target_length_with_truncation_error(recipe):
    result = runner.invoke(app, ["tokenize", recipe(tokenize={"max_target_length": 2, "truncation": "error"})])
    assert_clean_error(result, "targets are longer than tokenize.max_target_length=2")


def test_missing_max_new_tokens(recipe):
    result = runner.invoke(app, ["validate", recipe(eval={"generation": {"num_beams": 2}})])
    assert_clean_error(result, "eval.generation.max_new_tokens")


def test_encoder_only_model_without_decoder(recipe, tiny_model_dir):
    result = runner.invoke(app, ["tokenize", recipe(model={"decoder": None})])
    assert_clean_error(result, "encoder-only model (bert)", "model.decoder")
