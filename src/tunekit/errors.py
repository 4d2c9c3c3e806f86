"""Errors a user can cause, and the exit codes the CLI maps them to.

A TunekitError carries one line saying what is wrong and one saying what to do. The CLI
prints both without a traceback (set TUNEKIT_DEBUG=1 to see it) and exits with `exit_code`.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_GATE_FAILED = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class TunekitError(Exception):
    """A problem with the user's input: recipe, data, model reference or run directory."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class RecipeError(TunekitError):
    """The recipe file is missing, unreadable or invalid."""


class DataError(TunekitError):
    """A data source is missing, unreadable, or its content breaks a rule."""


class ModelError(TunekitError):
    """A model reference cannot be resolved or loaded."""


class RunDirError(TunekitError):
    """The run directory is in a state that forbids the requested step."""


class GateFailed(TunekitError):
    """An evaluation threshold (`--min`) was not met."""

    exit_code = EXIT_GATE_FAILED
