"""prepare: sources -> columns mapped -> cleaned -> labels encoded -> split -> saved.

Output: <run>/data/prepared (a DatasetDict with `text` and a ClassLabel `label`) and
<run>/data/prepare_report.json. Reused as is while its fingerprint is unchanged.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tunekit.errors import DataError
from tunekit.recipe.schema import Columns, DataConfig, Recipe, SplitConfig
from tunekit.runs import (RunDir, atomic_dir, cached_fingerprint, fingerprint, read_json,
                          sha256_path, write_json)
from tunekit.sources import load_table, resolve_data_path
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
    """Fingerprint of everything prepare reads: the data section and the bytes of each source."""
    hashes = {}
    for split in SPLITS:
        ref = getattr(recipe.data, split)
        if ref:
            hashes[split] = {"ref": ref, "sha256": sha256_path(resolve_data_path(ref))}
    return fingerprint("prepare", recipe.task, recipe.data.model_dump(mode="json"), hashes), hashes


def run_prepare(recipe: Recipe, run: RunDir, force: bool = False) -> StepResult:
    start = time.perf_counter()
    fp, hashes = prepare_fingerprint(recipe)
    if not force and run.prepared.exists() and cached_fingerprint(report_path(run)) == fp:
        return StepResult(fp, read_json(report_path(run)), True, time.perf_counter() - start)

    task = get_task(recipe.task)
    data = recipe.data
    frames: dict[str, "pd.DataFrame"] = {}
    rules: dict[str, dict] = {}
    names: list[str] = []
    for split in SPLITS:
        ref = getattr(data, split)
        if not ref:
            continue
        where = f"{split} data ({ref})"
        table = select_columns(load_table(ref, data.format, split), data.columns, where)
        if split == "train":
            names = task.label_names(table["label"], data.labels)
        frames[split], rules[split] = clean_rows(table, data, task, names, where)

    for split, frame in frames.items():  # a file the recipe names must keep some rows
        if frame.empty:
            dropped = ", ".join(f"{n} {rule}" for rule, n in rules[split].items()
                                if rule not in ("rows_in", "rows_out") and n)
            raise DataError(f"no {'training' if split == 'train' else split} rows are left after cleaning ({rules[split]['rows_in']} in; "
                            f"dropped: {dropped or 'none'})",
                            "check data.columns, data.labels and data.clean against the file's content")
    made = _split_missing(frames, data.split, data.split.stratify)
    if frames["train"].empty:
        raise DataError(f"splitting {rules['train']['rows_out']} rows left none for training",
                        "add data, or lower data.split.validation and data.split.test")
    if data.max_train_rows and len(frames["train"]) > data.max_train_rows:
        frames["train"] = frames["train"].sample(n=data.max_train_rows, random_state=data.split.seed)
    frames = {s: f for s, f in frames.items() if not f.empty}  # a split share that rounded to 0 rows
    warnings = task.check_data({s: f["label"].tolist() for s, f in frames.items()}, names)

    report = {
        "fingerprint": fp,
        "task": recipe.task,
        "sources": hashes,
        "rules": rules,
        "split_from_train": made,
        "rows": {s: len(f) for s, f in frames.items()},
        "label_names": names,
        "label_distribution": {
            s: {names[i]: int((f["label"] == i).sum()) for i in range(len(names))} for s, f in frames.items()
        },
        "leakage": _leakage(frames),
        "warnings": warnings,
    }
    _save(frames, names, run)
    write_json(report_path(run), report)
    return StepResult(fp, report, False, time.perf_counter() - start)


def select_columns(raw: "pd.DataFrame", cols: Columns, where: str) -> "pd.DataFrame":
    """Keep the recipe's text and label columns, renamed to `text` and `label`."""
    for role, column in (("text", cols.text), ("label", cols.label)):
        if column not in raw.columns:
            have = ", ".join(map(str, raw.columns)) or "no columns"
            raise DataError(f"{where} has no column {column!r} (data.columns.{role}); it has: {have}",
                            f"set data.columns.{role} to one of the columns above")
    table = raw[[cols.text, cols.label]].copy()
    table.columns = ["text", "label"]
    return table


def clean_rows(table: "pd.DataFrame", data: DataConfig, task, names: list[str], where: str):
    """Apply the cleaning rules in order, counting the rows each one drops."""
    import pandas as pd

    clean = data.clean
    texts = [None if _missing(t) else str(t) for t in table["text"]]
    if clean.normalize_whitespace:
        texts = [" ".join(t.split()) if t is not None else None for t in texts]
    ids, reasons = task.encode_targets(table["label"], names, data.labels, where)
    counts = {"rows_in": len(table), "missing_or_empty_text": 0, "missing_label": 0}
    rows = []
    for text, label, why in zip(texts, ids, reasons):
        if text is None or (clean.drop_empty and text == ""):
            counts["missing_or_empty_text"] += 1
        elif why:
            counts[why] = counts.get(why, 0) + 1
        else:
            rows.append((text, label))
    if clean.drop_duplicates:
        unique = list(dict.fromkeys(rows))  # keeps first occurrences, in order
        counts["duplicates"] = len(rows) - len(unique)
        rows = unique
    counts["rows_out"] = len(rows)
    return pd.DataFrame(rows, columns=["text", "label"]), counts


def _missing(value) -> bool:
    if value is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _split_missing(frames: dict, cfg: SplitConfig, stratify: bool) -> list[str]:
    """Carve validation/test out of train when the recipe gives no file for them."""
    wanted = {s: share for s, share in (("validation", cfg.validation), ("test", cfg.test))
              if s not in frames and share > 0}
    if not wanted:
        return []
    train = frames["train"]
    groups = [list(g.index) for _, g in train.groupby("label", sort=True)] if stratify else [list(train.index)]
    rng = random.Random(cfg.seed)
    picked: dict[str, list] = {s: [] for s in wanted}
    rest: list = []
    for idx in groups:
        rng.shuffle(idx)
        start = 0
        for split, share in wanted.items():
            n = int(round(len(idx) * share))
            picked[split].extend(idx[start:start + n])
            start += n
        rest.extend(idx[start:])
    for split, idx in picked.items():
        frames[split] = train.loc[sorted(idx)].reset_index(drop=True)
    frames["train"] = train.loc[sorted(rest)].reset_index(drop=True)
    return list(wanted)


def _leakage(frames: dict) -> dict[str, int]:
    texts = {s: set(f["text"]) for s, f in frames.items()}
    names = list(texts)
    return {f"{a}/{b}": len(texts[a] & texts[b]) for i, a in enumerate(names) for b in names[i + 1:]}


def _save(frames: dict, names: list[str], run: RunDir) -> None:
    import datasets

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names)})
    dd = datasets.DatasetDict({
        s: datasets.Dataset.from_dict({"text": f["text"].tolist(), "label": f["label"].astype(int).tolist()},
                                      features=features)
        for s, f in frames.items()
    })
    with atomic_dir(run.prepared) as tmp:
        dd.save_to_disk(str(tmp))
