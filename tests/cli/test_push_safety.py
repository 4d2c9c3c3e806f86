"""What `tunekit push` lets out of a model folder: an allowlist of model files (the rest listed as
skipped), no secret (by its shape, or the current token) and no path of this machine, the same
for --to DIR, --repo and --dry-run. On fake model folders of small files, in-process."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_checks import assert_clean_error
from tunekit.cli.app import app

runner = CliRunner()
WEIGHTS = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "  # a valid, empty safetensors file
SHIPPED = ["README.md", "added_tokens.json", "additional_chat_templates/tools.jinja", "chat_template.jinja",
           "config.json", "generation_config.json", "merges.txt", "model-00001-of-00002.safetensors",
           "model-00002-of-00002.safetensors", "model.safetensors.index.json", "special_tokens_map.json",
           "spiece.model", "tokenizer.json", "tokenizer_config.json", "tunekit.json", "vocab.json", "vocab.txt"]
SKIPPED = [{"path": ".env", "reason": "not on the allowlist"},
           {"path": ".git/", "reason": "folder not on the allowlist"},
           {"path": "README.md", "reason": "replaced by the generated model card"},
           {"path": "additional_chat_templates/notes.txt", "reason": "not on the allowlist"},
           {"path": "checkpoint-5/", "reason": "training state"},
           {"path": "credentials.json", "reason": "not on the allowlist"},
           {"path": "logs/", "reason": "folder not on the allowlist"},
           {"path": "notes.txt", "reason": "not on the allowlist"},
           {"path": "optimizer.pt", "reason": "training state"},
           {"path": "prod.env", "reason": "not on the allowlist"},
           {"path": "weights.pt", "reason": "not on the allowlist"}]


def push(*args: str):
    return runner.invoke(app, ["push", *args])


@pytest.fixture
def model(tmp_path) -> Path:
    """A model folder as a user may leave it: model files beside notes, keys and other folders."""
    folder = tmp_path / "run" / "model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "id2label": {"0": "a", "1": "b"}}))
    (folder / "tunekit.json").write_text(json.dumps({"task": "classification", "base_model": "org/base"}))
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        (folder / name).write_bytes(WEIGHTS)
    for name in ("model.safetensors.index.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "added_tokens.json", "vocab.json"):
        (folder / name).write_text("{}")
    for name in ("vocab.txt", "merges.txt", "spiece.model", "chat_template.jinja", "notes.txt", "README.md"):
        (folder / name).write_text(f"{name}\n")
    (folder / "additional_chat_templates").mkdir()
    (folder / "additional_chat_templates" / "tools.jinja").write_text("{{ messages }}")
    (folder / "additional_chat_templates" / "notes.txt").write_text("draft")
    (folder / "prod.env").write_text("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n")  # skipped: never scanned
    (folder / ".env").write_text("HF_TOKEN=hf_" + "a" * 34 + "\n")
    (folder / "credentials.json").write_text(json.dumps({"private_key": "-----BEGIN PRIVATE KEY-----\n..."}))
    (folder / "optimizer.pt").write_bytes(b"state")
    (folder / "weights.pt").write_bytes(b"\x80\x04pickle")
    for sub in ("checkpoint-5", "logs", ".git"):
        (folder / sub).mkdir()
        (folder / sub / "x.txt").write_text("x")
    return folder


def test_only_the_allowlist_ships_and_the_rest_is_listed(model, tmp_path):
    result = push(str(model.parent), "--repo", "me/model", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)
    assert [f["path"] for f in planned["files"]] == SHIPPED
    assert planned["skipped"] == SKIPPED

    out = tmp_path / "out"
    written = push(str(model.parent), "--to", str(out), "--json")
    assert written.exit_code == 0, written.output
    assert json.loads(written.stdout)["skipped"] == SKIPPED
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert [f for f in files if not f.startswith(".tunekit")] == SHIPPED  # (push's ownership marker aside)
    assert (out / "vocab.txt").read_text() == "vocab.txt\n"
    assert (out / "README.md").read_text() != "README.md\n"  # the generated card, not the folder's own


def test_dry_run_shows_both_lists(model):
    result = push(str(model.parent), "--to", "elsewhere", "--dry-run")
    assert result.exit_code == 0, result.output
    shown, _, left_out = result.stderr.partition("skipped, not shipped (11):")
    assert "tokenizer.json" in shown and "prod.env" not in shown
    for item in SKIPPED:
        assert item["path"] in left_out
    assert "dry run: 17 files" in " ".join(left_out.split())


def test_a_link_off_the_list_is_skipped_one_on_it_is_refused(model, tmp_path):
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("not part of the model")
    (model / "extra.txt").symlink_to(secret)
    (model / "linked").symlink_to(tmp_path, target_is_directory=True)
    result = push(str(model.parent), "--repo", "me/model", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    skipped = {item["path"]: item["reason"] for item in json.loads(result.stdout)["skipped"]}
    assert skipped["extra.txt"] == skipped["linked"] == "a symbolic link"
    (model / "vocab.txt").unlink()
    (model / "vocab.txt").symlink_to(secret)
    assert_clean_error(push(str(model.parent), "--to", str(tmp_path / "out")), "vocab.txt", "symbolic link")
    assert not (tmp_path / "out").exists()


def test_a_folder_without_weights_is_refused(model):
    for weights in model.glob("*.safetensors"):
        weights.unlink()
    assert_clean_error(push(str(model.parent), "--repo", "me/model", "--dry-run"), "no model weights")


SECRETS = [
    ("hf_" + "Ab3" * 11, "a Hugging Face token"),
    ("AKIA" + "Z7Q2" * 4, "an AWS access key id"),
    ("ASIA" + "K9P4" * 4, "an AWS access key id"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----",
     "a private key"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "a private key"),
    ("ghp_" + "x1Y2" * 9, "a GitHub token"),
    ("github_pat_11ABCDEFG0" + "a1B2c3" * 10, "a GitHub token"),
    ("sk-proj-" + "Zq9_" * 12, "an OpenAI or Anthropic API key"),
]


@pytest.mark.parametrize("secret, kind", SECRETS)
@pytest.mark.parametrize("target", ["--to", "--repo"])
def test_a_secret_in_a_shipped_file_refuses_the_push(model, tmp_path, secret, kind, target):
    (model / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 64, "note": secret}, indent=1))
    where = ["--to", str(tmp_path / "out")] if target == "--to" else ["--repo", "me/model", "--dry-run"]
    result = push(str(model.parent), *where)
    assert_clean_error(result, f"tokenizer_config.json contains what looks like {kind} (line 3)", "revoke")
    assert not any(line in result.output for line in secret.splitlines() if not line.startswith("-----"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["chat_template.jinja", "vocab.txt", "tunekit.json"])
def test_every_shipped_file_is_scanned(model, tmp_path, where):
    path = model / where
    if where == "tunekit.json":  # a field that ships as it is (and is not shown in the card)
        path.write_text(json.dumps({"task": "classification", "encode_options": {"key": "ghp_" + "k" * 36}}))
    else:
        path.write_text(path.read_text() + "ghp_" + "k" * 36 + "\n")
    assert_clean_error(push(str(model.parent), "--to", str(tmp_path / "out")), where, "a GitHub token")
    assert not (tmp_path / "out").exists()


def test_a_secret_in_the_weights_header_is_found(model, tmp_path):
    header = json.dumps({"__metadata__": {"uploaded_by": "AKIA" + "B" * 16}}).encode()
    (model / "model-00002-of-00002.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    assert_clean_error(push(str(model.parent), "--to", str(tmp_path / "out")),
                       "model-00002-of-00002.safetensors contains what looks like an AWS access key id (in its header)")


def test_the_current_token_is_found_whatever_its_shape(model, tmp_path, monkeypatch):
    token = "tok-Custom.Value_42"  # no known shape: found because it is this machine's token
    monkeypatch.setenv("HF_TOKEN", token)
    (model / "merges.txt").write_text(f"#version: 0.2\nh e\n{token}\n")
    result = push(str(model.parent), "--to", str(tmp_path / "out"))
    assert_clean_error(result, "merges.txt contains what looks like your Hub access token (line 3)")
    assert token not in result.output


def test_the_recipe_in_the_card_is_scanned(model, tmp_path):
    (model.parent / "recipe.resolved.yaml").write_text(
        "name: tiny\ntask: classification\nmodel: {name: org/base}\nnotes: AKIAQWERTYUIOPASDFGH\n")
    assert_clean_error(push(str(model.parent), "--to", str(tmp_path / "out")),
                       "README.md contains what looks like an AWS access key id")


def test_look_alikes_are_not_secrets(model, tmp_path):
    (model / "vocab.txt").write_text("hf_short\nAKIA\nsk-learn\nghp_\nBEGIN PUBLIC KEY\nthe_hf_model\n")
    assert push(str(model.parent), "--to", str(tmp_path / "out")).exit_code == 0


def test_paths_of_this_machine_are_rewritten_or_refused(model, tmp_path):
    base = tmp_path / "bases" / "tiny-bert"
    base.mkdir(parents=True)
    (model / "tunekit.json").write_text(json.dumps({"task": "classification", "base_model": str(base)}))
    (model / "tokenizer_config.json").write_text(json.dumps({"name_or_path": str(base)}))
    (model / "config.json").write_text(json.dumps({"_name_or_path": str(model), "id2label": {"0": "a"}}))
    (model.parent / "eval").mkdir()
    (model.parent / "eval" / "metrics.json").write_text(json.dumps({"model": str(model), "accuracy": 0.5}))
    out = tmp_path / "export" / "out"
    result = push(str(model.parent), "--to", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads((out / "tunekit.json").read_text())["base_model"] == "../../bases/tiny-bert"
    assert json.loads((out / "tokenizer_config.json").read_text())["name_or_path"] == "../../bases/tiny-bert"
    assert json.loads((out / "config.json").read_text())["_name_or_path"] == "."
    assert json.loads((out / "eval" / "metrics.json").read_text()) == {"model": ".", "accuracy": 0.5}
    for path in out.rglob("*"):
        assert path.is_dir() or str(tmp_path).encode() not in path.read_bytes(), path

    (model / "vocab.txt").write_text(f"{Path.home()}\n{model}/\n")  # a vocabulary may hold any string
    planned = push(str(model.parent), "--repo", "me/model", "--dry-run", "--json")
    assert planned.exit_code == 0, planned.output
    (model / "chat_template.jinja").write_text(f"{{# from {model.parent}/templates #}}")
    assert_clean_error(push(str(model.parent), "--to", str(tmp_path / "again")),
                       "chat_template.jinja contains the local path", str(model.parent))
    assert not (tmp_path / "again").exists()


def test_pickle_weights_ship_only_with_allow_pickle(model, tmp_path):
    (model / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    (model / "pytorch_model.bin.index.json").write_text("{}")
    assert_clean_error(push(str(model.parent), "--to", str(tmp_path / "out")), "pytorch_model.bin", "--allow-pickle")
    result = push(str(model.parent), "--to", str(tmp_path / "out"), "--allow-pickle", "--json")
    assert result.exit_code == 0, result.output
    shipped = {f["path"] for f in json.loads(result.stdout)["files"]}
    assert {"pytorch_model.bin", "pytorch_model.bin.index.json"} <= shipped and "weights.pt" not in shipped
