"""A written item's text views (``Space.add_items`` on a space built with several text views:
its TEMPLATE description and e.g. ``descriptions.second: overview`` or ``gen``).

View 0 is the item's description (given, kept or made from its tags). A record gives another
view's text as ``description_<view>``, the metadata field the build stores that view in; it is
embedded as that view, as the build embeds it (also in ``metadata``, as ``POST /api/items``
sends it), and the item's text projection is the mean of
its views' projections, as a built item's is. A view a record does not give: an item already
in the space keeps its stored vector of that view (a metadata update does not move it), a new
item has none (its projection is the mean of the views it has, as a built item's without one
is). A ``description_<view>`` the space has no view for is an error.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    from .core import Space

__all__ = ["text_input", "view_names", "view_texts"]

PREFIX = "description_"


def view_names(space: "Space") -> list[str]:
    """The space's text views, in the order of its text input (``["template"]`` for one)."""
    views = (space.config.get("descriptions") or {}).get("views") or ["template"]
    return [str(v) for v in views]


def view_texts(space: "Space", rec: Mapping[str, Any], i: int) -> dict[str, str]:
    """The texts record ``i`` gives for views other than the first: ``{view: text}`` (an empty
    text counts as not given)."""
    names = view_names(space)
    nested = rec.get("metadata")
    given = [(k, v, k) for k, v in rec.items()]
    given += [(k, v, f"metadata.{k}") for k, v in nested.items()] if isinstance(nested, Mapping) else []
    out: dict[str, str] = {}
    for k, v, field in given:
        if not isinstance(k, str) or not k.startswith(PREFIX):
            continue
        view = k[len(PREFIX):]
        if view not in names[1:]:
            others = ", ".join(PREFIX + n for n in names[1:]) or "none"
            raise InputError(f"the space has no text view {view!r} (its other views: {others}); "
                             "the item's text is 'description'", row=i, field=field)
        if v is None:
            continue
        if not isinstance(v, str):
            raise InputError(f"{k} must be a string", row=i, field=field)
        if v.strip():
            out[view] = v
    return out


def text_input(space: "Space", ids: Sequence[str], first: np.ndarray,
               given: Sequence[Mapping[str, str]]) -> np.ndarray:
    """The records' raw text input: ``first`` (their view-0 vectors) for a space with one view,
    else ``(n, views, d)`` with each other view's given text embedded, the stored vector of an
    item already in the space where none is given, NaN for a new item."""
    names = view_names(space)
    key = space.config["input_files"].get("text", "")
    stored = space.index.gen.inputs.get(key)
    if len(names) < 2 or stored is None or stored.ndim != 3:
        return first
    X = np.full((len(ids), stored.shape[1], first.shape[1]), np.nan, dtype=np.float32)
    X[:, 0] = first
    snap = space.index
    for v in range(1, X.shape[1]):
        todo = [j for j, g in enumerate(given) if names[v] in g] if v < len(names) else []
        if todo:
            enc = space.text_encoder(for_writes=True)
            X[todo, v] = np.atleast_2d(enc.encode([given[j][names[v]] for j in todo], kind="passage"))
        for j in set(range(len(ids))) - set(todo):
            p = snap.position(ids[j])
            row = None if p is None else snap.input_row(key, p)
            if row is not None and np.isfinite(row[v]).all():
                X[j, v] = row[v]
    return X
