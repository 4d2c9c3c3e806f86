from __future__ import annotations

from typing import List, Optional

import typer

from tunekit.cli.common import SetOption, load, report_errors
from tunekit.console import console


@report_errors
def validate(
    recipe: str = typer.Argument(..., metavar="RECIPE", help="Recipe YAML file."),
    overrides: Optional[List[str]] = SetOption,
    print_: bool = typer.Option(False, "--print", help="Print the resolved recipe (all defaults filled in)."),
) -> None:
    """Check a recipe without touching data or models."""
    from tunekit.recipe import dump_recipe

    resolved = load(recipe, overrides)
    if print_:
        typer.echo(dump_recipe(resolved), nl=False)
    console.print(f"[green]ok:[/] {recipe} is a valid {resolved.task} recipe (run directory {resolved.output_dir})")
