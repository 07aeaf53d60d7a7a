"""Modality encoders sharing one ``encode`` API (see :mod:`talkrec.encoders.base`)."""
from __future__ import annotations

from .base import Encoder
from .cf import ALSEncoder, tune_als
from .text import TextEncoder
from .vectors import PrecomputedEncoder

__all__ = ["ALSEncoder", "Encoder", "PrecomputedEncoder", "TextEncoder", "tune_als"]
