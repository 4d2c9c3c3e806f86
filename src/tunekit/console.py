"""The one Rich console for human output. It writes to stderr so that stdout stays clean for
`--json` results and `validate --print`."""

from rich.console import Console

console = Console(stderr=True, highlight=False)
