"""data.quality (pipeline/quality.py): each row rule's counts, each policy (warn / drop / error),
row numbers that point at the right rows, label conflicts and label balance."""

import pandas as pd
import pytest

from tunekit.errors import DataError, RecipeError
from tunekit.pipeline.quality import check_splits, filter_rows, unprintable_share
from tunekit.recipe.schema import Recipe
from tunekit.tasks import get_task

CLS = get_task("classification")
LONG = "the quick brown fox jumps over the lazy dog near the river bank on a sunny day in june"
NEAR = LONG.replace("june", "july")  # one word of 18 changed: shingle-5 Jaccard 13/15 = 0.87


def recipe(model: str = "/nonexistent", task: str = "classification", tokenize: dict = None, **quality) -> Recipe:
    spec = {"name": "t", "task": task, "output_dir": "/tmp/unused", "model": {"name": model},
            "data": {"train": "x.csv", "quality": quality}}
    if tokenize:
        spec["tokenize"] = tokenize
    return Recipe.model_validate(spec)


def frame(texts, labels=None) -> pd.DataFrame:
    return pd.DataFrame({"text": texts, "label": labels if labels is not None else [i % 2 for i in range(len(texts))]})


# ---- row filters --------------------------------------------------------------------------------

def test_character_rules_count_and_drop():
    rows = frame(["ok text", "x", "a" * 40, "fine again", "yy"])
    kept, counts = filter_rows(rows, recipe(min_chars=3, max_chars=20), CLS)
    assert counts == {"unprintable": 0, "too_few_chars": 2, "too_many_chars": 1}
    assert kept["text"].tolist() == ["ok text", "fine again"]


def test_defaults_drop_nothing_on_clean_text():
    rows = frame(["a", "line one\nline two\ttabbed", "no\u00a0break space", "émoji 🎉 ok"])
    kept, counts = filter_rows(rows, recipe(), CLS)
    assert counts == {"unprintable": 0} and len(kept) == 4


def test_unprintable_and_replacement_characters():
    assert unprintable_share("abcd") == 0.0
    assert unprintable_share("ab\ufffd\ufffd") == 0.5          # what invalid UTF-8 decodes to
    assert unprintable_share("a\x00\x01\x02\x03") == 0.8      # control characters
    assert unprintable_share("a\n\tb c") == 0.0                # whitespace is fine
    rows = frame(["clean text", "bin\x00\x01\x02\x03ary", "\ufffd\ufffd\ufffdok", "one \ufffd in a long enough text"])
    kept, counts = filter_rows(rows, recipe(), CLS)
    assert counts["unprintable"] == 2
    assert kept["text"].tolist() == ["clean text", "one \ufffd in a long enough text"]
    _, counts = filter_rows(rows, recipe(max_unprintable=0.5), CLS)
    assert counts["unprintable"] == 1  # only the 4-in-9 control characters row stays ... the 3-in-5 goes
    _, counts = filter_rows(rows, recipe(max_unprintable=1.0), CLS)
    assert "unprintable" not in counts  # 1.0: the rule is off


def test_row_text_is_every_text_column():
    qa = pd.DataFrame({"id": ["1", "2"], "context": ["a long passage " * 5, "short"], "question": ["why?", "who?"],
                       "answers": [{"text": [], "answer_start": []}] * 2})
    kept, counts = filter_rows(qa, recipe(task="qa", max_chars=50), get_task("qa"))
    assert counts["too_many_chars"] == 1 and kept["id"].tolist() == ["2"]


def test_token_rules_use_the_models_tokenizer(tiny_model_dir):
    rows = frame(["good", "good movie", "the movie was really good", "the movie was really really good fun"])
    kept, counts = filter_rows(rows, recipe(model=str(tiny_model_dir), min_tokens=2, max_tokens=5), CLS)
    # word-level tokenizer: one token a word, no [CLS]/[SEP] counted
    assert counts["too_few_tokens"] == 1 and counts["too_many_tokens"] == 1
    assert kept["text"].tolist() == ["good movie", "the movie was really good"]


def test_token_rules_count_true_lengths_when_the_tokenizer_pads_and_truncates(tiny_model_dir, tmp_path):
    """A tokenizer.json may ask for padding and truncation (MiniLM's pads to 128): counts ignore both,
    and the tokenizer is left as it was."""
    import json
    import shutil

    padded = tmp_path / "padded"
    shutil.copytree(tiny_model_dir, padded)
    spec = json.loads((padded / "tokenizer.json").read_text())
    spec["padding"] = {"strategy": {"Fixed": 16}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0,
                       "pad_type_id": 0, "pad_token": "[PAD]"}
    spec["truncation"] = {"direction": "Right", "max_length": 4, "strategy": "LongestFirst", "stride": 0}
    (padded / "tokenizer.json").write_text(json.dumps(spec))
    rows = frame(["good", "good movie", "the movie was really good", "the movie was really really good fun"])
    kept, counts = filter_rows(rows, recipe(model=str(padded), min_tokens=2, max_tokens=5), CLS)
    assert counts["too_few_tokens"] == 1 and counts["too_many_tokens"] == 1
    assert kept["text"].tolist() == ["good movie", "the movie was really good"]


def test_token_rules_refuse_a_tokenizer_trained_later(tiny_model_dir):
    r = recipe(model=str(tiny_model_dir), tokenize={"max_length": 32, "train_tokenizer": {"algorithm": "bpe", "vocab_size": 100}},
               max_tokens=5)
    with pytest.raises(RecipeError, match="train_tokenizer"):
        filter_rows(frame(["a b"]), r, CLS)


def test_token_rules_need_tokenizer_files_for_a_config_only_model(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    r = Recipe.model_validate({"name": "t", "task": "classification", "output_dir": "/tmp/unused",
                               "model": {"name": str(tmp_path), "init": "config"},
                               "data": {"train": "x.csv", "quality": {"min_tokens": 2}}})
    with pytest.raises(RecipeError, match="has none"):
        filter_rows(frame(["a b"]), r, CLS)


# ---- duplicates within a split -------------------------------------------------------------------

def test_within_warn_counts_and_lists_with_row_numbers():
    train = frame(["alpha beta", LONG, "gamma", "Alpha, BETA!", NEAR, "alpha beta"])
    frames, section = check_splits({"train": train}, recipe(), CLS)
    counts = section["counts"]["train"]
    assert counts["exact_duplicates"] == 2 and counts["near_duplicates"] == 1 and counts["dropped"] == 0
    assert len(frames["train"]) == 6
    group = section["offenders"]["duplicate_groups"][0]
    assert group["size"] == 3 and [r["row"] for r in group["rows"]] == [0, 3, 5]
    pair = section["offenders"]["near_duplicates"][0]
    assert (pair["a"]["row"], pair["b"]["row"]) == (1, 4) and 0.8 <= pair["similarity"] < 1.0
    assert "train: 3 rows duplicate earlier rows of train (2 identical ignoring case and punctuation, 1 near-duplicate at similarity >= 0.8)" in section["warnings"][1]
    assert section["warnings"][0].startswith("1 text appears with different labels (3 rows in train)")


def test_within_drop_keeps_the_first_and_renumbers():
    train = frame(["alpha beta", LONG, "gamma", "Alpha, BETA!", NEAR, "delta"])
    frames, section = check_splits({"train": train}, recipe(near_duplicates={"within": "drop"}), CLS)
    assert frames["train"]["text"].tolist() == ["alpha beta", LONG, "gamma", "delta"]
    assert section["counts"]["train"]["dropped"] == 2
    assert not any("repeat" in w for w in section["warnings"])
    pair = section["offenders"]["near_duplicates"][0]
    assert pair["a"]["row"] == 1 and pair["b"]["row"] is None and pair["b"]["dropped"]
    longest = section["offenders"]["longest"][0]
    assert frames["train"]["text"][longest["row"]] == LONG  # row numbers of the prepared split


def test_within_off_checks_nothing():
    _, section = check_splits({"train": frame(["a b", "a b"])}, recipe(near_duplicates={"within": "off"}), CLS)
    assert "exact_duplicates" not in section["counts"]["train"]


# ---- leaks across splits --------------------------------------------------------------------------

def splits():
    same = lambda texts: frame(texts, [0] * len(texts))  # one label: no label conflicts here
    return {"train": same(["one two", LONG, "three four"]),
            "validation": same(["five six", "seven"]),
            "test": same(["eight nine", "One two!", NEAR, "five six"])}


def test_across_warn_counts_each_later_split():
    frames, section = check_splits(splits(), recipe(), CLS)
    test = section["counts"]["test"]
    assert (test["leaked_exact"], test["leaked_near"]) == (2, 1)  # one two (train), five six (validation); NEAR
    assert section["counts"]["validation"]["leaked_exact"] == 0
    assert len(frames["test"]) == 4
    leak = next(p for p in section["offenders"]["leaks"] if p["similarity"] < 1)
    assert (leak["a"]["split"], leak["a"]["row"], leak["b"]["split"], leak["b"]["row"]) == ("train", 1, "test", 2)
    assert any(w.startswith("3 test rows repeat rows of train/validation (2 identical ignoring case and punctuation, 1 near-duplicate at") for w in section["warnings"])


def test_across_drop_removes_them_from_the_later_split():
    frames, section = check_splits(splits(), recipe(near_duplicates={"across": "drop"}), CLS)
    assert frames["test"]["text"].tolist() == ["eight nine"]
    assert len(frames["train"]) == 3 and len(frames["validation"]) == 2
    assert section["counts"]["test"]["dropped"] == 3
    assert not section["warnings"]


def test_across_error_names_the_count_and_an_example():
    with pytest.raises(DataError, match=r"3 test rows repeat rows of train/validation .*e\.g\. test row 1 \"One two!\" ~ train row 0") as err:
        check_splits(splits(), recipe(near_duplicates={"across": "error"}), CLS)
    assert "across: drop" in err.value.hint


# ---- label conflicts and balance ----------------------------------------------------------------------

def test_label_conflicts_warn_drop_error():
    train = frame(["good film", "bad film", "Good film!", "fine"], [1, 0, 0, 1])
    test = frame(["bad film", "other"], [1, 0])
    r = recipe(label_conflicts="warn", near_duplicates={"within": "off", "across": "off"})
    frames, section = check_splits({"train": train, "test": test}, r, CLS)
    assert section["counts"]["train"]["label_conflicts"] == 3 and section["counts"]["test"]["label_conflicts"] == 1
    listed = section["offenders"]["label_conflicts"]
    assert {(x["split"], x["row"], x["label_id"]) for c in listed for x in c["rows"]} == {
        ("train", 0, 1), ("train", 2, 0), ("train", 1, 0), ("test", 0, 1)}
    assert any(w.startswith("2 texts appear with different labels (4 rows in train, test)") for w in section["warnings"])

    frames, section = check_splits({"train": train, "test": test}, recipe(label_conflicts="drop"), CLS)
    assert frames["train"]["text"].tolist() == ["fine"] and frames["test"]["text"].tolist() == ["other"]

    with pytest.raises(DataError, match="different labels"):
        check_splits({"train": train, "test": test}, recipe(label_conflicts="error"), CLS)


def test_label_names_come_from_the_recipe_when_it_lists_them():
    r = Recipe.model_validate({"name": "t", "task": "classification", "output_dir": "/tmp/unused",
                               "model": {"name": "/x"}, "data": {"train": "x.csv", "labels": {"names": ["neg", "pos"]}}})
    _, section = check_splits({"train": frame(["a b", "A b"], [0, 1])}, r, CLS)
    assert {x["label"] for x in section["offenders"]["label_conflicts"][0]["rows"]} == {"neg", "pos"}


def test_label_balance_and_imbalance_warning():
    texts = [f"row number {i}" for i in range(110)]
    _, section = check_splits({"train": frame(texts, [0] * 100 + [1] * 10)}, recipe(), CLS)
    balance = section["balance"]["train"]
    assert balance["counts"] == [100, 10] and balance["ratio"] == 10.0
    assert not any("imbalanced" in w for w in section["warnings"])  # 10:1 is the limit, not over it
    _, section = check_splits({"train": frame(texts + ["one more"], [0] * 101 + [1] * 10)}, recipe(), CLS)
    assert any("imbalanced 10:1" in w for w in section["warnings"])  # 10.1:1


def test_qa_questions_on_one_passage_are_not_near_duplicates():
    passage = "a long passage about rivers and the towns along them " * 4
    qa = pd.DataFrame({"id": ["1", "2", "3"], "context": [passage, passage, passage + " more"],
                       "question": ["where is it?", "who built it?", "where is it?"],
                       "answers": [{"text": [], "answer_start": []}] * 3})
    _, section = check_splits({"train": qa}, recipe(task="qa"), get_task("qa"))
    assert section["counts"]["train"]["near_duplicates"] == 0  # rows 0 and 1 share the passage
    assert "balance" not in section


def test_chat_rows_compare_their_contents():
    chat = lambda text: [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]
    lm = pd.DataFrame({"messages": [chat("Hello there!"), chat("hello there"), chat("bye")]})
    r = Recipe.model_validate({"name": "t", "task": "causal_lm", "output_dir": "/tmp/unused", "model": {"name": "/x"},
                               "data": {"train": "x.jsonl", "style": "chat"},
                               "eval": {"generation": {"max_new_tokens": 8}}})
    _, section = check_splits({"train": lm}, r, get_task("causal_lm"))
    assert section["counts"]["train"]["exact_duplicates"] == 1
    kept, counts = filter_rows(lm, r, get_task("causal_lm"))
    assert len(kept) == 3 and counts == {"unprintable": 0}
