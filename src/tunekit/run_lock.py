"""One writer per run: an exclusive lock on <run>/.tunekit-lock while a command writes the run.

The lock is an `flock` on the file, so the kernel releases it when its holder dies, however it
dies (`kill -9` included). The file also records the holder's pid and command: a second writer
is told who holds the run, and a lock left by a dead holder is taken over with a warning.
Readers (eval of a finished run, predict, serve) take no lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tunekit.errors import RunDirError
from tunekit.ownership import LOCK_FILE

_held: dict[Path, int] = {}  # folders this process holds -> nesting depth (steps call steps)


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        holder = json.loads(os.read(fd, 65536).decode("utf-8") or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _command() -> str:
    args = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else ["tunekit"]
    return " ".join(args)[:300]


@contextmanager
def run_lock(folder: Path, say=None) -> Iterator[None]:
    """Hold the run's lock for the block (re-entrant within this process)."""
    key = Path(os.path.abspath(folder))
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        who = f"pid {holder.get('pid', '?')}: {holder.get('command', 'another tunekit command')}"
        raise RunDirError(f"{folder} is being written by another tunekit process ({who})",
                          "wait for it to finish (or stop it), or give this command another output folder") from None
    try:
        previous = _read_holder(fd)
        pid = previous.get("pid")
        # a holder that ended cleanly emptied the file: a pid left here means its holder died
        if pid is not None and pid != os.getpid():
            if say is not None:
                say(f"[yellow]warning:[/] taking over the lock of {folder}: its holder (pid {pid}: "
                    f"{previous.get('command', '?')}) is no longer running; its last write may be incomplete")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode("utf-8"), 0)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
            os.ftruncate(fd, 0)  # a clean release leaves no holder to warn about
    finally:
        os.close(fd)  # closing the descriptor releases the flock
