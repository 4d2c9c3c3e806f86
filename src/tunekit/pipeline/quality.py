"""Data-quality rules run by prepare (data.quality).

filter_rows(frame, recipe, task) -> (frame, counts per rule)      per source split, after the task's clean
check_splits(frames, recipe, task) -> (frames, report section)    after the split: duplicates, leakage, conflicts

A split kept whole (a validation/test file not listed in data.clean.splits) is counted by the
same rules but loses no rows to them: `filter_rows(..., drop=False)` keeps every row, and
check_splits' `whole` splits report what within: drop and label_conflicts: drop would remove
(counts[split]["would_drop"]). Leaks (near_duplicates.across) concern those splits only, so
`across: drop` removes leaked rows from them all the same.

Which text a rule looks at:
* the row filters (characters, tokens, unprintable) read ALL the text a row carries (every
  string column the task keeps, the messages' contents for chats), joined by newlines: garbage
  or a huge field anywhere in a row is worth dropping, and for a pair (QA's context + question,
  seq2seq's source + target) the model reads both;
* duplicates and leakage compare what the task calls the same example (`task.leakage_key`:
  classification text, QA context + question, seq2seq source, causal LM text or prompt +
  response; a chat's contents), so they agree with the report's `leakage` counts.

Row numbers in the report are positions in the prepared split (what <run>/data/prepared and
eval's predictions use); a row a policy dropped has none and is marked `dropped`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable

from tunekit.errors import RecipeError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

ORDER = ("train", "validation", "test")   # a later split's rows are the ones a leak drops
TOP = 5                                   # offenders listed per kind
PREVIEW = 80                              # characters of text shown per offender
IMBALANCE = 10.0                          # majority/minority class ratio that earns a warning
TOKEN_BATCH = 4096
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")  # \t \n \v \f \r are whitespace


# ---- which text ------------------------------------------------------------------------------

def row_texts(frame: "pd.DataFrame") -> list[str]:
    """All the text of each row: every string column but `id`, and a chat's message contents."""
    columns = []
    for name in frame.columns:
        if name in ("id", "label"):
            continue
        values = frame[name].tolist()  # plain lists: iterating an Arrow-backed Series is ~10x slower
        sample = next((v for v in values if v is not None), None)
        if name == "messages":
            columns.append([("\n".join(str(m.get("content") or "") for m in v) if v is not None else "") for v in values])
        elif isinstance(sample, str):
            columns.append(["" if v is None else v for v in values])
    if not columns:
        return [""] * len(frame)
    return ["\n".join(parts) for parts in zip(*columns)] if len(columns) > 1 else list(columns[0])


def example_texts(frame: "pd.DataFrame", task) -> list[str]:
    """What counts as the same example (the task's leakage key); a chat: its role: content lines."""
    if "messages" in frame.columns:
        return ["\n".join(f"{m.get('role')}: {m.get('content') or ''}" for m in v) for v in frame["messages"]]
    return [v if isinstance(v, str) else str(v) for v in task.leakage_key(frame).tolist()]


def count(n: int, noun: str, plural: str = "") -> str:
    """`1 row`, `2 rows`: warnings are read by people."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW else flat[:PREVIEW - 1] + "…"


# ---- per-row filters ---------------------------------------------------------------------------

def unprintable_share(text: str) -> float:
    """Share of characters that are control/format/unassigned characters or U+FFFD (what invalid
    UTF-8 decodes to). Whitespace (newlines, tabs, no-break spaces) is fine. C-speed checks first:
    only a text that fails them is walked character by character."""
    if not text:
        return 0.0
    bad = text.count("\ufffd") + sum(text.count(c) for c in "\x1c\x1d\x1e\x1f")  # split() calls these space
    packed = "".join(text.split())
    if not packed.isprintable():
        bad += sum(1 for c in packed if not c.isprintable())
    return bad / len(text)


def _unprintable(texts: list[str], limit: float, block: int = 2048) -> "np.ndarray":
    """Rows over the unprintable limit. Clean blocks of rows (the usual case) pass with one
    C-speed check of the whole block; only a block with a bad character is checked row by row."""
    import numpy as np

    bad = np.zeros(len(texts), dtype=bool)
    for s in range(0, len(texts), block):
        chunk = texts[s:s + block]
        joined = "".join(chunk)
        if joined.isascii():  # only ASCII control characters can be bad; whitespace ones are fine
            suspect = _ASCII_CONTROL.search(joined) is not None
        else:
            suspect = "\ufffd" in joined or not "".join(joined.split()).isprintable()
        if suspect:
            bad[s:s + len(chunk)] = [unprintable_share(t) > limit for t in chunk]
    return bad


def filter_rows(frame: "pd.DataFrame", recipe, task, drop: bool = True) -> tuple["pd.DataFrame", dict[str, int]]:
    """Drop rows by the row rules, in order: unprintable, characters, tokens. A row is counted
    under the first rule that drops it; a rule that is set is counted even when it drops none.
    `drop=False` (a split kept whole): the same counts, every row kept."""
    import numpy as np

    q = recipe.data.quality
    counts: dict[str, int] = {}
    texts = row_texts(frame)
    keep = np.ones(len(texts), dtype=bool)

    def apply(rule: str, bad: "np.ndarray") -> None:
        hit = bad & keep
        counts[rule] = int(hit.sum())
        keep[hit] = False

    if q.max_unprintable < 1.0:
        apply("unprintable", _unprintable(texts, q.max_unprintable))
    if q.min_chars or q.max_chars:
        chars = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        if q.min_chars:
            apply("too_few_chars", chars < q.min_chars)
        if q.max_chars:
            apply("too_many_chars", chars > q.max_chars)
    if q.min_tokens or q.max_tokens:
        tokens = np.zeros(len(texts), dtype=np.int64)
        idx = np.flatnonzero(keep)  # only rows still kept are worth tokenizing
        tokens[idx] = count_tokens([texts[i] for i in idx], recipe)
        if q.min_tokens:
            apply("too_few_tokens", (tokens < q.min_tokens) & keep)
        if q.max_tokens:
            apply("too_many_tokens", (tokens > q.max_tokens) & keep)
    if keep.all() or not drop:
        return frame, counts
    return frame[keep].reset_index(drop=True), counts


def count_tokens(texts: list[str], recipe) -> "np.ndarray":
    """Tokens per text with the model's tokenizer, no special tokens, batched in Rust."""
    import numpy as np

    from tunekit.pipeline.text_encoding import plain_backend

    out = np.zeros(len(texts), dtype=np.int64)
    with plain_backend(_token_counter(recipe)) as backend:  # untruncated and unpadded: true counts
        for s in range(0, len(texts), TOKEN_BATCH):
            batch = backend.encode_batch(texts[s:s + TOKEN_BATCH], add_special_tokens=False)
            out[s:s + len(batch)] = [len(e.ids) for e in batch]
    return out


def _token_counter(recipe):
    from pathlib import Path

    from tunekit.pipeline.tokenization import TOKENIZER_FILES, load_tokenizer
    from tunekit.sources import resolve_model

    if recipe.tokenize.train_tokenizer is not None:
        raise RecipeError("data.quality.min_tokens/max_tokens count tokens with the model's tokenizer, but "
                          "tokenize.train_tokenizer trains a new one after prepare",
                          "use data.quality.min_chars/max_chars instead, or set model.tokenizer to an existing one")
    path = resolve_model(recipe.model.tokenizer or recipe.model.name)
    if recipe.model.init == "config" and not any((Path(path) / f).is_file() for f in TOKENIZER_FILES):
        raise RecipeError(f"data.quality.min_tokens/max_tokens need a tokenizer, and {path} has none "
                          "(model.init: config builds the model from its config alone)",
                          "set model.tokenizer to a folder with tokenizer.json, or use min_chars/max_chars")
    return load_tokenizer(path)


# ---- checks across rows and splits -------------------------------------------------------------

def check_splits(frames: dict, recipe, task, meta: "dict | None" = None,
                 whole: "tuple[str, ...]" = ()) -> tuple[dict, dict]:
    """Label conflicts, then duplicates within each split, then leaks into later splits: each
    counted, listed, and handled by its policy (warn / drop / error). Returns the frames (rows
    dropped by `drop` policies) and prepare_report.json's `quality` section.

    `meta` (optional, the task's meta): class names for the warning sentences; without it they
    come from the recipe where it lists them (the report's tables map ids to names anyway).
    `whole`: splits kept whole; within: drop and label_conflicts: drop leave their rows in place
    and count them under counts[split]["would_drop"]."""
    import numpy as np

    from tunekit.pipeline import minhash
    from tunekit.pipeline.quality_groups import Rows, conflicts, leaks, within_split

    q = recipe.data.quality
    nd = q.near_duplicates
    names = [s for s in ORDER if s in frames] + [s for s in frames if s not in ORDER]
    texts = [t for s in names for t in example_texts(frames[s], task)]
    sizes = [len(frames[s]) for s in names]
    rows = Rows(names, np.repeat(np.arange(len(names)), sizes), texts, whole=tuple(whole))
    near = nd.within != "off" or nd.across != "off"
    labelled = recipe.task == "classification" and all("label" in f.columns for f in frames.values())
    counts: dict[str, dict] = {s: {} for s in names}
    offenders: dict[str, list] = {}
    warnings: list[str] = []
    namer = _label_namer(recipe, meta)
    if texts and (near or labelled):
        if near:
            keys, sig = minhash.fingerprints(texts, nd.shingle)
        else:
            keys, sig = minhash.text_keys(texts), None
        rows.code = np.unique(keys, return_inverse=True)[1].reshape(-1)
        if sig is not None:
            rows.edges = _near_edges(rows, sig, nd.threshold, _same_unit(frames, names))
            del sig
        if labelled:
            rows.label = np.concatenate([frames[s]["label"].to_numpy(dtype=np.int64) for s in names])
            conflicts(rows, q.label_conflicts, namer, counts, offenders, warnings)
        if nd.within != "off":
            within_split(rows, nd.within, nd.threshold, counts, offenders, warnings)
        if nd.across != "off":
            leaks(rows, nd.across, nd.threshold, counts, offenders, warnings)
        frames = dict(frames)  # the caller's dict stays as it was
        for k, s in enumerate(names):
            alive = rows.alive[rows.split == k]
            counts[s]["dropped"] = int((~alive).sum())
            if not alive.all():
                frames[s] = frames[s][alive].reset_index(drop=True)
        rows.finish(offenders)
    offenders["longest"] = _longest(frames, names)
    section = {"policies": {"within": nd.within, "across": nd.across, "threshold": nd.threshold,
                            "shingle": nd.shingle, "label_conflicts": q.label_conflicts if labelled else None},
               "counts": counts, "offenders": offenders, "warnings": warnings}
    if labelled:
        section["balance"] = _balance(frames, names, namer, warnings)
    return frames, section


def _near_edges(rows, sig: "np.ndarray", threshold: float, unit: "np.ndarray | None"):
    """Near-duplicate pairs of distinct texts as (code a, code b, similarity, row a, row b)."""
    import numpy as np

    from tunekit.pipeline import minhash

    bands, band_rows = minhash.lsh_params(threshold)
    i, j = minhash.candidate_pairs(sig, bands, band_rows)
    distinct = rows.code[i] != rows.code[j]  # identical texts are exact duplicates, counted apart
    if unit is not None:
        distinct &= unit[i] != unit[j]       # QA: questions on one passage are not duplicates
    i, j = i[distinct], j[distinct]
    sim = minhash.similarity(sig, i, j)
    hit = sim >= threshold
    i, j, sim = i[hit], j[hit], sim[hit]
    a, b = np.minimum(rows.code[i], rows.code[j]), np.maximum(rows.code[i], rows.code[j])
    _, first = np.unique(a.astype(np.int64) * (int(rows.code.max()) + 1) + b, return_index=True)
    return a[first], b[first], sim[first], i[first], j[first]


def _same_unit(frames: dict, names: list[str]):
    """QA: the passage each question belongs to (questions sharing a context are expected)."""
    import numpy as np

    from tunekit.pipeline import minhash

    if not all("context" in frames[s].columns for s in names):
        return None
    return minhash.text_keys([c for s in names for c in frames[s]["context"]]).astype(np.uint64)


def _label_namer(recipe, meta: "dict | None") -> Callable[[int], str]:
    """Class id -> name: from the task's meta, or the recipe where it lists them, else `label <id>`."""
    cfg = recipe.data.labels
    names = list((meta or {}).get("label_names") or cfg.names or (
        sorted(cfg.from_score, key=lambda n: cfg.from_score[n][0]) if cfg.from_score else []))
    return lambda i: names[i] if 0 <= i < len(names) else f"label {i}"


def _longest(frames: dict, names: list[str]) -> list[dict]:
    import numpy as np

    found = []
    for s in names:
        texts = row_texts(frames[s])
        chars = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        top = np.argsort(-chars, kind="stable")[:TOP]
        found += [{"split": s, "row": int(r), "chars": int(chars[r]), "text": preview(texts[r])} for r in top]
    return sorted(found, key=lambda e: -e["chars"])[:TOP]


def _balance(frames: dict, names: list[str], namer, warnings: list[str]) -> dict:
    """Rows per class id and shares per split; the majority/minority ratio of train, warned above
    IMBALANCE (accuracy then mostly measures the majority class)."""
    import numpy as np

    top = max((int(frames[s]["label"].max()) for s in names if len(frames[s])), default=-1) + 1
    out = {}
    for s in names:
        n = np.bincount(frames[s]["label"].to_numpy(dtype=np.int64), minlength=top)
        present = n[n > 0]
        ratio = float(present.max() / present.min()) if len(present) else 0.0
        out[s] = {"counts": n.tolist(), "shares": [round(float(v) / max(int(n.sum()), 1), 4) for v in n],
                  "ratio": round(ratio, 2)}
    train = out.get("train")
    if train and train["ratio"] > IMBALANCE:
        n = np.array(train["counts"])
        big, small = int(np.argmax(n)), int(np.argmin(np.where(n > 0, n, n.max() + 1)))
        warnings.append(f"train: classes are imbalanced {train['ratio']:.0f}:1 ({namer(big)} {n[big]} rows, "
                        f"{namer(small)} {n[small]}); prefer f1_macro over accuracy, or add rows of the small classes")
    return out
