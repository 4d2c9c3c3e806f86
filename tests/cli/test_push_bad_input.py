"""`tunekit push` mistakes: exit 2, one error line and a hint, no traceback, nothing sent or
written. On a fake run (a model folder of small files): every check here runs before a model
is loaded or the network is touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_checks import assert_clean_error
from tunekit.cli.app import app

runner = CliRunner()


@pytest.fixture
def fake_run(tmp_path) -> Path:
    model = tmp_path / "run" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"model_type": "bert", "id2label": {"0": "a", "1": "b"}}))
    (model / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (model / "tokenizer.json").write_text("{}")
    (model / "tunekit.json").write_text(json.dumps({"task": "classification", "base_model": "org/base"}))
    return tmp_path / "run"


@pytest.fixture
def no_login(monkeypatch, tmp_path):
    """No HF_TOKEN and no stored login (the client reads its token file path at import time)."""
    from huggingface_hub import constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


def push(*args: str):
    return runner.invoke(app, ["push", *args])


@pytest.mark.parametrize("repo", ["not a repo", "a/b/c", "just-a-name", "owner/bad--name", "owner/"])
def test_invalid_repo_id(fake_run, repo):
    assert_clean_error(push(str(fake_run), "--repo", repo), "invalid repo id", repr(repo))


def test_invalid_repo_id_is_reported_before_the_run(tmp_path):
    assert_clean_error(push(str(tmp_path / "missing"), "--repo", "a/b/c"), "invalid repo id")


def test_run_without_model(tmp_path):
    (tmp_path / "run").mkdir()
    assert_clean_error(push(str(tmp_path / "run"), "--repo", "me/model", "--dry-run"), "has no trained model")
    assert_clean_error(push(str(tmp_path / "nowhere"), "--repo", "me/model", "--dry-run"), "not found")


def test_pickle_weights_need_allow_pickle(fake_run, tmp_path):
    (fake_run / "model" / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    assert_clean_error(push(str(fake_run), "--repo", "me/model", "--dry-run"),
                       "pytorch_model.bin", "pickle", "--allow-pickle")
    assert_clean_error(push(str(fake_run), "--to", str(tmp_path / "out")), "pickle")
    assert not (tmp_path / "out").exists()
    allowed = push(str(fake_run), "--repo", "me/model", "--dry-run", "--allow-pickle", "--json")
    assert allowed.exit_code == 0, allowed.output
    assert "pytorch_model.bin" in [f["path"] for f in json.loads(allowed.stdout)["files"]]


def test_training_state_is_left_out_not_refused(fake_run):
    model = fake_run / "model"
    (model / "optimizer.pt").write_bytes(b"state")
    (model / "training_args.bin").write_bytes(b"args")
    (model / "checkpoint-5").mkdir()
    (model / "checkpoint-5" / "model.safetensors").write_bytes(b"old")
    result = push(str(fake_run), "--repo", "me/model", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)
    assert [f["path"] for f in planned["files"]] == ["README.md", "config.json", "model.safetensors",
                                                     "tokenizer.json", "tunekit.json"]
    assert planned["skipped"] == [{"path": "checkpoint-5/", "reason": "training state"},
                                  {"path": "optimizer.pt", "reason": "training state"},
                                  {"path": "training_args.bin", "reason": "training state"}]


def test_symlink_in_model_folder(fake_run, tmp_path):
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("not part of the model")
    (fake_run / "model" / "tokenizer.json").unlink()
    (fake_run / "model" / "tokenizer.json").symlink_to(secret)  # a model file: it would ship another's bytes
    assert_clean_error(push(str(fake_run), "--repo", "me/model", "--dry-run"), "tokenizer.json", "symbolic link")
    assert_clean_error(push(str(fake_run), "--to", str(tmp_path / "out")), "symbolic link")
    assert not (tmp_path / "out").exists()


def test_symlinks_off_the_allowlist_are_skipped(fake_run, tmp_path):
    (tmp_path / "outside").mkdir()
    (fake_run / "model" / "extra").symlink_to(tmp_path / "outside", target_is_directory=True)
    (fake_run / "model" / "notes.txt").symlink_to(tmp_path / "outside")
    result = push(str(fake_run), "--to", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"] == [{"path": "extra", "reason": "a symbolic link"},
                                                    {"path": "notes.txt", "reason": "a symbolic link"}]
    assert not (tmp_path / "out" / "extra").exists() and not (tmp_path / "out" / "notes.txt").exists()


def test_missing_token(fake_run, no_login):
    assert_clean_error(push(str(fake_run), "--repo", "me/model"), "no access token", "HF_TOKEN")


def test_missing_token_is_fine_for_dry_run_and_to(fake_run, no_login, tmp_path):
    assert push(str(fake_run), "--repo", "me/model", "--dry-run").exit_code == 0
    written = push(str(fake_run), "--to", str(tmp_path / "out"))
    assert written.exit_code == 0, written.output
    assert (tmp_path / "out" / "README.md").is_file()


def test_offline_mode_refuses_an_upload(fake_run, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_TOKEN", "hf_offline_test_token")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert_clean_error(push(str(fake_run), "--repo", "me/model"), "offline", "HF_HUB_OFFLINE")


def test_target_is_needed_once(fake_run, tmp_path):
    assert_clean_error(push(str(fake_run)), "--repo", "--to")
    assert_clean_error(push(str(fake_run), "--repo", "me/model", "--to", str(tmp_path / "out")), "either")


def test_upload_options_with_to(fake_run, tmp_path):
    assert_clean_error(push(str(fake_run), "--to", str(tmp_path / "out"), "--revision", "dev", "--private"),
                       "--private", "--revision")


def test_to_existing_folder_needs_overwrite(fake_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")  # a user's folder: never replaced, --overwrite included
    assert_clean_error(push(str(fake_run), "--to", str(out)), "not a tunekit folder", "--overwrite")
    assert_clean_error(push(str(fake_run), "--to", str(out), "--overwrite"), "not a tunekit folder")
    assert (out / "keep.txt").read_text() == "mine"
    shipped = tmp_path / "shipped"  # one push wrote: replaced with --overwrite only
    assert push(str(fake_run), "--to", str(shipped)).exit_code == 0
    assert_clean_error(push(str(fake_run), "--to", str(shipped)), "already exists", "--overwrite")
    replaced = push(str(fake_run), "--to", str(shipped), "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert (shipped / "model.safetensors").is_file()


def test_to_inside_the_model_folder(fake_run):
    assert_clean_error(push(str(fake_run), "--to", str(fake_run / "model" / "shipped")), "inside the model folder")


def test_merge_needs_an_adapter(fake_run):
    assert_clean_error(push(str(fake_run), "--repo", "me/model", "--merge", "--dry-run"),
                       "no adapter to merge")


def test_invalid_base_model_id(fake_run):
    assert_clean_error(push(str(fake_run), "--repo", "me/model", "--base-model", "../base", "--dry-run"),
                       "--base-model")


def test_a_run_trained_before_tunekit_json_ships_one_written_from_its_recipe(fake_run, tmp_path):
    (fake_run / "model" / "tunekit.json").unlink()
    (fake_run / "recipe.resolved.yaml").write_text("name: old\ntask: classification\noutput_dir: x\n"
                                                   "model: {name: org/base}\ndata: {train: t.csv}\n"
                                                   "tokenize: {max_length: 48}\n")
    result = push(str(fake_run), "--to", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "out" / "tunekit.json").read_text())
    assert info["task"] == "classification" and info["tokenize"]["max_length"] == 48
    assert not (fake_run / "model" / "tunekit.json").exists()  # the run itself is left as it was
