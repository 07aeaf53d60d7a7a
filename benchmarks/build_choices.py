"""Do the build's speed choices keep quality? Validation nDCG on the evaluation's music task.

Compares, on the validation queries of the evaluation (docs/evaluation.md: artist-to-artist
recommendation against AllMusic related artists, and tag-query retrieval), with the
evaluation's Last.fm slice, TEMPLATE texts and the ALS setting it chose (64 factors, reg 10,
alpha 1):

* the text model alone, passages encoded with the fp32 ONNX graph vs the dynamic-int8 one
  (queries always fp32), and the int8 rows' cosine to the fp32 ones;
* the fused space (MULTI, and its RRF hybrid with the text model and BM25) trained on
  either text matrix, under the fusion schedules named on the command line.

Each row is compared with its reference (int8 text with fp32 text; every fusion run with
``fp32/build``) on the same validation queries: the mean paired difference with its 95%
bootstrap interval (``talkrec.metrics.bootstrap_ci`` over per-query differences).

    PYTHONPATH=src OPENBLAS_NUM_THREADS=1 python benchmarks/build_choices.py \\
        --schedules build fast --out reports/build_choices.json

Schedules: ``build`` = configs/lastfm.yaml's fusion (lr 1e-4, at most 400 epochs, patience
25); ``build-p10`` = the same with patience 10; ``mid`` = lr 3e-4, patience 10; ``fast`` =
lr 1e-3, patience 5; ``fast10`` = lr 1e-3, patience 10.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCHEDULES = {"build": {"learning_rate": 1e-4, "max_epochs": 400, "patience": 25},
             "build-p10": {"learning_rate": 1e-4, "max_epochs": 400, "patience": 10},
             "mid": {"learning_rate": 3e-4, "max_epochs": 400, "patience": 10},
             "fast": {"learning_rate": 1e-3, "max_epochs": 400, "patience": 5},
             "fast10": {"learning_rate": 1e-3, "max_epochs": 400, "patience": 10}}


def _val(res, name: str) -> np.ndarray:
    """Per-query nDCG of system ``name`` on the validation queries (NaN where not scored)."""
    v = np.asarray(res.scores[name]["ndcg"], dtype=np.float64).copy()
    v[~((res.split == "val") & res.mask[name])] = np.nan
    return v


def _paired(rows: dict, ref: str) -> dict:
    """Mean paired difference (row - ref) with its 95% bootstrap interval, per metric."""
    from talkrec.metrics import bootstrap_ci

    out = {}
    for name, row in rows.items():
        if name == ref or ref not in rows:
            continue
        out[name] = {m: [round(x, 4) for x in bootstrap_ci(np.asarray(row["per_query"][m]) -
                                                             np.asarray(rows[ref]["per_query"][m]))]
                     for m in row["per_query"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "eval-minilm.yaml"))
    ap.add_argument("--schedules", nargs="+", default=["build", "fast"], choices=sorted(SCHEDULES))
    ap.add_argument("--int8-schedules", nargs="*", default=["build"], choices=sorted(SCHEDULES),
                    help="fusion schedules also trained on the int8 text matrix")
    ap.add_argument("--no-text", action="store_true", help="skip the text-only rows")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    sys.path.insert(0, str(REPO / "src"))
    data = _prepare(a)
    out: dict = {"load_1_5_15": os.getloadavg(), "int8_encode_seconds": data["t_int8"],
                 "int8_vs_fp32_cosine": data["cos"], "text": {}, "fusion": {}}
    if not a.no_text:
        out["text"] = {name: _text_row(data, T) for name, T in (("fp32", data["T32"]), ("int8", data["T8"]))}
    for tname, sname in [("fp32", s) for s in a.schedules] + [("int8", s) for s in a.int8_schedules]:
        out["fusion"][f"{tname}/{sname}"] = _fusion_row(data, tname, sname)
        print(tname, sname, {k: v for k, v in out["fusion"][f"{tname}/{sname}"].items() if k != "per_query"},
              flush=True)
    out["paired_vs_reference"] = {"text": _paired(out["text"], "fp32"), "fusion": _paired(out["fusion"], "fp32/build")}
    shown = {k: v for k, v in out.items() if k not in ("text", "fusion")}
    shown["text"] = {k: {m: v for m, v in r.items() if m != "per_query"} for k, r in out["text"].items()}
    shown["fusion"] = {k: {m: v for m, v in r.items() if m != "per_query"} for k, r in out["fusion"].items()}
    print(json.dumps(shown, indent=2))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=2))


def _prepare(a: argparse.Namespace) -> dict:
    """The evaluation's music slice, its fp32 (and int8) text matrices, CF, audio, queries."""
    from talkrec.config import resolve_path
    from talkrec.encoders.text import TextEncoder
    from talkrec.evaluation import baselines as B
    from talkrec.evaluation.common import Timer
    from talkrec.evaluation.music import _load
    from talkrec.evaluation.queries import MUSIC_TEMPLATES
    from talkrec.evaluation.retrieval import queryset
    from talkrec.evaluation.runner import load_config

    cfg = load_config(a.config)
    cfg["text_models"] = ["minilm"]
    seed, mc = int(cfg["seed"]), cfg["music"]
    d = _load(cfg, Timer())
    T32 = d.T["minilm"]
    t0 = time.perf_counter()
    need_int8 = not a.no_text or bool(a.int8_schedules)
    T8 = TextEncoder("minilm", int8_passages=True).encode(d.texts, kind="passage", batch_size=64) if need_int8 else T32
    t_int8 = round(time.perf_counter() - t0, 1)
    cos = (T8 * T32).sum(1)
    C = B.ALSModel(d.cat.interactions, d.ids, B.ALSParams(64, 10.0, 1.0, int(mc["als"]["iterations"])),
                   random_state=seed).item_factors
    A = B.standardize(d.cat.vectors["audio"].aligned(d.ids))
    qs, _ = queryset(resolve_path(mc["retrieval"]["queryset"], cfg), d.cat, mc["retrieval"], MUSIC_TEMPLATES, seed,
                     d.ids, "lastfm", write=True)
    return {"cfg": cfg, "d": d, "T32": T32, "T8": T8, "t_int8": t_int8, "C": C, "A": A, "qs": qs,
            "cos": {"min": float(cos.min()), "p1": float(np.percentile(cos, 1)), "mean": float(cos.mean())}}


def _text_row(data: dict, T: np.ndarray) -> dict:
    from talkrec.evaluation.retrieval import retrieval
    from talkrec.evaluation.tasks import item_to_item

    cfg, d = data["cfg"], data["d"]
    rec = item_to_item(d.ids, d.related, d.split, {"t": T}, k=int(cfg["k"]))
    ret, _ = retrieval(data["qs"], d.ids, d.cat.tags, cfg["music"]["retrieval"], cfg, d.texts, {"minilm": T}, {},
                       d.pop, "t")
    pq = {"rec": _val(rec, "t"), "retrieval": _val(ret, "TEXT minilm")}
    return {"val_rec_ndcg": float(np.nanmean(pq["rec"])), "val_retrieval_ndcg": float(np.nanmean(pq["retrieval"])),
            "per_query": {k: v.tolist() for k, v in pq.items()}}


def _fusion_row(data: dict, tname: str, sname: str) -> dict:
    from talkrec.evaluation.common import fit_fusion
    from talkrec.evaluation.retrieval import retrieval
    from talkrec.evaluation.tasks import item_to_item

    cfg, d = data["cfg"], data["d"]
    inputs = {"text": data["T32"] if tname == "fp32" else data["T8"], "cf": data["C"], "audio": data["A"]}
    t0 = time.perf_counter()
    f = fit_fusion(inputs, {**cfg["fusion"]["base"], "batch_size": 512}, {"name": sname, **SCHEDULES[sname]},
                   int(cfg["seed"]))
    secs = time.perf_counter() - t0
    M = f.transform(inputs)
    rec = item_to_item(d.ids, d.related, d.split, {"m": M}, k=int(cfg["k"]))
    ret, _ = retrieval(data["qs"], d.ids, d.cat.tags, cfg["music"]["retrieval"], cfg, d.texts,
                       {"minilm": inputs["text"]}, {"m": (f, M)}, d.pop, "m")
    pq = {"rec": _val(rec, "m"), "retrieval": _val(ret, "m"), "hybrid_bm25": _val(ret, "HYBRID m + TEXT minilm + BM25")}
    return {"epochs": len(f.history_), "best_epoch": f.best_epoch_, "seconds": round(secs, 1),
            **{f"val_{k}_ndcg": float(np.nanmean(v)) for k, v in pq.items()},
            "per_query": {k: v.tolist() for k, v in pq.items()}}


if __name__ == "__main__":
    main()
