"""The model a task trains: pretrained weights (model.init: weights) or new random weights built
from a config (model.init: config), the path for a domain model trained from scratch.

Every task's build_model calls `build` instead of `AutoModelFor...from_pretrained` directly, so
the two kinds of start are decided in one place:

* weights: exactly `auto_class.from_pretrained(path, **config_values, **load_kwargs)`.
* config: the config of model.name (a model folder's config.json, or an architecture name such
  as `llama` or `bert`), updated with model.config, with the vocabulary size and the special
  token ids taken from the tokenizer (a trained tokenizer's ids are the only ones that mean
  anything to a new model), then `auto_class.from_config`. The caller seeds first (set_seed), so
  the random weights are reproducible.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Optional

from tunekit.errors import ModelError, RecipeError

def is_architecture_name(ref: str) -> bool:
    """`llama`, `bert`, `t5`...: a transformers model type rather than a folder or a Hub id."""
    from transformers import CONFIG_MAPPING

    return "/" not in ref and not Path(ref).expanduser().exists() and ref in CONFIG_MAPPING


def model_source(recipe) -> str:
    """model.name as something `build` can start from: a local folder (resolved as for any model
    reference), or, for init: config, an architecture name kept as it is (resolving `llama` would
    look for it on the Hub)."""
    from tunekit.sources import resolve_model

    name = recipe.model.name
    if recipe.model.init == "config" and is_architecture_name(name):
        return name
    return resolve_model(name)


def base_config(source: str, values: Optional[dict] = None, extra: Optional[dict] = None):
    """The config model.name describes (no weights read), with `values` (model.config) and
    `extra` (the task's, e.g. a head's labels) set: a folder's config.json, or an architecture's
    defaults. Unknown model.config keys are refused, not silently kept."""
    from transformers import AutoConfig

    values = dict(values or {})
    try:
        if is_architecture_name(source):
            base = AutoConfig.for_model(source)
        else:
            base = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read a model config from {source}: {str(exc).splitlines()[0]}",
                         "set model.name to a folder with config.json, or an architecture name such as "
                         "llama, bert, gpt2 or t5") from None
    _check_keys(base, values)
    if is_architecture_name(source):  # the defaults, derived values (head size...) computed from the new sizes
        return AutoConfig.for_model(source, **values, **(extra or {}))
    settings = base.to_dict()
    # Values a config derives from others but stores explicitly (Llama's head_dim and
    # num_key_value_heads) would keep the old model's numbers: drop them when they are the
    # derived ones and model.config changes what they derive from (unless it sets them too).
    heads = settings.get("num_attention_heads")
    if "num_attention_heads" in values or "hidden_size" in values:
        if "head_dim" not in values and heads and settings.get("head_dim") == (settings.get("hidden_size") or 0) // heads:
            settings.pop("head_dim", None)
        if "num_key_value_heads" not in values and settings.get("num_key_value_heads") == heads:
            settings.pop("num_key_value_heads", None)
    settings.update(values)
    settings.update(extra or {})
    for key in ("transformers_version", "_name_or_path", "architectures"):
        settings.pop(key, None)
    model_type = settings.pop("model_type", base.model_type)
    return AutoConfig.for_model(model_type, **settings)


def _check_keys(base, values: dict) -> None:
    known = set(base.to_dict()) | set(getattr(base, "attribute_map", {})) | set(type(base)().to_dict())
    unknown = sorted(set(values) - known)
    if not unknown:
        return
    key = unknown[0]
    close = difflib.get_close_matches(key, sorted(known), n=3)
    sizes = [k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                         "max_position_embeddings", "n_embd", "n_layer", "n_head", "d_model", "num_layers")
             if k in known][:5]
    raise RecipeError(f"model.config: {', '.join(unknown)} is not a {base.model_type} config key"
                      + (f" (did you mean {' or '.join(close)}?)" if close else ""),
                      f"use the keys of {type(base).__name__}, e.g. {', '.join(sizes or sorted(known)[:5])}")


def scratch_config(recipe, source: str, tokenizer, values: Optional[dict] = None):
    """The config of a new model: model.config and `values` (e.g. a head's labels) set, the
    vocabulary sized to the tokenizer and the special ids taken from it."""
    config = base_config(source, recipe.model.config, values)
    config.vocab_size = len(tokenizer)
    for role in ("pad", "bos", "eos"):
        token_id = getattr(tokenizer, f"{role}_token_id", None)
        if token_id is not None:
            setattr(config, f"{role}_token_id", token_id)
    if getattr(config, "is_encoder_decoder", False):  # the decoder starts from bos (BART-like), else pad (T5)
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.pad_token_id
        config.decoder_start_token_id = start
    _check_positions(config, recipe)
    return config


def _check_positions(config, recipe) -> None:
    """A new model's position table must hold the longest row tokenize makes."""
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    needed = recipe.tokenize.max_length
    if recipe.task in ("summarization", "translation") and not getattr(config, "is_encoder_decoder", False):
        needed += recipe.tokenize.max_target_length  # decoder-only: prompt and target in one row
    if limit is not None and limit < needed:
        raise RecipeError(f"model.config: the model holds {limit} positions but tokenize makes rows of up to "
                          f"{needed} tokens", f"set model.config.max_position_embeddings to at least {needed}, "
                          "or lower tokenize.max_length")


def build(auto_class, model_path: str, recipe=None, tokenizer=None, config_values: Optional[dict] = None,
          **load_kwargs) -> Any:
    """The model to train. `config_values` are config settings the task adds (a head's labels);
    `load_kwargs` are from_pretrained's loading arguments (dtype, 4-bit quantization...)."""
    config_values = dict(config_values or {})
    if recipe is None or recipe.model.init == "weights":
        if recipe is not None and recipe.tokenize.train_tokenizer is not None:
            raise RecipeError("tokenize.train_tokenizer makes new token ids, which mean nothing to the pretrained "
                              f"weights of {recipe.model.name}",
                              "add model.init: config to train a new model with the trained tokenizer, or remove "
                              "tokenize.train_tokenizer to keep the model's own tokenizer")
        return auto_class.from_pretrained(model_path, **config_values, **load_kwargs)
    if recipe.train.peft is not None:
        raise RecipeError("train.peft trains an adapter on frozen pretrained weights, but model.init: config "
                          "starts from random weights", "remove train.peft (a new model trains every weight)")
    if tokenizer is None:
        raise ModelError("model.init: config needs the tokenizer to size the vocabulary", "")
    if load_kwargs.get("quantization_config") is not None:
        raise RecipeError("4-bit quantization needs pretrained weights", "use model.init: weights")
    config = scratch_config(recipe, model_path, tokenizer, config_values)
    kwargs = {k: v for k, v in load_kwargs.items() if k == "dtype"}
    return auto_class.from_config(config, **kwargs)
