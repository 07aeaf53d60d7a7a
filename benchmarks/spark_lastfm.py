"""Benchmark (not a test): the Last.fm space built by the embedded engine and by
``engine: spark`` (Spark local), compared on wall time, memory, artist-to-artist nDCG@200
on the OLGA (AllMusic) query artists with 95% bootstrap CIs, and how alike their answers are.

    nice -n 10 .venv/bin/python benchmarks/spark_lastfm.py --out runs/bench/spark-lastfm

Builds run as ``talkrec build`` processes (configs/lastfm.yaml, configs/lastfm-spark.yaml)
into fresh folders, so no cache helps either. The evaluation uses talkrec.evaluation's
split (``split_val_test``, val_fraction 0.3 as configs/eval-full.yaml) and task
(``item_to_item``) on each space's fused vectors and on its CF input (ALS) alone.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spark_procs import run_measured  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TALKREC = str(Path(sys.executable).with_name("talkrec"))


def build_both(out: Path, skip: bool) -> dict[str, Any]:
    runs = {}
    for name, config in (("embedded", "configs/lastfm.yaml"), ("spark", "configs/lastfm-spark.yaml")):
        if skip and (out / name / "space.json").exists():
            continue
        runs[name] = run_measured([TALKREC, "build", str(REPO / config), "--output", str(out / name), "--no-progress"],
                                  out / f"build-{name}.log", env={"SPARK_LOCAL_IP": "127.0.0.1"})
        print(name, runs[name], flush=True)
        runs[name]["stages"] = json.loads((out / name / "build_report.json").read_text())["stages"]
    return runs


def aligned(space: Any, X: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rows of ``X`` (in the space's item order) for ``ids`` (NaN where not indexed)."""
    out = np.full((len(ids), X.shape[1]), np.nan, dtype=np.float32)
    pos = {k: j for j, k in enumerate(map(str, space.item_ids))}
    have = [(i, pos[k]) for i, k in enumerate(map(str, ids)) if k in pos]
    out[[i for i, _ in have]] = X[[j for _, j in have]]
    return out


def evaluate(out: Path, n_boot: int) -> dict[str, Any]:
    from talkrec import Space
    from talkrec.config import resolve_path
    from talkrec.evaluation.splits import split_val_test
    from talkrec.evaluation.tasks import item_to_item, olga_ground_truth
    from talkrec.metrics import bootstrap_ci, paired_bootstrap_pvalue
    from talkrec.pipeline import load_config, load_dataset

    cfg = load_config(REPO / "configs" / "lastfm.yaml")
    catalog = load_dataset(cfg)
    ids = catalog.item_ids
    related, olga = olga_ground_truth(catalog.items, resolve_path(cfg["data_root"], cfg) / "olga-allmusic-partial")
    split = split_val_test(sorted(related), val_fraction=0.3, random_state=0)
    spaces = {n: Space.load(out / n) for n in ("embedded", "spark")}
    emb = {}
    for n, sp in spaces.items():
        emb[f"MULTI {n}"] = aligned(sp, sp.embeddings("multi"), ids)
        emb[f"CF {n}"] = aligned(sp, sp.embeddings("cf"), ids)
    res = item_to_item(ids, related, split, emb, k=200)
    rows: dict[str, Any] = {}
    for name, sc in res.scores.items():
        rows[name] = {}
        for part in ("val", "test"):
            m = res.split == part
            mean, lo, hi = bootstrap_ci(sc["ndcg"][m], n_resamples=n_boot, random_state=0)
            rows[name][part] = {"ndcg@200": round(mean, 4), "ci95": [round(lo, 4), round(hi, 4)], "queries": int(m.sum())}
    val = res.split == "val"
    for kind in ("MULTI", "CF"):
        a, b = res.scores[f"{kind} spark"]["ndcg"][val], res.scores[f"{kind} embedded"]["ndcg"][val]
        rows[f"{kind} spark - embedded (val)"] = {
            "mean_difference": round(float(np.nanmean(a - b)), 4),
            "p_spark_not_better": round(paired_bootstrap_pvalue(a, b, n_resamples=n_boot, random_state=0), 3),
            "p_embedded_not_better": round(paired_bootstrap_pvalue(b, a, n_resamples=n_boot, random_state=0), 3)}
    return {"olga": olga, "item_to_item": rows, "answers": answer_overlap(spaces, [q for q in sorted(related) if split[q] == "val"], cfg)}


def answer_overlap(spaces: dict[str, Any], queries: list[str], cfg: dict[str, Any]) -> dict[str, Any]:
    """Mean top-10 overlap of similar() on the validation artists and of the example searches."""
    a, b = spaces["embedded"], spaces["spark"]
    sim = [len({h.item_id for h in a.similar(q, k=10)} & {h.item_id for h in b.similar(q, k=10)}) / 10
           for q in queries if a.index.position(q) is not None and b.index.position(q) is not None]
    searches = {q: len({h.item_id for h in a.search(q, k=10)} & {h.item_id for h in b.search(q, k=10)}) / 10
                for q in cfg.get("examples", {}).get("search", [])}
    return {"similar_top10_overlap": round(float(np.mean(sim)), 3), "similar_queries": len(sim),
            "search_top10_overlap": searches}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/spark-lastfm"))
    ap.add_argument("--skip-built", action="store_true", help="reuse spaces already built under --out")
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    report = {"builds": build_both(args.out, args.skip_built), **evaluate(args.out, args.n_boot)}
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "builds"}, indent=2))


if __name__ == "__main__":
    main()
