"""data.quality through `tunekit prepare`: a planted near-duplicate across train/test is counted
in the table and the JSON, `--strict` and `across: error` stop with exit code 2 and one error."""

import json

from cli_checks import assert_clean_error, run_in_process
from conftest import make_rows, write_rows_csv

LONG = "the plot of this film follows a young woman who moves to the city and learns to paint with an old master"


def planted(tmp_path, write_recipe, **quality):
    """Train: 120 rows and LONG; test (its own file): 20 other rows and LONG with one word changed."""
    train = make_rows(120, seed=3) + [{"text": LONG, "label": "positive"}]
    test = [{"text": r["text"] + " test", "label": r["label"]} for r in make_rows(20, seed=4)]
    test.insert(5, {"text": LONG.replace("old master", "old teacher"), "label": "positive"})
    write_rows_csv(tmp_path / "train.csv", train)
    write_rows_csv(tmp_path / "test.csv", test)
    return write_recipe(data={"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv"),
                              "split": {"validation": 0.1, "seed": 1}, "quality": quality})


class Result:  # what assert_clean_error reads, from run_in_process's shape
    def __init__(self, ran):
        self.exit_code, self.stderr, self.output = ran.returncode, ran.stderr, ran.stdout + ran.stderr


def test_prepare_table_shows_the_quality_counts(tmp_path, write_recipe):
    ran = run_in_process("prepare", str(planted(tmp_path, write_recipe)))
    assert ran.returncode == 0, ran.stderr
    err = ran.stderr
    assert "data quality" in err and "leaked" in err
    assert "rows repeated across splits" in err  # the offender table
    assert "label balance" in err
    assert "warning:" in err and "1 test row repeats rows of train/validation (1 near-duplicate" in err


def test_json_has_the_section_with_row_numbers(tmp_path, write_recipe):
    ran = run_in_process("prepare", str(planted(tmp_path, write_recipe)), "--json")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    quality = report["quality"]
    assert quality["counts"]["test"]["leaked_near"] == 1
    leak = quality["offenders"]["leaks"][0]
    assert (leak["b"]["split"], leak["b"]["row"]) == ("test", 5)
    assert leak["b"]["text"].startswith(LONG[:60]) and len(leak["b"]["text"]) <= 80  # a preview
    assert leak["a"]["split"] in ("train", "validation")
    import datasets  # the row numbers are positions in the prepared splits

    prepared = datasets.load_from_disk(str(tmp_path / "run" / "data" / "prepared"))
    assert prepared["test"][5]["text"] == LONG.replace("old master", "old teacher")
    assert prepared[leak["a"]["split"]][leak["a"]["row"]]["text"] == LONG
    assert 0.8 <= leak["similarity"] < 1
    assert any("1 test row repeats rows of train/validation (1 near-duplicate" in w for w in report["warnings"])
    assert report["rules"]["train"]["unprintable"] == 0


def test_strict_turns_the_warning_into_exit_code_2(tmp_path, write_recipe):
    ran = run_in_process("prepare", str(planted(tmp_path, write_recipe)), "--strict")
    assert_clean_error(Result(ran), "strict mode", "1 test row repeats rows of train/validation (1 near-duplicate")


def test_across_error_exits_2_with_an_example(tmp_path, write_recipe):
    path = planted(tmp_path, write_recipe, near_duplicates={"across": "error"})
    ran = run_in_process("prepare", str(path))
    assert_clean_error(Result(ran), "1 test row repeats rows of train/validation (1 near-duplicate", "test row 5", "across: drop")
    assert not (tmp_path / "run" / "data" / "prepared").exists()


def test_across_drop_removes_the_test_row(tmp_path, write_recipe):
    path = planted(tmp_path, write_recipe, near_duplicates={"across": "drop"})
    ran = run_in_process("prepare", str(path), "--json", "--strict")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["rows"]["test"] == 20 and report["quality"]["counts"]["test"]["dropped"] == 1


def test_row_rules_show_as_columns(tmp_path, write_recipe):
    path = planted(tmp_path, write_recipe, max_chars=60)
    ran = run_in_process("prepare", str(path), "--json")
    report = json.loads(ran.stdout)
    assert report["rules"]["train"]["too_many_chars"] == 1  # LONG
    assert report["quality"]["counts"]["test"].get("leaked_near", 0) == 0  # it was dropped before the check
    ran = run_in_process("prepare", str(path))
    assert all(word in ran.stderr for word in ("too", "many", "chars"))  # the column (80 columns wrap its title)
