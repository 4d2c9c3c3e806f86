"""Shared fixtures: a tiny BERT classifier and tokenizer built on the spot, small data files,
and a recipe writer. Nothing here reads files from outside the test's temporary folders."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

POSITIVE = ["good", "great", "excellent", "love", "wonderful", "fun", "brilliant"]
NEGATIVE = ["bad", "awful", "terrible", "hate", "boring", "dull", "weak"]
FILLER = ["the", "movie", "film", "was", "plot", "actors", "story", "a", "and", "really", "this"]


def make_rows(n: int, seed: int = 0) -> list[dict]:
    """Sentences whose label follows from their sentiment words (easy for a tiny model)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        words = rng.sample(FILLER, 4) + rng.sample(POSITIVE if label == "positive" else NEGATIVE, 2)
        rng.shuffle(words)
        rows.append({"text": " ".join(words) + f" {i}", "label": label})
    return rows


def write_rows_csv(path: Path, rows: list[dict]) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 1-layer, 16-wide BERT and a word-level fast tokenizer, saved like a real checkpoint."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = POSITIVE + NEGATIVE + FILLER + [str(i) for i in range(1000)]
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_max_length=64)
    fast.save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, pad_token_id=0)
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture
def sentiment_csv(tmp_path) -> Path:
    return write_rows_csv(tmp_path / "reviews.csv", make_rows(240))


def tiny_recipe(root: Path, model_dir: Path, csv: Path, name: str = "recipe.yaml", **sections) -> Path:
    """Write a valid tiny classification recipe into `root`, sections deep-merged on top."""
    recipe = {
        "name": "tiny",
        "task": "classification",
        "output_dir": str(root / "run"),
        "model": {"name": str(model_dir)},
        "data": {"train": str(csv), "split": {"validation": 0.1, "test": 0.2, "seed": 1}},
        "tokenize": {"max_length": 32},
        # a 1-layer, 16-wide BERT leaves its loss plateau only with a steady, high rate
        "train": {"epochs": 5, "batch_size": 16, "lr": 5e-3, "scheduler": "constant", "seed": 1,
                  "logging_steps": 5},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    path = root / name
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def write_recipe(tmp_path, tiny_model_dir, sentiment_csv):
    """write_recipe(**sections) -> path of a valid tiny recipe, sections deep-merged on top."""
    def write(name: str = "recipe.yaml", **sections) -> Path:
        return tiny_recipe(tmp_path, tiny_model_dir, sentiment_csv, name, **sections)
    return write


@pytest.fixture
def make_recipe(tmp_path, tiny_model_dir):
    """make_recipe(data_section, **other_sections) -> a loaded Recipe (written as YAML first)."""
    from tunekit.recipe import load_recipe

    count = {"n": 0}

    def make(data: dict, **sections):
        count["n"] += 1
        doc = {"name": "prep", "task": "classification", "output_dir": str(tmp_path / "run"),
               "model": {"name": str(tiny_model_dir)}, "data": data, **sections}
        path = tmp_path / f"recipe{count['n']}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return load_recipe(path)
    return make


@pytest.fixture
def run(tmp_path):
    """The RunDir of the run folder tmp_path/run (not made yet)."""
    from tunekit.runs import RunDir

    return RunDir(tmp_path / "run")
