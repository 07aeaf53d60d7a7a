"""Contrastive multimodal fusion."""
from __future__ import annotations

from .losses import info_nce
from .model import ContrastiveFusion, combine

__all__ = ["ContrastiveFusion", "combine", "info_nce"]
