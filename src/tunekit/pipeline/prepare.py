"""prepare: sources -> columns mapped -> cleaned (by the task) -> split -> saved.

Output: <run>/data/prepared (a DatasetDict with the task's columns, e.g. `text` and a ClassLabel
`label`) and <run>/data/prepare_report.json. Reused as is while its fingerprint is unchanged.
The task module decides what a clean row is, how rows group for the split, and what the
report says about them (tasks/__init__.py lists the protocol).

Which splits lose rows to the drop rules (data.clean.splits, default [train]): train, and the
splits carved out of it (they are cleaned with train, before the split). A validation or test
split given as its own file is kept whole, so its scores compare with anyone else's: the rules
only count what they would drop there (rules[split]["would_drop"], and a warning; an error under
strict). Rows that cannot be scored at all (no label, no text to read) go from every split and
are counted and warned about.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from tunekit.errors import DataError
from tunekit.recipe.schema import Columns, Recipe, SplitConfig
from tunekit.runs import RunDir, atomic_dir, cached_fingerprint, fingerprint, read_json, write_json
from tunekit.pipeline.quality import check_splits, filter_rows
from tunekit.pipeline.reading import read_split, source_hashes
from tunekit.tasks import get_task

if TYPE_CHECKING:
    import pandas as pd

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class StepResult:
    fingerprint: str
    report: dict
    reused: bool
    seconds: float


def report_path(run: RunDir) -> Path:
    return run.root / "data" / "prepare_report.json"


def prepare_fingerprint(recipe: Recipe) -> tuple[str, dict]:
    """Fingerprint of everything prepare reads: the data section and the bytes of each source
    (every file a glob matches). `quality.strict` only decides whether warnings stop the run."""
    hashes = source_hashes(recipe.data)
    section = recipe.data.model_dump(mode="json")
    section["quality"].pop("strict")
    return fingerprint("prepare", recipe.task, section, hashes), hashes


def run_prepare(recipe: Recipe, run: RunDir, force: bool = False, sample: Optional[int] = None) -> StepResult:
    """Prepare the run's data, or reuse it while its fingerprint holds. `sample`: a quick look at the
    first N rows of each source; nothing is written (the run directory stays as it was)."""
    start = time.perf_counter()
    fp, hashes = prepare_fingerprint(recipe)
    if not sample and not force and run.prepared.exists() and cached_fingerprint(report_path(run)) == fp:
        report = read_json(report_path(run))
        enforce_strict(report, recipe)
        return StepResult(fp, report, True, time.perf_counter() - start)

    task = get_task(recipe.task)
    data = recipe.data
    frames: dict[str, "pd.DataFrame"] = {}
    rules: dict[str, dict] = {}
    whole = kept_whole(data)
    read_keys: set[str] = set()  # counts of what was read (files, mixture shares), not of rows dropped
    meta: dict = {}
    for split in SPLITS:
        if not getattr(data, split):
            continue
        roles = task.columns(data) if hasattr(task, "columns") else task.COLUMNS  # causal_lm: by data.style
        table, where, read_counts = read_split(data, split, roles, sample=sample)
        if split == "train":
            meta = task.meta(table, data)
        drop = split not in whole
        frames[split], counts = task.clean(table, data, meta, where, drop=drop)
        would = counts.pop("would_drop", {})
        frames[split], quality_counts = filter_rows(frames[split], recipe, task, drop=drop)
        read_keys |= set(read_counts)
        rules[split] = {**read_counts, **counts, **(quality_counts if drop else {})}
        rules[split]["rows_out"] = len(frames[split])
        if not drop:
            rules[split]["would_drop"] = {**would, **quality_counts}

    for split, frame in frames.items():  # a file the recipe names must keep some rows
        if frame.empty:
            dropped = ", ".join(f"{n} {rule}" for rule, n in rules[split].items() if isinstance(n, int)
                                and rule not in ("rows_in", "rows_out") and rule not in read_keys and n)
            raise DataError(f"no {'training' if split == 'train' else split} rows are left after cleaning ({rules[split]['rows_in']} in; "
                            f"dropped: {dropped or 'none'})",
                            "check data.columns, data.labels, data.clean and data.quality against the file's content")
    made = _split_missing(frames, data.split, task)
    if frames["train"].empty:
        raise DataError(f"splitting {rules['train']['rows_out']} rows left none for training",
                        "add data, or lower data.split.validation and data.split.test")
    if data.max_train_rows and len(frames["train"]) > data.max_train_rows:
        frames["train"] = frames["train"].sample(n=data.max_train_rows, random_state=data.split.seed)
    frames = {s: f for s, f in frames.items() if not f.empty}  # a split share that rounded to 0 rows
    # near-duplicates, leakage, label conflicts; drop policies spare the splits kept whole
    frames, quality = check_splits(frames, recipe, task, meta=meta, whole=tuple(s for s in whole if s in frames))
    kept_notes = _kept_whole_warnings(rules, quality, whole, read_keys)

    report = {
        "fingerprint": fp,
        "task": recipe.task,
        "sources": hashes,
        "rules": rules,
        "split_from_train": made,
        "rows": {s: len(f) for s, f in frames.items()},
        "rows_given": {s: rules[s]["rows_in"] for s in frames if s != "train" and s in rules},
        "kept_whole": [s for s in SPLITS if s in whole and s in frames],
        **task.describe(frames, meta),  # e.g. label names and distribution; the task's warnings
        "leakage": _leakage(frames, task),
        "quality": quality,
    }
    report["warnings"] = report.get("warnings", []) + kept_notes + quality.get("warnings", [])
    if sample:
        report["sample"] = sample
    else:
        _save(frames, meta, task, run)
        write_json(report_path(run), report)
    enforce_strict(report, recipe)
    return StepResult(fp, report, False, time.perf_counter() - start)


def kept_whole(data) -> set[str]:
    """Validation/test splits given as their own files and not listed in data.clean.splits."""
    return {s for s in ("validation", "test") if getattr(data, s) and s not in data.clean.splits}


def _kept_whole_warnings(rules: dict, quality: dict, whole: set, read_keys: set) -> list[str]:
    """Per split kept whole: the rows no model can be scored on (left out), and what the drop
    rules would remove (kept). check_splits' would-drop counts join rules[split]["would_drop"]."""
    notes = []
    for split in SPLITS:
        if split not in whole or split not in rules:
            continue
        counts = rules[split]
        would = {**counts.get("would_drop", {}), **(quality.get("counts", {}).get(split, {}).get("would_drop") or {})}
        counts["would_drop"] = would
        unusable = {k: n for k, n in counts.items() if isinstance(n, int) and n and k not in read_keys
                    and k not in ("rows_in", "rows_out", "unanswerable")}
        total = counts["rows_in"]
        if unusable:
            lost = total - counts["rows_out"]
            notes.append(f"{split}: {lost} of its {total} rows cannot be scored and are left out ({_listing(unusable)})")
        matched = {k: n for k, n in would.items() if n}
        if matched:
            notes.append(f"{split} is its own file, kept whole: rows the drop rules match stay and are scored "
                         f"({_listing(matched)}); list {split} in data.clean.splits to drop them")
    return notes


def _listing(counts: dict) -> str:
    return ", ".join(f"{k.replace('_', ' ')}: {n}" for k, n in counts.items())


def enforce_strict(report: dict, recipe: Recipe) -> None:
    """data.quality.strict (--strict): a data warning stops the run with exit code 2. The prepared
    data stays saved, so a rerun after fixing nothing else is instant."""
    warnings = report.get("warnings") or []
    if recipe.data.quality.strict and warnings:
        more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
        raise DataError(f"strict mode: {warnings[0]}{more}",
                        "fix the data (tunekit prepare lists every warning), or drop --strict / data.quality.strict")


def select_columns(raw: "pd.DataFrame", cols: Columns, roles, where: str) -> "pd.DataFrame":
    """Keep the columns of the task's roles (data.columns maps each to a source column), renamed
    to the role names. An optional `id` role is made up from the row number when absent.

    A dotted name reaches into nested records: `sentences.abstract` is the `abstract` field of
    each row's `sentences` object (JSON sources keep such objects as they are)."""
    import pandas as pd

    present = {}
    for role in roles:
        column = getattr(cols, role)
        head, _, path = column.partition(".")
        if column in raw.columns:
            present[role] = raw[column]
        elif path and head in raw.columns and _nested(raw[head], path) is not None:
            present[role] = _nested(raw[head], path)
        elif role == "id":
            present[role] = pd.Series([str(i) for i in range(len(raw))], index=raw.index)
        else:
            have = ", ".join(map(str, raw.columns)) or "no columns"
            raise DataError(f"{where} has no column {column!r} (data.columns.{role}); it has: {have}",
                            f"set data.columns.{role} to one of the columns above")
    return pd.DataFrame(present)


def _nested(column: "pd.Series", path: str):
    """The field at `path` (dotted) of each record in `column`; None when no row has it."""
    def get(value):
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return value

    values = column.map(get)
    return values if values.notna().any() else None


def text_value(value) -> "str | None":
    """A text cell as a string: a list (or mapping) of strings is joined with spaces, in order,
    so nested sources (sentence lists, summaries in parts) read as one text. None if not text."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy arrays from parquet/arrow
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return " ".join(v.strip() for v in value)
    return None


def clean_text(value, normalize: bool) -> "str | None":
    """text_value, then whitespace collapsed (data.clean.normalize_whitespace) or the ends stripped."""
    text = text_value(value)
    if text is None:
        return None
    return " ".join(text.split()) if normalize else text.strip()


def _split_missing(frames: dict, cfg: SplitConfig, task) -> list[str]:
    """Carve validation/test out of train when the recipe gives no file for them.

    The task groups rows into units that stay together (a QA passage's questions) and strata
    that are split alike (a classifier's labels); shares are taken of each stratum's units."""
    wanted = {s: share for s, share in (("validation", cfg.validation), ("test", cfg.test))
              if s not in frames and share > 0}
    if not wanted:
        return []
    train = frames["train"]
    rng = random.Random(cfg.seed)
    picked: dict[str, list] = {s: [] for s in wanted}
    rest: list = []
    for units in task.split_units(train, cfg.stratify):
        rng.shuffle(units)
        start = 0
        for split, share in wanted.items():
            n = int(round(len(units) * share))
            picked[split].extend(i for unit in units[start:start + n] for i in unit)
            start += n
        rest.extend(i for unit in units[start:] for i in unit)
    for split, idx in picked.items():
        frames[split] = train.loc[sorted(idx)].reset_index(drop=True)
    frames["train"] = train.loc[sorted(rest)].reset_index(drop=True)
    return list(wanted)


def _leakage(frames: dict, task) -> dict[str, int]:
    keys = {s: set(task.leakage_key(f)) for s, f in frames.items()}
    names = list(keys)
    return {f"{a}/{b}": len(keys[a] & keys[b]) for i, a in enumerate(names) for b in names[i + 1:]}


def _save(frames: dict, meta: dict, task, run: RunDir) -> None:
    import datasets

    dd = datasets.DatasetDict({s: task.to_dataset(f, meta) for s, f in frames.items()})
    with atomic_dir(run.prepared) as tmp:
        dd.save_to_disk(str(tmp))
