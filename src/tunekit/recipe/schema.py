"""The recipe schema: typed, frozen, and strict (unknown keys are errors).

Field descriptions double as the recipe reference (`tunekit validate --print` shows the
resolved values; the README lists the keys). Key names used by scripts are stable:
`output_dir`, `train.epochs`, `train.max_steps`, `train.batch_size`, `train.lr`, `train.seed`.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Optional, Union

from pydantic import Field, PositiveInt, field_validator, model_validator

from tunekit.recipe.base import Strict
from tunekit.recipe.data_schema import (  # noqa: F401  (re-exported: the recipe schema in one place)
    CleanConfig, Columns, DataConfig, LabelConfig, NearDuplicateConfig, QualityConfig, SourceConfig, SourceList,
    SplitConfig)

__all__ = ["CleanConfig", "Columns", "DataConfig", "LabelConfig", "NearDuplicateConfig", "QualityConfig",
           "SourceConfig", "SourceList", "SplitConfig"]  # the data section, re-exported (no star imports here)


class ModelConfig(Strict):
    name: str = Field(description="Local folder, pkg://<distribution>/<path>, or a Hub id.")
    tokenizer: Optional[str] = Field(None, description="Tokenizer reference; defaults to `name`.")
    decoder: Optional[str] = Field(
        None, description="summarization/translation: warm-start an encoder-decoder from `name` (the encoder) "
        "and this checkpoint (the decoder, given cross-attention), e.g. the same encoder-only model twice."
    )
    init: Literal["weights", "config"] = Field(
        "weights", description="weights: load `name`'s pretrained weights. config: a new model with random "
        "weights from `name`'s config.json (or an architecture name such as llama or bert), resized by "
        "model.config: the path for a domain model trained from scratch."
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="init: config only: config values to set, e.g. {hidden_size: 256, "
        "num_hidden_layers: 4}. The vocabulary size always follows the tokenizer."
    )

    @model_validator(mode="after")
    def _config_needs_init(self):
        if self.config and self.init != "config":
            raise ValueError("model.config sets the size of a model built from its config: add model.init: config")
        return self


class TokenizerTrainingConfig(Strict):
    """Train a new tokenizer on the training split (tokenizers library); saved in <run>/tokenizer."""

    algorithm: Literal["bpe", "byte-bpe", "wordpiece", "unigram"] = Field(
        description="bpe (characters, with an unknown token), byte-bpe (bytes: no unknown tokens, GPT-2 style), "
        "wordpiece (BERT style), or unigram (SentencePiece style)."
    )
    vocab_size: int = Field(description="Vocabulary size, special tokens included.", gt=0)
    min_frequency: int = Field(2, ge=1, description="bpe, byte-bpe, wordpiece: how often a pair must occur to merge.")
    lowercase: bool = Field(False, description="Lowercase texts before tokenizing (and when training).")


class TokenizeConfig(Strict):
    train_tokenizer: Optional[TokenizerTrainingConfig] = Field(
        None, description="Train a tokenizer on the training split and use it instead of the model's "
        "(also: tokenize --train-tokenizer ALGORITHM --vocab-size N)."
    )
    max_length: int = Field(128, gt=1, description="Maximum tokens per example.")
    truncation: Literal["truncate", "drop", "error"] = Field(
        "truncate", description="Longer examples are truncated, dropped (counted), or an error."
    )
    stride: int = Field(128, ge=0, description="qa: tokens shared by consecutive windows of a long passage.")
    max_target_length: int = Field(
        128, gt=1, description="summarization/translation: maximum tokens of a target (summary, translation)."
    )
    prefix: str = Field("", description="summarization/translation/causal_lm: text put before each input, "
                        "e.g. 'summarize: ' for a model trained with task prefixes.")
    packing: bool = Field(True, description="causal_lm: pack several examples into each max_length row "
                          "(position ids restart per example, so examples never attend to each other).")
    chat_template: bool = Field(True, description="causal_lm (instruction, chat): render with the tokenizer's "
                                "chat template when it has one.")


class FreezeConfig(Strict):
    embeddings: bool = Field(False, description="Freeze the token and position embeddings.")
    layers: int = Field(0, ge=0, description="Freeze the first N transformer layers.")
    pattern: Optional[str] = Field(None, description="Freeze parameters whose name matches this regex.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern):
        if pattern is not None:
            try:
                re.compile(pattern)
            except (re.error, OverflowError, RecursionError) as exc:
                raise ValueError(f"not a valid regular expression ({exc})") from None
        return pattern


class EarlyStoppingConfig(Strict):
    patience: int = Field(3, gt=0, description="Evaluations without improvement before stopping.")
    threshold: float = Field(0.0, ge=0.0, description="Smallest change of best_metric that counts.")


# The options each PEFT method takes (method is always allowed). Options of another method are
# rejected rather than ignored: `r` on ia3 means the recipe says something tunekit would not do.
PEFT_OPTIONS: dict[str, tuple[str, ...]] = {
    "lora": ("r", "alpha", "dropout", "target_modules", "modules_to_save"),
    "dora": ("r", "alpha", "dropout", "target_modules", "modules_to_save"),
    "qlora": ("r", "alpha", "dropout", "target_modules", "modules_to_save"),
    "ia3": ("target_modules", "feedforward_modules", "modules_to_save"),
    "prefix": ("num_virtual_tokens", "modules_to_save"),
    "prompt": ("num_virtual_tokens", "modules_to_save"),
}
# Defaults filled in for the chosen method only, so `validate --print` shows what will be used.
PEFT_DEFAULTS: dict[str, dict[str, float]] = {
    "lora": {"r": 8, "alpha": 16, "dropout": 0.05},
    "dora": {"r": 8, "alpha": 16, "dropout": 0.05},
    "qlora": {"r": 8, "alpha": 16, "dropout": 0.05},
    "prefix": {"num_virtual_tokens": 20},
    "prompt": {"num_virtual_tokens": 20},
}


class PeftConfig(Strict):
    method: Literal["lora", "dora", "qlora", "ia3", "prefix", "prompt"] = Field(
        description="Adapter method: lora, dora (LoRA with a learned magnitude), qlora (LoRA on a 4-bit "
        "base; CUDA only), ia3 (learned scaling vectors), prefix or prompt (trained virtual tokens)."
    )
    r: Optional[int] = Field(None, gt=0, description="LoRA rank (lora, dora, qlora). Default 8.")
    alpha: Optional[float] = Field(
        None, gt=0, description="LoRA scale numerator: updates are scaled by alpha / r (lora, dora, qlora). Default 16."
    )
    dropout: Optional[float] = Field(
        None, ge=0.0, lt=1.0, description="Dropout on the LoRA branch's input (lora, dora, qlora). Default 0.05."
    )
    target_modules: Optional[list[str]] = Field(
        None, min_length=1, description="Names of the layers to adapt (lora, dora, qlora, ia3). "
        "Default: the attention projections of the model's architecture."
    )
    feedforward_modules: Optional[list[str]] = Field(
        None, description="ia3: those target_modules whose input (not output) is scaled. "
        "Default: the architecture's feed-forward output layer; none when target_modules is given."
    )
    num_virtual_tokens: Optional[int] = Field(
        None, gt=0, description="Trained virtual tokens (prefix, prompt). Default 20."
    )
    modules_to_save: Optional[list[str]] = Field(
        None, description="Modules trained in full and saved with the adapter. "
        "Default: the task head (e.g. classifier, score), which a new task needs."
    )

    @model_validator(mode="before")
    @classmethod
    def _options_fit_method(cls, data):
        if not isinstance(data, dict) or not isinstance(data.get("method"), str) or data["method"] not in PEFT_OPTIONS:
            return data  # a missing or unknown method is reported by the field itself
        method = data["method"]
        allowed = PEFT_OPTIONS[method]
        # None counts as absent, so a dumped recipe (which writes every key) loads again.
        wrong = sorted(k for k, v in data.items() if k != "method" and k not in allowed
                       and k in cls.model_fields and v is not None)
        if wrong:
            raise ValueError(f"method {method} takes no option {', '.join(wrong)} "
                             f"(it takes: {', '.join(allowed)})")
        filled = dict(data)
        for key, value in PEFT_DEFAULTS.get(method, {}).items():
            if filled.get(key) is None:
                filled[key] = value
        return filled

    @model_validator(mode="after")
    def _feedforward_among_targets(self):
        if self.feedforward_modules and not self.target_modules:
            raise ValueError("feedforward_modules needs target_modules (it names a subset of them)")
        if self.feedforward_modules and not set(self.feedforward_modules) <= set(self.target_modules):
            extra = sorted(set(self.feedforward_modules) - set(self.target_modules))
            raise ValueError(f"feedforward_modules {', '.join(extra)} not in target_modules")
        return self


# Keyword arguments each scheduler accepts (transformers' get_scheduler scheduler_specific_kwargs).
SCHEDULER_OPTIONS: dict[str, tuple[str, ...]] = {
    "cosine": ("num_cycles",),
    "cosine_with_restarts": ("num_cycles",),
    "polynomial": ("power", "lr_end"),
}


# Keys transformers 5 reads from fsdp_config (besides backward/forward prefetch and the like of FSDP1).
FSDP_CONFIG_KEYS = ("version", "reshard_after_forward", "cpu_offload", "activation_checkpointing",
                    "cpu_ram_efficient_loading", "state_dict_type", "auto_wrap_policy",
                    "transformer_layer_cls_to_wrap", "min_num_params", "backward_prefetch",
                    "forward_prefetch", "limit_all_gathers", "use_orig_params", "sync_module_states",
                    "xla", "xla_fsdp_settings", "xla_fsdp_grad_ckpt")


class DistributedConfig(Strict):
    """Passed through to the Trainer for multi-process runs (`--nproc`, torchrun, accelerate)."""

    fsdp: list[Literal["full_shard", "shard_grad_op", "no_shard", "hybrid_shard", "hybrid_shard_zero2",
                       "offload", "auto_wrap"]] = Field(
        default_factory=list, description="FSDP sharding options, e.g. [full_shard, auto_wrap]."
    )
    fsdp_config: dict[str, Any] = Field(default_factory=dict, description="FSDP settings (transformers' fsdp_config).")
    deepspeed: Optional[str] = Field(None, description="Path to a DeepSpeed JSON config (deepspeed must be installed).")
    backend: Optional[Literal["gloo", "nccl"]] = Field(
        None, description="Process-group backend; default: NCCL on GPUs, gloo on CPU."
    )

    @field_validator("fsdp_config")
    @classmethod
    def _known_fsdp_keys(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(FSDP_CONFIG_KEYS))
        if unknown:
            raise ValueError(f"unknown fsdp_config key {', '.join(unknown)} (known: {', '.join(FSDP_CONFIG_KEYS)})")
        return value

    @model_validator(mode="after")
    def _one_engine(self):
        if self.fsdp and self.deepspeed:
            raise ValueError("choose FSDP or DeepSpeed, not both")
        if self.fsdp_config and not self.fsdp:
            raise ValueError("fsdp_config is set but fsdp is empty: list the FSDP options, e.g. [full_shard]")
        return self


class TrainConfig(Strict):
    epochs: float = Field(1.0, gt=0, description="Passes over the training data.")
    max_steps: Optional[int] = Field(None, gt=0, description="Stop after this many steps (overrides epochs).")
    batch_size: int = Field(16, gt=0, description="Examples per device per step.")
    eval_batch_size: Optional[int] = Field(None, gt=0, description="Default: 2 x batch_size.")
    grad_accum: int = Field(1, gt=0, description="Gradient accumulation steps.")
    lr: float = Field(5e-5, gt=0, description="Peak learning rate.")
    scheduler: Literal[
        "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"
    ] = "linear"
    scheduler_options: dict[str, float] = Field(
        default_factory=dict,
        description="Scheduler settings: num_cycles (cosine, cosine_with_restarts); power, lr_end (polynomial).",
    )
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Share of steps spent warming up.")
    warmup_steps: Optional[int] = Field(None, ge=0, description="Warmup in steps (overrides ratio).")
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float = Field(1.0, ge=0.0, description="Gradient clipping; 0 turns it off.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 where supported, fp16 on older GPUs, fp32 on CPU."
    )
    seed: int = 42
    group_by_length: bool = Field(
        True, description="Batch examples of similar length together (less padding, faster steps)."
    )
    eval_every: Union[Literal["epoch", "never"], PositiveInt] = Field(
        "epoch", description="Evaluate (and checkpoint) on validation every epoch, every N steps, or never."
    )
    early_stopping: Optional[EarlyStoppingConfig] = Field(
        None, description="Stop when best_metric has not improved for `patience` evaluations."
    )
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="Label smoothing factor.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations: less memory, slower steps.")
    keep_best: bool = Field(True, description="Reload the best checkpoint (by best_metric) at the end.")
    best_metric: Optional[str] = Field(
        None, description="Validation metric that picks the best checkpoint (default: the task's, "
        "accuracy for classification, loss for qa)."
    )
    freeze: FreezeConfig = Field(default_factory=FreezeConfig)
    report_to: list[Literal["wandb", "mlflow", "comet_ml", "clearml", "dvclive", "trackio"]] = Field(
        default_factory=list,
        description="Experiment trackers to send logs to as well (they must be installed and set up).",
    )
    logging_steps: int = Field(10, gt=0)
    save_total_limit: int = Field(2, gt=0, description="Checkpoints kept on disk.")
    peft: Optional[PeftConfig] = Field(
        None, description="Train a PEFT adapter (and the task head) instead of every weight."
    )
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)

    @model_validator(mode="after")
    def _consistent(self):
        allowed = SCHEDULER_OPTIONS.get(self.scheduler, ())
        unknown = sorted(set(self.scheduler_options) - set(allowed))
        if unknown:
            raise ValueError(f"scheduler {self.scheduler} takes no option {', '.join(unknown)}"
                             f" (it takes: {', '.join(allowed) or 'none'})")
        if self.early_stopping and self.eval_every == "never":
            raise ValueError("early_stopping needs evaluations: set eval_every to epoch or a step count")
        return self

    @model_validator(mode="after")
    def _peft_replaces_freeze(self):
        # An adapter freezes every base weight itself, so a freeze rule would change nothing.
        if self.peft is not None and self.freeze != FreezeConfig():
            raise ValueError("train.freeze has no effect with train.peft (the adapter leaves every base "
                             "weight frozen already): remove one of them")
        return self


class GenerationConfig(Strict):
    """How generative tasks decode, during validation and in `eval`. max_new_tokens has no default:
    a silent cap (transformers' 20 tokens) would cut summaries and scores without a word."""

    max_new_tokens: Optional[int] = Field(None, gt=0, description="Most tokens generated per example (required "
                                          "for summarization, translation and causal_lm).")
    min_new_tokens: int = Field(0, ge=0, description="Fewest tokens generated before the end token may come.")
    num_beams: int = Field(1, ge=1, description="Beam search width; 1 is greedy (or sampling).")
    length_penalty: float = Field(1.0, description="Beam search: >1 favours longer outputs, <1 shorter.")
    no_repeat_ngram_size: int = Field(0, ge=0, description="Forbid repeating any n-gram of this size (0: off).")
    repetition_penalty: float = Field(1.0, gt=0, description="Penalty on tokens already generated (1: off).")
    do_sample: bool = Field(False, description="Sample instead of greedy/beam decoding (seeded by train.seed).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (do_sample only).")
    top_p: float = Field(1.0, gt=0, le=1.0, description="Nucleus sampling mass (do_sample only).")
    batch_size: int = Field(16, gt=0, description="Examples generated together (sorted by length).")


class EvalConfig(Strict):
    split: Literal["test", "validation"] = Field("test", description="Split scored after training.")
    metrics: Optional[list[str]] = Field(None, description="Metrics shown in the summary (default: the task's).")
    n_best: int = Field(20, ge=1, description="qa: candidate starts and ends searched per window.")
    max_answer_length: int = Field(30, ge=1, description="qa: longest answer, in tokens.")
    null_threshold: float = Field(0.0, description="qa (v2 data): how much better 'no answer' must score.")
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    samples: int = Field(8, ge=0, description="causal_lm: test prompts whose generations are saved as samples.")
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples for each metric's 95% interval in "
                           "metrics.json (0: no intervals).")
    metric_modules: list[str] = Field(default_factory=list, description="Extra `evaluate` metric modules (a local "
                                      ".py file or folder) run on the predictions; results are named <module>_<key>.")


TaskName = Literal["classification", "qa", "summarization", "translation", "causal_lm"]
# Tasks whose outputs are generated text: their recipes must say how long a generation may be.
GENERATIVE_TASKS = ("summarization", "translation", "causal_lm")
ROUGE = ("rouge1", "rouge2", "rougeL", "rougeLsum")

# Metric names each task produces (kept here so validation never imports the task modules).
METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1_macro", "precision_macro", "recall_macro"),
    "qa": ("exact_match", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"),
    "summarization": ROUGE,
    "translation": ("bleu", "chrf"),
    # perplexity on held-out text; generation scores against the responses when eval.metrics names them
    "causal_lm": ("perplexity", *ROUGE, "bleu", "chrf"),
}
# Metrics where lower is better (gates suggest --max for them, checkpoints minimise them).
LOWER_IS_BETTER = ("loss", "perplexity")
# Metrics the Trainer's own validation computes, so train.best_metric may name them (QA scores
# need span decoding over whole examples, which runs in `eval`; its checkpoints go by loss).
TRAIN_METRICS: dict[str, tuple[str, ...]] = {"classification": METRICS["classification"], "qa": (),
                                             "summarization": ROUGE, "translation": METRICS["translation"],
                                             "causal_lm": ()}
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {"classification": ("accuracy", "f1_macro"),
                                               "qa": ("exact_match", "f1"),
                                               "summarization": ("rouge1", "rouge2", "rougeLsum"),
                                               "translation": ("bleu", "chrf"),
                                               "causal_lm": ("perplexity",)}


def best_metric(cfg: "TrainConfig", task: str) -> str:
    """train.best_metric, or the task's default: its first training metric, else loss."""
    return cfg.best_metric or (TRAIN_METRICS[task][0] if TRAIN_METRICS[task] else "loss")


class Recipe(Strict):
    name: str = Field(description="Run name, used in reports.")
    task: TaskName = Field("classification", description="The task; one of the registered tasks.")
    output_dir: str = Field(description="Run directory, owned by tunekit (made by it, or empty when first used); "
                            "relative to the working directory; `~` is your home folder.")
    model: ModelConfig
    data: DataConfig
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("output_dir")
    @classmethod
    def _run_folder(cls, value: str) -> str:
        """`~` expanded once here, so every step and the shell agree on the folder."""
        import os

        if not value.strip():
            raise ValueError("output_dir is empty: give the run a folder of its own, e.g. runs/NAME")
        return os.path.expanduser(value)

    @model_validator(mode="after")
    def _generation_length_given(self):
        if self.task in GENERATIVE_TASKS and self.eval.generation.max_new_tokens is None:
            raise ValueError(f"task {self.task} generates text: set eval.generation.max_new_tokens "
                             "(the longest output to generate, in tokens)")
        return self


def metric_problems(data: dict) -> list[tuple[tuple[str, ...], str]]:
    """Metric names the recipe's task does not produce, as (key path, message) pairs.

    Checked on the raw mapping so these problems are listed together with the schema's own.
    """
    task = data.get("task", "classification")
    if not isinstance(task, str) or task not in METRICS:
        return []
    known = set(METRICS[task])
    problems = []
    found = []
    eval_section = data.get("eval") if isinstance(data.get("eval"), dict) else {}
    train_section = data.get("train") if isinstance(data.get("train"), dict) else {}
    if isinstance(eval_section.get("metrics"), list):
        found += [(("eval", "metrics"), name) for name in eval_section["metrics"]]
    if train_section.get("best_metric") is not None:
        found.append((("train", "best_metric"), train_section["best_metric"]))
    for loc, name in found:
        if not isinstance(name, str):
            continue  # the schema reports a value that is not a name
        allowed = set(TRAIN_METRICS[task]) | {"loss"} if loc[0] == "train" else known
        if name not in allowed:
            problems.append((loc, f"unknown metric {name!r} for task {task}; known: {', '.join(sorted(allowed))}"))
    return problems
