"""Vector index with metadata filters."""
from __future__ import annotations

from .filters import parse_where
from .store import VectorIndex

__all__ = ["VectorIndex", "parse_where"]
