"""finetune: tokenized data + model -> Trainer run -> <run>/model, manifest, evaluation.

Reads top to bottom: guard the run directory, bring data up to date, build the model and
the Trainer, train (or resume), save atomically, write the manifest, evaluate.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from tunekit.console import console
from tunekit.errors import RunDirError, TunekitError
from tunekit.pipeline.checkpoints import checkpoint_step, last_checkpoint, remove_incomplete_checkpoints
from tunekit.pipeline.distributed import (barrier, check_distributed, distributed_arguments, init_processes, is_main,
                                          launched,
                                          main_first, world_size)
from tunekit.pipeline.model_setup import build_training_model
from tunekit.pipeline.tokenization import refuse_data_change, run_tokenize
from tunekit.recipe import Recipe, dump_recipe
from tunekit.recipe.schema import TrainConfig, best_metric
from tunekit.ownership import check_claimable
from tunekit.pipeline.preemption import Interrupted
from tunekit.pipeline.run_guard import open_staging, run_of, staging_of, writing
from tunekit.runs import RunDir, environment_info, replace_dir, write_json, write_text
from tunekit.tasks import get_task

@dataclass
class TrainResult:
    run: RunDir
    train_metrics: dict
    eval_metrics: dict
    timings: dict


def check_run_dir(recipe: Recipe, run: RunDir, overwrite: bool, resume: bool) -> None:
    """`run` is the recipe's run folder; `--overwrite --resume` continues an interrupted overwrite."""
    check_claimable(run.root)  # a folder tunekit did not make is refused first, --overwrite or not
    if resume:
        where = staging_of(run) if overwrite else run
        if last_checkpoint(where) is None:
            raise RunDirError(f"nothing to resume: {where.checkpoints} has no complete checkpoint",
                              "start the run without --resume" if not overwrite else
                              "start the overwrite again: tunekit finetune RECIPE --overwrite")
        refuse_data_change(recipe, where, f"resume with the recipe it started from ({where.resolved_recipe}), "
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


def resolve_precision(precision: str) -> str:
    import torch

    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def training_arguments(cfg: TrainConfig, run: RunDir, has_validation: bool, task: str = "classification",
                       generation=None, metric: Optional[str] = None):
    """generation: a transformers GenerationConfig -> Seq2SeqTrainingArguments that generate during
    validation with it; metric: the checkpoint metric (default: train.best_metric or the task's)."""
    import torch
    from transformers import Seq2SeqTrainingArguments, TrainingArguments

    precision = resolve_precision(cfg.precision)
    evaluating = has_validation and cfg.eval_every != "never"
    # Checkpoints follow the evaluation interval so the best one can be kept.
    interval = "steps" if isinstance(cfg.eval_every, int) else "epoch"
    steps = cfg.eval_every if isinstance(cfg.eval_every, int) else None
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else cfg.warmup_ratio
    metric = metric or best_metric(cfg, task)
    arguments = TrainingArguments if generation is None else Seq2SeqTrainingArguments
    extra = {} if generation is None else {"predict_with_generate": True, "generation_config": generation}
    return arguments(
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
        metric_for_best_model=metric if metric != "loss" else "eval_loss",
        greater_is_better=metric != "loss",
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        logging_nan_inf_filter=False,  # let LossGuard see a NaN/inf loss instead of hiding it
        report_to=list(cfg.report_to) or "none",  # tunekit writes TensorBoard and JSON logs itself
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        # without CUDA, a multi-process run is data-parallel over CPU processes (gloo)
        use_cpu=world_size() > 1 and not torch.cuda.is_available(),
        **distributed_arguments(cfg.distributed),
        **extra,
    )


def prepare_launch(recipe: Recipe, overwrite: bool, resume: bool, nproc: int,
                   show: Optional[Callable] = None) -> None:
    """Before `--nproc` starts its processes: the checks, and the data steps done once (in the run
    the processes will train in). The caller holds the run's lock for the whole launch."""
    target = run_of(recipe)
    check_run_dir(recipe, target, overwrite, resume)
    check_trackers(recipe.train)
    check_distributed(recipe.train.distributed, nproc)
    run = open_staging(target, fresh=not resume) if replaces(target, overwrite, resume) else target
    prepared, tokenized = run_tokenize(recipe, run)
    if show:
        show(prepared, tokenized)


def replaces(target: RunDir, overwrite: bool, resume: bool) -> bool:
    """An --overwrite of a trained run trains beside it (a failure then costs nothing)."""
    return overwrite and (resume or target.has_training_outputs())


def run_finetune(recipe: Recipe, overwrite: bool = False, resume: bool = False,
                 show: Optional[Callable] = None, callbacks: Sequence = ()) -> TrainResult:
    """`show(prepared, tokenized)` displays the data reports before training starts;
    `callbacks` are extra Trainer callbacks (for library users and tests).

    With --overwrite the new run trains in a staging folder beside the old one, which stays
    whole and usable; only once the new model is saved and evaluated are the two swapped."""
    target = run_of(recipe)
    check_run_dir(recipe, target, overwrite, resume)  # every rank: read-only, and all agree
    check_trackers(recipe.train)
    check_distributed(recipe.train.distributed, world_size())
    init_processes()
    with writing(target):
        replacing = replaces(target, overwrite, resume)
        run = target
        if replacing:
            if is_main() and not launched():  # --nproc's parent made it already
                open_staging(target, fresh=not resume)
            barrier()
            run = staging_of(target)
        try:
            result = _train(recipe, run, resume, show, callbacks, replacing)
        except Interrupted:
            raise  # an interrupted overwrite keeps its checkpoint: --overwrite --resume continues it
        except BaseException as exc:
            if replacing and is_main():
                shutil.rmtree(run.root, ignore_errors=True)
            if replacing and isinstance(exc, TunekitError):
                exc.message += f"; the previous run in {target.root} is unchanged"
            raise
        if replacing:
            if is_main():
                replace_dir(run.root, target.root)  # the old run goes only now
            barrier()
            result.run = target
        return result


def _train(recipe: Recipe, run: RunDir, resume: bool, show: Optional[Callable], callbacks: Sequence,
           replacing: bool) -> TrainResult:
    import datasets
    from transformers import PrinterCallback

    from tunekit.pipeline.evaluation import evaluate_run

    timings: dict[str, float] = {}
    with main_first():  # rank 0 writes the data cache, the others then read it
        prepared, tokenized = run_tokenize(recipe, run)
    timings["prepare_s"], timings["tokenize_s"] = prepared.seconds, tokenized.seconds
    if show and is_main():
        show(prepared, tokenized)

    task = get_task(recipe.task)
    meta = task.meta_from_report(prepared.report)
    setup = build_training_model(recipe, meta)
    model, tokenizer, trainable, total = setup.model, setup.tokenizer, setup.trainable, setup.total
    data = datasets.load_from_disk(str(run.tokenized))
    has_validation = "validation" in data

    manifest = {"status": "training", "name": recipe.name, "task": recipe.task, "seed": recipe.train.seed,
                "model": recipe.model.name, "parameters": {"trainable": trainable, "total": total},
                "data": prepared.report["sources"],
                "fingerprints": {"prepare": prepared.fingerprint, "tokenize": tokenized.fingerprint},
                "environment": environment_info(), "processes": world_size()}
    if is_main():
        write_text(run.resolved_recipe, dump_recipe(recipe))
        write_json(run.manifest, manifest)
    barrier()

    from tunekit.pipeline.health import LossGuard, TrainingDiverged
    from tunekit.pipeline.preemption import StopOnSignal
    from tunekit.pipeline.progress import RichProgress
    from tunekit.pipeline.run_logs import RunLogger, trim_metrics_log
    from tunekit.pipeline.sampling import trace_batches, trainer_class

    kind = task.trainer_kind(recipe) if hasattr(task, "trainer_kind") else task.TRAINER
    generation, compute_metrics = None, task.trainer_metrics(meta)
    if kind == "Seq2SeqTrainer":  # validation generates; its scores need the tokenizer to decode
        from tunekit.pipeline.generation import generation_config

        generation = generation_config(recipe.eval.generation, tokenizer, model)
        compute_metrics = task.trainer_metrics(meta, tokenizer)
    # without validation scores (qa, decoder-only generation) checkpoints go by loss
    metric = None if compute_metrics is not None else (recipe.train.best_metric or "loss")
    args = training_arguments(recipe.train, run, has_validation, recipe.task, generation, metric)
    progress = RichProgress()
    run_logger = RunLogger(run)
    stopper = StopOnSignal()
    callbacks = [progress, LossGuard(), run_logger, stopper, *callbacks]
    if recipe.train.early_stopping and not has_validation:
        console.print("[yellow]warning:[/] train.early_stopping is ignored: there is no validation split")
    elif recipe.train.early_stopping:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(recipe.train.early_stopping.patience,
                                               recipe.train.early_stopping.threshold))
    trace_batches(model)
    trainer = trainer_class(kind)(
        model=model, args=args, train_dataset=data["train"],
        eval_dataset=data["validation"] if has_validation else None,
        data_collator=task.collator(tokenizer), processing_class=tokenizer,
        compute_metrics=compute_metrics, callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # tunekit's RichProgress replaces the raw log dicts
    console.print(f"[bold]finetune[/] {recipe.name}: {len(data['train'])} training rows, "
                  f"precision {resolve_precision(recipe.train.precision)}, device {args.device}, "
                  f"trainable parameters {trainable:,} of {total:,} ({100 * trainable / total:.1f}%)")
    start = time.perf_counter()
    checkpoint = last_checkpoint(run, say=console.print) if resume else None
    if checkpoint:
        console.print(f"resuming from {checkpoint.name}")
        trim_metrics_log(run.metrics_log, checkpoint_step(checkpoint))
    try:
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except TrainingDiverged as exc:
        manifest.update(status="failed", error=exc.message)
        if is_main():
            write_json(run.manifest, manifest)
        raise
    except Exception:
        if is_main():  # a failed save (a full disk) leaves no half-written checkpoint behind
            remove_incomplete_checkpoints(run, say=console.print)
        raise
    finally:
        progress.close()
        run_logger.close()
        stopper.restore()
    if stopper.signum is not None:
        saved = last_checkpoint(run)
        exc = Interrupted(stopper.signum, saved.name if saved else None,
                          "continue it with: tunekit finetune RECIPE --overwrite --resume (the previous run "
                          "is unchanged until the new one is saved)" if replacing else
                          "continue it with: tunekit finetune RECIPE --resume")
        manifest.update(status="interrupted", error=exc.message, global_step=trainer.state.global_step)
        if is_main():
            write_json(run.manifest, manifest)
        raise exc
    timings["train_s"] = time.perf_counter() - start

    save_final_model(trainer, tokenizer, run, recipe)  # the model first: logs and plots come after
    if is_main():
        from tunekit.pipeline.run_logs import draw_curves

        draw_curves(run)
    train_metrics = dict(output.metrics)
    train_metrics["global_step"] = trainer.state.global_step
    best = trainer.state.best_model_checkpoint  # relative to the run: it outlives an --overwrite's swap
    train_metrics["best_checkpoint"] = os.path.relpath(Path(best).resolve(), run.root.resolve()) if best else None
    train_metrics.update(peak_memory())
    if not is_main():  # rank 0 evaluates and reports
        return TrainResult(run, train_metrics, {}, timings)

    start = time.perf_counter()
    eval_metrics = evaluate_run(run, recipe.eval.split, modules=tuple(recipe.eval.metric_modules))  # the user's recipe
    timings["eval_s"] = time.perf_counter() - start
    manifest.update(status="complete", train=train_metrics, timings=timings)
    write_json(run.manifest, manifest)
    return TrainResult(run, train_metrics, eval_metrics, timings)


def save_final_model(trainer, tokenizer, run: RunDir, recipe: Recipe) -> None:
    """Write <run>/model atomically: into a temporary sibling, then swapped in by rank 0.

    Every rank takes part (sharded FSDP/DeepSpeed weights are gathered collectively); the
    Trainer itself writes only on the main process."""
    from tunekit.model_info import write_model_info
    from tunekit.pipeline.adapters import save_trained

    partial = run.root / ".model.partial"  # one name every process knows
    if is_main() and partial.exists():  # left by a process killed while saving
        console.print(f"an earlier save of the final model was interrupted: removing its partial folder {partial}")
        shutil.rmtree(partial, ignore_errors=True)
    barrier()
    try:
        save_trained(trainer, partial, recipe.model.name)  # full weights, or a PEFT adapter; config with id2label
        barrier()
        if is_main():
            tokenizer.save_pretrained(str(partial))
            (partial / "training_args.bin").unlink(missing_ok=True)  # a pickle; the recipe says it all
            write_model_info(partial, recipe, run)  # task + input settings: the folder works on its own
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if is_main():
        replace_dir(partial, run.model)


def peak_memory() -> dict:
    """This process's peak accelerator memory during training (what --dry-run estimates)."""
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"peak_gpu_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
