"""Item-table initialization from any ``(ids, matrix)`` embedding (paper 002 section 4.2.1).

Any talkrec embedding works: a :class:`talkrec.data.catalog.VectorTable`, a built Space's
``(Space.load(d).item_ids, Space.embeddings(kind))``, or a plain pair of arrays. Rows are
aligned to the model's item vocabulary; a NaN row or an id without a row is *missing*.

Scaling (``standardize=True``): the present rows are centred (the mean vector removed:
sentence embeddings share one large common direction) and scaled by one global factor so
that their coordinates have standard deviation ``std`` -- the same scale as the random
baseline, N(0, std^2) with ``std = 1 / sqrt(dim)`` (rows of norm about 1). Relative
geometry (angles, relative norms) is kept. Missing rows get random N(0, std^2) rows, so an
item without the modality starts exactly like a randomly initialised item.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)


def default_std(dim: int) -> float:
    return 1.0 / float(np.sqrt(dim))


def random_table(n_items: int, dim: int, *, random_state: int | None = 0) -> np.ndarray:
    """The random baseline at dimension ``dim``: N(0, 1/dim) entries."""
    rng = np.random.default_rng(random_state)
    return (rng.standard_normal((n_items, dim)) * default_std(dim)).astype(np.float32)


def align(ids: Sequence[str] | np.ndarray, matrix: np.ndarray, item_ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """Rows of ``matrix`` reordered to ``item_ids``; NaN rows for ids without a vector."""
    X = np.asarray(matrix, dtype=np.float32)
    ids = np.asarray(ids).astype(str)
    if X.ndim != 2:
        raise InputError(f"an initialization matrix must be 2-D, got shape {X.shape}", field="init")
    if len(ids) != len(X):
        raise InputError(f"{len(ids)} ids for {len(X)} rows", field="init")
    pos = {k: i for i, k in enumerate(ids.tolist())}
    if len(pos) != len(ids):
        raise InputError("initialization ids must be unique", field="init")
    out = np.full((len(item_ids), X.shape[1]), np.nan, dtype=np.float32)
    for j, iid in enumerate(np.asarray(item_ids).astype(str).tolist()):
        i = pos.get(iid)
        if i is not None:
            out[j] = X[i]
    return out


def init_table(ids: Sequence[str] | np.ndarray, matrix: np.ndarray, item_ids: Sequence[str] | np.ndarray, *,
               standardize: bool = True, random_state: int | None = 0) -> tuple[np.ndarray, float]:
    """The initial item table for ``item_ids`` and the fraction of items that had a vector."""
    A = align(ids, matrix, item_ids)
    present = np.isfinite(A).all(axis=1)
    dim = A.shape[1]
    std = default_std(dim)
    out = random_table(len(A), dim, random_state=random_state)
    if present.any():
        P = A[present].astype(np.float64)
        if standardize:
            P = P - P.mean(axis=0, keepdims=True)
            s = P.std()
            P = P * (std / s) if s > 0 else P
        out[present] = P.astype(np.float32)
    cov = float(present.mean()) if len(A) else 0.0
    log.info("init table: %d items x %d, %.1f%% with a vector, the rest random", len(A), dim, 100 * cov)
    return out, cov
