"""A built talkrec space and its Python API (:class:`Space`): search, recommendation,
playlists, explanations, browsing and cold-start upserts.

``core`` holds the :class:`Space`; the features it offers live beside it and use only its
public methods: ``search`` (BM25, text model, hybrid), ``vectors`` (query vectors),
``playlists``, ``explain``, ``browse`` (names, facets, users), ``media`` (media files as
queries / items), ``coldstart`` (validated upserts), ``files`` (the layout on disk),
``writer`` (the storage engine), ``follower`` (a read replica of a space another process writes).
"""
from __future__ import annotations

from .core import Space
from .files import WriteConflict, WriteError
from .follower import Follower
from .hits import Hit
from .playlists import Continuation
from .search import SEARCH_MODES

__all__ = ["SEARCH_MODES", "Continuation", "Follower", "Hit", "Space", "WriteConflict", "WriteError"]
