"""Freeze parts of a model before training: embeddings, the first N layers, or a regex.

Names follow the Hugging Face conventions (`...embeddings...`, `embed_tokens`, `wte`/`wpe`;
layers numbered as `layer.N`, `layers.N`, `h.N` or `block.N`), which covers BERT-, Llama-,
GPT-2- and T5-style models.
"""

from __future__ import annotations

import re

from tunekit.errors import TunekitError
from tunekit.recipe.schema import FreezeConfig

EMBEDDING = re.compile(r"(^|\.)(embeddings|embed_tokens|embed_positions|wte|wpe)(\.|$)")
LAYER = re.compile(r"(^|\.)(layer|layers|h|block)\.(\d+)\.")


def apply_freeze(model, cfg: FreezeConfig) -> tuple[int, int]:
    """Set requires_grad=False where the config says; return (trainable, total) parameter counts."""
    named = list(model.named_parameters())
    rules = []
    if cfg.embeddings:
        rules.append(("train.freeze.embeddings", lambda n: bool(EMBEDDING.search(n))))
    if cfg.layers:
        found = {int(m.group(3)) for n, _ in named if (m := LAYER.search(n))}
        if not found:
            raise TunekitError("train.freeze.layers is set, but this model has no numbered layers",
                               "freeze by name instead with train.freeze.pattern")
        if cfg.layers > len(found):
            raise TunekitError(f"train.freeze.layers={cfg.layers}, but the model has {len(found)} layers",
                               f"choose at most {len(found)}")
        rules.append(("train.freeze.layers",
                      lambda n: bool((m := LAYER.search(n)) and int(m.group(3)) < cfg.layers)))
    if cfg.pattern:
        pattern = re.compile(cfg.pattern)
        rules.append(("train.freeze.pattern", lambda n: bool(pattern.search(n))))
    for key, matches in rules:
        hits = [p for n, p in named if matches(n)]
        if not hits:
            raise TunekitError(f"{key} matches no parameter of this model",
                               "check the setting against the model's parameter names")
        for param in hits:
            param.requires_grad_(False)
    total = sum(p.numel() for _, p in named)
    trainable = sum(p.numel() for _, p in named if p.requires_grad)
    if rules and trainable == 0:
        raise TunekitError("train.freeze leaves no parameter to train", "freeze fewer layers or parameters")
    return trainable, total
