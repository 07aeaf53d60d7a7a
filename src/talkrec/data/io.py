"""A generic catalog from files: the ``catalog:`` block of a build config.

Each file is read with its declared schema (:mod:`.tables`, :mod:`.vector_files`) and every
error names the file, the 1-based data row and the field. Rows that refer to no item and
negative interaction weights are errors unless the block says what to do with them
(``on_unknown_ids: drop``, ``negative_weights: drop``); what was dropped is counted in
``catalog.report`` and so in the build report. The catalog that comes out has what the
dataset adapters give: categorized tags, the items' ``tags`` / ``genre`` / ``decade`` list
columns (:mod:`.tags`) and numeric metadata columns as numbers.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import check_keys
from ..errors import InputError, shown
from .catalog import TAG_COLUMNS, Catalog, VectorTable
from .tables import TYPES, check_unique, infer_numeric, is_missing, read_raw, read_table
from .tags import add_tag_columns, tags_from_column
from .vector_files import read_vectors

__all__ = ["CATALOG_KEYS", "POLICIES", "check_catalog_spec", "check_weights", "known_rows", "load_catalog"]

log = logging.getLogger(__name__)

ITEMS_SCHEMA = {"item_id": "str", "name": "str"}
TAGS_SCHEMA = {"item_id": "str", "tag": "str"}  # category and weight optional
INTERACTIONS_SCHEMA = {"user_id": "str", "item_id": "str", "weight": "float"}
#: what ``on_unknown_ids`` and ``negative_weights`` may say
POLICIES = ("error", "drop")
_KEYED = frozenset({"path", "id_column", "column", "on_unknown_ids"})
#: the settings of a generic catalog block and of each of its files (``vectors``, ``texts``
#: and ``media`` hold one such block per modality or text name)
CATALOG_KEYS: dict[str, frozenset[str]] = {
    "": frozenset({"name", "items", "tags", "interactions", "vectors", "texts", "media"}),
    "items": frozenset({"path", "types", "rename", "tags_column", "tags_separator"}),
    "tags": frozenset({"path", "rename", "on_unknown_ids"}),
    "interactions": frozenset({"path", "rename", "negative_weights", "on_unknown_ids"}),
    "vectors": frozenset({"path", "dim", "id_column", "on_unknown_ids"}),
    "texts": _KEYED,
    "media": _KEYED,
}

Resolve = Callable[[str], Path]


def _policy(block: Mapping[str, Any], key: str, where: str) -> str:
    value = block.get(key, "error")
    if value not in POLICIES:
        raise InputError(f"{where}.{key} must be one of {', '.join(POLICIES)}, got {value!r}", field=f"{where}.{key}")
    return str(value)


def known_rows(df: pd.DataFrame, col: str, known: set[str], *, path: str, policy: str) -> np.ndarray | None:
    """Which rows of ``df`` name a known item in ``col`` (``None``: all of them). An unknown
    id is an error naming the first such row (the frame's index is its 0-based row in the
    file) unless ``policy`` is ``"drop"``."""
    bad = ~df[col].astype(str).isin(known).to_numpy()
    if not bad.any():
        return None
    if policy == "error":
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"unknown item_id {shown(df[col].iloc[i])} ({int(bad.sum())} rows refer to items not in the "
                         "items file; on_unknown_ids: drop leaves them out)", path=path, row=int(df.index[i]) + 1,
                         field=col)
    return ~bad


def check_weights(df: pd.DataFrame, *, path: str, policy: str = "error") -> tuple[pd.DataFrame, int]:
    """Interactions whose ``weight`` is a finite number of at least 0 (a play count or a
    rating); a negative weight is an error (``policy="error"``) or its row is left out
    (``"drop"``), never clamped into a positive interaction. Returns the rows kept and how
    many were dropped (rows are named by the frame's index, the 0-based row in the file)."""
    w = pd.to_numeric(df["weight"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(w)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"weight {shown(df['weight'].iloc[i])} is not a finite number", path=path,
                         row=int(df.index[i]) + 1, field="weight")
    neg = w < 0
    if not neg.any():
        return df, 0
    if policy == "error":
        i = int(np.flatnonzero(neg)[0])
        raise InputError(f"negative weight {float(w[i])} ({int(neg.sum())} rows): weights are play counts or "
                         "ratings, never below 0; negative_weights: drop leaves such rows out", path=path,
                         row=int(df.index[i]) + 1, field="weight")
    return df[~neg], int(neg.sum())


def _typed_items(items: pd.DataFrame, types: Mapping[str, str], path: str) -> pd.DataFrame:
    """Declared column types applied (nullable ``Int64`` / NaN floats where values are
    missing); undeclared text columns of numbers inferred; Parquet arrays as lists."""
    from .tables import settle_mixed
    for col, typ in types.items():
        if col not in items.columns:
            raise InputError(f"missing column '{col}' (items.types); the file has {list(items.columns)}",
                             path=path, field=col)
        if typ == "int":
            values = items[col].tolist()
            items[col] = pd.Series(values, index=items.index, dtype="Int64" if None in values else np.int64)
        elif typ == "float":
            items[col] = pd.Series([np.nan if v is None else v for v in items[col]], index=items.index, dtype=float)
    for col in items.columns:
        if col in ("item_id", "name") or col in types:
            continue
        items[col], mixed = settle_mixed(items[col])
        items[col] = infer_numeric(items[col])
        if mixed and items[col].dtype == object:
            log.warning("%s: column '%s' mixes %s values; read as text (types: {%s: ...} in the items block "
                        "declares its type)", path, col, mixed, col)
        if items[col].dtype == object and any(isinstance(v, np.ndarray) for v in items[col].head(50)):
            items[col] = items[col].apply(lambda v: v.tolist() if isinstance(v, np.ndarray) else v)
    return items


def _read_items(ispec: Mapping[str, Any], p: Resolve, categorizer: Callable[[str], str]
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The items file: ids unique, the tags column parsed into long tags, metadata typed."""
    if not ispec or not ispec.get("path"):
        raise InputError("the catalog config needs an 'items' block with a 'path'", field="items")
    ipath = p(ispec["path"])
    where = str(ipath)
    types = dict(ispec.get("types") or {})          # each a known type: check_catalog_spec
    items = read_table(ipath, ITEMS_SCHEMA, optional=types, rename=ispec.get("rename"))
    check_unique(items, "item_id", where)
    if not len(items):
        raise InputError("no items: the file has a header and no rows; expected one row per item", path=where)
    tcol = ispec["tags_column"] if "tags_column" in ispec else ("tags" if "tags" in items.columns else None)
    tags = pd.DataFrame(columns=list(TAG_COLUMNS))
    if tcol:
        if tcol not in items.columns:
            raise InputError(f"missing column '{tcol}' (items.tags_column); the file has {list(items.columns)}",
                             path=where, field=tcol)
        tags = tags_from_column(items, tcol, path=where, categorizer=categorizer,
                                separator=str(ispec.get("tags_separator", "|")))
        items = items.drop(columns=[tcol])
        types.pop(tcol, None)
    _check_reserved(items, where)
    # the --where grammar (index.filters) quotes a name that is not a plain word ("release year",
    # `a "b"`), but a name holding both quote marks has no way to be written
    awkward = [c for c in items.columns if '"' in str(c) and "`" in str(c)]
    if awkward:
        log.warning("%s: columns %s cannot be named in a --where filter (both \" and ` in the name); "
                    "rename: {'%s': %s} in the items block makes one filterable", where, awkward,
                    awkward[0], re.sub(r"\W+", "_", str(awkward[0])).strip("_") or "field")
    return _typed_items(items, types, where), tags


#: item fields the space writes itself (``stages._index_meta``): an items column of that name
#: was replaced (``description``: the TEMPLATE text) or dropped (``title``) without a word
RESERVED_COLUMNS = ("description", "modalities", "cold_start", "title", "join_name")


def _check_reserved(items: pd.DataFrame, where: str) -> None:
    for c in items.columns:
        c = str(c)
        if c in RESERVED_COLUMNS or c.startswith("description_"):
            new = {"description": "summary", "title": "full_title"}.get(c, f"my_{c}")
            raise InputError(f"an items column cannot be named '{c}': the space writes that field itself and "
                             f"would {'drop' if c in ('title', 'join_name') else 'replace'} it; rename: {{{c}: {new}}} "
                             "in the items block keeps it (a text column becomes a second description with texts: "
                             f"{{{new}: {{path: <the items file>, column: {c}}}}} and descriptions.second: {new})",
                             path=where, field=c)


def _read_tags(tspec: Mapping[str, Any], p: Resolve, known: set[str], categorizer: Callable[[str], str],
               report: dict[str, Any]) -> pd.DataFrame:
    """A long tags file (item_id, tag, [category], [weight]); no category: the categorizer's."""
    tpath = p(tspec["path"])
    t = read_table(tpath, TAGS_SCHEMA, optional={"category": "str", "weight": "float"}, rename=tspec.get("rename"))
    cats = t["category"].tolist() if "category" in t.columns else [None] * len(t)
    t["category"] = [c if c else categorizer(tag) for c, tag in zip(cats, t["tag"])]
    t["weight"] = t["weight"].fillna(1.0).astype(float) if "weight" in t.columns else 1.0
    keep = known_rows(t, "item_id", known, path=str(tpath), policy=_policy(tspec, "on_unknown_ids", "tags"))
    if keep is not None:
        report["tags_unknown_ids_dropped"] = int((~keep).sum())
        t = t[keep]
    t = t[list(TAG_COLUMNS)]
    if t.duplicated(["item_id", "category", "tag"]).any():     # one row per tagging: the tag twice in the text
        t = t.groupby(["item_id", "category", "tag"], sort=False, as_index=False)["weight"].sum()[list(TAG_COLUMNS)]
    return t


def _read_interactions(xspec: Mapping[str, Any], p: Resolve, known: set[str], report: dict[str, Any]) -> pd.DataFrame:
    xpath = p(xspec["path"])
    df = read_table(xpath, INTERACTIONS_SCHEMA, rename=xspec.get("rename"))
    if "timestamp" in df.columns:
        df["timestamp"] = _timestamps(df["timestamp"], str(xpath))
    df, dropped = check_weights(df, path=str(xpath), policy=_policy(xspec, "negative_weights", "interactions"))
    if dropped:
        report["interactions_negative_weights_dropped"] = dropped
    keep = known_rows(df, "item_id", known, path=str(xpath), policy=_policy(xspec, "on_unknown_ids", "interactions"))
    if keep is not None:
        report["interactions_unknown_ids_dropped"] = int((~keep).sum())
        df = df[keep]
    return df.reset_index(drop=True)


def _timestamps(s: pd.Series, path: str) -> pd.Series:
    """Unix seconds (nullable ``Int64``) from whole numbers or ISO 8601 dates
    (``2020-01-31``, ``2020-01-31T12:00:00Z``; no zone: UTC); a date string was refused."""
    if pd.api.types.is_integer_dtype(s.dtype):          # Unix seconds already: no pass per row
        return s
    out: list[int | None] = []
    for i, v in enumerate(s.tolist(), start=1):
        if is_missing(v) or (isinstance(v, str) and v.strip().lower() == "nan"):
            out.append(None)
            continue
        try:
            x = float(v)
            if not x.is_integer():
                raise ValueError
            out.append(int(x))
            continue
        except (TypeError, ValueError):
            pass
        try:
            t = pd.Timestamp(str(v).strip())
            out.append(int((t.tz_localize("UTC") if t.tzinfo is None else t).timestamp()))
        except (TypeError, ValueError):
            raise InputError(f"cannot read {v!r} as a time; expected Unix seconds (a whole number) or an ISO 8601 "
                             "date such as 2020-01-31T12:00:00Z", path=path, row=i, field="timestamp") from None
    return pd.Series(out, index=s.index, dtype="Int64" if None in out else np.int64)


def _read_vectors(m: str, v: Mapping[str, Any], p: Resolve, known: set[str], report: dict[str, Any]) -> VectorTable:
    vpath = p(v["path"])
    dim = v.get("dim")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise InputError(f"vectors.{m}.dim must be a positive integer, got {dim!r}", field=f"vectors.{m}.dim")
    idc = v.get("id_column", "item_id")
    vt = read_vectors(vpath, id_column=idc, dim=dim, dim_label=f"vectors.{m}.dim")
    keep = known_rows(pd.DataFrame({idc: vt.ids}), idc, known, path=str(vpath),
                      policy=_policy(v, "on_unknown_ids", f"vectors.{m}"))
    if keep is None:
        return vt
    report[f"vectors[{m}]_unknown_ids_dropped"] = int((~keep).sum())
    log.warning("%s: %d vectors with unknown ids dropped (on_unknown_ids: drop)", vpath, int((~keep).sum()))
    return VectorTable(vt.ids[keep], vt.X[keep])


def _read_keyed(block: str, v: Mapping[str, Any], default_column: str, p: Resolve, known: set[str],
                report: dict[str, Any]) -> pd.Series:
    """``item_id -> value`` of one column of a file (texts, media paths); blank values left out."""
    path = p(v["path"])
    df = read_raw(path)
    idc, col = v.get("id_column", "item_id"), v.get("column", default_column)
    for c in (idc, col):
        if c not in df.columns:
            raise InputError(f"missing column '{c}' ({block}); the file has {list(df.columns)}", path=str(path),
                             field=c)
    seen: set[str] = set()
    for i, x in enumerate(df[idc].tolist(), start=1):
        if is_missing(x):
            raise InputError("empty value; expected an item id", path=str(path), row=i, field=idc)
        if str(x).strip() in seen:       # which of the two would win was left to chance
            raise InputError(f"duplicate item id {shown(x)}; {block} takes one row per item", path=str(path),
                             row=i, field=idc)
        seen.add(str(x).strip())
    keep = known_rows(df, idc, known, path=str(path), policy=_policy(v, "on_unknown_ids", block))
    if keep is not None:
        report[f"{block}_unknown_ids_dropped"] = int((~keep).sum())
        df = df[keep]
    df = df[[not is_missing(x) for x in df[col].tolist()]]
    return pd.Series(df[col].tolist(), index=df[idc].astype(str).str.strip().tolist(), dtype=object)


def check_catalog_spec(spec: Mapping[str, Any], *, where: str = "catalog", path: str | None = None) -> None:
    """:class:`InputError` for a setting that no reader of a generic catalog block takes
    (:data:`CATALOG_KEYS`), named ``where.block.key`` (``path``: the config file)."""
    if not isinstance(spec, Mapping):
        raise InputError(f"the catalog block must be a mapping of files, got {spec!r}", path=path, field=where)
    check_keys(spec, CATALOG_KEYS[""], where=where, path=path)
    files = [(block, block) for block in ("items", "tags", "interactions") if spec.get(block) is not None]
    for block in ("vectors", "texts", "media"):
        named = spec.get(block)
        if named is not None and not isinstance(named, Mapping):
            raise InputError(f"must map each {'text' if block == 'texts' else 'modality'} name to a file block "
                             f"({{path: ...}}), got {named!r}", path=path, field=f"{where}.{block}")
        files += [(f"{block}.{name}", block) for name in (named or {})]
    for dotted, block in files:
        _check_file_block(_at(spec, dotted), dotted, block, where, path)


def _at(spec: Mapping[str, Any], dotted: str) -> Any:
    head, _, name = dotted.partition(".")
    return spec[head][name] if name else spec[head]


def _check_file_block(v: Any, dotted: str, block: str, where: str, path: str | None) -> None:
    """One file's block: a mapping of known settings with a ``path``, its values the right kind."""
    field = f"{where}.{dotted}"
    if not isinstance(v, Mapping):
        raise InputError(f"must be a mapping such as {{path: {v if isinstance(v, str) else 'file.csv'}}}, got {v!r}",
                         path=path, field=field)
    check_keys(v, CATALOG_KEYS[block], where=field, path=path)
    if not isinstance(v.get("path"), str) or not v["path"].strip():
        raise InputError(f"needs a 'path' naming the file, got {v.get('path')!r}", path=path, field=f"{field}.path")
    for key in ("types", "rename"):
        if v.get(key) is not None and not isinstance(v[key], Mapping):
            raise InputError(f"must map a column name to a {'type' if key == 'types' else 'new name'}, got {v[key]!r}",
                             path=path, field=f"{field}.{key}")
    for col, typ in (v.get("types") or {}).items():
        if typ not in TYPES:
            raise InputError(f"unknown type {typ!r}; expected one of {', '.join(TYPES)}", path=path,
                             field=f"{field}.types.{col}")
    for key in ("tags_separator", "tags_column", "id_column", "column"):
        if key in v and not (key == "tags_column" and v[key] is None) and (not isinstance(v[key], str) or not v[key]):
            raise InputError(f"must be a non-empty string, got {v[key]!r}", path=path, field=f"{field}.{key}")
    for key in ("on_unknown_ids", "negative_weights"):
        if key in v and v[key] not in POLICIES:
            raise InputError(f"{dotted}.{key} must be one of {', '.join(POLICIES)}, got {v[key]!r}", path=path,
                             field=f"{field}.{key}")


def load_catalog(spec: Mapping[str, Any], base: Path | None = None, *,
                 categorizer: Callable[[str], str] | None = None) -> Catalog:
    """Build a :class:`Catalog` from a generic config block (docs/building.md)::

        items: {path: items.csv, tags_column: tags, types: {year: int}}   # tags "genre:rock|sad"
        tags: {path: tags.csv}                           # item_id, tag, [category], [weight]
        interactions: {path: plays.parquet, negative_weights: error}      # user_id, item_id, weight
        vectors: {audio: {path: audio.npz, dim: 11, on_unknown_ids: error}}
        texts: {overview: {path: items.csv, column: overview}}
        media: {audio: {path: media.csv, column: path}}  # item_id -> file path

    ``categorizer`` gives tags without a category one (default
    :class:`~talkrec.descriptions.categories.TagCategorizer`)."""
    check_catalog_spec(spec)
    if categorizer is None:
        from ..descriptions.categories import TagCategorizer
        categorizer = TagCategorizer()
    base = base or Path(".")

    def p(x: str) -> Path:
        q = Path(x)
        return q if q.is_absolute() else base / q

    report: dict[str, Any] = {}
    items, tags = _read_items(spec.get("items") or {}, p, categorizer)
    known = set(items["item_id"])
    if spec.get("tags"):
        tags = pd.concat([tags, _read_tags(spec["tags"], p, known, categorizer, report)], ignore_index=True)
    items = add_tag_columns(items, tags)
    interactions = _read_interactions(spec["interactions"], p, known, report) if spec.get("interactions") else None
    vectors = {m: _read_vectors(m, v, p, known, report) for m, v in (spec.get("vectors") or {}).items()}
    texts = {k: _read_keyed(f"texts.{k}", v, k, p, known, report).astype(str)
             for k, v in (spec.get("texts") or {}).items()}
    media = {m: _read_keyed(f"media.{m}", v, "path", p, known, report).map(lambda x: str(p(str(x).strip())))
             for m, v in (spec.get("media") or {}).items()}
    return Catalog(items=items, tags=tags, interactions=interactions, texts=texts, vectors=vectors,
                   media=media, name=str(spec.get("name", "catalog")), report=report)
