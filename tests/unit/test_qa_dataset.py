"""The shipped extractive QA data set (src/tunekit/assets/qa): spans, ids, splits, counts, the
v1/v2/flat files against each other, and a byte-for-byte rebuild from source.yaml. No torch."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QA_DIR = REPO / "src" / "tunekit" / "assets" / "qa"
SCRIPT = REPO / "scripts" / "build_qa_dataset.py"
SPLITS = ("train", "validation", "test")
GENERATED = [f"qa-{s}-v{v}.json" for v in (1, 2) for s in SPLITS] + ["qa-flat.jsonl"]


def _load(name: str) -> dict:
    with open(QA_DIR / name, encoding="utf-8") as fh:
        return json.load(fh)


V1 = {s: _load(f"qa-{s}-v1.json") for s in SPLITS}
V2 = {s: _load(f"qa-{s}-v2.json") for s in SPLITS}


def _flat_rows() -> list[dict]:
    with open(QA_DIR / "qa-flat.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _qas(squad: dict):
    """(title, context, qa) for every question of a SQuAD-layout dict."""
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                yield article["title"], paragraph["context"], qa


def _script_module():
    spec = importlib.util.spec_from_file_location("build_qa_dataset", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_versions_and_layout():
    for split in SPLITS:
        assert V1[split]["version"] == "1.1"
        assert V2[split]["version"] == "v2.0"
        for squad in (V1[split], V2[split]):
            assert set(squad) == {"version", "data"}
            for article in squad["data"]:
                assert set(article) == {"title", "paragraphs"}
                assert 1 <= len(article["paragraphs"]) <= 3
                for paragraph in article["paragraphs"]:
                    assert set(paragraph) == {"context", "qas"}
        for _, _, qa in _qas(V1[split]):
            assert set(qa) == {"id", "question", "answers"}
        for _, _, qa in _qas(V2[split]):
            assert set(qa) == {"id", "question", "answers", "is_impossible"}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_every_answer_is_the_span_at_its_offset(split, version):
    squad = (V1 if version == "v1" else V2)[split]
    checked = 0
    for _, context, qa in _qas(squad):
        for answer in qa["answers"]:
            start, text = answer["answer_start"], answer["text"]
            assert isinstance(start, int) and 0 <= start
            assert context[start : start + len(text)] == text, (qa["id"], text)
            assert text == text.strip() and text
            checked += 1
    assert checked > 0


def test_flat_answers_are_spans_too():
    for row in _flat_rows():
        texts, starts = row["answers"]["text"], row["answers"]["answer_start"]
        assert len(texts) == len(starts) >= 1
        for text, start in zip(texts, starts):
            assert row["context"][start : start + len(text)] == text


def test_passages_are_plain_ascii_and_sized_for_a_small_encoder():
    for split in SPLITS:
        for article in V2[split]["data"]:
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                assert context.isascii() and "\n" not in context
                assert 80 <= len(context.split()) <= 220


def test_ids_are_unique_and_name_one_question_everywhere():
    seen: dict[str, tuple[str, str]] = {}
    for split in SPLITS:
        ids = [qa["id"] for _, _, qa in _qas(V2[split])]
        assert len(ids) == len(set(ids)), f"duplicate id inside qa-{split}-v2.json"
        ids1 = [qa["id"] for _, _, qa in _qas(V1[split])]
        assert len(ids1) == len(set(ids1)), f"duplicate id inside qa-{split}-v1.json"
        for version in (V1, V2):
            for _, context, qa in _qas(version[split]):
                assert re.fullmatch(r"[0-9a-f]{24}", qa["id"])
                key = (qa["question"], context)
                # the same id may appear in v1, v2 and the flat file, but always for the same question
                assert seen.setdefault(qa["id"], key) == key, f"id {qa['id']} names two questions"
    all_v2 = [qa["id"] for split in SPLITS for _, _, qa in _qas(V2[split])]
    assert len(all_v2) == len(set(all_v2)), "an id is used in two splits"
    for row in _flat_rows():
        assert seen[row["id"]] == (row["question"], row["context"])


def test_splits_share_no_passage_and_no_article():
    contexts = {s: {p["context"] for a in V2[s]["data"] for p in a["paragraphs"]} for s in SPLITS}
    titles = {s: {a["title"] for a in V2[s]["data"]} for s in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert not contexts[a] & contexts[b], f"{a} and {b} share a passage"
            assert not titles[a] & titles[b], f"{a} and {b} share an article"
    all_contexts = [p["context"] for s in SPLITS for a in V2[s]["data"] for p in a["paragraphs"]]
    assert len(all_contexts) == len(set(all_contexts))


def test_counts_and_split_proportions():
    answerable = {s: sum(1 for _ in _qas(V1[s])) for s in SPLITS}
    articles = {s: len(V1[s]["data"]) for s in SPLITS}
    total = sum(answerable.values())
    assert total >= 320
    assert sum(articles.values()) >= 60
    assert 0.60 <= answerable["train"] / total <= 0.80
    assert 0.10 <= answerable["validation"] / total <= 0.20
    assert 0.10 <= answerable["test"] / total <= 0.20


def test_reference_answers_per_split():
    for _, _, qa in _qas(V1["train"]):
        assert len(qa["answers"]) == 1
    multi = 0
    for split in ("validation", "test"):
        for _, _, qa in _qas(V1[split]):
            assert 1 <= len(qa["answers"]) <= 3
            texts = [a["text"] for a in qa["answers"]]
            assert len(texts) == len(set(texts))
            multi += len(texts) > 1
    assert multi > 0


@pytest.mark.parametrize("split", SPLITS)
def test_v2_is_v1_plus_unanswerable_questions(split):
    v1, v2 = V1[split], V2[split]
    assert [a["title"] for a in v1["data"]] == [a["title"] for a in v2["data"]]
    n_impossible = n_possible = 0
    for art1, art2 in zip(v1["data"], v2["data"]):
        assert len(art1["paragraphs"]) == len(art2["paragraphs"])
        for par1, par2 in zip(art1["paragraphs"], art2["paragraphs"]):
            assert par1["context"] == par2["context"]
            possible = [qa for qa in par2["qas"] if not qa["is_impossible"]]
            impossible = [qa for qa in par2["qas"] if qa["is_impossible"]]
            assert all(qa["is_impossible"] is False for qa in possible)
            assert [{k: v for k, v in qa.items() if k != "is_impossible"} for qa in possible] == par1["qas"]
            for qa in impossible:
                assert qa["is_impossible"] is True and qa["answers"] == []
                assert qa["question"].endswith("?")
            asked = [qa["question"] for qa in par2["qas"]]
            assert len(asked) == len(set(asked))
            n_possible += len(possible)
            n_impossible += len(impossible)
    assert 0.20 <= n_impossible / (n_possible + n_impossible) <= 0.30


def test_flat_jsonl_is_the_v1_train_split():
    expected = [
        {
            "id": qa["id"],
            "title": title,
            "context": context,
            "question": qa["question"],
            "answers": {
                "text": [a["text"] for a in qa["answers"]],
                "answer_start": [a["answer_start"] for a in qa["answers"]],
            },
        }
        for title, context, qa in _qas(V1["train"])
    ]
    rows = _flat_rows()
    assert rows == expected
    assert all(list(row) == ["id", "title", "context", "question", "answers"] for row in rows)


def test_readme_counts_match_the_files():
    readme = (QA_DIR / "README.md").read_text(encoding="utf-8")
    totals = [0, 0, 0, 0]
    for split in SPLITS:
        data = V2[split]["data"]
        qas = [qa for _, _, qa in _qas(V2[split])]
        row = [
            len(data),
            sum(len(a["paragraphs"]) for a in data),
            sum(not qa["is_impossible"] for qa in qas),
            sum(qa["is_impossible"] for qa in qas),
        ]
        totals = [t + r for t, r in zip(totals, row)]
        assert f"| {split} | " + " | ".join(map(str, row)) + " |" in readme
    assert "| total | " + " | ".join(map(str, totals)) + " |" in readme


def test_rebuild_reproduces_the_files_byte_for_byte(tmp_path):
    out = tmp_path / "qa"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(GENERATED)
    for name in GENERATED:
        assert (out / name).read_bytes() == (QA_DIR / name).read_bytes(), f"{name} is stale: rerun the script"


def _one_article(answer, split="train", context=None):
    context = context or " ".join(["The mill at Brennick burned in 1901 and again in 1931."] + ["word"] * 80)
    return {
        "articles": [
            {
                "title": "T",
                "split": split,
                "paragraphs": [{"context": context, "qas": [{"q": "When?", "a": answer}]}],
            }
        ]
    }


def _build_small(module, answer):
    source = _one_article(answer)
    for split in ("validation", "test"):  # every split needs an article
        other = _one_article("1901", split, context=" ".join([f"{split} text 1901."] + ["word"] * 80))
        other["articles"][0]["title"] = split
        source["articles"] += other["articles"]
    return module.build(source)


def test_script_locates_answers_and_fails_loudly():
    module = _script_module()
    built = _build_small(module, "1901")
    (_, context, qa), = _qas(built["train"]["v1"])
    assert qa["answers"] == [{"text": "1901", "answer_start": context.index("1901")}]
    # an explicit occurrence picks the Nth whole-word match
    built = _build_small(module, {"text": "in", "occurrence": 2})
    (_, context, qa), = _qas(built["train"]["v1"])
    assert qa["answers"][0]["answer_start"] == context.index(" in 1931") + 1
    with pytest.raises(module.SourceError, match="does not occur"):
        _build_small(module, "1902")
    with pytest.raises(module.SourceError, match="occurs 2 times"):
        _build_small(module, "in")
    with pytest.raises(module.SourceError, match="must be a string"):
        _build_small(module, 1901)
    with pytest.raises(module.SourceError, match="does not occur"):
        _build_small(module, "rennick")  # whole words only: no match inside "Brennick"
