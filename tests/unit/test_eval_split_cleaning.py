"""data.clean.splits: the drop rules clean train (and the splits carved out of it); a validation or
test file is kept whole, with what the rules would drop reported as a warning (an error under
strict), and rows that cannot be scored left out, counted and warned about."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_rows
from tunekit.errors import DataError, RecipeError
from tunekit.pipeline.prepare import run_prepare
from tunekit.recipe.schema import DataConfig
from tunekit.runs import RunDir
from tunekit.tasks import get_task

LONG = "the plot of this film follows a young woman who moves to the city and learns to paint with an old master"


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in ("text", "label")})
    return path




def messy_test(tmp_path: Path) -> tuple[Path, list[dict]]:
    """10 rows: 6 clean, a duplicate, an empty text, a long row, a row with no label."""
    rows = [{"text": r["text"] + " test", "label": r["label"]} for r in make_rows(6, seed=9)]
    rows += [dict(rows[0]), {"text": "   ", "label": "positive"}, {"text": LONG, "label": "negative"},
             {"text": "no label here", "label": None}]
    return write_csv(tmp_path / "test.csv", rows), rows


def data_section(tmp_path: Path, test: Path, **extra) -> dict:
    train = make_rows(60)
    train += [dict(train[0]), dict(train[1])]  # two duplicates in train: dropped there
    return {"train": str(write_csv(tmp_path / "train.csv", train)), "test": str(test),
            "split": {"validation": 0.1, "seed": 1}, "quality": {"max_chars": 80}, **extra}


def prepared(run: RunDir, split: str) -> list[str]:
    import datasets

    return datasets.load_from_disk(str(run.prepared))[split]["text"]


def test_a_test_file_is_kept_whole_and_what_the_rules_would_drop_is_a_warning(make_recipe, run, tmp_path):
    test, rows = messy_test(tmp_path)
    report = run_prepare(make_recipe(data_section(tmp_path, test)), run).report
    assert report["kept_whole"] == ["test"]
    assert report["rows_given"] == {"test": 10}
    rules = report["rules"]["test"]
    # only the row without a label is gone: duplicate, empty and too-long rows stay and are scored
    assert (rules["rows_in"], rules["missing_label"], rules["rows_out"], report["rows"]["test"]) == (10, 1, 9, 9)
    assert {k: n for k, n in rules["would_drop"].items() if n} == {"duplicates": 1, "empty_text": 1,
                                                                   "too_many_chars": 1}
    assert "duplicates" not in rules and "too_many_chars" not in rules
    texts = prepared(run, "test")
    assert texts.count(rows[0]["text"]) == 2 and "" in texts and LONG in texts
    warnings = report["warnings"]
    assert "test: 1 of its 10 rows cannot be scored and are left out (missing label: 1)" in warnings
    note = next(w for w in warnings if w.startswith("test is its own file, kept whole"))
    assert "duplicates: 1" in note and "empty text: 1" in note and "too many chars: 1" in note
    assert "data.clean.splits" in note
    # train is cleaned as before
    assert report["rules"]["train"]["duplicates"] == 2


def test_strict_turns_the_kept_whole_warning_into_an_error(make_recipe, run, tmp_path):
    test, _ = messy_test(tmp_path)
    recipe = make_recipe(data_section(tmp_path, test, quality={"max_chars": 80, "strict": True}))
    with pytest.raises(DataError, match="strict mode: test: 1 of its 10 rows cannot be scored"):
        run_prepare(recipe, run)


def test_listing_a_split_in_clean_splits_cleans_it(make_recipe, run, tmp_path):
    test, rows = messy_test(tmp_path)
    report = run_prepare(make_recipe(data_section(tmp_path, test, clean={"splits": ["train", "test"]})), run).report
    rules = report["rules"]["test"]
    assert report["kept_whole"] == []
    assert (rules["duplicates"], rules["missing_or_empty_text"], rules["too_many_chars"], rules["rows_out"]) \
        == (1, 1, 1, 6)
    assert "would_drop" not in rules and not any("kept whole" in w for w in report["warnings"])
    assert prepared(run, "test").count(rows[0]["text"]) == 1


def test_splits_carved_out_of_train_are_cleaned_with_it(make_recipe, run, tmp_path):
    train = make_rows(100) + [dict(r) for r in make_rows(10)] + [{"text": "  ", "label": "positive"}]
    path = write_csv(tmp_path / "all.csv", train)
    report = run_prepare(make_recipe({"train": str(path), "split": {"validation": 0.1, "test": 0.2}}), run).report
    assert report["kept_whole"] == [] and report["rows_given"] == {}
    assert report["rules"]["train"]["duplicates"] == 10
    assert sum(report["rows"].values()) == 100  # duplicates and the empty row gone before the split


def test_within_and_label_conflict_drops_spare_a_kept_whole_split(make_recipe, run, tmp_path):
    train = make_rows(60) + [{"text": "a film i will not forget", "label": "positive"}]
    test = [{"text": r["text"] + " test", "label": r["label"]} for r in make_rows(8, seed=5)]
    test += [{"text": LONG, "label": "positive"}, {"text": LONG.replace("old master", "old teacher"), "label": "positive"},
             {"text": "a film i will not forget", "label": "negative"}]
    data = {"train": str(write_csv(tmp_path / "train.csv", train)),
            "test": str(write_csv(tmp_path / "test.csv", test)), "split": {"validation": 0.0},
            "quality": {"label_conflicts": "drop", "near_duplicates": {"within": "drop", "across": "off"}}}
    report = run_prepare(make_recipe(data), run).report
    counts = report["quality"]["counts"]
    assert counts["train"]["dropped"] == 1 and counts["test"]["dropped"] == 0  # the conflicting train row only
    assert report["rows"]["test"] == 11
    would = report["rules"]["test"]["would_drop"]
    assert would["label_conflicts"] == 1 and would["within_duplicates"] == 1
    assert any(w.startswith("test is its own file, kept whole") and "within duplicates: 1" in w
               for w in report["warnings"])


def test_a_kept_whole_file_with_no_usable_row_is_still_an_error(make_recipe, run, tmp_path, sentiment_csv):
    bad = write_csv(tmp_path / "nolabels.csv", [{"text": "fine text", "label": None}] * 3)
    with pytest.raises(DataError, match=r"no test rows are left after cleaning \(3 in; dropped: 3 missing_label\)"):
        run_prepare(make_recipe({"train": str(sentiment_csv), "test": str(bad)}), run)


def test_clean_splits_must_list_train(make_recipe, tmp_path, sentiment_csv):
    with pytest.raises(RecipeError, match="must list train"):
        make_recipe({"train": str(sentiment_csv), "clean": {"splits": ["test"]}})
    assert DataConfig(train="x").clean.splits == ["train"]


@pytest.mark.parametrize("task, row", [
    ("summarization", {"id": "1", "source": "a long document", "target": "short"}),
    ("causal_lm", {"prompt": "say hi", "response": "hi"}),
])
def test_generative_tasks_keep_duplicates_when_kept_whole(task, row):
    module = get_task(task)
    table = pd.DataFrame([row, dict(row), {**row, "id": "3"}])
    data = DataConfig(train="x")
    kept, counts = module.clean(table, data, module.meta(table, data), "test data", drop=False)
    assert len(kept) == 3 and counts["would_drop"] == {"duplicates": 2} and "duplicates" not in counts
    kept, counts = module.clean(table, data, module.meta(table, data), "test data")
    assert len(kept) == 1 and counts["duplicates"] == 2


def test_qa_keeps_repeated_questions_but_scores_a_repeated_id_once():
    qa = get_task("qa")
    answers = {"text": ["Paris"], "answer_start": [0]}
    base = {"context": "Paris is big.", "question": "Which city?", "answers": answers}
    table = pd.DataFrame([{"id": "a", **base}, {"id": "b", **base}, {"id": "a", **base},
                          {"id": "c", "context": "", "question": "?", "answers": answers}])
    kept, counts = qa.clean(table, DataConfig(train="x"), {}, "test data", drop=False)
    assert kept["id"].tolist() == ["a", "b"]
    assert counts["repeated_question_id"] == 1 and counts["missing_question_or_context"] == 1
    assert counts["would_drop"] == {"duplicates": 1}
    kept, counts = qa.clean(table.iloc[:2], DataConfig(train="x"), {}, "train data")
    assert kept["id"].tolist() == ["a"] and counts["duplicates"] == 1
