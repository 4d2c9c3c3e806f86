"""classification's tokenize path (text_encoding.encode_texts) against the tokenizer's own call."""

import datasets
import pytest

from tunekit.errors import DataError
from tunekit.pipeline.text_encoding import encode_texts
from tunekit.pipeline.tokenization import load_tokenizer
from tunekit.recipe.schema import TokenizeConfig

TEXTS = ["a good film", "bad", "word " * 40, "", "the plot is great and the cast is good " * 3, "fine"]


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


def split(texts=TEXTS):
    return datasets.Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(len(texts))]})


@pytest.mark.parametrize("policy", ["truncate", "drop"])
def test_same_inputs_as_the_tokenizer_call(tok, policy):
    cfg = TokenizeConfig(max_length=12, truncation=policy)
    encoded, stats = encode_texts(split(), tok, cfg, "train", carry={"labels": "label"})
    true = [len(ids) for ids in tok(TEXTS)["input_ids"]]
    ref = tok(TEXTS, truncation=True, max_length=12)
    keep = [i for i, n in enumerate(true) if policy == "truncate" or n <= 12]
    assert encoded["row"] == keep and encoded["labels"] == [i % 2 for i in keep]
    assert set(tok.model_input_names) <= set(encoded.column_names)
    for key in tok.model_input_names:
        assert encoded[key] == [ref[key][i] for i in keep], key
    over = sum(n > 12 for n in true)
    assert over == 2
    assert stats["tokens_max"] == max(true)  # the untruncated length, from the overflowing pieces
    assert (stats["truncated"], stats["dropped"]) == ((over, 0) if policy == "truncate" else (0, over))
    assert stats["rows"] == len(keep)
    assert stats["longest"][0] == {"row": 2, "tokens": max(true)}
    assert sum(stats["histogram"]["counts"]) == len(TEXTS) and stats["histogram"]["over"] == over


def test_error_policy_counts_every_long_row(tok):
    with pytest.raises(DataError, match=r"2 train rows are longer than tokenize.max_length=12 \(first: row 2"):
        encode_texts(split(), tok, TokenizeConfig(max_length=12, truncation="error"), "train")


def test_all_rows_dropped_is_an_error(tok):
    with pytest.raises(DataError, match="every train row is longer"):
        encode_texts(split(["word " * 40]), tok, TokenizeConfig(max_length=12, truncation="drop"), "train")


def test_the_tokenizer_is_left_as_it_was(tok):
    backend = tok.backend_tokenizer
    backend.enable_padding(length=20)
    before = (backend.truncation, backend.padding)
    encode_texts(split(), tok, TokenizeConfig(max_length=12), "train")
    assert (backend.truncation, backend.padding) == before
    backend.no_padding()
    encode_texts(split(), tok, TokenizeConfig(max_length=12), "train")
    assert backend.padding is None and backend.truncation == before[0]


def test_batches_join_in_order(tok, monkeypatch):
    import tunekit.pipeline.text_encoding as te

    monkeypatch.setattr(te, "BATCH_ROWS", 4)
    texts = [f"text number {i} " * (i % 5 + 1) for i in range(11)]
    encoded, stats = encode_texts(split(texts), tok, TokenizeConfig(max_length=8, truncation="drop"), "train")
    true = [len(ids) for ids in tok(texts)["input_ids"]]
    assert encoded["row"] == [i for i, n in enumerate(true) if n <= 8]
    assert encoded["input_ids"] == [tok(texts[i])["input_ids"] for i in encoded["row"]]
    assert stats["dropped"] == sum(n > 8 for n in true)
