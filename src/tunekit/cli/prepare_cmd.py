from __future__ import annotations

from typing import List, Optional

import typer

from tunekit.cli.common import JsonOption, SetOption, StrictOption, load, print_json, quiet_libraries, report_errors


@report_errors
def prepare(
    recipe: str = typer.Argument(..., metavar="RECIPE", help="Recipe YAML file."),
    overrides: Optional[List[str]] = SetOption,
    force: bool = typer.Option(False, "--force", help="Recompute even when the cached output is current."),
    sample: Optional[int] = typer.Option(None, "--sample", min=1, metavar="N",
                                         help="A quick look: read only the first N rows of each source, report, "
                                              "and write nothing."),
    strict: bool = StrictOption,
    json_: bool = JsonOption,
) -> None:
    """Load, clean, check and split the data; report rows per rule, labels, duplicates and leakage."""
    cfg = load(recipe, overrides, strict)
    quiet_libraries()
    from tunekit.cli.reports import show_prepare
    from tunekit.pipeline.prepare import run_prepare
    from tunekit.pipeline.tokenization import refuse_data_change
    from tunekit.pipeline.run_guard import run_of, writing

    run = run_of(cfg)
    if sample is not None:  # a quick look writes nothing
        result = run_prepare(cfg, run, sample=sample)
    else:
        with writing(run):
            refuse_data_change(cfg, run)
            result = run_prepare(cfg, run, force=force)
    if json_:
        print_json(result.report)
    else:
        show_prepare(result.report, result.reused)
