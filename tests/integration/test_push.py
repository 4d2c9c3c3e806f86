"""`tunekit push` in a subprocess with the real huggingface_hub client, against the loopback Hub
stand-in in tests/hub_stub.py (HF_ENDPOINT points the client at it). One tiny run is trained
per module and shipped several ways: to the stub, as a dry run, to a local folder."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import make_rows, write_rows_csv
from hub_stub import HubStub

TUNEKIT = str(Path(sys.executable).with_name("tunekit"))
FAKE_TOKEN = "hf_TunekitPushTestSecret7f3a9c"  # recognisable: scanned for everywhere it must not be
REPO = "tiny-org/tiny-sentiment"
MODEL_FILES = {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "tunekit.json"}


def tunekit(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = env if env is not None else {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([TUNEKIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def train(root: Path, base: Path, **train) -> Path:
    rows = write_rows_csv(root / "reviews.csv", make_rows(120))
    recipe = {"name": "tiny", "task": "classification", "output_dir": str(root / "run"),
              "model": {"name": str(base)},
              "data": {"train": str(rows), "split": {"validation": 0.1, "test": 0.2, "seed": 1}},
              "tokenize": {"max_length": 32},
              "train": {"epochs": 1, "batch_size": 16, "lr": 5e-3, "scheduler": "constant", "seed": 1, **train}}
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    out = tunekit("finetune", str(root / "recipe.yaml"), cwd=root)
    assert out.returncode == 0, out.stderr
    return root / "run"


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("push-full"), tiny_model_dir)


@pytest.fixture(scope="module")
def adapter_run(tiny_model_dir, tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("push-adapter"), tiny_model_dir,
                 peft={"method": "lora", "r": 4, "alpha": 8})


@pytest.fixture
def hub():
    with HubStub(FAKE_TOKEN) as stub:
        yield stub


@pytest.fixture
def env(hub, tmp_path) -> dict:
    """The real client, pointed at the stub; HF_HOME empty so no stored login is found."""
    return hub.client_env({**os.environ, "HF_HOME": str(tmp_path / "hf-home")})


def received(hub: HubStub, revision: str = "main") -> dict[str, bytes]:
    return hub.tree(REPO, revision)


def assert_no_token(hub: HubStub, run: Path, *outputs: subprocess.CompletedProcess) -> None:
    needle = FAKE_TOKEN.encode()
    for out in outputs:
        assert FAKE_TOKEN not in out.stdout and FAKE_TOKEN not in out.stderr
    for path in run.rglob("*"):
        assert path.is_dir() or needle not in path.read_bytes(), path
    for repo in hub.repos.values():
        for tree in repo.trees.values():
            assert not any(needle in data for data in tree.values())
    assert not any(FAKE_TOKEN in c.message for c in hub.commits)


def assert_same_metrics(shipped: bytes, run: Path) -> None:
    """The run's metrics, with the scored model's folder named `.` (the shipped folder) if eval
    wrote its path."""
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    expected = {**metrics, "model": "."} if os.path.isabs(str(metrics.get("model", ""))) else metrics
    assert json.loads(shipped) == expected


def load_card(path: Path):
    from huggingface_hub import ModelCard

    return ModelCard.load(path)


def test_push_uploads_the_folder(trained, hub, env, tmp_path):
    out = tunekit("push", str(trained), "--repo", REPO, "--json", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)

    assert hub.unknown == [] and not any("xet" in path for _, path in hub.requests)
    assert list(hub.repos) == [REPO] and hub.repos[REPO].private is False
    [commit] = hub.commits
    assert commit.revision == "main" and result["revision"] == "main"
    assert commit.message == result["message"]
    assert commit.message.startswith("tunekit push run: classification, accuracy ")
    files = received(hub)
    assert set(files) == MODEL_FILES | {"README.md", "eval/metrics.json"}
    assert [f["path"] for f in result["files"]] == sorted(files)
    weights = (trained / "model" / "model.safetensors").read_bytes()
    assert files["model.safetensors"] == weights
    assert commit.lfs["model.safetensors"] == hashlib.sha256(weights).hexdigest()  # went through LFS
    assert_same_metrics(files["eval/metrics.json"], trained)
    assert result["skipped"] == []
    assert result["commit_url"] == f"{hub.url}/{REPO}/commit/{commit.oid}"
    assert hub.yaml_checked and hub.yaml_checked[0] == files["README.md"].decode()

    card_path = tmp_path / "README.md"
    card_path.write_bytes(files["README.md"])
    card = load_card(card_path)
    assert card.data.pipeline_tag == "text-classification" and card.data.library_name == "transformers"
    assert "tunekit" in card.data.tags
    assert_no_token(hub, trained, out)


def test_private_push_to_a_branch_then_again(trained, hub, env, tmp_path):
    out = tunekit("push", str(trained), "--repo", REPO, "--private", "--revision", "dev",
                  "--message", "first release", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert hub.repos[REPO].private is True and hub.repos[REPO].visibility == "private"
    assert set(hub.repos[REPO].branches) == {"main", "dev"}
    [commit] = hub.commits
    assert (commit.revision, commit.message) == ("dev", "first release")
    assert received(hub, "dev")["model.safetensors"] == (trained / "model" / "model.safetensors").read_bytes()
    assert f"{hub.url}/{REPO}/commit/{commit.oid}" in out.stderr.replace("\n", "")  # the commit URL is shown

    again = tunekit("push", str(trained), "--repo", REPO, cwd=tmp_path, env=env)  # the repo exists now
    assert again.returncode == 0, again.stderr
    assert hub.repos[REPO].private is True and [c.revision for c in hub.commits] == ["dev", "main"]
    assert_no_token(hub, trained, out, again)


def test_dry_run_lists_and_sends_nothing(trained, hub, env, tmp_path):
    del env["HF_TOKEN"]  # needs no token
    out = tunekit("push", str(trained), "--repo", REPO, "--dry-run", "--json", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    sizes = {f["path"]: f["size"] for f in result["files"]}
    assert set(sizes) == MODEL_FILES | {"README.md", "eval/metrics.json"}
    assert sizes["model.safetensors"] == (trained / "model" / "model.safetensors").stat().st_size
    assert result["dry_run"] is True and result["total_size"] == sum(sizes.values())
    assert hub.requests == [] and hub.commits == []

    shown = tunekit("push", str(trained), "--repo", REPO, "--dry-run", cwd=tmp_path, env=env)
    assert shown.returncode == 0 and "model.safetensors" in shown.stderr and "dry run" in shown.stderr


def test_to_folder_writes_the_same_files_and_card(trained, tmp_path):
    out_dir = tmp_path / "shipped"
    out = tunekit("push", str(trained), "--to", str(out_dir), "--base-model", "tiny-org/tiny-bert", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    written = {p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file()}
    assert written - {".tunekit-run"} == MODEL_FILES | {"README.md", "eval/metrics.json"}  # (push's marker aside)
    assert not any(p.is_symlink() for p in out_dir.rglob("*"))
    assert (out_dir / "model.safetensors").read_bytes() == (trained / "model" / "model.safetensors").read_bytes()
    assert not list(tmp_path.glob(".shipped.*"))  # the atomic write left no temporary folder

    card = load_card(out_dir / "README.md")
    assert card.data.base_model == "tiny-org/tiny-bert"
    assert card.data.pipeline_tag == "text-classification"
    metrics = json.loads((trained / "eval" / "metrics.json").read_text())
    text = card.text
    assert f"| accuracy | {metrics['accuracy']:.4f} |" in text
    if "intervals" in metrics:  # eval records 95% bootstrap intervals
        low, high = metrics["intervals"]["accuracy"]
        assert f"{low:.4f} – {high:.4f}" in text
    manifest = json.loads((trained / "manifest.json").read_text())
    assert manifest["data"]["train"]["sha256"] in text and "`reviews.csv`" in text
    assert manifest["fingerprints"]["tokenize"] in text
    assert "```yaml\nname: tiny\ntask: classification" in text
    assert "## Intended use" in text and "## Limitations" in text and "## How to use" in text
    assert "pipeline(\"text-classification\"" in text and "tunekit predict" in text

    again = tunekit("push", str(trained), "--to", str(out_dir), cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_wrong_token_is_one_clear_line(trained, hub, tmp_path):
    env = hub.client_env({**os.environ, "HF_HOME": str(tmp_path / "hf-home")}, token="hf_wrong_token")
    out = tunekit("push", str(trained), "--repo", REPO, cwd=tmp_path, env=env)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "401" in errors[0] and "token" in errors[0]
    assert any(line.startswith("hint:") for line in out.stderr.splitlines())
    assert hub.commits == [] and hub.repos == {}
    assert "hf_wrong_token" not in out.stderr + out.stdout


def test_no_rights_on_the_namespace(trained, tmp_path):
    with HubStub(FAKE_TOKEN, owners={"tiny-org"}) as hub:
        env = hub.client_env({**os.environ, "HF_HOME": str(tmp_path / "hf-home")})
        out = tunekit("push", str(trained), "--repo", "someone-else/model", cwd=tmp_path, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    [error] = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert "403" in error and "someone-else/model" in error and "namespace" in error
    assert hub.commits == []


def test_adapter_ships_alone_or_merged(adapter_run, trained, hub, env, tmp_path):
    alone = tunekit("push", str(adapter_run), "--repo", REPO, cwd=tmp_path, env=env)
    assert alone.returncode == 0, alone.stderr
    files = received(hub)
    assert {"adapter_config.json", "adapter_model.safetensors", "tunekit_adapter.json", "README.md"} <= set(files)
    assert "model.safetensors" not in files
    (tmp_path / "ADAPTER.md").write_bytes(files["README.md"])
    card = load_card(tmp_path / "ADAPTER.md")
    assert card.data.library_name == "peft" and {"peft", "lora"} <= set(card.data.tags)
    assert "PeftModel.from_pretrained" in card.text

    # a later push replaces what the revision held: no adapter files beside the full weights
    full = tunekit("push", str(trained), "--repo", REPO, cwd=tmp_path, env=env)
    assert full.returncode == 0, full.stderr
    assert set(received(hub)) == MODEL_FILES | {"README.md", "eval/metrics.json"}
    assert "adapter_config.json" in hub.commits[-1].deleted
    assert_no_token(hub, adapter_run, alone, full)


def test_adapter_merged_into_a_folder_that_loads(adapter_run, tmp_path):
    from typer.testing import CliRunner

    from tunekit.cli.app import app

    folder = tmp_path / "merged"  # in-process: this test's interpreter has loaded torch already
    result = CliRunner().invoke(app, ["push", str(adapter_run), "--to", str(folder), "--merge", "--json"])
    assert result.exit_code == 0, result.output
    files = {f["path"] for f in json.loads(result.stdout)["files"]}
    assert {"model.safetensors", "config.json", "tunekit.json", "README.md", "eval/metrics.json"} <= files
    assert not {"adapter_config.json", "adapter_model.safetensors", "tunekit_adapter.json"} & files
    card = load_card(folder / "README.md")
    assert card.data.library_name == "transformers" and "merged into its base" in card.text

    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder)  # the shipped folder loads as it is
    assert model.config.id2label == {0: "negative", 1: "positive"}


def test_card_without_intervals_or_metrics(tmp_path):
    from tunekit.shipping.model_card import CardFacts, build_card

    facts = CardFacts(task="causal_lm", load_ref="me/lm", weights="full", title="lm", base_model="org/base",
                      base_model_id="org/base", metrics={"task": "causal_lm", "n": 12, "perplexity": 12.5})
    (tmp_path / "README.md").write_text(build_card(facts))
    card = load_card(tmp_path / "README.md")
    assert card.data.pipeline_tag == "text-generation" and card.data.base_model == "org/base"
    assert "| perplexity | 12.5000 |" in card.text and "interval" not in card.text
    assert "Generated text can be fluent and wrong" in card.text

    facts.metrics = None
    (tmp_path / "README.md").write_text(build_card(facts))
    assert "no evaluation results" in load_card(tmp_path / "README.md").text


def assert_nothing_local(folder: Path, *needles: str) -> None:
    """No file under `folder` holds any of the needles, in any byte."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle.encode() not in data, (path, needle)


def test_no_local_path_or_user_name_in_the_model_folder_or_what_ships(tiny_model_dir, trained, hub, env, tmp_path):
    import getpass

    run = train(tmp_path, tiny_model_dir, peft={"method": "lora", "r": 4, "alpha": 8})  # an adapter, trained here
    needles = [str(tmp_path), str(tiny_model_dir), str(Path.home()), getpass.getuser()]
    assert_nothing_local(run / "model", *needles)
    adapter = json.loads((run / "model" / "tunekit_adapter.json").read_text())
    assert adapter["base_model"] == os.path.relpath(tiny_model_dir, run / "model")  # the loader still finds it

    shipped = tmp_path / "shipped"
    out = tunekit("push", str(run), "--to", str(shipped), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert_nothing_local(shipped, *needles)
    assert json.loads((shipped / "tunekit_adapter.json").read_text())["base_model"] == \
        os.path.relpath(tiny_model_dir, shipped)  # a local export: relative to where it was written
    predicted = tunekit("predict", str(shipped), "a great film", "--json", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr  # and it loads on its base from there

    full = tmp_path / "full"
    assert tunekit("push", str(trained), "--to", str(full), cwd=tmp_path).returncode == 0
    assert_nothing_local(trained / "model", str(trained), str(tiny_model_dir), str(Path.home()))
    assert_nothing_local(full, str(trained), str(tmp_path), str(tiny_model_dir), str(Path.home()))

    up = tunekit("push", str(run), "--repo", REPO, cwd=tmp_path, env=env)
    assert up.returncode == 0, up.stderr
    tree = received(hub)
    assert {"tunekit_adapter.json", "adapter_config.json", "README.md", "eval/metrics.json"} <= set(tree)
    for name, data in tree.items():
        for needle in needles + [str(trained)]:
            assert needle.encode() not in data, (name, needle)
    assert json.loads(tree["tunekit_adapter.json"])["base_model"] == f"./{tiny_model_dir.name}"  # its name alone
    assert json.loads(tree["adapter_config.json"])["base_model_name_or_path"] == f"./{tiny_model_dir.name}"


def test_a_secret_refuses_the_upload_before_any_request(trained, hub, env, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    config = json.loads((run / "model" / "tokenizer_config.json").read_text())
    secret = "AKIA" + "QX7T" * 4
    (run / "model" / "tokenizer_config.json").write_text(json.dumps({**config, "note": secret}))
    (run / "model" / "prod.env").write_text(f"AWS_ACCESS_KEY_ID={secret}\n")  # not shipped, so not in the way

    out = tunekit("push", str(run), "--repo", REPO, cwd=tmp_path, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "tokenizer_config.json contains what looks like an AWS access key id" in out.stderr
    assert secret not in out.stderr + out.stdout
    assert hub.requests == [] and hub.commits == []

    (run / "model" / "tokenizer_config.json").write_text(json.dumps(config))
    again = tunekit("push", str(run), "--repo", REPO, "--json", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["skipped"] == [{"path": "prod.env", "reason": "not on the allowlist"}]
    assert "prod.env" not in received(hub) and not any(secret.encode() in d for d in received(hub).values())
