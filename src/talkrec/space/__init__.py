"""A built talkrec space and its Python API (:class:`Space`): search, recommendation,
playlists, explanations, browsing and cold-start upserts.

``core`` holds the :class:`Space`; the features it offers live beside it and use only its
public methods: ``search`` (BM25, text model, hybrid), ``vectors`` (query vectors),
``playlists``, ``explain``, ``browse`` (names, facets, users), ``media`` (media files as
queries / items), ``coldstart`` (validated upserts), ``files`` (the layout on disk).
"""
from __future__ import annotations

from .core import SEARCH_MODES, Space
from .files import WriteError
from .hits import Hit
from .playlists import Continuation

__all__ = ["SEARCH_MODES", "Continuation", "Hit", "Space", "WriteError"]
