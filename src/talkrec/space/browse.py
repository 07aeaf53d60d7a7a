"""Browsing a space: item names (exact and partial), the facets that filter pickers offer,
and the users with the most history. Pure functions of the item metadata / interactions;
the Space caches their results until its items change."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..index.filters import canonical_decade, filter_fields

__all__ = ["Facets", "FieldInfo", "facets", "find_by_name", "histories", "name_index", "top_users"]

#: popularity columns that decide which of several items with one name a name means
POPULARITY = ("listeners", "n_ratings")


def name_index(meta: pd.DataFrame) -> dict[str, str]:
    """Lower-case name -> item id; of several items with one name, the most popular
    (``listeners``, else ``n_ratings``), else the first."""
    order = meta
    for col in POPULARITY:
        if col in meta.columns:
            order = meta.sort_values(col, ascending=False, kind="stable")
            break
    names: dict[str, str] = {}
    for iid, n in zip(order["item_id"].astype(str), order["name"].astype(str)):
        names.setdefault(n.lower(), iid)
    return names


def find_by_name(meta: pd.DataFrame, name: str, limit: int) -> list[tuple[str, str]]:
    """``(item_id, name)`` of items whose name contains ``name`` (case-insensitive), names
    starting with it first, then shorter names first."""
    names = meta["name"].astype(str)
    low = names.str.lower()
    needle = name.strip().lower()
    if not needle:
        raise InputError("name is empty", field="name")
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


def _finite(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


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
            fields.append(FieldInfo(c, "numeric", _finite(num.min()), _finite(num.max())))
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
    pos = interactions[interactions["weight"] > threshold] if threshold else interactions
    for u, g in pos.sort_values("weight", ascending=False).groupby("user_id"):
        out[str(u)] = g["item_id"].astype(str).tolist()
    return out


def top_users(interactions: pd.DataFrame | None) -> list[tuple[str, int]]:
    """``(user_id, n_interactions)``, most first."""
    if interactions is None or not len(interactions):
        return []
    counts = interactions.groupby("user_id").size().sort_values(ascending=False)
    return [(str(u), int(n)) for u, n in counts.items()]
