"""Bootstrap intervals: every task's statistics rebuild its reported metrics exactly, a resample
equals scoring the resampled examples from scratch, and the intervals behave like intervals."""

import math
import random

import numpy as np
import pytest
import sacrebleu

from tunekit.pipeline.intervals import PerExample, bootstrap, point_estimates
from tunekit.tasks.causal_lm import per_example_loss, perplexity
from tunekit.tasks.classification import compute_metrics, per_example
from tunekit.tasks.qa_metrics import per_question, squad_scores
from tunekit.tasks.text_metrics import bleu_chrf, generation_scores_with_stats, rouge_scores

PREDICTIONS = ["the cat sat on the mat", "a quick brown fox jumps", "hello world again", "nothing matches here",
               "it rained all day in paris", "the model learns slowly"]
REFERENCES = ["the cat is on the mat", "the quick brown fox jumped", "hello world", "completely different words",
              "it rained the whole day in paris", "models learn slowly"]


def test_classification_statistics_rebuild_compute_metrics():
    rng = random.Random(3)
    names = ["a", "b", "c", "never"]  # a class absent from both sides must not count in macro averages
    refs = [rng.randrange(3) for _ in range(60)]
    preds = [r if rng.random() < 0.7 else rng.randrange(3) for r in refs]
    expected = compute_metrics(preds, refs, names)
    got = point_estimates([per_example(preds, refs, names)])
    for key in ("accuracy", "f1_macro", "precision_macro", "recall_macro"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12)
    for name in names:
        assert got[f"f1_{name}"] == pytest.approx(expected["per_class"][name]["f1"], abs=1e-12)


@pytest.mark.parametrize("version_2", [False, True])
def test_qa_statistics_rebuild_squad_scores(version_2):
    references = {"q1": ["Paris"], "q2": ["the cat", "a cat"], "q3": ["42"], "q4": [] if version_2 else ["x"]}
    predictions = {"q1": "paris", "q2": "cat sat", "q3": "41", "q4": ""}
    expected = squad_scores(predictions, references, version_2=version_2)
    got = point_estimates([per_question(predictions, references, version_2)])
    assert got["exact_match"] == pytest.approx(expected["exact_match"])
    assert got["f1"] == pytest.approx(expected["f1"])


def test_text_statistics_rebuild_rouge_bleu_chrf_and_a_resample_equals_rescoring():
    names = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf")
    scores, group = generation_scores_with_stats(names, PREDICTIONS, REFERENCES)
    assert scores == {**rouge_scores(PREDICTIONS, REFERENCES), **bleu_chrf(PREDICTIONS, REFERENCES)}
    # one bootstrap draw by hand: examples 0, 0, 2, 5, 5, 5 -> weighted sums of the statistics
    pick = [0, 0, 2, 5, 5, 5]
    counts = np.bincount(pick, minlength=len(PREDICTIONS)).astype(float)
    sums = {k: counts @ np.asarray(v, dtype=float) for k, v in group.stats.items()}
    got = group.aggregate(sums)
    preds, refs = [PREDICTIONS[i] for i in pick], [REFERENCES[i] for i in pick]
    assert got["bleu"] == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score, abs=1e-9)
    assert got["chrf"] == pytest.approx(sacrebleu.corpus_chrf(preds, [refs]).score, abs=1e-9)
    assert got["rougeL"] == pytest.approx(rouge_scores(preds, refs)["rougeL"], abs=1e-3)


def test_perplexity_statistics_are_token_weighted():
    sums, counts = [2.0, 9.0, 1.5], [2, 3, 1]
    ppl, loss, _ = perplexity(sums, counts)
    got = point_estimates([per_example_loss(sums, counts)])
    assert got["perplexity"] == pytest.approx(ppl) and got["loss"] == pytest.approx(loss)


def _accuracy_group(correct):
    return PerExample({"one": np.ones(len(correct)), "hit": np.asarray(correct, dtype=float)},
                      lambda s: {"accuracy": s["hit"] / s["one"]})


def test_intervals_are_seeded_contain_the_estimate_and_narrow_with_more_data():
    rng = np.random.default_rng(1)
    small = _accuracy_group(rng.random(50) < 0.8)
    large = _accuracy_group(rng.random(2000) < 0.8)
    a, b = bootstrap([small], 500), bootstrap([small], 500)
    assert a == b  # same predictions, same interval
    low, high = a["accuracy"]
    assert low <= point_estimates([small])["accuracy"] <= high
    big_low, big_high = bootstrap([large], 500)["accuracy"]
    assert big_high - big_low < (high - low) / 3  # ~1/sqrt(n): 40x the data, ~6x narrower
    assert bootstrap([small], 0) == {} and bootstrap([_accuracy_group([1.0])], 500) == {}


def test_intervals_cover_the_true_value_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    p, trials, hits = 0.7, 200, 0
    for _ in range(trials):
        low, high = bootstrap([_accuracy_group(rng.random(200) < p)], 300, seed=int(rng.integers(1 << 30)))["accuracy"]
        hits += low <= p <= high
    assert 0.88 <= hits / trials <= 0.99, hits / trials  # a 95% interval, within sampling noise


def test_interval_width_matches_the_normal_approximation():
    rng = np.random.default_rng(11)
    correct = rng.random(1000) < 0.8
    low, high = bootstrap([_accuracy_group(correct)], 2000)["accuracy"]
    mean = correct.mean()
    half = 1.96 * math.sqrt(mean * (1 - mean) / len(correct))
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
