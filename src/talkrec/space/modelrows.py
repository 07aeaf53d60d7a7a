"""Where a model's items sit in a snapshot (``Space.similar`` and ``Space.recommend``'s CF
terms): the EASE model of a space, and the snapshot row of each of a model's item ids, looked
up once per generation and patched per snapshot for the rows written since."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..index.snapshot import Snapshot
    from .core import Space

__all__ = ["base_rows_of", "delta_models", "ease_model", "rows_of"]


def ease_model(space: "Space") -> Any:
    """The space's :class:`~talkrec.encoders.ease.EASE` model (``ease/``, loaded once), or None."""
    sh = space._shared
    if sh.ease is None and (space.path / "ease").exists():
        from ..encoders.ease import EASE
        sh.ease = EASE.load(space.path / "ease")
    return sh.ease


def base_rows_of(snap: "Snapshot", ids: np.ndarray, key: Any) -> np.ndarray:
    """The generation's row of each id (-1: none), looked up once per generation."""
    def base() -> np.ndarray:
        at = snap.gen.index.position
        return np.array([-1 if (p := at(i)) is None else p for i in ids.tolist()], dtype=np.int64)
    return snap.gen.memo(("model_rows", key), base)  # type: ignore[no-any-return]


def delta_models(snap: "Snapshot", key: Any, pos: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(j, rows)``: the live delta rows whose id is in a model (``pos``: id -> its index
    ``j`` there). Each delta row's ``j`` is looked up once (:meth:`DeltaRows.per_row`)."""
    dj = snap.delta.per_row(("model", key), snap.m, lambda new: [pos.get(i, -1) for i in new])
    d = np.flatnonzero((dj >= 0) & snap.live[snap.n0:])
    return dj[d], d + snap.n0


def rows_of(snap: "Snapshot", ids: np.ndarray, key: Any, pos: Mapping[str, int]) -> np.ndarray:
    """Snapshot row of each id (-1: not live in the snapshot); ``pos`` maps an id to its index
    in ``ids``. The base rows are looked up once per generation; a snapshot only patches in
    the rows written since (a write makes a new snapshot, and a read right after it must not
    pay for a lookup of the whole catalog: 6 ms on Last.fm)."""
    def inverse() -> np.ndarray:
        """The index in ``ids`` of each base row's item (-1: none): once per generation."""
        rows0 = base_rows_of(snap, ids, key)
        inv = np.full(snap.n0, -1, dtype=np.int64)
        inv[rows0[rows0 >= 0]] = np.flatnonzero(rows0 >= 0)
        return inv

    def make() -> np.ndarray:
        rows = base_rows_of(snap, ids, key).copy()
        if not snap.changes:
            return rows
        gone = snap.gen.memo(("model_rows_inverse", key), inverse)[np.flatnonzero(~snap.live[:snap.n0])]
        rows[gone[gone >= 0]] = -1                      # rewritten or removed since the generation
        if snap.m:                                      # rewritten items live in the delta now
            j, d = delta_models(snap, key, pos)
            rows[j] = d
        return rows
    return snap.memo(("model_rows", key), make)  # type: ignore[no-any-return]
