"""Extractive QA features: question + context windows and the answer's token span in each.

A context longer than the model's window is cut into overlapping windows ("features"), each
with the full question; `stride` tokens of context are repeated between neighbouring windows
so an answer near a cut still lies whole in one of them. Training labels each window with the
answer's first and last token, or with the CLS token when the answer is not (wholly) in that
window or the question has no answer; evaluation keeps, per window, which example it came from
and the character offsets of its context tokens, so predicted token spans map back to text.

Follows prepare_train_features / prepare_validation_features of the HF run_qa.py example,
except that the labelled span is searched only among context tokens (the example can step
past the last context token into [SEP] when the answer ends a window).
Answers use the HF SQuAD layout: {"text": [str, ...], "answer_start": [int, ...]}; empty
lists mean "no answer" (SQuAD v2.0). Training uses the first answer.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from tunekit.errors import DataError, ModelError


def _layout(tokenizer) -> bool:
    """True when the question goes first. Models padded on the left (XLNet) expect the
    context first, so the truncated (context) side is the first sequence there."""
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"extractive QA needs a fast tokenizer, and {type(tokenizer).__name__} is not one",
                         "use a model that ships a tokenizer.json (fast tokenizers give character offsets)")
    return tokenizer.padding_side == "right"


def _check_room(questions: Sequence[str], contexts: Sequence[str], tokenizer, max_length: int, stride: int,
                where: str) -> None:
    """Fail with a message before the tokenizer does. When a row must be cut, a question that
    leaves no room for context raises a bare Exception there, and a stride not below the room
    left for context is a Rust panic (a BaseException no `except Exception` catches)."""
    if max_length <= 0 or stride < 0:
        raise DataError(f"{where}: max_length={max_length} and stride={stride} are out of range",
                        "set max_length to 1 or more and stride to 0 or more")
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(ids) for ids in tokenizer(list(questions), add_special_tokens=False)["input_ids"]]
    tight = [row for row, n in enumerate(lengths) if max_length - n - specials <= stride]
    if not tight:
        return
    # only rows that overflow are cut, so only they can fail; contexts are tokenized just for these
    context_lengths = tokenizer([contexts[row] for row in tight], add_special_tokens=False)["input_ids"]
    for row, context_ids in zip(tight, context_lengths):
        n = lengths[row]
        if n + len(context_ids) + specials > max_length:
            room = max_length - n - specials
            raise DataError(f"{where}: the question in row {row} takes {n} of max_length={max_length} tokens "
                            f"({specials} more are special tokens), leaving {max(room, 0)} for a context that "
                            f"must be cut into windows: not more than stride={stride}",
                            "raise max_length, lower the stride, or shorten the question")


def _tokenize(questions: Sequence[str], contexts: Sequence[str], tokenizer, max_length: int, stride: int,
              where: str):
    if len(questions) != len(contexts):
        raise DataError(f"{where}: {len(questions)} questions but {len(contexts)} contexts",
                        "give one context per question")
    question_first = _layout(tokenizer)
    # Leading whitespace in a question is worthless and eats the window (run_qa.py does the same).
    questions = [q.lstrip() for q in questions]
    _check_room(questions, contexts, tokenizer, max_length, stride, where)
    first, second = (questions, contexts) if question_first else (contexts, questions)
    enc = tokenizer(
        list(first), list(second),
        truncation="only_second" if question_first else "only_first",  # never cut the question
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,  # the collator pads each batch
    )
    return enc, (1 if question_first else 0)


def _cls_index(input_ids: list[int], tokenizer) -> int:
    """Where "no answer" points: the CLS token (BOS for models without one), else position 0."""
    for token_id in (tokenizer.cls_token_id, tokenizer.bos_token_id):
        if token_id is not None and token_id in input_ids:
            return input_ids.index(token_id)
    return 0


def _answer_span(offsets, sequence_ids, context_index: int, start_char: int,
                 end_char: int) -> Optional[tuple[int, int]]:
    """The first and last token of [start_char, end_char) among this window's context tokens,
    or None when the window does not hold the whole answer."""
    context = [k for k, s in enumerate(sequence_ids) if s == context_index]
    if not context:
        return None
    lo, hi = context[0], context[-1]
    if not (offsets[lo][0] <= start_char and offsets[hi][1] >= end_char):
        return None
    # start: the last context token starting at or before the answer; end: the first one
    # ending at or after it (offsets grow monotonically inside the context)
    start = max(k for k in context if offsets[k][0] <= start_char)
    end = min(k for k in context if offsets[k][1] >= end_char)
    return start, end


def prepare_train_features(questions: Sequence[str], contexts: Sequence[str],
                           answers: Sequence[Mapping[str, Any]], tokenizer, max_length: int, stride: int,
                           *, where: str = "data") -> dict[str, list]:
    """Tokenized windows with start_positions/end_positions (CLS index when not answerable there).

    One example may give several rows; the returned dict holds the tokenizer's columns
    (input_ids, attention_mask, token_type_ids when the model uses them) plus the two labels.
    answer_start is trusted here: run check_answers on the data first.
    """
    if len(answers) != len(questions):
        raise DataError(f"{where}: {len(questions)} questions but {len(answers)} answers",
                        "give one answers entry per question")
    enc, context_index = _tokenize(questions, contexts, tokenizer, max_length, stride, where)
    sample_of = enc["overflow_to_sample_mapping"]
    starts: list[int] = []
    ends: list[int] = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        cls = _cls_index(enc["input_ids"][i], tokenizer)
        answer = answers[sample_of[i]]
        span = None
        if len(answer["text"]) > 0:
            start_char = int(answer["answer_start"][0])
            span = _answer_span(offsets, enc.sequence_ids(i), context_index,
                                start_char, start_char + len(answer["text"][0]))
        start, end = span if span is not None else (cls, cls)
        starts.append(start)
        ends.append(end)
    features = {key: list(values) for key, values in enc.items()
                if key not in ("offset_mapping", "overflow_to_sample_mapping")}
    features["start_positions"] = starts
    features["end_positions"] = ends
    return features


def prepare_eval_features(ids: Sequence[Any], questions: Sequence[str], contexts: Sequence[str], tokenizer,
                          max_length: int, stride: int, *, where: str = "data") -> dict[str, list]:
    """Tokenized windows with example_id and offset_mapping (None for non-context tokens).

    decode_predictions maps each window's best token span back to its example's context
    through these offsets; None marks the question and special tokens, which no answer uses.
    """
    if len(ids) != len(questions):
        raise DataError(f"{where}: {len(ids)} ids but {len(questions)} questions", "give one id per question")
    enc, context_index = _tokenize(questions, contexts, tokenizer, max_length, stride, where)
    sample_of = enc["overflow_to_sample_mapping"]
    offset_mapping = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        sequence_ids = enc.sequence_ids(i)
        offset_mapping.append([tuple(o) if sequence_ids[k] == context_index else None
                               for k, o in enumerate(offsets)])
    features = {key: list(values) for key, values in enc.items()
                if key not in ("offset_mapping", "overflow_to_sample_mapping")}
    features["offset_mapping"] = offset_mapping
    features["example_id"] = [ids[s] for s in sample_of]
    return features


def _as_list(value: Any) -> list:
    """An answers field as a list (columns read through pandas arrive as numpy arrays)."""
    return [] if value is None else list(value)


def check_answers(contexts: Sequence[str], answers: Sequence[Mapping[str, Any]], where: str) -> dict[str, int]:
    """Fail on the first answer whose offsets do not point at its text in the context.

    A wrong answer_start (an off-by-one from a different text encoding, a context edited after
    labelling) silently teaches the model the wrong span, so it is an error, not a warning.
    Returns counts: rows, answerable, unanswerable (no answer text) and answers (all spans).
    """
    if len(contexts) != len(answers):
        raise DataError(f"{where}: {len(contexts)} contexts but {len(answers)} answers",
                        "give one answers entry per context")
    counts = {"rows": len(contexts), "answerable": 0, "unanswerable": 0, "answers": 0}
    hint = "fix answer_start/text so that context[answer_start:answer_start + len(text)] == text"
    for row, (context, answer) in enumerate(zip(contexts, answers)):
        texts = _as_list(answer.get("text"))
        starts = _as_list(answer.get("answer_start"))
        if len(texts) != len(starts):
            raise DataError(f"{where}: row {row} has {len(texts)} answer texts but {len(starts)} "
                            "answer_start values", "give one answer_start per answer text")
        if not texts:
            counts["unanswerable"] += 1
            continue
        counts["answerable"] += 1
        for text, start in zip(texts, starts):
            counts["answers"] += 1
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{where}: row {row} has an empty answer span ({text!r})",
                                "give the answer text, or an empty answers list for an unanswerable question")
            start = int(start)
            found = context[start:start + len(text)] if 0 <= start <= len(context) else None
            if found != text:
                shown = "outside the context" if found is None else repr(found)
                raise DataError(f"{where}: row {row}: answer {text!r} at answer_start={start} does not match "
                                f"the context there ({shown}; context has {len(context)} characters)", hint)
    return counts
