"""Benchmark (not a test): what hybrid search's names list (``search.hybrid_name_weight``) costs.

    PYTHONPATH=src OPENBLAS_NUM_THREADS=1 python benchmarks/names_list.py --space spaces/lastfm [--n 200]

Prints, in-process on a built space: the names list alone (``talkrec.space.namelist.name_top`` at
the space's RRF depth) next to BM25's own list (``lexical_top``, its floor); then whole hybrid
``Space.search`` calls at k=10 with the list (the space's weight, or 2) and without it (weight 0),
alternated query by query (which goes first alternates too) on distinct texts, so that neither
finds its query vector cached.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from talkrec.space import Space
from talkrec.space.namelist import name_top
from talkrec.space.search import lexical_top

WORDS = (["dark", "happy", "female", "80s", "ambient", "heavy", "indie", "brazilian", "relaxing", "experimental"],
         ["rock", "jazz", "pop", "electronic", "metal", "folk", "hip hop", "vocalists", "punk", "soul"])


def _row(name: str, t: list[float]) -> None:
    print(f"  {name:<52} p50 {np.percentile(t, 50) * 1e3:7.2f} ms   p99 {np.percentile(t, 99) * 1e3:7.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", required=True)
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    space = Space.load(args.space)
    space.warm_up()
    base = dict(space.config.get("search", {}))
    weight = float(base.get("hybrid_name_weight") or 2.0)
    queries = [f"{a} {b}" for a in WORDS[0] for b in WORDS[1]]
    queries = [queries[i % len(queries)] for i in range(args.n)]
    snap, depth = space.index, int(base.get("rrf_depth", 1000))
    allowed = np.ones(snap.n_rows, dtype=bool)
    name_top(space, snap, "warm up", allowed, depth)
    alone: dict[str, list[float]] = {"BM25 list (floor)": [], "names list": []}
    for q in queries:
        for name, fn in (("BM25 list (floor)", lambda: lexical_top(space, q, allowed, depth)),
                         ("names list", lambda: name_top(space, snap, q, allowed, depth))):
            a = time.perf_counter()
            fn()
            alone[name].append(time.perf_counter() - a)
    hybrid: dict[float, list[float]] = {0.0: [], weight: []}
    for w in hybrid:
        space.config["search"] = {**base, "hybrid_name_weight": w}
        space.search("warm up", k=10)
    for i, q in enumerate(queries):
        for w in ((0.0, weight) if i % 2 else (weight, 0.0)):
            space.config["search"] = {**base, "hybrid_name_weight": w}
            text = f"{q} {'music' if w else 'songs'} {i}"
            a = time.perf_counter()
            space.search(text, k=10)
            hybrid[w].append(time.perf_counter() - a)
    space.config["search"] = base
    print(f"== {args.space}: {snap.n_rows} rows, depth {depth}, {len(queries)} queries")
    for name, t in alone.items():
        _row(name, t)
    _row("search hybrid k=10, no names list (floor)", hybrid[0.0])
    _row(f"search hybrid k=10, names list weight {weight:g}", hybrid[weight])


if __name__ == "__main__":
    main()
