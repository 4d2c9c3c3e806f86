"""The installed `tunekit` command in a subprocess, through every step, on a tiny model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_checks import run_in_process
from conftest import make_rows, tiny_recipe, write_rows_csv

TUNEKIT = str(Path(sys.executable).with_name("tunekit"))


def tunekit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([TUNEKIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def train_run(root: Path, model_dir: Path):
    recipe = tiny_recipe(root, model_dir, write_rows_csv(root / "reviews.csv", make_rows(240)))
    for step in ("prepare", "tokenize"):
        out = tunekit(step, str(recipe), cwd=root)
        assert out.returncode == 0, out.stderr
    out = tunekit("finetune", str(recipe), "--json", cwd=root)
    assert out.returncode == 0, out.stderr
    return recipe, root / "run", json.loads(out.stdout)


@pytest.fixture(scope="module")
def shared(tiny_model_dir, tmp_path_factory):
    """One trained run for the tests that only read it (each writes its evaluations elsewhere)."""
    return train_run(tmp_path_factory.mktemp("e2e-shared"), tiny_model_dir)


@pytest.fixture
def trained(tiny_model_dir, tmp_path):
    """A run of the test's own, for tests that retrain or overwrite it."""
    return train_run(tmp_path, tiny_model_dir)


def test_pipeline_trains_saves_and_gates(shared, tmp_path):
    recipe, run, result = shared
    assert "Traceback" not in json.dumps(result)
    # the data steps were cached by the explicit prepare/tokenize calls
    # final model as safetensors with the label maps
    model_files = {p.name for p in (run / "model").iterdir()}
    assert "model.safetensors" in model_files and "tokenizer.json" in model_files
    assert not any(name.endswith(".bin") for name in model_files)
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    # resolved recipe and manifest
    assert (run / "recipe.resolved.yaml").is_file()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["seed"] == 1
    assert set(manifest["timings"]) >= {"prepare_s", "tokenize_s", "train_s", "eval_s"}
    assert len(manifest["data"]["train"]["sha256"]) == 64
    assert manifest["environment"]["torch"]
    # evaluation files written; the synthetic task is easy, so the tiny model must learn it
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["accuracy"] == result["eval"]["accuracy"]
    assert metrics["accuracy"] >= 0.9, metrics
    preds = [json.loads(line) for line in (run / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == metrics["n"] == 48
    assert all(p["label"] in ("negative", "positive") and abs(sum(p["scores"].values()) - 1) < 1e-4 for p in preds)
    assert sum(p["label"] == p["prediction"] for p in preds) / len(preds) == pytest.approx(metrics["accuracy"])

    # logs people look at: JSON lines, TensorBoard events, a curve
    logs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs if "loss" in r] == list(range(5, 56, 5))  # logging_steps 5, 55 steps
    assert sum("eval_accuracy" in r for r in logs) == 5  # one validation per epoch
    assert list((run / "logs").glob("events.out.tfevents.*"))
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    ok = tunekit("eval", str(run), "--min", "accuracy=0.5", "--min", "f1_macro=0.5", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    fail = run_in_process("eval", str(run), "--min", "accuracy=1.01")
    assert fail.returncode == 3
    assert "quality gate failed" in fail.stderr and "Traceback" not in fail.stderr
    as_json = run_in_process("eval", str(run), "--json", "--min", "accuracy=0.5")
    parsed = json.loads(as_json.stdout)
    assert parsed["gates"][0]["passed"] is True and "confusion_matrix" in parsed
    unknown = run_in_process("eval", str(run), "--min", "bleu=10")
    assert unknown.returncode == 2 and "'bleu', which this evaluation does not produce" in unknown.stderr
    typo = run_in_process("eval", str(run), "--max", "acuracy=1")
    assert typo.returncode == 2 and "unknown metric 'acuracy'" in typo.stderr

    # CI use: a ceiling, a baseline comparison and JUnit XML with one test case per gate
    baseline = tmp_path / "baseline.json"
    baseline.write_text((run / "eval" / "metrics.json").read_text())
    junit = tmp_path / "reports" / "gates.xml"
    gated = run_in_process("eval", str(run), "--max", "accuracy=1.0", "--baseline", str(baseline),
                    "--max-drop", "accuracy=0.0", "--junit", str(junit))
    assert gated.returncode == 0, gated.stderr
    import xml.etree.ElementTree as ET

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    better = json.loads(baseline.read_text())
    better["accuracy"] += 0.05  # the earlier model was better: the drop exceeds the allowance
    baseline.write_text(json.dumps(better))
    dropped = run_in_process("eval", str(run), "--baseline", str(baseline), "--max-drop", "accuracy=0.01",
                      "--junit", str(junit))
    assert dropped.returncode == 3 and "within 0.01 of baseline" in dropped.stderr
    cases = ET.parse(junit).getroot().find("testsuite").findall("testcase")
    assert len(cases) == 1 and cases[0].find("failure") is not None


def test_rerun_refuses_then_overwrite_and_resume(trained, tmp_path):
    recipe, run, _ = trained
    before = (run / "model" / "model.safetensors").read_bytes()
    again = tunekit("finetune", str(recipe), cwd=tmp_path)
    assert again.returncode == 2 and "already holds a training run" in again.stderr
    assert (run / "model" / "model.safetensors").read_bytes() == before

    # resume continues from the last checkpoint: one more epoch on top of the five done
    resumed = tunekit("finetune", str(recipe), "--resume", "--set", "train.epochs=6", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from checkpoint-55" in resumed.stderr  # 168 rows / 16 = 11 steps x 5 epochs
    assert json.loads(resumed.stdout)["train"]["global_step"] == 66
    assert (run / "checkpoints" / "checkpoint-66" / "trainer_state.json").is_file()

    # overwrite retrains from scratch; the same seed gives the same weights
    over = tunekit("finetune", str(recipe), "--overwrite", "--json", cwd=tmp_path)
    assert over.returncode == 0, over.stderr
    assert (run / "model" / "model.safetensors").read_bytes() == before


def test_eval_model_on_a_data_file(shared, tmp_path):
    _, run, _ = shared
    data = tmp_path / "heldout.jsonl"
    rows = [{"review": "great fun excellent the movie", "sentiment": "positive"},
            {"review": "awful dull boring the plot", "sentiment": "negative"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tunekit("eval", "--model", str(run / "model"), "--data", str(data), "--column", "text=review",
                  "--column", "label=sentiment", "--out", str(tmp_path / "scored"), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)
    assert metrics["n"] == 2
    assert (tmp_path / "scored" / "predictions.jsonl").is_file()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"review": "x", "sentiment": "neutral"}) + "\n")
    out = run_in_process("eval", "--model", str(run / "model"), "--data", str(bad), "--column", "text=review",
                         "--column", "label=sentiment")
    assert out.returncode == 2 and "unknown label 'neutral'" in out.stderr


MEAN_LENGTH_MODULE = '''
import datasets
import evaluate


class MeanPrediction(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="share of predictions equal to class 1", citation="",
                                   inputs_description="",
                                   features=datasets.Features({"predictions": datasets.Value("int64"),
                                                               "references": datasets.Value("int64")}))

    def _compute(self, predictions, references):
        return {"share": sum(p == 1 for p in predictions) / len(predictions), "note": "not a number"}
'''


def test_eval_intervals_limit_and_a_user_metric_module(shared, tmp_path):
    _, run, _ = shared
    module = tmp_path / "positive_share.py"
    module.write_text(MEAN_LENGTH_MODULE)
    out = tunekit("eval", str(run), "--limit", "20", "--metric-module", str(module),
                  "--min", "positive_share_share=0.1", "--out", str(tmp_path / "lim"), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)
    assert metrics["n"] == 20
    preds = [json.loads(line) for line in (tmp_path / "lim" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 20
    # the user's module ran on these 20 predictions; its non-numeric result is left out
    assert metrics["positive_share_share"] == pytest.approx(sum(p["prediction"] == "positive" for p in preds) / 20)
    assert "positive_share_note" not in metrics and metrics["module_metrics"] == ["positive_share_share"]
    # a 95% interval per metric around its value, described beside it
    assert metrics["interval"] == {"method": "bootstrap", "kind": "percentile", "confidence": 0.95,
                                   "resamples": 1000, "seed": 0}
    for key in ("accuracy", "f1_macro", "precision_macro", "recall_macro"):
        low, high = metrics["intervals"][key]
        assert low <= metrics[key] <= high and 0 <= low and high <= 1
    full = json.loads((run / "eval" / "metrics.json").read_text())
    assert full["n"] == 48 and "intervals" in full
    # the same sample every time
    again = run_in_process("eval", str(run), "--limit", "20", "--out", str(tmp_path / "lim2"), "--json")
    assert json.loads(again.stdout)["intervals"] == metrics["intervals"]
    assert (tmp_path / "lim2" / "predictions.jsonl").read_text() == (tmp_path / "lim" / "predictions.jsonl").read_text()
    # a module that does not exist, or a gate on a module metric without the module: exit 2 early
    missing = run_in_process("eval", str(run), "--metric-module", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "metric module not found" in missing.stderr
    unknown = run_in_process("eval", str(run), "--min", "positive_share_share=0.1")
    assert unknown.returncode == 2 and "unknown metric" in unknown.stderr
