"""Shared CLI plumbing: error display and exit codes, recipe loading, quiet libraries."""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable, List, Optional

import typer

from tunekit.console import console
from tunekit.errors import EXIT_SIGINT, EXIT_UNEXPECTED, TunekitError

SetOption = typer.Option(None, "--set", metavar="KEY=VALUE",
                         help="Override a recipe key, e.g. --set train.lr=3e-5 (repeatable).")
JsonOption = typer.Option(False, "--json", help="Print the result as JSON on stdout.")


def report_errors(fn: Callable) -> Callable:
    """Turn TunekitError into two lines (what is wrong, what to do) and its exit code."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TunekitError as exc:
            if os.environ.get("TUNEKIT_DEBUG"):
                raise
            from rich.markup import escape

            console.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
            if exc.hint:
                console.print(f"[bold]hint:[/] {escape(exc.hint)}", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            console.print("interrupted")
            raise typer.Exit(EXIT_SIGINT) from None
        except typer.Exit:
            raise
        except Exception as exc:  # a bug in tunekit or a library: say so, keep the details
            if os.environ.get("TUNEKIT_DEBUG"):
                raise
            from rich.markup import escape

            console.print(f"[bold red]unexpected error:[/] {type(exc).__name__}: {escape(str(exc))}", soft_wrap=True)
            console.print("[bold]hint:[/] rerun with TUNEKIT_DEBUG=1 for the traceback, and report it")
            raise typer.Exit(EXIT_UNEXPECTED) from None
    return wrapper


def load(recipe: str, overrides: Optional[List[str]]):
    from tunekit.recipe import load_recipe

    return load_recipe(recipe, overrides or [])


def quiet_libraries() -> None:
    """Keep the HF libraries' logs and bars out of the way; tunekit shows its own progress."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def print_json(obj) -> None:
    import json

    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
