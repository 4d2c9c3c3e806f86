"""Classification metrics agree with scikit-learn."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support,
                             precision_score, recall_score)

from tunekit.tasks.classification import METRIC_NAMES, compute_metrics

NAMES = ["neg", "neu", "pos"]


def seeded(seed: int, n: int, k: int = 3, skill: float = 0.6) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    refs = [rng.randrange(k) for _ in range(n)]
    preds = [r if rng.random() < skill else rng.randrange(k) for r in refs]
    return preds, refs


def never_predicting(cls: int, preds: list[int], refs: list[int]) -> tuple[list[int], list[int]]:
    """The same lists with every prediction of `cls` turned into the next class."""
    return [(p + 1) % 3 if p == cls else p for p in preds], refs


CASES = {
    "perfect": ([0, 1, 2, 2, 1, 0], [0, 1, 2, 2, 1, 0]),
    "all_wrong": ([1, 2, 0, 1], [0, 1, 2, 0]),
    "never_predicts_2": ([0, 0, 1, 1, 0, 1, 0], [0, 2, 1, 2, 0, 1, 2]),
    "predicts_only_0": ([0, 0, 0, 0, 0], [0, 1, 2, 1, 0]),
    "2_only_predicted": ([2, 1, 0, 2], [0, 1, 0, 1]),  # class 2 predicted but never in the refs
    "single_row": ([1], [1]),
    "seed0": seeded(0, 50),
    "seed1": seeded(1, 200, skill=0.3),
    "seed2_no_2_predicted": never_predicting(2, *seeded(2, 120)),
}


@pytest.mark.parametrize("preds, refs", CASES.values(), ids=CASES.keys())
def test_agrees_with_sklearn(preds, refs):
    got = compute_metrics(preds, refs, NAMES)
    labels = [0, 1, 2]
    assert got["n"] == len(refs)
    assert got["accuracy"] == pytest.approx(accuracy_score(refs, preds))
    # macro averages over the classes seen in refs or preds, as sklearn infers them
    assert got["f1_macro"] == pytest.approx(f1_score(refs, preds, average="macro", zero_division=0))
    assert got["precision_macro"] == pytest.approx(
        precision_score(refs, preds, average="macro", zero_division=0))
    assert got["recall_macro"] == pytest.approx(recall_score(refs, preds, average="macro", zero_division=0))
    precision, recall, f1, support = precision_recall_fscore_support(
        refs, preds, labels=labels, average=None, zero_division=0)
    for i, name in enumerate(NAMES):
        cls = got["per_class"][name]
        assert cls["precision"] == pytest.approx(precision[i]), name
        assert cls["recall"] == pytest.approx(recall[i]), name
        assert cls["f1"] == pytest.approx(f1[i]), name
        assert cls["support"] == support[i]
    assert got["confusion_matrix"]["labels"] == NAMES
    assert got["confusion_matrix"]["matrix"] == confusion_matrix(refs, preds, labels=labels).tolist()


def test_a_class_never_predicted_scores_zero_precision_and_counts_in_macro():
    preds, refs = [0, 0, 1, 1, 0, 1], [0, 2, 1, 2, 0, 1]
    got = compute_metrics(preds, refs, NAMES)
    assert got["per_class"]["pos"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert got["accuracy"] == pytest.approx(4 / 6)
    # neg: p=2/3 r=1 f1=0.8; neu: p=2/3 r=1 f1=0.8; pos: 0 -> macro over 3 classes
    assert got["f1_macro"] == pytest.approx((0.8 + 0.8 + 0.0) / 3)
    assert got["confusion_matrix"]["matrix"] == [[2, 0, 0], [0, 2, 0], [1, 1, 0]]


def test_a_class_absent_everywhere_does_not_drag_the_macro_down():
    preds, refs = [0, 1, 1, 0], [0, 1, 0, 0]
    got = compute_metrics(preds, refs, NAMES)
    assert got["f1_macro"] == pytest.approx(f1_score(refs, preds, average="macro"))
    assert got["per_class"]["pos"]["support"] == 0


def test_binary_names_and_trainer_metric_names():
    preds, refs = seeded(7, 64, k=2)
    got = compute_metrics(preds, refs, ["no", "yes"])
    assert got["f1_macro"] == pytest.approx(f1_score(refs, preds, average="macro"))
    assert set(METRIC_NAMES) <= set(got)


def test_trainer_metrics_use_argmax_of_logits():
    import numpy as np

    from tunekit.tasks.classification import trainer_metrics

    class EvalPred:
        predictions = np.array([[2.0, 0.1, 0.0], [0.0, 0.1, 3.0], [0.0, 1.0, 0.5], [1.0, 0.0, 0.0]])
        label_ids = np.array([0, 2, 2, 1])

    out = trainer_metrics({"label_names": NAMES})(EvalPred())
    assert set(out) == set(METRIC_NAMES)
    assert out["accuracy"] == pytest.approx(0.5)
    assert out["f1_macro"] == pytest.approx(f1_score([0, 2, 2, 1], [0, 2, 1, 0], average="macro"))


def test_empty_input():
    got = compute_metrics([], [], NAMES)
    assert got["n"] == 0 and got["accuracy"] == 0.0 and got["f1_macro"] == 0.0
