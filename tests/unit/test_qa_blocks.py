"""Extractive QA building blocks: windowed features, n-best decoding, SQuAD metrics.

The metric tests compare against the official SQuAD v1.1 and v2.0 scripts, vendored verbatim
next to this file (squad_v1_official.py, squad_v2_official.py).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from tunekit.errors import DataError
from tunekit.tasks.qa_decode import decode_predictions
from tunekit.tasks.qa_features import check_answers, prepare_eval_features, prepare_train_features
from tunekit.tasks.qa_metrics import exact_v1, f1_v1, squad_metric_path, squad_scores

sys.path.insert(0, str(Path(__file__).parent))  # the vendored official scripts
import squad_v1_official  # noqa: E402
import squad_v2_official  # noqa: E402

# ---- features --------------------------------------------------------------------------------

QUESTION = "where is it ?"  # 4 tokens
CONTEXT = " ".join(f"c{i}" for i in range(40))  # 40 one-word tokens: cut into windows
MAX_LENGTH, STRIDE = 16, 4  # 16 - 4 question - 3 special = 9 context tokens a window, 4 shared


def span_of(context: str, text: str) -> dict:
    return {"text": [text], "answer_start": [context.index(text)]}


NONE = {"text": [], "answer_start": []}


def _tokenizer(padding_side: str = "right"):
    """A word-level BERT-style fast tokenizer over the words of these tests."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = sorted(set(re.findall(r"\w+|[^\w\s]+", CONTEXT + " " + QUESTION + " what why")))
    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", padding_side=padding_side)


@pytest.fixture(scope="module")
def tokenizer():
    return _tokenizer()


def _rows():
    answers = [span_of(CONTEXT, "c25 c26"),  # in two overlapping windows
               span_of(CONTEXT, "c8"),  # the last context token of the first window
               NONE,  # unanswerable
               span_of("c1 c2 c3", "c2")]  # short context: a single window
    return [QUESTION, "   " + QUESTION, QUESTION, QUESTION], [CONTEXT, CONTEXT, CONTEXT, "c1 c2 c3"], answers


def _check_labels(tok, questions, contexts, answers):
    train = prepare_train_features(questions, contexts, answers, tok, MAX_LENGTH, STRIDE)
    evals = prepare_eval_features(list(range(len(questions))), questions, contexts, tok, MAX_LENGTH, STRIDE)
    assert train["input_ids"] == evals["input_ids"]  # same windows in the same order
    labelled = {i: [] for i in range(len(questions))}
    for f, row in enumerate(evals["example_id"]):
        offsets, start, end = evals["offset_mapping"][f], train["start_positions"][f], train["end_positions"][f]
        cls = train["input_ids"][f].index(tok.cls_token_id)
        context_offsets = [o for o in offsets if o is not None]
        window = (context_offsets[0][0], context_offsets[-1][1])
        answer = answers[row]
        inside = bool(answer["text"]) and window[0] <= answer["answer_start"][0] and \
            answer["answer_start"][0] + len(answer["text"][0]) <= window[1]
        if inside:
            assert offsets[start] is not None and offsets[end] is not None
            assert contexts[row][offsets[start][0]:offsets[end][1]] == answer["text"][0]
            labelled[row].append(f)
        else:  # answer not (wholly) in this window, or no answer at all
            assert start == end == cls
    return train, evals, labelled


def test_train_labels_decode_back_to_the_answer_and_point_at_cls_elsewhere(tokenizer):
    questions, contexts, answers = _rows()
    train, evals, labelled = _check_labels(tokenizer, questions, contexts, answers)
    per_row = [evals["example_id"].count(i) for i in range(4)]
    assert per_row == [8, 8, 8, 1]  # windows start at context tokens 0, 5, ..., 35
    assert len(labelled[0]) == 2 and len(labelled[1]) == 2 and labelled[2] == [] and len(labelled[3]) == 1
    assert {"input_ids", "attention_mask", "start_positions", "end_positions"} <= set(train)
    assert "offset_mapping" not in train and "overflow_to_sample_mapping" not in train
    # "c8" ends the first window: its label is the token before [SEP], not [SEP] itself
    first = evals["example_id"].index(1)
    assert train["start_positions"][first] == train["end_positions"][first] == MAX_LENGTH - 2
    # leading whitespace in the question is dropped (a word-level tokenizer would ignore it
    # anyway, so look at what reaches the tokenizer)
    spy = _Spy(tokenizer)
    prepare_train_features(questions, contexts, answers, spy, MAX_LENGTH, STRIDE)
    assert spy.pairs and all(q == QUESTION for q in spy.pairs[-1][0])
    assert train["input_ids"][:8] == train["input_ids"][8:16]


class _Spy:
    """The tokenizer, recording the (first, second) texts of each pair call."""

    def __init__(self, tok):
        self.tok, self.pairs = tok, []

    def __getattr__(self, name):
        return getattr(self.tok, name)

    def __call__(self, *texts, **kwargs):
        if len(texts) == 2:
            self.pairs.append(texts)
        return self.tok(*texts, **kwargs)


def test_eval_features_keep_the_example_id_and_context_offsets_only(tokenizer):
    questions, contexts, _ = _rows()
    evals = prepare_eval_features(["a", "b", "c", "d"], questions, contexts, tokenizer, MAX_LENGTH, STRIDE)
    assert evals["example_id"] == ["a"] * 8 + ["b"] * 8 + ["c"] * 8 + ["d"]
    for ids, offsets in zip(evals["input_ids"], evals["offset_mapping"]):
        assert len(ids) == len(offsets)
        # [CLS], 4 question tokens, [SEP] | context | [SEP]
        assert offsets[:6] == [None] * 6 and offsets[-1] is None
        assert all(o is not None for o in offsets[6:-1])
    second = evals["offset_mapping"][1]
    assert CONTEXT[second[6][0]:second[-2][1]] == " ".join(f"c{i}" for i in range(5, 14))


def test_context_first_when_the_tokenizer_pads_on_the_left():
    tok = _tokenizer("left")
    questions, contexts, answers = _rows()
    train, evals, labelled = _check_labels(tok, questions, contexts, answers)
    assert len(labelled[0]) == 2 and len(labelled[3]) == 1
    offsets = evals["offset_mapping"][0]
    assert offsets[0] is None and offsets[1] is not None and offsets[-6:] == [None] * 6


def test_a_question_that_leaves_no_room_for_the_stride_is_a_data_error(tokenizer):
    long_question = " ".join(["what"] * 9)  # 16 - 9 - 3 = 4 context tokens, not more than the stride
    with pytest.raises(DataError, match="row 1.*stride=4"):
        prepare_eval_features([0, 1], [QUESTION, long_question], [CONTEXT, CONTEXT], tokenizer, MAX_LENGTH, STRIDE)
    # the same question is fine when its context fits and nothing is cut
    out = prepare_eval_features([0], [long_question], ["c1 c2"], tokenizer, MAX_LENGTH, STRIDE)
    assert out["example_id"] == [0]
    with pytest.raises(DataError, match="row 0"):
        prepare_train_features([QUESTION], [CONTEXT], [NONE], tokenizer, MAX_LENGTH, stride=9)


def test_check_answers_counts_and_names_the_bad_row():
    contexts = ["the cat sat", "a dog ran", "nothing here"]
    good = [span_of(contexts[0], "cat"), {"text": ["dog", "a dog"], "answer_start": [2, 0]}, NONE]
    assert check_answers(contexts, good, "train") == {"rows": 3, "answerable": 2, "unanswerable": 1, "answers": 3}
    shifted = [good[0], {"text": ["dog"], "answer_start": [3]}, NONE]
    with pytest.raises(DataError, match=r"train: row 1: answer 'dog' at answer_start=3 .*'og '") as err:
        check_answers(contexts, shifted, "train")
    assert err.value.hint
    with pytest.raises(DataError, match="row 0 has an empty answer"):
        check_answers(contexts, [{"text": [""], "answer_start": [0]}, NONE, NONE], "validation")
    with pytest.raises(DataError, match="row 2.*outside the context"):
        check_answers(contexts, [NONE, NONE, {"text": ["x"], "answer_start": [99]}], "validation")


# ---- decoding --------------------------------------------------------------------------------

CTX = "alpha beta gamma delta epsilon"
# [CLS] question [SEP] alpha beta gamma delta epsilon [SEP]
WINDOW = [None, None, None, (0, 5), (6, 10), (11, 16), (17, 22), (23, 30), None]


def logits(values: dict[int, float], length: int = len(WINDOW)) -> np.ndarray:
    row = np.zeros(length, dtype=np.float32)
    for k, v in values.items():
        row[k] = v
    return row


def decode(examples, offsets, ids, starts, ends, **kw):
    features = {"example_id": ids, "offset_mapping": offsets}
    return decode_predictions(examples, features, np.stack(starts), np.stack(ends), **kw)


def test_decode_skips_long_reversed_and_out_of_context_spans():
    examples = {"id": ["long", "reversed"], "context": [CTX, CTX]}
    starts = [logits({3: 5.0, 5: 1.0}), logits({7: 5.0, 1: 20.0})]  # token 1 is the question
    ends = [logits({7: 5.0, 5: 1.5}), logits({3: 5.0, 7: 1.0, 8: 20.0})]  # token 8 is [SEP]
    preds, nbest = decode(examples, [WINDOW, WINDOW], ["long", "reversed"], starts, ends, max_answer_length=3)
    # long: alpha..epsilon (10.0) spans 5 tokens; next best alpha..gamma = 5 + 1.5
    assert preds["long"] == "alpha beta gamma"
    assert nbest["long"][0] == {"text": "alpha beta gamma", "score": 6.5, "start": 0, "end": 16}
    # reversed: epsilon..alpha (10.0) ends before it starts; epsilon alone = 5 + 1
    assert preds["reversed"] == "epsilon" and nbest["reversed"][0]["score"] == 6.0
    preds, _ = decode(examples, [WINDOW, WINDOW], ["long", "reversed"], starts, ends, max_answer_length=30)
    assert preds["long"] == CTX
    assert all(len(nbest[k]) <= 20 for k in nbest)
    scores = [c["score"] for c in nbest["long"]]
    assert scores == sorted(scores, reverse=True)


def test_decode_finds_the_answer_in_the_second_window_and_lists_a_span_once():
    context = "a0 a1 a2 a3 a4 a5"  # window 1: a0..a3, window 2: a2..a5 (shorter, logits padded)
    first = [None, None, None, (0, 2), (3, 5), (6, 8), (9, 11), None]
    second = [None, None, None, (6, 8), (9, 11), (12, 14), (15, 17), None]
    starts = [logits({3: 1.0, 5: 2.0}, 9), logits({5: 4.0, 3: 2.5}, 9)]
    ends = [logits({4: 1.0, 5: 2.0}, 9), logits({6: 3.0, 3: 2.5}, 9)]
    examples = {"id": ["q"], "context": [context]}
    preds, nbest = decode(examples, [first, second], ["q", "q"], starts, ends)
    assert preds["q"] == "a4 a5"  # window 2, tokens 5..6: 4 + 3
    texts = [c["text"] for c in nbest["q"]]
    assert len(texts) == len(set(texts))  # "a2" is in both windows: listed once, at its best (5.0)
    assert next(c for c in nbest["q"] if c["text"] == "a2")["score"] == 5.0


def test_decode_ties_are_broken_the_same_way_every_time():
    examples = {"id": ["t"], "context": [CTX]}
    flat = logits({k: 1.0 for k in range(3, 8)})
    runs = [decode(examples, [WINDOW], ["t"], [flat], [flat]) for _ in range(3)]
    assert all(run == runs[0] for run in runs)
    assert runs[0][0]["t"] == "alpha"  # equal scores: the earliest, then the shortest span
    # gamma (2 + 0) is found before alpha (1 + 1), yet the earlier span wins the tie
    preds, nbest = decode(examples, [WINDOW], ["t"], [logits({5: 2.0, 3: 1.0})], [logits({3: 1.0})])
    assert preds["t"] == "alpha" and [c["text"] for c in nbest["t"][:2]] == ["alpha", "gamma"]


@pytest.mark.parametrize("null_threshold, expected", [(0.0, "gamma"), (-1.5, "")])
def test_v2_null_uses_the_smallest_cls_score_and_the_threshold(null_threshold, expected):
    examples = {"id": ["v"], "context": [CTX]}
    starts = [logits({0: 2.0, 5: 1.5}), logits({0: 1.0})]  # CLS scores 4 and 2: null = 2
    ends = [logits({0: 2.0, 5: 1.5}), logits({0: 1.0})]  # best span: gamma = 3
    preds, nbest = decode(examples, [WINDOW, WINDOW], ["v", "v"], starts, ends, version_2=True,
                          null_threshold=null_threshold)
    # null - best = 2 - 3 = -1: the span wins at threshold 0, the null answer at -1.5
    assert preds["v"] == expected
    assert nbest["v"][0]["text"] == "gamma" and nbest["v"][1] == {"text": "", "score": 2.0, "start": 0, "end": 0}


@pytest.mark.parametrize("null_threshold, expected", [(0.0, ""), (2.0, "gamma")])
def test_v2_null_wins_when_it_beats_the_best_span(null_threshold, expected):
    examples = {"id": ["v"], "context": [CTX]}
    starts, ends = [logits({0: 2.5, 5: 2.0})], [logits({0: 2.5, 5: 2.0})]  # null 5, best span 4
    preds, nbest = decode(examples, [WINDOW], ["v"], starts, ends, version_2=True, null_threshold=null_threshold)
    assert preds["v"] == expected  # 5 - 4 = 1: more than 0, not more than 2
    assert nbest["v"][0]["text"] == ""
    preds, _ = decode(examples, [WINDOW], ["v"], starts, ends)  # v1: no null answer at all
    assert preds["v"] == "gamma"


# ---- metrics ---------------------------------------------------------------------------------

PAIRS = [  # (prediction, reference answers)
    ("Denver Broncos", ["Denver Broncos", "The Denver Broncos"]),
    ("the Denver Broncos", ["Denver Broncos"]),
    ("denver broncos!", ["Denver Broncos"]),
    ("Broncos", ["Denver Broncos"]),
    ("Denver Broncos and Panthers", ["Denver Broncos"]),
    ("Carolina Panthers", ["Denver Broncos"]),
    ("A cat", ["cat"]),
    ("an apple", ["the apple"]),
    ("The", ["a"]),  # both normalise to nothing: v1 F1 0, EM 1
    ("the", ["Denver"]),
    ("theater", ["the ater"]),  # "the" inside a word is no article
    ("state-of-the-art", ["state of the art"]),
    ("the-end", ["end"]),  # punctuation goes first, so "the" glues to "end"
    ("1,000", ["1000"]),
    ("$5.00", ["5 00"]),
    ("  lots   of\tspace\n", ["lots of space"]),
    ("non\u00a0breaking", ["non breaking"]),
    ("Café", ["cafe"]),  # no accent folding
    ("Café", ["CAFÉ"]),
    ("São Paulo", ["Sao Paulo", "São Paulo, Brazil"]),
    ("“quoted”", ["quoted"]),  # curly quotes are not ASCII punctuation
    ("\"quoted\"", ["quoted"]),
    ("Straße", ["STRASSE"]),
    ("İstanbul", ["istanbul"]),
    ("ΣΟΦΙΑ", ["σοφια"]),
    ("東京", ["東京"]),
    ("東京 タワー", ["東京"]),
    ("em—dash", ["em dash"]),
    ("fullwidth，comma", ["fullwidth comma"]),
    ("cat cat cat", ["cat"]),
    ("cat", ["cat cat"]),
    ("the cat sat on the mat", ["cat on mat", "a dog"]),
    ("dog", ["cat on mat", "a dog"]),
    ("", ["something"]),
    ("something", [""]),
    ("", [""]),
    ("...", ["!!!"]),
    ("the big red barn", ["big barn", "red barn", "the barn"]),
    ("Barack Obama", ["President Barack Obama", "Obama"]),
    ("in 1976", ["1976"]),
    ("1976.", ["1976"]),
    ("December 1976", ["1976", "in December"]),
    ("New York City", ["new york", "NYC", "New York City"]),
    ("rock 'n' roll", ["rock n roll"]),
    ("A B C", ["a b c"]),
    ("AN", ["an"]),
]
V2_EXTRA = [  # unanswerable questions (no reference) and "no answer" predictions
    ("", []), ("", []), ("something", []), ("the", []), ("...", []),
    ("", ["Denver Broncos"]), ("", ["the"]), ("a", ["the"]), ("Denver", ["Denver Broncos", ""]),
    ("", ["the", "Denver"]), ("an", ["Denver", "a"]),  # v2.0 drops references that normalise to ""
]


def as_inputs(pairs):
    preds = {f"q{i}": p for i, (p, _) in enumerate(pairs)}
    refs = {f"q{i}": golds for i, (_, golds) in enumerate(pairs)}
    return preds, refs


def squad_json(refs):
    qas = [{"id": qid, "answers": [{"text": g} for g in golds]} for qid, golds in refs.items()]
    return [{"paragraphs": [{"qas": qas}]}]


def official_v2(preds, refs):
    """The v2.0 script's main() without files: no no-answer probabilities (all 0.0)."""
    o = squad_v2_official
    dataset = squad_json(refs)
    qid_to_has_ans = o.make_qid_to_has_ans(dataset)
    exact_raw, f1_raw = o.get_raw_scores(dataset, preds)
    na_probs = {k: 0.0 for k in preds}
    exact = o.apply_no_ans_threshold(exact_raw, na_probs, qid_to_has_ans, 1.0)
    f1 = o.apply_no_ans_threshold(f1_raw, na_probs, qid_to_has_ans, 1.0)
    out = o.make_eval_dict(exact, f1)
    for prefix, has in (("HasAns", True), ("NoAns", False)):
        qids = [k for k, v in qid_to_has_ans.items() if v == has]
        if qids:
            o.merge_eval(out, o.make_eval_dict(exact, f1, qid_list=qids), prefix)
    out = dict(out)
    out["exact_match"] = out.pop("exact")  # tunekit's name for the overall exact match
    return out


def test_enough_varied_pairs():
    assert len(PAIRS) + len(V2_EXTRA) >= 40 and len(PAIRS) >= 40


def test_v1_scores_equal_the_official_script_pair_by_pair_and_overall():
    for pred, golds in PAIRS:
        o = squad_v1_official
        assert exact_v1(pred, golds[0]) == o.exact_match_score(pred, golds[0]), (pred, golds)
        assert max(f1_v1(pred, g) for g in golds) == o.metric_max_over_ground_truths(o.f1_score, pred, golds)
    preds, refs = as_inputs(PAIRS)
    official = squad_v1_official.evaluate(squad_json(refs), preds)
    assert squad_scores(preds, refs) == official  # exact float equality, same keys
    assert 0 < official["exact_match"] < 100 and 0 < official["f1"] < 100


def test_v2_scores_equal_the_official_script():
    preds, refs = as_inputs(PAIRS + V2_EXTRA)
    ours = squad_scores(preds, refs)  # an empty reference list switches to the v2.0 rules
    assert ours == official_v2(preds, refs)
    assert {"HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"} <= set(ours)
    # the v2.0 F1 rule: both empty -> 1, one empty -> 0 (v1.1 gives 0 for both empty)
    both_empty = {"x": ""}, {"x": [""]}
    assert squad_scores(*both_empty, version_2=True)["f1"] == 100.0
    assert squad_scores(*both_empty, version_2=False)["f1"] == 0.0
    # forcing v2.0 on answerable-only data still matches the official v2.0 script
    preds, refs = as_inputs(PAIRS)
    assert squad_scores(preds, refs, version_2=True) == official_v2(preds, refs)


def test_v1_rules_refuse_unanswerable_questions_and_missing_predictions_score_zero():
    with pytest.raises(DataError, match="no reference answer"):
        squad_scores({"a": ""}, {"a": []}, version_2=False)
    assert squad_scores({}, {"a": ["x"], "b": ["y"]}) == {"exact_match": 0.0, "f1": 0.0}
    assert squad_scores({"a": "x"}, {"a": ["x"], "b": ["y"]})["exact_match"] == 50.0


def test_the_evaluate_module_loaded_by_path_gives_the_same_numbers():
    evaluate = pytest.importorskip("evaluate", reason="the evaluate library is not installed in this environment")
    metric = evaluate.load(squad_metric_path(), keep_in_memory=True)
    for pairs in (PAIRS, PAIRS + V2_EXTRA):
        preds, refs = as_inputs(pairs)
        got = metric.compute(
            predictions=[{"id": k, "prediction_text": v} for k, v in preds.items()],
            references=[{"id": k, "answers": {"text": g, "answer_start": [0] * len(g)}} for k, g in refs.items()])
        assert got == squad_scores(preds, refs)
