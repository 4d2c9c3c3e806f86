"""The checks of quality.check_splits over all rows of all splits at once (numpy arrays).

Every row of every split is one global row; `code` numbers its normalised text (equal codes:
exact duplicates) and `edges` are the near-duplicate pairs of distinct texts found by MinHash.
Each check counts per split, lists a few offenders, then applies its policy: `warn` adds a
sentence to the warnings, `drop` clears rows from `alive`, `error` raises a DataError.
Offender entries point at global rows until `Rows.finish` turns them into row numbers of the
prepared splits (None, with `dropped: true`, for a row a policy removed).
A split in `Rows.whole` is kept whole (data.clean.splits): `drop` leaves its rows alive and counts
them under counts[split]["would_drop"] instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from tunekit.errors import DataError
from tunekit.pipeline.quality import TOP, count, preview

if TYPE_CHECKING:
    import numpy as np

SHOWN_ROWS = 6  # row numbers listed per duplicate group / conflicting text


@dataclass
class Rows:
    names: list[str]            # split names, in order (train, validation, test)
    split: "np.ndarray"         # split index of each global row
    texts: list[str]            # the example text of each row
    code: Optional["np.ndarray"] = None
    edges: Optional[tuple] = None   # (code a, code b, similarity, row a, row b)
    label: Optional["np.ndarray"] = None
    alive: "np.ndarray" = None
    refs: list = field(default_factory=list)
    whole: tuple = ()           # names of the splits kept whole: drop policies only count their rows

    def __post_init__(self) -> None:
        import numpy as np

        self.alive = np.ones(len(self.split), dtype=bool)

    def whole_rows(self) -> "np.ndarray":
        """Mask of the global rows in splits kept whole."""
        import numpy as np

        return np.isin(self.split, [k for k, s in enumerate(self.names) if s in self.whole])

    def in_split(self, k: int) -> "np.ndarray":
        """Global indices of split k's rows that are still kept, in order."""
        import numpy as np

        return np.flatnonzero((self.split == k) & self.alive)

    def ref(self, g: int, text: bool = True, **extra) -> dict:
        entry = {"split": self.names[self.split[g]], "row": int(g), **extra}
        if text:
            entry["text"] = preview(self.texts[g])
        self.refs.append(entry)
        return entry

    def row_now(self, g: int) -> int:
        """Row number of global row g among the rows of its split kept so far."""
        same = (self.split == self.split[g]) & self.alive
        return int(same[:g].sum())

    def finish(self, offenders: dict) -> None:
        """Global rows -> row numbers in the prepared splits (positions among the kept rows)."""
        import numpy as np

        new = np.full(len(self.split), -1, dtype=np.int64)
        for k in range(len(self.names)):
            mask = self.split == k
            new[mask] = np.cumsum(self.alive[mask]) - 1
        for entry in self.refs:
            g = entry["row"]
            entry["row"] = int(new[g]) if self.alive[g] else None
            if not self.alive[g]:
                entry["dropped"] = True

    def edge_arrays(self):
        import numpy as np

        if self.edges is None:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0), empty, empty
        return self.edges


def conflicts(rows: Rows, policy: str, namer: Callable[[int], str], counts: dict, offenders: dict,
              warnings: list[str]) -> None:
    """Classification: one normalised text with two or more labels. Every such row counts
    (within train and across splits); `drop` removes them all (no label can be trusted)."""
    import numpy as np

    code, label = rows.code, rows.label
    n_labels = int(label.max()) + 1 if len(label) else 1
    pairs = np.unique(code.astype(np.int64) * n_labels + label)
    per_code = np.bincount(pairs // n_labels, minlength=int(code.max()) + 1 if len(code) else 0)
    bad_code = per_code > 1
    bad = bad_code[code] & rows.alive
    for k, s in enumerate(rows.names):
        counts[s]["label_conflicts"] = int(bad[rows.split == k].sum())
    if not bad.any():
        offenders["label_conflicts"] = []
        return
    listed = []
    sizes = np.bincount(code[bad], minlength=len(bad_code))
    for c in np.argsort(-sizes, kind="stable")[:TOP]:
        if sizes[c] == 0:
            break
        members = np.flatnonzero((code == c) & rows.alive)[:SHOWN_ROWS]
        listed.append({"text": preview(rows.texts[members[0]]), "size": int(sizes[c]),
                       "rows": [rows.ref(g, text=False, label=namer(int(label[g])), label_id=int(label[g]))
                                for g in members]})
    offenders["label_conflicts"] = listed
    first = listed[0]
    labels = ", ".join(f"{r['split']} row {rows.row_now(r['row'])}: {r['label']}" for r in first["rows"][:3])
    where = ", ".join(s for k, s in enumerate(rows.names) if bad[rows.split == k].any())
    n = int(bad_code.sum())
    message = (f"{count(n, 'text')} {'appears' if n == 1 else 'appear'} with different labels "
               f"({count(int(bad.sum()), 'row')} in {where}), e.g. \"{first['text']}\" ({labels})")
    if policy == "error":
        raise DataError(message, "fix the labels, or set data.quality.label_conflicts: drop (or warn)")
    if policy == "drop":
        kept = rows.whole_rows()
        rows.alive[bad & ~kept] = False
        for k, s in enumerate(rows.names):
            if s in rows.whole:
                counts[s].setdefault("would_drop", {})["label_conflicts"] = int((bad & kept)[rows.split == k].sum())
    else:
        warnings.append(message + "; data.quality.label_conflicts: drop removes them")


def within_split(rows: Rows, policy: str, threshold: float, counts: dict, offenders: dict,
                 warnings: list[str]) -> None:
    """Exact and near-duplicates inside each split. Groups are connected by near-duplicate
    pairs (A~B, B~C: one group); `drop` keeps the first row of each group."""
    import numpy as np

    from tunekit.pipeline.minhash import components

    a, b, sim, _, _ = rows.edge_arrays()
    n_codes = int(rows.code.max()) + 1 if len(rows.code) else 0
    groups, pairs = [], []
    for k, s in enumerate(rows.names):
        idx = rows.in_split(k)
        codes, first, inverse, sizes = np.unique(rows.code[idx], return_index=True, return_inverse=True,
                                                 return_counts=True)
        inverse = inverse.reshape(-1)
        exact = np.ones(len(idx), dtype=bool)
        exact[first] = False
        present = np.zeros(n_codes, dtype=bool)
        present[codes] = True
        near = present[a] & present[b]
        dup = exact
        if near.any():
            group = components(n_codes, a[near], b[near])[rows.code[idx]]
            dup = np.ones(len(idx), dtype=bool)
            dup[np.unique(group, return_index=True)[1]] = False
        counts[s]["exact_duplicates"] = int(exact.sum())
        counts[s]["near_duplicates"] = int((dup & ~exact).sum())
        for gi in np.argsort(-sizes, kind="stable")[:TOP]:
            if sizes[gi] < 2:
                break
            members = idx[inverse == gi][:SHOWN_ROWS]
            groups.append({"split": s, "size": int(sizes[gi]), "text": preview(rows.texts[members[0]]),
                           "rows": [rows.ref(g, text=False) for g in members]})
        first_row = np.full(n_codes, -1, dtype=np.int64)
        first_row[codes] = idx[first]
        for e in np.flatnonzero(near)[np.argsort(-sim[near], kind="stable")][:TOP]:
            pairs.append({"similarity": round(float(sim[e]), 3), "a": rows.ref(first_row[a[e]]),
                          "b": rows.ref(first_row[b[e]])})
        if policy == "drop" and s in rows.whole:
            counts[s].setdefault("would_drop", {})["within_duplicates"] = int(dup.sum())
        elif policy == "drop":
            rows.alive[idx[dup]] = False
        elif dup.any():
            n = int(dup.sum())
            kinds = _kinds(int(exact.sum()), int((dup & ~exact).sum()), threshold)
            fix = (f"{s} is kept whole and scored as given (data.clean.splits)" if s in rows.whole else
                   "data.quality.near_duplicates.within: drop keeps the first of each")
            warnings.append(f"{s}: {count(n, 'row')} {'duplicates an earlier row' if n == 1 else 'duplicate earlier rows'} "
                            f"of {s} ({kinds}); {fix}")
    offenders["duplicate_groups"] = sorted(groups, key=lambda g: -g["size"])[:TOP]
    offenders["near_duplicates"] = sorted(pairs, key=lambda p: -p["similarity"])[:TOP]


def _kinds(exact: int, near: int, threshold: float) -> str:
    parts = [f"{exact} identical ignoring case and punctuation"] if exact else []
    if near:
        parts.append(f"{count(near, 'near-duplicate')} at similarity >= {threshold}")
    return ", ".join(parts)


def leaks(rows: Rows, policy: str, threshold: float, counts: dict, offenders: dict, warnings: list[str]) -> None:
    """Rows of a later split (validation, then test) identical or near-identical to a kept row of
    an earlier split: the model saw them, so scores on them overstate it. `drop` removes them
    from the later split; `error` stops with the count and an example pair."""
    import numpy as np

    a, b, sim, _, _ = rows.edge_arrays()
    n_codes = int(rows.code.max()) + 1 if len(rows.code) else 0
    seen = np.zeros(n_codes, dtype=bool)             # a text kept in an earlier split
    seen_row = np.full(n_codes, -1, dtype=np.int64)  # the first such row
    found, total, parts = [], 0, []
    for k, s in enumerate(rows.names):
        idx = rows.in_split(k)
        code = rows.code[idx]
        if k > 0 and len(idx):
            partner = np.full(n_codes, -1, dtype=np.int64)
            score = np.zeros(n_codes)
            for this, other in ((b, a), (a, b)):  # a near pair seen from either side
                m = seen[other]
                partner[this[m]] = seen_row[other[m]]
                score[this[m]] = sim[m]
            exact = seen[code]
            near = (partner[code] >= 0) & ~exact
            hit = exact | near
            counts[s]["leaked_exact"] = int(exact.sum())
            counts[s]["leaked_near"] = int(near.sum())
            for g, c in zip(idx[exact][:TOP], code[exact][:TOP]):
                found.append({"similarity": 1.0, "a": rows.ref(seen_row[c]), "b": rows.ref(g)})
            for g, c in zip(idx[near][:TOP], code[near][:TOP]):
                found.append({"similarity": round(float(score[c]), 3), "a": rows.ref(partner[c]), "b": rows.ref(g)})
            if hit.any():
                n = int(hit.sum())
                total += n
                earlier = "/".join(rows.names[:k])
                parts.append(f"{count(n, f'{s} row')} {'repeats' if n == 1 else 'repeat'} rows of {earlier} "
                             f"({_kinds(int(exact.sum()), int(near.sum()), threshold)})")
                if policy == "drop":
                    rows.alive[idx[hit]] = False
                    idx, code = idx[~hit], code[~hit]
                elif policy == "warn":
                    warnings.append(f"{parts[-1]}: {s} scores will overstate the model; "
                                    f"data.quality.near_duplicates.across: drop removes them from {s}")
        new = ~seen[code]
        codes, first = np.unique(code[new], return_index=True)
        seen_row[codes] = idx[new][first]
        seen[codes] = True
    offenders["leaks"] = sorted(found, key=lambda p: -p["similarity"])[:TOP]
    if policy == "error" and total:
        ex = found[0]
        raise DataError(f"{'; '.join(parts)}, e.g. {ex['b']['split']} row {rows.row_now(ex['b']['row'])} "
                        f"\"{ex['b']['text']}\" ~ {ex['a']['split']} row {rows.row_now(ex['a']['row'])} "
                        f"(similarity {ex['similarity']})",
                        "remove them from the data files, or set data.quality.near_duplicates.across: drop (or warn)")
