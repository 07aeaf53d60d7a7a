"""Read catalogs from CSV, Parquet or JSONL with a declared schema, and validate them.

Every error names the file, the 1-based data row (header excluded) and the field, e.g.
``items.csv: row 17: field 'item_id': empty value; expected a non-empty string``.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .catalog import Catalog, VectorTable

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".tsv": "tsv", ".dat": "tsv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}

#: Column types a schema may declare.
TYPES = ("str", "float", "int", "list", "json")

ITEMS_SCHEMA = {"item_id": "str", "name": "str"}
TAGS_SCHEMA = {"item_id": "str", "tag": "str"}  # category and weight optional
INTERACTIONS_SCHEMA = {"user_id": "str", "item_id": "str", "weight": "float"}


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
            return pd.read_parquet(path, **kwargs)
        if f == "jsonl":
            rows = []
            with open(path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise InputError(f"invalid JSON ({e.msg} at column {e.colno})", path=str(path), row=n) from None
                    if not isinstance(obj, dict):
                        raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=str(path), row=n)
                    rows.append(obj)
            return pd.DataFrame(rows)
    except InputError:
        raise
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, ValueError) as e:
        raise InputError(f"cannot parse as {f}: {e}", path=str(path)) from None
    raise InputError(f"unsupported format '{f}'", path=str(path))


def _coerce(df: pd.DataFrame, col: str, typ: str, path: str, required: bool) -> pd.Series:
    s = df[col]
    out: list[Any] = []
    for i, v in enumerate(s.tolist(), start=1):
        missing = v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and v.strip() == "")
        if missing:
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
            raise InputError(f"missing column '{col}'; the file has {list(df.columns)}", path=str(path), field=col)
    for col, typ in schema.items():
        df[col] = _coerce(df, col, typ, str(path), required=True)
    for col, typ in (optional or {}).items():
        if col in df.columns:
            df[col] = _coerce(df, col, typ, str(path), required=False)
    return df


def check_unique(df: pd.DataFrame, col: str, path: str) -> None:
    dup = df[col].duplicated(keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0]) + 1
        raise InputError(f"duplicate value {df[col].iloc[i - 1]!r}; ids must be unique", path=path, row=i, field=col)


def read_vectors(path: str | Path, *, id_column: str = "item_id") -> VectorTable:
    """Read precomputed vectors: ``.npz`` (arrays ``ids`` and ``X``), ``.npy`` with a
    sibling ``.ids.txt``, or a Parquet/CSV table with an id column and numeric columns
    (or a single list-valued ``vector`` column)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=str(path))
    suf = path.suffix.lower()
    if suf == ".npz":
        with np.load(path, allow_pickle=False) as z:
            for k in ("ids", "X"):
                if k not in z:
                    raise InputError(f"missing array '{k}'; expected arrays 'ids' and 'X'", path=str(path), field=k)
            ids, X = z["ids"], z["X"]
    elif suf == ".npy":
        X = np.load(path, allow_pickle=False)
        id_path = path.with_suffix(".ids.txt")
        if not id_path.exists():
            raise InputError(f"a .npy matrix needs its ids, one per line, in {id_path.name}", path=str(path))
        ids = np.array(id_path.read_text(encoding="utf-8").splitlines())
    else:
        df = read_raw(path)
        if id_column not in df.columns:
            raise InputError(f"missing id column '{id_column}'", path=str(path), field=id_column)
        ids = df[id_column].astype(str).to_numpy()
        if "vector" in df.columns:
            X = np.stack([np.asarray(v, dtype=np.float32) for v in df["vector"]])
        else:
            num = df.drop(columns=[id_column])
            X = np.empty((len(num), num.shape[1]), dtype=np.float32)
            for j, c in enumerate(num.columns):
                try:
                    X[:, j] = pd.to_numeric(num[c]).to_numpy(dtype=np.float32)
                except (ValueError, TypeError):
                    bad = pd.to_numeric(num[c], errors="coerce").isna().to_numpy()
                    i = int(np.flatnonzero(bad)[0]) + 1
                    raise InputError(f"cannot read {num[c].iloc[i - 1]!r} as a number", path=str(path), row=i, field=str(c)) from None
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise InputError(f"expected a 2-D matrix, got shape {X.shape}", path=str(path))
    bad_rows = ~np.isfinite(X).all(axis=1)
    if bad_rows.any():
        i = int(np.flatnonzero(bad_rows)[0]) + 1
        raise InputError("non-finite value in vector", path=str(path), row=i)
    if len(ids) != len(X):
        raise InputError(f"{len(ids)} ids for {len(X)} rows", path=str(path))
    seen: set[str] = set()
    for i, k in enumerate(ids.astype(str).tolist(), start=1):
        if k in seen:
            raise InputError(f"duplicate id {k!r}", path=str(path), row=i, field=id_column)
        seen.add(k)
    return VectorTable(ids.astype(str), X)


def load_catalog(spec: Mapping[str, Any], base: Path | None = None) -> Catalog:
    """Build a :class:`Catalog` from a generic config block::

        items: {path: items.csv, tags_column: tags}      # tags "cat:tag|cat:tag" optional
        tags: {path: tags.csv}                           # item_id, tag, [category], [weight]
        interactions: {path: plays.parquet}              # user_id, item_id, weight, [timestamp]
        vectors: {audio: {path: audio.npz}}
        texts: {overview: {path: items.csv, column: overview}}
        media: {audio: {path: media.csv, column: path}}  # item_id -> file path
    """
    base = base or Path(".")

    def p(x: str) -> Path:
        q = Path(x)
        return q if q.is_absolute() else base / q

    ispec = spec.get("items")
    if not ispec:
        raise InputError("the catalog config needs an 'items' block with a 'path'", field="items")
    ipath = p(ispec["path"])
    items = read_table(ipath, ITEMS_SCHEMA, rename=ispec.get("rename"))
    check_unique(items, "item_id", str(ipath))
    known = set(items["item_id"])

    tag_rows: list[dict[str, Any]] = []
    tcol = ispec.get("tags_column")
    if tcol and tcol in items.columns:
        for _, r in items.iterrows():
            for k, t in enumerate(str(r[tcol] or "").split("|")):
                t = t.strip()
                if not t:
                    continue
                cat, _, tag = t.rpartition(":")
                tag_rows.append({"item_id": r["item_id"], "category": cat.strip() or "tag",
                                 "tag": tag.strip(), "weight": float(1000 - k)})
        items = items.drop(columns=[tcol])
    tags = pd.DataFrame(tag_rows, columns=["item_id", "category", "tag", "weight"])
    if spec.get("tags"):
        tpath = p(spec["tags"]["path"])
        t = read_table(tpath, TAGS_SCHEMA, optional={"category": "str", "weight": "float"})
        if "category" not in t.columns:
            t["category"] = "tag"
        t["category"] = t["category"].fillna("tag")
        if "weight" not in t.columns:
            t["weight"] = 1.0
        t["weight"] = t["weight"].fillna(1.0)
        _check_refs(t, known, str(tpath))
        tags = pd.concat([tags, t[["item_id", "category", "tag", "weight"]]], ignore_index=True)

    interactions = None
    if spec.get("interactions"):
        xpath = p(spec["interactions"]["path"])
        interactions = read_table(xpath, INTERACTIONS_SCHEMA, optional={"timestamp": "int"},
                                  rename=spec["interactions"].get("rename"))
        _check_refs(interactions, known, str(xpath))

    vectors = {m: read_vectors(p(v["path"]), id_column=v.get("id_column", "item_id"))
               for m, v in (spec.get("vectors") or {}).items()}
    texts: dict[str, pd.Series] = {}
    for kind, v in (spec.get("texts") or {}).items():
        df = read_raw(p(v["path"]))
        col = v.get("column", kind)
        if col not in df.columns:
            raise InputError(f"missing column '{col}'", path=str(p(v["path"])), field=col)
        s = df.set_index(df[v.get("id_column", "item_id")].astype(str))[col]
        texts[kind] = s[s.astype(str).str.strip() != ""]
    media: dict[str, pd.Series] = {}
    for m, v in (spec.get("media") or {}).items():
        df = read_raw(p(v["path"]))
        col = v.get("column", "path")
        if col not in df.columns:
            raise InputError(f"missing column '{col}'", path=str(p(v["path"])), field=col)
        media[m] = pd.Series([str(p(x)) for x in df[col]], index=df[v.get("id_column", "item_id")].astype(str))
    return Catalog(items=items, tags=tags, interactions=interactions, texts=texts, vectors=vectors,
                   media=media, name=str(spec.get("name", "catalog")))


def _check_refs(df: pd.DataFrame, known: set[str], path: str) -> None:
    bad = ~df["item_id"].isin(known)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0]) + 1
        raise InputError(f"unknown item_id {df['item_id'].iloc[i - 1]!r} ({int(bad.sum())} rows refer to "
                         "items not in the items file)", path=path, row=i, field="item_id")
