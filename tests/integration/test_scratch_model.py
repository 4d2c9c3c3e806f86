"""Models trained from scratch: a tokenizer trained on the data (tokenize.train_tokenizer) and a
new model built from a config (model.init: config), through finetune, eval and predict."""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from cli_checks import run_in_process
from conftest import make_rows, write_rows_csv

TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 64}
TINY_LLAMA = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
              "intermediate_size": 64, "max_position_embeddings": 64}


def write(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path


def test_bert_from_scratch_with_a_wordpiece_tokenizer_learns_the_labels(tmp_path):
    recipe = write(tmp_path, {
        "name": "scratch", "task": "classification", "output_dir": str(tmp_path / "run"),
        "model": {"name": "bert", "init": "config", "config": TINY_BERT},
        "data": {"train": str(write_rows_csv(tmp_path / "reviews.csv", make_rows(240))),
                 "split": {"validation": 0.1, "test": 0.2, "seed": 1}},
        "tokenize": {"max_length": 32, "train_tokenizer": {"algorithm": "wordpiece", "vocab_size": 150}},
        "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "scheduler": "constant", "seed": 1,
                  "logging_steps": 5},
        "eval": {"bootstrap": 0},
    })
    out = run_in_process("finetune", str(recipe), "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    model_dir = tmp_path / "run" / "model"
    config = json.loads((model_dir / "config.json").read_text())
    trained = json.loads((tmp_path / "run" / "data" / "tokenizer_training.json").read_text())
    # the new model is sized to the trained tokenizer, which travels with it
    assert config["model_type"] == "bert" and config["hidden_size"] == 32
    assert config["vocab_size"] == trained["actual_vocab_size"] <= 150
    assert (model_dir / "tokenizer.json").read_bytes() == (tmp_path / "run" / "tokenizer" / "tokenizer.json").read_bytes()

    again = run_in_process("eval", str(tmp_path / "run"), "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    metrics = json.loads(again.stdout)
    assert metrics["n"] == 48 and metrics["accuracy"] >= 0.8  # chance is 0.5 (balanced labels)

    said = run_in_process("predict", str(tmp_path / "run"), "the film was awful and boring and weak", "--json")
    assert said.returncode == 0, said.stderr[-3000:]
    assert json.loads(said.stdout)["prediction"]["label"] == "negative"

    # A dry run of a changed tokenizer on the trained run: planned with the tokenizer it trains in a
    # temporary run, while the trained run's own tokenizer stays as it was.
    assert trained["actual_vocab_size"] > 100  # so a plan with the old tokenizer would show
    before = (tmp_path / "run" / "tokenizer" / "tokenizer.json").read_bytes()
    plan = run_in_process("finetune", str(recipe), "--dry-run", "--json",
                          "--set", "tokenize.train_tokenizer.vocab_size=100")
    assert plan.returncode == 0, plan.stderr[-3000:]
    notes = " ".join(json.loads(plan.stdout)["notes"])
    sizes = [int(w) for w in notes.replace("(", " ").split() if w.isdigit()]
    assert sizes and max(sizes) <= 100, notes
    assert (tmp_path / "run" / "tokenizer" / "tokenizer.json").read_bytes() == before


def test_llama_from_scratch_with_a_byte_bpe_tokenizer_has_a_finite_perplexity(tmp_path):
    rng = random.Random(0)
    colors = ["red", "green", "blue", "gold", "grey", "pink"]
    lines = [f"the {rng.choice(colors)} bird sang {rng.choice(['twice', 'once', 'again'])} today." for _ in range(160)]
    data = tmp_path / "lines.jsonl"
    data.write_text("".join(json.dumps({"text": line}) + "\n" for line in lines), encoding="utf-8")
    recipe = write(tmp_path, {
        "name": "scratch-lm", "task": "causal_lm", "output_dir": str(tmp_path / "run"),
        "model": {"name": "llama", "init": "config", "config": TINY_LLAMA},
        "data": {"train": str(data), "style": "text", "split": {"validation": 0.1, "test": 0.1, "seed": 1}},
        "tokenize": {"max_length": 48, "train_tokenizer": {"algorithm": "byte-bpe", "vocab_size": 300}},
        "train": {"epochs": 15, "batch_size": 4, "lr": 5e-3, "scheduler": "constant", "seed": 1,
                  "logging_steps": 5},
        "eval": {"generation": {"max_new_tokens": 4}, "samples": 2, "bootstrap": 0},
    })
    out = run_in_process("finetune", str(recipe), "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    tokenizer_config = json.loads((tmp_path / "run" / "model" / "tokenizer_config.json").read_text())
    assert config["model_type"] == "llama" and config["vocab_size"] <= 300
    assert tokenizer_config["eos_token"] == "<|endoftext|>"
    # a model that learned nothing would sit near the vocabulary size (uniform guessing)
    assert 1 < metrics["perplexity"] < config["vocab_size"] / 4
