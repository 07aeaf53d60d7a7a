"""TEMPLATE descriptions (paper 001, Tables 1 and 3): an item's tags listed by category.

>>> from talkrec.descriptions.template import TemplateDescriber
>>> d = TemplateDescriber(header="The name of this artist is {name} and is described by the following tags:")
>>> d.describe_one({"name": "Metallica"}, {"genre": ["thrash metal", "metal"], "decade": ["80s"]})
'The name of this artist is Metallica and is described by the following tags: Genre: thrash metal, metal. Decade: 80s.'
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..data.catalog import Catalog

log = logging.getLogger(__name__)

ARTIST_HEADER = "The name of this artist is {name} and is described by the following tags:"
MOVIE_HEADER = "Movie: {name}. Year: {year}."
HEADERS = {"artist": ARTIST_HEADER, "movie": MOVIE_HEADER}


class _SafeDict(dict):
    def __missing__(self, key: str) -> str:
        return "unknown"


class TemplateDescriber:
    """Build TEMPLATE texts from a catalog's tags.

    Parameters
    ----------
    header:
        A format string over the item's columns (``{name}``, ``{year}``...), or one of the
        presets ``"artist"`` / ``"movie"``. Missing or empty values read "unknown".
    categories:
        Category order; categories not listed come after, alphabetically, unless
        ``only_listed`` is true.
    labels:
        Display label per category (default: the category capitalized).
    max_per_category:
        Keep at most this many tags per category (highest weight first); ``None`` keeps all.
    min_weight:
        Ignore tags whose weight (e.g. number of users who applied it) is below this.
    only_listed:
        Leave out categories not in ``categories``.
    """

    def __init__(self, *, header: str = "artist", categories: Sequence[str] = ("genre", "decade", "place", "mood", "other"),
                 labels: Mapping[str, str] | None = None, max_per_category: int | None = 15,
                 min_weight: float = 0.0, only_listed: bool = False) -> None:
        self.header = header
        self.categories = categories
        self.labels = labels
        self.max_per_category = max_per_category
        self.min_weight = min_weight
        self.only_listed = only_listed

    def _header(self) -> str:
        return HEADERS.get(self.header, self.header)

    def describe_one(self, item: Mapping[str, Any], tags: Mapping[str, Sequence[str]]) -> str:
        """TEMPLATE text for one item (``item`` columns, ``{category: [tags...]}`` by weight)."""
        values = _SafeDict({k: v for k, v in item.items() if v is not None and not (isinstance(v, float) and pd.isna(v))
                            and str(v) != "<NA>"})
        parts = [self._header().format_map(values).strip()]
        order = list(self.categories)
        if not self.only_listed:
            order += sorted(c for c in tags if c not in order)
        labels = dict(self.labels or {})
        body = []
        for c in order:
            ts = list(tags.get(c, []))
            if self.max_per_category is not None:
                ts = ts[: self.max_per_category]
            if ts:
                body.append(f"{labels.get(c, c.capitalize())}: {', '.join(ts)}.")
        text = " ".join(parts + body)
        return text

    def describe(self, catalog: Catalog) -> dict[str, str]:
        """``{item_id: TEMPLATE text}`` for every item of ``catalog`` (tag-less items get the
        header alone, e.g. the artist's name)."""
        t = catalog.tags
        if self.min_weight > 0 and len(t):
            t = t[t["weight"] >= self.min_weight]
        sub = Catalog(items=catalog.items[["item_id", "name"]], tags=t) if len(t) != len(catalog.tags) else catalog
        by_item = sub.tags_by_item()
        out = {}
        for row in catalog.items.to_dict(orient="records"):
            out[str(row["item_id"])] = self.describe_one(row, by_item.get(str(row["item_id"]), {}))
        return out

    def config(self) -> dict[str, Any]:
        return {"header": self.header, "categories": list(self.categories), "labels": dict(self.labels or {}),
                "max_per_category": self.max_per_category, "min_weight": self.min_weight,
                "only_listed": self.only_listed}
