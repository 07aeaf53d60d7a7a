"""Precomputed content vectors (numeric descriptors, or any matrix keyed by item id)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.catalog import VectorTable
from ..errors import InputError
from ..estimator import Estimator, Instance, Predicate
from .base import check_batch_size


class PrecomputedEncoder(Estimator):
    """Look up vectors computed elsewhere, optionally standardized (z-score per column).

    ``encode(item_id)`` -> vector, ``encode([ids])`` -> matrix with NaN rows for ids without
    a vector. ``standardize=True`` learns column means and deviations in :meth:`fit`.
    """

    _constraints = {"modality": Predicate(lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty str"),
                    "standardize": Instance(bool)}

    def __init__(self, *, modality: str = "content", standardize: bool = True) -> None:
        self.modality = modality
        self.standardize = standardize

    def fit(self, table: VectorTable) -> "PrecomputedEncoder":
        """Learn the column means and deviations of ``table`` (``standardize``) and keep its
        standardized vectors; returns self."""
        self._check_params()
        if not isinstance(table, VectorTable):
            raise InputError(f"expected a VectorTable, got {type(table).__name__}", field="table")
        if not len(table.ids):
            raise InputError("the vector table is empty", field="table")
        X = table.X.astype(np.float64)
        self.mean_ = X.mean(axis=0) if self.standardize else np.zeros(X.shape[1])
        sd = X.std(axis=0) if self.standardize else np.ones(X.shape[1])
        self.std_ = np.where(sd < 1e-9, 1.0, sd)
        self.table_ = VectorTable(table.ids, ((X - self.mean_) / self.std_).astype(np.float32))
        return self

    @property
    def dim(self) -> int:
        """Length of a vector (the fitted table's columns)."""
        self._check_fitted()
        return self.table_.dim

    def transform_raw(self, X: np.ndarray) -> np.ndarray:
        """Standardize raw vectors the way the fitted table was (for new items)."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        if X.shape[-1:] != self.mean_.shape:
            raise InputError(f"expected vectors of dimension {len(self.mean_)}, got shape {X.shape}", field="X")
        return ((X - self.mean_) / self.std_).astype(np.float32)

    def encode(self, inputs: str | Sequence[str], *, batch_size: int = 4096, show_progress_bar: bool = False) -> np.ndarray:
        """Standardized vector of one id (-> 1-D) or a list (-> matrix; NaN rows for unknown ids)."""
        self._check_fitted()
        check_batch_size(batch_size)
        return self.table_.lookup(inputs)

    def config(self) -> dict[str, Any]:
        """The hyperparameters."""
        return self.get_params()
