"""The in-memory catalog every stage of talkrec reads: items, tags, interactions, content.

A :class:`Catalog` is plain pandas/numpy so that users can build one from anything; the
loaders in :mod:`talkrec.data.io` and :mod:`talkrec.data.datasets` validate what goes in.

Tables
------
items
    One row per item. Required columns ``item_id`` (str, unique) and ``name`` (str).
    Any other column is metadata usable in filters (scalars, or lists of str for
    multi-valued fields such as ``genres``).
tags
    Long format: ``item_id``, ``category``, ``tag``, ``weight`` (how many users or
    curators applied it; higher first). Categories are free strings ("genre", "decade"...).
interactions
    ``user_id`` (str), ``item_id`` (str), ``weight`` (float: play count or rating),
    optional ``timestamp`` (int seconds).
texts
    Named extra human-written descriptions, ``{kind: Series(item_id -> text)}``, e.g. the
    TMDB overview of a movie.
vectors
    Precomputed content, ``{modality: VectorTable}``.
media
    Raw media files per modality, ``{modality: Series(item_id -> path)}``, for the audio
    and image encoders.
report
    What the loader dropped, joined or could not read (counts and examples), saved in the
    space's build report.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, shown

log = logging.getLogger(__name__)

ITEM_COLUMNS = ("item_id", "name")
TAG_COLUMNS = ("item_id", "category", "tag", "weight")
INTERACTION_COLUMNS = ("user_id", "item_id", "weight")


def unique_item_ids(item_ids: Any) -> np.ndarray:
    """``item_ids`` as a str array (how the CF encoders key items); an id given twice is an
    :class:`InputError` naming it."""
    ids = np.asarray(item_ids).astype(str)
    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        x = dup[np.argmin(first[counts > 1])]
        raise InputError(f"duplicate item id {shown(str(x))}; item ids must be unique", field="item_ids")
    return ids


def interaction_weights(interactions: pd.DataFrame) -> np.ndarray:
    """The ``weight`` column of ``interactions`` as float64; a weight that is not a finite
    number (NaN, inf, text) is an :class:`InputError` naming its row (1-based position)."""
    w = pd.to_numeric(interactions["weight"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(w)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"weight {shown(interactions['weight'].iloc[i])} is not a finite number "
                         f"({int(bad.sum())} of {len(w)} rows); weights are play counts or ratings", row=i + 1,
                         field="weight")
    return w


@dataclass
class VectorTable:
    """A matrix of vectors keyed by item id (one row per id, ids unique)."""

    ids: np.ndarray
    X: np.ndarray

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids).astype(str)
        self.X = np.asarray(self.X, dtype=np.float32)
        if self.X.ndim != 2:
            raise ValueError(f"vectors must be a 2-D matrix, got shape {self.X.shape}")
        if len(self.ids) != len(self.X):
            raise ValueError(f"{len(self.ids)} ids for {len(self.X)} vector rows")
        if len(set(self.ids.tolist())) != len(self.ids):
            raise ValueError("vector ids must be unique")

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])

    @functools.cached_property
    def positions(self) -> dict[str, int]:
        """Row of each id."""
        return {k: i for i, k in enumerate(self.ids.tolist())}

    def aligned(self, item_ids: np.ndarray | list[str]) -> np.ndarray:
        """Rows for ``item_ids`` in that order; NaN rows where an id has no vector."""
        pos = self.positions
        out = np.full((len(item_ids), self.dim), np.nan, dtype=np.float32)
        for j, iid in enumerate(item_ids):
            i = pos.get(str(iid))
            if i is not None:
                out[j] = self.X[i]
        return out

    def lookup(self, inputs: str | list[str] | np.ndarray) -> np.ndarray:
        """``encode``-style lookup: one id -> its vector, a list -> :meth:`aligned` matrix. An id
        that is not a str (``1``, ``np.int64(1)``) is read as ``str(id)``, as ids are stored."""
        if isinstance(inputs, str) or not isinstance(inputs, Iterable):
            return self.aligned([inputs])[0]
        if isinstance(inputs, np.ndarray) and inputs.ndim == 0:
            return self.aligned([inputs.item()])[0]
        return self.aligned(list(inputs))


@dataclass
class Catalog:
    """Items plus everything known about them. See the module docstring for the schema."""

    items: pd.DataFrame
    tags: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(TAG_COLUMNS)))
    interactions: pd.DataFrame | None = None
    texts: dict[str, pd.Series] = field(default_factory=dict)
    vectors: dict[str, VectorTable] = field(default_factory=dict)
    media: dict[str, pd.Series] = field(default_factory=dict)
    name: str = "catalog"
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.items = self.items.reset_index(drop=True)
        self.items["item_id"] = self.items["item_id"].astype(str)
        self.tags = self.tags.reset_index(drop=True)
        if len(self.tags):
            self.tags["item_id"] = self.tags["item_id"].astype(str)

    @property
    def item_ids(self) -> np.ndarray:
        return self.items["item_id"].to_numpy(dtype=str)

    def __len__(self) -> int:
        return len(self.items)

    def tags_by_item(self) -> dict[str, dict[str, list[str]]]:
        """``{item_id: {category: [tag, ...]}}``, tags ordered by weight (desc), then name."""
        out: dict[str, dict[str, list[str]]] = {}
        if not len(self.tags):
            return out
        t = self.tags.sort_values(["item_id", "weight", "tag"], ascending=[True, False, True], kind="stable")
        for (iid, cat), grp in t.groupby(["item_id", "category"], sort=False):
            out.setdefault(str(iid), {})[str(cat)] = grp["tag"].tolist()
        return out

    def tag_sets(self, min_weight: float = 0.0) -> dict[str, set[str]]:
        """``{item_id: {tag, ...}}`` keeping tags whose weight is at least ``min_weight``."""
        t = self.tags[self.tags["weight"] >= min_weight]
        return {str(k): set(v) for k, v in t.groupby("item_id")["tag"]}

    def summary(self) -> dict[str, int]:
        s = {"items": len(self.items), "tags": len(self.tags),
             "tagged_items": int(self.tags["item_id"].nunique()) if len(self.tags) else 0}
        if self.interactions is not None:
            s["interactions"] = len(self.interactions)
            s["users"] = int(self.interactions["user_id"].nunique())
        for k, v in self.vectors.items():
            s[f"vectors[{k}]"] = len(v.ids)
        for k, v in self.texts.items():
            s[f"texts[{k}]"] = int(v.notna().sum())
        for k, v in self.media.items():
            s[f"media[{k}]"] = len(v)
        return s
