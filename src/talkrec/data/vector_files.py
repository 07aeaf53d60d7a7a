"""Precomputed vectors from files: ``.npz`` (arrays ``ids`` and ``X``), ``.npy`` with a
sibling ``.ids.txt``, or a CSV / Parquet / JSONL table with an id column and either one
numeric column per dimension or one list-valued ``vector`` column.

Every row is checked: a missing or non-numeric value, a non-finite number, a nested list
(a matrix where a vector belongs), a row whose length differs from the first row's (or from
the declared ``dim``), an empty or repeated id: each is an :class:`InputError` naming the
file, the 1-based data row and the field.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .catalog import VectorTable
from .tables import is_missing, read_raw

__all__ = ["parse_vector", "read_vectors"]

_SPLIT = re.compile(r"[\s,;|]+")


def _number(e: Any, path: str, row: int, field: str, where: str = "") -> float:
    """One number of a vector; ``where`` (e.g. ``"element 2: "``) says which."""
    if is_missing(e):
        raise InputError(f"{where}empty value; expected a number", path=path, row=row, field=field)
    if isinstance(e, (bool, np.bool_)) or isinstance(e, (list, tuple, dict, np.ndarray)):
        raise InputError(f"{where}cannot read {e!r} as a number", path=path, row=row, field=field)
    try:
        x = float(e.strip() if isinstance(e, str) else e)
    except (TypeError, ValueError):
        raise InputError(f"{where}cannot read {e!r} as a number", path=path, row=row, field=field) from None
    if not np.isfinite(x):
        raise InputError(f"{where}not a finite number ({e!r})", path=path, row=row, field=field)
    return x


def parse_vector(v: Any, path: str, row: int, field: str = "vector") -> np.ndarray:
    """One row's vector: a list / array of numbers, a JSON list ``"[1, 2]"`` or a string of
    numbers separated by spaces, commas, semicolons or ``|``."""
    if isinstance(v, str):
        text = v.strip()
        if text.startswith("["):
            try:
                v = json.loads(text)
            except json.JSONDecodeError:
                raise InputError(f"cannot read {v!r} as a list of numbers", path=path, row=row, field=field) from None
        else:
            v = [t for t in _SPLIT.split(text) if t]
    if not isinstance(v, (list, tuple, np.ndarray)):
        if is_missing(v):
            raise InputError("empty value; expected a list of numbers", path=path, row=row, field=field)
        raise InputError(f"expected a list of numbers, got {v!r}", path=path, row=row, field=field)
    if isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind in "fiu":
        x = v.astype(np.float64)
        if np.isfinite(x).all():
            return x
    if any(isinstance(e, (list, tuple, dict, np.ndarray)) for e in v) or (isinstance(v, np.ndarray) and v.ndim != 1):
        raise InputError("expected a flat list of numbers, got a nested list (one vector per row)",
                         path=path, row=row, field=field)
    if not len(v):
        raise InputError("empty vector; expected a list of numbers", path=path, row=row, field=field)
    return np.array([_number(e, path, row, field, f"element {j}: ") for j, e in enumerate(v, start=1)])


def _list_column(values: list[Any], path: str, dim: int | None, dim_label: str) -> np.ndarray:
    """The rows of a list-valued ``vector`` column, all of one length."""
    rows: list[np.ndarray] = []
    for i, v in enumerate(values, start=1):
        x = parse_vector(v, path, i)
        want = dim if dim is not None else (len(rows[0]) if rows else None)
        if want is not None and len(x) != want:
            why = dim_label if dim is not None else "as in row 1"
            raise InputError(f"expected {want} numbers ({why}), got {len(x)}", path=path, row=i, field="vector")
        rows.append(x)
    if not rows:
        raise InputError("no vectors in the file", path=path)
    return np.stack(rows)


def _wide_columns(num: pd.DataFrame, path: str) -> np.ndarray:
    """One numeric column per dimension; the first bad cell is named by row and column."""
    if num.shape[1] == 0:
        raise InputError("no vector columns: expected one numeric column per dimension or a 'vector' column",
                         path=path)
    X = np.empty(num.shape, dtype=np.float64)
    for j, c in enumerate(num.columns):
        col = num[c]
        x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan) \
            if col.dtype.kind not in "fiu" else col.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(x)
        if col.dtype.kind == "b":
            bad[:] = True
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            _number(col.iloc[i], path, i + 1, str(c))   # raises with the reason
        X[:, j] = x
    return X


def _ids(raw: Any, path: str, id_column: str) -> np.ndarray:
    ids = [None if is_missing(v) else str(v).strip() for v in list(raw)]
    seen: set[str] = set()
    for i, k in enumerate(ids, start=1):
        if not k:
            raise InputError("empty value; expected an item id", path=path, row=i, field=id_column)
        if k in seen:
            raise InputError(f"duplicate id {k!r}", path=path, row=i, field=id_column)
        seen.add(k)
    return np.array(ids, dtype=str)


def _matrix_file(path: Path) -> tuple[Any, np.ndarray]:
    """``(ids, X)`` of a ``.npz`` or ``.npy`` file; one numpy cannot read (not a zip, cut
    short, object arrays of ragged rows, which need pickle) is an error naming it."""
    import zipfile

    try:
        return _load_matrix(path)
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        why = ("it holds Python objects (ragged rows?); expected a numeric matrix X of one row per id, "
               "all rows of one length") if "allow_pickle" in str(e) else f"not a readable {path.suffix} file ({e})"
        raise InputError(why, path=str(path)) from None


def _load_matrix(path: Path) -> tuple[Any, np.ndarray]:
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as z:
            for k in ("ids", "X"):
                if k not in z:
                    raise InputError(f"missing array '{k}'; expected arrays 'ids' and 'X'", path=str(path), field=k)
            return z["ids"], z["X"]                      # read here: the arrays load lazily
    X = np.load(path, allow_pickle=False)
    id_path = path.with_suffix(".ids.txt")
    if not id_path.exists():
        raise InputError(f"a .npy matrix needs its ids, one per line, in {id_path.name}", path=str(path))
    return id_path.read_text(encoding="utf-8-sig").splitlines(), X


def read_vectors(path: str | Path, *, id_column: str = "item_id", dim: int | None = None,
                 dim_label: str = "the declared dim") -> VectorTable:
    """Read precomputed vectors (see the module docstring). ``dim``: the length every vector
    must have (``dim_label`` names where it was declared, for the error message)."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise InputError("file not found", path=where)
    if path.suffix.lower() in (".npz", ".npy"):
        raw_ids, X = _matrix_file(path)
        X = np.asarray(X)
        if X.ndim != 2:
            raise InputError(f"expected a 2-D matrix, got shape {X.shape}", path=where)
        if X.dtype.kind not in "fiu":
            raise InputError(f"expected a numeric matrix, got dtype {X.dtype}", path=where)
        bad = ~np.isfinite(X)
        if bad.any():
            i, j = (int(a[0]) for a in np.nonzero(bad))
            raise InputError(f"not a finite number ({X[i, j].item()!r}) in column {j + 1}", path=where, row=i + 1)
    else:
        df = read_raw(path)
        if id_column not in df.columns:
            raise InputError(f"missing id column '{id_column}'", path=where, field=id_column)
        raw_ids = df[id_column]
        X = _list_column(df["vector"].tolist(), where, dim, dim_label) if "vector" in df.columns \
            else _wide_columns(df.drop(columns=[id_column]), where)
    if dim is not None and X.shape[1] != dim:
        raise InputError(f"expected {dim} numbers per vector ({dim_label}), got {X.shape[1]}", path=where)
    if len(raw_ids) != len(X):
        raise InputError(f"{len(raw_ids)} ids for {len(X)} rows", path=where)
    X32 = np.asarray(X, dtype=np.float32)
    if not np.isfinite(X32).all():
        i = int(np.flatnonzero(~np.isfinite(X32).all(axis=1))[0])
        raise InputError("a number too large for a 32-bit float", path=where, row=i + 1)
    return VectorTable(_ids(raw_ids, where, id_column), X32)
