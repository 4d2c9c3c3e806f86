"""The run directory: its layout, content fingerprints, atomic writes and the manifest.

    <run>/recipe.resolved.yaml   <run>/manifest.json
    <run>/data/prepared/  + prepare_report.json     (cached by fingerprint)
    <run>/data/tokenized/ + tokenize_report.json    (cached by fingerprint)
    <run>/checkpoints/  <run>/model/  <run>/eval/metrics.json, predictions.jsonl
    <run>/logs/ (TensorBoard)  <run>/metrics.jsonl  <run>/curves.png
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from tunekit import __version__


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

    @property
    def tokenized(self) -> Path:
        return self.root / "data" / "tokenized"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def metrics_log(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def resolved_recipe(self) -> Path:
        return self.root / "recipe.resolved.yaml"

    def has_training_outputs(self) -> bool:
        """True once a finetune has started writing here (what --overwrite protects)."""
        return any(p.exists() for p in (self.model, self.checkpoints, self.manifest))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_path(path: Path) -> str:
    """Hash a file, or every file of a folder (names and bytes, in sorted order)."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(child.relative_to(path)).encode())
        digest.update(sha256_file(child).encode())
    return digest.hexdigest()


def fingerprint(*parts: Any) -> str:
    """A content fingerprint of JSON-able parts, always including tunekit's version."""
    blob = json.dumps([__version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    """Write a file atomically: a reader sees the old content or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode a plain open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `target`, on failure it vanishes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; models and exports are read by other users
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, target)


def replace_dir(src: Path, target: Path) -> None:
    """Put the finished folder `src` at `target`, replacing what was there. On Linux the two
    folders are exchanged in one atomic step, so a crash at any moment leaves a whole folder
    at `target`; elsewhere the old one is renamed aside first."""
    if target.exists() and exchange(src, target):
        shutil.rmtree(src, ignore_errors=True)  # `src` now holds the previous content
        return
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(src, target)
    shutil.rmtree(old, ignore_errors=True)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EPERM, errno.EOPNOTSUPP):  # not on this filesystem
        return False
    raise OSError(err, os.strerror(err), str(a))


def link_tree(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> None:
    """Copy a folder's entries (but `skip`) by hard links where the filesystem allows."""
    def link_or_copy(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    dst.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        if entry.name in skip:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, dst / entry.name, copy_function=link_or_copy, symlinks=True)
        else:
            link_or_copy(entry, dst / entry.name)


def cached_fingerprint(report_path: Path) -> str | None:
    """The fingerprint stored in a step's report, or None when the step has not run."""
    try:
        return read_json(report_path).get("fingerprint")
    except (OSError, ValueError):
        return None


def environment_info() -> dict:
    """Versions and hardware for the manifest (imports torch: call only from heavy steps)."""
    import platform
    import subprocess

    import datasets
    import torch
    import transformers

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "tunekit": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": commit,
    }
