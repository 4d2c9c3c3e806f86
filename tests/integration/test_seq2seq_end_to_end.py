"""tunekit finetune/eval for summarization (a tiny warm-started BERT2BERT, Seq2SeqTrainer with
generation during validation) and translation (a tiny Llama, decoder-only, plain Trainer)
through the installed command. The models are far too small to be good; these tests check
the plumbing: exit codes, metric keys and ranges, prediction rows, eval reproducing finetune."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

TUNEKIT = str(Path(sys.executable).with_name("tunekit"))
WORDS = ["red", "blue", "green", "cat", "dog", "bird", "runs", "sleeps", "eats", "big", "small", "old"]
FRENCH = {"red": "rouge", "blue": "bleu", "green": "vert", "cat": "chat", "dog": "chien", "bird": "oiseau",
          "runs": "court", "sleeps": "dort", "eats": "mange", "big": "grand", "small": "petit", "old": "vieux"}


def tunekit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([TUNEKIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def word_tokenizer(specials: list[str], words: list[str], template: str, **tokens):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=tokens["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(s, vocab[s]) for s in specials if s in template])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=128, **tokens), vocab


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A 1-layer BERT encoder with a word-level tokenizer ([CLS] text [SEP])."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert2bert")
    fast, vocab = word_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], WORDS, "[CLS] $A [SEP]",
                                 unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                 mask_token="[MASK]")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64, pad_token_id=0)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    """A 1-layer, 32-wide Llama with a word-level tokenizer (<s> text; no pad token: tunekit sets eos)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    words = WORDS + sorted(FRENCH.values()) + ["translate", ":"]
    fast, vocab = word_tokenizer(["<unk>", "<s>", "</s>"], words, "<s> $A",
                                 unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"])
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sentences(n: int, seed: int, length: int = 6) -> list[list[str]]:
    rng = random.Random(seed)
    return [rng.sample(WORDS, length) for _ in range(n)]


def check_run(tmp_path: Path, run: Path, task: str, names: tuple[str, ...], n: int, max_new_tokens: int) -> dict:
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["task"] == task and metrics["n"] == n
    for name in names:
        assert 0.0 <= metrics[name] <= 100.0, metrics
    assert 0 <= metrics["capped"] <= n and 0 < metrics["gen_len_mean"] <= max_new_tokens
    assert metrics["generation"]["max_new_tokens"] == max_new_tokens
    rows = [json.loads(line) for line in (run / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == n
    assert all({"id", "source", "prediction", "reference"} <= set(r) for r in rows)
    assert sum(r["capped"] for r in rows) == metrics["capped"]
    from typer.testing import CliRunner

    from tunekit.cli.app import app

    # a second evaluation gives the same numbers (in-process: a subprocess costs ~9 s of imports here)
    again = CliRunner().invoke(app, ["eval", str(run), "--json"])
    assert again.exit_code == 0, again.output
    repeat = json.loads((run / "eval" / "metrics.json").read_text())
    assert {k: repeat[k] for k in names} == {k: metrics[k] for k in names}
    assert repeat["capped"] == metrics["capped"]
    return metrics


def test_summarization_bert2bert(tmp_path, tiny_bert):
    """The 'summary' is the first three words; a nested source checks dotted columns and text_value."""
    def rows(n, seed):
        return [{"doc": {"sentences": [" ".join(s[:3]), " ".join(s[3:])]}, "summary": " ".join(s[:3])}
                for s in sentences(n, seed)]
    recipe = tmp_path / "sum.yaml"
    recipe.write_text(json.dumps({
        "name": "tiny-sum", "task": "summarization", "output_dir": str(tmp_path / "run"),
        "model": {"name": str(tiny_bert), "decoder": str(tiny_bert)},
        "data": {"train": str(write_jsonl(tmp_path / "train.jsonl", rows(160, 1))),
                 "validation": str(write_jsonl(tmp_path / "val.jsonl", rows(16, 2))),
                 "test": str(write_jsonl(tmp_path / "test.jsonl", rows(24, 3))),
                 "columns": {"source": "doc.sentences", "target": "summary"}},
        "tokenize": {"max_length": 16, "max_target_length": 8},
        "train": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "scheduler": "constant", "seed": 1},
        "eval": {"generation": {"max_new_tokens": 8, "batch_size": 8}},
    }), encoding="utf-8")
    out = tunekit("finetune", str(recipe), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "run"
    metrics = check_run(tmp_path, run, "summarization", ("rouge1", "rouge2", "rougeL", "rougeLsum"), 24, 8)
    assert metrics["model_kind"] == "encoder-decoder"
    # validation generated and scored with ROUGE during training; the best checkpoint went by rouge1
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_rouge1" in entry for entry in logged), logged[-3:]
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["is_encoder_decoder"] and config["decoder_start_token_id"] == 2 and config["eos_token_id"] == 3
    check_predict_matches_eval(tmp_path, run, "summary")


def check_predict_matches_eval(tmp_path: Path, run: Path, key: str) -> None:
    """`tunekit predict --file` on the raw test file (the recipe's column names, dotted ones too)
    generates what eval generated from the tokenized split: the same input layout."""
    from typer.testing import CliRunner

    from tunekit.cli.app import app

    result = CliRunner().invoke(app, ["predict", str(run), "--file", str(tmp_path / "test.jsonl"),
                                      "--out", str(tmp_path / "predicted.jsonl")])
    assert result.exit_code == 0, result.output
    predicted = [json.loads(line) for line in (tmp_path / "predicted.jsonl").read_text().splitlines()]
    evaluated = {int(r["id"]): r["prediction"]
                 for r in map(json.loads, (run / "eval" / "predictions.jsonl").read_text().splitlines())}
    assert len(predicted) == len(evaluated) == 24
    assert [p["prediction"][key] for p in predicted] == [evaluated[i] for i in range(24)]


def test_translation_decoder_only_lora(tmp_path, tiny_llama):
    def rows(n, seed):
        return [{"source": " ".join(s), "target": " ".join(FRENCH[w] for w in s)} for s in sentences(n, seed, 4)]
    recipe = tmp_path / "tr.yaml"
    recipe.write_text(json.dumps({
        "name": "tiny-tr", "task": "translation", "output_dir": str(tmp_path / "run"),
        "model": {"name": str(tiny_llama)},
        "data": {"train": str(write_jsonl(tmp_path / "train.jsonl", rows(160, 1))),
                 "validation": str(write_jsonl(tmp_path / "val.jsonl", rows(16, 2))),
                 "test": str(write_jsonl(tmp_path / "test.jsonl", rows(24, 3)))},
        "tokenize": {"max_length": 16, "max_target_length": 8, "prefix": "translate : "},
        "train": {"epochs": 2, "batch_size": 16, "lr": 1e-2, "scheduler": "constant", "seed": 1,
                  "peft": {"method": "lora"}},
        "eval": {"generation": {"max_new_tokens": 8, "batch_size": 8}},
    }), encoding="utf-8")
    out = tunekit("finetune", str(recipe), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "run"
    metrics = check_run(tmp_path, run, "translation", ("bleu", "chrf"), 24, 8)
    assert metrics["model_kind"] == "decoder-only"
    assert (run / "model" / "adapter_config.json").is_file()
    adapter = json.loads((run / "model" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "CAUSAL_LM"
    report = json.loads((run / "data" / "tokenize_report.json").read_text())
    assert report["splits"]["train"]["rows"] >= 150 and report["splits"]["train"]["truncated_targets"] == 0

    # the adapter folder alone, on 10 of the test rows, prompted the way it was trained
    from typer.testing import CliRunner

    from tunekit.cli.app import app

    alone = CliRunner().invoke(app, ["eval", "--model", str(run / "model"), "--data", str(tmp_path / "test.jsonl"),
                                     "--limit", "10", "--out", str(tmp_path / "alone"), "--json"])
    assert alone.exit_code == 0, alone.output
    scored = json.loads((tmp_path / "alone" / "metrics.json").read_text())
    assert scored["task"] == "translation" and scored["n"] == 10 and scored["model_kind"] == "decoder-only"
    for name in ("bleu", "chrf"):
        low, high = scored["intervals"][name]
        assert low <= scored[name] <= high
    # a prompt built differently from training would show here: same rows, same predictions
    ours = {r["id"]: r["prediction"] for r in map(json.loads, (run / "eval" / "predictions.jsonl").read_text().splitlines())}
    theirs = [json.loads(line) for line in (tmp_path / "alone" / "predictions.jsonl").read_text().splitlines()]
    assert len(theirs) == 10 and all(ours[r["id"]] == r["prediction"] for r in theirs)
    check_predict_matches_eval(tmp_path, run, "translation")
