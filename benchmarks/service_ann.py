"""Benchmark (not a test): search over N synthetic clustered 200-d unit vectors (default 1M)
through talkrec's own read path (a :class:`~talkrec.index.snapshot.Snapshot` over a
generation whose :class:`~talkrec.index.store.VectorIndex` has an hnswlib HNSW graph), next
to its floors measured in the same run: hnswlib's ``knn_query`` on the same graph and a numpy
matrix-vector product over the same vectors.

Reports the HNSW build time and memory (RSS; peak), single-query p50/p99 and recall@10 of
ANN search for a few ``ef_search`` values, a 1% filter (answered exactly: checked against
brute force), and upserting one item (the next snapshot; visible to the next search).
``--graph-cache DIR`` saves the built graph (and its build time) and loads it next time, so
that the build can run once, niced, apart from the latency runs.

    nice -n 10 .venv/bin/python benchmarks/service_ann.py --n 1000000 --out runs/bench/ann_1m.json
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread per query: the serving setting

import numpy as np  # noqa: E402


def rss_mb(key: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
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


def timed(fn: Any, args: list[Any]) -> tuple[list[float], list[Any]]:
    lat, out = [], []
    for a in args:
        t = time.perf_counter()
        out.append(fn(a))
        lat.append((time.perf_counter() - t) * 1e3)
    return lat, out


def summary(lat: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(lat, 50), 3), "p99_ms": round(pct(lat, 99), 3)}


def load_or_build_graph(V: np.ndarray, a: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The product's HNSW graph over ``V`` (``talkrec.index.store.build_graph``), from
    ``--graph-cache`` when it holds one for these settings."""
    from talkrec.index.store import build_graph, load_graph

    key = {"n": a.n, "dim": a.dim, "clusters": a.clusters, "spread": a.spread, "M": a.M,
           "ef_construction": a.ef_construction, "seed": a.seed}
    cache = a.graph_cache
    if cache is not None and (cache / "build.json").is_file():
        info = json.loads((cache / "build.json").read_text())
        if info["key"] == key:
            g = load_graph(cache / "hnsw.bin", a.dim, ef_search=a.ef_search[0])
            return g, {**info, "loaded_from_cache": True}
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    g = build_graph(V, M=a.M, ef_construction=a.ef_construction, ef_search=a.ef_search[0])
    info = {"key": key, "build_s": round(time.perf_counter() - t, 1), "threads": os.cpu_count(),
            "nice": os.nice(0), "load_average_start": round(load0, 2),
            "load_average_end": round(os.getloadavg()[0], 2), "peak_rss_mb_after_build": round(rss_mb("VmHWM"))}
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        g.save_index(str(cache / "hnsw.bin"))
        (cache / "build.json").write_text(json.dumps(info, indent=2))
    return g, {**info, "loaded_from_cache": False}


def ann_rows(snap: Any, graph: Any, Q: np.ndarray, truth: list[set[str]], efs: list[int], k: int) -> list[dict]:
    """Snapshot search (the product) and ``knn_query`` (the floor) per ``ef_search``."""
    rows = []
    for ef in efs:
        snap.gen.index.ef_search = ef
        graph.set_ef(ef)
        floor, _ = timed(lambda q: graph.knn_query(q[None, :], k=k), list(Q))
        lat, res = timed(lambda q: snap.search(q, k), list(Q))
        rec = [len(t & {i for i, _ in r}) / k for t, r in zip(truth, res)]
        rows.append({"ef_search": ef, **summary(lat), "recall_at_10": round(float(np.mean(rec)), 4),
                     "floor_hnswlib_knn_query": summary(floor), "load_average": round(os.getloadavg()[0], 2)})
        print("ann", json.dumps(rows[-1]), flush=True)
    return rows


def filtered_and_upsert(snap: Any, V: np.ndarray, bucket: np.ndarray, Q: np.ndarray, k: int) -> dict[str, Any]:
    """A 1% filter (exact: compared with brute force over the allowed rows) and single-item
    upserts into the index (each makes the next snapshot), with the search that follows."""
    from talkrec.ranking import top_k

    where = {"bucket": 7}
    allowed = bucket == 7
    snap.search(Q[0], k, where=where)                          # the clause's mask, once
    lat, res = timed(lambda q: snap.search(q, k, where=where), list(Q[:100]))
    exact = 0
    for q, r in zip(Q[:100], res):
        want = top_k(V @ q, k, allowed=allowed)
        exact += [snap.id_at(int(i)) for i in want] == [i for i, _ in r]
    up, s = [], snap
    rng = np.random.default_rng(1)
    for j in range(200):
        v = rng.normal(size=V.shape[1]).astype(np.float32)
        v /= np.linalg.norm(v)
        t = time.perf_counter()
        s = s.with_upsert([f"new{j}"], v[None, :], [{"item_id": f"new{j}", "bucket": 0}], {}, [[]])
        up.append((time.perf_counter() - t) * 1e3)
    found = s.search(v, 1)[0][0] == f"new{j}"
    after, _ = timed(lambda q: s.search(q, k), list(Q[:100]))
    return {"filter_1pct": {**summary(lat), "exact_lists": f"{exact}/100"},
            "upsert_one_item": {**summary(up), "visible_to_next_search": found},
            "search_after_200_upserts": summary(after), "load_average": round(os.getloadavg()[0], 2)}


def run(a: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    from talkrec.index.lexical import LexicalIndex
    from talkrec.index.segments import Generation
    from talkrec.index.snapshot import Snapshot
    from talkrec.index.store import VectorIndex

    rng = np.random.default_rng(a.seed)
    r0 = rss_mb()
    t = time.perf_counter()
    X = clustered(a.n + a.queries, a.dim, a.clusters, a.spread, rng)
    Q = X[a.n:].copy()
    ids = np.char.add("i", np.arange(a.n).astype(str))
    bucket = np.arange(a.n) % 100
    meta = pd.DataFrame({"item_id": ids, "bucket": bucket})
    print(f"generated {a.n} x {a.dim} in {time.perf_counter() - t:.1f}s", flush=True)
    graph, build = load_or_build_graph(X[:a.n], a)
    r_graph = rss_mb()
    t = time.perf_counter()
    index = VectorIndex(ids, X[:a.n], meta, ann=True, M=a.M, ef_construction=a.ef_construction,
                        ef_search=a.ef_search[0], graph=graph)
    del X
    index_s = time.perf_counter() - t
    snap = Snapshot.of(Generation("bench", index, {}, LexicalIndex([])))
    V = index.vectors
    r_index = rss_mb()
    print(f"index in {index_s:.1f}s; rss {r_index:.0f} MB; build {json.dumps(build)}", flush=True)
    floor_mv, _ = timed(lambda q: V @ q, list(Q))
    lat_exact, res = timed(lambda q: snap.search(q, a.k, exact=True), list(Q))
    truth = [{i for i, _ in r} for r in res]
    out = {"n": a.n, "dim": a.dim, "clusters": a.clusters, "spread": a.spread, "queries": a.queries, "k": a.k,
           "M": a.M, "ef_construction": a.ef_construction, "cpu_count": os.cpu_count(), "nice": os.nice(0),
           "hnsw_build": build,
           "rss_mb": {"start": round(r0), "vectors_and_graph": round(r_graph), "with_index": round(r_index),
                      "graph_file_mb": round((a.graph_cache / "hnsw.bin").stat().st_size / 2**20)
                      if a.graph_cache and (a.graph_cache / "hnsw.bin").is_file() else None},
           "floor_numpy_matvec": summary(floor_mv), "exact": summary(lat_exact),
           "load_average_exact": round(os.getloadavg()[0], 2)}
    print("exact", json.dumps(out["exact"]), "floor", json.dumps(out["floor_numpy_matvec"]), flush=True)
    out["ann"] = ann_rows(snap, graph, Q, truth, a.ef_search, a.k)
    snap.gen.index.ef_search = a.ef_search[0]
    out.update(filtered_and_upsert(snap, V, bucket, Q, a.k))
    out["peak_rss_mb"] = round(rss_mb("VmHWM"))
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=200)
    ap.add_argument("--clusters", type=int, default=2000)
    ap.add_argument("--spread", type=float, default=0.8, help="noise norm relative to the unit cluster centre")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=100)
    ap.add_argument("--ef-search", type=int, nargs="+", default=[128, 64, 256])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--graph-cache", type=Path, default=None)
    ap.add_argument("--build-only", action="store_true", help="build (and cache) the graph, measure nothing")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/ann.json"))
    return ap


def main() -> None:
    a = parser().parse_args()
    if a.build_only:
        rng = np.random.default_rng(a.seed)
        X = clustered(a.n + a.queries, a.dim, a.clusters, a.spread, rng)
        print(json.dumps(load_or_build_graph(X[:a.n], a)[1], indent=2))
        return
    out = run(a)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
