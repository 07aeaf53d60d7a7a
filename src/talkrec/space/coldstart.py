"""Cold start: add or update items in a built space without retraining.

A new item is described with the space's TEMPLATE settings (unless a description is
given), embedded with the space's text model, and each raw modality vector it has is
projected through the trained encoders; the fused vector is upserted into the index.

Every write (the Python API, ``talkrec add``, ``POST /api/items``) is validated here, once:
a record is ``{"item_id", "name", "tags"?, "description"?, "vectors"?, "media"?,
"metadata"?: {field: value}}``, and any other key is a metadata field as well
(``description_<view>``: also a text view, :mod:`.textviews`). Metadata
keys must be identifiers and not reserved; a value must be text, a 64-bit integer, a finite
number, true/false or a list of strings, and fit the type of an existing column (a number for
a numeric column, true/false for a boolean one, a list for a list field, a string for a text
field), judged by the column's values that are not missing. Tags given (or a new item) also
set the fields of the TEMPLATE's categories (``genre``, ``decade``...; ``[]`` where none).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..data.tags import decades
from ..descriptions.categories import DEFAULT_ORDER, TagCategorizer
from ..descriptions.template import TemplateDescriber
from ..encoders.query import QueryEncoder
from ..errors import InputError
from ..fusion.model import combine
from ..index.filters import finite_float, is_null
from ..index.store import l2_normalize
from ..limits import is_number
from .textviews import text_input, view_texts

if TYPE_CHECKING:
    from pathlib import Path

    from .core import Space
    from .writer import SpaceStore, Upsert

MAX_ITEMS_PER_CALL = 1000
#: keys a metadata field may not have
RESERVED = frozenset({"item_id", "name", "tags", "description", "vectors", "modalities", "cold_start", "metadata"})
#: the record's own keys; every other key is a metadata field
RECORD_KEYS = ("item_id", "name", "tags", "description", "vectors", "media", "metadata")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_INT64 = (-(2 ** 63), 2 ** 63 - 1)


@dataclass
class _Item:
    item_id: str
    name: str
    text: str
    meta: dict[str, Any]
    vectors: dict[str, np.ndarray | None]
    views: dict[str, str]                  # texts of the space's other text views (textviews.py)


def _by_category(tags: Sequence[str]) -> dict[str, list[str]]:
    """A flat list of tags grouped by their category (:class:`TagCategorizer`), order kept."""
    cat = TagCategorizer()
    out: dict[str, list[str]] = {}
    for x in tags:
        out.setdefault(cat(x), []).append(x)
    return out


def _tags(rec: Mapping[str, Any], i: int) -> dict[str, list[str]]:
    t = rec.get("tags")
    if t is None:
        return {}
    if isinstance(t, Mapping):
        out = {}
        for c, v in t.items():
            if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
                raise InputError(f"tags[{c!r}] must be a list of strings", row=i, field="tags")
            out[str(c)] = list(v)
        return out
    if isinstance(t, (list, tuple)) and all(isinstance(x, str) for x in t):
        return _by_category(t)
    raise InputError("tags must be a list of strings or an object {category: [tags]}", row=i, field="tags")


def check_metadata_value(meta: pd.DataFrame, key: str, value: Any, *, row: int, field: str) -> None:
    """Refuse a metadata value that compaction could not store: one that is not text, a
    64-bit integer, a finite number, true/false or a list of strings, or that does not fit
    the existing column ``key`` of ``meta`` (a string in a numeric column would break the
    parquet write). A column's type is that of its values that are not missing."""
    if key not in meta.columns or value is None:
        return _check_plain(key, value, row=row, field=field)
    kind = column_kind(meta[key])
    if kind == "list" and not isinstance(value, list):
        raise InputError(f"{key} is a list field; give a list of strings", row=row, field=field)
    if kind not in ("list", None) and isinstance(value, list):
        raise InputError(f"{key} is not a list field", row=row, field=field)
    if kind == "numeric" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise InputError(f"{key} is numeric; got {value!r}", row=row, field=field)
    if kind == "bool" and not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{key} is true/false; got {value!r}", row=row, field=field)
    if kind == "text" and not isinstance(value, str):
        raise InputError(f"{key} is a text field; got {value!r}", row=row, field=field)
    _check_plain(key, value, row=row, field=field)


def _check_plain(key: str, value: Any, *, row: int, field: str) -> None:
    """Refuse what no column can hold: an integer beyond 64 bits, NaN or an infinity, and
    anything but text, a number, true/false, a list of strings or ``None``."""
    if isinstance(value, (bool, np.bool_, str)) or value is None:
        return
    if isinstance(value, (int, np.integer)):
        if not _INT64[0] <= int(value) <= _INT64[1]:
            raise InputError(f"{key}: integer out of the 64-bit range; got {value}", row=row, field=field)
    elif isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise InputError(f"{key} must be a finite number; got {value!r}", row=row, field=field)
    elif not isinstance(value, (list, tuple, np.ndarray)) or not all(isinstance(x, str) for x in value):
        raise InputError(f"{key} must be text, a number, true/false or a list of strings; got {value!r}",
                         row=row, field=field)


def column_kind(s: pd.Series) -> str | None:
    """``"list"``, ``"bool"``, ``"numeric"`` or ``"text"`` when all values of ``s`` that are
    not missing are of that kind (any list: ``"list"``), ``"mixed"`` otherwise, ``None``
    when it has none."""
    values = [v for v in s.tolist() if not is_null(v)]
    if not values:
        return None
    if any(isinstance(v, (list, tuple, np.ndarray)) for v in values):
        return "list"
    for kind, types in (("bool", (bool, np.bool_)), ("text", (str,))):
        if all(isinstance(v, types) for v in values):
            return kind
    return "numeric" if all(is_number(v) for v in values) else "mixed"


def _metadata(space: "Space", rec: Mapping[str, Any], i: int) -> dict[str, Any]:
    """The record's metadata fields (top-level extra keys and ``metadata``), checked."""
    nested = rec.get("metadata")
    if nested is None:
        nested = {}
    if not isinstance(nested, Mapping):
        raise InputError("metadata must be an object {field: value}", row=i, field="metadata")
    given = [(k, v, str(k)) for k, v in rec.items() if k not in RECORD_KEYS]
    given += [(k, v, f"metadata.{k}") for k, v in nested.items()]
    out: dict[str, Any] = {}
    for k, v, field in given:
        if not isinstance(k, str) or k in RESERVED or not _IDENTIFIER.fullmatch(k):
            raise InputError(f"metadata key {k!r} is reserved or not an identifier", row=i, field=field)
        if k in out:
            raise InputError(f"metadata field {k!r} is given twice (at the top level and in metadata)",
                             row=i, field=field)
        check_metadata_value(space.index.schema(), k, v, row=i, field=field)
        out[k] = v
    return out


def _identity(rec: Any, i: int, first_row: dict[str, int]) -> tuple[str, str]:
    if not isinstance(rec, Mapping):
        raise InputError("each item must be an object", row=i)
    iid = rec.get("item_id")
    if not isinstance(iid, (str, int)) or str(iid).strip() == "":
        raise InputError("missing or empty item_id", row=i, field="item_id")
    iid = str(iid).strip()
    if iid in (".", ".."):
        raise InputError(f"item_id {iid!r} cannot be addressed in a URL (clients drop dot segments)", row=i,
                         field="item_id")
    if iid in first_row:
        raise InputError(f"item_id {iid!r} already appears in row {first_row[iid]} of "
                         "this batch; give each item once per call (nothing was written)", row=i, field="item_id")
    first_row[iid] = i
    name = rec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InputError("missing or empty name", row=i, field="name")
    return iid, name.strip()


def _vectors(space: "Space", rec: Mapping[str, Any], i: int, iid: str) -> dict[str, np.ndarray | None]:
    """Raw vector per non-text modality (``None`` where the item has none), from ``vectors``
    (standardized as in the build) and ``media`` files (encoded). A modality the record does
    not name keeps the item's stored input when the item exists (an update of its tags keeps
    its plays and audio); ``vectors: {modality: null}`` clears it."""
    if not isinstance(rec.get("vectors") or {}, Mapping):
        raise InputError("vectors must be an object {modality: [numbers]}", row=i, field="vectors")
    vectors = dict(rec.get("vectors") or {})
    media = rec.get("media") or {}
    if not isinstance(media, Mapping):
        raise InputError("media must be an object {modality: file path}", row=i, field="media")
    for m, path in media.items():
        try:
            vectors[m] = space.encode_media(str(m), str(path)).tolist()
        except InputError as e:
            raise InputError(str(e), row=i, field=f"media.{m}") from None
    for m in vectors:
        if m not in space.fusion.input_dims_ or m == "text":
            raise InputError(f"unknown modality {m!r}; raw vectors can be given for "
                             f"{[x for x in space.modalities if x != 'text']}", row=i, field=f"vectors.{m}")
    out: dict[str, np.ndarray | None] = {}
    for m in space.modalities:
        if m == "text":
            continue
        if m not in vectors:
            out[m] = _stored_input(space, iid, m)
            continue
        v = vectors[m]
        if v is None:
            out[m] = None
            continue
        try:
            arr = np.asarray(v, dtype=np.float32)
        except (TypeError, ValueError):
            raise InputError("vector must be a list of numbers", row=i, field=f"vectors.{m}") from None
        want = space.fusion.input_dims_[m]
        if arr.shape != (want,) or not np.isfinite(arr).all():
            raise InputError(f"expected {want} finite numbers, got shape {list(arr.shape)}", row=i,
                             field=f"vectors.{m}")
        out[m] = arr if m in media else space.standardize(m, arr)
    return out


def _stored_input(space: "Space", iid: str, m: str) -> np.ndarray | None:
    """The raw input of modality ``m`` the space keeps for item ``iid`` (``None``: a new item,
    no stored input of ``m``, or one with several views)."""
    p = space.index.position(iid)
    row = None if p is None else space.index.input_row(space.config["input_files"].get(m, ""), p)
    if row is None or row.ndim != 1 or not np.isfinite(row).all():
        return None
    return np.asarray(row, dtype=np.float32)


def _item(space: "Space", rec: Any, i: int, first_row: dict[str, int], describer: TemplateDescriber) -> _Item:
    """One record, validated, described and with its raw vectors."""
    iid, name = _identity(rec, i, first_row)
    tags = _tags(rec, i)
    desc = rec.get("description")
    if desc is not None and not isinstance(desc, str):
        raise InputError("description must be a string", row=i, field="description")
    fields = _metadata(space, rec, i)
    stored = _stored_tags(space, iid) if rec.get("tags") is None else None
    kept = _kept_text(space, iid, name, fields, describer) if stored is not None and not desc else None
    text = kept if kept is not None else desc if desc and desc.strip() else \
        describer.describe_one({"item_id": iid, "name": name, **fields}, tags)
    vectors = _vectors(space, rec, i, iid)
    order = [x for ts in tags.values() for x in ts]
    # tags not given: an update keeps the item's (the writer merges the fields a record leaves out),
    # and a new year moves its decade
    meta = {**fields} if stored is not None else {**fields, "tags": sorted(set(order), key=order.index)}
    derived = _tag_fields(space, iid, tags, fields) if stored is None else \
        {c: v for c, v in _tag_fields(space, iid, stored, fields).items() if c == "decade" and "year" in fields}
    for c, v in derived.items():
        meta.setdefault(c, v)
    return _Item(iid, name, text, meta, vectors, view_texts(space, rec, i))


def _stored_tags(space: "Space", iid: str) -> dict[str, list[str]] | None:
    """The tags the space has for item ``iid``, by category; ``None`` for a new item."""
    snap = space.index
    p = snap.position(iid)
    if p is None:
        return None
    old = snap.value(p, "tags") if "tags" in snap.columns else None
    return _by_category([str(x) for x in old] if isinstance(old, (list, tuple, np.ndarray)) else [])


def _tag_fields(space: "Space", iid: str, tags: Mapping[str, list[str]],
                fields: Mapping[str, Any]) -> dict[str, list[str]]:
    """The fields made from the tags a write gives an item: the tags of each category of the
    space's TEMPLATE but ``other`` that the tags have or the space has a field for (``[]``
    for none, as a built item without such tags has; a re-tagged item keeps no old one), and
    in ``decade`` the decade of a numeric ``year`` (the given one, else the item's) where the
    space has that field, added as the build adds it (:func:`talkrec.data.tags.decades`)."""
    snap = space.index
    schema = snap.schema()
    cols = {c for c in snap.columns if column_kind(schema[c]) in ("list", None)}     # not a text field "genre"
    cats = space.config["descriptions"]["template"].get("categories") or DEFAULT_ORDER
    out = {str(c): list(tags.get(c, [])) for c in cats
           if c != "other" and c not in RESERVED and (c in cols or (c in tags and c not in snap.columns))}
    if "decade" in out and "decade" in cols:
        p = snap.position(iid)
        year = fields["year"] if "year" in fields else None if p is None else snap.value(p, "year")
        year = finite_float(year) if is_number(year) else None
        if year is not None:
            out["decade"] = list(decades(pd.Series([out["decade"]], dtype=object), pd.Series([year])).iloc[0])
    return out


def _kept_text(space: "Space", iid: str, name: str, fields: Mapping[str, Any],
               describer: TemplateDescriber) -> str | None:
    """The text of an update that gives neither tags nor a description: the item's own
    description when its name stays (its vector is then kept too, :func:`_text_rows`), else its
    tags described under the new name; ``None`` for a new item."""
    snap = space.index
    p = snap.position(iid)
    if p is None:
        return None
    stored = snap.value(p, "description")
    if isinstance(stored, str) and stored and snap.value(p, "name") == name:
        return stored
    return describer.describe_one({"item_id": iid, "name": name, **fields}, _stored_tags(space, iid) or {})


def prepare(space: "Space", records: Sequence[Mapping[str, Any]]) -> tuple["Upsert", list[dict[str, Any]]]:
    """The records validated, described, embedded and projected: an :class:`Upsert` for the
    space's writer and a summary per record (nothing is written here)."""
    from .writer import Upsert

    if not records:
        raise InputError("no items given", field="items")
    if len(records) > MAX_ITEMS_PER_CALL:
        raise InputError(f"at most {MAX_ITEMS_PER_CALL} items per call, got {len(records)}", field="items")
    describer = TemplateDescriber(**space.config["descriptions"]["template"])
    first_row: dict[str, int] = {}
    items = [_item(space, rec, i, first_row, describer) for i, rec in enumerate(records, start=1)]
    ids = [it.item_id for it in items]
    texts = [it.text for it in items]
    outputs: dict[str, np.ndarray] = {}
    raw: dict[str, np.ndarray] = {}
    if "text" in space.modalities:
        raw["text"] = text_input(space, ids, _text_rows(space, ids, texts), [it.views for it in items])
        X = raw["text"]
        outputs["text"] = space.fusion.project_views("text", [X[:, v] for v in range(X.shape[1])] if X.ndim == 3 else X)
    for m in space.modalities:
        if m == "text":
            continue
        X = np.full((len(ids), space.fusion.input_dims_[m]), np.nan, dtype=np.float32)
        for j, it in enumerate(items):
            if it.vectors[m] is not None:
                X[j] = it.vectors[m]
        raw[m] = X
        outputs[m] = space.fusion.project(m, X)
    modalities = [[m for m, o in outputs.items() if not np.isnan(o[j]).any()] for j in range(len(ids))]
    meta = [{"item_id": it.item_id, "name": it.name, **it.meta, "description": t, "modalities": mods,
             "cold_start": True} for it, t, mods in zip(items, texts, modalities)]
    V = l2_normalize(combine(outputs, space.config.get("modality_weights") or None))
    bad = np.flatnonzero(~np.isfinite(V).all(axis=1))
    if len(bad):
        raise InputError("the item has no modality this space can embed (give tags, a description or vectors)",
                         row=int(bad[0]) + 1, field="vectors")
    batch = Upsert(ids, V, meta, _raw_inputs(space, raw, len(ids)))   # the writer tokenizes the merged rows
    summary = [{"item_id": i, "modalities": m, "description": t} for i, m, t in zip(ids, modalities, texts)]
    return batch, summary


def _text_rows(space: "Space", ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """The records' raw text vectors. An item already in the space whose description does not
    change keeps the vector it has (an update of other fields encodes nothing: ~7 ms of CPU an
    item); the other texts are encoded in one call. Rows of a multi-view text input are
    encoded again (their stored views need not be the description)."""
    snap = space.index
    out: list[np.ndarray | None] = [None] * len(ids)
    for j, (iid, text) in enumerate(zip(ids, texts)):
        p = snap.position(iid)
        if p is not None and snap.value(p, "description") == text:
            out[j] = _stored_input(space, iid, "text")
    todo = [j for j, row in enumerate(out) if row is None]
    if todo:
        V = np.atleast_2d(space.text_encoder(for_writes=True).encode([texts[j] for j in todo], kind="passage"))
        for j, v in zip(todo, V):
            out[j] = v
    return np.stack(out).astype(np.float32, copy=False)  # type: ignore[arg-type]


def _raw_inputs(space: "Space", raw: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """The new rows of each raw-input matrix (by input key): the modality's raw vectors, NaN
    where an item has none; several text views as :func:`.textviews.text_input` made them."""
    out = {}
    for m, key in space.config["input_files"].items():
        shape = space.index.gen.inputs[key].shape[1:]
        X = np.full((k,) + shape, np.nan, dtype=np.float32)
        rows = raw.get(m)
        if rows is not None:
            if X.ndim == 3 and rows.ndim == 2:
                X[:, 0] = rows
            else:
                X[:] = rows
        out[key] = X
    return out


def write_encoder(text_cfg: Mapping[str, Any], space_dir: "Path", store: "SpaceStore") -> QueryEncoder:
    """The text model that embeds written descriptions, apart from the one queries use: its
    passes run at a priority lowered by ``storage.write_nice``; ``storage.write_threads``
    one-thread passes side by side on ONNX Runtime (concurrent single-item writes: one
    thread per pass and no padding beats batching them, docs/service.md), one pass at a
    time on that many threads on torch."""
    from ..encoders.text import TextEncoder
    enc = TextEncoder.for_space({**text_cfg, "n_threads": 1}, space_dir)
    if enc.parallel_safe:
        return QueryEncoder(enc, cache_size=0, nice=store.write_nice, workers=store.write_threads)
    enc.set_params(n_threads=store.write_threads)
    return QueryEncoder(enc, cache_size=0, nice=store.write_nice)
