"""Shared CLI plumbing: error display and exit codes, recipe loading, quiet libraries."""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable, List, Optional

import typer

from tunekit.errors import EXIT_SIGINT, EXIT_UNEXPECTED, TunekitError, disk_error

SetOption = typer.Option(None, "--set", metavar="KEY=VALUE",
                         help="Override a recipe key, e.g. --set train.lr=3e-5 (repeatable).")
JsonOption = typer.Option(False, "--json", help="Print the result as JSON on stdout.")
StrictOption = typer.Option(False, "--strict", help="Stop with exit code 2 on any data warning "
                            "(same as --set data.quality.strict=true).")


def report_errors(fn: Callable) -> Callable:
    """Turn TunekitError into two lines (what is wrong, what to do) and its exit code."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TunekitError as exc:
            if os.environ.get("TUNEKIT_DEBUG"):
                raise
            _report(exc)
        except KeyboardInterrupt:
            _say_error("interrupted")
            _exit(EXIT_SIGINT)
        except typer.Exit as exc:
            _exit(exc.exit_code)
        except Exception as exc:  # a bug in tunekit or a library: say so, keep the details
            if os.environ.get("TUNEKIT_DEBUG"):
                raise
            disk = disk_error(exc)  # a full or read-only disk is the user's to fix: exit 2
            if disk is not None:
                _report(disk)
            from rich.markup import escape

            _say_error(f"[bold red]unexpected error:[/] {type(exc).__name__}: {escape(str(exc))}")
            _say_error("[bold]hint:[/] rerun with TUNEKIT_DEBUG=1 for the traceback, and report it")
            _exit(EXIT_UNEXPECTED)
    return wrapper


def _report(exc: TunekitError) -> None:
    from rich.markup import escape

    from tunekit.pipeline.distributed import is_main

    if is_main():  # every process has the same inputs: rank 0 speaks for all
        _say_error(f"[bold red]error:[/] {escape(exc.message)}")
        if exc.hint:
            _say_error(f"[bold]hint:[/] {escape(exc.hint)}")
    _exit(exc.exit_code)


def _say_error(text: str) -> None:
    """Errors from every process of a multi-process run, each prefixed with its rank but rank 0."""
    from rich.markup import escape

    from tunekit.console import error_prefix, get_error_console

    get_error_console().print(escape(error_prefix()) + text, soft_wrap=True)


def _exit(code: int) -> None:
    from tunekit.pipeline.distributed import record_exit

    record_exit(code)  # a multi-process launcher reports this rank's code, not torchrun's 1
    raise typer.Exit(code)


def load(recipe: str, overrides: Optional[List[str]], strict: bool = False):
    from tunekit.pipeline.run_guard import check_location
    from tunekit.recipe import load_recipe

    cfg = load_recipe(recipe, [*(overrides or []), *(["data.quality.strict=true"] if strict else [])])
    check_location(cfg, recipe)  # never the root, home or working folder, nor one holding the inputs
    return cfg


def quiet_libraries() -> None:
    """Keep the HF libraries' logs and bars out of the way; tunekit shows its own progress."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # Encode batches on every core. Saying so explicitly (rather than leaving it unset) also keeps
    # the tokenizers library quiet when a launcher forks and execs (torchrun); tunekit never
    # tokenizes in a forked child, the case its warning is about.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
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
