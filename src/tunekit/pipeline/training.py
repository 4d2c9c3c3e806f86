"""finetune: tokenized data + model -> Trainer run -> <run>/model, manifest, evaluation.

Reads top to bottom: guard the run directory, bring data up to date, build the model and
the Trainer, train (or resume), save atomically, write the manifest, evaluate.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from tunekit.console import console
from tunekit.errors import RunDirError, TunekitError
from tunekit.pipeline.model_setup import build_training_model
from tunekit.pipeline.tokenization import refuse_data_change, run_tokenize
from tunekit.recipe import Recipe, dump_recipe
from tunekit.recipe.schema import TrainConfig
from tunekit.runs import RunDir, atomic_dir, environment_info, write_json, write_text
from tunekit.tasks import get_task

# Training outputs --overwrite removes; the data cache stays (its fingerprints keep it honest).
TRAINING_OUTPUTS = ("model", "checkpoints", "eval", "logs", "metrics.jsonl", "curves.png",
                    "manifest.json", "recipe.resolved.yaml")


@dataclass
class TrainResult:
    run: RunDir
    train_metrics: dict
    eval_metrics: dict
    timings: dict


def check_run_dir(recipe: Recipe, run: RunDir, overwrite: bool, resume: bool) -> None:
    if resume:
        if last_checkpoint(run) is None:
            raise RunDirError(f"nothing to resume: {run.checkpoints} has no complete checkpoint",
                              "start the run without --resume")
        refuse_data_change(recipe, run, f"resume with the recipe it started from ({run.resolved_recipe}), "
                                        "or start over with --overwrite")
        return
    if run.has_training_outputs() and not overwrite:
        raise RunDirError(f"run directory {run.root} already holds a training run",
                          "pass --overwrite to replace it, --resume to continue it, "
                          "or choose another directory with --set output_dir=...")


def check_trackers(cfg: TrainConfig) -> None:
    """train.report_to names trackers that must be installed (their setup is the user's)."""
    import importlib.util

    for name in cfg.report_to:
        if importlib.util.find_spec(name) is None:
            raise TunekitError(f"train.report_to names {name}, which is not installed",
                               f"pip install {name.replace('_', '-')} and set it up, or remove it from train.report_to")


def last_checkpoint(run: RunDir) -> Optional[Path]:
    """The newest checkpoint that holds trainer state and weights; incomplete ones are skipped."""
    if not run.checkpoints.is_dir():
        return None
    found = []
    for path in run.checkpoints.glob("checkpoint-*"):
        step = path.name.split("-")[-1]
        if step.isdigit() and (path / "trainer_state.json").is_file() and any(path.glob("*.safetensors")):
            found.append((int(step), path))
    return max(found)[1] if found else None


def resolve_precision(precision: str) -> str:
    import torch

    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def training_arguments(cfg: TrainConfig, run: RunDir, has_validation: bool):
    import torch
    from transformers import TrainingArguments

    precision = resolve_precision(cfg.precision)
    evaluating = has_validation and cfg.eval_every != "never"
    # Checkpoints follow the evaluation interval so the best one can be kept.
    interval = "steps" if isinstance(cfg.eval_every, int) else "epoch"
    steps = cfg.eval_every if isinstance(cfg.eval_every, int) else None
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else cfg.warmup_ratio
    return TrainingArguments(
        output_dir=str(run.checkpoints),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size or 2 * cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.scheduler,
        lr_scheduler_kwargs=dict(cfg.scheduler_options),
        warmup_steps=warmup,  # transformers 5: a float in [0, 1) is a ratio of total steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        label_smoothing_factor=cfg.label_smoothing,
        activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5 name for it
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        seed=cfg.seed,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        eval_strategy=interval if evaluating else "no",
        save_strategy=interval,
        **({"eval_steps": steps, "save_steps": steps} if steps else {}),
        load_best_model_at_end=evaluating and (cfg.keep_best or cfg.early_stopping is not None),
        metric_for_best_model=cfg.best_metric if cfg.best_metric != "loss" else "eval_loss",
        greater_is_better=cfg.best_metric != "loss",
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        logging_nan_inf_filter=False,  # let LossGuard see a NaN/inf loss instead of hiding it
        report_to=list(cfg.report_to) or "none",  # tunekit writes TensorBoard and JSON logs itself
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def run_finetune(recipe: Recipe, overwrite: bool = False, resume: bool = False,
                 show: Optional[Callable] = None) -> TrainResult:
    """`show(prepared, tokenized)` displays the data reports before training starts."""
    import datasets
    from transformers import PrinterCallback, Trainer

    from tunekit.pipeline.evaluation import evaluate_run

    run = RunDir(Path(recipe.output_dir))
    check_run_dir(recipe, run, overwrite, resume)
    check_trackers(recipe.train)
    timings: dict[str, float] = {}
    prepared, tokenized = run_tokenize(recipe, run)
    timings["prepare_s"], timings["tokenize_s"] = prepared.seconds, tokenized.seconds
    if show:
        show(prepared, tokenized)

    task = get_task(recipe.task)
    names = prepared.report["label_names"]
    setup = build_training_model(recipe, names)
    model, tokenizer, trainable, total = setup.model, setup.tokenizer, setup.trainable, setup.total
    data = datasets.load_from_disk(str(run.tokenized))
    has_validation = "validation" in data

    if overwrite and not resume:
        for name in TRAINING_OUTPUTS:
            path = run.root / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    run.root.mkdir(parents=True, exist_ok=True)
    write_text(run.resolved_recipe, dump_recipe(recipe))
    manifest = {"status": "training", "name": recipe.name, "task": recipe.task, "seed": recipe.train.seed,
                "model": recipe.model.name, "parameters": {"trainable": trainable, "total": total},
                "data": prepared.report["sources"],
                "fingerprints": {"prepare": prepared.fingerprint, "tokenize": tokenized.fingerprint},
                "environment": environment_info()}
    write_json(run.manifest, manifest)

    from tunekit.pipeline.health import LossGuard, TrainingDiverged
    from tunekit.pipeline.progress import RichProgress
    from tunekit.pipeline.run_logs import RunLogger

    args = training_arguments(recipe.train, run, has_validation)
    progress = RichProgress()
    run_logger = RunLogger(run)
    callbacks = [progress, LossGuard(), run_logger]
    if recipe.train.early_stopping and not has_validation:
        console.print("[yellow]warning:[/] train.early_stopping is ignored: there is no validation split")
    elif recipe.train.early_stopping:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(recipe.train.early_stopping.patience,
                                               recipe.train.early_stopping.threshold))
    trainer = Trainer(
        model=model, args=args, train_dataset=data["train"],
        eval_dataset=data["validation"] if has_validation else None,
        data_collator=task.collator(tokenizer), processing_class=tokenizer,
        compute_metrics=task.trainer_metrics(names), callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # tunekit's RichProgress replaces the raw log dicts
    console.print(f"[bold]finetune[/] {recipe.name}: {len(data['train'])} training rows, "
                  f"precision {resolve_precision(recipe.train.precision)}, device {args.device}, "
                  f"trainable parameters {trainable:,} of {total:,} ({100 * trainable / total:.1f}%)")
    start = time.perf_counter()
    checkpoint = last_checkpoint(run) if resume else None
    if checkpoint:
        console.print(f"resuming from {checkpoint.name}")
    try:
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except TrainingDiverged as exc:
        manifest.update(status="failed", error=exc.message)
        write_json(run.manifest, manifest)
        raise
    finally:
        progress.close()
        run_logger.close()
    timings["train_s"] = time.perf_counter() - start

    with atomic_dir(run.model) as tmp:
        trainer.save_model(str(tmp))  # safetensors weights + config with id2label/label2id
        tokenizer.save_pretrained(str(tmp))
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle; the recipe says it all
    train_metrics = dict(output.metrics)
    train_metrics["global_step"] = trainer.state.global_step
    train_metrics["best_checkpoint"] = trainer.state.best_model_checkpoint

    start = time.perf_counter()
    eval_metrics = evaluate_run(run, recipe.eval.split)
    timings["eval_s"] = time.perf_counter() - start
    manifest.update(status="complete", train=train_metrics, timings=timings)
    write_json(run.manifest, manifest)
    return TrainResult(run, train_metrics, eval_metrics, timings)
