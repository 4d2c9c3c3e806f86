"""PEFT adapters from the recipe's `train.peft`: lora, dora, qlora, ia3, prefix and prompt tuning.

Four jobs, in run order: wrap the task model before training (`apply_adapters`, with
`quantization_kwargs` for qlora's 4-bit base), save only the adapter plus what it takes to
load it again (`save_trained`), load a saved model whether it is full weights or an adapter
(`load_model`), and fold an adapter into full weights (`merge_adapter`).

An adapter folder (<run>/model) holds peft's adapter_config.json + adapter_model.safetensors
(adapter weights and the task head), the run's config.json (so id2label is known without the
base), the tokenizer, and tunekit_adapter.json with the recipe's base model reference, which
is resolved again at load time (a pkg:// or Hub path may differ on another machine).
peft is imported inside functions: `tunekit --help` must not pay for it.
"""

from __future__ import annotations

import copy
import os
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from tunekit.errors import ModelError, RunDirError, TunekitError
from tunekit.model_info import local_path, portable_ref
from tunekit.recipe.schema import PeftConfig, TrainConfig
from tunekit.runs import atomic_dir, read_json, write_json
from tunekit.sources import PKG_SCHEME, resolve_model

ADAPTER_CONFIG = "adapter_config.json"
TUNEKIT_ADAPTER = "tunekit_adapter.json"

_BERT_LIKE = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "ernie", "data2vec-text")
_LLAMA_LIKE = ("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "olmo", "olmo2", "granite")

# lora/dora/qlora targets by config.model_type: the attention projections. They give most of
# LoRA's gain for a small adapter; adding the MLP about triples its size for little gain on
# classification (set train.peft.target_modules to include it).
LORA_TARGETS: dict[str, list[str]] = {
    **{t: ["query", "key", "value"] for t in _BERT_LIKE},
    **{t: ["q_proj", "k_proj", "v_proj", "o_proj"] for t in _LLAMA_LIKE},
    "distilbert": ["q_lin", "k_lin", "v_lin"],
    "deberta-v2": ["query_proj", "key_proj", "value_proj"],
    "modernbert": ["Wqkv"],
    "phi3": ["qkv_proj", "o_proj"],
    "gpt2": ["c_attn"],  # q, k and v in one fused Conv1D
    "gpt_neox": ["query_key_value"],
    "t5": ["q", "v"],
    "mt5": ["q", "v"],
}

# ia3 (targets, feedforward targets): IA3 scales keys, values and the feed-forward output; a
# feed-forward module is scaled on its input, the others on their output (peft's defaults).
IA3_TARGETS: dict[str, tuple[list[str], list[str]]] = {
    **{t: (["key", "value", "output.dense"], ["output.dense"]) for t in _BERT_LIKE},
    **{t: (["k_proj", "v_proj", "down_proj"], ["down_proj"]) for t in _LLAMA_LIKE},
    "distilbert": (["k_lin", "v_lin", "lin2"], ["lin2"]),
    "gpt2": (["c_attn", "mlp.c_proj"], ["mlp.c_proj"]),
    "t5": (["k", "v", "wo"], ["wo"]),
}

ATTENTION = re.compile(r"attn|attention", re.IGNORECASE)
# peft names of the methods whose adapter is extra input tokens, not a change of weights.
PROMPT_LEARNING = ("PREFIX_TUNING", "PROMPT_TUNING")
# peft task type -> the transformers class that loads the base model of such an adapter.
AUTO_CLASSES = {"SEQ_CLS": "AutoModelForSequenceClassification", "TOKEN_CLS": "AutoModelForTokenClassification",
                "QUESTION_ANS": "AutoModelForQuestionAnswering",
                "CAUSAL_LM": "AutoModelForCausalLM", "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM"}


# ---- build --------------------------------------------------------------------------------------

def quantization_kwargs(cfg: Optional[PeftConfig]) -> dict:
    """Extra from_pretrained arguments for the base model: 4-bit NF4 weights for qlora, else none."""
    if cfg is None or cfg.method != "qlora":
        return {}
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise TunekitError("train.peft.method qlora needs a CUDA GPU (4-bit weights via bitsandbytes); "
                           "this machine has none", "use method: lora on the CPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TunekitError("train.peft.method qlora needs bitsandbytes, which is not installed",
                           "pip install bitsandbytes, or use method: lora")
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16  # no bf16 before Ampere
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=compute)
    # 4-bit weights are quantized on the GPU that runs them: this process's (one per GPU when launched).
    return {"quantization_config": quant, "device_map": {"": int(os.environ.get("LOCAL_RANK", "0"))}}


def apply_adapters(model, train: TrainConfig, tokenizer=None, task_type: str = "SEQ_CLS") -> tuple[Any, int, int]:
    """Wrap `model` in the adapter train.peft names; return (peft model, trainable, total)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    cfg = train.peft
    if cfg.method == "qlora":
        # Casts norms and the head to fp32 and freezes the 4-bit weights before LoRA goes on top.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=train.gradient_checkpointing)
    if cfg.method == "prefix":
        _check_prefix_support(model)
    config = peft_config(model, cfg, task_type)
    try:
        with _quiet_peft():
            wrapped = get_peft_model(model, config)
    except ValueError as exc:  # peft's word for a setting that does not fit this model
        message = str(exc).splitlines()[0]
        hint = (f"set train.peft.target_modules to layers of this model: {', '.join(linear_names(model))}"
                if "target" in message.lower() else "check train.peft against this model, or try method: lora")
        raise TunekitError(f"train.peft: {message}", hint) from None
    if train.gradient_checkpointing:
        # Checkpointed blocks whose inputs need no grad would pass none back to the adapters inside
        # them: the frozen embeddings' output must require grad.
        wrapped.enable_input_require_grads()
    if cfg.method == "prompt" and tokenizer is not None and _pools_last_token(model):
        # Decoder classifiers pool the last non-pad token, found from input_ids; with prompt
        # tuning they get embeddings instead and take the last position: pad on the left.
        tokenizer.padding_side = "left"
    trainable, total = parameter_counts(wrapped)
    return wrapped, trainable, total


def peft_config(model, cfg: PeftConfig, task_type: str = "SEQ_CLS"):
    """The peft config object for this model and train.peft section."""
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig

    if cfg.modules_to_save is not None:
        names = [n for n, _ in model.named_modules()]
        for wanted in cfg.modules_to_save:
            if not any(n.endswith(wanted) for n in names):  # peft's own rule; it skips a miss silently
                raise TunekitError(f"train.peft.modules_to_save names {wanted!r}, which matches no module of "
                                   f"{type(model).__name__}", f"its top-level modules: "
                                   f"{', '.join(n for n, _ in model.named_children())}")
    to_save = list(cfg.modules_to_save) if cfg.modules_to_save is not None else default_modules_to_save(model, task_type)
    common = {"task_type": task_type, "modules_to_save": to_save}  # a new list: peft extends it in place
    if cfg.method in ("lora", "dora", "qlora"):
        targets = cfg.target_modules or choose_targets(model, "lora")
        return LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(targets),
                          use_dora=cfg.method == "dora", fan_in_fan_out=_targets_conv1d(model, targets), **common)
    if cfg.method == "ia3":
        if cfg.target_modules:
            targets, feedforward = list(cfg.target_modules), list(cfg.feedforward_modules or [])
        else:
            targets, feedforward = choose_ia3_targets(model)
        return IA3Config(target_modules=targets, feedforward_modules=feedforward,
                         fan_in_fan_out=_targets_conv1d(model, targets), **common)
    if cfg.method == "prefix":
        return PrefixTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens, **common)
    return PromptTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens, **common)


def choose_targets(model, method: str = "lora") -> list[str]:
    """Layer names to adapt: the table entry for the model type, else its attention-only layers."""
    model_type = getattr(model.config, "model_type", "")
    if method == "lora" and model_type in LORA_TARGETS:
        return list(LORA_TARGETS[model_type])
    found = attention_layers(model)
    if not found:
        raise TunekitError(f"cannot choose train.peft.target_modules for model type {model_type or 'unknown'}: "
                           "no attention layers found",
                           f"name the layers to adapt in train.peft.target_modules; its linear layers are: "
                           f"{', '.join(linear_names(model)) or 'none'}")
    return found


def choose_ia3_targets(model) -> tuple[list[str], list[str]]:
    model_type = getattr(model.config, "model_type", "")
    if model_type in IA3_TARGETS:
        targets, feedforward = IA3_TARGETS[model_type]
        return list(targets), list(feedforward)
    return choose_targets(model, "ia3"), []  # unknown architecture: scale the attention outputs only


def attention_layers(model) -> list[str]:
    """Names of linear layers found only inside attention blocks (query/key/value-like).

    A name also used outside attention (BERT's `dense`, GPT-2's `c_proj`) is left out, since
    peft matches names as suffixes and would adapt the feed-forward layers too."""
    head = set(_head_names(model))
    inside, outside = set(), set()
    for name, module in model.named_modules():
        if not _is_linear(module) or name.split(".")[0] in head:
            continue
        parent, _, leaf = name.rpartition(".")
        (inside if ATTENTION.search(parent) else outside).add(leaf)
    return sorted(inside - outside)


def linear_names(model) -> list[str]:
    return sorted({name.rpartition(".")[2] for name, m in model.named_modules() if _is_linear(m)})


def head_modules(model) -> list[str]:
    """The task head: the top-level modules beside the pretrained body that hold weights
    (BERT's `classifier`, GPT-2's and Llama's `score`, DistilBERT's `pre_classifier` too)."""
    names = _head_names(model)
    if sum(p.numel() for n in names for p in getattr(model, n).parameters()) * 2 > _numel(model):
        # most of the weights: the body was not recognised, and training it in full defeats PEFT
        raise TunekitError(f"cannot tell the task head of {type(model).__name__} from its body",
                           "name the head in train.peft.modules_to_save")
    return names


def _head_names(model) -> list[str]:
    body = getattr(model, "base_model", None)  # transformers: the child named by base_model_prefix
    return [name for name, child in model.named_children()
            if child is not body and any(True for _ in child.parameters())]


# peft task types whose head is the pretrained language-model head, not a new one
LM_TASK_TYPES = ("CAUSAL_LM", "SEQ_2_SEQ_LM")


def default_modules_to_save(model, task_type: str = "SEQ_CLS") -> list[str]:
    """The head, plus any layer the checkpoint did not provide (a BERT saved without its pooler).

    Such a layer starts random and stays frozen under an adapter; unsaved, it would be drawn
    again, differently, each time the adapter is loaded. transformers 5 flags every tensor it
    loads with `_is_hf_initialized`; a model with no flags at all was not loaded, so has none.
    A language model's head is pretrained (on SmolLM2 it is tied to the 28M-weight embeddings):
    nothing is trained in full beside its adapter."""
    if task_type in LM_TASK_TYPES:
        return []
    head = head_modules(model)
    named = list(model.named_parameters())
    if getattr(model, "is_quantized", False) or not any(getattr(p, "_is_hf_initialized", False) for _, p in named):
        return head  # quantized tensors are made anew, so their flags say nothing
    fresh = [(n, p) for n, p in named if not getattr(p, "_is_hf_initialized", False) and n.split(".")[0] not in head]
    if sum(p.numel() for _, p in fresh) * 2 > _numel(model):
        return head  # most of the body "fresh" means the flags are not what they seem: trust the head only
    return head + sorted({n.rpartition(".")[0] for n, _ in fresh})


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) of a peft model, counting each weight once and 4-bit weights unpacked."""
    trainable = total = 0
    for name, param in model.named_parameters():
        n = param.numel()
        if type(param).__name__ == "Params4bit":  # two 4-bit values per byte of storage
            n *= 2 * getattr(getattr(param, "quant_storage", None), "itemsize", 1)
        if ".original_module." not in name:  # modules_to_save keeps the head's pretrained copy too
            total += n
        if param.requires_grad:
            trainable += n
    return trainable, total


def _check_prefix_support(model) -> None:
    """Prefix tuning feeds trained keys and values through `past_key_values`; peft refuses a model
    whose forward (or its body's) takes none, and only at the first step. Say so before training."""
    import inspect

    import transformers

    for module in (model, getattr(model, "base_model", model)):
        if "past_key_values" in inspect.signature(module.forward).parameters:
            return
    raise TunekitError(f"train.peft.method prefix does not work with {type(model).__name__}: its forward takes "
                       f"no past_key_values in transformers {transformers.__version__}",
                       "use method: prompt (trained virtual tokens on the input) or method: lora")


def _pools_last_token(model) -> bool:
    return hasattr(model, "score") and not getattr(model.config, "is_encoder_decoder", False)


def _is_linear(module) -> bool:
    import torch

    # transformers' Conv1D (GPT-2) is a linear layer with its weight transposed.
    return isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"


def _targets_conv1d(model, targets: Sequence[str]) -> bool:
    """peft needs fan_in_fan_out=True for Conv1D targets (it warns and sets it otherwise)."""
    return any(type(m).__name__ == "Conv1D" and any(n == t or n.endswith("." + t) for t in targets)
               for n, m in model.named_modules())


@contextmanager
def _quiet_peft() -> Iterator[None]:
    """peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing` on every wrap: a
    FutureWarning the user can do nothing about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ---- save ---------------------------------------------------------------------------------------

def save_trained(trainer, out: Path, base_ref: str) -> None:
    """Write the trained model into `out`: full weights, or for an adapter only its weights (with the
    head), plus the run's config.json and tunekit_adapter.json that name labels and base model."""
    from peft import PeftModel

    trainer.save_model(str(out))
    model = trainer.model
    if not isinstance(model, PeftModel) or not trainer.args.should_save:
        return
    base = model.get_base_model()
    config = copy.deepcopy(base.config)
    config.architectures = [type(base).__name__]
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # labels and shapes only: loading chooses 4-bit or not itself
    config.save_pretrained(str(out))
    # the base as the loader finds it again: pkg:// and Hub ids as written (they resolve per machine),
    # a local folder relative to this one, never an absolute path (DESIGN 5b); peft's own record too
    ref = portable_ref(base_ref, out)
    write_json(out / TUNEKIT_ADAPTER, {"base_model": ref,
                                       "peft_type": str(model.active_peft_config.peft_type.value),
                                       "quantized": bool(getattr(base, "is_loaded_in_4bit", False))})
    adapter_config = read_json(out / ADAPTER_CONFIG)
    if adapter_config.get("base_model_name_or_path") is not None:
        write_json(out / ADAPTER_CONFIG, {**adapter_config, "base_model_name_or_path": ref})
    (out / "README.md").unlink(missing_ok=True)  # peft's placeholder model card


# ---- load and merge -----------------------------------------------------------------------------

def is_adapter_dir(path: Path | str) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def require_adapter(model_dir: Path) -> None:
    if not is_adapter_dir(model_dir):
        raise TunekitError(f"{model_dir} holds full weights: there is no adapter to merge",
                           "use that folder as it is; merging is for runs trained with train.peft")


def load_model(model_path: str, auto_class=None, quantize: bool = True):
    """A saved model, ready for inference: full weights as they are, or an adapter on its base.

    auto_class: the transformers class for full weights (default: the one the adapter's task
    type names). quantize=False loads a qlora adapter's base in full precision (as merging needs).
    A folder transformers cannot read is a ModelError."""
    try:
        return _load_model(Path(model_path), auto_class, quantize)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a model from {model_path}: {str(exc).splitlines()[0]}",
                         "point at a folder written by tunekit finetune (<run>/model)") from None


def _load_model(path: Path, auto_class, quantize: bool):
    if not is_adapter_dir(path):
        if auto_class is None:
            raise ModelError(f"{path} holds no PEFT adapter", "point at a folder with adapter_config.json")
        return auto_class.from_pretrained(str(path))
    import torch
    from peft import PeftModel
    from transformers import AutoConfig

    meta = _read_meta(path)
    auto_class = auto_class or _auto_class(meta["adapter"].get("task_type"))
    base = base_model_path(path)
    kwargs = {}
    if quantize and meta["tunekit"].get("quantized") and torch.cuda.is_available():
        kwargs = quantization_kwargs(PeftConfig(method="qlora"))  # evaluate on the weights it trained with
    config = AutoConfig.from_pretrained(str(path))  # the run's labels, not the base model's
    model = auto_class.from_pretrained(base, config=config, dtype=torch.float32,
                                       ignore_mismatched_sizes=True, **kwargs)
    with _quiet_peft():
        return PeftModel.from_pretrained(model, str(path))


def base_model_path(model_dir: Path) -> str:
    """The adapter's base model as a local folder: the recipe's reference resolved on this
    machine, else the folder peft recorded at training time, if it is still there."""
    meta = _read_meta(model_dir)
    ref = meta["tunekit"].get("base_model")
    recorded = meta["adapter"].get("base_model_name_or_path")
    problem = None
    if ref:
        try:  # a local folder is written relative to the adapter's folder
            return resolve_model(str(local_path(ref, model_dir) or ref))
        except ModelError as exc:
            problem = exc
    recorded = str(local_path(recorded, model_dir) or recorded) if recorded else None
    if recorded and Path(recorded).is_dir():
        return recorded
    resolved = Path(model_dir).parent / "recipe.resolved.yaml"  # <run>/model: the run's recipe names it
    name = _recipe_model(resolved) if Path(model_dir).name == "model" and resolved.is_file() else None
    if name and not name.startswith(PKG_SCHEME) and Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    raise ModelError(f"cannot find the base model of the adapter in {model_dir}: "
                     f"{problem.message if problem else repr(recorded or ref)}",
                     (problem.hint + "; " if problem and problem.hint else "")
                     + "an adapter needs its base model: install or download it")


def merge_adapter(model_dir: Path, out_dir: Path, overwrite: bool = False) -> Path:
    """Fold the adapter in `model_dir` into its base weights; write a plain model folder
    (safetensors + config + tokenizer) to `out_dir` atomically. A qlora adapter is merged into
    the full-precision base (4-bit weights cannot hold the sum)."""
    from tunekit.pipeline.tokenization import load_tokenizer

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    require_adapter(model_dir)
    if out_dir.exists() and not overwrite:
        raise RunDirError(f"{out_dir} already exists", "pass --overwrite to replace it, or choose another with --out")
    peft_type = _read_meta(model_dir)["adapter"].get("peft_type")
    if peft_type in PROMPT_LEARNING:
        raise TunekitError(f"a {peft_type.lower().replace('_', ' ')} adapter cannot be merged: its trained "
                           "virtual tokens are extra inputs, not a change of weights",
                           "use the adapter folder as it is (tunekit eval loads it)")
    tokenizer = load_tokenizer(str(model_dir))
    merged = load_model(str(model_dir), quantize=False).merge_and_unload()
    with atomic_dir(out_dir) as tmp:
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    return out_dir


def _recipe_model(path: Path) -> Optional[str]:
    import yaml

    try:
        model = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("model") or {}
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return None
    return model.get("name") if isinstance(model, dict) and isinstance(model.get("name"), str) else None


def _read_meta(model_dir: Path) -> dict:
    try:
        adapter = read_json(Path(model_dir) / ADAPTER_CONFIG)
        tunekit_file = Path(model_dir) / TUNEKIT_ADAPTER
        tunekit = read_json(tunekit_file) if tunekit_file.is_file() else {}  # adapters made without tunekit
    except ValueError as exc:
        raise ModelError(f"{model_dir}: unreadable adapter files ({exc})",
                         "train the run again, or restore its model folder") from None
    return {"adapter": adapter, "tunekit": tunekit}


def _auto_class(task_type: Optional[str]):
    import transformers

    if task_type not in AUTO_CLASSES:
        raise ModelError(f"the adapter's task type {task_type!r} is not one tunekit can load",
                         f"tunekit loads adapters of task types: {', '.join(AUTO_CLASSES)}")
    return getattr(transformers, AUTO_CLASSES[task_type])
