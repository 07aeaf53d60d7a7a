"""Queries through the dynamic-int8 text graph against fp32 queries, on the same items (issue 13;
docs/building.md, "Queries in int8").

Two spaces of one dataset, the second built with ``text.int8_queries: true`` (its item vectors are
the first's, bit for bit); ``Space.search`` (k=200) of each on the versioned tag queries of the
evaluation config's query set for that dataset, nDCG@200 of validation and test queries, and the
paired difference with its 95% bootstrap interval:

    talkrec build configs/lastfm.yaml
    talkrec build configs/lastfm-int8q.yaml      # extends it: text.int8_queries: true, spaces/lastfm-int8q
    python scripts/ablation_int8_queries.py --fp32 spaces/lastfm --int8 spaces/lastfm-int8q
    talkrec build configs/movielens.yaml && talkrec build configs/movielens-int8q.yaml
    python scripts/ablation_int8_queries.py --dataset movies --fp32 spaces/movielens --int8 spaces/movielens-int8q
"""
from __future__ import annotations

import argparse
import logging

import numpy as np

from talkrec.config import resolve_path
from talkrec.data.datasets import load_lastfm, load_movielens
from talkrec.evaluation.queries import item_tag_sets, load_queries, relevant_items
from talkrec.evaluation.runner import load_config
from talkrec.metrics import ndcg_at_k
from talkrec.space import Space

MODES = ("hybrid", "multi", "text")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=["music", "movies"], default="music")
    ap.add_argument("--fp32", required=True, help="the space built with fp32 queries")
    ap.add_argument("--int8", required=True, help="the same build with text.int8_queries: true")
    ap.add_argument("--config", default="configs/eval-minilm.yaml", help="where the query set and data root are")
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config)
    rc = cfg[args.dataset]["retrieval"]
    root = resolve_path(cfg["data_root"], cfg)
    cat = load_lastfm(root / "lastfm-hetrec2011-2k") if args.dataset == "music" else \
        load_movielens(root / "movielens-ml-latest-small")
    queries, _ = load_queries(resolve_path(rc["queryset"], cfg))
    tags = item_tag_sets(cat.tags, min_weight=float(rc["min_weight"]), categories=rc.get("categories"))
    spaces = {"fp32": Space.load(args.fp32), "int8": Space.load(args.int8)}
    ids = set(spaces["fp32"].item_ids)
    rng = np.random.default_rng(0)
    for split in ("val", "test"):
        qs = [q for q in queries if q.split == split]
        rel = [{i for i in relevant_items(q.tags, tags) if i in ids} for q in qs]
        qs, rel = [q for q, r in zip(qs, rel) if r], [r for r in rel if r]
        got = {name: {m: np.array([ndcg_at_k(r, [h.item_id for h in sp.search(q.text, k=200, mode=m)], 200)
                                   for q, r in zip(qs, rel)]) for m in MODES} for name, sp in spaces.items()}
        for m in MODES:
            d = got["int8"][m] - got["fp32"][m]
            boot = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(args.resamples)]
            lo, hi = np.percentile(boot, [2.5, 97.5])
            print(f"{split} ({len(qs)} queries) {m:6s}: fp32 {got['fp32'][m].mean():.4f}  int8 {got['int8'][m].mean():.4f}"
                  f"  int8 - fp32 {d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]")


if __name__ == "__main__":
    main()
