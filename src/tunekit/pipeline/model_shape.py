"""What the memory estimate needs to know about a built model, read from it once.

`read_shape` takes config fields under their BERT, GPT-2, Llama and T5 names and traces one
short forward pass to see which Linear layers of a layer keep their input (trainable ones
only: a frozen Linear needs no input to pass a gradient back) and which dropouts run.
`read_params` counts parameters as the run will train them (after freezing and PEFT).
torch is imported inside the functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from tunekit.errors import TunekitError


@dataclass(frozen=True)
class ModelShape:
    """What the activation formula needs, read from the model's config and its modules."""
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    causal_lm: bool = False
    gated_mlp: bool = False
    fused_qkv: bool = False
    python_norm: bool = False  # a norm written in Python keeps input and normalised output
    embedding_norms: int = 1  # BERT's embedding LayerNorm
    final_norms: int = 0  # a pre-norm model's last norm
    dropout: bool = True  # hidden dropout > 0 (masks kept for backward)
    attention_dropout: bool = True
    attention: str = "sdpa"  # config._attn_implementation
    # Traced per layer (None: a standard block with every Linear trained): input features of
    # trainable Linear layers as (distinct tensors, one per layer), and dropout-masked features.
    linear_inputs: Optional[tuple[int, int]] = None
    mask_features: Optional[int] = None
    lora_targets: int = 3  # modules tunekit's default LoRA adapts, for the what-if


@dataclass(frozen=True)
class ParamCounts:
    total: int
    trainable: int
    weight_bytes: int  # the parameters as stored
    matmul: int  # floating-point Linear weights: autocast makes a 16-bit copy of each
    grad_layers: int  # layers that keep activations for backward
    head: int = 0  # task-head parameters, trained under LoRA too
    embeddings_trained: bool = True


def _config_value(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def read_shape(model: Any) -> ModelShape:
    """Config fields under their BERT, GPT-2, Llama and T5 names, plus a trace of the last layer."""
    import torch

    from tunekit.pipeline.freezing import LAYER

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT wrapper
    config = base.config
    hidden = _config_value(config, "hidden_size", "n_embd", "d_model")
    layers = _config_value(config, "num_hidden_layers", "n_layer", "num_layers")
    heads = _config_value(config, "num_attention_heads", "n_head", "num_heads")
    if hidden is None or layers is None or heads is None:
        raise TunekitError(f"cannot read the size of a {type(base).__name__} from its config",
                           "--dry-run knows transformer configs (hidden_size, num_hidden_layers, num_attention_heads)")
    if getattr(config, "is_encoder_decoder", False):  # T5-like: count both stacks
        layers += _config_value(config, "num_decoder_layers", default=0)
    dropout = _config_value(config, "hidden_dropout_prob", "resid_pdrop", "hidden_dropout", "dropout_rate",
                            "dropout", default=0.0)
    attention_dropout = _config_value(config, "attention_probs_dropout_prob", "attn_pdrop", "attention_dropout",
                                      "dropout_rate", default=0.0)
    modules = list(base.named_modules())
    names = [name for name, _ in modules]
    outside = [name for name, m in modules if "Norm" in type(m).__name__ and not LAYER.search(name + ".")]
    from tunekit.pipeline.adapters import LORA_TARGETS

    return ModelShape(
        hidden=hidden, layers=layers, heads=heads,
        intermediate=_config_value(config, "intermediate_size", "n_inner", "d_ff", "ffn_dim", default=4 * hidden),
        vocab=_config_value(config, "vocab_size", default=0),
        causal_lm=type(base).__name__.endswith("ForCausalLM"),
        gated_mlp=any(n.endswith(("gate_proj", "wi_0", "gate_up_proj")) for n in names),
        fused_qkv=any(n.endswith(("c_attn", "query_key_value", "qkv_proj", "Wqkv")) for n in names),
        python_norm=any("Norm" in type(m).__name__ and not isinstance(m, torch.nn.LayerNorm) for _, m in modules),
        embedding_norms=sum("embed" in name for name in outside),
        final_norms=sum("embed" not in name for name in outside),
        dropout=float(dropout) > 0, attention_dropout=float(attention_dropout) > 0,
        attention=getattr(config, "_attn_implementation", None) or "eager",
        **_trace_last_layer(model, config),
        lora_targets=len(LORA_TARGETS.get(getattr(config, "model_type", ""), ("q", "v"))),
    )


def _trace_last_layer(model: Any, config: Any) -> dict:
    """Run 8 tokens through the model and see, in its last layer, which trainable Linear layers
    get which input tensor and which dropouts run: the activations the formula cannot know
    from the config alone (PEFT branches, frozen projections, fused or shared inputs)."""
    import torch

    from tunekit.pipeline.freezing import LAYER

    found = [(int(m.group(3)), name[:m.end()]) for name, _ in model.named_modules() if (m := LAYER.search(name + "."))]
    if not found:
        return {}
    prefix = max(found)[1]
    inputs: dict[int, tuple] = {}
    calls: list[int] = []
    masks: list[int] = []

    def linear(module, args):
        calls.append(args[0].shape[-1])
        # In fp32, layers fed the same tensor share it. Holding each input keeps its id unique
        # (under no_grad a freed tensor's id and memory are soon reused).
        inputs[id(args[0])] = (args[0], args[0].shape[-1])

    def dropout(module, args):
        if args[0].dim() == 3:  # (batch, tokens, features); attention-probability dropout is s*s
            masks.append(args[0].shape[-1])

    hooks = []
    for name, module in model.named_modules():
        if not name.startswith(prefix):
            continue
        weight = getattr(module, "weight", None)
        if (isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D") and weight.requires_grad:
            hooks.append(module.register_forward_pre_hook(linear))
        elif isinstance(module, torch.nn.Dropout) and module.p > 0:
            hooks.append(module.register_forward_pre_hook(dropout))
    device = next(model.parameters()).device
    ids = torch.full((1, 8), min(5, config.vocab_size - 1), dtype=torch.long, device=device)
    extra = {"decoder_input_ids": ids} if getattr(config, "is_encoder_decoder", False) else {}
    training = model.training
    try:
        model.train()
        with torch.no_grad():
            model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra)
    except Exception:  # an architecture this call does not fit: fall back to the standard block
        return {}
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    return {"linear_inputs": (sum(n for _, n in inputs.values()), sum(calls)), "mask_features": sum(masks)}


def read_params(model: Any, layers: int) -> ParamCounts:
    import torch

    from tunekit.pipeline.freezing import EMBEDDING, LAYER

    total = trainable = weight_bytes = head = 0
    trained_layers: list[int] = []
    embeddings_trained = False
    for name, p in model.named_parameters():  # shared (tied) parameters come once
        count, nbytes = p.numel(), p.numel() * p.element_size()
        if type(p).__name__ == "Params4bit":  # bitsandbytes packs two 4-bit weights per byte
            count *= 2
            nbytes += count // 64 * 4  # one fp32 absmax per block of 64
        total += count
        weight_bytes += nbytes
        if re.search(r"(^|\.)(classifier|score|qa_outputs)(\.|$)", name):
            head += count
        if p.requires_grad:
            trainable += count
            embeddings_trained |= bool(EMBEDDING.search(name))
            if found := LAYER.search(name):
                trained_layers.append(int(found.group(3)))
    linear = {id(m.weight): m.weight.numel() for m in model.modules()
              if (isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D")
              and isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.is_floating_point()}
    first = 0 if embeddings_trained else min(trained_layers, default=layers)
    return ParamCounts(total, trainable, weight_bytes, sum(linear.values()), layers - first, head, embeddings_trained)
