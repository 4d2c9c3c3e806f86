"""causal_lm data mistakes through the CLI: exit 2, one error line and a hint, no traceback."""

from __future__ import annotations

import json

import pytest
from causal_lm_tiny import chat_rows, instruction_rows, save_tiny_lm, write_jsonl
from typer.testing import CliRunner

from tunekit.cli.app import app
from cli_checks import assert_clean_error

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


def recipe(tmp_path, tiny_lm, rows, style="instruction", **tokenize):
    body = {"name": "bad", "task": "causal_lm", "output_dir": str(tmp_path / "run"), "model": {"name": str(tiny_lm)},
            "data": {"train": str(write_jsonl(tmp_path / "data.jsonl", rows)), "style": style,
                     "split": {"validation": 0.0, "test": 0.2, "seed": 1}},
            "tokenize": {"max_length": 64, **tokenize}, "train": {"max_steps": 1, "batch_size": 4},
            "eval": {"generation": {"max_new_tokens": 4}}}
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def test_messages_that_are_not_a_chat(tmp_path, tiny_lm):
    rows = chat_rows(10)
    rows[3] = {"messages": [{"speaker": "user", "text": "hi"}]}
    result = runner.invoke(app, ["prepare", str(recipe(tmp_path, tiny_lm, rows, "chat"))])
    assert_clean_error(result, "row 3", "not {role: str, content: str}")
    assert not (tmp_path / "run" / "data" / "prepared").exists()


def test_chat_without_assistant_turn(tmp_path, tiny_lm):
    rows = chat_rows(10)
    rows[5] = {"messages": [{"role": "user", "content": "hello"}]}
    result = runner.invoke(app, ["finetune", str(recipe(tmp_path, tiny_lm, rows, "chat"))])
    assert_clean_error(result, "row 5", "no assistant turn")


def test_only_empty_responses(tmp_path, tiny_lm):
    rows = [{"prompt": r["prompt"], "response": ""} for r in instruction_rows(10)]
    result = runner.invoke(app, ["prepare", str(recipe(tmp_path, tiny_lm, rows))])
    assert_clean_error(result, "no training rows are left", "10 empty_response")


def test_too_long_under_truncation_error(tmp_path, tiny_lm):
    rows = instruction_rows(10)
    rows[7]["response"] = "red " * 80
    result = runner.invoke(app, ["tokenize", str(recipe(tmp_path, tiny_lm, rows, truncation="error"))])
    assert_clean_error(result, "row", "more than tokenize.max_length=64")


def test_wrong_prompt_column(tmp_path, tiny_lm):
    result = runner.invoke(app, ["prepare", str(recipe(tmp_path, tiny_lm, [{"question": "a", "answer": "b"}]))])
    assert_clean_error(result, "no column 'prompt'", "data.columns.prompt")
