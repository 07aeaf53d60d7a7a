"""Steps shared by the music and movie runs of the evaluation: stage timing, the ALS random
search draws, fitting a fusion candidate, validation means and catalog slices."""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import baselines as B
from .tasks import TaskResult

log = logging.getLogger(__name__)

__all__ = ["Timer", "fit_fusion", "param_grid_draws", "subset_catalog", "val_mean"]


class Timer:
    """Seconds per stage name, summed over calls: ``timer("music/load", t0)``."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}

    def __call__(self, key: str, start: float) -> None:
        self.t[key] = self.t.get(key, 0.0) + time.perf_counter() - start


def param_grid_draws(spec: Mapping[str, Any], n: int, seed: int) -> list[B.ALSParams]:
    """Random search: the paper default first, then ``n - 1`` seeded draws from the grid."""
    rng = np.random.default_rng(seed)
    draws = [B.ALSParams(factors=64, regularization=0.05, alpha=1.0, iterations=int(spec["iterations"]))]
    seen = {(64, 0.05, 1.0)}
    while len(draws) < n and len(seen) < 500:
        p = (int(rng.choice(spec["factors"])), float(rng.choice(spec["regularization"])), float(rng.choice(spec["alpha"])))
        if p in seen:
            continue
        seen.add(p)
        draws.append(B.ALSParams(factors=p[0], regularization=p[1], alpha=p[2], iterations=int(spec["iterations"])))
    return draws


def fit_fusion(inputs: Mapping[str, Any], base: Mapping[str, Any], cand: Mapping[str, Any], seed: int) -> Any:
    """A :class:`~talkrec.fusion.model.ContrastiveFusion` with ``base`` settings updated by
    the candidate's (its ``name`` aside), fitted on CPU."""
    from ..fusion.model import ContrastiveFusion

    params = {**base, **{k: v for k, v in cand.items() if k != "name"}}
    t0 = time.perf_counter()
    f = ContrastiveFusion(random_state=seed, device="cpu", **params).fit(dict(inputs))
    log.info("fusion %s: %d epochs (best %d) in %.1fs", cand.get("name"), len(f.history_), f.best_epoch_,
             time.perf_counter() - t0)
    return f


def val_mean(res: TaskResult, name: str) -> float:
    """Mean nDCG of system ``name`` over the validation queries it is scored on."""
    v = res.scores[name]["ndcg"][(res.split == "val") & res.mask[name]]
    return float(np.nanmean(v)) if len(v) else float("nan")


def subset_catalog(cat: Any, keep: set[str]) -> Any:
    """The catalog restricted to the items in ``keep`` (small mode)."""
    from ..data.catalog import Catalog, VectorTable

    vecs = {}
    for m, vt in cat.vectors.items():
        sel = np.isin(vt.ids, list(keep))
        vecs[m] = VectorTable(vt.ids[sel], vt.X[sel])
    inter = cat.interactions[cat.interactions["item_id"].isin(keep)] if cat.interactions is not None else None
    return Catalog(items=cat.items[cat.items["item_id"].isin(keep)].reset_index(drop=True),
                   tags=cat.tags[cat.tags["item_id"].isin(keep)], interactions=inter, vectors=vecs,
                   texts={k: v[v.index.isin(keep)] for k, v in cat.texts.items()}, name=cat.name)
