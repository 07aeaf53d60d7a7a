"""Novelty in ``Space.recommend`` on MovieLens held-out users: what ``novelty`` (less
popular items up, ``space/popularity.py``) costs in accuracy and buys in novelty and
coverage (docs/evaluation.md, "Trading accuracy for novelty"; PEERS: popularity bias).

Each held-out user's positives are split into query and target halves as in ``talkrec
evaluate``; ``Space.recommend(items=<query half>, k=k, novelty=n, pool=P)`` on the fold
spaces the evaluation built (the fold's users held out of every model), for each ``n``.
Per setting: nDCG@k and nDCG@10 (validation and test users apart, 95% bootstrap CIs),
novelty@10 / @k in bits (the evaluation's: positive-rating counts of every user,
``metrics.novelty_at_k``) and catalog coverage@10 of the test users' lists:

    python scripts/ablation_novelty.py [--folds 10] [--novelty 0,0.1,0.2,0.3,0.5] [--k 200] [--pool 1000]
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from talkrec.evaluation.common import Timer
from talkrec.evaluation.movies import _load
from talkrec.evaluation.product import ProductBuilder, recommend_ranker
from talkrec.evaluation.runner import load_config
from talkrec.evaluation.tasks import concat_results, user_recommendation
from talkrec.metrics import bootstrap_ci, coverage_at_k, ndcg_at_k, novelty_at_k
from talkrec.space import Space


def summary(r, name: str, k: int, targets: list[set[int]], pop: dict[int, float], n_users: int, n_items: int,
            n_boot: int, seed: int) -> dict:
    """nDCG@k / @10 per split, novelty@10 / @k and coverage@10 of the test users."""
    rank = [[i for i in row if i >= 0] for row in r.rankings[name]]
    nd10 = np.array([ndcg_at_k(t, row, 10) for t, row in zip(targets, rank)])
    out: dict = {}
    for metric, v in ((f"ndcg{k}", r.scores[name]["ndcg"]), ("ndcg10", nd10)):
        for split in ("val", "test"):
            x = v[r.split == split]
            mean, lo, hi = bootstrap_ci(x, n_resamples=n_boot, random_state=seed)
            out[f"{metric}_{split}"] = {"mean": mean, "lo": lo, "hi": hi, "n": int(len(x))}
    test = [row for row, s in zip(rank, r.split) if s == "test"]
    out["novelty10_test"] = novelty_at_k(test, pop, n_users, 10)
    out[f"novelty{k}_test"] = novelty_at_k(test, pop, n_users, k)
    out["coverage10_test"] = coverage_at_k(test, range(n_items), 10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/eval-minilm.yaml")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--novelty", default="0,0.1,0.2,0.3,0.5")
    ap.add_argument("--k", type=int, default=None, help="the list's length (default: the config's k, 200)")
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--out", default="runs/ablation-novelty.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config)
    d = _load(cfg, Timer())
    pb = ProductBuilder(cfg, "movies")
    k, seed = int(args.k or cfg["k"]), int(cfg["seed"])
    levels = [float(x) for x in args.novelty.split(",")]
    parts: dict[str, list] = {}
    targets: list[set[int]] = []
    seconds: dict[str, float] = {}
    for f in range(args.folds):
        uq = d.fold_queries(f)
        targets += list(uq.target)
        if not (pb.root / f"fold{f}").exists():
            raise SystemExit(f"{pb.root / f'fold{f}'}: no fold space; `talkrec evaluate {args.config}` builds them")
        space = Space.load(pb.root / f"fold{f}")
        for n in levels:
            name = f"novelty {n:g}" + (f", pool {args.pool}" if n else "")
            t0 = time.perf_counter()
            fn = recommend_ranker(space, d.ids, k, **({"novelty": n, "pool": args.pool} if n else {}))
            parts.setdefault(name, []).append(user_recommendation(uq, {}, k=k, rankers={name: fn}))
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
        space.close()
        print(f"fold {f} done", flush=True)
    counts = d.pop_of(d.inter)                                   # as talkrec evaluate's novelty@k
    pop = {i: float(c) for i, c in enumerate(counts)}
    out = {}
    for name, ps in parts.items():
        r = concat_results(ps)
        out[name] = summary(r, name, k, targets, pop, len(d.users), len(d.ids), int(cfg["n_bootstrap"]), seed)
        out[name]["ms_per_user"] = 1000 * seconds[name] / len(targets)
        s = out[name]
        cols = [f"nDCG@{kk} val {s[f'ndcg{kk}_val']['mean']:.4f} test {s[f'ndcg{kk}_test']['mean']:.4f} "
                f"[{s[f'ndcg{kk}_test']['lo']:.4f}, {s[f'ndcg{kk}_test']['hi']:.4f}]" for kk in dict.fromkeys((k, 10))]
        cols += [f"novelty@{kk} {s[f'novelty{kk}_test']:.2f}" for kk in dict.fromkeys((10, k))]
        print(f"{name:26s} " + "  ".join(cols) + f"  cov@10 {s['coverage10_test']:.3f}  {s['ms_per_user']:.1f} ms/user",
              flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
