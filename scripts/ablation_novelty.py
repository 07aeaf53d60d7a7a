"""Novelty in ``Space.recommend`` and ``Space.similar``: what ``novelty`` (less popular items
up, ``space/popularity.py``) costs in accuracy and buys in novelty and coverage
(docs/evaluation.md, "Trading accuracy for novelty"; PEERS: popularity bias).

* ``--dataset movies``: MovieLens held-out users, their positives split into query and target
  halves as in ``talkrec evaluate``; ``Space.recommend(items=<query half>, k=k, novelty=n,
  pool=P)`` on the fold spaces the evaluation built (the fold's users held out of every model).
* ``--dataset music``: Last.fm query artists against their AllMusic related artists;
  ``Space.similar(artist, k=k, novelty=n, pool=P)`` on the space the evaluation built.

Per setting: nDCG@k and nDCG@10 (validation and test queries apart, 95% bootstrap CIs),
novelty@10 / @k in bits (the evaluation's: positive-rating counts / listeners, over every user;
``metrics.novelty_at_k``) and catalog coverage@10 of the test queries' lists:

    python scripts/ablation_novelty.py [--dataset movies] [--novelty 0,0.1,0.2,0.3,0.5] [--k 200] [--pool 1000]
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from talkrec.evaluation import movies, music
from talkrec.evaluation.common import Timer
from talkrec.evaluation.product import ProductBuilder, recommend_ranker, similar_ranker
from talkrec.evaluation.runner import load_config, summarize
from talkrec.evaluation.tasks import TaskResult, concat_results, item_to_item, user_recommendation
from talkrec.space import Space


def _space(path: Path, config: str) -> Space:
    if not path.exists():
        raise SystemExit(f"{path}: no space there; `talkrec evaluate {config}` builds it")
    return Space.load(path)


def _options(n: float, pool: int) -> dict[str, Any]:
    return {"novelty": n, "pool": pool} if n else {"novelty": 0.0}          # 0: whatever the space's default


def run_movies(cfg: dict, args: argparse.Namespace, k: int, levels: list[float]) -> tuple[dict, list, Any, int, int]:
    """Per level, the users' results over every fold (fold spaces of ``talkrec evaluate``)."""
    d = movies._load(cfg, Timer())
    pb = ProductBuilder(cfg, "movies")
    parts: dict[str, list[TaskResult]] = {}
    targets: list[set[int]] = []
    for f in range(args.folds):
        uq = d.fold_queries(f)
        targets += list(uq.target)
        space = _space(pb.root / f"fold{f}", args.config)
        for n in levels:
            fn = recommend_ranker(space, d.ids, k, **_options(n, args.pool))
            parts.setdefault(str(n), []).append(user_recommendation(uq, {}, k=k, rankers={"x": fn}))
        space.close()
        print(f"fold {f} done", flush=True)
    users = d.pop_of(d.inter)                                   # as talkrec evaluate's novelty@k
    return {n: concat_results(p) for n, p in parts.items()}, targets, users, len(d.users), len(d.ids)


def run_music(cfg: dict, args: argparse.Namespace, k: int, levels: list[float]) -> tuple[dict, list, Any, int, int]:
    """Per level, the query artists' results through ``Space.similar`` (the evaluation's space)."""
    pb = ProductBuilder(cfg, "music")
    d = music._load(cfg, Timer(), pb)
    space = _space(pb.root / "full", args.config)
    space.warm_up()
    res = {str(n): item_to_item(d.ids, d.related, d.split, {}, k=k,
                                rankers={"x": similar_ranker(space, d.ids, k, **_options(n, args.pool))})
           for n in levels}
    idx = {x: i for i, x in enumerate(map(str, d.ids))}
    targets = [{idx[r] for r in d.related[q] if r in idx} for q in next(iter(res.values())).query_ids]
    return res, targets, d.pop, int(d.cat.interactions["user_id"].nunique()), len(d.ids)


def summary(r: TaskResult, k: int, targets: list[set[int]], item_users: np.ndarray, n_users: int, n_items: int,
            n_boot: int, seed: int) -> dict:
    """``talkrec evaluate``'s summary (:func:`~talkrec.evaluation.runner.summarize`: test mean
    [95% CI], validation mean, coverage and novelty of the test queries) at ``k`` and, on the
    same lists cut to their top 10, at 10."""
    at10 = TaskResult(r.task, r.query_ids, r.split)
    at10.add("x", r.rankings["x"][:, :10], targets, 10)
    lists = {k: r, 10: at10}                                         # one entry when k is 10
    return {f"@{kk}": summarize(res, n_items, kk, n_boot, seed, item_users=item_users, n_users=n_users)["x"]
            for kk, res in lists.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/eval-minilm.yaml")
    ap.add_argument("--dataset", choices=("movies", "music"), default="movies")
    ap.add_argument("--folds", type=int, default=10, help="movies: the folds scored")
    ap.add_argument("--novelty", default="0,0.1,0.2,0.3,0.5")
    ap.add_argument("--k", type=int, default=None, help="the list's length (default: the config's k, 200)")
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--out", default=None, help="default runs/ablation-novelty-<dataset>-k<k>.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config)
    k, seed = int(args.k or cfg["k"]), int(cfg["seed"])
    levels = [float(x) for x in args.novelty.split(",")]
    t0 = time.perf_counter()
    res, targets, users, n_users, n_items = (run_movies if args.dataset == "movies" else run_music)(cfg, args, k,
                                                                                                    levels)
    out = {"dataset": args.dataset, "k": k, "pool": args.pool, "seconds": round(time.perf_counter() - t0, 1)}
    for n, r in res.items():
        name = f"novelty {float(n):g}" + (f", pool {args.pool}" if float(n) else "")
        s = out[name] = summary(r, k, targets, users, n_users, n_items, int(cfg["n_bootstrap"]), seed)
        cols = [f"nDCG@{kk} val {s[f'@{kk}']['val_ndcg']:.4f} test {s[f'@{kk}']['ndcg']['mean']:.4f} "
                f"[{s[f'@{kk}']['ndcg']['lo']:.4f}, {s[f'@{kk}']['ndcg']['hi']:.4f}]" for kk in dict.fromkeys((k, 10))]
        cols += [f"novelty@{kk} {s[f'@{kk}']['novelty']:.2f}" for kk in dict.fromkeys((10, k))]
        print(f"{name:26s} " + "  ".join(cols) + f"  cov@10 {s['@10']['coverage']:.3f}", flush=True)
    print(f"{out['seconds']} s")
    path = Path(args.out or f"runs/ablation-novelty-{args.dataset}-k{k}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
