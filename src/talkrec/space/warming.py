"""Warming a generation before it serves: what its first reads would otherwise make (the
hits' fields, and what ``similar`` and ``recommend`` read), at load and after each compaction."""
from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from .hits import carry_hit_rows, warm_hit_rows
from .popularity import popularity_of

if TYPE_CHECKING:
    from ..index.snapshot import Snapshot
    from .core import Space

log = logging.getLogger(__name__)

__all__ = ["keep_warm", "warm_generation"]


def warm_generation(space: "Space", snap: "Snapshot", previous: "Snapshot | None" = None) -> None:
    """Make what reads of ``snap`` use (:meth:`Space.warm_up`): its hits' fields, and
    ``similar`` and ``recommend`` run once on a live item, so that what they read (the EASE and
    ALS models, their rows' alignment, cold items' neighbours; ~0.3 s for Last.fm at load,
    scipy's import included) is there before a user's first query. A compaction calls it with
    the new generation before serving it, and the ``previous`` snapshot it compacts, whose
    rows' hit fields are carried over (the first reads after a compaction took 8-12 ms, not
    ~1 ms); a failure there is logged and the reads make what they need."""
    try:
        if previous is not None:
            carry_hit_rows(previous, snap)
        warm_hit_rows(snap)
        view = space.pinned(snap)
        for item in snap.ids[:1].tolist():
            view.similar(item, k=1)
            view.recommend(items=[item], k=1)
    except Exception:  # noqa: BLE001 - warming is an optimisation; never fail a compaction for it
        log.exception("warming %s's generation %s failed", space.path, snap.gen.name)


def keep_warm(space: "Space") -> None:
    """:func:`warm_generation` of the space's current snapshot now, and of each generation its
    store's compactions make from now on (registered once per store); and the items'
    popularity that ``novelty`` in ``recommend`` and ``similar`` reads (~30 ms for Last.fm; it
    does not change with writes)."""
    warm_generation(space, space.index)
    popularity_of(space)
    if not any(getattr(w, "func", None) is warm_generation for w in space.store.warmers):
        space.store.warmers.append(functools.partial(warm_generation, space))
