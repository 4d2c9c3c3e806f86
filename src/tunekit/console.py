"""The one Rich console for human output. It writes to stderr so that stdout stays clean for
`--json` results and `validate --print`.

Created on first use: importing rich.console costs ~40 ms, which `tunekit --help` should not pay.
In a multi-process run only rank 0 prints; errors are printed by every rank (prefixed with it).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from tunekit.pipeline.distributed import rank  # reads the launcher's environment; imports nothing heavy


@lru_cache(maxsize=1)
def get_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, quiet=rank() != 0)


@lru_cache(maxsize=1)
def get_error_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def error_prefix() -> str:
    return f"[rank {rank()}] " if rank() else ""


class _LazyConsole:
    def __getattr__(self, name: str) -> Any:
        return getattr(get_console(), name)


console: Any = _LazyConsole()
