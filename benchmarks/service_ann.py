"""Benchmark (not a test): exact vs approximate (hnswlib HNSW) kNN in talkrec's VectorIndex
on N synthetic clustered 200-d unit vectors (default 1M).

Reports build time, resident memory, single-query p50/p99 latency of exact and ANN search,
and recall@10 of ANN against exact search, for a few ``ef_search`` values.

    nice -n 10 .venv/bin/python benchmarks/service_ann.py --n 1000000 --out runs/bench/ann_1m.json
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread per query: the serving setting

import numpy as np  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def clustered(n: int, dim: int, n_clusters: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    centers = rng.normal(size=(n_clusters, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for s in range(0, n, step):
        m = min(step, n - s)
        c = rng.integers(0, n_clusters, size=m)
        x = centers[c] + spread * rng.normal(size=(m, dim)).astype(np.float32) / np.sqrt(dim)
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs), p))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=200)
    ap.add_argument("--clusters", type=int, default=2000)
    ap.add_argument("--spread", type=float, default=0.8, help="noise norm relative to the unit cluster centre")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=100)
    ap.add_argument("--ef-search", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--threads", type=int, default=0, help="hnswlib build threads (0: all cores)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/ann.json"))
    args = ap.parse_args()

    from talkrec.index.store import VectorIndex

    rng = np.random.default_rng(0)
    r0 = rss_mb()
    t = time.perf_counter()
    X = clustered(args.n + args.queries, args.dim, args.clusters, args.spread, rng)
    X, Q = X[: args.n], X[args.n:]
    ids = np.char.add("i", np.arange(args.n).astype(str))
    gen_s = time.perf_counter() - t
    print(f"generated {args.n} x {args.dim} in {gen_s:.1f}s, rss {rss_mb():.0f} MB", flush=True)

    t = time.perf_counter()
    exact = VectorIndex(ids, X, ann=False)
    r_exact = rss_mb()
    exact_build_s = time.perf_counter() - t
    print(f"exact index in {exact_build_s:.1f}s, rss {r_exact:.0f} MB", flush=True)

    import hnswlib

    t = time.perf_counter()
    hn = hnswlib.Index(space="ip", dim=args.dim)
    hn.init_index(max_elements=args.n, M=args.M, ef_construction=args.ef_construction)
    if args.threads:
        hn.set_num_threads(args.threads)
    hn.add_items(exact.vectors, np.arange(args.n))
    ann_build_s = time.perf_counter() - t
    r_ann = rss_mb()
    print(f"HNSW (M={args.M}, ef_construction={args.ef_construction}) built in {ann_build_s:.1f}s, "
          f"rss {r_ann:.0f} MB", flush=True)
    # share the vectors and the graph: the same VectorIndex object answers exact and ANN queries
    exact._hnsw = hn
    hn.set_num_threads(1)

    truth, lat_exact = [], []
    for q in Q:
        t = time.perf_counter()
        res = exact.search(q, args.k, exact=True)
        lat_exact.append((time.perf_counter() - t) * 1e3)
        truth.append({i for i, _ in res})
    out = {"n": args.n, "dim": args.dim, "clusters": args.clusters, "spread": args.spread, "queries": args.queries,
           "k": args.k, "M": args.M, "ef_construction": args.ef_construction, "cpu_count": os.cpu_count(),
           "generate_s": round(gen_s, 1), "ann_build_s": round(ann_build_s, 1),
           "rss_mb": {"start": round(r0), "vectors_and_exact_index": round(r_exact), "with_hnsw": round(r_ann)},
           "hnsw_graph_mb_estimate": round(args.n * args.M * 2 * 4 / 2**20),
           "exact": {"p50_ms": round(pct(lat_exact, 50), 2), "p99_ms": round(pct(lat_exact, 99), 2)}, "ann": []}
    print("exact", out["exact"], flush=True)
    for ef in args.ef_search:
        exact.ef_search = ef
        lat, rec = [], []
        for q, tr in zip(Q, truth):
            t = time.perf_counter()
            res = exact.search(q, args.k)
            lat.append((time.perf_counter() - t) * 1e3)
            rec.append(len(tr & {i for i, _ in res}) / args.k)
        row = {"ef_search": ef, "p50_ms": round(pct(lat, 50), 3), "p99_ms": round(pct(lat, 99), 3),
               "recall_at_10": round(float(np.mean(rec)), 4)}
        out["ann"].append(row)
        print("ann", row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
