"""Browsing a space: item names (exact and partial), the facets that filter pickers offer,
and the users with the most history. Pure functions of the item metadata / interactions,
and their versions for a snapshot of a space (``*_of``, ``*_in``: what the generation
gives is computed once per generation, the rows written since on top)."""
from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, NotFoundError, shown
from ..index.filters import Where, canonical_decade, filter_fields, finite_float, parse_where
from ..index.snapshot import Snapshot
from ..limits import check_page

__all__ = ["Facets", "FieldInfo", "checked_limit", "empty_reason", "facets", "facets_of", "find_by_name", "find_in",
           "histories",
           "live_history", "lookup", "lowered", "name_index", "near_names", "resolve_name", "top_users",
           "unaccented_name"]

#: popularity columns that decide which of several items with one name a name means
POPULARITY = ("listeners", "n_ratings")


def name_index(meta: pd.DataFrame) -> dict[str, str]:
    """Lower-case name -> item id; of several items with one name, the most popular
    (``listeners``, else ``n_ratings``), else the first."""
    order = _popularity_order(meta)
    names: dict[str, str] = {}
    for iid, n in zip(order["item_id"].astype(str), order["name"].astype(str)):
        names.setdefault(n.lower(), iid)
    return names


def lowered(names: Iterable[Any]) -> list[str]:
    """Names in lower case as Python's ``str.lower`` makes them, the case-insensitive key of
    every lookup (pandas' ``str.lower`` differs from it on some letters: ``İ``)."""
    return [str(n).lower() for n in names]


def _popularity_order(meta: pd.DataFrame) -> pd.DataFrame:
    for col in POPULARITY:
        if col in meta.columns:
            return meta.sort_values(col, ascending=False, kind="stable")
    return meta


def _name_rows(meta: pd.DataFrame) -> dict[str, list[int]]:
    """Lower-case name -> rows with that name, most popular first."""
    order = _popularity_order(meta.assign(_row=np.arange(len(meta))))
    out: dict[str, list[int]] = {}
    for n, r in zip(lowered(order["name"]), order["_row"]):
        out.setdefault(n, []).append(int(r))
    return out


def resolve_name(snap: Snapshot, ref: str) -> str | None:
    """:func:`name_index` of the snapshot's live items: the id of the most popular live item
    named ``ref`` (case-insensitive), the lowest row among equals."""
    key = ref.lower()
    rows = [r for r in snap.gen.memo("name_rows", lambda: _name_rows(snap.gen.meta)).get(key, []) if snap.live[r]][:1]
    rows += [p for p in snap.memo("delta_name_rows", lambda: _delta_names(snap)).get(key, []) if snap.live[p]]
    if not rows:
        return None
    col = next((c for c in POPULARITY if c in snap.columns), None)

    def rank(p: int) -> tuple[float, int]:
        v = pd.to_numeric(pd.Series([snap.value(p, col) if col else None]), errors="coerce").iat[0]
        return (-float(v) if pd.notna(v) else np.inf, p)
    return snap.id_at(min(rows, key=rank))


def _folded(name: str) -> str:
    """``name`` without case or accents (``Björk`` -> ``bjork``)."""
    return "".join(c for c in unicodedata.normalize("NFKD", name.casefold()) if not unicodedata.combining(c))


def _generation_folds(snap: Snapshot) -> pd.Series:
    """The generation's names folded (:func:`_folded`), row by row: once per generation."""
    return snap.gen.memo("folded_name_series", lambda: pd.Series(  # type: ignore[no-any-return]
        [_folded(n) for n in snap.gen.meta["name"].astype(str).tolist()], dtype=object))


def _folded_names(snap: Snapshot) -> dict[str, list[str]]:
    """Folded name -> the live items' names that fold to it (once per snapshot, from the
    generation's folds and the rows written since)."""
    def make() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        names, live = snap.gen.meta["name"].astype(str).tolist(), snap.live
        pairs = [(f, names[r]) for r, f in enumerate(_generation_folds(snap).tolist()) if live[r]]
        pairs += [(_folded(str(row.get("name"))), str(row.get("name")))
                  for j, row in enumerate(snap.delta.meta[:snap.m]) if live[snap.n0 + j]]
        for f, name in pairs:
            if name not in out.setdefault(f, []):
                out[f].append(name)
        return out
    return snap.memo("folded_names", make)  # type: ignore[no-any-return]


def unaccented_name(snap: Snapshot, ref: str) -> str | None:
    """The one live item name that ``ref`` is without case and accents (``Bjork``, ``sigur
    ros``: ``Björk``, ``Sigur Rós``); ``None`` when none is, or several different ones are."""
    names = _folded_names(snap).get(_folded(ref), [])
    return names[0] if len({n.lower() for n in names}) == 1 else None


def lookup(snap: Snapshot, ref: str) -> str | None:
    """The id of the live item ``ref`` is: its id, its exact name without case
    (:func:`resolve_name`), or its name without case and accents (:func:`unaccented_name`);
    ``None`` for none (no suggestions: cheap for callers that try many pieces)."""
    if snap.position(ref) is not None:
        return ref
    iid = resolve_name(snap, ref)
    if iid is None and (name := unaccented_name(snap, ref)) is not None:
        iid = resolve_name(snap, name)
    return iid


def near_names(snap: Snapshot, ref: str, n: int = 3) -> list[str]:
    """Up to ``n`` names of live items near ``ref`` (what a user who mistyped one meant): those
    with its letters without case or accents first, then :func:`difflib.get_close_matches`
    over the folded names (``Metalica``: ``Metallica``; ~40 ms over Last.fm's 17,632 names, so
    only on the way to an error); none for a ``ref`` longer than any name."""
    folded, key = _folded_names(snap), _folded(ref)
    if len(key) > 200:
        return []
    out = list(folded.get(key, []))
    out += [m for k in difflib.get_close_matches(key, list(folded), n=n + 1, cutoff=0.6) if k != key
            for m in folded[k]]
    return out[:n]


def _delta_names(snap: Snapshot) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for j, row in enumerate(snap.delta.meta[:snap.m]):
        out.setdefault(str(row.get("name")).lower(), []).append(snap.n0 + j)
    return out


def checked_limit(limit: int) -> int:
    """``limit`` if it is an integer >= 1, else :class:`InputError` (``[:-1]`` would drop one)."""
    check_page(limit, k_field="limit")
    return int(limit)


def find_in(snap: Snapshot, name: str, limit: int) -> list[tuple[str, str]]:
    """:func:`find_by_name` over the snapshot's live items (the generation's names folded once)."""
    needle = _needle(name)
    folded = _generation_folds(snap)
    rows = np.flatnonzero(folded.str.contains(needle, regex=False).to_numpy() & snap.live[:snap.n0]).tolist()
    names = [folded.iat[r] for r in rows]
    for j, row in enumerate(snap.delta.meta[:snap.m]):
        n = _folded(str(row.get("name")))
        if needle in n and snap.live[snap.n0 + j]:
            rows.append(snap.n0 + j)
            names.append(n)
    order = sorted(range(len(rows)), key=lambda i: (not names[i].startswith(needle), len(names[i])))[:limit]
    return [(snap.id_at(rows[i]), str(snap.value(rows[i], "name"))) for i in order]


def _needle(name: Any) -> str:
    """What :func:`find_by_name` looks for: ``name`` without case or accents, checked."""
    if not isinstance(name, str):
        raise InputError(f"name must be a str, got {type(name).__name__} {name!r:.60}", field="name")
    needle = _folded(name.strip())
    if not needle:
        raise InputError("name is empty", field="name")
    return needle


def facets_of(snap: Snapshot) -> Facets:
    """:func:`facets` of the snapshot's live items."""
    if not snap.changes:
        return snap.gen.memo("facets", lambda: facets(snap.gen.meta))  # type: ignore[no-any-return]
    return snap.memo("facets", lambda: facets(snap.meta))  # type: ignore[no-any-return]


def find_by_name(meta: pd.DataFrame, name: str, limit: int) -> list[tuple[str, str]]:
    """``(item_id, name)`` of items whose name contains ``name`` without case or accents
    (``bjork`` finds Björk), names starting with it first, then shorter names first."""
    names = meta["name"].astype(str)
    needle = _needle(name)
    low = pd.Series([_folded(n) for n in names.tolist()], dtype=object)
    idx = np.flatnonzero(low.str.contains(needle, regex=False).to_numpy())
    order = sorted(idx.tolist(), key=lambda i: (not low.iat[i].startswith(needle), len(low.iat[i])))[:limit]
    return [(str(meta["item_id"].iat[i]), names.iat[i]) for i in order]


@dataclass(frozen=True)
class FieldInfo:
    """A filterable field: its kind and, for numbers, its range."""

    name: str
    type: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Facets:
    """What a filter picker offers: the fields, the most frequent tags, the decades."""

    fields: list[FieldInfo]
    top_tags: list[tuple[str, int]]
    decades: list[str]

    @property
    def numeric_fields(self) -> list[str]:
        return [f.name for f in self.fields if f.type == "numeric"]


def facets(meta: pd.DataFrame, *, n_tags: int = 200) -> Facets:
    """Filterable fields (numeric ones with min / max), the ``n_tags`` most frequent tags and
    the decades present (from a ``decade`` list field, spellings normalized to ``1980s``)."""
    fields: list[FieldInfo] = []
    counts: dict[str, dict[str, int]] = {"tags": {}, "decade": {}}
    for c, kind in filter_fields(meta).items():
        if kind == "list":
            fields.append(FieldInfo(c, "list"))
            if c in counts:
                target = counts[c]
                for v in meta[c]:
                    if isinstance(v, (list, tuple, np.ndarray)):
                        for t in v:
                            target[str(t)] = target.get(str(t), 0) + 1
        elif kind == "numeric":
            num = pd.to_numeric(meta[c], errors="coerce")
            fields.append(FieldInfo(c, "numeric", finite_float(num.min()), finite_float(num.max())))
        else:
            fields.append(FieldInfo(c, "text"))
    top = sorted(counts["tags"].items(), key=lambda kv: (-kv[1], kv[0]))[:n_tags]
    decades = sorted({d for d in map(canonical_decade, counts["decade"]) if d}, key=_decade_key)
    return Facets(fields, top, decades)


def _decade_key(x: str) -> int:
    m = re.search(r"(\d+)", x)
    if not m:
        return 10_000
    v = int(m.group(1))
    return v if v >= 100 else (1900 + v if v >= 30 else 2000 + v)


def histories(interactions: pd.DataFrame | None, threshold: float = 0.0) -> dict[str, list[str]]:
    """``{user_id: item ids}`` of each user's interactions above ``threshold``, strongest first."""
    out: dict[str, list[str]] = {}
    if interactions is None:
        return out
    pos = interactions[interactions["weight"] > threshold]          # a weight <= 0 (a dislike) is no history
    for u, g in pos.sort_values("weight", ascending=False).groupby("user_id"):
        out[str(u)] = g["item_id"].astype(str).tolist()
    return out


def live_history(snap: Snapshot, hist: list[str], user_id: str) -> list[str]:
    """The items of a user's history that ``snap`` still has; :class:`InputError` when none
    is left (each was removed since the build)."""
    if not snap.changes:
        return hist
    live = [i for i in hist if snap.position(i) is not None]
    if hist and not live:
        raise InputError(f"user {user_id!r} has no items left in the space: each of their {len(hist)} items "
                         "was removed since the build", field="user")
    return live


def top_users(interactions: pd.DataFrame | None, snap: Snapshot | None = None,
              threshold: float = 0.0) -> list[tuple[str, int]]:
    """``(user_id, n_interactions)`` of the interactions above ``threshold`` (a user's history,
    :func:`histories`), most first; with ``snap``, only those with the items it still has (a
    user whose items were all removed is not listed)."""
    if interactions is None or not len(interactions):
        return []
    interactions = interactions[interactions["weight"] > threshold]
    if snap is not None:
        items = pd.unique(interactions["item_id"])
        live = {i for i in items if snap.position(str(i)) is not None}
        interactions = interactions[interactions["item_id"].isin(live)]
    counts = interactions.groupby("user_id").size().sort_values(ascending=False, kind="stable")
    return [(str(u), int(n)) for u, n in counts.items()]

def embeddings(snap: Snapshot, input_files: dict[str, str], kind: str) -> np.ndarray:
    """``Space.embeddings``: the fused matrix (``"multi"``) or a modality's raw inputs, one row
    per item (the mean of an item's views where it has several), made once per snapshot."""
    if kind == "multi":
        return snap.vectors
    key = input_files.get(kind)
    if key is None:
        raise NotFoundError(f"unknown embedding kind {kind!r}; available: multi, {', '.join(input_files)}")

    def make() -> np.ndarray:
        X = snap.inputs(key)
        return np.nanmean(X, axis=1) if X.ndim == 3 else X
    return snap.memo(("embeddings", kind), make)  # type: ignore[no-any-return]


def raw_input(snap: Snapshot, input_files: dict[str, str], item_id: str, modality: str) -> np.ndarray:
    """``Space.raw_input``: the item's rows of ``modality``'s raw inputs (none without them)."""
    p = snap.position(item_id)
    if p is None:
        raise NotFoundError(f"unknown item {shown(item_id)}")
    row = snap.input_row(input_files.get(modality, ""), p)
    if row is None:
        return np.empty((0, 0), dtype=np.float32)
    return row if row.ndim == 2 else row[None, :]


def empty_reason(space: Any, where: Where) -> str:
    """Why a query's list came back empty, for the CLI's table and the API's ``note``: no item
    passes the filter ``where`` (with the range of each numeric field it names: ``listeners>=1000``
    where the most is 611), or how many do; ``"no results"`` without a filter."""
    if not where:
        return "no results"
    passing = int(space.index.mask(where).sum())
    if passing:
        return f"no results among the {passing} items that pass the filter"
    named = {c.field for c in parse_where(where)}
    num = lambda x: str(int(x)) if float(x).is_integer() else f"{x:.4g}"         # noqa: E731
    ranges = [f"{f.name} {num(f.min)} to {num(f.max)}" for f in space.facets().fields
              if f.type == "numeric" and f.name in named and f.min is not None and f.max is not None]
    return "no results: no item passes the filter" + (f" (the items have {'; '.join(ranges)})" if ranges else "")
