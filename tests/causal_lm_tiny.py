"""A tiny Llama and word-level fast tokenizer for the causal_lm tests (built on the spot, saved
like a real checkpoint), and small instruction/chat data. Imported by the test files."""

from __future__ import annotations

import json
import random
from pathlib import Path

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
COLORS = ["red", "green", "blue", "black", "white", "pink", "gold", "grey"]
WORDS = COLORS + ["say", "the", "color", "please", "now", "twice", "user", "assistant", "system", "User",
                  "Assistant", ":", "hello", "hi", "a", "b", "c", "d", "e", "f", "g", "h", "one", "two"]
# SmolLM2-like: turns between <|im_start|> and <|im_end|>; no {% generation %} markers
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def make_tokenizer(chat_template: bool = True):
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    tok.add_special_tokens([AddedToken(t, special=True) for t in SPECIALS])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", model_max_length=256)
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def make_model(vocab_size: int, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def save_tiny_lm(folder: Path, chat_template: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer(chat_template)
    tokenizer.save_pretrained(folder)
    make_model(len(tokenizer)).save_pretrained(folder)
    return folder


def instruction_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        color = rng.choice(COLORS)
        twice = i % 2 == 0
        rows.append({"prompt": f"say the color {color}" + (" twice" if twice else "") + f" {'abcdefgh'[i % 8]}",
                     "response": f"{color} {color}" if twice else color})
    return rows


def chat_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.choice(COLORS), rng.choice(COLORS)
        rows.append({"messages": [{"role": "user", "content": f"say the color {a}"},
                                  {"role": "assistant", "content": a},
                                  {"role": "user", "content": f"now say {b} twice {'abcdefgh'[i % 8]}"},
                                  {"role": "assistant", "content": f"{b} {b}"}]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
