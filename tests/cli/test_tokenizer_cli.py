"""tunekit tokenize --train-tokenizer / --compare, in-process; the comparison checked against a
count made here by hand, and bad input as one error line with a hint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_checks import assert_clean_error
from conftest import tiny_recipe, write_rows_csv
from tunekit.cli.app import app

runner = CliRunner()
MAX_LENGTH = 9
KNOWN = ["the", "movie", "was", "great", "bad", "plot", "fun"]
UNKNOWN = ["zebra", "quokka", "yak"]


def rows(n: int) -> list[dict]:
    """Texts of known and unknown words and punctuation, some longer than MAX_LENGTH tokens."""
    out = []
    for i in range(n):
        words = [KNOWN[(i + j) % len(KNOWN)] for j in range(2 + i % 6)]
        if i % 3 == 0:
            words.append(UNKNOWN[i % len(UNKNOWN)])
        out.append({"text": " ".join(words) + ("!" if i % 2 else ", really") + f" {i}",  # no duplicates
                    "label": "positive" if i % 2 else "negative"})
    return out


@pytest.fixture
def word_tokenizer(tmp_path) -> Path:
    """A word-level tokenizer whose counts are easy to make by hand: one token per word or run
    of punctuation (the Whitespace pre-tokenizer: \\w+ | [^\\w\\s]+), [UNK] for any other word."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *KNOWN, ",", "!"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    folder = tmp_path / "words"
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]").save_pretrained(str(folder))
    return folder


@pytest.fixture
def recipe(tmp_path, tiny_model_dir) -> Path:
    data = write_rows_csv(tmp_path / "texts.csv", rows(90))
    return tiny_recipe(tmp_path, tiny_model_dir, data, tokenize={"max_length": MAX_LENGTH})


def by_hand(texts: list[str]) -> dict:
    pieces = [re.findall(r"\w+|[^\w\s]+", t) for t in texts]
    tokens = sum(len(p) for p in pieces)
    vocab = set(KNOWN) | {",", "!"}  # numbers and UNKNOWN words are [UNK]
    return {"tokens": tokens, "fertility": tokens / sum(len(t.split()) for t in texts),
            "unk_rate": sum(1 for p in pieces for w in p if w not in vocab) / tokens,
            "over_max_length": sum(1 for p in pieces if len(p) + 2 > MAX_LENGTH) / len(texts),
            "vocab_size": len(vocab) + 4}


def test_train_a_tokenizer_and_compare_it(recipe, word_tokenizer, tmp_path):
    import datasets
    from transformers import AutoTokenizer

    result = runner.invoke(app, ["tokenize", str(recipe), "--train-tokenizer", "bpe", "--vocab-size", "60",
                                 "--min-frequency", "1", "--compare", str(word_tokenizer), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    run = tmp_path / "run"
    training = out["tokenizer_training"]
    assert (training["algorithm"], training["vocab_size"], training["min_frequency"]) == ("bpe", 60, 1)
    trained = AutoTokenizer.from_pretrained(str(run / "tokenizer"))
    assert len(trained) == training["actual_vocab_size"] <= 60
    assert out["tokenize"]["tokenizer"]  # tokenize ran with it

    comparison = out["comparison"]
    assert comparison == json.loads((run / "data" / "tokenizer_comparison.json").read_text())
    assert comparison["split"] == "validation"
    own, other = comparison["tokenizers"]
    assert own["source"] == "recipe" and own["vocab_size"] == len(trained)
    assert other["source"] == "--compare" and other["name"] == str(word_tokenizer)
    texts = datasets.load_from_disk(str(run / "data" / "prepared"))["validation"]["text"]
    assert comparison["texts"] == len(texts) >= 5
    expected = by_hand(texts)
    assert 0 < expected["unk_rate"] < 1 and 0 < expected["over_max_length"] < 1  # the data exercises both
    for key, value in expected.items():
        assert other[key] == pytest.approx(value), key


def test_compare_prints_a_table_and_reuses_the_trained_tokenizer(recipe, word_tokenizer, tmp_path):
    args = ["tokenize", str(recipe), "--set", "tokenize.train_tokenizer.algorithm=wordpiece",
            "--set", "tokenize.train_tokenizer.vocab_size=80"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    stamp = (tmp_path / "run" / "tokenizer" / "tokenizer.json").stat().st_mtime_ns
    # --vocab-size alone resizes the recipe's own trained tokenizer section (same value: cached)
    again = runner.invoke(app, [*args, "--vocab-size", "80", "--compare", str(word_tokenizer)])
    assert again.exit_code == 0, again.output
    assert "tokens/word" in again.stderr and "trained wordpiece (recipe)" in again.stderr
    assert (tmp_path / "run" / "tokenizer" / "tokenizer.json").stat().st_mtime_ns == stamp


def test_without_a_trained_tokenizer_the_recipe_s_own_is_compared(recipe, word_tokenizer, tiny_model_dir):
    result = runner.invoke(app, ["tokenize", str(recipe), "--compare", str(word_tokenizer), "--json"])
    assert result.exit_code == 0, result.output
    own = json.loads(result.stdout)["comparison"]["tokenizers"][0]
    assert own["name"] == str(tiny_model_dir) and own["unk_rate"] > 0  # zebra and friends are unknown to it


@pytest.mark.parametrize("extra, phrases", [
    (["--vocab-size", "50"], ["--vocab-size", "trains none"]),
    (["--train-tokenizer", "bpe"], ["needs a vocabulary size"]),
    (["--train-tokenizer", "bpe", "--vocab-size", "8"], ["vocab_size 8 is below the", "special tokens"]),
    (["--train-tokenizer", "sentencepiece", "--vocab-size", "80"], ["tokenize.train_tokenizer.algorithm"]),
    (["--compare", "./no/such/tokenizer"], ["no/such/tokenizer"]),
])
def test_bad_input_is_one_error_line_with_a_hint(recipe, extra, phrases):
    result = runner.invoke(app, ["tokenize", str(recipe), *extra])
    assert_clean_error(result, *phrases)
