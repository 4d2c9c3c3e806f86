"""Reading a split: globs (local and pkg://), several files, mixtures, --sample, streaming readers
that match load_table, UTF-8 errors, and the source hashes prepare's fingerprint covers."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from tunekit.errors import DataError
from tunekit.pipeline.reading import _apportion, read_split, source_hashes
from tunekit.pipeline.stream_readers import read_file
from tunekit.recipe.schema import DataConfig
from tunekit.sources import expand_data_ref, first_bad_utf8, load_table

ROLES = ["text", "label"]


def records(df: pd.DataFrame) -> list[dict]:
    return [{k: (None if not isinstance(v, (list, dict)) and pd.isna(v) else v) for k, v in row.items()}
            for row in df.to_dict("records")]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    frame = pd.DataFrame(rows)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, index=False)
    return path


def rows(tag: str, n: int) -> list[dict]:
    return [{"text": f"{tag} {i}", "label": "pos" if i % 2 else "neg"} for i in range(n)]


def read(train, roles=ROLES, sample=None, **data):
    return read_split(DataConfig(train=train, **data), "train", roles, sample=sample)


# ---- globs and several files -----------------------------------------------------------------

def test_glob_reads_every_match_sorted_and_concatenated(tmp_path):
    write_jsonl(tmp_path / "b.jsonl", rows("b", 2))
    write_jsonl(tmp_path / "a.jsonl", rows("a", 3))
    write_jsonl(tmp_path / "c.txt", rows("c", 1))  # not matched
    table, where, counts = read(str(tmp_path / "*.jsonl"))
    assert table["text"].tolist() == ["a 0", "a 1", "a 2", "b 0", "b 1"]
    assert counts == {"files_read": 2}
    assert "*.jsonl" in where


def test_recursive_glob_and_list_keeps_entry_order(tmp_path):
    (tmp_path / "deep" / "er").mkdir(parents=True)
    write_csv(tmp_path / "deep" / "er" / "x.csv", rows("x", 1))
    write_csv(tmp_path / "deep" / "y.csv", rows("y", 1))
    write_csv(tmp_path / "z.csv", rows("z", 1))
    table, _, _ = read([str(tmp_path / "z.csv"), str(tmp_path / "deep" / "**" / "*.csv")])
    assert table["text"].tolist() == ["z 0", "x 0", "y 0"]  # entries in order; matches sorted by path


def test_relative_glob_starts_at_working_directory(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "one.jsonl", rows("r", 2))
    monkeypatch.chdir(tmp_path)
    assert [f.ref for f in expand_data_ref("data/*.jsonl")] == ["data/one.jsonl"]
    assert len(read("data/*.jsonl")[0]) == 2


def test_pkg_glob_reads_files_inside_a_distribution():
    files = expand_data_ref("pkg://pyyaml/yaml/*.py")
    assert [f.ref for f in files] == sorted(f.ref for f in files)
    assert "pkg://pyyaml/yaml/__init__.py" in [f.ref for f in files]
    root = Path(str(metadata.distribution("pyyaml").locate_file("yaml")))
    assert [f.path.name for f in files] == sorted(p.name for p in root.glob("*.py"))
    table, _, counts = read("pkg://pyyaml/yaml/*.py", roles=["text"], format="text")
    expected = [line for f in files for line in f.path.read_text(encoding="utf-8").splitlines()]
    assert table["text"].tolist() == expected
    assert counts["files_read"] == len(files)


def test_empty_glob_names_pattern_and_folder(tmp_path):
    with pytest.raises(DataError) as info:
        read(str(tmp_path / "*.jsonl"))
    assert "no files match" in str(info.value) and "*.jsonl" in str(info.value)
    assert str(tmp_path) in str(info.value)
    assert "**/" in info.value.hint
    with pytest.raises(DataError, match="does not exist"):
        read(str(tmp_path / "absent" / "*.jsonl"))
    with pytest.raises(DataError, match="no files match 'pkg://pyyaml/yaml/\\*.nothing'"):
        expand_data_ref("pkg://pyyaml/yaml/*.nothing")


def test_missing_role_column_in_one_file_names_that_file(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", rows("a", 2))
    write_jsonl(tmp_path / "b.jsonl", [{"text": "x", "stars": 5, "extra": 1}])
    with pytest.raises(DataError) as info:
        read(str(tmp_path / "*.jsonl"))
    msg = str(info.value)
    assert "b.jsonl" in msg and "a.jsonl" not in msg
    assert "no column 'label'" in msg and "it has: text, stars, extra" in msg


def test_ids_made_up_per_split_not_per_file(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", rows("a", 2))
    write_jsonl(tmp_path / "b.jsonl", rows("b", 2))
    table, _, _ = read(str(tmp_path / "*.jsonl"), roles=["id", "text"])
    assert table["id"].tolist() == ["0", "1", "2", "3"]


def test_literal_file_name_with_glob_characters(tmp_path):
    path = write_jsonl(tmp_path / "data[1].jsonl", rows("l", 2))
    assert len(read(str(path))[0]) == 2


# ---- mixtures --------------------------------------------------------------------------------

def mixture(tmp_path, sizes=(100, 100), weights=(3, 1), **data):
    entries = []
    for i, (n, w) in enumerate(zip(sizes, weights)):
        path = write_jsonl(tmp_path / f"src{i}.jsonl", rows(f"s{i}", n))
        entries.append({"path": str(path), "weight": w})
    return read(entries, **data)


def test_mixture_default_takes_most_rows_without_repeating(tmp_path):
    table, _, counts = mixture(tmp_path, sizes=(100, 100), weights=(3, 1))
    # 3:1 and at most 100 of each: all 100 of src0 and 33 of src1
    assert counts == {"files_read": 2, "rows_read": 200, f"from {tmp_path.name}/src0.jsonl": 100,
                      f"from {tmp_path.name}/src1.jsonl": 33, "mixture_repeated": 0}
    assert len(table) == 133
    assert table["text"].is_unique
    by_source = Counter(t.split()[0] for t in table["text"])
    assert by_source == {"s0": 100, "s1": 33}


def test_mixture_limited_by_the_smaller_source(tmp_path):
    table, _, counts = mixture(tmp_path, sizes=(1000, 10), weights=(1, 1))
    assert Counter(t.split()[0] for t in table["text"]) == {"s0": 10, "s1": 10}
    assert counts["mixture_repeated"] == 0


def test_mixture_is_seeded(tmp_path):
    first, _, _ = mixture(tmp_path, sizes=(50, 50), weights=(1, 1), mixture_rows=40, split={"seed": 1})
    again, _, _ = mixture(tmp_path, sizes=(50, 50), weights=(1, 1), mixture_rows=40, split={"seed": 1})
    other, _, _ = mixture(tmp_path, sizes=(50, 50), weights=(1, 1), mixture_rows=40, split={"seed": 2})
    assert first["text"].tolist() == again["text"].tolist()
    assert first["text"].tolist() != other["text"].tolist()


OVERSAMPLE = {"clean": {"drop_duplicates": False}, "validation": "v.jsonl", "test": "t.jsonl"}


def test_mixture_rows_repeats_short_sources_and_counts_it(tmp_path):
    table, _, counts = mixture(tmp_path, sizes=(10, 100), weights=(1, 1), mixture_rows=50, **OVERSAMPLE)
    per_text = Counter(table["text"])
    s0 = {t: n for t, n in per_text.items() if t.startswith("s0")}
    assert sum(s0.values()) == 25 and len(s0) == 10  # every row of the short source, 2 or 3 times
    assert set(s0.values()) == {2, 3}
    assert all(n == 1 for t, n in per_text.items() if t.startswith("s1"))
    assert counts["mixture_repeated"] == 15
    assert counts[f"from {tmp_path.name}/src0.jsonl"] == 25
    assert len(table) == 50


def test_oversampling_is_refused_where_cleaning_or_carving_would_undo_it(tmp_path):
    with pytest.raises(DataError, match="drop_duplicates would drop the copies again"):
        mixture(tmp_path, sizes=(10, 100), weights=(1, 1), mixture_rows=50)
    with pytest.raises(DataError, match="validation and test would be carved from it"):
        mixture(tmp_path, sizes=(10, 100), weights=(1, 1), mixture_rows=50, clean={"drop_duplicates": False})


def test_mixture_rows_below_what_sources_hold(tmp_path):
    table, _, counts = mixture(tmp_path, sizes=(100, 100, 100), weights=(0.5, 0.3, 0.2), mixture_rows=10)
    assert Counter(t.split()[0] for t in table["text"]) == {"s0": 5, "s1": 3, "s2": 2}
    assert counts["mixture_repeated"] == 0


def test_weight_zero_drops_the_source_without_reading_it(tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", rows("g", 4))
    off = tmp_path / "off.jsonl"
    off.write_bytes(b"this is not JSON at all\n")  # never read: its weight is 0
    table, _, counts = read([{"path": str(good), "weight": 1}, {"path": str(off), "weight": 0}])
    assert len(table) == 4 and counts[f"from {tmp_path.name}/off.jsonl"] == 0
    with pytest.raises(DataError, match="data file not found"):  # but it must exist
        read([{"path": str(good), "weight": 1}, {"path": str(tmp_path / "gone.jsonl"), "weight": 0}])


def test_mixture_source_without_rows_is_an_error(tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", rows("g", 4))
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="has no rows"):
        read([{"path": str(good), "weight": 1}, {"path": str(empty), "weight": 1}], roles=["text"])


@pytest.mark.parametrize("total, shares, expected", [
    (10, [0.5, 0.3, 0.2], [5, 3, 2]), (7, [0.5, 0.5], [4, 3]), (0, [1.0], [0]), (100, [1 / 3] * 3, [34, 33, 33]),
])
def test_apportion_sums_to_total(total, shares, expected):
    assert _apportion(total, shares) == expected


# ---- --sample --------------------------------------------------------------------------------

def big_then_broken(path: Path, good_rows: int = 60_000) -> Path:
    """A file whose first MBs are good and whose end is not: reading it all fails."""
    if path.suffix == ".csv":
        body = "text,label\n" + "".join(f"row number {i} with some words,neg\n" for i in range(good_rows))
        path.write_bytes(body.encode() + b"caf\xe9,pos\n")
    elif path.suffix == ".jsonl":
        body = "".join(json.dumps({"text": f"row number {i} with some words", "label": "neg"}) + "\n"
                       for i in range(good_rows))
        path.write_bytes(body.encode() + b'{"text": broken\n')
    else:
        body = "".join(f"row number {i} with some words\n" for i in range(good_rows))
        path.write_bytes(body.encode() + b"caf\xe9\n")
    assert path.stat().st_size > 1_500_000
    return path


@pytest.mark.parametrize("name", ["big.csv", "big.jsonl", "big.txt"])
def test_sample_reads_only_the_first_rows(tmp_path, name):
    path = big_then_broken(tmp_path / name)
    roles = ["text"] if name.endswith(".txt") else ROLES
    table, _, _ = read(str(path), roles=roles, sample=5)
    assert table["text"].tolist() == [f"row number {i} with some words" for i in range(5)]
    with pytest.raises(DataError):
        read(str(path), roles=roles)


def test_sample_takes_first_rows_of_each_source(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", rows("a", 3))
    write_jsonl(tmp_path / "b.jsonl", rows("b", 3))
    write_jsonl(tmp_path / "c.jsonl", rows("c", 3))
    table, _, _ = read([str(tmp_path / "[ab].jsonl"), str(tmp_path / "c.jsonl")], sample=4)
    assert table["text"].tolist() == ["a 0", "a 1", "a 2", "b 0", "c 0", "c 1", "c 2"]


# ---- streaming readers match load_table ------------------------------------------------------

CSV_TEXT = ('text,label,score,flag,blank,extra\n'
            'NA,pos,1,True,,x\n'
            ',neg,,False,,y\n'
            '"",null,3,true,,z\n'
            '"two\nlines, and ""quotes""",N/A,-2,false,,w\n')


def same_as_load_table(path: Path, keep: list[str], kind: str, **kw) -> pd.DataFrame:
    streamed, header = read_file(path, str(path), kind, keep, **kw)
    whole = load_table(str(path), kind)
    assert header == list(whole.columns)
    expected = whole[[c for c in keep if c in whole.columns]]
    assert records(streamed) == records(expected)
    assert list(streamed.columns) == list(expected.columns)
    return streamed


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz"])
def test_csv_streaming_matches_load_table_values_and_types(tmp_path, name):
    path = tmp_path / name
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as fh:
        fh.write(CSV_TEXT)
    keep = ["text", "label", "score", "flag", "blank"]
    streamed = same_as_load_table(path, keep, "csv")
    whole = load_table(str(path))
    assert {c: str(t) for c, t in streamed.dtypes.items()} == {c: str(whole[c].dtype) for c in keep}
    assert streamed["text"][0] == "NA" and pd.isna(streamed["text"][1]) and pd.isna(streamed["text"][2])
    assert streamed["text"][3] == 'two\nlines, and "quotes"'


def test_tsv_streaming_matches_load_table(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("text\tlabel\nshort, with comma\ta\nother\tb\n", encoding="utf-8")
    same_as_load_table(path, ROLES, "tsv")


@pytest.mark.parametrize("limit", [None, 2])
def test_csv_row_with_missing_fields_is_read_like_pandas(tmp_path, limit):
    path = tmp_path / "short.csv"
    path.write_text('text,label,extra\na,b,c\nshort,row\n"x",y,z\n', encoding="utf-8")
    streamed, header = read_file(path, str(path), "csv", ["text", "extra"], limit=limit)
    whole = load_table(str(path))[["text", "extra"]]
    assert header == ["text", "label", "extra"]
    assert records(streamed) == records(whole.head(limit) if limit else whole)
    assert pd.isna(streamed["extra"][1])


def test_csv_column_that_turns_to_words_after_the_first_block(tmp_path):
    path = tmp_path / "late.csv"
    lines = [f"text {i},{i}" for i in range(120_000)] + ["last,seven"]
    path.write_text("text,label\n" + "\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size > (1 << 20)
    streamed = same_as_load_table(path, ROLES, "csv")
    assert streamed["label"].iloc[-1] == "seven" and streamed["label"].iloc[0] == "0"


@pytest.mark.parametrize("name", ["d.jsonl", "d.jsonl.gz", "lines.json"])
def test_jsonl_streaming_matches_load_table(tmp_path, name):
    data = [{"text": "x", "label": 1, "other": [1, 2]}, {"text": "y"}, {"text": None, "label": 3}]
    path = write_jsonl(tmp_path / name, data)
    kind = "json" if name.endswith(".json") else "jsonl"
    same_as_load_table(path, ROLES, kind)


def test_jsonl_nested_columns_stay_dicts_and_lists(tmp_path):
    data = [{"sentences": {"abstract": ["a", "b"]}, "summary": "s1"},
            {"sentences": {"abstract": ["c"], "intro": ["d"]}, "summary": "s2"}]
    path = write_jsonl(tmp_path / "nested.jsonl", data)
    streamed = same_as_load_table(path, ["sentences", "summary"], "jsonl")
    assert streamed["sentences"][0] == {"abstract": ["a", "b"]}  # as written, no keys added
    table, _, _ = read(str(path), roles=["source", "target"],
                       columns={"source": "sentences.abstract", "target": "summary"})
    assert table["source"].tolist() == [["a", "b"], ["c"]]


def test_jsonl_field_that_appears_after_the_first_block(tmp_path):
    data = [{"text": f"t{i}"} for i in range(60_000)] + [{"text": "late", "label": "a"}]
    path = write_jsonl(tmp_path / "late.jsonl", data)
    assert path.stat().st_size > (1 << 20)
    streamed, _ = read_file(path, str(path), "jsonl", ROLES, limit=None)
    assert streamed["label"].iloc[-1] == "a" and pd.isna(streamed["label"].iloc[0])


@pytest.mark.parametrize("wrapped", [False, True])
def test_json_document_matches_load_table(tmp_path, wrapped):
    data = rows("j", 3)
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"data": data} if wrapped else data), encoding="utf-8")
    same_as_load_table(path, ROLES, "json")
    first, _ = read_file(path, str(path), "json", ROLES, limit=2)  # a limit applies after the whole parse
    assert records(first) == data[:2]


def test_parquet_streaming_matches_load_table(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame({"text": ["a", None, "c"], "label": [1, 2, 3], "unused": [[1], [2], [3]]}).to_parquet(path)
    streamed = same_as_load_table(path, ROLES, "parquet")
    assert list(streamed.columns) == ROLES
    assert len(read_file(path, str(path), "parquet", ROLES, limit=2)[0]) == 2


@pytest.mark.parametrize("name", ["d.txt", "d.txt.gz"])
def test_text_streaming_matches_load_table(tmp_path, name):
    path = tmp_path / name
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as fh:
        fh.write("first line\r\nsecond  line\n\nfourth\n")
    streamed = same_as_load_table(path, ["text"], "text")
    assert streamed["text"].tolist() == ["first line", "second  line", "", "fourth"]


def test_saved_dataset_folder_matches_load_table(tmp_path):
    import datasets

    folder = tmp_path / "saved"
    datasets.Dataset.from_list([{**r, "unused": 1} for r in rows("s", 3)]).save_to_disk(str(folder))
    streamed = same_as_load_table(folder, ROLES, "arrow")
    assert list(streamed.columns) == ROLES


# ---- UTF-8 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, content, offset", [
    ("l.csv", b"text,label\ncaf\xe9,a\n", 14),
    ("l.jsonl", b'{"text": "ok", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n', 42),
    ("l.txt", b"fine\ncaf\xe9\n", 8),
    ("l.json", b'[{"text": "caf\xe9", "label": "a"}]', 14),
])
def test_not_utf8_names_byte_and_offset(tmp_path, name, content, offset):
    path = tmp_path / name
    path.write_bytes(content)
    roles = ["text"] if name.endswith(".txt") else ROLES
    with pytest.raises(DataError) as info:
        read(str(path), roles=roles)
    assert f"{name} is not valid UTF-8 (byte 0xe9 at byte offset {offset})" in str(info.value)
    assert "iconv -f latin1 -t utf-8" in info.value.hint


def test_not_utf8_inside_gzip_counts_decompressed_bytes(tmp_path):
    path = tmp_path / "l.csv.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"text,label\nok,a\ncaf\xe9,b\n")
    with pytest.raises(DataError, match=r"byte 0xe9 at byte offset 19 of the decompressed text"):
        read(str(path))


def test_a_real_replacement_character_is_kept(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [{"text": "odd \ufffd char", "label": "a"}])
    assert read(str(path))[0]["text"][0] == "odd \ufffd char"


def test_first_bad_utf8_across_block_boundary(tmp_path):
    path = tmp_path / "b.txt"
    good = "é" * (1 << 19)  # 2 bytes each: the block boundary falls inside no character
    path.write_bytes(b"x" + good.encode() + b"\xff")
    assert first_bad_utf8(path) == (0xFF, 1 + 2 * (1 << 19))
    path.write_bytes(b"x" * ((1 << 20) - 1) + "é".encode() + b"ok")  # a character split by the boundary
    assert first_bad_utf8(path) is None
    path.write_bytes(b"ok\xc3")  # ends inside a character
    assert first_bad_utf8(path) == (0xC3, 2)


# ---- source hashes ---------------------------------------------------------------------------

def test_single_file_hash_layout_unchanged(tmp_path):
    path = write_jsonl(tmp_path / "one.jsonl", rows("o", 2))
    hashes = source_hashes(DataConfig(train=str(path)))
    assert set(hashes["train"]) == {"ref", "sha256"} and hashes["train"]["ref"] == str(path)
    assert len(hashes["train"]["sha256"]) == 64


def test_hashes_change_when_a_globbed_file_is_added_or_changed(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", rows("a", 2))
    data = DataConfig(train=str(tmp_path / "*.jsonl"))
    before = source_hashes(data)
    assert [f["ref"] for f in before["train"]["files"]] == [str(tmp_path / "a.jsonl")]
    write_jsonl(tmp_path / "b.jsonl", rows("b", 2))
    added = source_hashes(data)
    assert [f["ref"] for f in added["train"]["files"]] == [str(tmp_path / n) for n in ("a.jsonl", "b.jsonl")]
    assert added["train"]["sha256"] != before["train"]["sha256"]
    write_jsonl(tmp_path / "b.jsonl", rows("b", 3))
    assert source_hashes(data)["train"]["sha256"] != added["train"]["sha256"]
    assert source_hashes(data) == source_hashes(data)


def test_mixture_hashes_carry_weights_and_skip_weight_zero(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", rows("a", 2))
    b = write_jsonl(tmp_path / "b.jsonl", rows("b", 2))
    hashes = source_hashes(DataConfig(train=[{"path": str(a), "weight": 2}, {"path": str(b), "weight": 0}]))
    assert [(f["ref"], f["weight"]) for f in hashes["train"]["files"]] == [(str(a), 2)]


def test_model_card_lists_each_file_of_a_split(tmp_path):
    from tunekit.shipping.model_card import CardFacts, _training_data

    a = write_jsonl(tmp_path / "a.jsonl", rows("a", 2))
    b = write_jsonl(tmp_path / "b.jsonl", rows("b", 2))
    one = write_jsonl(tmp_path / "one.jsonl", rows("o", 2))
    hashes = source_hashes(DataConfig(train=[{"path": str(a), "weight": 2}, {"path": str(b), "weight": 1}],
                                      test=str(one)))
    text = _training_data(CardFacts(task="classification", load_ref="x", weights="full", title="t",
                                    manifest={"data": hashes}))
    assert f"| train | `a.jsonl` (weight 2) | `{hashes['train']['files'][0]['sha256']}` |" in text
    assert f"| train | `b.jsonl` (weight 1) | `{hashes['train']['files'][1]['sha256']}` |" in text
    assert f"| test | `one.jsonl` | `{hashes['test']['sha256']}` |" in text
    assert str(tmp_path) not in text  # local folders stay off a public card
