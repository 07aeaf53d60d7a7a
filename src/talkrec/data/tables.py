"""Read one table (CSV, TSV, Parquet, JSONL) and check it against a declared schema.

Every error names the file, the 1-based data row (header excluded) and the field, e.g.
``items.csv: row 17: field 'item_id': empty value; expected a non-empty string``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, nearest, shown

__all__ = ["FORMATS", "TYPES", "check_unique", "coerce", "infer_numeric", "is_missing", "json_kind", "jsonl_objects",
           "read_raw", "read_table", "settle_mixed"]

FORMATS = {".csv": "csv", ".tsv": "tsv", ".dat": "tsv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}

#: Column types a schema may declare.
TYPES = ("str", "float", "int", "list", "json")

_CSV_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def is_missing(v: Any) -> bool:
    """``None``, NaN / NA, or a blank string."""
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return True
    return isinstance(v, str) and not v.strip()


def _nan_text(v: Any) -> bool:
    """A cell that says ``NaN`` (any case): a missing number where a number is read, but text
    (an item id ``NaN``) everywhere else."""
    return isinstance(v, str) and v.strip().lower() == "nan"


def _nullable_ints(df: pd.DataFrame, columns: list[str], values: Any) -> None:
    """Replace ``columns`` of ``df`` (integers read as float64 because some are missing) by
    nullable ``Int64`` columns of ``values(column)``, the column's values as read."""
    for c in columns:
        df[c] = pd.array(list(values(c)), dtype="Int64")


def json_kind(value: Any) -> str:
    """How a JSON value is called in an error: ``number (42)``, ``string ('x')``, ``list``..."""
    kinds = {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}
    name = "null" if value is None else kinds.get(type(value), type(value).__name__)
    return f"{name} ({value!r})" if isinstance(value, (bool, int, float, str)) else name


def jsonl_objects(lines: Iterable[str], path: str) -> list[dict[str, Any]]:
    """The JSON object of each line (blank lines skipped): JSONL catalogs and ``talkrec add``
    files. A line that is not JSON, or not an object, is an :class:`InputError` naming it."""
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON ({e.msg} at column {e.colno})", path=path, row=n) from None
        if not isinstance(obj, dict):
            raise InputError(f"line {n} holds a {json_kind(obj)}; expected JSONL, one JSON object a line", path=path)
        rows.append(obj)
    return rows


def _read_jsonl(path: Path) -> pd.DataFrame:
    """One JSON object a line; a key holding JSON integers and missing from (or null in) some
    rows is a nullable ``Int64`` column, as the same column read from CSV."""
    with open(path, encoding="utf-8-sig") as fh:
        rows = jsonl_objects(fh, str(path))
    df = pd.DataFrame(rows)
    ints = [c for c in df.columns if df[c].dtype.kind == "f" and df[c].isna().any() and not df[c].isna().all()
            and all(type(r[c]) is int for r in rows if not is_missing(r.get(c)))]
    _nullable_ints(df, ints, lambda c: (None if is_missing(r.get(c)) else r[c] for r in rows))
    return df


def _read_parquet(path: Path, **kwargs: Any) -> pd.DataFrame:
    """A Parquet file; an integer column with nulls (float64 to pandas) is a nullable
    ``Int64`` column, as the same column read from CSV."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = pd.read_parquet(path, **kwargs)
    gaps = [c for c in df.columns if isinstance(c, str) and df[c].dtype.kind == "f" and df[c].isna().any()]
    if gaps:
        t = pq.read_table(path, columns=gaps)
        ints = [c for c in gaps if pa.types.is_integer(t.schema.field(c).type)]
        _nullable_ints(df, ints, lambda c: t.column(c).to_pylist())
    return df


def _format(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    f = FORMATS.get(path.suffix.lower())
    if f is None:
        raise InputError(f"unknown file type '{path.suffix}'; expected one of "
                         f"{sorted(set(FORMATS))} or an explicit format", path=str(path))
    return f


def read_raw(path: str | Path, fmt: str | None = None, **kwargs: Any) -> pd.DataFrame:
    """Read a CSV / TSV / Parquet / JSONL file into a DataFrame (all text columns as str)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=str(path))
    f = _format(path, fmt)
    try:
        if f == "csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)
        if f == "tsv":
            return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3, **kwargs)
        if f == "parquet":
            return _read_parquet(path, **kwargs)
        if f == "jsonl":
            return _read_jsonl(path)
    except InputError:
        raise
    except pd.errors.ParserError as e:
        m = _CSV_FIELDS.search(str(e))
        if m:  # a row with more fields than the header: pandas counts file lines, the header is line 1
            raise InputError(f"expected {m.group(1)} fields (as in the header), got {m.group(3)}",
                             path=str(path), row=int(m.group(2)) - 1) from None
        raise InputError(f"cannot parse as {f}: {e}", path=str(path)) from None
    except UnicodeDecodeError:
        raise _not_utf8(path, f) from None
    except (OSError, ValueError) as e:
        raise InputError(f"cannot parse as {f}: {e}", path=str(path)) from None
    raise InputError(f"unsupported format '{f}'", path=str(path))


def _not_utf8(path: Path, fmt: str) -> InputError:
    """The error for a text file that is not UTF-8, naming its first such row (pandas named
    a byte offset within one of its read buffers)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        return InputError("not UTF-8 text; expected a UTF-8 file: save it as UTF-8", path=str(path))
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n")                # 0-based line; the header is line 0 of a CSV
        row = line + 1 if fmt == "jsonl" else line
        return InputError(f"not UTF-8 text (byte 0x{data[e.start]:02x}); expected a UTF-8 file: save it as UTF-8",
                          path=str(path), row=row or None)


def coerce(df: pd.DataFrame, col: str, typ: str, path: str, required: bool) -> pd.Series:
    """Column ``col`` read as ``typ`` (one of :data:`TYPES`); missing values are an error
    when ``required``, else ``None`` (for an optional ``int`` or ``float``, a ``NaN`` cell is
    missing too)."""
    s = df[col]
    out: list[Any] = []
    for i, v in enumerate(s.tolist(), start=1):
        if is_missing(v) or (not required and typ in ("int", "float") and _nan_text(v)):
            if required:
                raise InputError(f"empty value; expected {typ}", path=path, row=i, field=col)
            out.append(None)
            continue
        try:
            if typ == "str":
                out.append(str(v).strip())
            elif typ == "float":
                x = float(v)
                if not np.isfinite(x):
                    raise ValueError
                out.append(x)
            elif typ == "int":
                x = float(v)
                if not x.is_integer():
                    raise ValueError
                out.append(int(x))
            elif typ == "list":
                if isinstance(v, (list, tuple, np.ndarray)):
                    out.append([str(t) for t in v])
                else:
                    txt = str(v)
                    out.append([t.strip() for t in txt.replace(",", "|").split("|") if t.strip()])
            elif typ == "json":
                out.append(json.loads(v) if isinstance(v, str) else v)
            else:
                raise InputError(f"unknown schema type '{typ}'; expected one of {TYPES}", field=col)
        except (ValueError, TypeError, json.JSONDecodeError):
            raise InputError(f"cannot read {v!r} as {typ}", path=path, row=i, field=col) from None
    has_missing = any(v is None for v in out)
    return pd.Series(out, index=df.index, dtype=object if typ in ("list", "json", "str") or has_missing else None)


def read_table(path: str | Path, schema: Mapping[str, str], *, optional: Mapping[str, str] | None = None,
               rename: Mapping[str, str] | None = None, fmt: str | None = None) -> pd.DataFrame:
    """Read ``path`` and check it against ``schema`` (column -> type, all required).

    ``optional`` columns are coerced when present; ``rename`` maps file columns to schema
    names first. Extra columns are kept as they are.
    """
    df = read_raw(path, fmt)
    if rename:
        df = df.rename(columns=dict(rename))
    for col in schema:
        if col not in df.columns:
            _check_delimiter(df, path)
            near = nearest(col, [str(c) for c in df.columns])
            how = (f"; did you mean '{near}'? (map it with rename: {{{near}: {col}}})" if near else
                   f"; rename: {{<a column of the file>: {col}}} in the file's block maps one to it")
            raise InputError(f"missing column '{col}'; the file has {list(df.columns)}{how}", path=str(path), field=col)
    for col, typ in schema.items():
        df[col] = coerce(df, col, typ, str(path), required=True)
    for col, typ in (optional or {}).items():
        if col in df.columns:
            df[col] = coerce(df, col, typ, str(path), required=False)
    return df


def _check_delimiter(df: pd.DataFrame, path: str | Path) -> None:
    """A CSV read as one column whose name holds ``;``, a tab or ``|``: the file is separated
    by that character, not by commas (the error named a column such as 'item_id;name')."""
    if len(df.columns) != 1 or Path(path).suffix.lower() != ".csv":
        return
    head = str(df.columns[0])
    for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
        if sep in head:
            raise InputError(f"the header {head!r} is one column: the file is separated by {name}; a .csv file "
                             "must be separated by commas (a tab-separated file reads as .tsv)", path=str(path))


def _leading_zero(v: str) -> bool:
    digits = v.strip().lstrip("+-")
    return len(digits) > 1 and digits[0] == "0" and digits[1].isdigit()


def infer_numeric(s: pd.Series) -> pd.Series:
    """A text column whose values are all integers -> int64 (nullable ``Int64`` with missing
    values), all finite decimal numbers -> float64 (NaN where missing); otherwise unchanged.
    A ``NaN`` cell counts as missing. Numbers written with a leading zero (``007``, zip codes)
    stay text."""
    values = s.tolist()
    gap = [is_missing(v) or _nan_text(v) for v in values]
    present = [v for v, g in zip(values, gap) if not g]
    if not present or not all(isinstance(v, str) for v in present):
        return s
    if all(_INT.fullmatch(v.strip()) for v in present):
        ints = [None if g else int(v) for v, g in zip(values, gap)]
        return pd.Series(ints, index=s.index, dtype="Int64" if len(present) < len(values) else np.int64)
    if all(_FLOAT.fullmatch(v.strip()) and not _leading_zero(v) for v in present):
        return pd.Series([np.nan if g else float(v) for v, g in zip(values, gap)], index=s.index, dtype=np.float64)
    return s


def _kind(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "boolean"
    if isinstance(v, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(v, (list, tuple, np.ndarray)):
        return "list"
    return "object" if isinstance(v, dict) else "string"


def settle_mixed(s: pd.Series) -> tuple[pd.Series, str | None]:
    """A column (JSONL, Parquet objects) whose values are of one kind, as the index stores
    it: numbers and numeric strings (``1990``, ``"1991"``) -> text that :func:`infer_numeric`
    reads as numbers; strings beside lists -> one-element lists; any other mix (``1990`` and
    ``"n/a"``, an object and a string) -> text, lists and objects as JSON. Such a column used
    to fail the build's last stage (Arrow could not write it). Returns the column and the
    kinds it mixed (``None``: it did not)."""
    if s.dtype != object:
        return s, None
    present = [v for v in s.tolist() if isinstance(v, (list, tuple, np.ndarray)) or not is_missing(v)]
    kinds = sorted({_kind(v) for v in present})
    if len(kinds) < 2:
        return s, None
    if kinds == ["list", "string"]:                  # "rock" beside ["pop", "jazz"]: a one-element list
        return pd.Series([[str(t) for t in v] if isinstance(v, (list, tuple, np.ndarray)) else
                          (None if is_missing(v) else [v]) for v in s.tolist()], index=s.index, dtype=object), None

    def text(v: Any) -> Any:
        if not isinstance(v, (list, tuple, np.ndarray)) and is_missing(v):
            return None
        if isinstance(v, (list, tuple, dict, np.ndarray)):
            return json.dumps(v.tolist() if isinstance(v, np.ndarray) else v, ensure_ascii=False, default=str)
        return str(v.item() if isinstance(v, np.generic) else v)
    return pd.Series([text(v) for v in s.tolist()], index=s.index, dtype=object), " and ".join(kinds)


def check_unique(df: pd.DataFrame, col: str, path: str) -> None:
    dup = df[col].duplicated(keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0]) + 1
        raise InputError(f"duplicate value {shown(df[col].iloc[i - 1])}; ids must be unique", path=path, row=i, field=col)
