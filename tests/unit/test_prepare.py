"""prepare: columns, labels, cleaning rules and their counts, splits, leakage and caching."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

try:  # tests/ is not a package: pytest puts it on sys.path for its conftest
    from conftest import make_rows
except ImportError:  # pragma: no cover - if tests/ becomes a package
    from tests.conftest import make_rows
from tunekit.errors import DataError
from tunekit.pipeline.prepare import report_path, run_prepare
from tunekit.runs import RunDir

DROP_KEYS = ("missing_or_empty_text", "missing_label", "score_dead_zone", "duplicates")


def write_csv(path: Path, rows: list[dict], fields: tuple[str, ...] = ("text", "label")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in fields})
    return path




def load_prepared(run: RunDir):
    import datasets

    return datasets.load_from_disk(str(run.prepared))


def split_rows(run: RunDir) -> dict[str, list[tuple[str, str]]]:
    """{split: [(text, label name), ...]} read back from the prepared folder."""
    dd = load_prepared(run)
    out = {}
    for split, ds in dd.items():
        names = ds.features["label"].names
        out[split] = [(t, names[i]) for t, i in zip(ds["text"], ds["label"])]
    return out


def assert_counts_add_up(rules: dict) -> None:
    dropped = sum(rules.get(k, 0) for k in DROP_KEYS)
    assert rules["rows_in"] == dropped + rules["rows_out"], rules


NO_SPLIT = {"validation": 0.0, "test": 0.0}


# ---- labels ----------------------------------------------------------------------------------

def test_string_labels(make_recipe, run, sentiment_csv):
    result = run_prepare(make_recipe({"train": str(sentiment_csv)}), run)
    assert not result.reused
    report = result.report
    assert report["label_names"] == ["negative", "positive"]
    assert report["split_from_train"] == ["validation", "test"]
    assert report["rows"] == {"train": 192, "validation": 24, "test": 24}
    assert report["rules"]["train"]["rows_in"] == 240
    assert report["rules"]["train"]["rows_out"] == 240
    assert report["warnings"] == []
    dd = load_prepared(run)
    assert set(dd) == {"train", "validation", "test"}
    assert dd["train"].features["label"].names == ["negative", "positive"]
    # every row keeps its own label
    truth = {r["text"]: r["label"] for r in make_rows(240)}
    for rows in split_rows(run).values():
        for text, label in rows:
            assert truth[text] == label


def test_integer_labels_map_to_names(make_recipe, run, tmp_path):
    rows = [{"text": f"row {i}", "label": i % 2} for i in range(20)]
    path = write_csv(tmp_path / "ints.csv", rows)
    result = run_prepare(make_recipe({"train": str(path), "labels": {"names": ["neg", "pos"]},
                                      "split": NO_SPLIT}), run)
    assert result.report["label_names"] == ["neg", "pos"]
    assert result.report["label_distribution"]["train"] == {"neg": 10, "pos": 10}
    got = dict(split_rows(run)["train"])
    assert got["row 0"] == "neg" and got["row 1"] == "pos" and got["row 7"] == "pos"


def test_integer_labels_as_floats_with_gaps_in_jsonl(make_recipe, run, tmp_path):
    path = tmp_path / "ints.jsonl"
    rows = [{"text": "a", "label": 1}, {"text": "b", "label": 0}, {"text": "c", "label": None},
            {"text": "d", "label": 2}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = run_prepare(make_recipe({"train": str(path), "labels": {"names": ["x", "y", "z"]},
                                      "split": NO_SPLIT}), run)
    assert dict(split_rows(run)["train"]) == {"a": "y", "b": "x", "d": "z"}
    assert result.report["rules"]["train"]["missing_label"] == 1


def test_integer_labels_without_names_sort_numerically(make_recipe, run, tmp_path):
    rows = [{"text": f"t{i}", "label": [10, 2, 1][i % 3]} for i in range(9)]
    path = write_csv(tmp_path / "ints.csv", rows)
    result = run_prepare(make_recipe({"train": str(path), "split": NO_SPLIT}), run)
    assert result.report["label_names"] == ["1", "2", "10"]


def test_integer_label_out_of_names_range_is_unknown(make_recipe, run, tmp_path):
    path = write_csv(tmp_path / "ints.csv", [{"text": "a", "label": 0}, {"text": "b", "label": 2}])
    with pytest.raises(DataError, match="unknown label '2'"):
        run_prepare(make_recipe({"train": str(path), "labels": {"names": ["neg", "pos"]},
                                 "split": NO_SPLIT}), run)


def test_score_column_thresholds_and_dead_zone(make_recipe, run, tmp_path):
    scores = [-4, -2.5, -0.5, -0.49, 0, 0.3, 0.49, 0.5, 1.7, 4, 4.5, None]
    rows = [{"text": f"snippet {i}", "score": s} for i, s in enumerate(scores)]
    path = write_csv(tmp_path / "scores.csv", rows, ("text", "score"))
    recipe = make_recipe({"train": str(path), "columns": {"label": "score"},
                          "labels": {"from_score": {"positive": [0.5, 4], "negative": [-4, -0.5]}},
                          "split": NO_SPLIT})
    result = run_prepare(recipe, run)
    rules = result.report["rules"]["train"]
    # -0.49, 0, 0.3, 0.49 in the gap, and 4.5 above every range
    assert rules["score_dead_zone"] == 5
    assert rules["missing_label"] == 1
    assert rules["rows_out"] == 6
    assert_counts_add_up(rules)
    assert result.report["label_names"] == ["negative", "positive"]  # ordered by range
    got = dict(split_rows(run)["train"])
    assert got == {"snippet 0": "negative", "snippet 1": "negative", "snippet 2": "negative",
                   "snippet 7": "positive", "snippet 8": "positive", "snippet 9": "positive"}


def test_score_column_with_text_is_a_data_error(make_recipe, run, sentiment_csv):
    recipe = make_recipe({"train": str(sentiment_csv),
                          "labels": {"from_score": {"neg": [-1, -0.1], "pos": [0.1, 1]}}})
    with pytest.raises(DataError, match="not a number"):
        run_prepare(recipe, run)


# ---- cleaning --------------------------------------------------------------------------------

def test_cleaning_rules_and_their_counts(make_recipe, run, tmp_path):
    rows = [
        {"text": "  a   b ", "label": "x"},
        {"text": "a b", "label": "x"},          # duplicate of the first after normalisation
        {"text": "a\tb\n", "label": "x"},       # and again
        {"text": "a b", "label": "y"},          # same text, other label: kept
        {"text": "", "label": "x"},             # empty
        {"text": "   ", "label": "y"},          # empty after normalisation
        {"text": None, "label": "y"},           # missing
        {"text": "NA", "label": "y"},           # the string "NA" is text
        {"text": "no label", "label": None},
        {"text": "c  d", "label": "y"},
        {"text": "e", "label": "x"},
    ]
    path = write_csv(tmp_path / "messy.csv", rows)
    result = run_prepare(make_recipe({"train": str(path), "split": NO_SPLIT}), run)
    rules = result.report["rules"]["train"]
    assert rules["rows_in"] == 11
    assert rules["missing_or_empty_text"] == 3
    assert rules["missing_label"] == 1
    assert rules["duplicates"] == 2
    assert rules["rows_out"] == 5
    assert_counts_add_up(rules)
    assert split_rows(run)["train"] == [("a b", "x"), ("a b", "y"), ("NA", "y"), ("c d", "y"), ("e", "x")]
    assert result.report["rows"] == {"train": 5}


def test_cleaning_rules_can_be_turned_off(make_recipe, run, tmp_path):
    rows = [{"text": " a  b", "label": "x"}, {"text": " a  b", "label": "x"}, {"text": "c", "label": "y"}]
    path = write_csv(tmp_path / "raw.csv", rows)
    recipe = make_recipe({"train": str(path), "split": NO_SPLIT,
                          "clean": {"normalize_whitespace": False, "drop_duplicates": False}})
    result = run_prepare(recipe, run)
    assert split_rows(run)["train"] == [(" a  b", "x"), (" a  b", "x"), ("c", "y")]
    assert result.report["rules"]["train"]["rows_out"] == 3


def test_rows_in_and_out_add_up_across_splits(make_recipe, run, tmp_path):
    rows = make_rows(100)
    rows += [{"text": r["text"], "label": r["label"]} for r in rows[:7]]  # 7 duplicates
    rows += [{"text": "", "label": "positive"}] * 3 + [{"text": "x y", "label": None}] * 2
    path = write_csv(tmp_path / "d.csv", rows)
    result = run_prepare(make_recipe({"train": str(path), "split": {"validation": 0.15, "test": 0.25}}), run)
    rules = result.report["rules"]["train"]
    assert (rules["rows_in"], rules["duplicates"], rules["missing_or_empty_text"], rules["missing_label"]) \
        == (112, 7, 3, 2)
    assert_counts_add_up(rules)
    assert sum(result.report["rows"].values()) == rules["rows_out"] == 100
    dist = result.report["label_distribution"]
    assert sum(sum(d.values()) for d in dist.values()) == 100
    assert {s: sum(d.values()) for s, d in dist.items()} == result.report["rows"]


# ---- splits ----------------------------------------------------------------------------------

def _unbalanced_csv(tmp_path: Path) -> Path:
    rows = [{"text": f"pos {i}", "label": "pos"} for i in range(151)]
    rows += [{"text": f"neg {i}", "label": "neg"} for i in range(49)]
    rows += [{"text": f"mid {i}", "label": "mid"} for i in range(13)]
    return write_csv(tmp_path / "unbalanced.csv", rows)


def test_stratified_split_keeps_proportions(make_recipe, run, tmp_path):
    shares = {"validation": 0.1, "test": 0.2}
    path = _unbalanced_csv(tmp_path)
    result = run_prepare(make_recipe({"train": str(path), "split": {**shares, "seed": 3}}), run)
    sizes = {"pos": 151, "neg": 49, "mid": 13}
    dist = result.report["label_distribution"]
    for split, share in shares.items():
        for label, n in sizes.items():
            assert abs(dist[split][label] - n * share) <= 1, (split, label, dist)
    for label, n in sizes.items():
        assert sum(dist[s][label] for s in dist) == n
    rows = split_rows(run)
    texts = {s: {t for t, _ in r} for s, r in rows.items()}
    assert not texts["train"] & texts["validation"] and not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]
    assert result.report["leakage"] == {"train/validation": 0, "train/test": 0, "validation/test": 0}


def test_split_is_reproducible_for_a_seed_and_changes_with_it(make_recipe, tmp_path):
    path = _unbalanced_csv(tmp_path)

    def splits(seed: int, folder: str, stratify: bool = True):
        recipe = make_recipe({"train": str(path), "split": {"validation": 0.1, "test": 0.1, "seed": seed,
                                                            "stratify": stratify}})
        run = RunDir(tmp_path / folder)
        run_prepare(recipe, run)
        return split_rows(run)

    first = splits(5, "a")
    assert splits(5, "b") == first
    other = splits(6, "c")
    assert other["validation"] != first["validation"]
    assert {r for s in other.values() for r in s} == {r for s in first.values() for r in s}
    unstratified = splits(5, "d", stratify=False)
    assert sum(len(v) for v in unstratified.values()) == 213
    assert len(unstratified["validation"]) == 21 and len(unstratified["test"]) == 21


def test_given_validation_and_test_files_are_used_as_is(make_recipe, run, tmp_path):
    train = make_rows(40, seed=1)
    val = [{"text": "a new validation text", "label": "positive"}, train[0], train[1]]
    test = [{"text": "test only", "label": "negative"}, train[2], val[0]]
    recipe = make_recipe({"train": str(write_csv(tmp_path / "train.csv", train)),
                          "validation": str(write_csv(tmp_path / "val.csv", val)),
                          "test": str(write_csv(tmp_path / "test.csv", test))})
    result = run_prepare(recipe, run)
    report = result.report
    assert report["split_from_train"] == []
    assert report["rows"] == {"train": 40, "validation": 3, "test": 3}
    assert report["leakage"] == {"train/validation": 2, "train/test": 1, "validation/test": 1}
    rows = split_rows(run)
    assert [t for t, _ in rows["validation"]] == [r["text"] for r in val]
    assert [t for t, _ in rows["test"]] == [r["text"] for r in test]
    assert set(report["rules"]) == {"train", "validation", "test"}


def test_given_test_file_only_splits_validation_from_train(make_recipe, run, tmp_path):
    train = make_rows(60, seed=2)
    test = make_rows(6, seed=3)
    recipe = make_recipe({"train": str(write_csv(tmp_path / "train.csv", train)),
                          "test": str(write_csv(tmp_path / "test.csv", test)),
                          "split": {"validation": 0.2, "test": 0.3}})
    report = run_prepare(recipe, run).report
    assert report["split_from_train"] == ["validation"]
    assert report["rows"] == {"train": 48, "validation": 12, "test": 6}


def test_unknown_label_in_test_file(make_recipe, run, tmp_path, sentiment_csv):
    test = [{"text": "fine", "label": "positive"}, {"text": "meh", "label": "neutral"}]
    recipe = make_recipe({"train": str(sentiment_csv), "test": str(write_csv(tmp_path / "test.csv", test))})
    with pytest.raises(DataError) as info:
        run_prepare(recipe, run)
    msg = str(info.value)
    assert "test data" in msg and "unknown label 'neutral' (1 rows)" in msg
    assert "negative, positive" in msg
    assert not run.prepared.exists() and not report_path(run).exists()


def test_missing_column_names_the_columns_present(make_recipe, run, tmp_path):
    path = write_csv(tmp_path / "cols.csv", [{"review": "x", "stars": 1}], ("review", "stars"))
    with pytest.raises(DataError) as info:
        run_prepare(make_recipe({"train": str(path), "columns": {"text": "review"}}), run)
    msg = str(info.value)
    assert "no column 'label'" in msg and "data.columns.label" in msg
    assert "it has: review, stars" in msg
    assert "data.columns.label" in info.value.hint


def test_no_rows_left(make_recipe, run, tmp_path):
    path = write_csv(tmp_path / "empty.csv", [{"text": "", "label": "a"}, {"text": "  ", "label": "b"}])
    with pytest.raises(DataError, match="no training rows"):
        run_prepare(make_recipe({"train": str(path)}), run)
    assert not run.prepared.exists()


def test_single_class(make_recipe, run, tmp_path):
    path = write_csv(tmp_path / "one.csv", [{"text": f"t {i}", "label": "only"} for i in range(10)])
    with pytest.raises(DataError, match="single class") as info:
        run_prepare(make_recipe({"train": str(path)}), run)
    assert "only" in str(info.value)


def test_class_missing_from_train_is_a_warning(make_recipe, run, tmp_path):
    path = write_csv(tmp_path / "d.csv", [{"text": f"t {i}", "label": i % 2} for i in range(10)])
    report = run_prepare(make_recipe({"train": str(path), "split": NO_SPLIT,
                                      "labels": {"names": ["a", "b", "c"]}}), run).report
    assert report["warnings"] == ["classes never seen in training: c"]
    assert report["label_distribution"]["train"] == {"a": 5, "b": 5, "c": 0}


def test_max_train_rows_caps_train_only(make_recipe, run, sentiment_csv):
    recipe = make_recipe({"train": str(sentiment_csv), "max_train_rows": 50,
                          "split": {"validation": 0.1, "test": 0.2, "seed": 1}})
    report = run_prepare(recipe, run).report
    assert report["rows"] == {"train": 50, "validation": 24, "test": 48}
    rows = split_rows(run)
    assert len(rows["train"]) == 50 and len(set(rows["train"])) == 50
    texts = {s: {t for t, _ in r} for s, r in rows.items()}
    assert not texts["train"] & (texts["validation"] | texts["test"])


# ---- caching ---------------------------------------------------------------------------------

def test_second_run_is_reused_and_report_is_on_disk(make_recipe, run, sentiment_csv):
    recipe = make_recipe({"train": str(sentiment_csv)})
    first = run_prepare(recipe, run)
    path = run.root / "data" / "prepare_report.json"
    assert report_path(run) == path and path.is_file()
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk == first.report and on_disk["fingerprint"] == first.fingerprint
    second = run_prepare(recipe, run)
    assert second.reused and second.fingerprint == first.fingerprint
    assert second.report == first.report
    forced = run_prepare(recipe, run, force=True)
    assert not forced.reused and forced.fingerprint == first.fingerprint


def test_one_changed_byte_invalidates(make_recipe, run, sentiment_csv):
    recipe = make_recipe({"train": str(sentiment_csv)})
    first = run_prepare(recipe, run)
    data = bytearray(sentiment_csv.read_bytes())
    i = data.index(b"good")
    data[i:i + 4] = b"Good"
    sentiment_csv.write_bytes(bytes(data))
    second = run_prepare(recipe, run)
    assert not second.reused and second.fingerprint != first.fingerprint
    texts = {t for rows in split_rows(run).values() for t, _ in rows}
    assert any("Good" in t for t in texts)
    assert run_prepare(recipe, run).reused


def test_changed_data_key_invalidates_but_other_sections_do_not(make_recipe, run, sentiment_csv):
    base = {"train": str(sentiment_csv), "split": {"validation": 0.1, "test": 0.1, "seed": 1}}
    first = run_prepare(make_recipe(base), run)
    changed = run_prepare(make_recipe({**base, "split": {"validation": 0.1, "test": 0.1, "seed": 2}}), run)
    assert not changed.reused and changed.fingerprint != first.fingerprint
    again = run_prepare(make_recipe({**base, "split": {"validation": 0.1, "test": 0.1, "seed": 2}}),
                        run)
    assert again.reused
    other = run_prepare(make_recipe({**base, "split": {"validation": 0.1, "test": 0.1, "seed": 2}},
                                    train={"lr": 1e-3}, tokenize={"max_length": 16}), run)
    assert other.reused and other.fingerprint == changed.fingerprint


def test_deleted_output_is_rebuilt(make_recipe, run, sentiment_csv):
    import shutil

    recipe = make_recipe({"train": str(sentiment_csv)})
    first = run_prepare(recipe, run)
    shutil.rmtree(run.prepared)
    second = run_prepare(recipe, run)
    assert not second.reused and second.fingerprint == first.fingerprint
    assert run.prepared.is_dir()


def test_failed_rerun_leaves_no_temporary_folders(make_recipe, run, tmp_path, sentiment_csv):
    recipe = make_recipe({"train": str(sentiment_csv)})
    run_prepare(recipe, run)
    bad = make_recipe({"train": str(sentiment_csv), "labels": {"names": ["negative"]}})
    with pytest.raises(DataError):
        run_prepare(bad, run)
    leftovers = [p.name for p in (run.root / "data").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_given_test_file_left_empty_is_an_error(make_recipe, run, tmp_path, sentiment_csv):
    empty = write_csv(tmp_path / "test-empty.csv", [{"text": " ", "label": "positive"}])
    with pytest.raises(DataError, match="no test rows are left after cleaning"):
        run_prepare(make_recipe({"train": str(sentiment_csv), "test": str(empty),
                                 "clean": {"splits": ["train", "test"]}}), run)  # a test file kept whole keeps " "
    assert not run.prepared.exists()


def test_split_leaving_no_training_rows_is_an_error(make_recipe, run, tmp_path):
    two = write_csv(tmp_path / "two.csv", [{"text": "good", "label": "positive"}, {"text": "bad", "label": "negative"}])
    recipe = make_recipe({"train": str(two), "split": {"validation": 0.6, "test": 0.35}})
    with pytest.raises(DataError, match="left none for training"):
        run_prepare(recipe, run)
