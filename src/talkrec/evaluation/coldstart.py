"""Cold start through the product (issue 12): a seeded share of items is held out of CF
training (their interactions removed from the build's catalog), the space is built, and the
items are written again through ``Space.add_items`` with their description (and audio
vector), so their vectors come only from content through the trained encoders. Their nDCG
is compared with the same items' in the warm space.

* music: the cold items are drawn among the query artists; each is a query (``Space.similar``).
* movies: drawn among the items with positives; held-out users' targets restricted to the
  cold items (``Space.recommend``), on the first ``movies.cold_start.folds`` folds (every
  fold by default); the cold movies are written again with every text view the build
  embedded (``description_overview``), as a user adding a movie would.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..metrics import bootstrap_ci
from .common import Timer
from .tasks import TaskResult

log = logging.getLogger(__name__)

__all__ = ["cold_catalog", "compare", "draw_cold", "movies_cold_start", "music_cold_start", "readd_items"]


def draw_cold(candidates: Sequence[str], fraction: float, seed: int) -> list[str]:
    """A seeded ``fraction`` of ``candidates`` (at least one), sorted."""
    pool = sorted(map(str, candidates))
    n = max(1, int(round(len(pool) * fraction)))
    return sorted(np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False).tolist())


def cold_catalog(cat: Any, cold: Sequence[str], users: Sequence[str] = ()) -> Any:
    """A copy of the catalog without the interactions of the ``cold`` items (and of ``users``)."""
    import copy

    out = copy.copy(cat)
    inter = cat.interactions
    out.interactions = inter[~inter["item_id"].astype(str).isin(set(cold))
                             & ~inter["user_id"].astype(str).isin(set(map(str, users)))].copy()
    return out


def readd_items(space: Any, cat: Any, cold: Sequence[str]) -> None:
    """Write the cold items again through ``Space.add_items``: name, tags, the build's
    TEMPLATE description, the texts of the space's other text views the catalog has (e.g.
    ``description_overview``) and the raw vectors of the catalog's content modalities."""
    from ..descriptions.template import TemplateDescriber

    desc = TemplateDescriber(**space.config["descriptions"]["template"]).describe(cat)
    names = dict(zip(cat.items["item_id"].astype(str), cat.items["name"].astype(str)))
    tags = cat.tags.groupby("item_id")["tag"].apply(list).to_dict() if len(cat.tags) else {}
    vecs = {m: dict(zip(vt.ids.tolist(), vt.X)) for m, vt in cat.vectors.items() if m in space.modalities}
    views = {v: cat.texts[v] for v in (space.config["descriptions"].get("views") or [])[1:] if v in cat.texts}
    recs = []
    for i in cold:
        v = {m: d[i].tolist() for m, d in vecs.items() if i in d and np.isfinite(d[i]).all()}
        texts = {f"description_{name}": str(t[i]) for name, t in views.items() if i in t and pd.notna(t[i])}
        recs.append({"item_id": i, "name": names[i], "description": desc[i], "tags": [str(t) for t in tags.get(i, [])],
                     "vectors": v, **texts})
    for s in range(0, len(recs), 1000):
        space.add_items(recs[s:s + 1000])


def compare(results: Mapping[str, TaskResult], n_boot: int, seed: int) -> dict[str, Any]:
    """Mean nDCG [95% CI] of each result's single system per split, and cold / warm."""
    out: dict[str, Any] = {}
    for name, r in results.items():
        (sys_name,) = r.scores
        v = r.scores[sys_name]["ndcg"]
        out[name] = {}
        for split in ("val", "test"):
            x = v[(r.split == split) & ~np.isnan(v)]
            mean, lo, hi = bootstrap_ci(x, n_resamples=n_boot, random_state=seed) if len(x) else (None, None, None)
            out[name][split] = {"mean": mean, "lo": lo, "hi": hi, "n": int(len(x))}
    if "cold" in out and "warm" in out:
        out["ratio"] = {s: (out["cold"][s]["mean"] / out["warm"][s]["mean"]
                            if out["warm"][s]["mean"] else None) for s in ("val", "test")}
    return out


def music_cold_start(cfg: Mapping[str, Any], d: Any, pb: Any, warm: Any, timer: Timer) -> dict[str, Any] | None:
    """Cold vs warm nDCG of the held-out query artists (``music.cold_start``)."""
    from .product import similar_ranker
    from .tasks import item_to_item

    cc = cfg["music"].get("cold_start") or {}
    if not cc.get("enabled", True):
        return None
    seed, k = int(cfg["seed"]), int(cfg["k"])
    t0 = time.perf_counter()
    cold = draw_cold(d.related, float(cc.get("fraction", 0.1)), seed)
    cat = pb.catalog(d.cat)
    space = pb.build("cold", cold_catalog(cat, cold))
    readd_items(space, cat, cold)
    rel = {q: d.related[q] for q in cold}
    res = {name: item_to_item(d.ids, rel, d.split, {}, k=k, rankers={name: similar_ranker(s, d.ids, k)})
           for name, s in (("cold", space), ("warm", warm))}
    space.close()
    timer("music/cold-start", t0)
    out = {"items": len(cold), "fraction": float(cc.get("fraction", 0.1)), **compare(res, int(cfg["n_bootstrap"]), seed)}
    log.info("music cold start: %s", out.get("ratio"))
    return out


def movies_cold_start(cfg: Mapping[str, Any], d: Any, pb: Any, timer: Timer) -> dict[str, Any] | None:
    """Cold vs warm nDCG of held-out users' targets restricted to the cold movies, on the
    first ``movies.cold_start.folds`` folds (``movies.cold_start``). Also reported: the cold
    movies as the build embeds them (every text view, e.g. TEMPLATE + OVERVIEW) before the
    ``Space.add_items`` rewrite (one TEMPLATE description), and each of ``variants``
    (``{name: recommend settings}``, e.g. ``cold_neighbors``, ``cold_boost``) on the cold
    targets and on every target of the same users (what it costs the warm items)."""
    from ..space import Space
    from .product import recommend_ranker
    from .tasks import UserQueries, concat_results, user_recommendation

    cc = d.mc.get("cold_start") or {}
    if not cc.get("enabled", True):
        return None
    seed, k = int(cfg["seed"]), int(cfg["k"])
    t0 = time.perf_counter()
    pos = d.inter[d.inter["weight"] > float(d.mc["threshold"])]["item_id"].astype(str).unique()
    cold = draw_cold([i for i in pos if i in d.idx], float(cc.get("fraction", 0.1)), seed)
    cold_idx = {d.idx[i] for i in cold}
    parts: dict[str, list[TaskResult]] = {"cold": [], "warm": [], "cold_build_views": []}
    for f in range(min(int(cc.get("folds", 2)), int(d.mc["n_folds"]))):
        uq = d.fold_queries(f)
        keep = [j for j, t in enumerate(uq.target) if t & cold_idx]
        uc = UserQueries([uq.users[j] for j in keep], [uq.query[j] for j in keep],
                         [uq.target[j] & cold_idx for j in keep], [uq.split[j] for j in keep])
        fold = pb.catalog(d.fold_catalog(uq.users))          # without the held-out users' own tags
        warm = (Space.load(pb.root / f"fold{f}") if (pb.root / f"fold{f}" / "space.json").exists()   # the folds' run built it
                else pb.build(f"fold{f}", cold_catalog(fold, [], users=uq.users)))
        cs = pb.build(f"cold{f}", cold_catalog(fold, cold, users=uq.users))
        for name, s in (("warm", warm), ("cold_build_views", cs)):
            parts[name].append(user_recommendation(uc, {}, k=k, rankers={name: recommend_ranker(s, d.ids, k)}))
        readd_items(cs, fold, cold)
        parts["cold"].append(user_recommendation(uc, {}, k=k, rankers={"cold": recommend_ranker(cs, d.ids, k)}))
        default = dict(cs.config["recommend"])
        for vname, over in (cc.get("variants") or {}).items():   # recommend settings for new items:
            cs.config["recommend"] = {**default, **over}          # cold targets, and every target
            for name, q in ((f"cold {vname}", uc), (f"all targets {vname}", uq)):
                parts.setdefault(name, []).append(
                    user_recommendation(q, {}, k=k, rankers={name: recommend_ranker(cs, d.ids, k)}))
        cs.config["recommend"] = default
        warm.close()
        cs.close()
    timer("movies/cold-start", t0)
    out = {"items": len(cold), "fraction": float(cc.get("fraction", 0.1)),
           **compare({n: concat_results(p) for n, p in parts.items()}, int(cfg["n_bootstrap"]), seed)}
    log.info("movies cold start: %s", out.get("ratio"))
    return out
