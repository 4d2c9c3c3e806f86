"""train.peft: the schema, target layers per architecture, parameter counts, save/load/merge."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification,
                          BertModel, GPT2Config, GPT2ForSequenceClassification, LlamaConfig,
                          LlamaForSequenceClassification)

from tunekit.errors import ModelError, RecipeError, TunekitError
from tunekit.pipeline import adapters
from tunekit.recipe import dump_recipe, load_recipe
from tunekit.recipe.schema import PeftConfig, TrainConfig
from tunekit.tasks import classification

NAMES = ["negative", "positive"]


def bert():
    return BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=16,
                                                    max_position_embeddings=16))


def llama():
    return LlamaForSequenceClassification(LlamaConfig(vocab_size=50, hidden_size=8, intermediate_size=16,
                                                      num_hidden_layers=1, num_attention_heads=2,
                                                      num_key_value_heads=1, max_position_embeddings=16,
                                                      pad_token_id=0))


def gpt2():
    return GPT2ForSequenceClassification(GPT2Config(vocab_size=50, n_embd=8, n_layer=1, n_head=2, n_positions=16,
                                                    pad_token_id=0, bos_token_id=1, eos_token_id=1))


def train_cfg(**peft) -> TrainConfig:
    return TrainConfig(peft=peft)


# ---- schema -------------------------------------------------------------------------------------

@pytest.mark.parametrize("options, wrong", [
    ({"method": "ia3", "r": 4}, "method ia3 takes no option r"),
    ({"method": "prompt", "target_modules": ["query"]}, "method prompt takes no option target_modules"),
    ({"method": "lora", "num_virtual_tokens": 10}, "method lora takes no option num_virtual_tokens"),
    ({"method": "ia3", "feedforward_modules": ["x"]}, "feedforward_modules needs target_modules"),
])
def test_options_of_another_method_are_rejected(options, wrong):
    with pytest.raises(ValueError, match=wrong):
        PeftConfig(**options)


def test_defaults_are_filled_for_the_chosen_method_only():
    assert (PeftConfig(method="lora").r, PeftConfig(method="lora").alpha) == (8, 16)
    assert PeftConfig(method="prompt").num_virtual_tokens == 20
    ia3 = PeftConfig(method="ia3")
    assert ia3.r is None and ia3.num_virtual_tokens is None


def test_recipe_errors_name_the_key_and_round_trip(tmp_path):
    base = {"name": "t", "output_dir": "runs/t", "model": {"name": "m"}, "data": {"train": "d.csv"}}
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps({**base, "train": {"peft": {"method": "ia3", "r": 4}}}))
    with pytest.raises(RecipeError, match=r"train\.peft: method ia3 takes no option r"):
        load_recipe(path)
    path.write_text(json.dumps({**base, "train": {"peft": {"method": "qlor"}}}))
    with pytest.raises(RecipeError, match=r"train\.peft\.method: Input should be 'lora'"):
        load_recipe(path)
    path.write_text(json.dumps({**base, "train": {"peft": {"method": "lora"}, "freeze": {"embeddings": True}}}))
    with pytest.raises(RecipeError, match="train.freeze has no effect with train.peft"):
        load_recipe(path)
    path.write_text(json.dumps({**base, "train": {"peft": {"method": "ia3"}}}))
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(dump_recipe(load_recipe(path)))
    assert load_recipe(dumped).train.peft == PeftConfig(method="ia3")


# ---- target layers ------------------------------------------------------------------------------

@pytest.mark.parametrize("make, lora, ia3", [
    (bert, ["query", "key", "value"], (["key", "value", "output.dense"], ["output.dense"])),
    (llama, ["q_proj", "k_proj", "v_proj", "o_proj"], (["k_proj", "v_proj", "down_proj"], ["down_proj"])),
    (gpt2, ["c_attn"], (["c_attn", "mlp.c_proj"], ["mlp.c_proj"])),
])
def test_targets_per_architecture(make, lora, ia3):
    model = make()
    assert adapters.choose_targets(model) == lora
    assert adapters.choose_ia3_targets(model) == ia3
    wrapped, _, _ = adapters.apply_adapters(model, train_cfg(method="lora"))
    adapted = {n.split(".lora_A")[0].rpartition(".")[2] for n, _ in wrapped.named_parameters() if ".lora_A." in n}
    assert adapted == set(lora)


@pytest.mark.parametrize("make, found", [
    (bert, ["key", "query", "value"]),  # `dense` is also a feed-forward name: left out
    (llama, ["k_proj", "o_proj", "q_proj", "v_proj"]),
    (gpt2, ["c_attn"]),  # `c_proj` is in attention and the MLP
])
def test_unknown_architecture_falls_back_to_attention_only_layers(make, found):
    model = make()
    model.config.model_type = "mystery"
    assert adapters.choose_targets(model) == found
    assert adapters.choose_ia3_targets(model) == (found, [])


def test_no_attention_layers_is_a_clear_error():
    class Mlp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = SimpleNamespace(model_type="mlp")
            self.fc_in, self.fc_out = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

    with pytest.raises(TunekitError, match="no attention layers found") as info:
        adapters.choose_targets(Mlp())
    assert "fc_in, fc_out" in info.value.hint


def test_unknown_layer_names_are_clear_errors():
    with pytest.raises(TunekitError, match="train.peft") as info:
        adapters.apply_adapters(bert(), train_cfg(method="lora", target_modules=["nope"]))
    assert "query" in info.value.hint
    with pytest.raises(TunekitError, match="modules_to_save names 'clasifier', which matches no module") as info:
        adapters.apply_adapters(bert(), train_cfg(method="lora", modules_to_save=["clasifier"]))
    assert info.value.hint == "its top-level modules: bert, dropout, classifier"


# ---- counts and methods on the tiny BERT --------------------------------------------------------

@pytest.mark.parametrize("peft", [{"method": "lora"}, {"method": "dora"}, {"method": "ia3"},
                                  {"method": "prompt", "num_virtual_tokens": 4}])
def test_adapter_trains_a_small_part_and_the_head(tiny_model_dir, peft):
    model = classification.build_model(str(tiny_model_dir), {"label_names": NAMES})
    base_total = sum(p.numel() for p in model.parameters())
    head = sum(p.numel() for p in model.classifier.parameters())
    wrapped, trainable, total = adapters.apply_adapters(model, train_cfg(**peft))
    assert 0 < trainable < total
    assert total == base_total + trainable - head  # the head's frozen original counted once
    trained = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert any("classifier.modules_to_save" in n for n in trained)
    assert all("classifier" in n or "lora_" in n or "ia3_" in n or "prompt_encoder" in n for n in trained), trained


def test_prefix_tuning_says_what_to_use_instead(tiny_model_dir):
    model = classification.build_model(str(tiny_model_dir), {"label_names": NAMES})
    with pytest.raises(TunekitError, match="prefix does not work with BertForSequenceClassification") as info:
        adapters.apply_adapters(model, train_cfg(method="prefix"))
    assert "method: prompt" in info.value.hint


def test_qlora_needs_cuda_and_bitsandbytes(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TunekitError, match="qlora needs a CUDA GPU .*this machine has none") as info:
        adapters.quantization_kwargs(PeftConfig(method="qlora"))
    assert info.value.hint == "use method: lora on the CPU"
    assert adapters.quantization_kwargs(PeftConfig(method="lora")) == {}
    assert adapters.quantization_kwargs(None) == {}
    import importlib.util

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TunekitError, match="needs bitsandbytes, which is not installed"):
        adapters.quantization_kwargs(PeftConfig(method="qlora"))


def test_gradient_checkpointing_makes_embeddings_require_grad():
    wrapped, _, _ = adapters.apply_adapters(bert(), TrainConfig(peft={"method": "lora"}, gradient_checkpointing=True))
    assert wrapped.get_input_embeddings()(torch.tensor([[1, 2]])).requires_grad


def test_prompt_tuning_pads_decoder_inputs_on_the_left():
    tokenizer = SimpleNamespace(padding_side="right")
    adapters.apply_adapters(llama(), train_cfg(method="prompt", num_virtual_tokens=2), tokenizer)
    assert tokenizer.padding_side == "left"
    encoder_tokenizer = SimpleNamespace(padding_side="right")
    adapters.apply_adapters(bert(), train_cfg(method="prompt", num_virtual_tokens=2), encoder_tokenizer)
    assert encoder_tokenizer.padding_side == "right"


# ---- save, load, merge --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def headless_base(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny BERT saved as a bare encoder, without pooler or head (as many checkpoints are)."""
    folder = tmp_path_factory.mktemp("headless")
    full = BertForSequenceClassification.from_pretrained(tiny_model_dir)
    body = BertModel(full.config, add_pooling_layer=False)
    body.load_state_dict(full.bert.state_dict(), strict=False)
    body.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return folder


def trained_adapter(base: Path, out: Path, **peft):
    """Wrap, 'train' (perturb every trainable weight), save as finetune does; return the model."""
    model = classification.build_model(str(base), {"label_names": NAMES})
    wrapped, _, _ = adapters.apply_adapters(model, train_cfg(**peft))
    torch.manual_seed(3)
    with torch.no_grad():
        for p in wrapped.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.5)
    fake_trainer = SimpleNamespace(model=wrapped, args=SimpleNamespace(should_save=True),
                                   save_model=lambda path: wrapped.save_pretrained(path))
    out.mkdir()
    adapters.save_trained(fake_trainer, out, str(base))
    return wrapped.eval()


def logits(model, base: Path):
    tok = AutoTokenizer.from_pretrained(base)
    enc = tok(["great fun the movie", "awful boring plot 12", "the film and the actors"], padding=True,
              return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**enc).logits


def test_a_layer_missing_from_the_checkpoint_is_saved_with_the_adapter(headless_base):
    model = classification.build_model(str(headless_base), {"label_names": NAMES})
    assert adapters.default_modules_to_save(model) == ["classifier", "bert.pooler.dense"]
    assert adapters.default_modules_to_save(bert()) == ["classifier"]  # not loaded: no flags to read


@pytest.mark.parametrize("peft", [{"method": "lora"}, {"method": "ia3"}, {"method": "prompt", "num_virtual_tokens": 3}])
def test_adapter_folder_round_trip(headless_base, tmp_path, peft):
    trained = trained_adapter(headless_base, tmp_path / "model", **peft)
    files = {p.name for p in (tmp_path / "model").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json", "tunekit_adapter.json"} <= files
    assert "model.safetensors" not in files and "README.md" not in files
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    loaded = classification.load_trained(str(tmp_path / "model"))
    assert loaded.config.id2label == {0: "negative", 1: "positive"}
    torch.testing.assert_close(logits(loaded, headless_base), logits(trained, headless_base), rtol=0, atol=1e-6)


@pytest.mark.parametrize("peft", [{"method": "ia3"}, {"method": "dora"}])
def test_merge_gives_the_same_logits(headless_base, tmp_path, peft):
    trained = trained_adapter(headless_base, tmp_path / "model", **peft)
    adapters.merge_adapter(tmp_path / "model", tmp_path / "merged")
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged")
    torch.testing.assert_close(logits(merged, headless_base), logits(trained, headless_base), rtol=0, atol=1e-5)
    with pytest.raises(TunekitError, match="already exists"):
        adapters.merge_adapter(tmp_path / "model", tmp_path / "merged")
    with pytest.raises(TunekitError, match="holds full weights: there is no adapter to merge"):
        adapters.merge_adapter(tmp_path / "merged", tmp_path / "again")


def test_prompt_adapter_cannot_be_merged(headless_base, tmp_path):
    trained_adapter(headless_base, tmp_path / "model", method="prompt", num_virtual_tokens=3)
    with pytest.raises(TunekitError, match="prompt tuning adapter cannot be merged"):
        adapters.merge_adapter(tmp_path / "model", tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_base_model_is_found_through_the_recorded_reference(headless_base, tmp_path):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(headless_base, base)
    trained_adapter(base, tmp_path / "model", method="lora")
    meta = json.loads((tmp_path / "model" / "tunekit_adapter.json").read_text())
    # a local base is recorded relative to the adapter folder, never as an absolute path (DESIGN 5b)
    assert meta == {"base_model": "../base", "peft_type": "LORA", "quantized": False}
    assert json.loads((tmp_path / "model" / "adapter_config.json").read_text())["base_model_name_or_path"] == "../base"
    assert adapters.base_model_path(tmp_path / "model") == str(base.resolve())
    moved = tmp_path / "moved"
    base.rename(moved)  # the recorded folders are gone
    with pytest.raises(ModelError, match="cannot find the base model"):
        adapters.base_model_path(tmp_path / "model")
    meta["base_model"] = str(moved)  # e.g. a pkg:// reference that resolves elsewhere on this machine
    (tmp_path / "model" / "tunekit_adapter.json").write_text(json.dumps(meta))
    assert adapters.base_model_path(tmp_path / "model") == str(moved)
