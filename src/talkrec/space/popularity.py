"""How popular each item is in a space's interactions, as the novelty that
``Space.recommend(novelty=...)`` trades against rank (:mod:`.diversity`).

An item's popularity ``c_i`` is the number of users with it in their history (interactions
above ``positive_threshold``, what :meth:`~talkrec.space.core.Space.user_history` holds);
``U`` is the number of users with any history. Its novelty is its self-information scaled
to [0, 1]:

.. math:: \\mathrm{nov}_i = \\frac{\\log_2((U + 1) / (c_i + 1))}{\\log_2(U + 1)}

1 for an item nobody has (an item added after the build, or one without interactions), 0
for one every user has. The unscaled value, averaged over a list's items, is the
evaluation's novelty@k (:func:`talkrec.metrics.novelty_at_k`, Zhou et al. 2010), so the
knob moves the figure the evaluation reports.

A space's build config may set the default of the calls' ``novelty`` (``recommend.novelty``,
``similar.novelty``; :func:`novelty_setting`): a call that gives none gets it, one that gives 0
the plain ranking.

The counts come from the build's ``interactions.parquet`` once per space (they do not change
with writes: an item upserted later has none).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import InputError

if TYPE_CHECKING:
    from .core import Space

__all__ = ["Popularity", "item_popularity", "novelty_of", "novelty_setting", "popularity_of"]


class Popularity:
    """Per-item user counts (``counts``: item id -> users) over ``n_users`` users."""

    def __init__(self, counts: dict[str, int], n_users: int) -> None:
        self.counts, self.n_users = counts, n_users

    def novelty(self, item_ids: Sequence[str]) -> np.ndarray:
        """Each item's scaled self-information in [0, 1] (module docstring), in order."""
        c = np.array([self.counts.get(i, 0) for i in item_ids], dtype=np.float64)
        top = math.log2(self.n_users + 1)
        return np.log2((self.n_users + 1) / (c + 1)) / top


def item_popularity(interactions: pd.DataFrame | None, threshold: float = 0.0) -> Popularity | None:
    """The :class:`Popularity` of the interactions above ``threshold`` (each user counted once
    per item); ``None`` when no interaction is above it."""
    if interactions is None or not len(interactions):
        return None
    pos = interactions[interactions["weight"] > threshold]
    if not len(pos):
        return None
    pairs = pos[["user_id", "item_id"]].drop_duplicates()
    counts = pairs["item_id"].astype(str).value_counts()
    return Popularity({str(k): int(v) for k, v in counts.items()}, int(pairs["user_id"].nunique()))


def popularity_of(space: "Space") -> Popularity | None:
    """The space's :class:`Popularity`, counted on first use and kept with what the space
    shares with its pinned views; ``None`` for a space without interactions."""
    sh = space._shared
    with sh.lock:
        if sh.popularity is None:              # (Popularity or None,): counted, whatever it found
            sh.popularity = (item_popularity(space.interactions, float(space.config.get("positive_threshold", 0.0))),)
    return sh.popularity[0]  # type: ignore[no-any-return]


def novelty_of(space: "Space", item_ids: Sequence[str]) -> np.ndarray:
    """:meth:`Popularity.novelty` of ``item_ids`` in ``space``; an
    :class:`~talkrec.errors.InputError` on a space without interactions (nothing says what is
    popular there)."""
    pop = popularity_of(space)
    if pop is None:
        raise InputError("novelty needs a space built with interactions (it ranks by how few users have an item); "
                         "this space has none", field="novelty")
    return pop.novelty(item_ids)


def novelty_setting(space: "Space", part: str, given: float | None) -> float:
    """The ``novelty`` of a ``part`` call (``"recommend"`` or ``"similar"``): ``given``, else the
    space's ``{part}.novelty``, else 0 (``given`` is checked where it is used, :func:`.diversity.check`)."""
    if given is None:
        return float(space.config.get(part, {}).get("novelty", 0.0))
    return given
