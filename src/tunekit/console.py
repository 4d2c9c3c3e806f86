"""The one Rich console for human output. It writes to stderr so that stdout stays clean for
`--json` results and `validate --print`.

Created on first use: importing rich.console costs ~40 ms, which `tunekit --help` should not pay.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def get_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class _LazyConsole:
    def __getattr__(self, name: str) -> Any:
        return getattr(get_console(), name)


console: Any = _LazyConsole()
