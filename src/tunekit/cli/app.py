"""`tunekit` entry point: a tiny Typer app that registers one module per command."""

from __future__ import annotations

import typer
from typer.core import TyperCommand, TyperGroup

from tunekit import __version__
from tunekit.cli import (eval_cmd, export_cmd, finetune_cmd, merge_cmd, predict_cmd, prepare_cmd, push_cmd,
                         serve_cmd, tokenize_cmd, validate_cmd)



class _FastHelp:
    """Give the --help flag a False default. Typer coerces every parameter value that is not
    already a bool through a pydantic TypeAdapter, and an absent --help arrives as None: that
    coercion imports pydantic's adapter machinery (~150-200 ms) on every start-up."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option


class FastHelpGroup(_FastHelp, TyperGroup):
    def main(self, *args, standalone_mode: bool = True, **kwargs):
        """Command-line mistakes (an unknown option, a value out of range, a missing argument)
        in tunekit's own two lines, `error:` then `hint:`, with exit code 2 like every bad input."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        import sys

        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        except Exception as exc:  # click's usage errors (typer vendors click: matched by shape)
            if not hasattr(exc, "format_message") or not hasattr(exc, "exit_code"):
                raise
            if type(exc).__name__ == "NoArgsIsHelpError":  # `tunekit` alone: the help text
                exc.show()
                sys.exit(exc.exit_code)
            command = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "tunekit"
            typer.echo(f"error: {exc.format_message()}", err=True)
            typer.echo(f"hint: see `{command} --help` for the options and arguments", err=True)
            sys.exit(2)
        sys.exit(code if isinstance(code, int) else 0)


class FastHelpCommand(_FastHelp, TyperCommand):
    pass


app = typer.Typer(
    cls=FastHelpGroup,
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
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Show the version and exit.")) -> None:
    # A plain bool (not Optional[bool]): Typer coerces other types through pydantic at parse
    # time, which would add ~150 ms to every subcommand's start-up, `--help` included.
    """Fine-tune, evaluate and ship language models from a YAML recipe."""


app.command("validate", cls=FastHelpCommand)(validate_cmd.validate)
app.command("prepare", cls=FastHelpCommand)(prepare_cmd.prepare)
app.command("tokenize", cls=FastHelpCommand)(tokenize_cmd.tokenize)
app.command("finetune", cls=FastHelpCommand)(finetune_cmd.finetune)
app.command("eval", cls=FastHelpCommand)(eval_cmd.evaluate)
app.command("merge", cls=FastHelpCommand)(merge_cmd.merge)
app.command("predict", cls=FastHelpCommand)(predict_cmd.predict)
app.command("export", cls=FastHelpCommand)(export_cmd.export)
app.command("push", cls=FastHelpCommand)(push_cmd.push)
app.command("serve", cls=FastHelpCommand)(serve_cmd.serve)


def main() -> None:
    app()
