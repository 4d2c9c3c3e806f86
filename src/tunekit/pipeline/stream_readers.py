"""Read one data file in batches, keeping only the columns a task needs.

read_file(path, ref, kind, keep, limit, split) -> (DataFrame of the `keep` columns the file has,
                                                   every column name the file has, for messages)

Memory follows the kept columns, not the file: a 10-column CSV read for `text` and `label` never
holds the other 8 in memory, and `limit` (prepare --sample) stops after that many rows, so a
quick look at a huge file is quick. The result matches `sources.load_table` followed by a column
selection: the same missing-cell rules, the same dtypes for CSV, dicts and lists kept as they are
in JSON. Where streaming gives no gain or cannot keep those semantics (a JSON document, a
save_to_disk folder), load_table reads the file.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from tunekit.errors import DataError, TunekitError
from tunekit.sources import (check_data_file, dataset_frame, json_lines_error, load_table, not_utf8_error,
                             open_saved_dataset, read_text_lines)

if TYPE_CHECKING:
    import pandas as pd

BATCH_BYTES = 1 << 24  # pyarrow block size: big enough for long rows (a row must fit in a block)
SAMPLE_BYTES = 1 << 20  # for --sample: parsing 16 MB ahead to show 5 rows would waste time and memory
BOOL_WORDS = {"True", "False", "TRUE", "FALSE", "true", "false"}  # what pandas' CSV parser reads as bool


def read_file(path: Path, ref: str, kind: str, keep: list[str], limit: Optional[int] = None,
              split: str = "train") -> tuple["pd.DataFrame", list[str]]:
    """The `keep` columns present in the file (the caller reports absent ones), first `limit` rows,
    and all the file's column names."""
    check_data_file(path, ref)  # a pipe or device is refused before anything opens it
    try:
        if kind in ("csv", "tsv"):
            return _read_csv(path, kind, keep, limit)
        if kind == "jsonl" or (kind == "json" and _looks_like_json_lines(path)):
            return _read_json_lines(path, keep, limit)
        if kind == "parquet":
            return _read_parquet(path, keep, limit)
        if kind == "text":
            return read_text_lines(path, limit), ["text"]
        if kind == "arrow":
            ds = open_saved_dataset(path, split)
            return dataset_frame(ds, keep, limit), list(ds.column_names)
        table = load_table(str(path), kind, split)  # a JSON document: parsed whole (SQuAD nesting too)
        header = list(table.columns)
        table = table[[c for c in keep if c in header]]
        return (table.head(limit) if limit else table), header
    except TunekitError as exc:
        if str(path) in exc.message and ref != str(path):
            exc.message = exc.message.replace(str(path), ref)
        raise
    except (ValueError, TypeError, NotImplementedError, OSError, EOFError) as exc:  # pyarrow's errors subclass these
        raise _read_error(path, ref, kind, exc) from None


def _read_error(path: Path, ref: str, kind: str, exc: Exception) -> DataError:
    bad = not_utf8_error(path, ref, kind) if kind not in ("parquet", "arrow") else None
    if bad is None and kind in ("json", "jsonl"):
        bad = json_lines_error(path, ref, kind)  # the line, not pandas' "Expected object or value"
    if bad:
        return bad
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(f"cannot read {ref} as {kind}: {first}",
                     "check the file, or set data.format (or the source's format) if the extension is misleading")


# ---- CSV / TSV -------------------------------------------------------------------------------

def _read_csv(path: Path, kind: str, keep: list[str], limit: Optional[int]) -> "tuple[pd.DataFrame, list[str]]":
    """pyarrow's streaming CSV reader with every kept column read as text, then typed the way
    pandas.read_csv types a whole column (load_table's rules: "" is missing, "NA" is text).
    Typing after the last batch keeps a column that turns from numbers to words later in the file
    from failing, which pyarrow's own per-block type inference would do. pyarrow refuses a row
    with fewer fields than the header, where pandas fills in missing cells: pandas reads those
    files, in chunks."""
    import pyarrow as pa

    try:
        return _csv_arrow(path, kind, keep, limit)
    except pa.ArrowInvalid as exc:
        if "CSV parse error" not in str(exc):
            raise
        return _csv_pandas(path, kind, keep, limit)


def _csv_pandas(path: Path, kind: str, keep: list[str], limit: Optional[int]) -> "tuple[pd.DataFrame, list[str]]":
    import pandas as pd

    options = dict(sep="\t" if kind == "tsv" else ",", keep_default_na=False, na_values=[""], dtype=str)
    header = list(pd.read_csv(path, nrows=0, **options).columns)
    wanted = [c for c in keep if c in header]
    if not wanted:
        return pd.DataFrame(), header
    with pd.read_csv(path, usecols=wanted, chunksize=100_000, nrows=limit, **options) as reader:
        frame = pd.concat(list(reader), ignore_index=True)[wanted]
    for column in frame.columns:
        frame[column] = _type_like_read_csv(frame[column])
    return frame, header


def _csv_arrow(path: Path, kind: str, keep: list[str], limit: Optional[int]) -> "tuple[pd.DataFrame, list[str]]":
    import pyarrow as pa
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter="\t" if kind == "tsv" else ",", newlines_in_values=True)
    read = pacsv.ReadOptions(block_size=SAMPLE_BYTES if limit else BATCH_BYTES)
    header = pacsv.open_csv(pa.input_stream(str(path)), read_options=read, parse_options=parse).schema.names
    wanted = [c for c in keep if c in header]
    if not wanted:  # no kept column: the caller's column check names what the file has
        import pandas as pd

        return pd.DataFrame(), header
    convert = pacsv.ConvertOptions(include_columns=wanted, column_types={c: pa.string() for c in wanted},
                                   null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True)
    reader = pacsv.open_csv(pa.input_stream(str(path)), read_options=read, parse_options=parse,
                            convert_options=convert)
    table = _collect(reader, limit, reader.schema)
    frame = table.to_pandas()
    for column in frame.columns:
        frame[column] = _type_like_read_csv(frame[column])
    return frame, header


def _type_like_read_csv(column: "pd.Series") -> "pd.Series":
    """A text column typed as pandas.read_csv(dtype_backend="numpy_nullable") would: all-missing
    -> Int64, True/False words -> boolean, numbers -> Int64 or Float64, anything else -> string."""
    import pandas as pd

    present = column.dropna()
    if present.empty:
        return pd.Series(pd.array([pd.NA] * len(column), dtype="Int64"), index=column.index)
    if present.iloc[0] in BOOL_WORDS and present.isin(BOOL_WORDS).all():
        return column.map(lambda v: None if pd.isna(v) else v.lower() == "true").astype("boolean")
    try:
        numbers = pd.to_numeric(column)
    except (ValueError, TypeError):
        return column.astype("string")
    integral = numbers.dtype.kind in "iu" or not present.str.contains(r"[.eEnN]", regex=True).any()
    return numbers.astype("Int64" if integral else "Float64")


# ---- JSON lines ------------------------------------------------------------------------------

def _looks_like_json_lines(path: Path) -> bool:
    """A .json file whose first line is a whole JSON object and more lines follow: JSON lines.
    Anything else (a list, a {"data": [...]} document, one object) goes to load_table."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as fh:
        first = fh.readline()
        more = any(line.strip() for line in iter(fh.readline, b""))
    try:
        return more and isinstance(json.loads(first), dict)
    except ValueError:
        return False


def _read_json_lines(path: Path, keep: list[str], limit: Optional[int]) -> "pd.DataFrame":
    """pyarrow's streaming JSON reader when every kept column is flat (text, numbers, booleans);
    pandas in chunks otherwise, which keeps nested records as dicts and lists exactly like
    load_table does (pyarrow would turn them into structs with every key and numpy arrays)."""
    fast = _json_lines_arrow(path, keep, limit)
    return fast if fast is not None else _json_lines_pandas(path, keep, limit)


def _json_lines_arrow(path: Path, keep: list[str], limit: Optional[int]) -> "Optional[tuple[pd.DataFrame, list[str]]]":
    import pyarrow as pa
    import pyarrow.json as pajson

    flat = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer, pa.types.is_floating,
            pa.types.is_boolean)
    try:
        read = pajson.ReadOptions(block_size=SAMPLE_BYTES if limit else BATCH_BYTES)
        reader = pajson.open_json(pa.input_stream(str(path)), read_options=read)
        wanted = [c for c in keep if c in reader.schema.names]
        if not all(any(is_(reader.schema.field(c).type) for is_ in flat) for c in wanted):
            return None
        table = _collect(reader, limit, pa.schema([reader.schema.field(c) for c in wanted]), wanted)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # a type that changes after the first block, a field that appears later, a bad line
    _check_utf8(table, path)
    return table.to_pandas(), reader.schema.names


def _check_utf8(table, path: Path) -> None:
    """pyarrow's JSON reader copies string bytes as they are, valid UTF-8 or not; full validation
    finds them, and the file's bytes say where."""
    import pyarrow as pa

    try:
        table.validate(full=True)
    except pa.ArrowInvalid:
        bad = not_utf8_error(path, str(path), "jsonl")
        if bad:
            raise bad from None
        raise


def _json_lines_pandas(path: Path, keep: list[str], limit: Optional[int]) -> "tuple[pd.DataFrame, list[str]]":
    import pandas as pd

    chunks, rows, header = [], 0, {}
    with pd.read_json(path, lines=True, dtype=False, chunksize=50_000, nrows=limit) as reader:
        for chunk in reader:
            header.update(dict.fromkeys(chunk.columns))
            chunks.append(chunk[[c for c in keep if c in chunk.columns]])
            rows += len(chunk)
            if limit and rows >= limit:
                break
    if not chunks:
        return pd.DataFrame(), []
    frame = pd.concat(chunks, ignore_index=True)
    return (frame.head(limit) if limit else frame), list(header)


# ---- parquet ---------------------------------------------------------------------------------

def _read_parquet(path: Path, keep: list[str], limit: Optional[int]) -> "tuple[pd.DataFrame, list[str]]":
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    header = source.schema_arrow.names
    wanted = [c for c in keep if c in header]
    if not wanted:
        import pandas as pd

        return pd.DataFrame(), header
    schema = pa.schema([source.schema_arrow.field(c) for c in wanted])
    return _collect(source.iter_batches(batch_size=65_536, columns=wanted), limit, schema).to_pandas(), header


def _collect(batches, limit: Optional[int], schema, columns: Optional[list[str]] = None):
    """Record batches -> one pyarrow Table, stopping once `limit` rows are in."""
    import pyarrow as pa

    kept, rows = [], 0
    for batch in batches:
        if columns is not None:
            batch = pa.RecordBatch.from_arrays([batch.column(c) for c in columns], schema=schema)
        kept.append(batch)
        rows += batch.num_rows
        if limit and rows >= limit:
            break
    table = pa.Table.from_batches(kept, schema=schema)
    return table.slice(0, limit) if limit else table
