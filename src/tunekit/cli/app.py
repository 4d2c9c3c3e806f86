"""`tunekit` entry point: a tiny Typer app that registers one module per command."""

from __future__ import annotations

from typing import Optional

import typer

from tunekit import __version__
from tunekit.cli import eval_cmd, finetune_cmd, prepare_cmd, tokenize_cmd, validate_cmd

app = typer.Typer(
    name="tunekit",
    help="Fine-tune, evaluate and ship language models from a YAML recipe.\n\n"
         "Exit codes: 0 ok, 1 unexpected error, 2 bad input, 3 quality gate failed, 130/143 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tunekit {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")) -> None:
    """Fine-tune, evaluate and ship language models from a YAML recipe."""


app.command("validate")(validate_cmd.validate)
app.command("prepare")(prepare_cmd.prepare)
app.command("tokenize")(tokenize_cmd.tokenize)
app.command("finetune")(finetune_cmd.finetune)
app.command("eval")(eval_cmd.evaluate)


def main() -> None:
    app()
