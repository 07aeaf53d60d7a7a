"""EASE: embarrassingly shallow autoencoder (Steck 2019), item-item CF in closed form.

With the user x item matrix ``X`` (binary, or ``log1p`` of the weights) and the L2 penalty
``lambda``, EASE's item-item weights are

.. math::
    P = (X^\\top X + \\lambda I)^{-1}, \\qquad B_{ij} = -P_{ij} / P_{jj}\\ (i \\ne j), \\quad B_{jj} = 0,

and a user with history ``x`` scores the items by ``x B``. When there are fewer users than
items, the Woodbury identity gives ``P = (I - X^T (lambda I_U + X X^T)^{-1} X) / lambda``,
a U x U solve; rows of ``P`` are then computed in chunks, so the I x I matrix is never held.

What is kept (and saved: ``ease.npz`` + ``config.json``): each item's top ``n_neighbors``
entries of its row of ``B`` (what the item predicts), as indices and weights. Scoring a set
of items sums their lists, which is ``x B`` cut at that depth.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._atomic import atomic_dir
from ..data.catalog import interaction_weights, unique_item_ids
from ..errors import InputError, NotFittedError
from ..estimator import (Estimator, Instance, Interval, UnreadableModelFile, read_model_file, read_npz,
                         saved_params)
from ..ranking import partition_rows
from .base import check_id_list, check_weights

if TYPE_CHECKING:                   # scipy is for fitting: a query reading a fitted model never imports it
    import scipy.sparse as sp

__all__ = ["EASE"]


class EASE(Estimator):
    """EASE item-item CF, scikit-learn style.

    Parameters
    ----------
    regularization:
        The L2 penalty lambda (Steck: a few hundred to a few thousand).
    min_weight:
        Interactions with weight below this are ignored (e.g. 3.5 keeps ratings > 3); a weight
        of 0 or less is never an interaction (it was a play of confidence 1), as in a user's history.
    binary:
        ``X`` is 1 for each kept interaction; otherwise ``log1p(weight)``.
    n_neighbors:
        Entries kept of each item's row of ``B`` (its strongest predicted items).
    chunk_size:
        Rows of ``P`` computed at once (memory: ``chunk_size x n_items`` floats).

    Attributes
    ----------
    item_ids_ : np.ndarray[str]
    neighbors_ : np.ndarray (n_items, n_neighbors) int32, -1 where the list is shorter
    weights_ : np.ndarray (n_items, n_neighbors) float32, ``B[i, neighbors_[i]]``
    has_cf_ : np.ndarray[bool]  items with at least one kept interaction
    n_users_ : int
    """

    _constraints = {"regularization": Interval(float, 0, closed="neither"), "min_weight": Interval(float),
                    "binary": Instance(bool), "n_neighbors": Interval(int, 1), "chunk_size": Interval(int, 1)}

    def __init__(self, *, regularization: float = 500.0, min_weight: float = 0.0, binary: bool = True,
                 n_neighbors: int = 200, chunk_size: int = 1024) -> None:
        self.regularization = regularization
        self.min_weight = min_weight
        self.binary = binary
        self.n_neighbors = n_neighbors
        self.chunk_size = chunk_size

    # ------------------------------------------------------------------ fit
    def _matrix(self, interactions: pd.DataFrame, ids: np.ndarray) -> sp.csr_matrix:
        if not isinstance(interactions, pd.DataFrame):
            raise InputError(f"interactions must be a DataFrame, got {type(interactions).__name__}",
                             field="interactions")
        for c in ("user_id", "item_id", "weight"):
            if c not in interactions.columns:
                raise InputError(f"interactions need a '{c}' column; got {list(interactions.columns)}", field=c)
        if not self.binary or self.min_weight:
            w = interaction_weights(interactions)   # every weight a finite number; 0 or less is no interaction
            df = interactions[(w > 0) & (w >= self.min_weight)]
        else:                                       # binary: read only to leave out 0 or less (a missing one is a play)
            w = pd.to_numeric(interactions["weight"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            df = interactions[~(w <= 0)]
        col = pd.Series(np.arange(len(ids)), index=ids).reindex(df["item_id"].astype(str).to_numpy()).to_numpy()
        keep = ~np.isnan(col)
        df = df[keep]
        if not len(df):
            raise InputError("no interactions left for EASE (check min_weight and item ids)", field="interactions")
        _, urow = np.unique(df["user_id"].astype(str).to_numpy(), return_inverse=True)
        w = df["weight"].to_numpy(dtype=np.float64)
        data = np.ones(len(df)) if self.binary else np.log1p(np.maximum(w, 0.0))
        import scipy.sparse as sp

        m = sp.csr_matrix((data, (urow, col[keep].astype(np.int64))), shape=(int(urow.max()) + 1, len(ids)))
        m.sum_duplicates()
        if self.binary:
            m.data[:] = 1.0
        return m

    def fit(self, interactions: pd.DataFrame, item_ids: Sequence[str] | np.ndarray | None = None) -> "EASE":
        """Fit on ``interactions`` (user_id, item_id, weight); ``item_ids`` fixes the item order
        (default: the items seen in ``interactions``)."""
        self._check_params()
        if isinstance(interactions, pd.DataFrame) and item_ids is None and "item_id" in interactions.columns:
            item_ids = pd.unique(interactions["item_id"].astype(str))
        ids = unique_item_ids(np.asarray(item_ids if item_ids is not None else [], dtype=str))
        X = self._matrix(interactions, ids)
        lam = float(self.regularization)
        n_users, n_items = X.shape
        step = int(self.chunk_size)
        chunks = [slice(s0, min(s0 + step, n_items)) for s0 in range(0, n_items, step)]
        if n_users < n_items:              # Woodbury: P = (I - X^T K^-1 X) / lam, K = lam I_U + X X^T
            Kinv = np.linalg.inv((X @ X.T).toarray() + lam * np.eye(n_users)).astype(np.float32)
            XT = X.T.tocsr().astype(np.float32)

            def left(s: slice) -> np.ndarray:                 # X[:, s]^T K^-1  (chunk x U)
                return np.asarray(XT[s] @ Kinv)

            diag = np.concatenate([(1.0 - np.asarray(XT[s].multiply(left(s)).sum(axis=1)).ravel()) / lam
                                   for s in chunks])

            def weights(s: slice) -> np.ndarray:         # B[s] = -P[s] / diag off its diagonal
                return _over_transposed(np.asarray(XT @ left(s).T), lam, diag)
        else:
            P = np.linalg.inv((X.T @ X).toarray() + lam * np.eye(n_items))
            diag = np.diag(P).copy()

            def weights(s: slice) -> np.ndarray:
                return (-P[s] / diag[None, :]).astype(np.float32)
        n = min(int(self.n_neighbors), max(n_items - 1, 1))
        nb = np.full((n_items, n), -1, dtype=np.int32)
        wt = np.zeros((n_items, n), dtype=np.float32)
        has = np.asarray(X.getnnz(axis=0) > 0)
        for s in chunks:
            s0 = s.start
            B = weights(s)
            r = np.arange(B.shape[0])
            B[r, r + s0] = -np.inf                  # B_jj = 0: an item never predicts itself
            B[:, ~has] = -np.inf
            top = partition_rows(-B, n)
            vals = np.take_along_axis(B, top, axis=1)
            order = np.argsort(-vals, axis=1, kind="stable")
            top, vals = np.take_along_axis(top, order, axis=1), np.take_along_axis(vals, order, axis=1)
            ok = np.isfinite(vals) & has[s][:, None]
            nb[s] = np.where(ok, top, -1)
            wt[s] = np.where(ok, vals, 0.0)
        self.item_ids_, self.neighbors_, self.weights_ = ids, nb, wt
        self.has_cf_, self.n_users_ = has, int(n_users)
        self._pos = {k: i for i, k in enumerate(ids.tolist())}
        return self

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        if not hasattr(self, "neighbors_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() or load() first")

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """Rows of the known items among ``item_ids`` (unknown ones left out)."""
        self._check_fitted()
        return np.array([self._pos[str(i)] for i in check_id_list(item_ids) if str(i) in self._pos], dtype=np.int64)

    def entries(self, rows: np.ndarray, weights: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The kept lists of the item rows ``rows`` (weight 1 each, or ``weights``) flattened,
        ``(items, values)``: ``x B`` is the sum of the values per item (:meth:`score_rows`; a
        caller with its own item order sums them there)."""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self.neighbors_)):
            raise InputError(f"item rows must be in [0, {len(self.neighbors_)}), got "
                             f"{int(rows.min())}..{int(rows.max())}", field="rows")
        w = np.ones(len(rows), dtype=np.float32) if weights is None else \
            check_weights(weights, len(rows)).astype(np.float32)
        nb, wt = self.neighbors_[rows], self.weights_[rows] * w[:, None]
        ok = nb >= 0
        return nb[ok], wt[ok]

    def score_rows(self, rows: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
        """``x B`` over all items for the history ``x`` = the item rows ``rows`` (weight 1
        each, or ``weights``), from the kept lists; items no list reaches score 0."""
        items, values = self.entries(rows, weights)
        out = np.zeros(len(self.item_ids_), dtype=np.float64)
        np.add.at(out, items, values)
        return out

    def score(self, item_ids: Sequence[str], weights: Sequence[float] | None = None) -> np.ndarray:
        """``x B`` for a history of item ids (unknown ids ignored), aligned with ``item_ids_``."""
        self._check_fitted()
        item_ids = check_id_list(item_ids)
        if weights is not None:
            weights = check_weights(weights, len(item_ids))
        known = [(self._pos[str(i)], 1.0 if weights is None else float(weights[k]))
                 for k, i in enumerate(item_ids) if str(i) in self._pos]
        return self.score_rows(np.array([r for r, _ in known], dtype=np.int64), [w for _, w in known])

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        """The hyperparameters (what ``save`` writes to ``config.json``, with ``n_users``)."""
        return self.get_params()

    def save(self, path: str | Path) -> None:
        """Write ``ease.npz`` and ``config.json`` into the folder ``path`` atomically."""
        self._check_fitted()
        with atomic_dir(path) as tmp:
            np.savez(tmp / "ease.npz", item_ids=np.asarray(self.item_ids_, dtype=str), neighbors=self.neighbors_,
                     weights=self.weights_, has_cf=self.has_cf_)
            (tmp / "config.json").write_text(json.dumps({**self.config(), "n_users": self.n_users_}, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "EASE":
        """Load a model saved by :meth:`save`; :class:`~talkrec.estimator.UnreadableModelFile`
        naming the file that is missing or cannot be read."""
        path = Path(path)
        cfg = read_model_file(path / "config.json", lambda f: json.loads(f.read_text()), cls.__name__)
        cfg = saved_params(cls, cfg, path / "config.json", extra=("n_users",))
        n_users = int(cfg.pop("n_users", 0))
        self = cls(**cfg)
        z = read_npz(path / "ease.npz", ("item_ids", "neighbors", "weights", "has_cf"), cls.__name__)
        n = len(z["item_ids"])
        if z["neighbors"].shape != z["weights"].shape or z["neighbors"].ndim != 2 or len(z["neighbors"]) != n \
                or z["has_cf"].shape != (n,):
            raise UnreadableModelFile(f"{n} item ids for neighbours of shape {z['neighbors'].shape}, weights of shape "
                                      f"{z['weights'].shape} and has_cf of shape {z['has_cf'].shape}",
                                      path=str(path / "ease.npz"))
        self.item_ids_, self.neighbors_ = z["item_ids"].astype(str), z["neighbors"]
        self.weights_, self.has_cf_ = z["weights"], z["has_cf"]
        self.n_users_ = n_users
        self._pos = {k: i for i, k in enumerate(self.item_ids_.tolist())}
        return self


def _over_transposed(M: np.ndarray, lam: float, diag: np.ndarray, tile: tuple[int, int] = (256, 64)) -> np.ndarray:
    """``(M.T / lam) / diag`` as a row-major float32 matrix: a chunk's EASE weights off their
    diagonal, ``-P / diag`` with ``P = (I - M.T) / lam`` (``M = X^T K^-1 X[:, chunk]``), with the
    same two float32 roundings. Written tile by tile: ``M`` (items x chunk) is row-major, and a
    transposing copy in one piece reads or writes with a stride of a whole row (173 ms against
    40 ms for 17,632 x 1,024; the chunk's top lists then read each row in one run)."""
    n_items, m = M.shape
    out = np.empty((m, n_items), dtype=np.float32)
    ti, tj = tile
    for i in range(0, n_items, ti):
        d = diag[i:i + ti]
        for j in range(0, m, tj):
            o = out[j:j + tj, i:i + ti]
            np.divide(M[i:i + ti, j:j + tj].T, lam, out=o, casting="unsafe")
            np.divide(o, d, out=o, casting="unsafe")
    return out
