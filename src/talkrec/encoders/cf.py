"""Collaborative-filtering modality: implicit ALS (Hu, Koren & Volinsky 2008) item factors.

The interaction matrix holds confidences: an observed entry is ``1 + alpha * log1p(w)``
(plays or ratings), unobserved entries count as confidence 1 with preference 0 (implicit's
convention), so a raw ``log1p`` would be wrong. ``min_weight`` drops weak feedback (e.g.
ratings <= 3) before fitting. Hyperparameters can be chosen by :func:`tune_als`, a random
search scored by nDCG of held-out interactions on a validation split of users.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from .._atomic import atomic_dir
from ..data.catalog import VectorTable, interaction_weights, unique_item_ids
from ..errors import InputError
from ..estimator import (Estimator, Interval, Options, UnreadableModelFile, read_model_file, read_npz,
                         saved_params)
from ..metrics import ndcg_at_k
from ..ranking import top_k
from .base import check_batch_size, check_id_list, check_weights

log = logging.getLogger(__name__)


def confidence(weights: np.ndarray, alpha: float, scheme: str = "log") -> np.ndarray:
    """Confidence of observed entries: ``1 + alpha*log1p(w)`` (``"log"``) or ``1 + alpha*w``."""
    w = np.asarray(weights, dtype=np.float64)
    if scheme == "log":
        return (1.0 + alpha * np.log1p(np.maximum(w, 0))).astype(np.float32)
    if scheme == "linear":
        return (1.0 + alpha * w).astype(np.float32)
    raise InputError(f"confidence scheme must be 'log' or 'linear', got {scheme!r}", field="scheme")


class ALSEncoder(Estimator):
    """Item (and user) factors of weighted matrix factorization, scikit-learn style.

    Parameters
    ----------
    factors, regularization, iterations:
        ALS model size, L2 penalty and sweeps.
    alpha, confidence_scheme:
        Confidence ``1 + alpha*log1p(w)`` (default) or ``1 + alpha*w``.
    min_weight:
        Interactions with weight below this are ignored (e.g. 3.5 keeps ratings > 3); a weight
        of 0 or less is never an interaction (it was a play of confidence 1), as in a user's history.
    random_state:
        Seed of the factor initialisation.

    Attributes
    ----------
    item_ids_ : np.ndarray[str]       every item id given to ``fit``
    item_factors_ : np.ndarray        (n_items, factors); NaN rows for items with no interaction
    user_ids_ : np.ndarray[str]
    user_factors_ : np.ndarray        (n_users, factors)
    """

    modality = "cf"
    _constraints = {"factors": Interval(int, 1), "regularization": Interval(float, 0),
                    "alpha": Interval(float, 0, closed="neither"), "iterations": Interval(int, 1),
                    "confidence_scheme": Options("log", "linear"), "min_weight": Interval(float),
                    "random_state": Interval(int, 0, none=True)}

    def __init__(self, *, factors: int = 64, regularization: float = 0.05, alpha: float = 2.0,
                 iterations: int = 15, confidence_scheme: str = "log", min_weight: float = 0.0,
                 random_state: int | None = 0) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.confidence_scheme = confidence_scheme
        self.min_weight = min_weight
        self.random_state = random_state

    @property
    def dim(self) -> int:
        """Length of an item's vector: ``factors``."""
        return int(self.factors)

    def _matrix(self, interactions: pd.DataFrame, item_ids: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        for c in ("user_id", "item_id", "weight"):
            if c not in interactions.columns:
                raise InputError(f"interactions need a '{c}' column; got {list(interactions.columns)}", field=c)
        w = interaction_weights(interactions)       # every weight a finite number
        df = interactions[(w > 0) & (w >= self.min_weight)]
        pos = pd.Series(np.arange(len(item_ids)), index=item_ids)
        col = pos.reindex(df["item_id"].astype(str).to_numpy()).to_numpy()
        keep = ~np.isnan(col)
        df = df[keep]
        users, urow = np.unique(df["user_id"].to_numpy(dtype=str), return_inverse=True)
        data = confidence(df["weight"].to_numpy(), self.alpha, self.confidence_scheme)
        m = sp.csr_matrix((data, (urow, col[keep].astype(np.int64))), shape=(len(users), len(item_ids)))
        m.sum_duplicates()
        return m, users

    def fit(self, interactions: pd.DataFrame, item_ids: Sequence[str] | np.ndarray | None = None) -> "ALSEncoder":
        """Factorize ``interactions`` (user_id, item_id, weight). ``item_ids`` fixes the item
        order (default: items seen in ``interactions``)."""
        from implicit.cpu.als import AlternatingLeastSquares

        self._check_params()
        if not isinstance(interactions, pd.DataFrame):
            raise InputError(f"interactions must be a DataFrame, got {type(interactions).__name__}",
                             field="interactions")
        ids = unique_item_ids(item_ids if item_ids is not None else pd.unique(interactions["item_id"].astype(str)))
        m, users = self._matrix(interactions, ids)
        if m.nnz == 0:
            raise InputError("no interactions left to factorize (check min_weight and item ids)", field="interactions")
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(factors=int(self.factors), regularization=float(self.regularization),
                                            alpha=1.0, iterations=int(self.iterations),
                                            random_state=self.random_state, calculate_training_loss=False)
            model.fit(m, show_progress=False)
        seen = np.asarray(m.getnnz(axis=0) > 0)
        model.item_factors[~seen] = 0.0       # as a loaded model has them (from_factors); NaN would reach every user
        itf = np.array(model.item_factors, dtype=np.float32)       # a copy: the NaN rows are ours, not the model's
        itf[~seen] = np.nan
        self.item_ids_, self.item_factors_ = ids, itf
        self.user_ids_, self.user_factors_ = users, np.asarray(model.user_factors, dtype=np.float32)
        self.model_ = model
        self.matrix_ = m
        self._items = VectorTable(ids, itf)
        self._pos = self._items.positions
        self._upos = {k: i for i, k in enumerate(users.tolist())}
        return self

    def encode(self, inputs: str | Sequence[str], *, batch_size: int = 4096, show_progress_bar: bool = False) -> np.ndarray:
        """Item factors for one item id (-> vector) or a list (-> matrix; NaN rows for unknown).
        Ids are compared as str, as ``fit`` stores them (``1`` is ``"1"``)."""
        self._check_fitted()
        check_batch_size(batch_size)
        return self._items.lookup(inputs)

    def user_vector(self, item_ids: Sequence[str], weights: Sequence[float] | None = None) -> np.ndarray:
        """Factors of a new user from their items (implicit's recalculate_user)."""
        self._check_fitted()
        item_ids = check_id_list(item_ids)
        w = np.ones(len(item_ids)) if weights is None else check_weights(weights, len(item_ids))
        cols = [self._pos[str(i)] for i in item_ids if str(i) in self._pos]
        ww = [w[k] for k, i in enumerate(item_ids) if str(i) in self._pos]
        row = sp.csr_matrix((confidence(np.asarray(ww), self.alpha, self.confidence_scheme),
                             ([0] * len(cols), cols)), shape=(1, len(self.item_ids_)))
        with threadpool_limits(1, "blas"):
            v = self.model_.recalculate_user(0, row)
        return np.asarray(v, dtype=np.float32).ravel()

    def known_user(self, user_id: str) -> np.ndarray | None:
        """The fitted factors of ``user_id`` (compared as str), or None for a user ``fit`` did not see."""
        self._check_fitted()
        p = self._upos.get(str(user_id))
        return None if p is None else self.user_factors_[p]

    def recommend_scores(self, user_vec: np.ndarray) -> np.ndarray:
        """Scores of every item for a user vector (NaN-factor items score -inf)."""
        self._check_fitted()
        s = np.nan_to_num(self.item_factors_, nan=0.0) @ user_vec
        s[np.isnan(self.item_factors_).any(axis=1)] = -np.inf
        return s

    def config(self) -> dict[str, Any]:
        """The modality and the hyperparameters (what ``save`` writes to ``config.json``)."""
        return {"modality": self.modality, **self.get_params()}

    def save(self, path: str | Path) -> None:
        """Write ``factors.npz`` and ``config.json`` into the folder ``path`` atomically."""
        self._check_fitted()
        with atomic_dir(path) as tmp:
            np.savez(tmp / "factors.npz", item_ids=np.asarray(self.item_ids_, dtype=str), item_factors=self.item_factors_,
                     user_ids=np.asarray(self.user_ids_, dtype=str), user_factors=self.user_factors_)
            (tmp / "config.json").write_text(json.dumps(self.config(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "ALSEncoder":
        """Load factors saved by :meth:`save` (serving: encode, user factors, user_vector);
        :class:`~talkrec.estimator.UnreadableModelFile` naming a file missing or unreadable."""
        path = Path(path)
        cfg = read_model_file(path / "config.json", lambda f: json.loads(f.read_text()), cls.__name__)
        cfg = saved_params(cls, cfg, path / "config.json", extra=("modality",))
        cfg.pop("modality", None)
        z = read_npz(path / "factors.npz", ("item_ids", "item_factors", "user_ids", "user_factors"), cls.__name__)
        n_items, n_users = len(z["item_ids"]), len(z["user_ids"])
        if z["item_factors"].ndim != 2 or len(z["item_factors"]) != n_items or z["user_factors"].ndim != 2 \
                or len(z["user_factors"]) != n_users or z["user_factors"].shape[1] != z["item_factors"].shape[1]:
            raise UnreadableModelFile(f"{n_items} item ids for item factors of shape {z['item_factors'].shape}, "
                                      f"{n_users} user ids for user factors of shape {z['user_factors'].shape}",
                                      path=str(path / "factors.npz"))
        return cls.from_factors(z["item_ids"], z["item_factors"], z["user_ids"], z["user_factors"], **cfg)

    @classmethod
    def from_factors(cls, item_ids: np.ndarray, item_factors: np.ndarray, user_ids: np.ndarray,
                     user_factors: np.ndarray, **params: Any) -> "ALSEncoder":
        """An encoder serving factors fitted elsewhere (a saved one, or Spark MLlib's ALS):
        ``item_factors`` has a NaN row for each item without factors."""
        from implicit.cpu.als import AlternatingLeastSquares

        self = cls(**params)
        self.item_ids_, self.item_factors_ = np.asarray(item_ids).astype(str), np.asarray(item_factors, dtype=np.float32)
        self.user_ids_, self.user_factors_ = np.asarray(user_ids).astype(str), np.asarray(user_factors, dtype=np.float32)
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(factors=int(self.factors), regularization=float(self.regularization),
                                            alpha=1.0, iterations=int(self.iterations), random_state=self.random_state)
        model.item_factors = np.nan_to_num(self.item_factors_).astype(np.float32)
        model.user_factors = self.user_factors_.astype(np.float32)
        self.model_ = model
        self._items = VectorTable(self.item_ids_, self.item_factors_)
        self._pos = self._items.positions
        self._upos = {k: i for i, k in enumerate(self.user_ids_.tolist())}
        return self


#: The random search's choices of :func:`tune_als` (implicit's parameters).
SEARCH_SPACE: dict[str, list[Any]] = {"factors": [32, 64, 128], "regularization": [0.01, 0.05, 0.1, 0.5, 1.0],
                                      "alpha": [0.5, 1.0, 2.0, 5.0, 10.0, 20.0], "iterations": [10, 15, 25]}


def _ndcg_rows(scores: np.ndarray, truth: list[np.ndarray], k: int,
               exclude: list[np.ndarray] | None = None) -> list[float]:
    """nDCG@k (:func:`talkrec.metrics.ndcg_at_k`) of each score row's top k (``exclude[r]``
    removed) against its hidden items; rows without hidden items are skipped."""
    tops = top_k(scores, k, exclude=exclude)
    return [ndcg_at_k(set(rel.tolist()), [i for i in top.tolist() if i >= 0], k)
            for top, rel in zip(tops, truth) if len(rel)]


def validation_ndcg(enc: ALSEncoder, hidden: pd.DataFrame, k: int, *, chunk: int = 1024) -> float:
    """Mean nDCG@k of each validation user's hidden items, ranked by the user's factors
    against every item's (items they trained on excluded; items without factors never
    ranked): scored for ``chunk`` users at a time with one matrix product."""
    pos = enc._pos
    users, truth = [], []
    for u, grp in hidden.groupby("user_id"):
        if str(u) in enc._upos:
            users.append(enc._upos[str(u)])
            truth.append(np.array([pos[i] for i in grp["item_id"].astype(str) if i in pos]))
    if not users:
        return 0.0
    F = np.nan_to_num(enc.item_factors_, nan=0.0)
    no_factors = np.isnan(enc.item_factors_).any(axis=1)
    vals: list[float] = []
    for s in range(0, len(users), chunk):
        rows = users[s:s + chunk]
        S = enc.user_factors_[rows] @ F.T
        S[:, no_factors] = -np.inf
        vals += _ndcg_rows(S, truth[s:s + chunk], k, exclude=[enc.matrix_[r].indices for r in rows])
    return float(np.mean(vals)) if vals else 0.0


def heldout_ndcg(scores: np.ndarray, truth: list[np.ndarray], k: int) -> float:
    """Mean nDCG@k (:func:`talkrec.metrics.ndcg_at_k`) of each score row's top k against its
    hidden items; rows without hidden items are skipped."""
    vals = _ndcg_rows(scores, truth, k)
    return float(np.mean(vals)) if vals else 0.0


def validation_split(interactions: pd.DataFrame, rng: np.random.Generator, *, validation_fraction: float = 0.2,
                     min_weight: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, hidden)`` of the ALS search: a ``validation_fraction`` of users is drawn
    from ``rng`` and half of each one's (kept: ``weight > 0`` and ``>= min_weight``) interactions are
    hidden; ``train`` is every other interaction (``user_id`` as str in both)."""
    df = interactions.copy()
    df["user_id"] = df["user_id"].astype(str)
    users = df["user_id"].unique()
    val_users = set(rng.choice(users, size=max(1, int(len(users) * validation_fraction)), replace=False).tolist())
    w = pd.to_numeric(df["weight"], errors="coerce")
    kept = df[(w > 0) & (w >= min_weight)]                  # what the model trains on (``ALSEncoder._matrix``)
    vmask = kept["user_id"].isin(val_users).to_numpy()
    hide = np.zeros(len(kept), dtype=bool)
    idx = np.flatnonzero(vmask)
    hide[rng.choice(idx, size=len(idx) // 2, replace=False)] = True
    return df.drop(index=kept.index[hide]), kept[hide]


def draw_params(space: dict[str, Sequence[Any]], rng: np.random.Generator) -> dict[str, Any]:
    """One trial of the random search: a value of each parameter, drawn from ``rng``."""
    return {name: vals[int(rng.integers(len(vals)))] for name, vals in space.items()}


def tune_als(interactions: pd.DataFrame, item_ids: Sequence[str] | np.ndarray, *, n_trials: int = 12,
             validation_fraction: float = 0.2, k: int = 50, min_weight: float = 0.0,
             random_state: int | None = 0, space: dict[str, Sequence[Any]] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Random search of ALS hyperparameters.

    A ``validation_fraction`` of users is drawn; for each, half of their (kept) interactions
    are hidden (:func:`validation_split`). Each trial fits on the rest and scores nDCG@k of
    the hidden items ranked for the user's factors (seen items excluded). Returns
    ``(best_params, trials)``.
    """
    rng = np.random.default_rng(random_state)
    ids = np.asarray(item_ids).astype(str)
    space = dict(space or SEARCH_SPACE)
    train, hidden = validation_split(interactions, rng, validation_fraction=validation_fraction, min_weight=min_weight)
    trials = []
    best: tuple[float, dict[str, Any]] = (-1.0, {})
    for t in range(n_trials):
        params = draw_params(space, rng)
        enc = ALSEncoder(min_weight=min_weight, random_state=random_state, **params).fit(train, ids)
        score = validation_ndcg(enc, hidden, k)
        trials.append({**params, f"ndcg@{k}": score})
        log.info("tune_als trial %d %s -> nDCG@%d %.4f", t, params, k, score)
        if score > best[0]:
            best = (score, params)
    return best[1], trials
