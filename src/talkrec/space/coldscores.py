"""CF scores for items without interactions in ``Space.recommend``'s blend (issue 12, cold
start). A new item has no EASE column and no ALS factors; with ``recommend.cold_neighbors: m``
it gets the cosine-weighted mean of its user's scores of its ``m`` nearest items with CF
(cosines clipped at 0), nearest by its vector against theirs (``cold_match: fused``) or against
their content-only vectors (``content``: :func:`content_rows`). A ridge map from vectors to
scores in its place lost (docs/evaluation.md, "Cold start").
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..ranking import top_k
from .modelrows import ease_model, rows_of

if TYPE_CHECKING:
    from ..index.snapshot import Snapshot
    from .core import Space

__all__ = ["cold_neighbors", "content_rows", "impute", "impute_cold"]


def content_rows(space: "Space", snap: "Snapshot") -> np.ndarray:
    """Every row's vector from its content alone: the weighted mean of its modalities'
    projections without CF (what an item without interactions is made of; 0 for a row
    without content). The base rows once per generation, the rows written since per snapshot."""
    keys = space.config["input_files"]
    mods = [m for m in space.modalities if m != "cf" and m in keys]
    weights = space.config.get("modality_weights") or None

    def of(inputs: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        if not mods:
            return np.zeros((n, snap.dim), np.float32)
        def views(X: np.ndarray) -> Any:                 # a multi-view input is stored (n, views, d)
            return [X[:, v] for v in range(X.shape[1])] if X.ndim == 3 else X
        return np.nan_to_num(space.fusion.transform({m: views(inputs[keys[m]][:n]) for m in mods}, weights))
    base = snap.gen.memo(("content_rows", id(space.fusion)), lambda: of(snap.gen.inputs, snap.n0))
    if not snap.m:
        return base  # type: ignore[no-any-return]
    return snap.memo(("content_rows", id(space.fusion)),  # type: ignore[no-any-return]
                     lambda: np.vstack([base, of(snap.delta.inputs, snap.m)]))


def _cold_warm(space: "Space", snap: "Snapshot") -> tuple[np.ndarray, np.ndarray]:
    """The live rows without CF (cold, their row numbers) and the mask of the live rows with."""
    ease = ease_model(space)
    rows = rows_of(snap, ease.item_ids_, ("ease", id(ease)), ease._pos)
    has = np.zeros(snap.n_rows, dtype=bool)
    has[rows[(rows >= 0) & ease.has_cf_]] = True
    live = np.asarray(snap.live, dtype=bool)
    return np.flatnonzero(~has & live), has & live


def cold_neighbors(space: "Space", snap: "Snapshot", m: int,
                    match: str = "fused") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows without CF (cold), and for each its ``m`` nearest rows with CF and their cosines
    (clipped at 0): in the fused space, or (``match="content"``) by content alone, the cold
    row's vector against the others' content-only vectors; computed once per snapshot."""
    def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cold, warm = _cold_warm(space, snap)
        n_warm = int(warm.sum())
        if not len(cold) or not n_warm:
            return cold, np.empty((len(cold), 0), dtype=np.int64), np.empty((len(cold), 0))
        # against every row in place (no copy of the warm rows), the others masked out
        C = snap.rows(cold)
        if match == "content":
            S = C @ content_rows(space, snap).T
        else:
            S = np.concatenate([C @ snap.gen.vectors.T, C @ snap.delta.vectors[:snap.m].T], axis=1)
        S[:, ~warm] = -np.inf
        top = top_k(S, min(m, n_warm))
        return cold, top, np.maximum(np.take_along_axis(S, top, axis=1), 0.0)
    return snap.memo(("cold_neighbors", m, match, id(ease_model(space))), make)  # type: ignore[no-any-return]


def impute(s: np.ndarray, cold: np.ndarray, nb: np.ndarray, w: np.ndarray) -> None:
    """Cold rows' scores: the cosine-weighted mean of their warm neighbours' (in place;
    ``recommend.cold_neighbors``)."""
    if len(cold) and nb.shape[1]:
        s[cold] = (s[nb] * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12)


def impute_cold(space: "Space", snap: "Snapshot", cfg: Mapping[str, Any], scores: list[np.ndarray]) -> np.ndarray:
    """Fill the cold rows of each of ``scores`` (in place: the user's EASE and ALS scores)
    from their ``cfg["cold_neighbors"]`` nearest rows with CF; returns the cold rows."""
    cold, nb, nw = cold_neighbors(space, snap, int(cfg["cold_neighbors"]), str(cfg.get("cold_match", "fused")))
    for s in scores:
        impute(s, cold, nb, nw)
    return cold
