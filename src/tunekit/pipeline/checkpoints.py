"""Checkpoints a run can resume from: complete ones only, newest first."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from tunekit.runs import RunDir

# What a checkpoint needs for an exact resume: trainer state, weights (full or adapter),
# optimizer and scheduler state, and the RNG states (one file per process when distributed).
CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def checkpoint_step(path: Path) -> Optional[int]:
    """The global step in a checkpoint-N folder name (None for other names)."""
    step = path.name.rpartition("-")[2]
    return int(step) if path.name.startswith("checkpoint-") and step.isdigit() else None


def checkpoint_problem(path: Path) -> Optional[str]:
    """Why a checkpoint folder cannot be resumed from, or None when it is complete."""
    import json

    missing = [name for name in CHECKPOINT_FILES if not (path / name).is_file()]
    if not any(path.glob("*.safetensors")):
        missing.append("weights (*.safetensors)")
    if not any(path.glob("rng_state*.pth")):
        missing.append("rng_state.pth")
    if missing:
        return f"missing {', '.join(missing)}"
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
    except (ValueError, KeyError, UnicodeDecodeError):
        return "trainer_state.json is unreadable"
    return None


def last_checkpoint(run: RunDir, say: Optional[Callable[[str], None]] = None) -> Optional[Path]:
    """The newest complete checkpoint; newer incomplete or unreadable ones are skipped (and said)."""
    if not run.checkpoints.is_dir():
        return None
    numbered = [(checkpoint_step(p), p) for p in run.checkpoints.glob("checkpoint-*")
                if p.is_dir() and checkpoint_step(p) is not None]
    for _, path in sorted(numbered, reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        if say:
            say(f"skipping {path.name}: {problem}")
    return None


def remove_incomplete_checkpoints(run: RunDir, say: Optional[Callable[[str], None]] = None) -> None:
    """After a failed save: delete checkpoint folders that cannot be resumed from (tunekit's own)."""
    import shutil

    if not run.checkpoints.is_dir():
        return
    for path in run.checkpoints.glob("checkpoint-*"):
        if path.is_dir() and checkpoint_step(path) is not None and checkpoint_problem(path) is not None:
            shutil.rmtree(path, ignore_errors=True)
            if say:
                say(f"removed the incomplete {path.name}")
