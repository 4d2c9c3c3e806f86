"""predict and serve on bad input: exit code 2, one error line and a hint, no traceback, and no
model loaded (inputs are checked first, so the fake model folders here hold no weights)."""

import json
import socket

from typer.testing import CliRunner

from cli_checks import assert_clean_error
from tunekit.cli.app import app

runner = CliRunner()


def fake_model(tmp_path, task: str = "classification", **payload):
    """A model folder as finetune writes it, minus the weights (never loaded by these tests)."""
    folder = tmp_path / "run" / "model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "tunekit.json").write_text(json.dumps({"task": task, **payload}))
    return folder.parent


def test_unknown_run(tmp_path):
    result = runner.invoke(app, ["predict", str(tmp_path / "nope"), "some text"])
    assert_clean_error(result, "not found", "nope")


def test_run_without_model(tmp_path):
    (tmp_path / "half").mkdir()
    result = runner.invoke(app, ["predict", str(tmp_path / "half"), "some text"])
    assert_clean_error(result, "has no trained model")


def test_no_input(tmp_path):
    result = runner.invoke(app, ["predict", str(fake_model(tmp_path))])
    assert_clean_error(result, "no input given")


def test_malformed_line_names_its_number(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"text": "fine"}\n\n{"text": "also fine"}\n{"text": oops}\n')
    result = runner.invoke(app, ["predict", str(fake_model(tmp_path)), "--file", str(data)])
    assert_clean_error(result, "line 4", "not valid JSON")


def test_line_that_is_not_an_object(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"text": "fine"}\n["a", "list"]\n')
    result = runner.invoke(app, ["predict", str(fake_model(tmp_path)), "--file", str(data)])
    assert_clean_error(result, "line 2", "expected a JSON object")


def test_line_missing_the_field(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"txt": "typo"}\n')
    result = runner.invoke(app, ["predict", str(fake_model(tmp_path)), "--file", str(data)])
    assert_clean_error(result, "line 1", "text: Field required")


def test_blank_text(tmp_path):
    result = runner.invoke(app, ["predict", str(fake_model(tmp_path)), "   "])
    assert_clean_error(result, "must not be empty")


def test_missing_input_file(tmp_path):
    result = runner.invoke(app, ["predict", str(fake_model(tmp_path)), "--file", str(tmp_path / "none.jsonl")])
    assert_clean_error(result, "input file not found")


def test_out_is_not_clobbered(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"text": "fine"}\n')
    out = tmp_path / "out.jsonl"
    out.write_text("keep me\n")
    result = runner.invoke(app, ["predict", str(fake_model(tmp_path)), "--file", str(data), "--out", str(out)])
    assert_clean_error(result, "already exists", "--overwrite")
    assert out.read_text() == "keep me\n"


def test_out_needs_file(tmp_path):
    result = runner.invoke(app, ["predict", str(fake_model(tmp_path)), "text", "--out", str(tmp_path / "o.jsonl")])
    assert_clean_error(result, "--out needs --file")


def test_qa_needs_question(tmp_path):
    run = fake_model(tmp_path, "qa")
    result = runner.invoke(app, ["predict", str(run), "--context", "a passage"])
    assert_clean_error(result, "--question")


def test_question_on_a_classifier(tmp_path):
    result = runner.invoke(app, ["predict", str(fake_model(tmp_path)), "--question", "who?", "--context", "x"])
    assert_clean_error(result, "are for qa models")


def test_qa_file_line_missing_context(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"question": "who?"}\n')
    result = runner.invoke(app, ["predict", str(fake_model(tmp_path, "qa")), "--file", str(data)])
    assert_clean_error(result, "line 1", "context: Field required")


def test_chat_messages_need_one_of_prompt_or_messages(tmp_path):
    run = fake_model(tmp_path, "causal_lm", data={"style": "chat"})
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}) + "\n")
    result = runner.invoke(app, ["predict", str(run), "--file", str(data)])
    assert_clean_error(result, "line 1", "either prompt or messages")


def test_serve_unknown_run(tmp_path):
    result = runner.invoke(app, ["serve", str(tmp_path / "nope")])
    assert_clean_error(result, "not found")


def test_serve_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["serve", str(fake_model(tmp_path)), "--port", str(port)])
    assert_clean_error(result, f"cannot listen on 127.0.0.1:{port}", "--port")


def test_serve_generative_model_without_length(tmp_path):
    result = runner.invoke(app, ["serve", str(fake_model(tmp_path, "translation")), "--port", "0"])
    assert_clean_error(result, "max_new_tokens", "--max-new-tokens")


def test_help_leaves_heavy_libraries_unloaded():
    import subprocess
    import sys

    for command in ("predict", "serve"):
        code = ("import sys\nfrom tunekit.cli.app import app\n"
                f"try:\n    app(['{command}', '--help'])\nexcept SystemExit:\n    pass\n"
                "print('HEAVY=' + ','.join(m for m in ('torch', 'transformers', 'fastapi', 'uvicorn', 'peft') "
                "if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert "HEAVY=\n" in out.stdout, (command, out.stdout[-300:])


def test_predict_generative_model_without_length(tmp_path):
    result = runner.invoke(app, ["predict", str(fake_model(tmp_path, "summarization")), "a long document"])
    assert_clean_error(result, "max_new_tokens", "--max-new-tokens")
