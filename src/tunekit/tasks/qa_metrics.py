"""SQuAD exact match and F1, computed exactly as the official v1.1 and v2.0 scripts do.

Plain python (no evaluate, no numpy) so tunekit can score without the evaluate library;
metrics/squad/squad.py wraps `squad_scores` for `evaluate.load(<path>)`.

The two official scripts differ in ways that change numbers, so both rules are kept:
* v1.1 (every question has answers): F1 of two answers that both normalise to nothing is 0
  (no common tokens), while their exact match is 1.
* v2.0 (some questions have no answer): gold answers that normalise to nothing are dropped and
  a question left without any is scored against "" only; F1 is 1 when gold and prediction are
  both empty after normalisation and 0 when just one is. Questions are split into HasAns
  (the raw answer list is non-empty) and NoAns for the per-group scores.
Both report on a 0-100 scale. The official v2 script names overall exact match "exact"; here it
is "exact_match" in both versions so a recipe gate reads the same key for either.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from pathlib import Path
from typing import Mapping, Optional, Sequence

from tunekit.errors import DataError

_PUNCTUATION = frozenset(string.punctuation)  # ASCII only, as in the official scripts
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def squad_metric_path() -> str:
    """The folder of the evaluate module (`evaluate.load(squad_metric_path())` works offline)."""
    return str(Path(__file__).resolve().parent.parent / "metrics" / "squad")


def normalize_answer(text: str) -> str:
    """Lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace.

    The order matters and is the official one: punctuation goes before articles, so "the-end"
    becomes "theend" (no article left) while "the end" becomes "end".
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    common = Counter(pred_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_tokens)
    recall = 1.0 * num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def f1_v1(prediction: str, gold: str) -> float:
    """Token F1 as in v1.1: no shared token (including both empty) gives 0."""
    return _f1(normalize_answer(prediction).split(), normalize_answer(gold).split())


def exact_v1(prediction: str, gold: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(gold)


def f1_v2(gold: str, prediction: str) -> float:
    """Token F1 as in v2.0: an empty side scores 1 when both are empty, else 0."""
    gold_tokens = normalize_answer(gold).split() if gold else []
    pred_tokens = normalize_answer(prediction).split() if prediction else []
    if len(gold_tokens) == 0 or len(pred_tokens) == 0:
        return int(gold_tokens == pred_tokens)
    return _f1(pred_tokens, gold_tokens)


def exact_v2(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def _v1_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict:
    exact = f1 = 0
    for qid, golds in references.items():
        if qid not in predictions:
            continue  # the official script scores a missing prediction 0 and keeps it in the total
        pred = predictions[qid]
        # max over the reference answers; accumulated one by one like the official loop so the
        # float sums (and hence the reported numbers) are bit-identical
        exact += max(exact_v1(pred, gold) for gold in golds)
        f1 += max(f1_v1(pred, gold) for gold in golds)
    total = len(references)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


def _v2_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict:
    exact_raw: dict[str, float] = {}
    f1_raw: dict[str, float] = {}
    for qid, answers in references.items():
        golds = [a for a in answers if normalize_answer(a)] or [""]
        # Unlike the official v2 script, which drops a missing prediction from the overall total
        # (and then fails on the HasAns/NoAns split), a missing prediction scores 0 here: a
        # wiring bug must lower the score, never raise it.
        pred = predictions.get(qid)
        exact_raw[qid] = 0 if pred is None else max(exact_v2(g, pred) for g in golds)
        f1_raw[qid] = 0 if pred is None else max(f1_v2(g, pred) for g in golds)

    def group(qids: list[str]) -> tuple[float, float, int]:
        total = len(qids)
        return (100.0 * sum(exact_raw[k] for k in qids) / total,
                100.0 * sum(f1_raw[k] for k in qids) / total, total)

    total = len(exact_raw)
    out: dict = {"exact_match": 100.0 * sum(exact_raw.values()) / total,
                 "f1": 100.0 * sum(f1_raw.values()) / total, "total": total}
    # HasAns follows the raw answer list, as the official script's make_qid_to_has_ans does
    has_ans = [qid for qid, answers in references.items() if answers]
    no_ans = [qid for qid, answers in references.items() if not answers]
    for prefix, qids in (("HasAns", has_ans), ("NoAns", no_ans)):
        if qids:  # the official script leaves out a group with no questions
            e, f, n = group(qids)
            out.update({f"{prefix}_exact": e, f"{prefix}_f1": f, f"{prefix}_total": n})
    return out


def squad_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]],
                 version_2: Optional[bool] = None) -> dict:
    """Exact match and F1 (0-100) of predicted answer texts against reference answer texts.

    predictions: id -> answer text ("" means "no answer"); ids not in references are ignored.
    references: id -> the acceptable answer texts ([] for an unanswerable question).
    version_2: which official script to follow; None picks v2.0 when any question has no
    answer (v1.1 cannot score those) and v1.1 otherwise.
    Returns exact_match and f1; with v2.0 also total and HasAns_*/NoAns_* (exact, f1, total).
    """
    if not references:
        raise DataError("no reference answers to score", "pass at least one question with its answers")
    if version_2 is None:
        version_2 = any(len(answers) == 0 for answers in references.values())
    if version_2:
        return _v2_scores(predictions, references)
    unanswerable = [qid for qid, answers in references.items() if len(answers) == 0]
    if unanswerable:
        raise DataError(f"{len(unanswerable)} questions have no reference answer (first: {unanswerable[0]!r}), "
                        "which SQuAD v1.1 scoring cannot handle",
                        "score with version_2=True (SQuAD v2.0 rules), or drop unanswerable questions")
    return _v1_scores(predictions, references)


def question_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]],
                    version_2: bool) -> tuple[list[float], list[float]]:
    """Exact match and F1 (0-100) per question, in the order of `references`: their means are
    squad_scores' exact_match and f1 (the bootstrap resamples questions with them)."""
    exact: list[float] = []
    f1: list[float] = []
    for qid, answers in references.items():
        pred = predictions.get(qid)
        if version_2:
            golds = [a for a in answers if normalize_answer(a)] or [""]
            exact.append(0.0 if pred is None else 100.0 * max(exact_v2(g, pred) for g in golds))
            f1.append(0.0 if pred is None else 100.0 * max(f1_v2(g, pred) for g in golds))
        else:
            exact.append(0.0 if pred is None else 100.0 * max(exact_v1(pred, g) for g in answers))
            f1.append(0.0 if pred is None else 100.0 * max(f1_v1(pred, g) for g in answers))
    return exact, f1


def per_question(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], version_2: bool):
    """Bootstrap statistics for exact_match and f1."""
    from tunekit.pipeline.intervals import PerExample

    exact, f1 = question_scores(predictions, references, version_2)

    def aggregate(s) -> dict:
        return {"exact_match": float(s["exact"] / s["one"]), "f1": float(s["f1"] / s["one"])}

    return PerExample({"one": [1.0] * len(exact), "exact": exact, "f1": f1}, aggregate)
