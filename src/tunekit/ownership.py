"""Which folders tunekit may write, replace or delete: only the ones it made and marked.

A run folder (and an export, merge or push --to folder) is tunekit's when it holds the marker
file `.tunekit-run`, written before anything else goes in. tunekit creates a new folder or takes
an empty one; a non-empty folder without the marker is refused, `--overwrite` included, and so
are places no tool should own: the filesystem root, the home folder, the working directory, a
folder that holds the recipe or the data.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Iterable, Optional

from tunekit import __version__
from tunekit.errors import RunDirError

MARKER = ".tunekit-run"
LOCK_FILE = ".tunekit-lock"
_OLD_RUN_SIGNS = ("manifest.json", "recipe.resolved.yaml", "data/prepare_report.json")


def expand(path: str | Path) -> Path:
    """`~` and `~user` expanded, as a shell would (a recipe's `output_dir: ~/runs/x` included)."""
    return Path(os.path.expanduser(str(path)))


def is_owned(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def marker_info(folder: Path) -> dict:
    try:
        info = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def refuse_reserved(folder: Path, what: str) -> None:
    """The filesystem root, the home folder and the working directory are never a run or output;
    a file where a folder of the path should be is named too."""
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(f"{what} {folder}: {parent} is a file, not a folder",
                                  "give a path whose folders are folders")
            break
    target = folder.resolve()
    reserved = {Path(target.anchor): "the filesystem root", Path.home().resolve(): "your home folder",
                Path.cwd().resolve(): "the working directory"}
    if target in reserved:
        raise RunDirError(f"{what} {folder} is {reserved[target]}: tunekit only writes into folders it owns",
                          "give a folder of its own, e.g. runs/NAME")


def refuse_holding(folder: Path, inputs: Iterable[Path], what: str) -> None:
    """A run that would hold the recipe or the data could replace or delete them, and one inside a
    model or data folder would change that folder: both refused."""
    target = folder.resolve()
    for item in inputs:
        path = expand(item).resolve()
        if path == target or target in path.parents:
            raise RunDirError(f"{what} {folder} holds {item}, an input of this run",
                              "give the run a folder of its own, e.g. runs/NAME")
        if path.is_dir() and path in target.parents:
            raise RunDirError(f"{what} {folder} lies inside {item}, an input of this run",
                              "give the run a folder of its own, outside its inputs, e.g. runs/NAME")


def describe_contents(folder: Path, limit: int = 5) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_claimable(folder: Path, what: str = "output_dir") -> None:
    """Refuse, writing nothing, a folder tunekit may not take: a file in the way, a reserved place,
    a non-empty folder without the marker."""
    refuse_reserved(folder, what)
    if folder.exists() and not folder.is_dir():
        raise RunDirError(f"{what} {folder} is a file, not a folder", "give a folder path, e.g. runs/NAME")
    if folder.is_dir() and not is_owned(folder) and any(folder.iterdir()):
        looks_old = any((folder / sign).exists() for sign in _OLD_RUN_SIGNS)
        hint = (f"a run written by tunekit before 0.2 has no marker: if this is one, mark it with "
                f"`echo '{{}}' > {folder / MARKER}`, or choose a new folder"
                if looks_old else "choose a new or empty folder; tunekit never writes into a folder it did not make")
        raise RunDirError(f"{what} {folder} is not empty and is not a tunekit folder "
                          f"(it holds {describe_contents(folder)})", hint)


def claim(folder: Path, kind: str, what: str = "output_dir") -> Path:
    """Make `folder` tunekit's, or check that it is: create it (or take it while empty) and write
    the marker before anything else goes in."""
    folder = expand(folder)
    check_claimable(folder, what)
    if not is_owned(folder):
        folder.mkdir(parents=True, exist_ok=True)
        write_marker(folder, kind)
    return folder


def write_marker(folder: Path, kind: str, run_id: Optional[str] = None) -> None:
    info = {"kind": kind, "id": run_id or uuid.uuid4().hex, "tunekit": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:  # O_EXCL: two commands starting on one new folder keep the first marker
        fd = os.open(folder / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(info) + "\n")


def check_output(target: Path, overwrite: bool, protected: dict[str, Path], flag: str,
                 run_part: Optional[str] = None) -> Path:
    """An export, merge, push --to or eval --out folder: never the run, a parent of it, its model
    folder or `.`; replaced only when tunekit made it and --overwrite says so. `run_part`: the
    name this output has inside a run (eval, onnx, merged), which the run's marker covers."""
    target = expand(target)
    refuse_reserved(target, flag)
    resolved = target.resolve()
    for name, path in protected.items():
        path = path.resolve()
        if resolved == path or resolved in path.parents:
            raise RunDirError(f"{flag} {target} is {name if resolved == path else f'a parent of {name}'} {path}",
                              "choose a new folder for the output, e.g. next to the run")
        if name == "the model folder" and path in resolved.parents:
            raise RunDirError(f"{flag} {target} lies inside the model folder {path}",
                              "choose a folder outside it")
    if target.exists() and not target.is_dir():
        raise RunDirError(f"{flag} {target} is a file, not a folder", "give a folder path")
    if target.is_dir() and any(target.iterdir()):
        if not (is_owned(target) or (target.name == run_part and is_owned(target.parent))):
            raise RunDirError(f"{flag} {target} is not empty and is not a tunekit folder "
                              f"(it holds {describe_contents(target)})",
                              "choose a new or empty folder; --overwrite only replaces folders tunekit made")
        if not overwrite:
            raise RunDirError(f"{flag} {target} already exists", "pass --overwrite to replace it, or choose another")
    return target


def require_owned(run: Path, what: str) -> None:
    """Writing an output into a run folder (its eval/, onnx/, merged/) needs the run to be tunekit's."""
    if not is_owned(run):
        raise RunDirError(f"{run} is not marked as a tunekit run ({run / MARKER} is missing), so tunekit does "
                          f"not write {what} into it",
                          f"pass --out DIR for the output, or mark a run of an earlier tunekit with "
                          f"`echo '{{}}' > {run / MARKER}`")


def protected_paths(info) -> dict[str, Path]:
    """What an output of a model (a ModelInfo) must never replace: its run and its model folder."""
    run = info.run.root if info.run is not None else None
    if run is None and is_owned(info.model_dir.parent):  # `--model RUN/model` still names a run
        run = info.model_dir.parent
    return {**({"the run": run} if run is not None else {}), "the model folder": info.model_dir}


def new_folder(parent: Path, stem: str) -> Path:
    """A new folder `stem-YYYYmmdd-HHMMSS[-N]` under `parent`, made here (so no one else's)."""
    base = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1000):
        folder = parent / (base if n == 0 else f"{base}-{n}")
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            continue
        write_marker(folder, stem)
        return folder
    raise RunDirError(f"cannot make a new folder {base} in {parent}", "pass --out DIR")
