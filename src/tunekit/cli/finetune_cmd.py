from __future__ import annotations

from typing import List, Optional

import typer

from tunekit.cli.common import JsonOption, SetOption, load, print_json, quiet_libraries, report_errors
from tunekit.console import console


@report_errors
def finetune(
    recipe: str = typer.Argument(..., metavar="RECIPE", help="Recipe YAML file."),
    overrides: Optional[List[str]] = SetOption,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run in output_dir."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last complete checkpoint."),
    json_: bool = JsonOption,
) -> None:
    """Prepare and tokenize when stale, train, save <run>/model, and evaluate."""
    cfg = load(recipe, overrides)
    quiet_libraries()
    from tunekit.cli.reports import show_metrics, show_training
    from tunekit.pipeline.training import run_finetune

    result = run_finetune(cfg, overwrite=overwrite, resume=resume, show=None if json_ else _show_data)
    if json_:
        print_json({"run": str(result.run.root), "train": result.train_metrics,
                    "eval": result.eval_metrics, "timings": result.timings})
        return
    show_training(result.train_metrics, result.timings)
    show_metrics(result.eval_metrics, "evaluation")
    console.print(f"[green]done:[/] model in {result.run.model}; gate it with "
                  f"`tunekit eval {result.run.root} --min accuracy=0.8`")


def _show_data(prepared, tokenized) -> None:
    from tunekit.cli.reports import show_prepare, show_tokenize

    show_prepare(prepared.report, prepared.reused)
    show_tokenize(tokenized.report, tokenized.reused)
