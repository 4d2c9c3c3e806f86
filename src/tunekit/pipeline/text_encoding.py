"""Single-text encoding straight into Arrow: classification's tokenize path.

Each text is encoded once, by the backend (Rust) tokenizer with truncation on. The true length
of a truncated text comes from its overflowing pieces (each carries the special tokens again),
so the truncation policy and the length report need no second pass. Token ids go into Arrow
list arrays through numpy, with no per-row Python dicts, and batches are written to an Arrow
file on disk that the returned dataset memory-maps: resident memory stays flat as data grows.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Optional

from tunekit.errors import DataError
from tunekit.recipe.schema import TokenizeConfig

BATCH_ROWS = 50_000  # rows encoded per call: big enough to keep every core busy


@contextmanager
def plain_backend(tokenizer, max_length: Optional[int] = None):
    """The fast tokenizer's backend set not to pad and to truncate at max_length (on the tokenizer's
    side; None: not at all), restored afterwards. A tokenizer.json may ask for padding (MiniLM's
    pads every text to 128), which would make every length read from an encoding wrong.
    transformers' own tokenizer calls set these the same way on every call; a copy of the backend
    would cost a parse of its whole vocabulary each time."""
    backend = tokenizer.backend_tokenizer
    truncation, padding = backend.truncation, backend.padding
    backend.no_padding()
    if max_length is None:
        backend.no_truncation()
    else:
        backend.enable_truncation(max_length, direction=getattr(tokenizer, "truncation_side", "right"))
    try:
        yield backend
    finally:
        backend.no_truncation() if truncation is None else backend.enable_truncation(**truncation)
        backend.no_padding() if padding is None else backend.enable_padding(**padding)


def single_type_id(backend) -> Optional[int]:
    """The token type id of every token of a single text, when the post-processor's template gives
    one (BERT: 0); None when it mixes them (the ids are then read from each encoding)."""
    kinds = set(backend.encode("a").type_ids)
    return kinds.pop() if len(kinds) == 1 else None


def true_lengths(encodings, ids: list, max_length: int, added: int):
    """Untruncated token counts: a truncated encoding's length plus its overflowing pieces',
    less the special tokens each piece repeats (only rows cut at max_length have pieces)."""
    import numpy as np

    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    for i in np.flatnonzero(lengths == max_length):
        lengths[i] += sum(len(o.ids) - added for o in encodings[i].overflowing)
    return lengths


def _offsets(lengths):
    """Arrow list offsets of rows of these lengths: 0, then their running sum."""
    import numpy as np

    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def list_array(values: list, lengths, dtype):
    """Per-row lists -> an Arrow list array, through one flat numpy buffer."""
    import numpy as np
    import pyarrow as pa

    offsets = _offsets(lengths)
    flat = np.fromiter(chain.from_iterable(values), dtype=dtype, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))


def constant_lists(lengths, value: int, dtype):
    """Per-row lists of one value (attention masks of unpadded rows) without touching Python lists."""
    import numpy as np
    import pyarrow as pa

    offsets = _offsets(lengths)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.full(int(offsets[-1]), value, dtype=dtype)))


def encode_texts(ds, tokenizer, cfg: TokenizeConfig, split: str, text: str = "text",
                 carry: Optional[dict[str, str]] = None):
    """A prepared split -> (dataset of model inputs + `row` + carried columns, stats).

    `carry` maps output names to input columns copied along (classification: labels <- label).
    Rows longer than cfg.max_length follow cfg.truncation (truncate, drop, error)."""
    carry = carry or {}
    with plain_backend(tokenizer, cfg.max_length) as backend:
        return _encode(ds, backend, tokenizer, cfg, split, text, carry)


def _encode(ds, backend, tokenizer, cfg: TokenizeConfig, split: str, text: str, carry: dict[str, str]):
    import numpy as np
    import pyarrow as pa
    import datasets

    type_id = single_type_id(backend)
    added = tokenizer.num_special_tokens_to_add(pair=False)
    names = tokenizer.model_input_names
    folder = Path(tempfile.mkdtemp(prefix="tunekit-tokenize-"))
    atexit.register(shutil.rmtree, folder, True)  # the dataset memory-maps the file until then
    path = folder / f"{split}.arrow"
    source = ds.with_format("arrow")
    all_lengths = []
    writer = None
    for start in range(0, len(ds), BATCH_ROWS):
        table = source[start:start + BATCH_ROWS]
        encodings = backend.encode_batch(table.column(text).to_pylist())
        ids = [e.ids for e in encodings]  # each .ids call builds a Python list: once per row
        lengths = true_lengths(encodings, ids, cfg.max_length, added)
        all_lengths.append(lengths)
        keep = lengths <= cfg.max_length if cfg.truncation == "drop" else np.ones(len(ids), dtype=bool)
        if not keep.all():
            encodings = [e for e, k in zip(encodings, keep) if k]
            ids = [x for x, k in zip(ids, keep) if k]
        kept_lengths = np.minimum(lengths[keep], cfg.max_length)
        columns = {"input_ids": list_array(ids, kept_lengths, np.int32)}
        if "token_type_ids" in names and type_id is not None:
            columns["token_type_ids"] = constant_lists(kept_lengths, type_id, np.int8)
        elif "token_type_ids" in names:
            columns["token_type_ids"] = list_array((e.type_ids for e in encodings), kept_lengths, np.int8)
        if "attention_mask" in names:
            columns["attention_mask"] = constant_lists(kept_lengths, 1, np.int8)
        for out_name, column in carry.items():
            columns[out_name] = table.column(column).combine_chunks().filter(pa.array(keep))
        columns["row"] = pa.array(np.arange(start, start + len(keep), dtype=np.int64)[keep])
        batch = pa.RecordBatch.from_pydict(columns)
        if writer is None:
            writer = pa.ipc.new_stream(str(path), batch.schema)
        writer.write_batch(batch)
    if writer is None:
        raise DataError(f"the {split} split has no rows to tokenize", "check the prepare report for what dropped them")
    writer.close()
    lengths = np.concatenate(all_lengths)
    if cfg.truncation == "error" and (lengths > cfg.max_length).any():  # nothing reached the run directory
        first = int(np.argmax(lengths > cfg.max_length))
        raise DataError(f"{int((lengths > cfg.max_length).sum())} {split} rows are longer than tokenize.max_length="
                        f"{cfg.max_length} (first: row {first}, {int(lengths[first])} tokens)",
                        "raise tokenize.max_length, or set tokenize.truncation to truncate or drop")
    encoded = datasets.Dataset.from_file(str(path))
    if len(encoded) == 0:
        raise DataError(f"every {split} row is longer than tokenize.max_length={cfg.max_length}",
                        "raise tokenize.max_length, or set tokenize.truncation: truncate")
    return encoded, length_stats(lengths, cfg)


def length_stats(lengths, cfg: TokenizeConfig) -> dict:
    """The tokenize report's entry for one split, from the untruncated token counts."""
    import numpy as np

    from tunekit.pipeline.length_report import length_fields

    over = int((lengths > cfg.max_length).sum())
    return {
        "rows": int(len(lengths) - (over if cfg.truncation == "drop" else 0)),
        "truncated": over if cfg.truncation == "truncate" else 0,
        "dropped": over if cfg.truncation == "drop" else 0,
        "tokens_p50": float(np.percentile(lengths, 50)) if len(lengths) else 0.0,
        "tokens_p95": float(np.percentile(lengths, 95)) if len(lengths) else 0.0,
        "tokens_max": int(lengths.max()) if len(lengths) else 0,
        **length_fields(lengths, cfg.max_length),
    }
