"""pipeline.generation: explicit settings, batched = one at a time, caps counted; nested columns."""

from __future__ import annotations

import pandas as pd
import pytest

from tunekit.pipeline.generation import IGNORE_INDEX, generate, generation_config, join_prompt_target
from tunekit.pipeline.prepare import select_columns, text_value
from tunekit.recipe.schema import Columns, GenerationConfig


@pytest.fixture(scope="module")
def tiny_lm():
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "[UNK]"] + [f"w{i}" for i in range(60)])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                        eos_token="</s>", unk_token="[UNK]")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=0,
                                         bos_token_id=1, eos_token_id=2))
    return model, tokenizer


def test_generation_config_is_explicit(tiny_lm):
    model, tokenizer = tiny_lm
    config = generation_config(GenerationConfig(max_new_tokens=7, num_beams=3, length_penalty=0.6), tokenizer, model)
    assert (config.max_new_tokens, config.num_beams, config.length_penalty) == (7, 3, 0.6)
    assert config.eos_token_id == 2 and config.pad_token_id == 0 and config.do_sample is False


def test_batched_left_padded_generation_equals_one_at_a_time(tiny_lm):
    model, tokenizer = tiny_lm
    inputs = [tokenizer(t)["input_ids"] for t in ("w1 w2 w3", "w4", "w5 w6 w7 w8 w9", "w10 w11")]
    batched = generate(model, tokenizer, inputs, GenerationConfig(max_new_tokens=6, batch_size=3))
    alone = [generate(model, tokenizer, [ids], GenerationConfig(max_new_tokens=6)).texts[0] for ids in inputs]
    assert batched.texts == alone
    # a random model rarely emits the end token: outputs that ran to 6 tokens are counted as capped
    assert all(c == (n >= 6) for c, n in zip(batched.capped, batched.lengths))
    assert max(batched.lengths) <= 6


def test_join_prompt_target_masks_the_prompt():
    ids, labels = join_prompt_target([5, 6, 7], [8, 9, 2])
    assert ids == [5, 6, 7, 8, 9, 2]
    assert labels == [IGNORE_INDEX] * 3 + [8, 9, 2]


def test_dotted_columns_reach_into_nested_records():
    raw = pd.DataFrame({"id": ["a", "b"],
                        "sentences": [{"abstract": ["One .", "Two ."]}, {"abstract": ["Three ."]}],
                        "summary": [{"x": "S1.", "y": "S2."}, {"x": "T1.", "y": "T2."}]})
    frame = select_columns(raw, Columns(source="sentences.abstract", target="summary"), ("id", "source", "target"), "t")
    assert [text_value(v) for v in frame["source"]] == ["One . Two .", "Three ."]
    assert [text_value(v) for v in frame["target"]] == ["S1. S2.", "T1. T2."]
    assert text_value(3) is None and text_value([]) is None


def test_a_dotted_column_nobody_has_is_a_clear_error():
    from tunekit.errors import DataError

    raw = pd.DataFrame({"sentences": [{"abstract": ["x"]}]})
    with pytest.raises(DataError, match="no column 'sentences.intro'"):
        select_columns(raw, Columns(source="sentences.intro"), ("source",), "train data")
