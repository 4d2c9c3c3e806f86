"""The folder `tunekit push` ships: which model files go in, the checks they pass, and how the
folder is written (for an upload or for `--to DIR`).

A plan maps each path in the repo to its content: a local file to copy, or bytes (the model
card). The same plan is listed by --dry-run, written to a temporary folder for an upload, and
written atomically to --to DIR, so the three always agree.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path, PurePosixPath
from typing import Union

from tunekit.errors import TunekitError

Content = Union[Path, bytes]
Plan = dict[str, Content]          # repo path (posix, relative) -> what to write there

# Pickle can run code when loaded: weights in these formats need --allow-pickle.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
# Weight files are big and binary: the secret scan skips them (a token cannot get in there).
WEIGHT_SUFFIXES = PICKLE_SUFFIXES + (".safetensors", ".gguf", ".onnx", ".h5", ".msgpack")
# What a Trainer leaves beside a model that a user of the model does not need.
TRAINING_STATE = {"optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json", "training_args.bin"}
SKIPPED_DIRS = {"checkpoints", "logs", "runs", "__pycache__"}


class FolderError(TunekitError):
    """The model folder holds something that must not be shipped."""


def _skipped(rel: PurePosixPath) -> bool:
    """Training state, logs, checkpoints, hidden files, and a README (the card replaces it)."""
    name = rel.name
    if any(part.startswith(".") or part.startswith("checkpoint-") or part in SKIPPED_DIRS for part in rel.parts):
        return True
    return (name in TRAINING_STATE or name.startswith(("rng_state", "events.out.tfevents"))
            or name.endswith(".log") or str(rel) == "README.md")


def check_repo_path(rel: str) -> None:
    """A path inside the repo: relative, no `..`, no empty or odd parts (the Hub would refuse them,
    and a path that climbs out could write outside --to DIR)."""
    if (not rel or rel.startswith("/") or "\\" in rel or os.path.isabs(rel)
            or any(part in ("", ".", "..") for part in rel.split("/"))):
        raise FolderError(f"refusing to ship {rel!r}: paths must stay inside the model folder",
                          "remove or rename that file in the model folder")


def model_plan(model_dir: Path, allow_pickle: bool) -> Plan:
    """The shippable files of a model folder. Refuses symlinks (they may point anywhere: a
    link would ship another file's bytes, or break on the receiving side) and, unless
    allow_pickle, pickle-format weights."""
    plan: Plan = {}
    pickles: list[str] = []
    for dirpath, dirnames, filenames in os.walk(model_dir, followlinks=False):
        here = Path(dirpath)
        for name in sorted(dirnames + filenames):
            path = here / name
            rel = PurePosixPath(path.relative_to(model_dir).as_posix())
            if _skipped(rel):
                if name in dirnames:
                    dirnames.remove(name)  # never walk into checkpoints or logs
                continue
            if path.is_symlink():
                raise FolderError(f"{path} is a symbolic link; the shipped folder may hold only plain files",
                                  "replace the link with a copy of the file it points to, or remove it")
            if name in dirnames:
                continue
            if not stat.S_ISREG(path.stat().st_mode):
                raise FolderError(f"{path} is not a regular file", "remove it from the model folder")
            check_repo_path(str(rel))
            if rel.suffix.lower() in PICKLE_SUFFIXES:
                pickles.append(str(rel))
            plan[str(rel)] = path
    if pickles and not allow_pickle:
        raise FolderError(f"{model_dir} holds pickle-format weights ({', '.join(sorted(pickles))}): "
                          "loading pickle can run arbitrary code, so only safetensors ship by default",
                          "save the model as safetensors (save_pretrained does by default), "
                          "or pass --allow-pickle to ship them anyway")
    if not plan:
        raise FolderError(f"{model_dir} holds no model files", "train it first: tunekit finetune RECIPE")
    return plan


def content_size(content: Content) -> int:
    return len(content) if isinstance(content, bytes) else content.stat().st_size


def listing(plan: Plan) -> list[dict]:
    """[{path, size}] in path order: what --dry-run and --json show."""
    return [{"path": rel, "size": content_size(plan[rel])} for rel in sorted(plan)]


def write_plan(plan: Plan, dest: Path, link: bool = False) -> None:
    """Write the plan into the (empty) folder `dest`. link=True hard-links model files where the
    file system allows (a temporary upload folder need not copy gigabytes of weights)."""
    for rel in sorted(plan):
        check_repo_path(rel)
        target = dest.joinpath(*rel.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        content = plan[rel]
        if isinstance(content, bytes):
            target.write_bytes(content)
            continue
        if link:
            try:
                os.link(content, target)
                continue
            except OSError:  # another file system, or links not allowed: copy instead
                pass
        shutil.copyfile(content, target)


def verify_tree(root: Path, secret: str | None = None) -> None:
    """The written folder holds only plain files at safe paths, and no file but a weight file
    contains `secret` (the access token: belt and braces, nothing should ever write it)."""
    needle = secret.encode() if secret else None
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            check_repo_path(rel)
            if path.is_symlink() or (name in filenames and not stat.S_ISREG(path.lstat().st_mode)):
                raise FolderError(f"the staged folder holds {rel}, which is not a plain file",
                                  "remove links and special files from the model folder")
            if needle and name in filenames and not name.lower().endswith(WEIGHT_SUFFIXES) \
                    and needle in path.read_bytes():
                raise FolderError(f"{rel} contains your access token; refusing to ship it",
                                  "remove the token from that file (and revoke the token if it was shared)")
