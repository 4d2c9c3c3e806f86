"""Data and model references: every table format, pkg:// and model resolution."""

from __future__ import annotations

import gzip
import json
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from tunekit.errors import DataError, ModelError
from tunekit.sources import detect_format, load_table, resolve_data_path, resolve_model, resolve_pkg

ROWS = [
    {"text": "a good film", "label": "positive"},
    {"text": "a dull, weak plot", "label": "negative"},
    {"text": "tabs\tand \"quotes\"", "label": "positive"},
]


def records(df: pd.DataFrame) -> list[dict]:
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in df.to_dict("records")]


def write_csv(path: Path, rows: list[dict], sep: str = ",") -> Path:
    frame = pd.DataFrame(rows)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, sep=sep, index=False)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as fh:
        fh.write(text)
    return path


# ---- formats ---------------------------------------------------------------------------------

def test_csv(tmp_path):
    df = load_table(str(write_csv(tmp_path / "d.csv", ROWS)))
    assert list(df.columns) == ["text", "label"]
    assert records(df) == ROWS


def test_tsv(tmp_path):
    rows = [{"text": "one, two", "label": "a"}, {"text": "three", "label": "b"}]
    df = load_table(str(write_csv(tmp_path / "d.tsv", rows, sep="\t")))
    assert records(df) == rows


def test_csv_gz(tmp_path):
    path = write_csv(tmp_path / "d.csv.gz", ROWS)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert records(load_table(str(path))) == ROWS


def test_csv_na_stays_text_and_empty_cell_is_missing(tmp_path):
    path = tmp_path / "na.csv"
    path.write_text('text,label\nNA,pos\n,neg\nN/A,NA\n"",null\n', encoding="utf-8")
    df = load_table(str(path))
    assert df["text"][0] == "NA"
    assert pd.isna(df["text"][1])
    assert df["text"][2] == "N/A"
    assert df["label"][2] == "NA"
    assert pd.isna(df["text"][3])
    assert df["label"][3] == "null"
    assert len(df) == 4


def test_csv_numbers_stay_numbers(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("text,score\nx,1.5\ny,\nz,-2\n", encoding="utf-8")
    df = load_table(str(path))
    assert float(df["score"][0]) == 1.5 and float(df["score"][2]) == -2.0
    assert pd.isna(df["score"][1])


def test_json_list_of_records(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(ROWS), encoding="utf-8")
    assert records(load_table(str(path))) == ROWS


def test_json_data_wrapper(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"version": 1, "data": ROWS}), encoding="utf-8")
    assert records(load_table(str(path))) == ROWS


def test_json_with_lines_content(tmp_path):
    path = write_jsonl(tmp_path / "lines.json", ROWS)
    assert records(load_table(str(path))) == ROWS


def test_json_object_without_data_list_is_a_data_error(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"rows": ROWS}), encoding="utf-8")
    with pytest.raises(DataError, match="expected a JSON list"):
        load_table(str(path))


def test_jsonl(tmp_path):
    rows = [{"text": "x", "label": 1}, {"text": "y", "label": 0}]
    df = load_table(str(write_jsonl(tmp_path / "d.jsonl", rows)))
    assert records(df) == rows


def test_jsonl_gz(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl.gz", ROWS)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert records(load_table(str(path))) == ROWS


def test_jsonl_keeps_missing_fields_missing(tmp_path):
    df = load_table(str(write_jsonl(tmp_path / "d.jsonl", [{"text": "x", "label": "a"}, {"text": "y"}])))
    assert df["label"][0] == "a" and pd.isna(df["label"][1])


def test_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame(ROWS).to_parquet(path)
    assert records(load_table(str(path))) == ROWS


def test_text_one_row_per_line(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("first line\nsecond  line\n\nfourth\n", encoding="utf-8")
    df = load_table(str(path))
    assert list(df.columns) == ["text"]
    assert df["text"].tolist() == ["first line", "second  line", "", "fourth"]


def test_explicit_format_overrides_extension(tmp_path):
    path = tmp_path / "data.dat"
    path.write_text("text|x\n", encoding="utf-8")
    with pytest.raises(DataError):
        load_table(str(path))
    assert load_table(str(path), "text")["text"].tolist() == ["text|x"]
    csv_named_txt = write_csv(tmp_path / "table.txt", ROWS)
    assert records(load_table(str(csv_named_txt), "csv")) == ROWS


def test_unparseable_file_is_a_data_error(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match="cannot read .*bad.parquet as parquet") as info:
        load_table(str(path))
    assert "data.format" in info.value.hint


@pytest.mark.parametrize("name, content", [
    ("empty.csv", b""),
    ("latin1.csv", b"text,label\ncaf\xe9,a\n"),
    ("broken.jsonl", b'{"text": "a"}\n{"text": \n'),
    ("broken.json", b'[{"text": "a"},'),
])
def test_unreadable_content_is_a_data_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"cannot read .*{name} as "):
        load_table(str(path))


def test_saved_dataset_folder(tmp_path):
    import datasets

    folder = tmp_path / "saved"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(folder))
    assert detect_format(folder) == "arrow"
    assert records(load_table(str(folder))) == ROWS


def test_saved_dataset_dict_split_by_name(tmp_path):
    import datasets

    folder = tmp_path / "saved_dict"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list(ROWS),
        "validation": datasets.Dataset.from_list(ROWS[:1]),
    }).save_to_disk(str(folder))
    assert records(load_table(str(folder))) == ROWS  # train by default
    assert records(load_table(str(folder), split="train")) == ROWS
    assert records(load_table(str(folder), split="validation")) == ROWS[:1]
    with pytest.raises(DataError, match="no 'test'") as info:
        load_table(str(folder), split="test")
    assert "train" in str(info.value) and "validation" in str(info.value)


def test_folder_that_is_not_a_saved_dataset(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "notes.txt").write_text("hi", encoding="utf-8")
    with pytest.raises(DataError, match="save_to_disk"):
        load_table(str(folder))


# ---- errors and detection --------------------------------------------------------------------

def test_unknown_extension_suggests_data_format(tmp_path):
    path = tmp_path / "d.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(DataError, match="cannot tell the format of d.xlsx") as info:
        load_table(str(path))
    assert "data.format" in info.value.hint
    assert "csv" in info.value.hint and "jsonl" in info.value.hint


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="data file not found") as info:
        load_table(str(tmp_path / "absent.csv"))
    assert "absent.csv" in str(info.value)
    with pytest.raises(DataError, match="data file not found"):
        resolve_data_path(str(tmp_path / "absent.csv"))


@pytest.mark.parametrize("name, fmt", [
    ("a.csv", "csv"), ("a.CSV", "csv"), ("a.csv.gz", "csv"), ("a.tsv", "tsv"), ("a.tab", "tsv"),
    ("a.json", "json"), ("a.jsonl", "jsonl"), ("a.ndjson", "jsonl"), ("a.jsonl.gz", "jsonl"),
    ("a.parquet", "parquet"), ("a.pq", "parquet"), ("a.txt", "text"), ("a.text", "text"),
    ("my.data.v2.csv", "csv"),
])
def test_detect_format_from_extension(name, fmt):
    assert detect_format(Path("/nowhere") / name) == fmt


@pytest.mark.parametrize("name", ["a", "a.gz", "a.xlsx", "a.tar.gz"])
def test_detect_format_unknown(name):
    with pytest.raises(DataError, match="cannot tell the format"):
        detect_format(Path("/nowhere") / name)


def test_detect_format_explicit_wins_and_folder_is_arrow(tmp_path):
    assert detect_format(Path("a.csv"), "jsonl") == "jsonl"
    assert detect_format(Path("a.xlsx"), "parquet") == "parquet"
    assert detect_format(tmp_path) == "arrow"


# ---- pkg:// ----------------------------------------------------------------------------------

YAML_DIST = "pyyaml"
YAML_INIT = "yaml/__init__.py"


def test_pkg_fixture_facts():
    # the distribution this section leans on, found through metadata like tunekit does
    dist = metadata.distribution(YAML_DIST)
    assert Path(str(dist.locate_file(YAML_INIT))).is_file()


def test_pkg_resolves_a_file_in_an_installed_distribution():
    import yaml

    path = resolve_pkg(f"pkg://{YAML_DIST}/{YAML_INIT}")
    assert path.is_file()
    assert path.resolve() == Path(yaml.__file__).resolve()
    assert resolve_data_path(f"pkg://{YAML_DIST}/{YAML_INIT}") == path


def test_pkg_distribution_name_is_case_insensitive():
    assert resolve_pkg(f"pkg://PyYAML/{YAML_INIT}") == resolve_pkg(f"pkg://{YAML_DIST}/{YAML_INIT}")


def test_pkg_load_table_reads_through():
    df = load_table(f"pkg://{YAML_DIST}/{YAML_INIT}", "text")
    source = Path(str(metadata.distribution(YAML_DIST).locate_file(YAML_INIT)))
    assert df["text"].tolist() == source.read_text(encoding="utf-8").splitlines()


def test_pkg_missing_distribution_says_pip_install():
    with pytest.raises(DataError, match="not installed") as info:
        load_table("pkg://surely-not-installed-tunekit-xyz/data/train.csv")
    assert "pip install" in info.value.hint
    assert "surely-not-installed-tunekit-xyz" in info.value.hint


def test_pkg_missing_path_inside_distribution():
    with pytest.raises(DataError, match="has no 'yaml/nope.csv'") as info:
        load_table(f"pkg://{YAML_DIST}/yaml/nope.csv")
    assert "pip show -f" in info.value.hint


@pytest.mark.parametrize("ref", ["pkg://", "pkg://pyyaml", "pkg://pyyaml/", "pkg:///yaml/__init__.py"])
def test_pkg_malformed_reference(ref):
    with pytest.raises(DataError, match="not a valid package reference"):
        resolve_pkg(ref)


def test_pkg_error_kind_follows_the_caller():
    with pytest.raises(ModelError, match="not installed"):
        resolve_model("pkg://surely-not-installed-tunekit-xyz/model")
    assert resolve_model(f"pkg://{YAML_DIST}/yaml") == str(resolve_pkg(f"pkg://{YAML_DIST}/yaml"))


# ---- models ----------------------------------------------------------------------------------

def test_resolve_model_local_folder(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    assert resolve_model(str(folder)) == str(folder)
    monkeypatch.chdir(tmp_path)
    assert resolve_model("model") == "model"  # relative folder that exists


def test_resolve_model_gguf_file_is_imported(tmp_path, monkeypatch):
    """A .gguf reference goes through the GGUF import (tests/integration/test_gguf.py runs a real
    one); a file that only starts like one is a clear error, and nothing is cached."""
    monkeypatch.setenv("TUNEKIT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "m.Q4.gguf"
    path.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="cannot read .*m.Q4.gguf as a GGUF model"):
        resolve_model(str(path))
    assert not list((tmp_path / "cache").glob("gguf/*"))


@pytest.mark.parametrize("ref", ["./nope/model", "/definitely/not/here", "a/b/c"])
def test_resolve_model_missing_local_folder(tmp_path, monkeypatch, ref):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="model folder not found") as info:
        resolve_model(ref)
    assert ref in str(info.value)
    assert "model.name" in info.value.hint


def test_resolve_model_hub_id_offline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="offline") as info:
        resolve_model("someone/some-model")
    assert "'someone/some-model'" in str(info.value)
    assert "pkg://" in info.value.hint
