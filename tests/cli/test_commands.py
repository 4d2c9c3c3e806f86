"""CLI behaviour through Typer's CliRunner (in-process)."""

import json

import yaml
from typer.testing import CliRunner

from tunekit import __version__
from tunekit.cli.app import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"tunekit {__version__}"


def test_validate_ok_and_print_shows_resolved_defaults(write_recipe):
    path = write_recipe()
    result = runner.invoke(app, ["validate", str(path), "--print", "--set", "train.lr=3e-5"])
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.stdout)
    assert resolved["train"]["lr"] == 3e-5
    assert resolved["train"]["precision"] == "auto"  # a default filled in
    assert "valid classification recipe" in result.stderr


def test_validate_does_not_touch_data_or_model(write_recipe, tmp_path):
    path = write_recipe(model={"name": str(tmp_path / "no-such-model")},
                        data={"train": str(tmp_path / "no-such.csv")})
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "run").exists()


def test_prepare_and_tokenize_json(write_recipe, tmp_path):
    path = write_recipe()
    result = runner.invoke(app, ["prepare", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows"]["train"] + report["rows"]["validation"] + report["rows"]["test"] == 240
    assert (tmp_path / "run" / "data" / "prepare_report.json").is_file()

    result = runner.invoke(app, ["tokenize", str(path), "--json"])
    assert result.exit_code == 0, result.output
    both = json.loads(result.stdout)
    assert both["tokenize"]["splits"]["train"]["rows"] == report["rows"]["train"]
    assert both["tokenize"]["splits"]["train"]["tokens_max"] <= 32


def test_eval_needs_a_run_or_model_and_data():
    result = runner.invoke(app, ["eval"])
    assert result.exit_code == 2
    assert "give either a run directory" in result.stderr


def test_eval_rejects_malformed_gate(tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path), "--min", "accuracy"])
    assert result.exit_code == 2
    assert "METRIC=VALUE" in result.stderr


def test_frozen_embeddings_stay_unchanged_through_training(write_recipe, tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    path = write_recipe(train={"max_steps": 4, "eval_every": "never"})
    result = runner.invoke(app, ["finetune", str(path), "--json", "--set", "train.freeze.embeddings=true"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    params = manifest["parameters"]
    assert 0 < params["trainable"] < params["total"]
    assert f"trainable parameters {params['trainable']:,} of {params['total']:,}" in " ".join(result.stderr.split())
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(tmp_path / "run" / "model" / "model.safetensors")
    key = "bert.embeddings.word_embeddings.weight"
    assert (after[key] == before[key]).all()
    changed = "bert.encoder.layer.0.attention.self.query.weight"
    assert not (after[changed] == before[changed]).all()


def test_early_stopping_ends_the_run_early(write_recipe, tmp_path):
    # A threshold of 1.0 accuracy can never be beaten, so the run stops after `patience`
    # evaluations without improvement: evaluations at steps 2 and 4, stop at step 4.
    path = write_recipe(train={"max_steps": 20, "eval_every": 2, "early_stopping": {"patience": 1, "threshold": 1.0}})
    result = runner.invoke(app, ["finetune", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["train"]["global_step"] == 4


def test_training_techniques_run_end_to_end(write_recipe):
    path = write_recipe(train={"max_steps": 3, "eval_every": "never", "gradient_checkpointing": True,
                               "label_smoothing": 0.1, "scheduler": "cosine_with_restarts",
                               "scheduler_options": {"num_cycles": 2}, "warmup_steps": 1})
    result = runner.invoke(app, ["finetune", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["train"]["global_step"] == 3


def test_seed_fixes_a_new_head_so_reruns_are_identical(write_recipe, tiny_model_dir, tmp_path):
    # A base encoder without a classification head: finetune must initialise the head from the
    # recipe's seed, or two runs of the same recipe would differ.
    import shutil

    from transformers import BertModel

    base = tmp_path / "base-encoder"
    shutil.copytree(tiny_model_dir, base)
    BertModel.from_pretrained(tiny_model_dir).save_pretrained(base)  # drops the classifier
    path = write_recipe(model={"name": str(base)}, train={"max_steps": 2, "eval_every": "never"})
    weights = []
    for _ in range(2):
        result = runner.invoke(app, ["finetune", str(path), "--overwrite", "--json"])
        assert result.exit_code == 0, result.output
        weights.append((tmp_path / "run" / "model" / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]
