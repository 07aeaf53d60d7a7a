"""Contrastive multimodal fusion.

Importing the package does not import torch: the estimator imports it to train, save and
load; :class:`FusionProjector` serves a saved model with numpy alone.
"""
from __future__ import annotations

from typing import Any

from .model import ContrastiveFusion, combine
from .projector import FusionProjector

__all__ = ["ContrastiveFusion", "FusionProjector", "combine", "info_nce"]


def __getattr__(name: str) -> Any:
    if name == "info_nce":  # torch
        from .losses import info_nce
        return info_nce
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
