#!/usr/bin/env python3
"""Build the tunekit extractive question-answering data set from its YAML source.

The source of truth is ``src/tunekit/assets/qa/source.yaml``: original passages written for
tunekit, with their questions and answer spans. This script turns it into SQuAD-style files:

    qa-{train,validation,test}-v1.json   SQuAD v1.1 layout, answerable questions only
    qa-{train,validation,test}-v2.json   SQuAD v2.0 layout: the same questions (same ids) plus
                                         unanswerable ones (``is_impossible: true``)
    qa-flat.jsonl                        the v1 train split, one question a line, in the
                                         Hugging Face ``squad`` layout

Answers are written in the source as text, never as offsets: the script finds each answer in its
passage (whole-word match) and records ``answer_start``. An answer that is not found, or that
occurs more than once without an explicit ``occurrence: N`` (1-based), stops the build with an
error, as does any other malformed entry. Output is deterministic: rerunning it on the same
source gives byte-identical files.

    python scripts/build_qa_dataset.py                 # rewrite the files next to source.yaml
    python scripts/build_qa_dataset.py --out /tmp/qa   # write them somewhere else
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSET_DIR = REPO_ROOT / "src" / "tunekit" / "assets" / "qa"
DEFAULT_SOURCE = ASSET_DIR / "source.yaml"

SPLITS = ("train", "validation", "test")
OUTPUT_FILES = tuple(f"qa-{split}-v{v}.json" for v in (1, 2) for split in SPLITS) + ("qa-flat.jsonl",)

MIN_WORDS, MAX_WORDS = 80, 220  # words per passage (paragraph context)
MAX_PARAGRAPHS = 3  # paragraphs per article
MAX_ANSWER_WORDS = 10
MAX_REFERENCES = 3  # answers per validation/test question; train questions have exactly one


class SourceError(ValueError):
    """The YAML source is malformed or an answer cannot be located unambiguously."""


def _fail(where: str, message: str) -> None:
    raise SourceError(f"{where}: {message}")


def _str(value: object, where: str, what: str) -> str:
    # YAML turns unquoted 1997 into an int, yes/no into bools, 0.50 into 0.5: refuse, never coerce.
    if not isinstance(value, str):
        _fail(where, f"{what} must be a string (quote it in the YAML), got {type(value).__name__} {value!r}")
    if value != value.strip() or not value:
        _fail(where, f"{what} is empty or has leading/trailing whitespace: {value!r}")
    if not value.isascii():
        _fail(where, f"{what} must be plain ASCII (offsets are then unambiguous): {value!r}")
    return value


def find_occurrences(context: str, text: str) -> list[int]:
    """Start offsets of ``text`` in ``context`` as a whole-word match (no partial words)."""
    pattern = re.escape(text)
    if text[0].isalnum():
        pattern = r"(?<![A-Za-z0-9])" + pattern
    if text[-1].isalnum():
        pattern = pattern + r"(?![A-Za-z0-9])"
    return [m.start() for m in re.finditer(pattern, context)]


def locate(context: str, spec: object, where: str) -> tuple[str, int]:
    """Resolve one answer spec (``"text"`` or ``{text, occurrence}``) to (text, answer_start)."""
    occurrence = None
    if isinstance(spec, dict):
        unknown = set(spec) - {"text", "occurrence"}
        if unknown or "text" not in spec:
            _fail(where, f"answer mapping needs 'text' and optional 'occurrence', got keys {sorted(spec)}")
        occurrence = spec.get("occurrence")
        if not isinstance(occurrence, int) or isinstance(occurrence, bool) or occurrence < 1:
            _fail(where, f"'occurrence' must be a positive integer (1-based), got {occurrence!r}")
        spec = spec["text"]
    text = _str(spec, where, "answer")
    if len(text.split()) > MAX_ANSWER_WORDS:
        _fail(where, f"answer {text!r} is longer than {MAX_ANSWER_WORDS} words")
    starts = find_occurrences(context, text)
    if not starts:
        _fail(where, f"answer {text!r} does not occur in the passage (as whole words)")
    if occurrence is None:
        if len(starts) > 1:
            _fail(where, f"answer {text!r} occurs {len(starts)} times; say which with 'occurrence: N'")
        occurrence = 1
    if occurrence > len(starts):
        _fail(where, f"answer {text!r} occurs {len(starts)} times, not {occurrence}")
    start = starts[occurrence - 1]
    assert context[start : start + len(text)] == text
    return text, start


def make_id(title: str, paragraph_index: int, question: str) -> str:
    """A stable 24-hex-digit id (the SQuAD id shape) derived from where the question lives."""
    digest = hashlib.sha1(f"{title}\x1f{paragraph_index}\x1f{question}".encode("utf-8"))
    return digest.hexdigest()[:24]


def build(source: dict) -> dict[str, dict]:
    """Validate the source and return ``{split: {"v1": squad_v1, "v2": squad_v2}}``."""
    if not isinstance(source, dict) or not isinstance(source.get("articles"), list):
        _fail("source", "expected a mapping with an 'articles' list")
    out = {s: {"v1": {"version": "1.1", "data": []}, "v2": {"version": "v2.0", "data": []}} for s in SPLITS}
    titles: set[str] = set()
    contexts: set[str] = set()
    ids: set[str] = set()
    for a_index, article in enumerate(source["articles"]):
        where = f"article #{a_index + 1}"
        if not isinstance(article, dict) or set(article) != {"title", "split", "paragraphs"}:
            _fail(where, "needs exactly the keys title, split, paragraphs")
        title = _str(article["title"], where, "title")
        where = f"article {title!r}"
        if " " in title:
            _fail(where, "titles use underscores instead of spaces (SQuAD style)")
        if title in titles:
            _fail(where, "duplicate title")
        titles.add(title)
        split = article["split"]
        if split not in SPLITS:
            _fail(where, f"split must be one of {SPLITS}, got {split!r}")
        paragraphs = article["paragraphs"]
        if not isinstance(paragraphs, list) or not 1 <= len(paragraphs) <= MAX_PARAGRAPHS:
            _fail(where, f"needs 1 to {MAX_PARAGRAPHS} paragraphs")
        v1_paragraphs, v2_paragraphs = [], []
        for p_index, paragraph in enumerate(paragraphs):
            p_where = f"{where} paragraph {p_index + 1}"
            if not isinstance(paragraph, dict) or not {"context", "qas"} <= set(paragraph) <= {
                "context",
                "qas",
                "unanswerable",
            }:
                _fail(p_where, "needs keys context and qas (and optionally unanswerable)")
            context = _str(paragraph["context"], p_where, "context")
            if "\n" in context or "  " in context:
                _fail(p_where, "context has a line break or a double space (use a folded '>-' block)")
            n_words = len(context.split())
            if not MIN_WORDS <= n_words <= MAX_WORDS:
                _fail(p_where, f"context has {n_words} words, outside {MIN_WORDS}-{MAX_WORDS}")
            if context in contexts:
                _fail(p_where, "the same context appears twice")
            contexts.add(context)
            questions_seen: set[str] = set()
            v1_qas, v2_extra = [], []
            qas = paragraph["qas"]
            if not isinstance(qas, list) or not qas:
                _fail(p_where, "qas must be a non-empty list")
            for q_index, qa in enumerate(qas):
                q_where = f"{p_where} question {q_index + 1}"
                if not isinstance(qa, dict) or set(qa) != {"q", "a"}:
                    _fail(q_where, "needs exactly the keys q and a")
                question = _str(qa["q"], q_where, "question")
                q_where = f"{p_where} question {question!r}"
                if not question.endswith("?"):
                    _fail(q_where, "a question ends with '?'")
                if question in questions_seen:
                    _fail(q_where, "duplicate question in this paragraph")
                questions_seen.add(question)
                specs = qa["a"] if isinstance(qa["a"], list) else [qa["a"]]
                limit = 1 if split == "train" else MAX_REFERENCES
                if not 1 <= len(specs) <= limit:
                    _fail(q_where, f"{split} questions take 1 to {limit} answers, got {len(specs)}")
                answers = []
                for spec in specs:
                    text, start = locate(context, spec, q_where)
                    if any(a["text"] == text for a in answers):
                        _fail(q_where, f"answer {text!r} is listed twice")
                    if answers:  # alternatives must overlap the first (main) answer's span
                        main_start = answers[0]["answer_start"]
                        main_end = main_start + len(answers[0]["text"])
                        if start >= main_end or start + len(text) <= main_start:
                            _fail(q_where, f"alternative answer {text!r} does not overlap the main answer")
                    answers.append({"text": text, "answer_start": start})
                qid = make_id(title, p_index, question)
                if qid in ids:
                    _fail(q_where, "id collision")
                ids.add(qid)
                v1_qas.append({"id": qid, "question": question, "answers": answers})
            for question in paragraph.get("unanswerable") or []:
                question = _str(question, p_where, "unanswerable question")
                q_where = f"{p_where} unanswerable {question!r}"
                if not question.endswith("?"):
                    _fail(q_where, "a question ends with '?'")
                if question in questions_seen:
                    _fail(q_where, "duplicate question in this paragraph")
                questions_seen.add(question)
                qid = make_id(title, p_index, question)
                if qid in ids:
                    _fail(q_where, "id collision")
                ids.add(qid)
                v2_extra.append({"id": qid, "question": question, "answers": [], "is_impossible": True})
            v1_paragraphs.append({"context": context, "qas": v1_qas})
            v2_qas = [{**qa, "is_impossible": False} for qa in v1_qas] + v2_extra
            v2_paragraphs.append({"context": context, "qas": v2_qas})
        out[split]["v1"]["data"].append({"title": title, "paragraphs": v1_paragraphs})
        out[split]["v2"]["data"].append({"title": title, "paragraphs": v2_paragraphs})
    for split in SPLITS:
        if not out[split]["v1"]["data"]:
            _fail("source", f"split {split!r} has no articles")
    return out


def flatten(squad: dict) -> list[dict]:
    """SQuAD nesting to Hugging Face ``squad`` rows (answers as parallel lists)."""
    rows = []
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                rows.append(
                    {
                        "id": qa["id"],
                        "title": article["title"],
                        "context": paragraph["context"],
                        "question": qa["question"],
                        "answers": {
                            "text": [a["text"] for a in qa["answers"]],
                            "answer_start": [a["answer_start"] for a in qa["answers"]],
                        },
                    }
                )
    return rows


def render(built: dict[str, dict]) -> dict[str, str]:
    """File name -> exact file text."""
    files = {}
    for version in ("v1", "v2"):
        for split in SPLITS:
            text = json.dumps(built[split][version], ensure_ascii=False, indent=1) + "\n"
            files[f"qa-{split}-{version}.json"] = text
    rows = flatten(built["train"]["v1"])
    files["qa-flat.jsonl"] = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    assert tuple(sorted(files)) == tuple(sorted(OUTPUT_FILES))
    return files


def stats(built: dict[str, dict]) -> dict[str, dict[str, int]]:
    table = {}
    for split in SPLITS:
        data = built[split]["v2"]["data"]
        qas = [qa for art in data for par in art["paragraphs"] for qa in par["qas"]]
        table[split] = {
            "articles": len(data),
            "paragraphs": sum(len(art["paragraphs"]) for art in data),
            "answerable": sum(not qa["is_impossible"] for qa in qas),
            "unanswerable": sum(qa["is_impossible"] for qa in qas),
        }
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="YAML source (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ASSET_DIR, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    with open(args.source, encoding="utf-8") as fh:
        source = yaml.safe_load(fh)
    try:
        built = build(source)
    except SourceError as exc:
        print(f"error: {args.source}: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in render(built).items():
        with open(args.out / name, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    table = stats(built)
    total = {k: sum(row[k] for row in table.values()) for k in next(iter(table.values()))}
    print(f"wrote {len(OUTPUT_FILES)} files to {args.out}")
    print(f"{'split':<12}{'articles':>10}{'paragraphs':>12}{'answerable':>12}{'unanswerable':>14}")
    for split, row in [*table.items(), ("total", total)]:
        share = row["answerable"] / total["answerable"]
        impossible = row["unanswerable"] / (row["answerable"] + row["unanswerable"])
        print(
            f"{split:<12}{row['articles']:>10}{row['paragraphs']:>12}{row['answerable']:>12}{row['unanswerable']:>14}"
            f"   ({share:.0%} of answerable, {impossible:.0%} unanswerable)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
