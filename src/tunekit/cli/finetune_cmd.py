from __future__ import annotations

import os
from typing import List, Optional

import typer

from tunekit.cli.common import JsonOption, SetOption, StrictOption, load, print_json, quiet_libraries, report_errors
from tunekit.console import console


@report_errors
def finetune(
    recipe: str = typer.Argument(..., metavar="RECIPE", help="Recipe YAML file."),
    overrides: Optional[List[str]] = SetOption,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run in output_dir."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last complete checkpoint."),
    nproc: int = typer.Option(1, "--nproc", min=1, metavar="N",
                              help="Train data-parallel in N processes (torchrun; gloo on CPU, NCCL on GPUs)."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Plan only: data, steps, parameters and peak memory; train nothing."),
    gpu_memory: Optional[str] = typer.Option(None, "--gpu-memory", metavar="SIZE",
                                             help="With --dry-run: the GPU's memory (24GiB, 80GB); "
                                                  "says whether the run fits and what to change."),
    strict: bool = StrictOption,
    json_: bool = JsonOption,
) -> None:
    """Prepare and tokenize when stale, train, save <run>/model, and evaluate."""
    limit = _memory_budget(gpu_memory, dry_run)  # a bad size fails before anything loads
    cfg = load(recipe, overrides, strict)
    quiet_libraries()
    if dry_run:
        _dry_run(cfg, limit, nproc, json_)
        return
    from tunekit.cli.reports import show_metrics, show_training
    from tunekit.pipeline.training import run_finetune

    from tunekit.pipeline.distributed import LAUNCHED_ENV, launched

    show = None if json_ or launched() else _show_data
    if nproc > 1:
        from tunekit.pipeline.distributed import launch
        from tunekit.pipeline.run_guard import run_of, writing
        from tunekit.pipeline.training import prepare_launch

        args = ["finetune", recipe, *[f"--set={o}" for o in overrides or []]] + ["--strict"] * strict
        args += ["--overwrite"] * overwrite + ["--resume"] * resume + ["--json"] * json_
        with writing(run_of(cfg)):  # the processes write under this parent's lock
            prepare_launch(cfg, overwrite, resume, nproc, show)  # data steps and checks once, before N processes
            os.environ[LAUNCHED_ENV] = "1"
            try:
                code = launch(nproc, args)
            finally:
                del os.environ[LAUNCHED_ENV]
        raise typer.Exit(code)
    result = run_finetune(cfg, overwrite=overwrite, resume=resume, show=show)
    from tunekit.pipeline.distributed import is_main

    if not is_main():  # another process of a multi-process run: rank 0 reports
        return
    if json_:
        print_json({"run": str(result.run.root), "train": result.train_metrics,
                    "eval": result.eval_metrics, "timings": result.timings})
        return
    show_training(result.train_metrics, result.timings)
    show_metrics(result.eval_metrics, "evaluation")
    from tunekit.recipe.schema import DEFAULT_METRICS, LOWER_IS_BETTER

    metric = DEFAULT_METRICS[cfg.task][0]
    if metric in LOWER_IS_BETTER or metric not in result.eval_metrics:
        console.print(f"[green]done:[/] model in {result.run.model}")
        return
    console.print(f"[green]done:[/] model in {result.run.model}; gate it with "
                  f"`tunekit eval {result.run.root} --min {metric}={result.eval_metrics[metric] * 0.95:.4g}`")


def _memory_budget(gpu_memory: Optional[str], dry_run: bool) -> Optional[int]:
    if gpu_memory is None:
        return None
    from tunekit.errors import TunekitError
    from tunekit.pipeline.planning import parse_size

    if not dry_run:
        raise TunekitError("--gpu-memory only applies to a plan", "add --dry-run")
    return parse_size(gpu_memory)


def _dry_run(cfg, limit: Optional[int], nproc: int, json_: bool) -> None:
    """The plan, read-only towards training outputs. Exits 0 even when the run will not fit:
    the plan is the answer asked for (exit 3 means a failed eval gate); scripts read memory.fits."""
    from tunekit.pipeline.planning import plan_run

    plan = plan_run(cfg, limit, world_size=nproc)
    if json_:
        print_json(plan.to_json())
        return
    from tunekit.cli.plan_report import show_plan

    show_plan(plan)


def _show_data(prepared, tokenized) -> None:
    from tunekit.cli.reports import show_prepare, show_tokenize

    show_prepare(prepared.report, prepared.reused)
    show_tokenize(tokenized.report, tokenized.reused)
