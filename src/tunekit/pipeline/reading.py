"""Reading a split's sources: files, globs and weighted mixtures, in batches.

read_split(data, split, roles, sample) -> (table with the roles' columns, where, counts)
source_hashes(data) -> {split: {ref, sha256[, files]}}, the bytes prepare's fingerprint covers

A split names one reference or a list of references and {path, weight, format} entries. Every
reference may be a glob (data/*.jsonl, data/**/*.csv, pkg://dist/dir/*.jsonl); its matches are
read in sorted order and concatenated, entries in recipe order. Each file must have the columns
the task's roles need (an error names the file that lacks one). Files are read in batches
(stream_readers), keeping only those columns.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from tunekit.errors import DataError
from tunekit.recipe.schema import Columns, DataConfig
from tunekit.runs import sha256_path
from tunekit.sources import DataFile, detect_format, expand_data_ref

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Source:
    """One entry of a split's source list, normalised: a plain string is an entry without weight."""

    ref: str
    weight: Optional[float] = None
    format: Optional[str] = None


def split_sources(data: DataConfig, split: str) -> list[Source]:
    value = getattr(data, split)
    if not value:
        return []
    entries = value if isinstance(value, list) else [value]
    return [Source(e) if isinstance(e, str) else Source(e.path, e.weight, e.format) for e in entries]


def is_mixture(sources: list[Source]) -> bool:
    return any(s.weight is not None for s in sources)


def describe(sources: list[Source]) -> str:
    """The split's references as the recipe writes them (for messages and the report)."""
    return ", ".join(s.ref for s in sources)


def source_hashes(data: DataConfig) -> dict:
    """{split: {"ref", "sha256"}} for a split that is one plain file, as before globs existed;
    with several files (a list, a glob, a mixture) also "files": [{"ref", "sha256"[, "weight"]}]
    in reading order, and "sha256" is then a hash of the files' hashes in that order, so adding,
    removing, reordering or changing any file changes it. Weight-0 sources are expanded (a typo
    still fails) but not hashed: their bytes do not reach the prepared data."""
    hashes = {}
    for split in ("train", "validation", "test"):
        sources = split_sources(data, split)
        if not sources:
            continue
        files = []
        for source in sources:
            matched = expand_data_ref(source.ref)
            if source.weight == 0:
                continue
            for file in matched:
                entry = {"ref": file.ref, "sha256": sha256_path(file.path)}
                if source.weight is not None:
                    entry["weight"] = source.weight
                files.append(entry)
        single = len(sources) == 1 and len(files) == 1 and files[0]["ref"] == sources[0].ref and not is_mixture(sources)
        if single:
            hashes[split] = {"ref": sources[0].ref, "sha256": files[0]["sha256"]}
        else:
            combined = hashlib.sha256("\n".join(f["sha256"] for f in files).encode()).hexdigest()
            hashes[split] = {"ref": describe(sources), "sha256": combined, "files": files}
    return hashes


def read_split(data: DataConfig, split: str, roles, sample: Optional[int] = None) -> tuple["pd.DataFrame", str, dict]:
    """The split's rows with the roles' columns (renamed to the role names), a `where` for messages,
    and numeric counts for the report: `files_read` (when more than one), and for a mixture
    `rows_read`, `mixture_repeated` and `from <source>` (rows taken from each source).

    `sample`: read only the first N rows of each source (prepare --sample), then mix as usual."""
    import pandas as pd

    sources = split_sources(data, split)
    where = f"{split} data ({describe(sources)})"
    keep = needed_columns(data.columns, roles)
    mixture = is_mixture(sources)
    parts, files_read, made_ids = [], 0, False
    for source in sources:
        files = expand_data_ref(source.ref)
        if mixture and source.weight == 0:
            parts.append(None)  # dropped from the mixture: not read (see mix_sources)
            continue
        frames = []
        for file in files:
            left = sample - sum(map(len, frames)) if sample else None
            if left is not None and left <= 0:
                break
            table, made = _read_one(file, source.format or data.format, keep, left, split, data.columns, roles)
            frames.append(table)
            files_read += 1
            made_ids = made_ids or made
        parts.append(pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0])
    counts: dict = {"files_read": files_read} if files_read > 1 else {}
    if mixture:
        table, mixed = mix_sources(parts, [s.weight for s in sources], _labels(sources), data.mixture_rows,
                                   data.split.seed)
        counts.update(mixed)
        if mixed["mixture_repeated"]:
            refuse_lost_repeats(data, split, mixed["mixture_repeated"])
    else:
        table = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if made_ids:  # ids made up per file would repeat across files: number the whole split instead
        table["id"] = [str(i) for i in range(len(table))]
    return table, where, counts


def refuse_lost_repeats(data: DataConfig, split: str, repeated: int) -> None:
    """Oversampling (mixture_rows above what the sources hold) repeats rows. Cleaning would drop the
    copies again as duplicates, and splits carved from such a train split would share rows, so
    both are errors rather than a mixture that silently is not what the recipe asked for."""
    if data.clean.drop_duplicates:
        raise DataError(f"the {split} mixture repeats {repeated} rows to reach data.mixture_rows={data.mixture_rows}, "
                        "but data.clean.drop_duplicates would drop the copies again",
                        "set data.clean.drop_duplicates: false to oversample, or lower data.mixture_rows")
    carved = [s for s in ("validation", "test") if not getattr(data, s) and getattr(data.split, s) > 0]
    if split == "train" and carved:
        raise DataError(f"the train mixture repeats {repeated} rows, and {' and '.join(carved)} would be carved "
                        "from it: the same rows would land on both sides",
                        f"give {' and '.join(carved)} their own files, or set data.split.{carved[0]}: 0")


def needed_columns(cols: Columns, roles) -> list[str]:
    """Source columns the roles read: each mapped name, and the head of a dotted one
    (`sentences.abstract` needs the `sentences` column)."""
    keep: list[str] = []
    for role in roles:
        column = getattr(cols, role)
        for name in (column, column.partition(".")[0]):
            if name not in keep:
                keep.append(name)
    return keep


def _read_one(file: DataFile, fmt: Optional[str], keep: list[str], limit: Optional[int], split: str,
              cols: Columns, roles) -> tuple["pd.DataFrame", bool]:
    """One file's rows with the roles' columns; whether its `id` was made up (no id column)."""
    from tunekit.pipeline.prepare import select_columns
    from tunekit.pipeline.stream_readers import read_file

    raw, header = read_file(file.path, file.ref, detect_format(file.path, fmt), keep, limit, split)
    where = f"{split} data file {file.ref}"
    try:
        table = select_columns(raw, cols, roles, where)
    except DataError:  # say every column the file has, not only the kept ones
        select_columns(raw.reindex(columns=list(dict.fromkeys([*header, *raw.columns]))), cols, roles, where)
        raise
    made = "id" in roles and cols.id not in raw.columns and cols.id.partition(".")[0] not in raw.columns
    return table, made


def _labels(sources: list[Source]) -> list[str]:
    """Short names for the report's `from <source>` counts: the last two parts of each reference
    (a card and a report should not need the machine's folders), the whole reference if two clash."""
    short = ["/".join(s.ref.split("/")[-2:]) for s in sources]
    return [s if short.count(s) == 1 else src.ref for s, src in zip(short, sources)]


def mix_sources(parts: list, weights: list[float], labels: list[str], total: Optional[int],
                seed: int) -> tuple["pd.DataFrame", dict]:
    """Sample rows from each source in proportion to its weight.

    * Shares: p_i = w_i / sum(w). A weight of 0 drops the source (its part is None: not read).
    * Total rows: `total` (data.mixture_rows) if set; else the most rows possible without
      repeating any row: the largest N with p_i * N <= len_i for every source, so the source
      that runs out first is taken whole and the others in proportion to it.
    * Rows per source: N split by the shares with the largest-remainder rule (they sum to N).
    * A source asked for more rows than it has is repeated: every row k times, plus a seeded
      sample of the rest; the copies beyond one are counted in `mixture_repeated`.
    * Sampling is seeded by data.split.seed and the source's position, so a rerun takes the
      same rows. Each source keeps its file order; sources follow the recipe's order.

    Counts: rows_read (rows available in the sources read), mixture_repeated, and
    `from <label>` for each source (0 for a dropped one)."""
    import numpy as np
    import pandas as pd

    live = [i for i, w in enumerate(weights) if w and w > 0]
    share = {i: weights[i] / sum(weights[j] for j in live) for i in live}
    for i in live:
        if len(parts[i]) == 0:
            raise DataError(f"mixture source {labels[i]} has no rows",
                            "give it data, or set its weight to 0 to leave it out")
    most = total is None
    if most:  # the 1e-6 keeps 29.999999 (float division) from losing a row
        total = int(min(len(parts[i]) / share[i] for i in live) + 1e-6)
    sizes = _apportion(total, [share[i] for i in live])
    if most:
        sizes = [min(n, len(parts[i])) for i, n in zip(live, sizes)]
    taken, counts, repeated = [], {"rows_read": sum(len(parts[i]) for i in live)}, 0
    for label in labels:
        counts[f"from {label}"] = 0
    for i, n in zip(live, sizes):
        have = len(parts[i])
        rng = np.random.default_rng([seed, i])
        whole, rest = divmod(n, have)
        index = np.concatenate([np.tile(np.arange(have), whole), rng.choice(have, size=rest, replace=False)])
        repeated += max(0, n - have)
        taken.append(parts[i].iloc[np.sort(index)])
        counts[f"from {labels[i]}"] = int(n)
    counts["mixture_repeated"] = repeated
    return pd.concat(taken, ignore_index=True), counts


def _apportion(total: int, shares: list[float]) -> list[int]:
    """Split `total` by `shares` (summing to 1) into integers summing to `total`: floors, then one
    more for the largest remainders (ties: the earlier source)."""
    exact = [total * s for s in shares]
    sizes = [int(x) for x in exact]
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in order[: total - sum(sizes)]:
        sizes[i] += 1
    return sizes
