"""tunekit predict on tiny runs of classification, qa and causal_lm (trained once per session
through the installed command), checked against what `tunekit eval` wrote for the same inputs:
the check that predict encodes raw input exactly as training and evaluation did.

The trained runs are cached in this module (`trained_run`), so test_serve.py reuses them."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from causal_lm_tiny import instruction_rows, save_tiny_lm, write_jsonl
from conftest import make_rows
from tunekit.cli.app import app

runner = CliRunner()
_RUNS: dict[str, Path] = {}
QA_WORDS = ["the", "movie", "film", "was", "actors", "story", "a", "and", "really", "this", "good", "dull"]


def invoke(*args: str):
    """tunekit in-process (a subprocess pays ~9 s of imports per call here)."""
    return runner.invoke(app, list(args))


def qa_rows(n: int, seed: int, long_every: int = 0) -> list[dict]:
    """The answer is the number after "plot"; every long_every-th passage is long enough to be
    cut into several windows at max_length 24."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        number = str(rng.randrange(100, 999))
        filler = 30 if long_every and i % long_every == 0 else 5
        words = [rng.choice(QA_WORDS) for _ in range(filler)] + ["plot", number] + rng.sample(QA_WORDS, 4)
        context = " ".join(words)
        rows.append({"id": f"{seed}-{i}", "context": context, "question": "which plot number",
                     "answers": {"text": [number], "answer_start": [context.index(f"plot {number}") + 5]}})
    return rows


def _train(name: str, root: Path, recipe: dict) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(json.dumps({"name": name, "output_dir": str(root / name), **recipe}), encoding="utf-8")
    # in-process: a `tunekit` subprocess costs 10-30 s of imports on a busy 2-core machine
    out = invoke("finetune", str(path), "--json")
    assert out.exit_code == 0, out.output[-3000:]
    return root / name


def trained_run(kind: str, factory, tiny_model_dir: Path) -> Path:
    """A tiny trained run of `kind` (classification | qa | causal_lm), trained once per session."""
    if kind in _RUNS:
        return _RUNS[kind]
    root = factory.mktemp(f"predict-{kind}")
    # no validation passes or checkpoints: they cost more than the training steps of these models
    train = {"batch_size": 16, "lr": 5e-3, "scheduler": "constant", "seed": 1, "eval_every": "never",
             "keep_best": False}
    if kind == "classification":
        data = root / "reviews.csv"
        with open(data, "w", newline="", encoding="utf-8") as fh:  # recipe column names, not the task's
            writer = csv.DictWriter(fh, fieldnames=["review", "sentiment"])
            writer.writeheader()
            writer.writerows({"review": r["text"], "sentiment": r["label"]} for r in make_rows(200))
        run = _train(kind, root, {
            "task": "classification", "model": {"name": str(tiny_model_dir)},
            "data": {"train": str(data), "columns": {"text": "review", "label": "sentiment"},
                     "split": {"validation": 0.1, "test": 0.2, "seed": 1}},
            "tokenize": {"max_length": 32}, "train": {**train, "epochs": 4}})
    elif kind == "qa":
        run = _train(kind, root, {
            "task": "qa", "model": {"name": str(tiny_model_dir)},
            "data": {"train": str(write_jsonl(root / "train.jsonl", qa_rows(200, 1))),
                     "test": str(write_jsonl(root / "test.jsonl", qa_rows(24, 2, long_every=4))),
                     "split": {"validation": 0.1}},
            "tokenize": {"max_length": 24, "stride": 8}, "train": {**train, "epochs": 6}})
    else:
        model = save_tiny_lm(root / "tiny-lm", chat_template=True)
        run = _train(kind, root, {
            "task": "causal_lm", "model": {"name": str(model)},
            "data": {"train": str(write_jsonl(root / "pairs.jsonl", instruction_rows(80))),
                     "split": {"validation": 0.1, "test": 0.1, "seed": 1}},
            "tokenize": {"max_length": 64},
            "train": {**train, "epochs": 1, "batch_size": 8, "lr": 3e-3},
            "eval": {"generation": {"max_new_tokens": 6, "batch_size": 16}, "samples": 4}})
    _RUNS[kind] = run
    return run


def eval_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "eval" / "predictions.jsonl").read_text().splitlines()]


def predict_json(*args: str):
    result = invoke("predict", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one torch thread is 10-20x faster than two
    fighting other processes for the cores (measured: 40 steps of the tiny BERT, 0.7 s vs 13 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, tiny_model_dir) -> Path:
    return trained_run("classification", tmp_path_factory, tiny_model_dir)


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory, tiny_model_dir) -> Path:
    return trained_run("qa", tmp_path_factory, tiny_model_dir)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory, tiny_model_dir) -> Path:
    return trained_run("causal_lm", tmp_path_factory, tiny_model_dir)


# ---- classification ----------------------------------------------------------------------------

def test_classification_agrees_with_eval_batched_and_one_by_one(classifier, tmp_path):
    expected = eval_rows(classifier)[:10]
    # the recipe's column name (review) works as well as the task's (text); other fields are kept
    lines = [{"review" if i % 2 else "text": r["text"], "gold": r["label"]} for i, r in enumerate(expected)]
    data = write_jsonl(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    summary = predict_json(str(classifier), "--file", str(data), "--out", str(out), "--batch-size", "4")
    assert summary["inputs"] == 10 and summary["out"] == str(out)
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [{k: v for k, v in w.items() if k != "prediction"} for w in written] == lines  # order and fields kept
    for w, e in zip(written, expected):
        assert w["prediction"]["label"] == e["prediction"]
        for name, p in e["scores"].items():
            assert w["prediction"]["scores"][name] == pytest.approx(p, abs=1e-5)
    # one at a time from the command line: the same numbers as in a length-sorted batch
    for w, e in list(zip(written, expected))[:3]:
        one = predict_json(str(classifier), e["text"])
        assert one["text"] == e["text"] and one["prediction"]["label"] == w["prediction"]["label"]
        for name, p in w["prediction"]["scores"].items():
            assert one["prediction"]["scores"][name] == pytest.approx(p, abs=1e-5)

    # an existing --out is refused, then replaced with --overwrite
    again = invoke("predict", str(classifier), "--file", str(data), "--out", str(out))
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert json.loads(out.read_text().splitlines()[0]) == written[0]
    replaced = invoke("predict", str(classifier), "--file", str(data), "--out", str(out), "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert not list(tmp_path.glob(".out.jsonl.*"))  # no temporary file left beside it


def test_classification_table_and_whitespace_cleaning(classifier):
    result = invoke("predict", str(classifier), "great   fun\n excellent the movie")
    assert result.exit_code == 0, result.output
    assert "positive" in result.stderr or "negative" in result.stderr  # the Rich table, on the console
    # prepare collapsed whitespace before training: predict does too
    a = predict_json(str(classifier), "great   fun\n excellent the movie")["prediction"]
    b = predict_json(str(classifier), "great fun excellent the movie")["prediction"]
    assert a == b


# ---- extractive QA -----------------------------------------------------------------------------

def test_qa_agrees_with_eval_and_maps_spans(qa_run, tmp_path):
    test = {r["id"]: r for r in qa_rows(24, 2, long_every=4)}
    expected = eval_rows(qa_run)
    data = write_jsonl(tmp_path / "qa.jsonl", [{"id": e["id"], "question": test[e["id"]]["question"],
                                                  "context": test[e["id"]]["context"]} for e in expected])
    results = predict_json(str(qa_run), "--file", str(data), "--batch-size", "5")
    assert len(results) == len(expected)
    for r, e in zip(results, expected):
        assert r["id"] == e["id"]
        p = r["prediction"]
        assert p["answer"] == e["prediction"]
        assert p["score"] == pytest.approx(e["score"], abs=1e-3)
        assert r["context"][p["start"]:p["end"]] == p["answer"]  # character offsets into the context
    long_ones = [r for r in results if len(r["context"].split()) > 30]
    assert long_ones and sum(r["prediction"]["answer"] == test[r["id"]]["answers"]["text"][0]
                             for r in results) >= len(results) // 2  # the tiny model learned the task

    # one question from the command line, the passage as --context or as TEXT
    first = results[0]
    one = predict_json(str(qa_run), "--question", first["question"], "--context", first["context"])
    assert one["prediction"] == pytest.approx(first["prediction"])
    same = predict_json(str(qa_run), first["context"], "--question", first["question"])
    assert same["prediction"] == one["prediction"]


# ---- causal LM (generative) ----------------------------------------------------------------------

def test_causal_lm_generates_what_eval_generated(lm_run, tmp_path):
    expected = eval_rows(lm_run)  # the first eval.samples test prompts and their generations
    assert expected
    data = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": e["prompt"]} for e in expected])
    out = tmp_path / "gen.jsonl"
    summary = predict_json(str(lm_run), "--file", str(data), "--out", str(out))
    assert summary["inputs"] == len(expected)
    written = [json.loads(line) for line in out.read_text().splitlines()]
    for w, e in zip(written, expected):
        assert set(w["prediction"]) == {"generated_text", "capped"}
        assert w["prediction"]["generated_text"] == e["generation"]  # same prompt rendering, same batch
        assert w["prediction"]["capped"] == e["capped"]

    one = predict_json(str(lm_run), expected[0]["prompt"], "--max-new-tokens", "2")
    assert isinstance(one["prediction"]["generated_text"], str)
    assert len(one["prediction"]["generated_text"].split()) <= 2  # word-level tokenizer: tokens are words
