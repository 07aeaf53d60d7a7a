"""Explanations: which tags and which modalities make two items close.

The fused vector of an item is ``s / |s|`` with ``s = sum_m w_m z_m`` over its modalities'
normalized projections ``z_m``, ``w_m`` the space's ``modality_weights`` (1 when it has none).
Hence ``cos(a, b) = sum_{m,n} <w_m z_a^m, w_n z_b^n> / (|s_a| |s_b|)``: each modality pair's term
is its exact share of the similarity.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..fusion.model import modality_weight

if TYPE_CHECKING:
    from .core import Space


def _projections(space: "Space", item_id: str) -> dict[str, np.ndarray]:
    """The item's normalized projection per modality it has (mean over text views), times the
    modality's weight in the fused mean (``modality_weights``, as the build and cold start
    combine them: a modality the weights leave out weighs 0)."""
    weights = space.config.get("modality_weights") or None
    out = {}
    for m in space.modalities:
        rows = space.raw_input(item_id, m)
        zs = [space.fusion.project(m, r) for r in rows if not np.isnan(r).any()]
        if zs:
            out[m] = np.mean(zs, axis=0) * modality_weight(weights, m)
    return out


def explain(space: "Space", a: str, b: str) -> dict[str, Any]:
    """Why ``a`` and ``b`` are close: their cosine, shared tags and each modality pair's share."""
    ia, ib = space.item(a), space.item(b)
    va, vb = space.item_vector(a), space.item_vector(b)
    za, zb = _projections(space, a), _projections(space, b)
    contrib: dict[str, float] = {}
    if za and zb:
        sa, sb = sum(za.values()), sum(zb.values())
        denom = float(np.linalg.norm(sa) * np.linalg.norm(sb)) or 1.0
        for m, x in za.items():
            for n, y in zb.items():
                contrib[f"{m}~{n}"] = float(x @ y) / denom
    ta = [t for t in (ia.get("tags") or [])]
    tb = set(ib.get("tags") or [])
    shared = [t for t in ta if t in tb]
    return {"a": a, "b": b, "cosine": float(va @ vb), "shared_tags": shared[:20],
            "modality_contributions": dict(sorted(contrib.items(), key=lambda kv: -kv[1])),
            "modalities": {"a": sorted(za), "b": sorted(zb)}}
