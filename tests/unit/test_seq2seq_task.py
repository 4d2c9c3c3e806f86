"""The text-to-text task on hand-made rows: cleaning, both model kinds' token layouts, the length
rules, post-processing, and the scores against the libraries' own reference computations."""

from __future__ import annotations

import pandas as pd
import pytest

from tunekit.errors import DataError
from tunekit.pipeline.generation import IGNORE_INDEX
from tunekit.recipe.schema import DataConfig, TokenizeConfig
from tunekit.tasks import seq2seq
from tunekit.tasks.text_metrics import bleu_chrf, rouge_scores, split_sentences

WORDS = ["the", "cat", "sat", "on", "mat", "le", "chat", "est", "assis", "sur", "tapis", "summary", ":"]


def word_tokenizer(specials, template, **tokens):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=tokens["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(s, vocab[s]) for s in specials if s in template])
    return PreTrainedTokenizerFast(tokenizer_object=tok, **tokens)


@pytest.fixture(scope="module")
def bert_tok():
    return word_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]"], "[CLS] $A [SEP]", unk_token="[UNK]",
                          pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]")


@pytest.fixture(scope="module")
def llama_tok():
    return word_tokenizer(["<unk>", "<s>", "</s>"], "<s> $A", unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def dataset(pairs):
    return seq2seq.to_dataset(pd.DataFrame({"id": [str(i) for i in range(len(pairs))],
                                            "source": [s for s, _ in pairs], "target": [t for _, t in pairs]}), {})


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


# ---- prepare ---------------------------------------------------------------------------------

def test_clean_drops_and_counts_empty_rows_and_joins_nested_text():
    table = pd.DataFrame({"id": ["a", "b", "c", "d", "e"],
                          "source": [["the cat", "sat"], "", "the  mat", None, "on the mat"],
                          "target": [{"x": "le chat", "y": "est assis"}, "le tapis", "  ", "le chat", 3]})
    frame, counts = seq2seq.clean(table, DataConfig(train="x"), {}, "train data")
    assert frame.to_dict("records") == [
        {"id": "a", "source": "the cat sat", "target": "le chat est assis"},
        {"id": "e", "source": "on the mat", "target": "3"}]
    assert counts == {"rows_in": 5, "empty_source": 2, "empty_target": 1, "duplicates": 0, "rows_out": 2}


def test_empty_target_is_an_error_without_drop_empty():
    table = pd.DataFrame({"id": ["a", "b"], "source": ["the cat", "the mat"], "target": ["le chat", ""]})
    with pytest.raises(DataError, match="row 1 has an empty target"):
        seq2seq.clean(table, DataConfig(train="x", clean={"drop_empty": False}), {}, "train data")


# ---- tokenize: encoder-decoder ------------------------------------------------------------------

def test_encoder_decoder_layout_with_prefix(bert_tok):
    cfg = TokenizeConfig(max_length=16, max_target_length=8, prefix="summary : ")
    out, stats = seq2seq.encode(dataset([("the cat sat", "le chat")]), bert_tok, cfg, "train", warm_start=True)
    cls, sep = bert_tok.cls_token_id, bert_tok.sep_token_id
    assert out["input_ids"][0] == [cls, *ids(bert_tok, "summary : the cat sat"), sep]
    assert out["labels"][0] == [*ids(bert_tok, "le chat"), sep]  # [CLS] is the decoder's start, not a label
    assert out["attention_mask"][0] == [1] * 7 and out["row"] == [0]
    assert stats["truncated"] == stats["truncated_targets"] == stats["dropped"] == 0
    plain, _ = seq2seq.encode(dataset([("the cat", "le chat")]), bert_tok, cfg, "train", warm_start=False)
    assert plain["labels"][0] == [cls, *ids(bert_tok, "le chat"), sep]  # other models: the tokenizer's own


def test_target_truncation_policies(bert_tok):
    pairs = [("the cat", "le chat est assis sur le tapis"), ("the mat", "le tapis")]
    cut, stats = seq2seq.encode(dataset(pairs), bert_tok, TokenizeConfig(max_target_length=4), "train",
                                warm_start=True)
    assert cut["labels"][0] == [*ids(bert_tok, "le chat est"), bert_tok.sep_token_id]  # end token kept
    assert stats["truncated_targets"] == 1 and stats["rows"] == 2
    kept, stats = seq2seq.encode(dataset(pairs), bert_tok, TokenizeConfig(max_target_length=4, truncation="drop"),
                                 "train", warm_start=True)
    assert kept["row"] == [1] and stats["dropped"] == 1
    with pytest.raises(DataError, match="1 train targets are longer than tokenize.max_target_length=4"):
        seq2seq.encode(dataset(pairs), bert_tok, TokenizeConfig(max_target_length=4, truncation="error"), "train",
                       warm_start=True)


def test_source_truncation_keeps_the_closing_token(bert_tok):
    out, stats = seq2seq.encode(dataset([("the cat sat on the mat", "le chat")]), bert_tok,
                                TokenizeConfig(max_length=4), "test", warm_start=True)
    assert out["input_ids"][0] == [bert_tok.cls_token_id, *ids(bert_tok, "the cat"), bert_tok.sep_token_id]
    assert stats["truncated"] == 1 and stats["tokens_max"] == 8


def test_target_longer_than_max_new_tokens_is_an_error(bert_tok):
    pairs = [("the cat", "le chat est assis")]
    with pytest.raises(DataError, match="longer than eval.generation.max_new_tokens=3"):
        seq2seq.encode(dataset(pairs), bert_tok, TokenizeConfig(), "train", warm_start=True, max_new_tokens=3)
    ok, _ = seq2seq.encode(dataset(pairs), bert_tok, TokenizeConfig(max_target_length=3), "train", warm_start=True,
                           max_new_tokens=3)  # truncated to fit: no error
    assert len(ok["labels"][0]) == 3


# ---- tokenize: decoder-only --------------------------------------------------------------------

def test_decoder_only_masks_the_prompt(llama_tok):
    cfg = TokenizeConfig(max_length=16, max_target_length=8, prefix="summary : ")
    out, _ = seq2seq.encode(dataset([("the cat", "le chat")]), llama_tok, cfg, "train", decoder_only=True)
    bos, eos = llama_tok.bos_token_id, llama_tok.eos_token_id
    prompt = [bos, *ids(llama_tok, "summary : the cat")]  # a word-level tokenizer drops the "\n" separator
    target = [*ids(llama_tok, "le chat"), eos]
    assert out["input_ids"][0] == prompt + target
    assert out["labels"][0] == [IGNORE_INDEX] * len(prompt) + target
    assert out["prompt_length"][0] == len(prompt)


def test_decoder_only_truncates_source_and_target(llama_tok):
    cfg = TokenizeConfig(max_length=3, max_target_length=3)
    out, stats = seq2seq.encode(dataset([("the cat sat on", "le chat est assis")]), llama_tok, cfg, "train",
                                decoder_only=True)
    eos = llama_tok.eos_token_id
    assert out["input_ids"][0][:out["prompt_length"][0]] == [llama_tok.bos_token_id, *ids(llama_tok, "the cat")]
    assert [t for t in out["labels"][0] if t != IGNORE_INDEX] == [*ids(llama_tok, "le chat"), eos]
    assert stats["truncated"] == 1 and stats["truncated_targets"] == 1


# ---- post-processing ---------------------------------------------------------------------------

def test_collator_pads_inputs_and_labels(llama_tok):
    batch = seq2seq.collator(llama_tok)([{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, 6, 7]},
                                         {"input_ids": [5], "attention_mask": [1], "labels": [5]}])
    pad = llama_tok.eos_token_id  # no pad token: eos pads (masked out)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, pad, pad]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [5, -100, -100]]


def test_trainer_metrics_decode_generated_ids(bert_tok):
    import numpy as np

    compute = seq2seq.trainer_metrics({}, bert_tok, ("rouge1", "rouge2", "rougeL", "rougeLsum"))
    assert seq2seq.trainer_metrics({}, None, ("rouge1",)) is None  # plain Trainer: validation loss only
    cls, sep = bert_tok.cls_token_id, bert_tok.sep_token_id

    class EvalPred:  # generated ids start with the decoder start token; batches are joined with -100
        predictions = np.array([[cls, *ids(bert_tok, "le chat"), sep, -100], [cls, *ids(bert_tok, "le tapis"), sep, 0]])
        label_ids = np.array([[*ids(bert_tok, "le chat"), sep, -100], [*ids(bert_tok, "le chat"), sep, -100]])
    scores = compute(EvalPred())
    assert set(scores) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert scores["rouge1"] == pytest.approx(75.0)  # 100 and 50


# ---- scores against the libraries --------------------------------------------------------------

PREDICTIONS = ["The cat sat on the mat. It was happy.", "A dog ran in the park quickly.",
               "Results improve by 3.5 points. Dr. Smith agrees."]
REFERENCES = ["The cat was sitting on the mat. It looked happy!", "The dog runs through the park.",
              "Results improved by 3.5 points on average. Dr. Smith and J. Doe agree."]


def test_rouge_matches_rouge_score():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    expected = {k: 0.0 for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")}
    for p, r in zip(PREDICTIONS, REFERENCES):
        scores = scorer.score("\n".join(split_sentences(r)), "\n".join(split_sentences(p)))
        for k in expected:
            expected[k] += scores[k].fmeasure * 100 / len(PREDICTIONS)
    got = rouge_scores(PREDICTIONS, REFERENCES)
    assert got == pytest.approx(expected, abs=1e-4)
    assert got["rougeLsum"] != got["rougeL"]  # sentence splitting reached Lsum


def test_bleu_chrf_match_sacrebleu():
    import sacrebleu

    got = bleu_chrf(PREDICTIONS, REFERENCES)
    assert got["bleu"] == pytest.approx(sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES]).score, abs=1e-4)
    assert got["chrf"] == pytest.approx(sacrebleu.corpus_chrf(PREDICTIONS, [REFERENCES]).score, abs=1e-4)
    assert bleu_chrf(REFERENCES, REFERENCES) == {"bleu": 100.0, "chrf": 100.0}


@pytest.mark.parametrize("text, sentences", [
    ("We test it. It works.", ["We test it.", "It works."]),
    ("See e.g. Table 2 for details. Then stop.", ["See e.g. Table 2 for details.", "Then stop."]),
    ("Dr. Smith and J. Doe wrote it. They agree!", ["Dr. Smith and J. Doe wrote it.", "They agree!"]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ("Is it 3.5 or 4? Nobody knows.", ["Is it 3.5 or 4?", "Nobody knows."]),
    ("lower case after. still two sentences", ["lower case after.", "still two sentences"]),
    ("as shown by smith et al. in 2020. fig. 2 agrees.", ["as shown by smith et al. in 2020.", "fig. 2 agrees."]),
])
def test_split_sentences(text, sentences):
    assert split_sentences(text) == sentences
