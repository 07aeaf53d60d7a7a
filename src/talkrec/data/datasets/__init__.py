"""Adapters for public datasets: each returns a validated :class:`~talkrec.data.Catalog`."""
from __future__ import annotations

from .lastfm import load_lastfm
from .movielens import load_movielens

__all__ = ["load_lastfm", "load_movielens"]
