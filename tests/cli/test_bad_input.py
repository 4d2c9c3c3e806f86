"""Each user mistake: exit code 2, one line saying what is wrong and one saying what to do,
no traceback, and nothing half-written."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from tunekit.cli.app import app
from cli_checks import assert_clean_error

runner = CliRunner()


def test_unknown_recipe_key(write_recipe):
    path = write_recipe(train={"epochs": 1, "lrr": 0.1})
    result = runner.invoke(app, ["finetune", str(path)])
    assert_clean_error(result, "train.lrr", "unknown key", "did you mean 'train.lr'", f"{path}:")
    assert not (path.parent / "run").exists()


def test_wrong_value_type(write_recipe):
    path = write_recipe(train={"batch_size": "many"})
    result = runner.invoke(app, ["prepare", str(path)])
    assert_clean_error(result, "train.batch_size", "'many'")


def test_wrong_value_type_in_override(write_recipe):
    result = runner.invoke(app, ["validate", str(write_recipe()), "--set", "train.epochs=lots"])
    assert_clean_error(result, "--set", "train.epochs")


def test_missing_recipe_file(tmp_path):
    result = runner.invoke(app, ["finetune", str(tmp_path / "nope.yaml")])
    assert_clean_error(result, "recipe file not found")


def test_missing_data_file(write_recipe, tmp_path):
    path = write_recipe(data={"train": str(tmp_path / "missing.csv")})
    result = runner.invoke(app, ["finetune", str(path)])
    assert_clean_error(result, "data file not found", "missing.csv")
    assert not (tmp_path / "run").exists()


def test_column_missing(write_recipe, tmp_path):
    path = write_recipe(data={"columns": {"text": "review", "label": "label"}})
    result = runner.invoke(app, ["finetune", str(path)])
    assert_clean_error(result, "no column 'review'", "it has: text, label")
    assert not (tmp_path / "run" / "data" / "prepared").exists()


def test_no_rows_left_after_cleaning(write_recipe, tmp_path):
    data = tmp_path / "blank.csv"
    data.write_text("text,label\n ,positive\n\t,negative\n", encoding="utf-8")
    path = write_recipe(data={"train": str(data)})
    result = runner.invoke(app, ["prepare", str(path)])
    assert_clean_error(result, "no training rows are left after cleaning", "2 missing_or_empty_text")
    assert not (tmp_path / "run" / "data" / "prepared").exists()


def test_single_class(write_recipe, tmp_path):
    data = tmp_path / "one.csv"
    data.write_text("text,label\n" + "".join(f"good film {i},positive\n" for i in range(20)), encoding="utf-8")
    path = write_recipe(data={"train": str(data)})
    result = runner.invoke(app, ["finetune", str(path)])
    assert_clean_error(result, "single class")
    assert not (tmp_path / "run" / "model").exists()


def test_model_path_does_not_exist(write_recipe, tmp_path):
    path = write_recipe(model={"name": str(tmp_path / "models" / "absent")})
    result = runner.invoke(app, ["finetune", str(path)])
    assert_clean_error(result, "model folder not found")
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_existing_run_without_overwrite(write_recipe, tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "keep.txt").write_text("precious", encoding="utf-8")
    (run / "manifest.json").write_text("{}", encoding="utf-8")
    (run / ".tunekit-run").write_text("{}", encoding="utf-8")  # a run tunekit made
    result = runner.invoke(app, ["finetune", str(write_recipe())])
    assert_clean_error(result, "already holds a training run", "--overwrite")
    assert (run / "model" / "keep.txt").read_text(encoding="utf-8") == "precious"
    assert (run / "manifest.json").read_text(encoding="utf-8") == "{}"


def test_resume_without_checkpoint(write_recipe):
    result = runner.invoke(app, ["finetune", str(write_recipe()), "--resume"])
    assert_clean_error(result, "nothing to resume")


def test_eval_unknown_gate_metric_and_missing_run(tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path / "absent"), "--min", "accuracy=0.5"])
    assert_clean_error(result, "run directory not found")


@pytest.mark.parametrize("ref", ["someone/some-model"])
def test_hub_id_offline(write_recipe, ref, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = runner.invoke(app, ["finetune", str(write_recipe(model={"name": ref}))])
    assert_clean_error(result, "Hub id", "offline")


def test_changed_data_refused_on_a_trained_run(write_recipe, tmp_path):
    """prepare/tokenize/resume must not swap the data under an existing training run."""
    recipe = write_recipe()
    assert runner.invoke(app, ["tokenize", str(recipe)]).exit_code == 0
    (tmp_path / "run" / "manifest.json").write_text("{}", encoding="utf-8")  # mark it trained
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-5"
    checkpoint.mkdir(parents=True)  # what a complete checkpoint holds, as far as --resume looks
    (checkpoint / "trainer_state.json").write_text('{"global_step": 5}')
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (checkpoint / name).write_text("")
    before = (tmp_path / "run" / "data" / "prepare_report.json").read_text()

    same = runner.invoke(app, ["tokenize", str(recipe)])
    assert same.exit_code == 0, same.output  # unchanged data: the cached steps are fine
    for args in (["prepare", str(recipe), "--set", "data.split.seed=7"],
                 ["tokenize", str(recipe), "--set", "tokenize.max_length=20"],
                 ["finetune", str(recipe), "--resume", "--set", "data.split.seed=7"]):
        result = runner.invoke(app, args)
        assert_clean_error(result, "holds a training run", "differ from the ones it was trained on")
    assert (tmp_path / "run" / "data" / "prepare_report.json").read_text() == before


def test_nan_loss_stops_training_without_a_model(write_recipe, tiny_model_dir, tmp_path):
    import torch
    from transformers import BertForSequenceClassification

    broken = tmp_path / "nan-model"
    shutil.copytree(tiny_model_dir, broken)
    model = BertForSequenceClassification.from_pretrained(broken)
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("nan")  # every logit, so every loss, is NaN
    model.save_pretrained(broken)
    path = write_recipe(model={"name": str(broken)}, train={"logging_steps": 2})
    result = runner.invoke(app, ["finetune", str(path)])
    assert_clean_error(result, "training diverged: the loss was nan at step 2", "train.lr")
    run = tmp_path / "run"
    assert not (run / "model").exists()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed"


def test_report_to_a_tracker_that_is_not_installed(write_recipe, tmp_path):
    result = runner.invoke(app, ["finetune", str(write_recipe(train={"report_to": ["comet_ml"]}))])
    assert_clean_error(result, "train.report_to names comet_ml, which is not installed", "pip install comet-ml")
    assert not (tmp_path / "run").exists()
