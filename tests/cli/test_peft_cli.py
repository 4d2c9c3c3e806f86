"""train.peft through the installed `tunekit` command: finetune writes an adapter, eval loads it,
merge folds it into full weights. On a tiny BERT whose body already knows the sentiment words."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from tunekit.cli.app import app

try:  # tests/ is not a package: pytest puts it on sys.path for its conftest
    from conftest import make_rows
except ImportError:  # pragma: no cover - if tests/ becomes a package
    from tests.conftest import make_rows

TUNEKIT = str(Path(sys.executable).with_name("tunekit"))
runner = CliRunner()


def tunekit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([TUNEKIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def pretrained_body(tiny_model_dir, tmp_path_factory) -> Path:
    """A stand-in for a pretrained encoder: the tiny BERT trained in full on other sentences, then
    saved without pooler and head, so the run starts with a new head (and a new pooler)."""
    from transformers import AutoTokenizer, BertForSequenceClassification, BertModel

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = make_rows(160, seed=7)
    enc = tokenizer([r["text"] for r in rows], padding=True, return_tensors="pt")
    labels = torch.tensor([int(r["label"] == "positive") for r in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    for step in range(30):
        idx = torch.arange(16) + 16 * (step % 10)
        loss = model(input_ids=enc["input_ids"][idx], attention_mask=enc["attention_mask"][idx], labels=labels[idx]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    folder = tmp_path_factory.mktemp("pretrained-body")
    body = BertModel(model.config, add_pooling_layer=False)
    body.load_state_dict(model.bert.state_dict(), strict=False)
    body.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_lora_finetune_eval_merge(write_recipe, pretrained_body, tmp_path):
    recipe = write_recipe(model={"name": str(pretrained_body)},
                          train={"epochs": 2, "lr": 2e-2, "peft": {"method": "lora", "r": 4, "alpha": 8}})
    out = tunekit("finetune", str(recipe), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    counts = re.search(r"trainable\s+parameters ([\d,]+) of ([\d,]+)", out.stderr)
    trainable, total = (int(g.replace(",", "")) for g in counts.groups())
    assert 0 < trainable < total / 5
    assert "Warning" not in out.stderr

    # <run>/model is the adapter alone, with what it takes to load it again
    run = tmp_path / "run"
    model_dir = run / "model"
    files = {p.name for p in model_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json", "tokenizer.json",
            "tunekit_adapter.json"} <= files
    assert "model.safetensors" not in files
    assert json.loads((model_dir / "config.json").read_text())["id2label"] == {"0": "negative", "1": "positive"}
    # the local base by its path relative to the adapter folder: no absolute path in a model folder
    assert json.loads((model_dir / "tunekit_adapter.json").read_text())["base_model"] == \
        os.path.relpath(pretrained_body, model_dir)
    with safe_open(str(model_dir / "adapter_model.safetensors"), "pt") as weights:
        names = list(weights.keys())
        assert any("classifier" in n for n in names) and any("pooler" in n for n in names)
        assert all(weights.get_tensor(n).abs().sum() > 0 for n in names if "lora_B" in n)  # trained from zero
    assert json.loads((run / "manifest.json").read_text())["parameters"] == {"trainable": trainable, "total": total}
    assert result["eval"]["accuracy"] >= 0.8, result["eval"]  # the adapter and new head learned the task

    # tunekit eval loads the adapter on its base and scores exactly as finetune did
    # (eval and merge run in-process: a second and third interpreter start would double the test)
    finetune_predictions = (run / "eval" / "predictions.jsonl").read_text()
    scored = runner.invoke(app, ["eval", str(run), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["accuracy"] == result["eval"]["accuracy"]
    assert (run / "eval" / "predictions.jsonl").read_text() == finetune_predictions
    held_out = tmp_path / "held_out.csv"
    held_out.write_text("text,label\ngreat fun excellent the movie,positive\nawful dull boring plot,negative\n")
    on_file = runner.invoke(app, ["eval", "--model", str(model_dir), "--data", str(held_out),
                                  "--out", str(tmp_path / "scored"), "--json"])
    assert on_file.exit_code == 0, on_file.output
    assert json.loads(on_file.stdout)["n"] == 2

    # tunekit merge writes a plain model folder with the same logits
    merged = runner.invoke(app, ["merge", str(run), "--json"])
    assert merged.exit_code == 0, merged.output
    assert json.loads(merged.stdout)["model"] == str(run / "merged")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunekit.pipeline.adapters import load_model

    assert "adapter_config.json" not in {p.name for p in (run / "merged").iterdir()}
    full = AutoModelForSequenceClassification.from_pretrained(run / "merged").eval()
    adapter = load_model(str(model_dir), AutoModelForSequenceClassification).eval()
    enc = AutoTokenizer.from_pretrained(run / "merged")(["great fun the movie 3", "awful dull plot", "the film"],
                                                        padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(full(**enc).logits, adapter(**enc).logits, rtol=0, atol=1e-5)

    again = runner.invoke(app, ["merge", str(run)])
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert runner.invoke(app, ["merge", str(run), "--overwrite"]).exit_code == 0


def test_merge_of_a_full_weight_run_has_nothing_to_do(tmp_path):
    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "model" / "config.json").write_text("{}")
    result = runner.invoke(app, ["merge", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "holds full weights: there is no adapter to merge" in result.stderr
    missing = runner.invoke(app, ["merge", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "run directory not found" in missing.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU-only error")
def test_qlora_on_the_cpu_is_a_clear_error(write_recipe):
    recipe = write_recipe(train={"peft": {"method": "qlora"}})
    result = runner.invoke(app, ["finetune", str(recipe)])
    assert result.exit_code == 2
    assert "qlora needs a CUDA GPU" in result.stderr and "use method: lora on the CPU" in result.stderr


def test_validate_rejects_an_option_of_another_method(write_recipe):
    recipe = write_recipe(train={"peft": {"method": "prompt", "r": 8}})
    result = runner.invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 2
    assert "train.peft: method prompt takes no option r" in result.stderr


def test_merge_help_leaves_heavy_libraries_unloaded():
    code = ("import sys\nfrom tunekit.cli.app import app\ntry:\n    app(['merge', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint([m for m in ('torch', 'transformers', 'peft') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
