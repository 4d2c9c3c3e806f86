"""The model a run trains: base weights + task head, then freezing (and PEFT adapters).

One function builds it for `finetune` and for `finetune --dry-run`, so the plan counts the
same trainable parameters the run will train.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunekit.errors import ModelError
from tunekit.pipeline.adapters import apply_adapters, quantization_kwargs
from tunekit.pipeline.freezing import apply_freeze
from tunekit.recipe import Recipe
from tunekit.runs import RunDir
from tunekit.tasks import get_task


@dataclass
class ModelSetup:
    model: Any
    tokenizer: Any
    trainable: int
    total: int


def build_training_model(recipe: Recipe, meta: dict, run: "RunDir | None" = None) -> ModelSetup:
    """`meta`: what the task learned from the training data (e.g. label names); `run`: where a
    trained tokenizer is (default: output_dir)."""
    from transformers import set_seed

    from tunekit.pipeline.tokenization import load_tokenizer, tokenizer_path

    task = get_task(recipe.task)
    from tunekit.tasks.model_init import model_source

    model_path = model_source(recipe)  # a folder, or an architecture name (model.init: config)
    tokenizer = load_tokenizer(tokenizer_path(recipe, run))
    set_seed(recipe.train.seed)  # before the model: a new head's initial weights follow the seed
    load_kwargs = quantization_kwargs(recipe.train.peft)  # qlora: 4-bit base weights (CUDA only)
    try:
        model = task.build_model(model_path, meta, recipe=recipe, tokenizer=tokenizer, **load_kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {recipe.model.name}: {str(exc).splitlines()[0]}",
                         "point model.name at a folder with config.json and weights") from None
    trainable, total = apply_freeze(model, recipe.train.freeze)
    if recipe.train.peft is not None:  # counts after PEFT: the adapter (and head) train, the rest is frozen
        # a task whose model kind varies (seq2seq: encoder-decoder or decoder-only) asks the model
        task_type = task.peft_task_type(model) if hasattr(task, "peft_task_type") else task.PEFT_TASK_TYPE
        model, trainable, total = apply_adapters(model, recipe.train, tokenizer, task_type)
    return ModelSetup(model, tokenizer, trainable, total)
