"""tokenize: length statistics, the three truncation policies, and caching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

try:  # tests/ is not a package: pytest puts it on sys.path for its conftest
    from conftest import FILLER, make_rows, write_rows_csv
except ImportError:  # pragma: no cover - if tests/ becomes a package
    from tests.conftest import FILLER, make_rows, write_rows_csv
from tunekit.errors import DataError
from tunekit.pipeline.tokenization import report_path, run_tokenize
from tunekit.recipe import load_recipe
from tunekit.runs import RunDir

MAX_LENGTH = 16
N_LONG = 9


def long_rows(n: int) -> list[dict]:
    """Rows of 14..54 tokens ([CLS] + words + number + [SEP]); most are over MAX_LENGTH."""
    rows = []
    for i in range(n):
        words = [FILLER[(i + j) % len(FILLER)] for j in range(12 + 5 * i)]
        rows.append({"text": " ".join(words) + f" {500 + i}", "label": "positive" if i % 2 else "negative"})
    return rows


@pytest.fixture
def data_csv(tmp_path) -> Path:
    return write_rows_csv(tmp_path / "mixed.csv", make_rows(80) + long_rows(N_LONG))


@pytest.fixture
def make_recipe(tmp_path, tiny_model_dir, data_csv):
    count = {"n": 0}

    def make(model: Path | None = None, **tokenize):
        count["n"] += 1
        doc = {"name": "tok", "output_dir": str(tmp_path / "run"), "model": {"name": str(model or tiny_model_dir)},
               "data": {"train": str(data_csv), "split": {"validation": 0.2, "test": 0.2, "seed": 4}},
               "tokenize": {"max_length": MAX_LENGTH, **tokenize}}
        path = tmp_path / f"recipe{count['n']}.yaml"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        return load_recipe(path)
    return make


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


@pytest.fixture
def run(tmp_path) -> RunDir:
    return RunDir(tmp_path / "run")


def prepared_lengths(run: RunDir, tokenizer) -> dict[str, list[int]]:
    """Token counts of every prepared row, computed here without tunekit."""
    import datasets

    dd = datasets.load_from_disk(str(run.prepared))
    return {s: [len(tokenizer(t)["input_ids"]) for t in ds["text"]] for s, ds in dd.items()}


def load_tokenized(run: RunDir):
    import datasets

    return datasets.load_from_disk(str(run.tokenized))


def test_the_data_has_long_rows(tokenizer):
    lengths = [len(tokenizer(r["text"])["input_ids"]) for r in long_rows(N_LONG)]
    assert lengths[0] == 15 and lengths[-1] == 55
    assert sum(n > MAX_LENGTH for n in lengths) == N_LONG - 1
    assert max(len(tokenizer(r["text"])["input_ids"]) for r in make_rows(80)) <= MAX_LENGTH


def test_length_statistics_match_the_tokenizer(make_recipe, run, tokenizer):
    prepared, tokenized = run_tokenize(make_recipe(), run)
    report = tokenized.report
    assert report["max_length"] == MAX_LENGTH and report["truncation"] == "truncate"
    lengths = prepared_lengths(run, tokenizer)
    assert set(report["splits"]) == set(lengths) == {"train", "validation", "test"}
    for split, ns in lengths.items():
        stats = report["splits"][split]
        assert stats["tokens_p50"] == pytest.approx(float(np.percentile(ns, 50)))
        assert stats["tokens_p95"] == pytest.approx(float(np.percentile(ns, 95)))
        assert stats["tokens_max"] == max(ns)
        assert stats["rows"] == len(ns) == prepared.report["rows"][split]
    assert sum(s["truncated"] for s in report["splits"].values()) == N_LONG - 1


def test_truncate_caps_input_ids_and_counts(make_recipe, run, tokenizer):
    _, tokenized = run_tokenize(make_recipe(truncation="truncate"), run)
    lengths = prepared_lengths(run, tokenizer)
    dd = load_tokenized(run)
    sep = tokenizer.sep_token_id
    for split, ds in dd.items():
        stats = tokenized.report["splits"][split]
        over = sum(n > MAX_LENGTH for n in lengths[split])
        assert stats["truncated"] == over and stats["dropped"] == 0
        assert len(ds) == len(lengths[split])
        assert {"input_ids", "attention_mask", "labels", "row"} <= set(ds.column_names)
        assert "n_tokens" not in ds.column_names and "text" not in ds.column_names
        for ids, mask, row in zip(ds["input_ids"], ds["attention_mask"], ds["row"]):
            assert len(ids) == min(lengths[split][row], MAX_LENGTH) == len(mask)
            assert ids[-1] == sep  # truncation keeps the special tokens
    assert report_path(run).is_file()


def test_drop_removes_exactly_the_long_rows(make_recipe, run, tokenizer):
    _, tokenized = run_tokenize(make_recipe(truncation="drop"), run)
    lengths = prepared_lengths(run, tokenizer)
    dd = load_tokenized(run)
    total_dropped = 0
    for split, ds in dd.items():
        keep = [i for i, n in enumerate(lengths[split]) if n <= MAX_LENGTH]
        stats = tokenized.report["splits"][split]
        assert sorted(ds["row"]) == keep
        assert stats["dropped"] == len(lengths[split]) - len(keep)
        assert stats["rows"] == len(keep) and stats["truncated"] == 0
        assert all(len(ids) <= MAX_LENGTH for ids in ds["input_ids"])
        total_dropped += stats["dropped"]
    assert total_dropped == N_LONG - 1


def test_a_row_of_exactly_max_length_is_kept_whole(make_recipe, run, tokenizer):
    exact = len(tokenizer(long_rows(1)[0]["text"])["input_ids"])  # the shortest long row
    _, tokenized = run_tokenize(make_recipe(truncation="drop", max_length=exact), run)
    lengths = prepared_lengths(run, tokenizer)
    assert sum(n == exact for ns in lengths.values() for n in ns) == 1
    assert sum(s["dropped"] for s in tokenized.report["splits"].values()) == N_LONG - 1
    kept = [len(ids) for ds in load_tokenized(run).values() for ids in ds["input_ids"]]
    assert exact in kept


def test_drop_every_row_is_an_error(make_recipe, run):
    with pytest.raises(DataError, match="every .* row is longer than tokenize.max_length=2"):
        run_tokenize(make_recipe(truncation="drop", max_length=2), run)


def test_error_policy_names_the_count(make_recipe, run, tokenizer):
    # prepare has run by the time tokenize fails: its output tells which split fails first
    with pytest.raises(DataError) as info:
        run_tokenize(make_recipe(truncation="error"), run)
    lengths = prepared_lengths(run, tokenizer)
    msg = str(info.value)
    counts = {s: sum(n > MAX_LENGTH for n in ns) for s, ns in lengths.items()}
    first_split = next(s for s in lengths if counts[s])  # splits are tokenized in saved order
    assert msg.startswith(f"{counts[first_split]} {first_split} rows are longer than "
                          f"tokenize.max_length={MAX_LENGTH}")
    assert "tokenize.truncation" in info.value.hint
    assert not run.tokenized.exists() and not report_path(run).exists()


def test_error_policy_passes_when_nothing_is_long(make_recipe, run):
    _, tokenized = run_tokenize(make_recipe(truncation="error", max_length=64), run)
    assert all(s["truncated"] == 0 and s["dropped"] == 0 for s in tokenized.report["splits"].values())


def test_second_run_is_reused(make_recipe, run):
    recipe = make_recipe()
    prep1, tok1 = run_tokenize(recipe, run)
    assert not prep1.reused and not tok1.reused
    prep2, tok2 = run_tokenize(recipe, run)
    assert prep2.reused and tok2.reused
    assert tok2.fingerprint == tok1.fingerprint
    assert all(not s.pop("reused") for s in tok1.report["splits"].values())
    assert all(s.pop("reused") for s in tok2.report["splits"].values())
    assert tok2.report == tok1.report


def test_a_changed_test_file_re_encodes_only_the_test_split(make_recipe, run, tmp_path, tiny_model_dir):
    """Given files per split: one changed file re-encodes its own split; the others are kept as
    they were (the same files, hard-linked), and the result equals a run from scratch."""
    import shutil

    from tunekit.runs import sha256_file

    rows = make_rows(90)
    files = {s: write_rows_csv(tmp_path / f"{s}.csv", part) for s, part in
             (("train", rows[:60]), ("validation", rows[60:75]), ("test", rows[75:]))}
    doc = {"name": "tok", "output_dir": str(run.root), "model": {"name": str(tiny_model_dir)},
           "data": {s: str(f) for s, f in files.items()}, "tokenize": {"max_length": MAX_LENGTH}}
    path = tmp_path / "split-files.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    recipe = load_recipe(path)
    run_tokenize(recipe, run)
    before = {s: sha256_file(next((run.tokenized / s).glob("*.arrow"))) for s in files}
    with open(files["test"], "a", encoding="utf-8") as fh:
        fh.write("one more good film 999,positive\n")
    prep, tok = run_tokenize(recipe, run)
    assert not prep.reused and not tok.reused
    assert {s: v["reused"] for s, v in tok.report["splits"].items()} == {"train": True, "validation": True, "test": False}
    after = {s: sha256_file(next((run.tokenized / s).glob("*.arrow"))) for s in files}
    assert after["train"] == before["train"] and after["validation"] == before["validation"]
    assert after["test"] != before["test"] and tok.report["splits"]["test"]["rows"] == 16
    fresh = RunDir(tmp_path / "fresh")
    shutil.copytree(run.prepared, fresh.prepared)  # the same prepared rows, encoded from scratch
    shutil.copy(run.root / "data" / "prepare_report.json", fresh.root / "data" / "prepare_report.json")
    _, scratch = run_tokenize(recipe.model_copy(update={"output_dir": str(fresh.root)}), fresh)
    assert {s: sha256_file(next((fresh.tokenized / s).glob("*.arrow"))) for s in files} == after


def test_changed_max_length_reruns_tokenize_only(make_recipe, run):
    _, tok1 = run_tokenize(make_recipe(), run)
    prep2, tok2 = run_tokenize(make_recipe(max_length=MAX_LENGTH * 2), run)
    assert prep2.reused
    assert not tok2.reused and tok2.fingerprint != tok1.fingerprint
    assert tok2.report["max_length"] == MAX_LENGTH * 2
    assert sum(s["truncated"] for s in tok2.report["splits"].values()) < N_LONG - 1
    _, tok3 = run_tokenize(make_recipe(truncation="drop", max_length=MAX_LENGTH * 2), run)
    assert not tok3.reused and tok3.fingerprint != tok2.fingerprint


def test_changed_data_reruns_both(make_recipe, run, data_csv):
    recipe = make_recipe()
    prep1, tok1 = run_tokenize(recipe, run)
    with open(data_csv, "a", encoding="utf-8") as fh:
        fh.write("one more good film 999,positive\n")
    prep2, tok2 = run_tokenize(recipe, run)
    assert not prep2.reused and not tok2.reused
    assert tok2.fingerprint != tok1.fingerprint
    assert sum(s["rows"] for s in tok2.report["splits"].values()) == \
        sum(s["rows"] for s in tok1.report["splits"].values()) + 1


def test_changed_tokenizer_file_reruns_tokenize(make_recipe, run, tmp_path, tiny_model_dir):
    import shutil

    copy = tmp_path / "model-copy"
    shutil.copytree(tiny_model_dir, copy)
    recipe = make_recipe(model=copy)
    _, tok1 = run_tokenize(recipe, run)
    config = copy / "tokenizer_config.json"
    config.write_text(config.read_text(encoding="utf-8") + "\n", encoding="utf-8")  # one byte more
    prep2, tok2 = run_tokenize(recipe, run)
    assert prep2.reused and not tok2.reused and tok2.fingerprint != tok1.fingerprint
    (copy / "model.safetensors").write_bytes(b"")  # weights are not the tokenizer's business
    _, tok3 = run_tokenize(recipe, run)
    assert tok3.reused
