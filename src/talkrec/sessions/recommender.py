"""Serving a trained session model for playlist continuation (service and CLI hook).

    rec = SessionRecommender.load("runs/sessions/lastfm/models/next_item", fallback=knn)
    rec.continue_session(["289", "72"], k=10, exclude={"89"})  # -> [(item_id, score), ...]

Ids the model does not know are ignored. When none of the given ids is known (an empty
playlist, or only items newer than the model) the ``fallback`` callable is used -- the
service passes the kNN continuation of the multimodal Space, e.g.
``lambda ids, k, exclude: [(h.item_id, h.score) for h in space.continue_playlist(ids, k)
if h.item_id not in exclude]`` -- and without one the result is empty.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..ranking import top_k
from .models import _SessionModel

log = logging.getLogger(__name__)

Fallback = Callable[[list[str], int, set[str]], list[tuple[str, float]]]


class SessionRecommender:
    """A saved :class:`MaskedSessionModel` or :class:`NextItemSessionModel` behind one call."""

    def __init__(self, model: _SessionModel, *, fallback: Fallback | None = None,
                 exclude_input: bool = True) -> None:
        self.model = model
        self.fallback = fallback
        self.exclude_input = exclude_input
        self._pos = {k: i for i, k in enumerate(model.vocabulary().tolist())}

    @classmethod
    def load(cls, path: str | Path, *, fallback: Fallback | None = None, exclude_input: bool = True,
             device: str | None = None) -> "SessionRecommender":
        return cls(_SessionModel.load(path, device=device), fallback=fallback, exclude_input=exclude_input)

    @property
    def item_ids(self) -> np.ndarray:
        return self.model.vocabulary()

    def knows(self, item_id: str) -> bool:
        return str(item_id) in self._pos

    def known(self, item_ids: Sequence[str]) -> int:
        """How many of ``item_ids`` (e.g. a Space's items) the model knows: a model trained
        on another catalog's log knows none, and would only ever fall back."""
        return sum(1 for x in item_ids if str(x) in self._pos)

    @classmethod
    def check_attachable(cls, path: str | Path, item_ids: Sequence[str]) -> "SessionRecommender":
        """Load the model at ``path`` for a catalog of ``item_ids`` *before* it is attached:
        :class:`InputError` naming the folder when it is not a session model or knows none
        of the items; a warning when it knows less than half of them (unknown seeds fall
        back to kNN). Returns the loaded recommender."""
        rec = cls.load(path)
        ids = list(item_ids)
        n = rec.known(ids)
        vocab = rec.item_ids
        if ids and n == 0:
            raise InputError(f"the session model knows none of the {len(ids)} items (its ids look like "
                             f"{', '.join(map(repr, vocab[:3].tolist()))}; the catalog's like "
                             f"{', '.join(repr(str(x)) for x in ids[:3])}): it was trained on another catalog's log",
                             path=str(path))
        if n < len(vocab) / 2:
            log.warning("%s: the session model knows %d of its %d items in this catalog (%.0f%%); "
                        "continuations from the others fall back to kNN", path, n, len(vocab), 100.0 * n / len(vocab))
        return rec

    def continue_session(self, item_ids: Sequence[str], k: int = 10,
                         exclude: set[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` best next items after ``item_ids`` (in playing order), best first.

        Items in ``exclude`` -- and, with ``exclude_input`` (default), the input items --
        are never returned. Falls back to ``fallback`` when no input item is known.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}", field="k")
        if isinstance(item_ids, (str, bytes)):   # "289" would be read as the items "2", "8", "9"
            raise InputError(f"item_ids must be a list of item ids, got the string {item_ids!r}", field="item_ids")
        ids = [str(x) for x in item_ids]
        exclude = {str(x) for x in (exclude or set())}
        ctx = [self._pos[x] for x in ids if x in self._pos]
        if not ctx:
            if self.fallback is not None:
                log.info("session model knows none of %d items: using the fallback", len(ids))
                return list(self.fallback(ids, int(k), exclude))[:k]
            return []
        s = self.model.score_indices([ctx])[0]
        drop = exclude | (set(ids) if self.exclude_input else set())
        top = top_k(s, int(k), exclude=[j for j in (self._pos.get(x) for x in drop) if j is not None])
        vocab = self.model.vocabulary()
        return [(str(vocab[j]), float(s[j])) for j in top]
