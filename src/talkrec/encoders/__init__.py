"""Modality encoders sharing one ``encode`` API (see :mod:`talkrec.encoders.base`).

The encoders are imported on first use (PEP 562), so a query that needs only the text
encoder does not import scipy or implicit.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["ALSEncoder", "Encoder", "PrecomputedEncoder", "TextEncoder", "tune_als"]

_WHERE = {"ALSEncoder": ".cf", "tune_als": ".cf", "Encoder": ".base", "PrecomputedEncoder": ".vectors",
          "TextEncoder": ".text"}

if TYPE_CHECKING:
    from .base import Encoder
    from .cf import ALSEncoder, tune_als
    from .text import TextEncoder
    from .vectors import PrecomputedEncoder


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value
