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


class DiskError(TunekitError):
    """The disk refused a write: full, over a size limit or quota, read-only, or not permitted."""


# errno -> (what is wrong, what to do); matched on the error chain's errno or its text, since
# pyarrow, safetensors and torch wrap the OS error in their own exception types
_DISK_PROBLEMS = {
    28: ("no space left on the device", "free some space (or choose another output_dir), then rerun"),
    27: ("no space left: a file grew past the size this process may write (File too large)",
         "raise the file size limit (ulimit -f) or free space, then rerun"),
    122: ("no space left: the disk quota is exceeded", "free some space within your quota, then rerun"),
    30: ("the output folder is on a read-only filesystem", "choose a writable output folder"),
    13: ("permission denied writing", "choose a folder you can write to, or fix its permissions"),
}
_DISK_TEXTS = {"No space left": 28, "File too large": 27, "FileTooLarge": 27, "Disk quota exceeded": 122,
               "Read-only file system": 30, "ReadOnlyFilesystem": 30, "StorageFull": 28}


def disk_error(exc: BaseException) -> "DiskError | None":
    """A DiskError for a failed write anywhere in `exc`'s chain, or None for other errors."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, "errno", None)
        if code not in _DISK_PROBLEMS:
            code = next((c for text, c in _DISK_TEXTS.items() if text in str(exc)), None)
        if code in _DISK_PROBLEMS:
            what, hint = _DISK_PROBLEMS[code]
            where = getattr(exc, "filename", None)
            return DiskError(f"{what}{f' ({where})' if where else ''}", hint)
        exc = exc.__cause__ or exc.__context__
    return None
