"""Results of the Space's queries: :class:`Hit`, and turning ``(item_id, score)`` pairs into hits."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..index.snapshot import Snapshot

__all__ = ["META_IN_HITS", "Hit", "jsonable", "make_hits"]

#: metadata fields a hit carries (those the space has)
META_IN_HITS = ("tags", "genres", "genre", "decade", "year", "listeners", "plays", "n_ratings", "modalities")


@dataclass
class Hit:
    """One result: item id, display name, cosine score, and a few metadata fields."""

    item_id: str
    name: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def jsonable(v: Any) -> Any:
    """A metadata value as plain Python: numpy -> Python, NaN / NA -> ``None``."""
    if isinstance(v, np.ndarray):
        return [jsonable(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    if v is pd.NA or v is None:
        return None
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


def make_hits(index: Snapshot, pairs: Iterable[tuple[str, float]]) -> list[Hit]:
    """Hits for ``(item_id, score)`` pairs of items in ``index``, in the given order.

    A base row's name and hit fields come from a table made once per generation
    (:func:`_base_rows`); a row written since, from its metadata dict."""
    pairs = list(pairs)
    if not pairs:
        return []
    cols = tuple(c for c in META_IN_HITS if c in index.columns)
    names, fields, list_cols = index.gen.memo(("hit_rows", cols), lambda: _base_rows(index.gen.meta, cols))
    n0, live, delta_pos, base_pos = index.n0, index.live, index.delta_pos, index.gen.index.position
    out = []
    for iid, s in pairs:
        p = delta_pos.get(iid)
        if p is None:
            p = base_pos(iid)
        if p is not None and p < n0 and live[p]:
            name, md = names[p], fields[p].copy()
            for c in list_cols:                          # the table's lists stay unchanged
                if md[c] is not None:
                    md[c] = list(md[c])
        else:
            row = index.delta.meta[p - n0] if p is not None and p >= n0 else {}
            name, md = _name(row.get("name", iid)), {c: _field(c, row.get(c)) for c in cols}
        out.append(Hit(iid, name if name is not None else iid, float(s), md))
    return out


def _name(v: Any) -> str | None:
    return None if v is None or (isinstance(v, float) and v != v) else str(v)


def _field(column: str, v: Any) -> Any:
    """A hit's metadata value: JSON-safe, at most 8 tags."""
    v = jsonable(v)
    return v[:8] if column == "tags" and isinstance(v, list) else v


def _base_rows(meta: pd.DataFrame, cols: tuple[str, ...]) -> tuple[list[str | None], list[dict[str, Any]], list[str]]:
    """Every base row's display name and hit fields, in row order, and the fields holding lists."""
    n = len(meta)
    names = [_name(v) for v in meta["name"].tolist()] if "name" in meta.columns else [None] * n
    values = {c: [_field(c, v) for v in meta[c].tolist()] if c in meta.columns else [None] * n for c in cols}
    list_cols = [c for c in cols if any(isinstance(v, list) for v in values[c])]
    return names, [dict(zip(cols, row)) for row in zip(*(values[c] for c in cols))] if cols else [{}] * n, list_cols
