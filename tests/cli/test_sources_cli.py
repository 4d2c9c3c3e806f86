"""`tunekit prepare` on globs, mixtures and --sample, and the bad-input cases of sources: each is
exit code 2 with one `error:` line and a `hint:`, no traceback."""

from __future__ import annotations

import json
from types import SimpleNamespace

from cli_checks import assert_clean_error, run_in_process
from conftest import make_rows, write_rows_csv


def clean_error(ran, *phrases: str) -> None:
    """assert_clean_error on an in-process run (it reads CliRunner's field names)."""
    assert_clean_error(SimpleNamespace(exit_code=ran.returncode, output=ran.stdout + ran.stderr,
                                       stderr=ran.stderr), *phrases)


def prepare_json(recipe) -> dict:
    ran = run_in_process("prepare", str(recipe), "--json")
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)


def data_files(tmp_path, sizes=(60, 60)) -> list:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    paths, start = [], 0
    for i, n in enumerate(sizes):
        rows = make_rows(start + n, seed=i)[start:]  # distinct texts across files (they end in the row number)
        paths.append(write_rows_csv(folder / f"part{i}.csv", rows))
        start += n
    return paths


def test_glob_recipe_reads_every_file(write_recipe, tmp_path):
    paths = data_files(tmp_path, (60, 40))
    report = prepare_json(write_recipe(data={"train": str(tmp_path / "data" / "*.csv")}))
    files = report["sources"]["train"]["files"]
    assert [f["ref"] for f in files] == [str(p) for p in paths]
    assert all(len(f["sha256"]) == 64 for f in files)
    assert report["rules"]["train"]["files_read"] == 2
    assert report["rules"]["train"]["rows_in"] == 100
    assert sum(report["rows"].values()) == 100
    assert (tmp_path / "run" / "data" / "prepared").is_dir()


def test_mixture_recipe_reports_rows_taken_per_source(write_recipe, tmp_path):
    part0, part1 = data_files(tmp_path, (60, 60))
    recipe = write_recipe(data={"train": [{"path": str(part0), "weight": 3}, {"path": str(part1), "weight": 1}]})
    rules = prepare_json(recipe)["rules"]["train"]
    assert rules["rows_read"] == 120
    assert rules["from data/part0.csv"] == 60 and rules["from data/part1.csv"] == 20
    assert rules["mixture_repeated"] == 0
    assert rules["rows_in"] == 80
    again = prepare_json(recipe)  # a rerun (cached: same fingerprint) reports the same counts
    assert again["rules"]["train"] == rules


def test_mixture_rows_counts_repeats(write_recipe, tmp_path):
    part0, part1 = data_files(tmp_path, (20, 60))
    recipe = write_recipe(data={"train": [{"path": str(part0), "weight": 1}, {"path": str(part1), "weight": 1}],
                                "mixture_rows": 100, "clean": {"drop_duplicates": False},
                                "split": {"validation": 0.0, "test": 0.0}})
    rules = prepare_json(recipe)["rules"]["train"]
    assert rules["from data/part0.csv"] == 50 and rules["from data/part1.csv"] == 50
    assert rules["mixture_repeated"] == 30
    assert rules["rows_in"] == 100


def test_sample_writes_nothing(write_recipe, tmp_path):
    data_files(tmp_path, (60, 60))
    ran = run_in_process("prepare", str(write_recipe(data={"train": str(tmp_path / "data" / "*.csv")})),
                         "--sample", "5", "--json")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["sample"] == 5
    assert report["rules"]["train"]["rows_in"] == 5  # the first 5 rows of the glob (one source)
    assert not (tmp_path / "run").exists()


# ---- bad input -------------------------------------------------------------------------------

def test_empty_glob(write_recipe, tmp_path):
    ran = run_in_process("prepare", str(write_recipe(data={"train": str(tmp_path / "data" / "*.jsonl")})))
    clean_error(ran, "no files match", "*.jsonl")
    assert not (tmp_path / "run").exists()


def test_negative_weight(write_recipe, tmp_path):
    part0, part1 = data_files(tmp_path)
    recipe = write_recipe(data={"train": [{"path": str(part0), "weight": -1}, {"path": str(part1), "weight": 1}]})
    ran = run_in_process("prepare", str(recipe))
    clean_error(ran, "data.train: entry 1", "weight: Input should be greater than or equal to 0 (got -1)")
    assert "valid string" not in ran.stderr  # not the str branch of the str-or-list union
    assert "1 problem" in ran.stderr


def test_weights_summing_to_zero(write_recipe, tmp_path):
    part0, part1 = data_files(tmp_path)
    recipe = write_recipe(data={"train": [{"path": str(part0), "weight": 0}, {"path": str(part1), "weight": 0}]})
    clean_error(run_in_process("prepare", str(recipe)), "sum to zero")


def test_not_utf8_file(write_recipe, tmp_path):
    data = tmp_path / "latin1.csv"
    data.write_bytes("text,label\n".encode() + "".join(f"good film {i},positive\n" for i in range(10)).encode()
                     + b"caf\xe9 cr\xe8me,negative\n")
    ran = run_in_process("prepare", str(write_recipe(data={"train": str(data)})))
    clean_error(ran, "latin1.csv is not valid UTF-8 (byte 0xe9 at byte offset", "iconv")
    assert not (tmp_path / "run").exists()
