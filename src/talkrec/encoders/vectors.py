"""Precomputed content vectors (numeric descriptors, or any matrix keyed by item id)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.catalog import VectorTable


class PrecomputedEncoder:
    """Look up vectors computed elsewhere, optionally standardized (z-score per column).

    ``encode(item_id)`` -> vector, ``encode([ids])`` -> matrix with NaN rows for ids without
    a vector. ``standardize=True`` learns column means and deviations in :meth:`fit`.
    """

    def __init__(self, *, modality: str = "content", standardize: bool = True) -> None:
        self.modality = modality
        self.standardize = standardize

    def fit(self, table: VectorTable) -> "PrecomputedEncoder":
        X = table.X.astype(np.float64)
        self.mean_ = X.mean(axis=0) if self.standardize else np.zeros(X.shape[1])
        sd = X.std(axis=0) if self.standardize else np.ones(X.shape[1])
        self.std_ = np.where(sd < 1e-9, 1.0, sd)
        self.table_ = VectorTable(table.ids, ((X - self.mean_) / self.std_).astype(np.float32))
        return self

    @property
    def dim(self) -> int:
        return self.table_.dim

    def transform_raw(self, X: np.ndarray) -> np.ndarray:
        """Standardize raw vectors the way the fitted table was (for new items)."""
        return ((np.asarray(X, dtype=np.float64) - self.mean_) / self.std_).astype(np.float32)

    def encode(self, inputs: str | Sequence[str], *, batch_size: int = 4096, show_progress_bar: bool = False) -> np.ndarray:
        """Standardized vector of one id (-> 1-D) or a list (-> matrix; NaN rows for unknown ids)."""
        return self.table_.lookup(inputs)

    def config(self) -> dict[str, Any]:
        return {"modality": self.modality, "standardize": self.standardize}
