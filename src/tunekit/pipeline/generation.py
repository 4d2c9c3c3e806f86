"""Generation shared by the generative tasks (summarization, translation, causal_lm).

* `generation_config` turns the recipe's eval.generation into a transformers GenerationConfig
  with every length setting explicit (never transformers' silent 20-token default).
* `generate` runs batched and sorted by length (little padding), left-padded for decoder-only
  models (their next token follows the last real one), and says which outputs hit the cap.
* `join_prompt_target` builds a decoder-only training example whose loss covers the target
  (response, summary, translation) only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from tunekit.recipe.schema import GenerationConfig

IGNORE_INDEX = -100  # label value the loss skips


@dataclass
class Generated:
    texts: list[str]        # decoded new tokens, special tokens removed, in input order
    lengths: list[int]      # new tokens per output (up to and including the end token)
    capped: list[bool]      # True where generation stopped at max_new_tokens, not at the end token


def is_encoder_decoder(model_or_config) -> bool:
    config = getattr(model_or_config, "config", model_or_config)
    return bool(getattr(config, "is_encoder_decoder", False))


def generation_config(cfg: GenerationConfig, tokenizer, model):
    """The recipe's settings plus the token ids the model needs to start, pad and stop."""
    from transformers import GenerationConfig as HFGenerationConfig

    if cfg.max_new_tokens is None:
        raise ValueError("eval.generation.max_new_tokens is required")  # the recipe schema checks it first
    base = getattr(model, "generation_config", None)
    eos = _first_set(getattr(base, "eos_token_id", None), tokenizer.eos_token_id, tokenizer.sep_token_id)
    pad = _first_set(tokenizer.pad_token_id, getattr(base, "pad_token_id", None), eos)
    settings = dict(
        max_new_tokens=cfg.max_new_tokens, min_new_tokens=cfg.min_new_tokens or None, num_beams=cfg.num_beams,
        length_penalty=cfg.length_penalty, no_repeat_ngram_size=cfg.no_repeat_ngram_size,
        repetition_penalty=cfg.repetition_penalty, do_sample=cfg.do_sample,
        eos_token_id=eos, pad_token_id=pad,
    )
    if cfg.do_sample:
        settings.update(temperature=cfg.temperature, top_p=cfg.top_p)
    start = getattr(base, "decoder_start_token_id", None) or getattr(model.config, "decoder_start_token_id", None)
    if is_encoder_decoder(model) and start is not None:
        settings["decoder_start_token_id"] = start
    return HFGenerationConfig(**settings)


def generate(model, tokenizer, inputs: Sequence[Sequence[int]], cfg: GenerationConfig, seed: int = 0) -> Generated:
    """Generate for each list of input ids (a source, or a prompt for decoder-only models)."""
    import torch

    gen_config = generation_config(cfg, tokenizer, model)
    device = next(model.parameters()).device
    model.eval()
    decoder_only = not is_encoder_decoder(model)
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    texts: list[str] = [""] * len(inputs)
    lengths = [0] * len(inputs)
    capped = [False] * len(inputs)
    torch.manual_seed(seed)  # sampling, when asked for, repeats run to run
    for first in range(0, len(order), cfg.batch_size):
        idx = order[first:first + cfg.batch_size]
        batch = _pad([list(inputs[i]) for i in idx], gen_config.pad_token_id, left=decoder_only)
        with torch.no_grad():
            out = model.generate(**{k: v.to(device) for k, v in batch.items()}, generation_config=gen_config)
        new = out[:, batch["input_ids"].shape[1]:] if decoder_only else out[:, 1:]  # drop prompt / start token
        for row, i in zip(new.tolist(), idx):
            n, hit_cap = _new_length(row, gen_config.eos_token_id, gen_config.pad_token_id, cfg.max_new_tokens)
            lengths[i], capped[i] = n, hit_cap
            texts[i] = tokenizer.decode(row[:n], skip_special_tokens=True).strip()
    return Generated(texts, lengths, capped)


def join_prompt_target(prompt_ids: Sequence[int], target_ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """Decoder-only example: input = prompt + target; labels mask the prompt so the loss (and the
    gradient) comes from the target tokens alone. The caller appends the end token to the target."""
    input_ids = list(prompt_ids) + list(target_ids)
    labels = [IGNORE_INDEX] * len(prompt_ids) + list(target_ids)
    return input_ids, labels


def _pad(rows: list[list[int]], pad_id: int, left: bool) -> dict:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[j, span] = torch.tensor(row, dtype=torch.long)
        mask[j, span] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _new_length(row: list[int], eos, pad, cap: int) -> tuple[int, bool]:
    """Tokens up to and including the first end token; whether the cap stopped it instead."""
    stops = set(eos if isinstance(eos, (list, tuple)) else [eos])
    for n, token in enumerate(row):
        if token in stops:
            return n + 1, False
    while row and row[-1] == pad and pad not in stops:  # padding after a shorter beam/batch mate
        row = row[:-1]
    return len(row), len(row) >= cap


def _first_set(*values):
    for value in values:
        if value is not None:
            return value
    return None
