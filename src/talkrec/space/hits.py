"""Results of the Space's queries: :class:`Hit`, and turning ``(item_id, score)`` pairs into hits."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..index.snapshot import Snapshot
from ..index.store import VectorIndex

__all__ = ["META_IN_HITS", "Hit", "jsonable", "make_hits"]

#: metadata fields a hit carries (those the space has)
META_IN_HITS = ("tags", "genres", "genre", "decade", "year", "listeners", "plays", "n_ratings", "modalities")


@dataclass
class Hit:
    """One result: item id, display name, cosine score, and a few metadata fields."""

    item_id: str
    name: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def jsonable(v: Any) -> Any:
    """A metadata value as plain Python: numpy -> Python, NaN / NA -> ``None``."""
    if isinstance(v, np.ndarray):
        return [jsonable(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    if v is pd.NA or v is None:
        return None
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


def make_hits(index: VectorIndex | Snapshot, pairs: Iterable[tuple[str, float]]) -> list[Hit]:
    """Hits for ``(item_id, score)`` pairs of items in ``index``, in the given order."""
    pairs = list(pairs)
    if not pairs:
        return []
    sub = index.meta_rows([index.position(i) for i, _ in pairs])    # one lookup for all hits
    cols = [c for c in META_IN_HITS if c in sub.columns]
    names = sub["name"].tolist() if "name" in sub.columns else [i for i, _ in pairs]
    values = {c: sub[c].tolist() for c in cols}
    out = []
    for j, (iid, s) in enumerate(pairs):
        md = {c: jsonable(values[c][j]) for c in cols}
        if isinstance(md.get("tags"), list):
            md["tags"] = md["tags"][:8]
        out.append(Hit(iid, str(names[j]) if names[j] is not None else iid, float(s), md))
    return out
