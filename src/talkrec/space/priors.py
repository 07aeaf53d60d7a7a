"""Scores for items without interactions in ``Space.recommend``'s blend (issue 12, cold start):
their neighbours' CF scores (:mod:`.coldscores`, ``recommend.cold_neighbors``) and a popularity
prior from catalog fields (:func:`cold_prior`, ``recommend: {cold_prior: [field, ...],
cold_prior_weight: g}``).

``Space.recommend``'s blend gives an item without CF the CF scores of its nearest items
(``cold_neighbors``) and a constant (``cold_boost``): what the user may like about it, not
whether it is an item many users want. Catalog metadata often says that much (a film's vote
count elsewhere, an album's sales, a channel's subscribers). The prior learns how much, from
the items that have interactions:

* the rows fitted are those whose item has interactions in the space's ``interactions.parquet``
  (the build's training data: nothing held out reaches it); the target is
  :math:`y = \\log(1 + \\text{positives})`, positives its interactions above ``positive_threshold``;
* its features are, per named field, :math:`\\log(1 + \\max(x, 0))` of the field's value (where
  it is missing: the mean of the fitted rows' values) and an indicator of the value's absence,
  each standardized over the fitted rows (so an item without the value is predicted the mean
  popularity of the fitted items without it, or of all of them when every one has it);
* least squares of :math:`y - \\bar y` on them with a small ridge (1e-3 x the rows, scale-free on
  standardized features) gives :math:`\\hat y - \\bar y` for every row;
* a row without ALS factors gets :math:`g \\cdot (\\hat y - \\bar y) / \\sigma_y` added to its
  blend score, after ``cold_boost`` (the blend's terms are z-scores: the prior is the row's
  predicted popularity in their units); a row with factors nothing.

Computed once per snapshot (the rows' fields and CF status change with writes), in
:math:`O(n f^2)` for :math:`f` fields.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..index.snapshot import Snapshot
    from .core import Space

__all__ = ["cold_prior", "prior_features"]


def prior_features(values: Sequence[Any]) -> np.ndarray:
    """``(n, 2)``: :math:`\\log(1 + \\max(x, 0))` of each value (NaN where it is missing or not
    a number; :func:`cold_prior` fills it) and the indicator of that absence."""
    x = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(dtype=float)
    miss = ~np.isfinite(x)
    return np.column_stack([np.where(miss, np.nan, np.log1p(np.maximum(np.where(miss, 0.0, x), 0.0))),
                            miss.astype(float)])


def _positives(space: "Space", snap: "Snapshot") -> dict[str, int]:
    """Each item's number of users with an interaction above ``positive_threshold``, as
    :func:`.popularity.item_popularity` counts them (0 for an item whose interactions are all
    at or below it; once per generation: the interactions are the build's)."""
    def make() -> dict[str, int]:
        inter, thr = space.interactions, float(space.config.get("positive_threshold", 0.0))
        if inter is None or not len(inter):
            return {}
        counts = dict.fromkeys(inter["item_id"].astype(str).unique().tolist(), 0)
        pos = inter.loc[inter["weight"] > thr, ["user_id", "item_id"]].drop_duplicates()
        counts.update(pos.groupby(pos["item_id"].astype(str)).size().to_dict())
        return counts
    return snap.gen.memo("prior_positives", make)  # type: ignore[no-any-return]


def _rows(snap: "Snapshot", counts: Mapping[str, int], fields: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Every physical row's features and positives (-1: no CF): the base rows once per
    generation, the delta rows per snapshot."""
    def per_row(ids: Sequence[str], column: Any) -> tuple[np.ndarray, np.ndarray]:
        X = np.column_stack([prior_features(column(f)) for f in fields])
        return X, np.array([counts.get(i, -1) for i in ids], dtype=float)

    meta = snap.gen.meta
    X0, y0 = snap.gen.memo(("prior_rows", fields), lambda: per_row(      # counts: the generation's too
        snap.gen.ids.tolist(), lambda f: meta[f].tolist() if f in meta.columns else [None] * snap.n0))
    if not snap.m:
        return X0, y0
    dm = snap.delta.meta
    X1, y1 = per_row(snap.delta.ids[:snap.m], lambda f: [dm[i].get(f) for i in range(snap.m)])
    return np.concatenate([X0, X1]), np.concatenate([y0, y1])


def cold_prior(space: "Space", snap: "Snapshot", cfg: Mapping[str, Any]) -> np.ndarray:
    """The prior of every physical row (module docstring; the blend adds it to the rows
    without ALS factors): 0 for dead rows, and for every row when ``cfg`` names no
    ``cold_prior`` field or nothing can be learned (no interactions, one popularity)."""
    named = cfg.get("cold_prior") or ()
    fields = (named,) if isinstance(named, str) else tuple(named)
    weight = float(cfg.get("cold_prior_weight", 1.0))

    def make() -> np.ndarray:
        out = np.zeros(snap.n_rows)
        if not fields or not weight:
            return out
        counts = _positives(space, snap)
        if not counts:
            return out
        X, n = _rows(snap, counts, fields)
        X = X.copy()                              # filled below; the base rows' part is memoized
        has = (n >= 0) & snap.live
        y = np.log1p(n[has])
        if len(y) < 2 or not y.std() > 0:
            return out
        for j in range(0, X.shape[1], 2):        # a missing value: the fitted rows' mean, then its indicator
            seen = X[has, j][np.isfinite(X[has, j])]
            X[:, j] = np.where(np.isnan(X[:, j]), seen.mean() if len(seen) else 0.0, X[:, j])
        mu, sd = X[has].mean(axis=0), X[has].std(axis=0)
        Z = (X - mu) / np.where(sd > 0, sd, 1.0)  # standardized on the fitted rows: the ridge is scale-free
        A = Z[has]
        coef = np.linalg.solve(A.T @ A + 1e-3 * len(A) * np.eye(A.shape[1]), A.T @ (y - y.mean()))
        out[snap.live] = weight * (Z[snap.live] @ coef) / float(y.std())
        return out
    return snap.memo(("cold_prior", fields, weight), make)  # type: ignore[no-any-return]
