"""tunekit export --format onnx on tiny BERT runs (classification, qa, a LoRA adapter): the graph is
checked here again, independently of the command's own parity check, with onnxruntime against
the PyTorch model on every test row, and on shapes the export never saw (dynamic axes)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from tunekit.cli.app import app
from cli_checks import assert_clean_error

try:  # tests/ is not a package: pytest puts it on sys.path for its conftest
    from conftest import make_rows, write_rows_csv
except ImportError:  # pragma: no cover
    from tests.conftest import make_rows, write_rows_csv

runner = CliRunner()
ATOL = 1e-4
WORDS = ["the", "movie", "film", "was", "actors", "story", "a", "and", "really", "this", "good", "dull"]


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.stderr, result.exception)
    return result


def train(folder: Path, recipe: dict) -> Path:
    """Finetune in this process (the import cost of a subprocess is most of a tiny run)."""
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    invoke("finetune", str(path))
    return Path(recipe["output_dir"])


def classification_recipe(folder: Path, model: Path, **train_extra) -> dict:
    return {"name": "tiny", "task": "classification", "output_dir": str(folder / "run"),
            "model": {"name": str(model)},
            "data": {"train": str(write_rows_csv(folder / "reviews.csv", make_rows(160))),
                     "split": {"validation": 0.1, "test": 0.25, "seed": 1}},
            "tokenize": {"max_length": 32},
            "train": {"epochs": 1, "batch_size": 16, "lr": 5e-3, "scheduler": "constant", "seed": 1, **train_extra}}


def write_qa(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            number = str(rng.randrange(100, 999))
            # up to 27 words: with max_length 24 the longer contexts become several windows
            context = " ".join(rng.choices(WORDS, k=rng.randrange(3, 20)) + ["plot", number] + rng.sample(WORDS, 6))
            fh.write(json.dumps({"id": f"{seed}-{i}", "context": context, "question": "which plot number",
                                 "answers": {"text": [number],
                                             "answer_start": [context.index(f"plot {number}") + 5]}}) + "\n")
    return path


@pytest.fixture(scope="module")
def cls_run(tiny_model_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export-cls")
    return train(folder, classification_recipe(folder, tiny_model_dir))


@pytest.fixture(scope="module")
def qa_run(tiny_model_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export-qa")
    return train(folder, {
        "name": "tiny-qa", "task": "qa", "output_dir": str(folder / "run"), "model": {"name": str(tiny_model_dir)},
        "data": {"train": str(write_qa(folder / "train.jsonl", 96, 1)),
                 "test": str(write_qa(folder / "test.jsonl", 30, 2)), "split": {"validation": 0.1}},
        "tokenize": {"max_length": 24, "stride": 8},
        "train": {"epochs": 1, "batch_size": 16, "lr": 5e-3, "scheduler": "constant", "seed": 1}})


@pytest.fixture(scope="module")
def cls_export(cls_run) -> tuple[Path, dict]:
    result = invoke("export", str(cls_run), "--json")
    return cls_run / "onnx", json.loads(result.stdout)


# ---- an independent check ------------------------------------------------------------------------

def session(folder: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])


def padded(rows: list[dict], names: list[str]) -> dict:
    """Right-padded int64 arrays (pad id 0, as the tiny tokenizer's [PAD] is), built by hand."""
    width = max(len(r["input_ids"]) for r in rows)
    return {n: np.array([r[n] + [0] * (width - len(r[n])) for r in rows], dtype=np.int64) for n in names}


def max_diff_on_split(run: Path, folder: Path, model, outputs: list[str], batch: int = 7) -> tuple[float, int]:
    """Largest |onnx - torch| over every row of the run's test split, in batches of `batch` rows."""
    import datasets

    sess = session(folder)
    names = [i.name for i in sess.get_inputs()]
    data = datasets.load_from_disk(str(run / "data" / "tokenized"))["test"]
    rows = [{n: data[n][i] for n in names} for i in range(len(data))]
    worst = 0.0
    for start in range(0, len(rows), batch):
        inputs = padded(rows[start:start + batch], names)
        with torch.no_grad():
            want = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, return_dict=True)
        for name, have in zip(outputs, sess.run(outputs, inputs)):
            assert have.shape == tuple(want[name].shape)
            worst = max(worst, float(np.abs(have - want[name].numpy()).max()))
    return worst, len(rows)


def check_dynamic_axes(folder: Path, model, outputs: list[str]) -> None:
    """Shapes the export never saw (it used batch 2 x length 8): batch 1 and 5, lengths 3 and 19,
    with padding inside the batch."""
    sess = session(folder)
    names = [i.name for i in sess.get_inputs()]
    for shape in [(1, 3), (5, 19)]:
        gen = torch.Generator().manual_seed(shape[1])
        inputs = {"input_ids": torch.randint(5, 40, shape, generator=gen), "attention_mask": torch.ones(shape, dtype=torch.long),
                  "token_type_ids": torch.zeros(shape, dtype=torch.long)}
        if shape[0] > 1:
            inputs["attention_mask"][1:, shape[1] // 2:] = 0
            inputs["input_ids"][1:, shape[1] // 2:] = 0
        inputs = {k: v for k, v in inputs.items() if k in names}
        with torch.no_grad():
            want = model(**inputs, return_dict=True)
        for name, have in zip(outputs, sess.run(outputs, {k: v.numpy() for k, v in inputs.items()})):
            assert have.shape == tuple(want[name].shape), (name, shape)
            assert np.abs(have - want[name].numpy()).max() <= ATOL, (name, shape)


def graph_axes(folder: Path) -> dict:
    import onnx

    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*graph.input, *graph.output]}


# ---- tests ---------------------------------------------------------------------------------------

def test_classification_export_matches_pytorch(cls_run, cls_export, tmp_path):
    from transformers import AutoModelForSequenceClassification

    folder, report = cls_export
    plain = tmp_path / "plain"
    plain.mkdir()
    assert folder.stat().st_mode == plain.stat().st_mode  # not atomic_dir's private 0700
    assert {"model.onnx", "config.json", "tokenizer.json", "tunekit.json", "export_report.json"} <= \
        {p.name for p in folder.iterdir()}
    assert json.loads((folder / "export_report.json").read_text()) == report
    assert json.loads((folder / "tunekit.json").read_text())["task"] == "classification"
    assert json.loads((folder / "config.json").read_text())["id2label"] == {"0": "negative", "1": "positive"}
    assert report["outputs"] == ["logits"] and report["inputs"][:2] == ["input_ids", "attention_mask"]
    assert report["opset"] >= 17 and report["merged_adapter"] is False
    axes = graph_axes(folder)
    assert axes["input_ids"] == ["batch", "sequence"] and axes["logits"] == ["batch", 2]

    parity = report["parity"]
    assert parity["rows"] == 40 and parity["data"].startswith("test split of")  # 25% of 160 rows
    assert parity["max_abs_diff"] <= ATOL and parity["passed"] is True and parity["atol"] == ATOL
    assert parity["predictions_agree"] == parity["rows"] and parity["seconds"] > 0

    model = AutoModelForSequenceClassification.from_pretrained(cls_run / "model").eval()
    worst, rows = max_diff_on_split(cls_run, folder, model, ["logits"])
    assert rows == 40 and worst <= ATOL
    check_dynamic_axes(folder, model, ["logits"])


def test_qa_export_matches_pytorch(qa_run):
    from transformers import AutoModelForQuestionAnswering

    result = invoke("export", str(qa_run), "--limit", "20", "--json")
    report = json.loads(result.stdout)
    folder = qa_run / "onnx"
    assert report["outputs"] == ["start_logits", "end_logits"] and report["task"] == "qa"
    axes = graph_axes(folder)
    assert axes["start_logits"] == ["batch", "sequence"] and axes["end_logits"] == ["batch", "sequence"]
    parity = report["parity"]
    assert parity["rows"] == 20 and parity["max_abs_diff"] <= ATOL and parity["predictions_agree"] == 20

    model = AutoModelForQuestionAnswering.from_pretrained(qa_run / "model").eval()
    worst, rows = max_diff_on_split(qa_run, folder, model, ["start_logits", "end_logits"])
    assert rows > 30 and worst <= ATOL  # every window of the 30 test questions, not only --limit's 20
    check_dynamic_axes(folder, model, ["start_logits", "end_logits"])


def test_existing_output_refused_then_overwritten(cls_run, cls_export, tmp_path):
    """Exporting a model folder (no run): the check uses built-in sentences and says so."""
    import shutil

    out = tmp_path / "exported"
    shutil.copytree(cls_export[0], out)
    (out / "model.onnx").write_bytes(b"an older export")
    refused = runner.invoke(app, ["export", str(cls_run / "model"), "--out", str(out)])
    assert_clean_error(refused, "already exists", "--overwrite")
    assert (out / "model.onnx").read_bytes() == b"an older export"

    replaced = invoke("export", str(cls_run / "model"), "--out", str(out), "--overwrite")
    assert "8 built-in sentences (a model folder, not a run)" in " ".join(replaced.stderr.split())
    report = json.loads((out / "export_report.json").read_text())
    assert report["parity"]["rows"] == 8 and report["parity"]["max_abs_diff"] <= ATOL
    assert report["parity"]["predictions_agree"] == 8
    session(out)  # the new graph loads
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]  # no temporary folder left


def test_failed_parity_check_leaves_nothing(cls_run, cls_export, tmp_path, monkeypatch):
    """The check's failure path on a real graph (the one exported above, copied in to save an export)."""
    import shutil

    from tunekit.shipping import onnx_export

    def copy_graph(model, tokenizer, task, path):
        shutil.copy(cls_export[0] / "model.onnx", path)
        return {k: cls_export[1][k] for k in ("file", "inputs", "outputs", "opset")}

    monkeypatch.setattr(onnx_export, "export_onnx", copy_graph)
    out = tmp_path / "strict"
    result = runner.invoke(app, ["export", str(cls_run), "--out", str(out), "--atol", "1e-15", "--limit", "8"])
    assert_clean_error(result, "ONNX parity check failed", "on 8 rows", "--atol")
    assert list(tmp_path.iterdir()) == []


def test_adapter_run_exports_a_merged_model(tiny_model_dir, tmp_path):
    from tunekit.pipeline.adapters import load_model

    run = train(tmp_path, classification_recipe(tmp_path, tiny_model_dir, peft={"method": "lora", "r": 4}))
    assert (run / "model" / "adapter_config.json").is_file()
    report = json.loads(invoke("export", str(run), "--json").stdout)
    assert report["merged_adapter"] is True and report["parity"]["max_abs_diff"] <= ATOL
    # the unmerged adapter on its base gives the same outputs as the merged graph
    adapter = load_model(str(run / "model")).eval()
    worst, rows = max_diff_on_split(run, run / "onnx", adapter, ["logits"])
    assert rows == 40 and worst <= ATOL
