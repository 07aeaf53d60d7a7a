"""Negative examples in ``Space.recommend`` on MovieLens held-out users (docs/evaluation.md,
"Negative examples"; the PEERS ask of recommend by positive and negative ids).

Each held-out user's positives (rating > 3) are split into query and target halves as in
``talkrec evaluate``; their dislikes (rating <= ``--dislike``, default 2) are split the same
way (seeded per user), and the query half of the dislikes is given as ``negative``. Scored per
``recommend.negative_weight`` (gamma; 0: the dislikes are only excluded), against the query
positives alone, on the fold spaces the evaluation built (the fold's users held out of every
model), validation and test users apart, 95% bootstrap CIs:

    python scripts/ablation_negatives.py [--folds 10] [--gammas 0,0.25,0.5,1] [--out runs/ablation-negatives.json]
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from talkrec.evaluation.coldstart import compare
from talkrec.evaluation.common import Timer
from talkrec.evaluation.movies import _load
from talkrec.evaluation.product import ProductBuilder, rank_ids
from talkrec.evaluation.runner import load_config
from talkrec.evaluation.splits import query_target_halves
from talkrec.evaluation.tasks import concat_results, user_recommendation
from talkrec.space import Space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/eval-minilm.yaml")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--dislike", type=float, default=2.0)
    ap.add_argument("--gammas", default="0,0.25,0.5,1")
    ap.add_argument("--out", default="runs/ablation-negatives.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config)
    d = _load(cfg, Timer())
    pb = ProductBuilder(cfg, "movies")
    k, seed = int(cfg["k"]), int(cfg["seed"])
    bad = d.inter[d.inter["weight"] <= args.dislike]
    dislikes = {str(u): g["item_id"].astype(str).tolist() for u, g in bad.groupby("user_id")}
    # the query half of each user's dislikes (a single dislike: on the query side)
    neg_half = {u: q for u, (q, _) in query_target_halves(dislikes, min_positives=2, random_state=seed).items()}
    neg_half.update({u: v for u, v in dislikes.items() if len(v) == 1})
    gammas = [float(g) for g in args.gammas.split(",")]
    idx = {x: i for i, x in enumerate(d.ids.tolist())}
    parts: dict[str, list] = {}
    for f in range(args.folds):
        uq = d.fold_queries(f)
        space = Space.load(pb.root / f"fold{f}")
        have = set(space.item_ids.tolist())
        negs = [[i for i in neg_half.get(str(u), []) if i in have] for u in uq.users]
        default = dict(space.config["recommend"])

        def ranker(gamma: float | None):
            def fn(qi, query):
                out = np.full((len(qi), k), -1, dtype=np.int64)
                for j, q in enumerate(qi):
                    items = [str(d.ids[i]) for i in query[q] if str(d.ids[i]) in have]
                    neg = negs[q] if gamma is not None else None
                    if items:
                        out[j] = rank_ids(space.recommend(items=items, negative=neg or None, k=k), idx, k)
                return out
            return fn
        for gamma in [None, *gammas]:
            name = "positives only" if gamma is None else f"+ negatives, gamma {gamma:g}"
            space.config["recommend"] = {**default, **({} if gamma is None else {"negative_weight": gamma})}
            parts.setdefault(name, []).append(user_recommendation(uq, {}, k=k, rankers={name: ranker(gamma)}))
        space.config["recommend"] = default
        space.close()
        print(f"fold {f} done", flush=True)
    with_neg = sum(1 for u in d.users if d.folds.get(u, -1) < args.folds and neg_half.get(str(u)))
    out = {"users_with_dislikes": with_neg, "dislike": args.dislike,
           **compare({n: concat_results(p) for n, p in parts.items()}, int(cfg["n_bootstrap"]), seed)}
    for name, r in out.items():
        if isinstance(r, dict) and isinstance(r.get("test"), dict):
            print(f"{name:32s} val {r['val']['mean']:.4f} test {r['test']['mean']:.4f} "
                  f"[{r['test']['lo']:.4f}, {r['test']['hi']:.4f}] n {r['val']['n']}/{r['test']['n']}", flush=True)
    print("users with dislikes:", with_neg)
    Path(args.out).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
