"""`tunekit eval`: metric modules a model folder names are listed, never run (only --metric-module
and finetune's own recipe run code); rows are counted as "N of M rows scored"; metrics.json names
the model without a local path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_rows, tiny_recipe, write_rows_csv
from tunekit.cli.app import app

runner = CliRunner()

SENTINEL_MODULE = '''
import datasets
import evaluate

with open({sentinel!r}, "a") as fh:  # a planted module: importing it is already running it
    fh.write("imported\\n")


class SentinelMetric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="", citation="", inputs_description="",
                                   features=datasets.Features({{"predictions": datasets.Value("int64"),
                                                               "references": datasets.Value("int64")}}))

    def _compute(self, predictions, references):
        return {{"count": float(len(predictions))}}
'''


def plant_module(folder: Path, sentinel: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    module = folder / "sentinel_metric.py"
    module.write_text(SENTINEL_MODULE.format(sentinel=str(sentinel)), encoding="utf-8")
    return module


@pytest.fixture
def planted_model(tmp_path, tiny_model_dir):
    """A classifier folder whose tunekit.json names a metric module that leaves a sentinel file."""
    model = tmp_path / "downloaded-model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config.update(id2label={"0": "negative", "1": "positive"}, label2id={"negative": 0, "positive": 1})
    (model / "config.json").write_text(json.dumps(config))
    sentinel = tmp_path / "SENTINEL"
    module = plant_module(model / "metrics", sentinel)
    info = {"task": "classification", "recipe": "someone-elses", "tokenize": {"max_length": 32},
            "data": {"columns": {"text": "text", "label": "label"}, "style": "instruction"},
            "eval": {"metric_modules": [str(module)], "bootstrap": 0}}
    (model / "tunekit.json").write_text(json.dumps(info))
    return model, module, sentinel


def scoring_file(tmp_path: Path) -> Path:
    """6 rows: 4 distinct, one repeating the first (scored), one without a label (cannot be)."""
    rows = make_rows(4, seed=2)
    rows += [dict(rows[0]), {"text": "no label at all", "label": ""}]
    return write_rows_csv(tmp_path / "heldout.csv", rows)


def test_eval_model_does_not_run_a_module_its_folder_names(planted_model, tmp_path):
    model, module, sentinel = planted_model
    data = scoring_file(tmp_path)
    result = runner.invoke(app, ["eval", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "o"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert not sentinel.exists()
    err = " ".join(result.stderr.split())
    assert "not run: sentinel_metric" in err and "pass --metric-module PATH to run it" in err
    metrics = json.loads(result.stdout)
    assert metrics["metric_modules_not_run"] == ["sentinel_metric"]
    assert not any(k.startswith("sentinel_metric_") for k in metrics)
    # the file as given: the repeated row is scored, the unlabelled one cannot be
    assert (metrics["rows_scored"], metrics["rows_total"], metrics["n"]) == (5, 6, 5)
    assert metrics["rows_not_scored"] == {"missing_label": 1}
    written = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert written["model"] == "downloaded-model" and written["split"] == "heldout.csv"
    assert str(tmp_path) not in (tmp_path / "o" / "metrics.json").read_text()


def test_naming_the_module_runs_it(planted_model, tmp_path):
    model, module, sentinel = planted_model
    result = runner.invoke(app, ["eval", "--model", str(model), "--data", str(scoring_file(tmp_path)),
                                 "--metric-module", str(module), "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0, result.output
    assert sentinel.read_text() == "imported\n"
    metrics = json.loads(result.stdout)
    assert metrics["sentinel_metric_count"] == 5.0 and "metric_modules_not_run" not in metrics
    assert "not run:" not in result.stderr


def test_the_table_says_how_many_rows_were_scored(planted_model, tmp_path):
    model, _, _ = planted_model
    result = runner.invoke(app, ["eval", "--model", str(model), "--data", str(scoring_file(tmp_path)),
                                 "--limit", "3", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    err = " ".join(result.stderr.split())
    assert "3 of 6 rows scored (not scored: missing label 1, limit 2)" in err
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["rows_not_scored"] == {"missing_label": 1, "limit": 2}


def test_finetune_runs_its_recipes_module_and_eval_of_the_run_does_not(tmp_path, tiny_model_dir):
    sentinel = tmp_path / "SENTINEL"
    module = plant_module(tmp_path / "mine", sentinel)
    train = write_rows_csv(tmp_path / "train.csv", make_rows(80))
    test = make_rows(12, seed=7)
    test += [dict(test[0]), {"text": "no label", "label": ""}]  # 14 rows: one repeat (kept), one unusable
    recipe = tiny_recipe(tmp_path, tiny_model_dir, train,
                         data={"train": str(train), "test": str(write_rows_csv(tmp_path / "test.csv", test)),
                               "split": {"validation": 0.1, "seed": 1}},
                         train={"max_steps": 2, "eval_every": "never", "batch_size": 16, "lr": 5e-3, "seed": 1},
                         eval={"metric_modules": [str(module)], "bootstrap": 0})
    trained = runner.invoke(app, ["finetune", str(recipe), "--json"])
    assert trained.exit_code == 0, trained.output
    assert sentinel.read_text() == "imported\n"  # the user's own recipe: trusted
    final = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert final["sentinel_metric_count"] == 13.0 and final["model"] == "model"
    assert (final["rows_scored"], final["rows_total"], final["rows_not_scored"]) == (13, 14, {"prepare": 1})

    sentinel.unlink()
    again = runner.invoke(app, ["eval", str(tmp_path / "run"), "--out", str(tmp_path / "again"), "--json"])
    assert again.exit_code == 0, again.output
    assert not sentinel.exists()  # eval of a run reads the model's tunekit.json: listed, not run
    assert "not run: sentinel_metric" in " ".join(again.stderr.split())
    assert json.loads(again.stdout)["metric_modules_not_run"] == ["sentinel_metric"]
