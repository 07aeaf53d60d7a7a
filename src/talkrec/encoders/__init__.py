"""Modality encoders sharing one ``encode`` API (see :mod:`talkrec.encoders.base`).

The encoders are imported on first use (PEP 562), so a query that needs only the text
encoder does not import scipy or implicit.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

__all__ = ["ALSEncoder", "Encoder", "PrecomputedEncoder", "TextEncoder", "tune_als"]

_WHERE = {"ALSEncoder": ".cf", "tune_als": ".cf", "Encoder": ".base", "PrecomputedEncoder": ".vectors",
          "TextEncoder": ".text"}

if TYPE_CHECKING:
    from .base import Encoder
    from .cf import ALSEncoder, tune_als
    from .text import TextEncoder
    from .vectors import PrecomputedEncoder


__getattr__, __dir__ = lazy_names(__name__, _WHERE, globals())
