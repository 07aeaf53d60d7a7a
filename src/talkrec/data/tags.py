"""Tags of a catalog: read from an items column or a long tags file, categorized, and turned
into the items' list columns.

Categories come from a ``category:`` prefix in a tags column (``"genre:rock|mood:sad"``) or
a ``category`` column of a tags file; tags without one are categorized by
:class:`~talkrec.descriptions.categories.TagCategorizer` (genre, decade, place, mood,
other), as the Last.fm adapter does. The items then get the list columns the dataset
adapters produce: ``tags`` (all of an item's tags, most weighty first), ``genre`` (its
genre tags) and ``decade`` (its decade tags, plus the decade of a numeric ``year``).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..errors import InputError
from ..index.filters import canonical_decade, decade_start
from .catalog import TAG_COLUMNS
from .tables import is_missing

__all__ = ["TAG_LIST_COLUMNS", "add_tag_columns", "dated_decades", "decades", "tag_lists", "tags_from_column"]

#: the items' list columns made from the tags
TAG_LIST_COLUMNS = ("tags", "genre", "decade")

Categorizer = Callable[[str], str]

log = logging.getLogger(__name__)


# ``category:tag``: a category is a word (letters first; digits, ``_``, ``-``, spaces after), so
# ``http://x.com``, ``16:9`` and ``12:00`` stay whole tags; the first colon after it splits.
_CATEGORY_PREFIX = re.compile(r"([^\W\d_][\w -]{0,39}):(?!//)")


def tags_from_column(items: pd.DataFrame, col: str, *, path: str, categorizer: Categorizer,
                     separator: str = "|") -> pd.DataFrame:
    """Long tags (item_id, category, tag, weight) from a tags column: a list, or a string of
    tags separated by ``separator``, each optionally ``category:tag``; earlier tags weigh
    more (``1000 - position``). A category is a word before the first colon (``genre:rock``,
    ``place:new york``); a URL (``http://...``) or a tag such as ``16:9`` has none."""
    rows: list[tuple[str, str, str, float]] = []
    _separator_hint(items[col], col, path, separator)
    for i, (iid, v) in enumerate(zip(items["item_id"], items[col]), start=1):
        if isinstance(v, (list, tuple, np.ndarray)):
            values = [str(t) for t in v if not is_missing(t)]    # a null in a list is no tag ('None')
        else:
            values = [] if is_missing(v) else str(v).split(separator)   # nor a null cell ('<NA>')
        for k, t in enumerate(values):
            t = t.strip()
            if not t:
                continue
            m = _CATEGORY_PREFIX.match(t)
            cat, tag = (m.group(1).strip(), t[m.end():].strip()) if m else ("", t)
            if not tag:
                raise InputError(f"tag {t!r} has a category but no tag", path=path, row=i, field=col)
            rows.append((str(iid), cat or categorizer(tag), tag, float(1000 - k)))
    return pd.DataFrame(rows, columns=list(TAG_COLUMNS))


def _separator_hint(values: pd.Series, col: str, path: str, separator: str) -> None:
    """A warning when no tag string holds ``separator`` but some hold a comma: each such
    cell became one tag ('rock, pop, 90s') where the file most likely meant three."""
    texts = [v for v in values.tolist() if isinstance(v, str)]
    if separator != "," and texts and not any(separator in v for v in texts) and any("," in v for v in texts):
        n = sum("," in v for v in texts)
        log.warning("%s: column '%s': no value holds the tags separator %r but %d hold a comma, so each is read as "
                    "one tag (e.g. %r); tags_separator: ',' in the items block splits them at commas", path, col,
                    separator, n, next(v for v in texts if "," in v)[:80])


def tag_lists(tags: pd.DataFrame, item_ids: pd.Series, category: str | None = None) -> pd.Series:
    """Each item's tags (of one category, or all), most weighty first, each once; ``[]``
    when none."""
    d = tags if category is None else tags[tags["category"] == category]
    if not len(d):
        return pd.Series([[] for _ in range(len(item_ids))], index=item_ids.index, dtype=object)
    lists = d.sort_values(["item_id", "weight"], ascending=[True, False]).groupby("item_id")["tag"].apply(
        lambda t: list(dict.fromkeys(t)))
    return item_ids.map(lists).apply(lambda v: v if isinstance(v, list) else [])


def decades(tag_decades: pd.Series, years: pd.Series | None) -> pd.Series:
    """Decade tags, plus the decade of ``years`` (``"1990s"``) where no tag names it."""
    if years is None:
        return tag_decades
    out = []
    for ds, y in zip(tag_decades, years):
        ds = list(ds)
        if y is not None and not pd.isna(y):
            d = f"{int(y) // 10 * 10}s"
            if d not in {canonical_decade(x) for x in ds}:
                ds.append(d)
        out.append(ds)
    return pd.Series(out, index=tag_decades.index, dtype=object)


_TWO_DIGITS = re.compile(r"\d0'?s")


def dated_decades(lists: pd.Series, years: pd.Series | None = None) -> pd.Series:
    """Decade lists in which a two-digit decade that would lie after the catalog's newest
    decade dated in four digits (its decade tags and ``years``) is written as the decade a
    century before: Last.fm's tags end in 2011, so its ``20s`` (Al Jolson) are the
    ``1920s``, not the 2020s (:func:`~talkrec.index.filters.decade_start` reads two digits
    up to ``20s`` as this century). Unchanged when nothing in the catalog is dated in four
    digits."""
    two = [[bool(_TWO_DIGITS.fullmatch(str(x).strip().lower())) for x in ds] for ds in lists]
    dated = [canonical_decade(str(x)) for ds, t in zip(lists, two) for x, short in zip(ds, t) if not short]
    starts = [int(d[:-1]) for d in dated if d]
    starts += [int(y) // 10 * 10 for y in (years if years is not None else []) if y is not None and not pd.isna(y)]
    if not starts:
        return lists
    newest = max(starts)

    def dated_one(x: object, short: bool) -> object:
        start = decade_start(str(x)) if short else None
        return f"{start - 100}s" if start is not None and start > newest else x
    return pd.Series([[dated_one(x, short) for x, short in zip(ds, t)] for ds, t in zip(lists, two)],
                     index=lists.index, dtype=object)


def add_tag_columns(items: pd.DataFrame, tags: pd.DataFrame) -> pd.DataFrame:
    """``items`` with the list columns ``tags``, ``genre`` and ``decade`` made from ``tags``
    (``genre`` / ``decade`` only when some item has one). A column the items already have
    is kept as it is."""
    items = items.copy()
    if "tags" not in items.columns:
        items["tags"] = tag_lists(tags, items["item_id"])
    if "genre" not in items.columns and (tags["category"] == "genre").any():
        items["genre"] = tag_lists(tags, items["item_id"], "genre")
    year = items["year"] if "year" in items.columns and pd.api.types.is_numeric_dtype(items["year"]) else None
    if "decade" not in items.columns and ((tags["category"] == "decade").any() or year is not None):
        items["decade"] = dated_decades(decades(tag_lists(tags, items["item_id"], "decade"), year), year)
    return items
