from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tunekit.cli.common import JsonOption, SetOption, load, print_json, quiet_libraries, report_errors


@report_errors
def tokenize(
    recipe: str = typer.Argument(..., metavar="RECIPE", help="Recipe YAML file."),
    overrides: Optional[List[str]] = SetOption,
    force: bool = typer.Option(False, "--force", help="Recompute even when the cached output is current."),
    json_: bool = JsonOption,
) -> None:
    """Tokenize the prepared data (running prepare first when stale); report token lengths."""
    cfg = load(recipe, overrides)
    quiet_libraries()
    from tunekit.cli.reports import show_prepare, show_tokenize
    from tunekit.pipeline.tokenization import refuse_data_change, run_tokenize
    from tunekit.runs import RunDir

    run = RunDir(Path(cfg.output_dir))
    refuse_data_change(cfg, run)
    prepared, tokenized = run_tokenize(cfg, run, force=force)
    if json_:
        print_json({"prepare": prepared.report, "tokenize": tokenized.report})
        return
    if not prepared.reused:
        show_prepare(prepared.report, False)
    show_tokenize(tokenized.report, tokenized.reused)
