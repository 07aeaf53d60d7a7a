"""Results of the Space's queries: :class:`Hit`, and turning ``(item_id, score)`` pairs into hits."""
from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..index.snapshot import Snapshot

__all__ = ["META_IN_HITS", "Hit", "base_names", "carry_hit_rows", "hits_at", "jsonable", "make_hits", "warm_hit_rows"]

#: metadata fields a hit carries (those the space has)
META_IN_HITS = ("tags", "genres", "genre", "decade", "year", "listeners", "plays", "n_ratings", "modalities")


class Hit:
    """One result: item id, display name, score, and a few metadata fields.

    ``metadata`` is the hit's own dict, free to change. A hit made from a generation's row
    shares that row's kept fields until ``metadata`` is first read, and copies them then (a
    list of results whose metadata nobody reads costs no copy: ~0.4 ms at k=200)."""

    __slots__ = ("item_id", "name", "score", "_md", "_kept")
    __hash__ = None  # type: ignore[assignment]   # mutable, compared by value

    def __init__(self, item_id: str, name: str, score: float, metadata: dict[str, Any] | None = None) -> None:
        self.item_id, self.name, self.score = item_id, name, score
        self._md: dict[str, Any] = {} if metadata is None else metadata
        self._kept: tuple[dict[str, Any], tuple[str, ...]] | None = None

    @classmethod
    def _of_kept(cls, item_id: str, name: str, score: float, fields: dict[str, Any], lists: tuple[str, ...]) -> "Hit":
        """A hit over kept row ``fields`` (never changed; ``lists``: which hold lists),
        copied into its own dict on first read of ``metadata``."""
        h = cls.__new__(cls)
        h.item_id, h.name, h.score, h._md, h._kept = item_id, name, score, fields, (fields, lists)
        return h

    @property
    def metadata(self) -> dict[str, Any]:
        """The hit's metadata fields (:data:`META_IN_HITS` the space has): its own dict."""
        kept = self._kept
        if kept is not None:
            out = dict(kept[0])
            for c in kept[1]:
                out[c] = list(out[c])
            self._md, self._kept = out, None
        return self._md

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._md, self._kept = value, None

    def fields_view(self) -> dict[str, Any]:
        """The metadata without a copy, to read only (what the service encodes)."""
        return self._md

    def to_dict(self) -> dict[str, Any]:
        """``item_id``, ``name``, ``score`` and a copy of ``metadata`` as a plain dict."""
        return {"item_id": self.item_id, "name": self.name, "score": self.score, "metadata": copy.deepcopy(self._md)}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hit):
            return NotImplemented
        return (self.item_id, self.name, self.score, self._md) == (other.item_id, other.name, other.score, other._md)

    def __repr__(self) -> str:
        return f"Hit(item_id={self.item_id!r}, name={self.name!r}, score={self.score!r}, metadata={self._md!r})"


def jsonable(v: Any) -> Any:
    """A metadata value as JSON-safe plain Python: numpy -> Python, NaN / inf / NA -> ``None``,
    tuples and arrays -> lists, mappings with string keys, anything else -> its ``str``."""
    t = type(v)
    if t is str or t is int or t is bool or v is None:    # the common cases first, by exact type
        return v
    if t is list and all(type(x) is str for x in v):
        return list(v)
    if isinstance(v, np.ndarray):
        return [jsonable(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if np.isfinite(v) else None
    if v is pd.NA or v is pd.NaT:
        return None
    return str(v)


def make_hits(index: Snapshot, pairs: Iterable[tuple[str, float]]) -> list[Hit]:
    """Hits for ``(item_id, score)`` pairs of items in ``index``, in the given order.

    A base row's name and hit fields are made once per generation, when first asked for
    (:class:`_BaseRows`), and shared by its hits until one reads its ``metadata``; a row
    written since is read from its metadata dict."""
    in_delta, in_base = index.delta_pos.get, index.gen.index.position
    return _hits(index, ((iid, p if (p := in_delta(iid)) is not None else in_base(iid), s) for iid, s in pairs))


def hits_at(index: Snapshot, rows: np.ndarray, scores: np.ndarray) -> list[Hit]:
    """:func:`make_hits` for live ``rows`` of ``index`` and their ``scores`` (what the ranking
    code has), without looking each row up again by its id (0.08 ms of a k=200 list)."""
    rows = np.asarray(rows, dtype=np.int64)
    return _hits(index, zip(index.ids_at(rows), rows.tolist(), np.asarray(scores, dtype=np.float64).tolist()))


def _hits(index: Snapshot, found: Iterable[tuple[str, int | None, float]]) -> list[Hit]:
    """The hits of ``(item_id, row, score)`` (row None: not in ``index``)."""
    base = _base_rows(index)
    cols, made, of_kept = base.cols, base.made, Hit._of_kept
    n0, live = index.n0, index.live
    out = []
    for iid, p, s in found:
        if p is not None and p < n0 and live[p]:
            name, md, lists = made(p)
            out.append(of_kept(iid, name if name is not None else iid, float(s), md, lists))
        else:
            row = index.delta.meta[p - n0] if p is not None and p >= n0 else {}
            name = _name(row.get("name", iid))
            out.append(Hit(iid, name if name is not None else iid, float(s), {c: _field(c, row.get(c)) for c in cols}))
    return out


def _hit_rows_key(index: Snapshot) -> tuple[str, tuple[str, ...]]:
    """The generation memo key of :func:`_base_rows`: the hit fields ``index`` has."""
    return "hit_rows", tuple(c for c in META_IN_HITS if c in index.columns)


def _base_rows(index: Snapshot) -> "_BaseRows":
    key = _hit_rows_key(index)
    return index.gen.memo(key, lambda: _BaseRows(index.gen.meta, key[1]))  # type: ignore[no-any-return]


def warm_hit_rows(index: Snapshot) -> int:
    """Make the hit fields of every base row now (a catalog of at most ``_BaseRows.KEPT``
    rows; ~5 us a row), so that requests only copy them; returns the rows made."""
    base = _base_rows(index)
    n = index.n0 if index.n0 <= base.KEPT else 0
    for p in range(n):
        base.made(p)
    return n


def base_names(index: Snapshot) -> list[Any]:
    """Each base row's name as stored (None without one), a list made once per generation."""
    return _base_rows(index).names


def carry_hit_rows(old: Snapshot, new: Snapshot) -> int:
    """Give ``new`` (a snapshot of the compaction of ``old``: its live rows, in order) the hit
    fields ``old``'s generation made for the base rows it keeps, unchanged rows with the same
    fields, rather than making them again (~10 us a row in Python, the GIL held, while the
    old generation serves reads); returns the rows carried over."""
    made = old.gen.memoized(_hit_rows_key(new))              # None if the fields differ (a new column)
    if made is None or new.n0 > _BaseRows.KEPT:
        return 0
    kept, target = old.live_rows, _base_rows(new).done
    for j, p in enumerate(kept[kept < old.n0].tolist()):      # the base rows come first
        got = made.done.get(p)
        if got is not None:
            target[j] = got
    return len(target)


def _name(v: Any) -> str | None:
    return None if v is None or (isinstance(v, float) and v != v) else str(v)


def _field(column: str, v: Any) -> Any:
    """A hit's metadata value: JSON-safe, at most 8 tags."""
    v = jsonable(v)
    return v[:8] if column == "tags" and isinstance(v, list) else v


class _BaseRows:
    """The display name and hit fields of a generation's rows, each made on first use and kept
    (at most ``KEPT`` rows: a large catalog's results do not fill memory over time)."""

    KEPT = 65_536

    def __init__(self, meta: pd.DataFrame, cols: tuple[str, ...]) -> None:
        n = len(meta)
        self.cols = cols
        self.names = meta["name"].tolist() if "name" in meta.columns else [None] * n
        self.values = [meta[c].tolist() if c in meta.columns else [None] * n for c in cols]
        # name, fields, and which fields hold lists
        self.done: dict[int, tuple[str | None, dict[str, Any], tuple[str, ...]]] = {}

    def made(self, p: int) -> tuple[str | None, dict[str, Any], tuple[str, ...]]:
        """Row ``p``'s name, fields and which fields hold lists, made once and kept (not to be
        changed: a :class:`Hit` copies them on first read)."""
        got = self.done.get(p)
        if got is None:
            md = {c: _field(c, v[p]) for c, v in zip(self.cols, self.values)}
            got = (_name(self.names[p]), md, tuple(c for c, v in md.items() if isinstance(v, list)))
            if len(self.done) >= self.KEPT:
                self.done.clear()
            self.done[p] = got
        return got

