"""Benchmark (not a test): a built space served from Milvus Lite vs the embedded exact index.

Copies a built space twice (``--space``, e.g. the full Last.fm space), points one copy at
Milvus Lite with :func:`talkrec.pipeline.reindex.reindex` (only the index is rebuilt: the
same fused vectors and metadata), and runs the same ``Space.similar`` calls on both:
``--queries`` unfiltered ones and ``--filtered`` ones with filters drawn from the data
(tags, decades, numeric ranges, combinations, and a substring filter Milvus cannot say, which
is filtered locally). Reports recall@k of Milvus against the embedded exact index, the fill
time, and latency p50/p99 of ``similar()`` and of the kNN alone (``Snapshot.search``).

    nice -n 10 .venv/bin/python benchmarks/milvus_recall.py --space spaces/lastfm \\
        --work runs/bench/milvus-work --out runs/bench/milvus_lastfm.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # one BLAS thread per query: the serving setting

import numpy as np  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    return round(float(np.percentile(np.asarray(xs) * 1000, p)), 2)


KINDS = ("tag", "decade", "listeners", "tag+listeners", "tags~ (local)")


def filters_from(space, n: int, rng: np.random.Generator) -> list[object]:
    """``n`` filters over the space's metadata: popular tags, decades, listener ranges,
    combinations, and ``tags~`` (not expressible in Milvus: filtered locally)."""
    meta = space.index.meta
    tags = Counter(t for ts in meta["tags"] for t in ts).most_common(40)
    decades = [d for d, _ in Counter(d for ds in meta.get("decade", []) for d in ds).most_common(5)]
    listeners = meta["listeners"].to_numpy() if "listeners" in meta else None
    out: list[object] = []
    for i in range(n):
        tag = tags[int(rng.integers(len(tags)))][0]
        kind = i % 5
        if kind == 0 or (kind == 1 and not decades) or (kind == 2 and listeners is None):
            out.append(f"tag={tag}")
        elif kind == 1:
            out.append(f"decade={decades[int(rng.integers(len(decades)))]}")
        elif kind == 2:
            out.append({"listeners": {">=": float(np.percentile(listeners, rng.choice([50, 90, 99])))}})
        elif kind == 3:
            out.append({"tags": [tag], "listeners": {">=": 1}} if listeners is not None else f"tag={tag}")
        else:
            out.append(f"tags~{tag[:4]}")
    return out


def run(emb, mil, items: list[str], wheres: list[object], k: int) -> dict[str, object]:
    """Recall and latencies of ``similar(item, where=...)`` on both spaces (and of the kNN
    alone); for filtered runs also the Milvus kNN p50 per kind of filter (``KINDS``, in turn)."""
    recalls, t_emb, t_mil, knn_emb, knn_mil = [], [], [], [], []
    for iid, where in zip(items, wheres):
        t0 = time.perf_counter()
        a = [h.item_id for h in emb.similar(iid, k=k, where=where)]
        t1 = time.perf_counter()
        b = [h.item_id for h in mil.similar(iid, k=k, where=where)]
        t2 = time.perf_counter()
        t_emb.append(t1 - t0)
        t_mil.append(t2 - t1)
        recalls.append(len(set(a) & set(b)) / len(a) if a else float(not b))
        q = emb.index.vector(iid)
        t0 = time.perf_counter()
        emb.index.search(q, k, where=where, exclude=[iid])
        t1 = time.perf_counter()
        mil.index.search(q, k, where=where, exclude=[iid])
        knn_emb.append(t1 - t0)
        knn_mil.append(time.perf_counter() - t1)
    by_kind = {}
    if any(w is not None for w in wheres):
        by_kind = {kind: {"milvus_lite_knn_p50": pct(knn_mil[i::len(KINDS)], 50),
                          "embedded_knn_p50": pct(knn_emb[i::len(KINDS)], 50)} for i, kind in enumerate(KINDS)}
    return {"queries": len(items), f"recall@{k}": round(float(np.mean(recalls)), 4), "by_filter_kind": by_kind,
            "queries_below_1": int(sum(r < 1 for r in recalls)),
            "similar_ms": {"embedded": {"p50": pct(t_emb, 50), "p99": pct(t_emb, 99)},
                           "milvus_lite": {"p50": pct(t_mil, 50), "p99": pct(t_mil, 99)}},
            "knn_ms": {"embedded": {"p50": pct(knn_emb, 50), "p99": pct(knn_emb, 99)},
                       "milvus_lite": {"p50": pct(knn_mil, 50), "p99": pct(knn_mil, 99)}}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", type=Path, required=True, help="a built space (copied, never changed)")
    ap.add_argument("--work", type=Path, default=Path("runs/bench/milvus-work"))
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--filtered", type=int, default=100)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--index-type", default="FLAT")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/milvus_lastfm.json"))
    args = ap.parse_args()

    from talkrec import Space
    from talkrec.pipeline.reindex import reindex

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    emb_dir, mil_dir = args.work / "embedded", args.work / "milvus"
    shutil.copytree(args.space, emb_dir)
    shutil.copytree(args.space, mil_dir)
    t0 = time.perf_counter()
    info = reindex(mil_dir, {"backend": "milvus", "uri": str(args.work / "items.db"), "index_type": args.index_type})
    fill_s = time.perf_counter() - t0
    emb, mil = Space.load(emb_dir), Space.load(mil_dir)
    rng = np.random.default_rng(args.seed)
    ids = emb.item_ids
    for iid in ids[:20]:                                   # warm both (first calls load lazily)
        emb.similar(iid, k=args.k)
        mil.similar(iid, k=args.k)
    plain = [str(i) for i in rng.choice(ids, size=args.queries, replace=False)]
    filtered = [str(i) for i in rng.choice(ids, size=args.filtered, replace=False)]
    wheres = filters_from(emb, args.filtered, rng)
    result = {
        "space": str(args.space), "items": len(emb.index), "dim": emb.index.dim, "k": args.k,
        "index_type": args.index_type, "fill_s": round(fill_s, 2), "milvus_fill_s": info.get("milvus_fill_s"),
        "load_avg": os.getloadavg(), "cpus": os.cpu_count(),
        "similar": run(emb, mil, plain, [None] * len(plain), args.k),
        "filtered": run(emb, mil, filtered, wheres, args.k),
        "filters": [str(w) for w in wheres[:10]],
    }
    mil.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
