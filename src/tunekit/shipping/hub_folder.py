"""The folder `tunekit push` ships: which model files go in, the checks they pass, and how the
folder is written (for an upload or for `--to DIR`).

What ships is an allowlist (DESIGN 5b): weights as safetensors, the model and generation
configs, the adapter's config, the tokenizer's files and tunekit's own two JSON files, each at the
top of the model folder. push adds the model card (README.md) and the run's eval/metrics.json.
Everything else in the folder (notes, env files, keys, other folders) is left out and listed as
skipped. Before anything is written or sent, every file of the plan is scanned for secrets and
for local paths (`scan_plan`).

A plan maps each path in the repo to its content: a local file to copy, or bytes (the model
card). The same plan is listed by --dry-run, written to a temporary folder for an upload, and
written atomically to --to DIR, so the three always agree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

from tunekit.errors import TunekitError
from tunekit.model_info import INFO_FILE, home_folder, local_path, payload_of, portable_ref

Content = Union[Path, bytes]
Plan = dict[str, Content]          # repo path (posix, relative) -> what to write there

ALLOWED_FILES = frozenset({
    "config.json", "generation_config.json", "adapter_config.json", "adapter_model.safetensors",
    "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer.model", "spiece.model",
    "sentencepiece.model", "sentencepiece.bpe.model", "chat_template.jinja", "chat_template.json",
    "tunekit.json", "tunekit_adapter.json",
})
ALLOWED_PATTERNS = ("model*.safetensors", "*.spm")  # sharded weights; Marian's source/target.spm
ALLOWED_FOLDERS = {"additional_chat_templates": "*.jinja"}  # transformers' extra named chat templates
# Pickle can run code when loaded: weights in this format (and their index) ship only with --allow-pickle.
PICKLE_WEIGHTS = ("pytorch_model*.bin", "adapter_model.bin")
PICKLE_INDEX = "pytorch_model.bin.index.json"
WEIGHTS = ("model*.safetensors", "adapter_model.safetensors")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
# A vocabulary may hold any string, "/root" or "/home" among them: it (and weights) is not
# searched for local paths, only for secrets.
NO_PATH_SCAN = ("tokenizer.json", "vocab.json", "vocab.txt", "merges.txt", "*.model", "*.spm") + WEIGHTS + PICKLE_WEIGHTS
# What a Trainer leaves beside a model that a user of the model does not need.
TRAINING_STATE = {"optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json", "training_args.bin"}

# Secret shapes: (what it looks like, pattern). A hit refuses the push; the secret is never shown.
# No lookbehinds (they make a search ~40x slower): a hit right after a letter or digit is skipped in code.
SECRET_SHAPES = (
    ("a Hugging Face token", re.compile(rb"hf_[A-Za-z0-9]{30,}")),
    ("an AWS access key id", re.compile(rb"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")),
    ("a private key", re.compile(rb"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY( BLOCK)?-----")),
    ("a GitHub token", re.compile(rb"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}")),
    ("an OpenAI or Anthropic API key",
     re.compile(rb"sk-(?:(?:proj|svcacct|admin|ant-[a-z]+\d*)-[A-Za-z0-9_-]{32,}"
                rb"|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})")),
)
TEXT_SUFFIXES = (".json", ".txt", ".jinja", ".md")  # a hit there is reported with its line number
BLOCK, OVERLAP = 16 << 20, 4096                     # big files are scanned in blocks that overlap
HEADER_LIMIT = 100 << 20                             # safetensors caps its JSON header at 100 MB
# Where model files name the base model, or a folder they were loaded from (older runs, older
# transformers): rewritten in what ships, the model folder itself is left as it is.
BASE_KEYS = {INFO_FILE: "base_model", "tunekit_adapter.json": "base_model",
             "adapter_config.json": "base_model_name_or_path"}
PATH_KEYS = {"config.json": "_name_or_path", "tokenizer_config.json": "name_or_path"}


class FolderError(TunekitError):
    """The model folder holds something that must not be shipped."""


def check_repo_path(rel: str) -> None:
    """A path inside the repo: relative, no `..`, no empty or odd parts (the Hub would refuse them,
    and a path that climbs out could write outside --to DIR)."""
    if (not rel or rel.startswith("/") or "\\" in rel or os.path.isabs(rel)
            or any(part in ("", ".", "..") for part in rel.split("/"))):
        raise FolderError(f"refusing to ship {rel!r}: paths must stay inside the model folder",
                          "remove or rename that file in the model folder")


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def _allowed(rel: str, allow_pickle: bool) -> bool:
    folder, _, name = rel.rpartition("/")
    if folder:
        return folder in ALLOWED_FOLDERS and "/" not in folder and fnmatchcase(name, ALLOWED_FOLDERS[folder])
    return (name in ALLOWED_FILES or _matches(name, ALLOWED_PATTERNS)
            or (allow_pickle and (_matches(name, PICKLE_WEIGHTS) or name == PICKLE_INDEX)))


def _why_skipped(rel: str, is_dir: bool, is_link: bool) -> str:
    name = rel.rstrip("/").rpartition("/")[2]
    if is_link:
        return "a symbolic link"
    if rel == "README.md":
        return "replaced by the generated model card"
    if name in TRAINING_STATE or name.startswith(("checkpoint-", "rng_state", "events.out.tfevents")):
        return "training state"
    return "folder not on the allowlist" if is_dir else "not on the allowlist"


def model_plan(model_dir: Path, allow_pickle: bool) -> tuple[Plan, list[dict]]:
    """The allowlisted files of a model folder, and [{path, reason}] for everything left out.
    Refuses an allowlisted name that is a link or not a plain file (a link may point anywhere: it
    would ship another file's bytes), pickle-format weights unless allow_pickle, and a folder with
    no weights."""
    plan: Plan = {}
    skipped: list[dict] = []
    pickles: list[str] = []

    def visit(folder: Path, prefix: str) -> None:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            rel, is_link = prefix + entry.name, entry.is_symlink()
            is_dir = not is_link and entry.is_dir(follow_symlinks=False)
            if is_dir and not prefix and entry.name in ALLOWED_FOLDERS:
                visit(Path(entry.path), rel + "/")
                continue
            if not is_dir and _matches(entry.name, PICKLE_WEIGHTS) and not prefix:
                pickles.append(rel)
            if is_dir or not _allowed(rel, allow_pickle):
                skipped.append({"path": rel + "/" if is_dir else rel, "reason": _why_skipped(rel, is_dir, is_link)})
                continue
            if is_link:
                raise FolderError(f"{entry.path} is a symbolic link; the shipped folder may hold only plain files",
                                  "replace the link with a copy of the file it points to, or remove it")
            if not stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                raise FolderError(f"{entry.path} is not a regular file", "remove it from the model folder")
            check_repo_path(rel)
            plan[rel] = Path(entry.path)

    visit(Path(model_dir), "")
    if pickles and not allow_pickle:
        raise FolderError(f"{model_dir} holds pickle-format weights ({', '.join(sorted(pickles))}): "
                          "loading pickle can run arbitrary code, so only safetensors ship by default",
                          "save the model as safetensors (save_pretrained does by default), "
                          "or pass --allow-pickle to ship them anyway")
    if not any(_matches(rel, WEIGHTS + (PICKLE_WEIGHTS if allow_pickle else ())) for rel in plan):
        raise FolderError(f"{model_dir} holds no model weights (model*.safetensors or adapter_model.safetensors)",
                          "train it first: tunekit finetune RECIPE, or point at the folder save_pretrained wrote")
    return plan, skipped


# ---- no path of this machine in what ships (DESIGN 5b) -------------------------------------------

def shipped_base(info, hub_id: Optional[str], to: Optional[Path]) -> Optional[str]:
    """The base model as the shipped files name it: pkg:// and Hub ids as they are; a local folder
    as the --base-model Hub id when one is given, else by its path relative to --to DIR (a local
    export still finds it), else as `./NAME` (an upload: this machine's folders mean nothing there)."""
    where = local_path(info.base_model, info.model_dir)
    if where is None:
        return info.base_model
    return hub_id or portable_ref(str(where), to)


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _json_of(content: Content) -> Any:
    try:
        return json.loads(content if isinstance(content, bytes) else content.read_bytes())
    except (OSError, ValueError):
        return None  # not ours to fix: the scan still reads it


def localize(plan: Plan, info, base: Optional[str], to: Optional[Path]) -> None:
    """Rewrite, in the plan only, what names a folder of this machine: the base model in tunekit.json
    (written from the settings find_model read when the folder has none: a merge, an older run),
    tunekit_adapter.json and adapter_config.json, and a config's record of where it was loaded from."""
    own = _json_of(plan[INFO_FILE]) if INFO_FILE in plan else None
    plan[INFO_FILE] = json_bytes(own if isinstance(own, dict) else payload_of(info))
    for rel, key in {**BASE_KEYS, **PATH_KEYS}.items():
        data = _json_of(plan[rel]) if rel in plan else None
        value = data.get(key) if isinstance(data, dict) else None
        where = local_path(value, info.model_dir) if isinstance(value, str) else None
        if where is None:
            continue
        if rel in BASE_KEYS:
            data[key] = base
        else:
            data[key] = "." if where == info.model_dir.resolve() else portable_ref(str(where), to)
        plan[rel] = json_bytes(data)


def _local_string(value: Any, anywhere: bool = False) -> bool:
    """An absolute path (or ~/...) of this machine; `anywhere`: any such path, else only one that
    exists or lies in the home folder (a label such as "/r/news" is left alone)."""
    if not isinstance(value, str) or "\n" in value or not (value.startswith("~") or os.path.isabs(value)):
        return False
    if anywhere:
        return True
    path, home = Path(value).expanduser(), home_folder()
    return path.exists() or (home is not None and path.is_relative_to(home))


def portable_json(value: Any, key: Optional[str] = None) -> Any:
    """A JSON value (the run's eval metrics) with this machine's paths replaced: "model" (older
    evals wrote the scored folder's path) by `.`, the shipped folder; any other by `./NAME`."""
    if isinstance(value, dict):
        return {k: portable_json(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [portable_json(v) for v in value]
    if _local_string(value, anywhere=key in ("model", "data")):
        return "." if key == "model" else portable_ref(value, None)
    return value


def portable_recipe(text: Optional[str]) -> Optional[str]:
    """The resolved recipe for the card with every absolute path (model, data, output_dir) shown
    as `./NAME`; None when it cannot be read (the card then leaves it out)."""
    import yaml

    if not text:
        return text

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return portable_ref(value, None) if _local_string(value, anywhere=True) else value

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return yaml.safe_dump(walk(data), sort_keys=False, allow_unicode=True)


def local_roots(info, to: Optional[Path]) -> list[str]:
    """Folders of this machine that no shipped file may name: the home folder, the run, the model
    folder, a local base model and --to DIR."""
    roots = [home_folder(), info.model_dir.resolve(), info.run.root.resolve() if info.run else None,
             local_path(info.base_model, info.model_dir), to.resolve() if to is not None else None]
    return [str(root) for root in roots if root is not None and len(root.parts) > 1]


def content_size(content: Content) -> int:
    return len(content) if isinstance(content, bytes) else content.stat().st_size


def listing(plan: Plan) -> list[dict]:
    """[{path, size}] in path order: what --dry-run and --json show."""
    return [{"path": rel, "size": content_size(plan[rel])} for rel in sorted(plan)]


def _blocks(content: Content, rel: str) -> Iterator[tuple[int, bytes]]:
    """(line number of the block's first byte, bytes) for the parts of a file worth scanning: all of
    it, but of safetensors weights only the JSON header (the rest is numbers)."""
    if isinstance(content, bytes):
        yield 1, content
        return
    with open(content, "rb") as fh:
        if rel.endswith(".safetensors"):
            head = fh.read(8)
            size = int.from_bytes(head, "little") if len(head) == 8 else 0
            yield 1, head + fh.read(min(size, HEADER_LIMIT))
            return
        line, tail = 1, b""
        while block := fh.read(BLOCK):
            data = tail + block
            yield line - tail.count(b"\n"), data
            line += block.count(b"\n")
            tail = data[-OVERLAP:]


def scan_plan(plan: Plan, token: Optional[str] = None, local_paths: Iterable[str] = ()) -> None:
    """Refuse the plan if any file (weights: their header) holds a secret's shape or the access
    token, or if a file other than weights and vocabularies names one of `local_paths` (folders of
    this machine: the home folder, the run). The error names the file, the line and the kind of
    secret, never the secret itself."""
    shapes = list(SECRET_SHAPES)
    if token and len(token) >= 8:
        shapes.insert(0, ("your Hub access token", re.compile(re.escape(token.encode()))))
    paths = sorted({p.rstrip("/") for p in local_paths if p and len(p.rstrip("/")) > 1}, key=len, reverse=True)
    where_re = re.compile(b"|".join(re.escape(p.encode()) + rb"(?![\w.-])" for p in paths)) if paths else None
    for rel in sorted(plan):
        for first_line, data in _blocks(plan[rel], rel):
            for kind, pattern in shapes:
                hit = next((m for m in pattern.finditer(data) if not data[m.start() - 1:m.start()].isalnum()), None)
                if hit:
                    raise FolderError(f"{rel} contains what looks like {kind}{_at(rel, data, hit, first_line)}; "
                                      "refusing to ship it",
                                      "remove it from that file and revoke it (a secret in a model folder may "
                                      "have been copied elsewhere); nothing was written or uploaded")
            hit = where_re.search(data) if where_re and not _matches(rel, NO_PATH_SCAN) else None
            if hit:
                raise FolderError(f"{rel} contains the local path {hit.group().decode(errors='replace')}"
                                  f"{_at(rel, data, hit, first_line)}; refusing to ship it", PATH_HINT)
        if paths and rel.endswith(".json") and not _matches(rel, NO_PATH_SCAN):  # the scan after localize()
            found = _local_value(_json_of(plan[rel]))
            if found is not None:  # any other folder of this machine a config names (one that exists)
                raise FolderError(f"{rel} contains the local path {found[1]} (key {found[0]}); refusing to ship it",
                                  PATH_HINT)


PATH_HINT = ("remove the path from that file (tunekit writes none into a model folder; an older version or "
             "another tool may have); nothing was written or uploaded")


def _local_value(value: Any, key: str = "") -> Optional[tuple[str, str]]:
    """(key path, value) of the first string in a JSON value that is a path of this machine."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return (key or "(top)", value) if _local_string(value) else None
    for k, v in items:
        found = _local_value(v, f"{key}.{k}" if key else str(k))
        if found is not None:
            return found
    return None


def _at(rel: str, data: bytes, hit: re.Match, first_line: int) -> str:
    if not rel.endswith(TEXT_SUFFIXES):
        return " (in its header)" if rel.endswith(".safetensors") else ""
    line = first_line + data.count(b"\n", 0, hit.start())
    return f" (line {line})"


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
    contains `secret` (the access token: belt and braces, scan_plan checked the plan already)."""
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
