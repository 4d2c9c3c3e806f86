"""The qa task's data side: SQuAD JSON read flat, offsets checked, passages kept in one split."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tunekit.cli.app import app
from tunekit.errors import DataError
from tunekit.recipe.schema import DataConfig
from tunekit.sources import load_table
from tunekit.tasks import qa

runner = CliRunner()
CONTEXT_A = "Velmira was founded in 1742 by Oskar Lend on the shore of Lake Orsen."
CONTEXT_B = "The Brisk River is short. It runs for nine kilometres before it meets the lake."


def squad(path, rows, version="1.1"):
    """rows: (context, question, answer text or None); answer_start is found in the context."""
    paragraphs = {}
    for i, (context, question, answer) in enumerate(rows):
        answers = [] if answer is None else [{"text": answer, "answer_start": context.index(answer)}]
        paragraphs.setdefault(context, []).append({"id": f"q{i}", "question": question, "answers": answers})
    data = [{"title": "t", "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}]
    path.write_text(json.dumps({"version": version, "data": data}), encoding="utf-8")
    return path


def test_squad_json_is_read_one_row_per_question(tmp_path):
    path = squad(tmp_path / "d.json", [(CONTEXT_A, "When was it founded?", "1742"),
                                       (CONTEXT_A, "Who founded it?", "Oskar Lend"),
                                       (CONTEXT_B, "How old is the river?", None)], "v2.0")
    table = load_table(str(path))
    assert list(table["id"]) == ["q0", "q1", "q2"]
    assert table["answers"][1] == {"text": ["Oskar Lend"], "answer_start": [CONTEXT_A.index("Oskar")]}
    assert table["answers"][2] == {"text": [], "answer_start": []}


def test_clean_keeps_contexts_verbatim_and_counts(tmp_path):
    table = load_table(str(squad(tmp_path / "d.json", [(CONTEXT_A + "  ", "  When?", "1742"),
                                                       (CONTEXT_B, "", "nine"),
                                                       (CONTEXT_B, "How long?", None)])))
    frame, counts = qa.clean(table, DataConfig(train="x"), {}, "train data")
    assert counts == {"rows_in": 3, "missing_question_or_context": 1, "duplicates": 0, "unanswerable": 1,
                      "rows_out": 2}
    assert frame["context"][0] == CONTEXT_A + "  "  # offsets count characters: no normalising
    assert frame["question"][0] == "When?"


def test_answer_offsets_that_miss_the_text_are_an_error(tmp_path):
    path = tmp_path / "d.jsonl"
    row = {"id": "a", "context": CONTEXT_A, "question": "When?", "answers": {"text": ["1742"], "answer_start": [3]}}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="does not match"):
        qa.clean(load_table(str(path)), DataConfig(train="x"), {}, "train data")


def test_split_keeps_each_passage_in_one_split():
    import pandas as pd

    frame = pd.DataFrame({"context": ["a", "b", "a", "c", "b", "a"], "question": list("uvwxyz")})
    units = qa.split_units(frame, stratify=True)
    assert sorted(sorted(u) for u in units[0]) == [[0, 2, 5], [1, 4], [3]]


def test_prepare_report_counts_answerable_and_passages(tmp_path, tiny_model_dir):
    rows = [(f"the plot {n} was good {k}", "which number", str(n)) for k, n in enumerate(range(100, 140))]
    rows += [(f"the plot was dull {k}", "which number", None) for k in range(10)]
    data = squad(tmp_path / "train.json", rows, "v2.0")
    recipe = tmp_path / "qa.yaml"
    recipe.write_text(json.dumps({"name": "q", "task": "qa", "output_dir": str(tmp_path / "run"),
                                  "model": {"name": str(tiny_model_dir)}, "data": {"train": str(data)}}))
    result = runner.invoke(app, ["prepare", str(recipe), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["version_2"] is True
    dist = report["distribution"]
    assert sum(d["answerable"] for d in dist.values()) == 40 and sum(d["unanswerable"] for d in dist.values()) == 10
    assert report["leakage"] == {"train/validation": 0, "train/test": 0, "validation/test": 0}
