"""Inference of a trained fusion model without torch.

:class:`FusionProjector` reads the same ``model.safetensors`` + ``config.json`` a
:class:`~talkrec.fusion.ContrastiveFusion` saves (with ``safetensors.numpy``) and computes
each modality's ``Linear -> ReLU -> Linear`` (dropout is off at inference) in float32
numpy: a served space projects queries and new items with no torch import. Everything else
(input checks, standardization, views, :func:`~talkrec.fusion.combine`) is the estimator's
own code, :class:`~talkrec.fusion.model.Projection`.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..estimator import read_model_file
from .model import Projection, read_model

__all__ = ["FusionProjector"]


class FusionProjector(Projection):
    """A saved :class:`~talkrec.fusion.ContrastiveFusion` for inference, in numpy.

    Same ``project`` / ``project_views`` / ``modality_outputs`` / ``transform`` as the
    estimator (to float32 rounding, 1e-5); load with :meth:`load`.

    Attributes
    ----------
    params : dict             the estimator's hyperparameters (``config.json``)
    layers_ : dict            modality -> (W1.T, b1, W2.T, b2) float32 arrays
    modalities_, input_dims_, pairs_, mean_, std_, history_, best_epoch_ : as the estimator
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)
        self.out_dim = int(self.params["out_dim"])

    @classmethod
    def load(cls, path: str | Path) -> "FusionProjector":
        """The model a :class:`~talkrec.fusion.ContrastiveFusion` saved in folder ``path``."""
        meta, tensors = read_model(path)
        self = cls(meta["params"])
        self._set_model(meta, tensors)
        f32 = {k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()}
        self.layers_ = read_model_file(Path(path) / "model.safetensors", lambda _: {
            m: (np.ascontiguousarray(f32[f"encoder.{m}.net.0.weight"].T), f32[f"encoder.{m}.net.0.bias"],
                np.ascontiguousarray(f32[f"encoder.{m}.net.3.weight"].T), f32[f"encoder.{m}.net.3.bias"])
            for m in self.modalities_}, "ContrastiveFusion model")
        return self

    def __repr__(self) -> str:
        fitted = f", modalities={self.modalities_!r}" if hasattr(self, "modalities_") else ""
        return f"{type(self).__name__}(out_dim={self.out_dim}{fitted})"

    def config(self) -> dict[str, Any]:
        return dict(self.params)

    def _forward(self, modality: str, Z: np.ndarray) -> np.ndarray:
        w1, b1, w2, b2 = self.layers_[modality]
        h = np.maximum(np.asarray(Z, dtype=np.float32) @ w1 + b1, 0.0)
        y = h @ w2 + b2
        return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
