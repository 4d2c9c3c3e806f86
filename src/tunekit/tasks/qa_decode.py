"""From start/end logits over token windows to answer texts (n-best span decoding).

The same search as postprocess_qa_predictions in the HF utils_qa.py example: per window, every
pair of the n_best highest start and n_best highest end tokens that lies inside the context,
ends after it starts and spans at most max_answer_length tokens is a candidate scored
start_logit + end_logit; an example's candidates from all its windows compete. For SQuAD v2.0
the "no answer" score is the smallest CLS score (start[0] + end[0]) over the example's windows,
so every window must agree there is no answer, and it wins when it beats the best span's score
by more than null_threshold.

Differences from the example, all for reproducible output: ties keep a fixed order (numpy's
default argsort is not stable), the same character span found in two overlapping windows is
listed once (with its best score), scores are summed in float64, and an example with no valid
span predicts "" instead of the example's placeholder "empty".
numpy only: this runs after the model, on arrays the Trainer already moved to the CPU.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

NULL_INDEX = 0  # the CLS token, where prepare_*_features put "no answer" for question-first models


def _top(logits: np.ndarray, n: int) -> list[int]:
    """The n highest positions, best first; equal logits keep position order."""
    return np.argsort(-logits, kind="stable")[:n].tolist()


def _window_spans(start: np.ndarray, end: np.ndarray, offsets: Sequence[Any], context: str,
                  n_best: int, max_answer_length: int) -> list[dict]:
    spans = []
    usable = min(len(offsets), len(start), len(end))  # logits may be padded past the window
    top_ends = _top(end[:usable], n_best)
    for s in _top(start[:usable], n_best):
        if offsets[s] is None:  # question or special token: not part of the context
            continue
        for e in top_ends:
            if offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                continue
            first, last = int(offsets[s][0]), int(offsets[e][1])
            spans.append({"text": context[first:last], "score": float(start[s]) + float(end[e]),
                          "start": first, "end": last})
    return spans


def decode_predictions(examples: Mapping[str, Sequence[Any]], features: Mapping[str, Sequence[Any]],
                       start_logits, end_logits, n_best: int = 20, max_answer_length: int = 30,
                       version_2: bool = False, null_threshold: float = 0.0,
                       ) -> tuple[dict[Any, str], dict[Any, list[dict]]]:
    """Best answer text per example id, and its n-best list.

    examples: columns "id" and "context" (a dict of lists or a datasets.Dataset).
    features: columns "example_id" and "offset_mapping" from prepare_eval_features, one row per
    window, in the order of the logits' first axis.
    start_logits, end_logits: (windows, tokens) arrays, or one array per window.
    Returns predictions {id: text} ("" is "no answer") and nbest {id: [{"text", "score",
    "start", "end"}, ...]} best first, start/end being character offsets into the context
    (the no-answer entry of v2.0 has text "" and start = end = 0).
    """
    if n_best < 1 or max_answer_length < 1:
        raise ValueError(f"n_best={n_best} and max_answer_length={max_answer_length} must be at least 1")
    ids = list(examples["id"])
    contexts = list(examples["context"])
    example_ids = list(features["example_id"])
    offset_mapping = list(features["offset_mapping"])  # one read, not one per window (Dataset)
    if not (len(start_logits) == len(end_logits) == len(example_ids)):
        raise ValueError(f"{len(example_ids)} features but {len(start_logits)} start and "
                         f"{len(end_logits)} end logit rows")
    position = {example_id: i for i, example_id in enumerate(ids)}
    windows: list[list[int]] = [[] for _ in ids]
    for f, example_id in enumerate(example_ids):
        if example_id not in position:
            raise ValueError(f"feature {f} belongs to example {example_id!r}, which is not among the examples")
        windows[position[example_id]].append(f)

    predictions: dict[Any, str] = {}
    nbest: dict[Any, list[dict]] = {}
    for i, example_id in enumerate(ids):
        best_by_span: dict[tuple[int, int], dict] = {}
        null_score = None
        for f in windows[i]:
            start = np.asarray(start_logits[f], dtype=np.float64)
            end = np.asarray(end_logits[f], dtype=np.float64)
            window_null = float(start[NULL_INDEX]) + float(end[NULL_INDEX])
            null_score = window_null if null_score is None else min(null_score, window_null)
            for span in _window_spans(start, end, offset_mapping[f], contexts[i], n_best, max_answer_length):
                key = (span["start"], span["end"])
                if key not in best_by_span or span["score"] > best_by_span[key]["score"]:
                    best_by_span[key] = span
        # best score first; equal scores: the earlier, then the shorter span
        spans = sorted(best_by_span.values(), key=lambda c: (-c["score"], c["start"], c["end"]))[:n_best]
        best_text = spans[0]["text"] if spans else ""
        if version_2 and null_score is not None:
            null = {"text": "", "score": null_score, "start": 0, "end": 0}
            # "no answer" when its score beats the best span's by more than the threshold
            if not spans or null_score - spans[0]["score"] > null_threshold:
                best_text = ""
            # listed in score order (ahead of equal-scored spans); kept even when it falls
            # outside the top n_best, as the HF example adds it back
            at = next((k for k, c in enumerate(spans) if c["score"] <= null_score), len(spans))
            spans = (spans[:at] + [null] + spans[at:])[:n_best]
            if not any(c is null for c in spans):
                spans.append(null)
        predictions[example_id] = best_text
        nbest[example_id] = spans
    return predictions, nbest
