"""train.freeze: embeddings, the first N layers, a regex; counts and mistakes."""

import pytest
from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

from tunekit.errors import TunekitError
from tunekit.pipeline.freezing import apply_freeze
from tunekit.recipe.schema import FreezeConfig


def bert(layers: int = 3):
    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16)
    return BertForSequenceClassification(config)


def frozen(model) -> set[str]:
    return {n for n, p in model.named_parameters() if not p.requires_grad}


def test_nothing_frozen_by_default():
    model = bert()
    trainable, total = apply_freeze(model, FreezeConfig())
    assert trainable == total == sum(p.numel() for p in model.parameters())
    assert frozen(model) == set()


def test_embeddings():
    model = bert()
    trainable, total = apply_freeze(model, FreezeConfig(embeddings=True))
    names = frozen(model)
    assert names and all(n.startswith("bert.embeddings.") for n in names)
    assert "bert.embeddings.word_embeddings.weight" in names
    embedding_size = sum(p.numel() for n, p in model.named_parameters() if n in names)
    assert trainable == total - embedding_size


def test_first_layers_only():
    model = bert(layers=3)
    apply_freeze(model, FreezeConfig(layers=2))
    names = frozen(model)
    assert any(".layer.0." in n for n in names) and any(".layer.1." in n for n in names)
    assert not any(".layer.2." in n for n in names)
    assert not any("embeddings" in n or "classifier" in n for n in names)


def test_layers_on_a_llama_style_model():
    config = LlamaConfig(vocab_size=50, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=16)
    model = LlamaForCausalLM(config)
    apply_freeze(model, FreezeConfig(layers=1, embeddings=True))
    names = frozen(model)
    assert "model.embed_tokens.weight" in names
    assert any(n.startswith("model.layers.0.") for n in names)
    assert not any(n.startswith("model.layers.1.") for n in names)


def test_pattern():
    model = bert()
    apply_freeze(model, FreezeConfig(pattern=r"attention\.self\.(query|key)"))
    names = frozen(model)
    assert names and all(".attention.self.query." in n or ".attention.self.key." in n for n in names)


@pytest.mark.parametrize("cfg, message", [
    (FreezeConfig(layers=4), "has 3 layers"),
    (FreezeConfig(pattern="no_such_parameter"), "matches no parameter"),
    (FreezeConfig(pattern="."), "leaves no parameter to train"),
])
def test_mistakes_are_clear_errors(cfg, message):
    with pytest.raises(TunekitError, match=message):
        apply_freeze(bert(), cfg)


def test_bad_regex_rejected_by_the_schema():
    with pytest.raises(ValueError, match="not a valid regular expression"):
        FreezeConfig(pattern="(unclosed")
