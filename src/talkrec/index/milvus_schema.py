"""The Milvus collection of a space: its schema, its rows, and filling one for a build.

Schema: ``item_id`` VARCHAR primary key, ``vector`` FLOAT_VECTOR (unit length, COSINE or
IP), and one field per filterable metadata column, holding what the embedded filter
(:class:`~talkrec.index.filters.FilterEngine`) compares: list columns (tags, genre,
decade...) as ARRAY<VARCHAR> of lowercased elements, numeric columns as DOUBLE (the
embedded filter compares numbers as float64, and a cold-start update may give ``5.5`` to a
column built from integers), other columns (text, booleans) as lowercased VARCHAR; a
missing value is null (an empty array for lists). A ``decade`` column also gets
``decade_canonical``: each item's decades spelled ``1980s``. Not mirrored: descriptions
(``description``, ``description_*``) and columns whose names Milvus does not take; filters
on them are applied locally (:mod:`talkrec.index.milvus_filters`).

A build fills ``<collection>__build`` while the space folder is written, renames it into
place as the last step before the folder goes into place, and drops the collection it
replaced only after that (:class:`StagedCollection`): a failed build leaves the old space
and its collection whole.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .filters import canonical_decade, field_kind
from .milvus_filters import DECADE_FIELD, ELEMENT_BYTES, TEXT_BYTES
from .store import l2_normalize

log = logging.getLogger(__name__)

__all__ = ["PK", "VECTOR", "StagedCollection", "fields_of", "milvus_rows", "mirrored_fields"]

PK, VECTOR = "item_id", "vector"
LIST_CAPACITY = 4096
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_LISTS = (list, tuple, np.ndarray)


def mirrored_fields(meta: pd.DataFrame) -> dict[str, str]:
    """``{field: kind}`` of the metadata columns a collection holds (see the module docstring)."""
    out: dict[str, str] = {}
    for c in meta.columns:
        name = str(c)
        if name in (PK, VECTOR, DECADE_FIELD, "description") or name.startswith("description_") \
                or not _FIELD.match(name):
            continue
        kind = field_kind(meta[c])
        out[name] = "number" if kind == "numeric" else kind
    if "decade" in out:
        out[DECADE_FIELD] = "decade"
    return out


def fields_of(description: Mapping[str, Any]) -> dict[str, str]:
    """``{field: kind}`` of a collection, from ``describe_collection``."""
    from pymilvus import DataType

    numbers = {DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64, DataType.FLOAT, DataType.DOUBLE}
    out: dict[str, str] = {}
    for f in description["fields"]:
        name, t = f["name"], f["type"]
        if name in (PK, VECTOR):
            continue
        if t == DataType.ARRAY:
            out[name] = "decade" if name == DECADE_FIELD else "list"
        elif t in numbers:
            out[name] = "number"
        elif t == DataType.VARCHAR:
            out[name] = "text"
    return out


def collection_schema(client: Any, dim: int, fields: Mapping[str, str]) -> Any:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(PK, DataType.VARCHAR, is_primary=True, max_length=TEXT_BYTES)
    schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=int(dim))
    for name, kind in fields.items():
        if kind in ("list", "decade"):
            schema.add_field(name, DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=LIST_CAPACITY,
                             max_length=ELEMENT_BYTES)
        elif kind == "number":
            schema.add_field(name, DataType.DOUBLE, nullable=True)
        else:
            schema.add_field(name, DataType.VARCHAR, max_length=TEXT_BYTES, nullable=True)
    return schema


# ------------------------------------------------------------------------ rows
def _cut(text: str, limit: int) -> str:
    b = text.encode("utf-8")
    return text if len(b) <= limit else b[:limit].decode("utf-8", "ignore")


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def field_value(row: Mapping[str, Any], name: str, kind: str) -> Any:
    """What field ``name`` of kind ``kind`` holds for the metadata ``row``."""
    if kind == "decade":
        v = row.get("decade")
        values = v if isinstance(v, _LISTS) else [v]
        return sorted({d for d in (canonical_decade(str(x)) for x in values) if d is not None})
    v = row.get(name)
    if kind == "list":
        return [_cut(str(x).lower(), ELEMENT_BYTES) for x in v][:LIST_CAPACITY] if isinstance(v, _LISTS) else []
    if isinstance(v, _LISTS) or _missing(v):
        return None
    if kind == "number":
        try:
            x = float(v)
        except (TypeError, ValueError):
            return None
        return x if math.isfinite(x) else None
    return _cut(str(v).lower(), TEXT_BYTES)


def milvus_rows(ids: Sequence[str], vectors: np.ndarray, meta: Sequence[Mapping[str, Any]],
                fields: Mapping[str, str]) -> list[dict[str, Any]]:
    """The collection's rows for items ``ids`` (unit vectors, their metadata ``meta``)."""
    V = l2_normalize(np.atleast_2d(vectors))
    rows = []
    for iid, v, m in zip(ids, V, meta):
        row: dict[str, Any] = {PK: str(iid), VECTOR: v.tolist()}
        for name, kind in fields.items():
            row[name] = field_value(m, name, kind)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------ building
class StagedCollection:
    """A collection filled under ``<name>__build`` that takes ``<name>`` only on
    :meth:`swap_in`; :meth:`abort` undoes whatever was done, :meth:`finish` drops the
    collection it replaced. ``client``/``settings``: see :mod:`talkrec.index.milvus`."""

    def __init__(self, client: Any, settings: Any) -> None:
        self.client, self.s = client, settings
        self.name = settings.collection
        self.staged, self.old = f"{self.name}__build", f"{self.name}__old"
        self.swapped = self.moved_old = False

    def fill(self, ids: Sequence[str], vectors: np.ndarray, meta: pd.DataFrame, *, batch: int = 2000) -> dict[str, str]:
        """Create the staged collection and insert every item; returns its fields."""
        c, t = self.client, self.s.timeout
        fields = mirrored_fields(meta)
        if c.has_collection(self.staged, timeout=t):
            c.drop_collection(self.staged, timeout=t)
        c.create_collection(self.staged, schema=collection_schema(c, vectors.shape[1], fields),
                            consistency_level="Strong", timeout=t)
        index = c.prepare_index_params()
        index.add_index(VECTOR, index_type=self.s.index_type, metric_type=self.s.metric, params=dict(self.s.index_params))
        c.create_index(self.staged, index, sync=False, timeout=t)    # before the rows: built as they arrive
        for b in range(0, len(ids), batch):
            part = meta.iloc[b:b + batch].to_dict("records")
            c.insert(self.staged, milvus_rows(ids[b:b + batch], vectors[b:b + batch], part, fields), timeout=t)
        c.flush(self.staged, timeout=t)
        log.info("filled Milvus collection %s with %d items", self.staged, len(ids))
        return fields

    def swap_in(self) -> None:
        """``<name>`` (if any) becomes ``<name>__old``; the staged collection becomes ``<name>``."""
        c, t = self.client, self.s.timeout
        if c.has_collection(self.old, timeout=t):
            c.drop_collection(self.old, timeout=t)
        if c.has_collection(self.name, timeout=t):
            c.rename_collection(self.name, self.old, timeout=t)
            self.moved_old = True
        c.rename_collection(self.staged, self.name, timeout=t)
        self.swapped = True
        c.load_collection(self.name, timeout=t)

    def abort(self) -> None:
        """Put the old collection back under its name and drop the staged one (best effort:
        a failure here is logged, the build's own error is what the caller sees)."""
        c, t = self.client, self.s.timeout
        try:
            if self.swapped:
                c.rename_collection(self.name, self.staged, timeout=t)
            if self.moved_old:
                c.rename_collection(self.old, self.name, timeout=t)
                c.load_collection(self.name, timeout=t)
            if c.has_collection(self.staged, timeout=t):
                c.drop_collection(self.staged, timeout=t)
        except Exception:  # noqa: BLE001
            log.exception("could not restore Milvus collection %s after a failed build", self.name)

    def finish(self) -> None:
        """Drop the collection the new one replaced."""
        if self.moved_old:
            self.client.drop_collection(self.old, timeout=self.s.timeout)
