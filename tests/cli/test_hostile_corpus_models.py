"""Hostile-input corpus, part 2: commands on a trained run (eval, predict, export, merge, push,
serve, and finetune/prepare on an existing run). One tiny run is trained once for the module and
is never changed by a case (each case hashes it before and after). Rows as in part 1; the checks
are in tests/corpus_checks.py.

    python tests/cli/test_hostile_corpus_models.py --list     # id<TAB>exit, one case a line
"""

from __future__ import annotations

if __name__ == "__main__":  # run as a script: tests/ holds corpus_checks and conftest
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json

import pytest

from corpus_checks import Case, Ctx, check_unique, listing, run_case

R = "{tmp}/recipe.yaml"
EV = "{tmp}/ev"  # a new eval output folder for cases that may get as far as scoring
CSV = "{tmp}/reviews.csv"
HF_TOKEN_SHAPE = "hf_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3"  # the shape of a Hub token, not a real one


def trained_recipe(ctx: Ctx, **sections) -> None:
    """The shared run's own recipe (output_dir: the run), with sections merged in."""
    import yaml

    data = yaml.safe_load((ctx.run.parent / "recipe.yaml").read_text(encoding="utf-8"))
    for key, value in sections.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    ctx.write("recipe.yaml", yaml.safe_dump(data, sort_keys=False))


def tunekit_json(content: str):
    def setup(ctx: Ctx) -> None:
        (ctx.copy_run("copy") / "model" / "tunekit.json").write_text(content, encoding="utf-8")
    return setup


def model_file(name: str, edit):
    """A copy of the run whose model/NAME is edited: edit(json dict) for .json files, else bytes to write."""
    def setup(ctx: Ctx) -> None:
        path = ctx.copy_run("copy") / "model" / name
        if name.endswith(".json") and path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            edit(data, ctx)
            path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        else:
            path.write_bytes(edit)
    return setup


def home_path_in_config(data: dict, ctx: Ctx) -> None:
    (ctx.tmp / "home" / "private").mkdir(parents=True)
    ctx.monkeypatch.setenv("HOME", str(ctx.tmp / "home"))
    data["source_folder"] = str(ctx.tmp / "home" / "private" / "tokenizer")


def existing_path_in_config(data: dict, ctx: Ctx) -> None:
    """A path of this machine outside home, the run and the model (an existing folder)."""
    (ctx.tmp / "elsewhere").mkdir()
    data["notes"] = {"made_from": [str(ctx.tmp / "elsewhere")]}


def symlinked_vocab(ctx: Ctx) -> None:
    import os

    copy = ctx.copy_run("copy")
    os.symlink(ctx.tmp / "sentinel" / "README.md", copy / "model" / "vocab.txt")


def inputs(text: str, name: str = "in.jsonl"):
    return lambda ctx: ctx.write(name, text)


def foreign_model_folder(ctx: Ctx) -> None:
    """A user's folder holding a copy of the model and a file of their own (no tunekit marker)."""
    import shutil

    shutil.copytree(ctx.run / "model", ctx.tmp / "f" / "model")
    ctx.write("f/notes.txt", "mine")


def adapter_copy(ctx: Ctx) -> None:
    """A copy of the run whose model looks like an adapter (what merge checks first)."""
    ctx.copy_run("copy")
    ctx.write("copy/model/adapter_config.json", "{}")


def foreign_adapter_folder(ctx: Ctx) -> None:
    foreign_model_folder(ctx)
    ctx.write("f/model/adapter_config.json", "{}")


def baseline(task: str):
    return lambda ctx: ctx.write("old/metrics.json", json.dumps({"task": task, "rouge1": 30.0, "accuracy": 0.9}))


CASES = check_unique([
    # -- finetune / prepare on the trained run -----------------------------------------------------
    Case("finetune-existing-run-without-overwrite", trained_recipe, ("finetune", R), 2,
         "already holds a training run"),
    Case("finetune-resume-with-changed-data", trained_recipe, ("finetune", R, "--resume", "--set",
                                                               "data.split.seed=7"), 2,
         "differ from the ones it was trained on"),
    Case("prepare-changed-data-on-trained-run", trained_recipe, ("prepare", R, "--set", "data.split.seed=7"), 2,
         "differ from the ones it was trained on"),
    # -- eval: arguments, checked before any model loads ---------------------------------------------
    Case("eval-missing-run", None, ("eval", "{tmp}/absent"), 2, "run directory not found"),
    Case("eval-no-arguments", None, ("eval",), 2, "give either a run directory, or --model with --data"),
    Case("eval-model-without-data", None, ("eval", "--model", "{run}/model"), 2, "--model with --data"),
    Case("eval-unknown-gate-metric", None, ("eval", "{run}", "--min", "acuracy=0.5"), 2,
         "unknown metric 'acuracy'"),
    Case("eval-min-nan", None, ("eval", "{run}", "--min", "accuracy=nan"), 2, "nan is not a finite number"),
    Case("eval-max-inf", None, ("eval", "{run}", "--max", "loss=inf"), 2, "inf is not a finite number"),
    Case("eval-junit-is-a-folder", None, ("eval", "{run}", "--junit", "{tmp}/sentinel", "--out", EV), 2,
         "is a folder"),
    Case("eval-junit-under-a-file", None, ("eval", "{run}", "--junit", "{tmp}/reviews.csv/gates.xml", "--out", EV),
         2, "is a file, not a folder"),
    Case("eval-max-drop-without-baseline", None, ("eval", "{run}", "--max-drop", "accuracy=0.1"), 2,
         "--max-drop needs --baseline"),
    Case("eval-limit-zero", None, ("eval", "{run}", "--limit", "0"), 2, "scores nothing"),
    Case("eval-limit-negative", None, ("eval", "{run}", "--limit", "-3"), 2, "scores nothing"),
    Case("eval-unknown-task", None, ("eval", "--model", "{run}/model", "--data", CSV, "--task", "poetry"), 2,
         "is not a task"),
    Case("eval-column-not-role-name", None, ("eval", "--model", "{run}/model", "--data", CSV, "--column",
                                             "review"), 2, "is not ROLE=NAME"),
    Case("eval-column-with-a-run", None, ("eval", "{run}", "--column", "text=review"), 2,
         "apply to --model with --data"),
    Case("eval-metric-module-missing", None, ("eval", "{run}", "--metric-module", "{tmp}/mine.py"), 2,
         "metric module not found"),
    # -- eval: where results go --------------------------------------------------------------------
    Case("eval-out-is-the-run", None, ("eval", "--model", "{run}/model", "--data", CSV, "--out", "{run}"), 2,
         "is the run"),
    Case("eval-out-is-the-runs-parent", None, ("eval", "--model", "{run}/model", "--data", CSV, "--out",
                                               "{run}/.."), 2, "a parent of"),
    Case("eval-out-foreign-folder", None, ("eval", "--model", "{run}/model", "--data", CSV, "--out",
                                           "{tmp}/sentinel"), 2, "is not empty and is not a tunekit folder"),
    Case("eval-out-foreign-eval-folder", None, ("eval", "{run}", "--out", "{tmp}/sentinel/eval"), 2,
         "is not a tunekit folder"),
    Case("eval-out-is-a-file", None, ("eval", "{run}", "--out", "{tmp}/sentinel/README.md"), 2,
         "is a file, not a folder"),
    Case("eval-unmarked-folder-as-run", None, ("eval", "{tmp}/sentinel"), 2, "is not marked as a tunekit run"),
    # -- eval: bad models and data -------------------------------------------------------------------
    Case("eval-model-missing", None, ("eval", "--model", "{tmp}/absent", "--data", CSV), 2, "not found"),
    Case("eval-tunekit-json-not-json", tunekit_json("{not json"), ("eval", "--model", "{tmp}/copy/model",
                                                                   "--data", CSV, "--out", EV), 2,
         "tunekit.json is not valid JSON"),
    Case("eval-tunekit-json-a-list", tunekit_json("[1, 2]"), ("eval", "--model", "{tmp}/copy/model", "--data",
                                                              CSV, "--out", EV), 2, "not a list"),
    Case("eval-tunekit-json-unknown-task", tunekit_json('{"task": "poetry"}'),
         ("eval", "--model", "{tmp}/copy/model", "--data", CSV, "--out", EV), 2, "unknown task 'poetry'"),
    Case("eval-data-missing-column", None, ("eval", "--model", "{run}/model", "--data", CSV, "--column",
                                            "text=review"), 2, "no column 'review'"),
    Case("eval-data-is-a-folder", lambda ctx: (ctx.tmp / "data.csv").mkdir(),
         ("eval", "--model", "{run}/model", "--data", "{tmp}/data.csv"), 2, "not one written by"),
    Case("eval-data-is-a-fifo", lambda ctx: __import__("os").mkfifo(ctx.tmp / "data.csv"),
         ("eval", "--model", "{run}/model", "--data", "{tmp}/data.csv"), 2, "named pipe (FIFO)"),
    Case("eval-split-unknown", None, ("eval", "{run}", "--split", "bogus", "--out", EV), 2,
         "has no 'bogus' split"),
    # -- eval: gates, checked after scoring (the --out folder is then complete) -----------------------
    Case("eval-gate-fails", None, ("eval", "{run}", "--min", "accuracy=0.99", "--out", EV), 3,
         "quality gate failed: accuracy", writes=("ev",)),
    # -- eval: a bad baseline is read before scoring, so nothing is written -------------------------------
    Case("eval-baseline-missing", None, ("eval", "{run}", "--baseline", "{tmp}/old/metrics.json", "--max-drop",
                                         "accuracy=0.01", "--out", EV), 2, "cannot read the baseline"),
    Case("eval-baseline-of-another-task", baseline("summarization"),
         ("eval", "{run}", "--baseline", "{tmp}/old/metrics.json", "--max-drop", "accuracy=0.01", "--out", EV), 2,
         "is from task summarization"),
    Case("eval-baseline-is-a-folder", None, ("eval", "{run}", "--baseline", "{tmp}/sentinel", "--max-drop",
                                             "accuracy=0.01", "--out", EV), 2, "sentinel is not a regular file"),
    Case("eval-baseline-into-the-run", baseline("summarization"),
         ("eval", "{run}", "--limit", "5", "--baseline", "{tmp}/old/metrics.json", "--max-drop", "accuracy=0.1"), 2,
         "is from task summarization"),
    # -- predict -------------------------------------------------------------------------------------
    Case("predict-no-input", None, ("predict", "{run}"), 2, "no input given"),
    Case("predict-blank-input", None, ("predict", "{run}", "   "), 2, "must not be empty or blank"),
    Case("predict-question-on-a-classifier", None, ("predict", "{run}", "a film", "--question", "who?"), 2,
         "are for qa models"),
    Case("predict-text-and-file", inputs('{"text": "good"}\n'), ("predict", "{run}", "good", "--file",
                                                                  "{tmp}/in.jsonl"), 2, "not both"),
    Case("predict-out-without-file", None, ("predict", "{run}", "good", "--out", "{tmp}/p.jsonl"), 2,
         "--out needs --file"),
    Case("predict-out-is-a-folder", inputs('{"text": "good"}\n'), ("predict", "{run}", "--file", "{tmp}/in.jsonl",
                                                                    "--out", "{tmp}/sentinel"), 2, "is a folder"),
    Case("predict-out-inside-the-model", inputs('{"text": "good"}\n'),
         ("predict", "{run}", "--file", "{tmp}/in.jsonl", "--out", "{run}/model/p.jsonl"), 2,
         "inside the model folder"),
    Case("predict-out-exists", inputs('{"text": "good"}\n'),
         ("predict", "{run}", "--file", "{tmp}/in.jsonl", "--out", "{tmp}/sentinel/README.md"), 2,
         "already exists"),
    Case("predict-file-bad-line", inputs('{"text": "good"}\n{"text": "fine"}\n{"text": \n'),
         ("predict", "{run}", "--file", "{tmp}/in.jsonl", "--out", "{tmp}/p.jsonl"), 2, "in.jsonl line 3"),
    Case("predict-file-wrong-field", inputs('{"review": "good"}\n'), ("predict", "{run}", "--file",
                                                                       "{tmp}/in.jsonl"), 2, "text: Field required"),
    Case("predict-file-line-not-an-object", inputs('{"text": "good"}\n"just a string"\n'),
         ("predict", "{run}", "--file", "{tmp}/in.jsonl"), 2, "in.jsonl line 2: expected a JSON object"),
    Case("predict-file-empty", inputs(""), ("predict", "{run}", "--file", "{tmp}/in.jsonl"), 2, "holds no inputs"),
    Case("predict-file-missing", None, ("predict", "{run}", "--file", "{tmp}/in.jsonl"), 2, "in.jsonl"),
    Case("predict-file-is-a-folder", lambda ctx: (ctx.tmp / "in.d").mkdir(),
         ("predict", "{run}", "--file", "{tmp}/in.d"), 2, "in.d"),
    Case("predict-corrupt-tunekit-json", tunekit_json("{not json"), ("predict", "{tmp}/copy", "good"), 2,
         "tunekit.json is not valid JSON"),
    # -- export ---------------------------------------------------------------------------------------
    Case("export-out-is-the-run", None, ("export", "{run}", "--out", "{run}", "--overwrite"), 2, "is the run"),
    Case("export-out-is-dot", None, ("export", "{run}", "--out", ".", "--overwrite"), 2, "working directory"),
    Case("export-out-is-the-model", None, ("export", "{run}", "--out", "{run}/model", "--overwrite"), 2,
         "is the model folder"),
    Case("export-out-foreign-folder", None, ("export", "{run}", "--out", "{tmp}/sentinel", "--overwrite"), 2,
         "is not empty and is not a tunekit folder"),
    Case("export-out-foreign-model-folder", None, ("export", "{run}", "--out", "{tmp}/sentinel/model"), 2,
         "is not a tunekit folder"),
    Case("export-out-is-a-file", None, ("export", "{run}", "--out", "{tmp}/sentinel/README.md", "--overwrite"), 2,
         "is a file, not a folder"),
    Case("export-folder-without-model", lambda ctx: ctx.write("nomodel/notes.txt", "hi"),
         ("export", "{tmp}/nomodel", "--out", "{tmp}/onnx"), 2, "has no trained model"),
    Case("export-unknown-format", None, ("export", "{run}", "--format", "tflite"), 2, "is not an export format"),
    Case("export-atol-nan", None, ("export", "{run}", "--atol", "nan"), 2, "is not a tolerance"),
    Case("export-limit-zero", None, ("export", "{run}", "--limit", "0"), 2, "checks nothing"),
    # -- merge ----------------------------------------------------------------------------------------
    Case("merge-run-without-adapter", None, ("merge", "{run}", "--out", "{tmp}/merged"), 2,
         "there is no adapter to merge"),
    Case("merge-out-is-the-run", adapter_copy, ("merge", "{tmp}/copy", "--out", "{tmp}/copy", "--overwrite"), 2,
         "is the run"),
    Case("merge-folder-without-model", lambda ctx: ctx.write("nomodel/notes.txt", "hi"),
         ("merge", "{tmp}/nomodel"), 2, "has no trained model"),
    Case("merge-missing-run", None, ("merge", "{tmp}/absent"), 2, "run directory not found"),
    Case("merge-unmarked-folder-as-run", foreign_adapter_folder, ("merge", "{tmp}/f"), 2,
         "is not marked as a tunekit run"),
    # -- outputs under a file, and a folder tunekit did not make -------------------------------------
    Case("eval-out-under-a-file", None, ("eval", "{run}", "--out", "{tmp}/sentinel/README.md/ev"), 2,
         "is a file, not a folder"),
    Case("export-out-under-a-file", None, ("export", "{run}", "--out", "{tmp}/sentinel/README.md/onnx"), 2,
         "is a file, not a folder"),
    Case("push-to-under-a-file", None, ("push", "{run}", "--to", "{tmp}/sentinel/README.md/out"), 2,
         "is a file, not a folder"),
    Case("predict-out-under-a-file", inputs('{"text": "good"}\n'),
         ("predict", "{run}", "--file", "{tmp}/in.jsonl", "--out", "{tmp}/sentinel/README.md/p.jsonl"), 2,
         "is a file, not a folder"),
    Case("export-into-a-foreign-folder-holding-a-model", foreign_model_folder, ("export", "{tmp}/f"), 2,
         "is not marked as a tunekit run"),
    Case("predict-file-not-utf8", lambda ctx: ctx.write("in.jsonl", b'{"text": "ok"}\n{"text": "caf\xe9"}\n'),
         ("predict", "{run}", "--file", "{tmp}/in.jsonl"), 2, "line 2: not UTF-8"),
    Case("predict-no-run", None, ("predict",), 2, "Missing argument 'RUN'"),
    Case("serve-port-out-of-range", None, ("serve", "{run}", "--port", "70000"), 2, "Invalid value for '--port'"),
    Case("serve-max-queue-zero", None, ("serve", "{run}", "--max-queue", "0"), 2, "--max-queue"),
    Case("serve-unknown-option", None, ("serve", "{run}", "--bogus"), 2, "No such option: --bogus"),
    # -- push -----------------------------------------------------------------------------------------
    Case("push-neither-repo-nor-to", None, ("push", "{run}"), 2, "give either --repo OWNER/NAME or --to DIR"),
    Case("push-both-repo-and-to", None, ("push", "{run}", "--repo", "me/x", "--to", "{tmp}/out"), 2,
         "give either --repo OWNER/NAME or --to DIR"),
    Case("push-invalid-repo-id", None, ("push", "{run}", "--repo", "not a repo", "--dry-run"), 2,
         "invalid repo id"),
    Case("push-to-the-run", None, ("push", "{run}", "--to", "{run}", "--overwrite"), 2, "is the run"),
    Case("push-to-dot", None, ("push", "{run}", "--to", ".", "--overwrite"), 2, "working directory"),
    Case("push-to-foreign-folder", None, ("push", "{run}", "--to", "{tmp}/sentinel"), 2,
         "is not empty and is not a tunekit folder"),
    Case("push-to-foreign-folder-overwrite", None, ("push", "{run}", "--to", "{tmp}/sentinel", "--overwrite"), 2,
         "is not empty and is not a tunekit folder"),
    Case("push-to-a-file", None, ("push", "{run}", "--to", "{tmp}/sentinel/README.md", "--overwrite"), 2,
         "is a file, not a folder"),
    Case("push-missing-run", None, ("push", "{tmp}/absent", "--to", "{tmp}/out"), 2, "not found"),
    Case("push-unmarked-folder-without-weights", None, ("push", "{tmp}/sentinel", "--to", "{tmp}/out"), 2,
         "holds no model weights"),
    Case("push-hub-token-in-tokenizer-config",
         model_file("tokenizer_config.json", lambda d, ctx: d.update(note=f"token {HF_TOKEN_SHAPE}")),
         ("push", "{tmp}/copy", "--to", "{tmp}/out"), 2,
         "tokenizer_config.json contains what looks like a Hugging Face token"),
    Case("push-hub-token-dry-run",
         model_file("tokenizer_config.json", lambda d, ctx: d.update(note=HF_TOKEN_SHAPE)),
         ("push", "{tmp}/copy", "--repo", "me/x", "--dry-run"), 2, "looks like a Hugging Face token"),
    Case("push-aws-key-in-config", model_file("config.json", lambda d, ctx: d.update(note="AKIAIOSFODNN7EXAMPLE")),
         ("push", "{tmp}/copy", "--to", "{tmp}/out"), 2, "config.json contains what looks like an AWS access key"),
    Case("push-home-path-in-tokenizer-config", model_file("tokenizer_config.json", home_path_in_config),
         ("push", "{tmp}/copy", "--to", "{tmp}/out"), 2, "tokenizer_config.json contains the local path"),
    Case("push-existing-local-path-in-config", model_file("config.json", existing_path_in_config),
         ("push", "{tmp}/copy", "--to", "{tmp}/out"), 2, "config.json contains the local path"),
    Case("push-symlink-in-model", symlinked_vocab, ("push", "{tmp}/copy", "--to", "{tmp}/out"), 2,
         "is a symbolic link"),
    Case("push-pickle-weights", model_file("pytorch_model.bin", b"\x80\x04pickle"),
         ("push", "{tmp}/copy", "--to", "{tmp}/out"), 2, "pickle-format weights"),
    # -- serve: refused before it listens -------------------------------------------------------------
    Case("serve-missing-run", None, ("serve", "{tmp}/absent"), 2, "not found"),
    Case("serve-timeout-zero", None, ("serve", "{run}", "--timeout", "0"), 2, "--timeout must be a positive"),
    Case("serve-timeout-negative", None, ("serve", "{run}", "--timeout", "-1"), 2, "--timeout must be a positive"),
    Case("serve-timeout-nan", None, ("serve", "{run}", "--timeout", "nan"), 2, "--timeout must be a positive"),
    Case("serve-timeout-inf", None, ("serve", "{run}", "--timeout", "inf"), 2, "--timeout must be a positive"),
    Case("serve-unknown-log-level", None, ("serve", "{run}", "--log-level", "loud"), 2, "unknown --log-level"),
    Case("serve-port-in-use", lambda ctx: ctx.busy_port(), ("serve", "{run}", "--port", "{port}"), 2,
         "cannot listen on 127.0.0.1"),
    Case("serve-unmarked-folder", None, ("serve", "{tmp}/sentinel"), 2, "sentinel/model"),
])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """One tiny trained run for every case of this module (read-only: cases copy it to change it)."""
    from typer.testing import CliRunner

    from conftest import make_rows, tiny_recipe, write_rows_csv
    from tunekit.cli.app import app

    root = tmp_path_factory.mktemp("corpus-trained")
    csv = write_rows_csv(root / "reviews.csv", make_rows(240))
    recipe = tiny_recipe(root, tiny_model_dir, csv, train={"epochs": 1})
    result = CliRunner().invoke(app, ["finetune", str(recipe)])
    assert result.exit_code == 0, result.output
    return root / "run"


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_hostile_input(case, tmp_path, tiny_model_dir, monkeypatch, trained):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_case(case, tmp_path, tiny_model_dir, trained, monkeypatch)  # every case also checks the run is untouched


if __name__ == "__main__":
    if sys.argv[1:] != ["--list"]:
        sys.exit("usage: python tests/cli/test_hostile_corpus_models.py --list")
    sys.stdout.write(listing(CASES))
