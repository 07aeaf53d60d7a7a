"""Ablation of the product on MovieLens held-out users (issue 12; docs/evaluation.md).

Builds the movies space of each tuning fold (the build config of the evaluation config, the
fold's users removed: the protocol of ``talkrec evaluate``) for each build variant given, and
scores every ``Space.recommend`` strategy on the fold's users (validation and test means):

    python scripts/ablation_movies.py                                   # the build config as is
    python scripts/ablation_movies.py lr3e-4:fusion.learning_rate=3e-4,fusion.patience=10

A variant is ``name:key=value,...`` with dotted build-config keys. Writes
``runs/ablation-movies.json`` and prints one line per (variant, strategy).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import yaml

from talkrec.config import merge
from talkrec.evaluation.coldstart import cold_catalog
from talkrec.evaluation.common import Timer, val_mean
from talkrec.evaluation.movies import _load
from talkrec.evaluation.product import ProductBuilder, recommend_ranker, vectors_aligned
from talkrec.evaluation.runner import load_config
from talkrec.evaluation.tasks import concat_results, user_recommendation

STRATEGIES: dict[str, dict[str, Any]] = {
    "knn (fused mean vector)": {"strategy": "knn"},
    "blend fused+EASE+ALS (default)": {"strategy": "blend", "weights": {"fused": 1.0, "ease": 1.0, "als": 1.0}},
    "blend EASE+ALS (CF only)": {"strategy": "blend", "weights": {"fused": 0.0, "ease": 1.0, "als": 1.0}},
    "blend fused+EASE": {"strategy": "blend", "weights": {"fused": 1.0, "ease": 1.0, "als": 0.0}},
    "blend 0.5 fused+EASE+ALS": {"strategy": "blend", "weights": {"fused": 0.5, "ease": 1.0, "als": 1.0}},
    "blend 2 fused+EASE+ALS": {"strategy": "blend", "weights": {"fused": 2.0, "ease": 1.0, "als": 1.0}},
    "rrf fused+EASE w 2": {"strategy": "rrf", "weights": {"ease": 2.0}},
    "rrf fused+EASE w 4": {"strategy": "rrf", "weights": {"ease": 4.0}},
    "best_score (nearest history item)": {"strategy": "best_score"},
}


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    name, _, rest = text.partition(":")
    over: dict[str, Any] = {}
    for kv in filter(None, rest.split(",")):
        key, _, val = kv.partition("=")
        node = over
        *head, last = key.split(".")
        for h in head:
            node = node.setdefault(h, {})
        v = yaml.safe_load(val)
        if isinstance(v, str):                 # YAML 1.1 reads 3e-4 as a string
            try:
                v = float(v)
            except ValueError:
                pass
        node[last] = v
    return name, over


def arguments(doc: str, out: str) -> argparse.ArgumentParser:
    """The options every product ablation takes."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("variants", nargs="*", help="build variants name:key=value,...")
    ap.add_argument("--config", default="configs/eval-minilm.yaml")
    ap.add_argument("--out", default=out)
    return ap


def setup(args: argparse.Namespace, ds: str, load: Any) -> tuple[dict[str, Any], Any, ProductBuilder, Any]:
    """(evaluation config, the dataset's evaluation data, its product builder, the build's catalog)."""
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config)
    d = load(cfg, Timer())
    pb = ProductBuilder(cfg, ds)
    return cfg, d, pb, pb.catalog(d.cat)


def main() -> None:
    ap = arguments(__doc__, "runs/ablation-movies.json")
    ap.add_argument("--folds", type=int, nargs="*", default=[0, 1])
    args = ap.parse_args()
    cfg, d, pb, base = setup(args, "movies", _load)
    k = int(cfg["k"])
    rows = []
    for vname, over in [("build", {})] + [parse_variant(v) for v in args.variants]:
        parts: dict[str, list] = {s: [] for s in STRATEGIES}
        t0 = time.perf_counter()
        epochs = []
        for f in args.folds:
            uq = d.fold_queries(f)
            space = pb.build(f"abl-{vname}-fold{f}", cold_catalog(base, [], users=uq.users), **over)
            epochs.append(len(space.fusion.history_))
            for sname, scfg in STRATEGIES.items():
                space.config["recommend"] = merge(space.config["recommend"], scfg)
                if scfg["strategy"] == "knn":
                    r = user_recommendation(uq, {sname: vectors_aligned(space, d.ids)}, k=k)
                else:
                    r = user_recommendation(uq, {}, k=k, rankers={sname: recommend_ranker(space, d.ids, k)})
                parts[sname].append(r)
            space.close()
        secs = round(time.perf_counter() - t0, 1)
        for sname, ps in parts.items():
            r = concat_results(ps)
            test = r.scores[sname]["ndcg"][r.split == "test"]
            row = {"variant": vname, "overrides": over, "strategy": sname, "val": val_mean(r, sname),
                   "test": float(test.mean()), "n_val": int((r.split == "val").sum()), "n_test": int(len(test)),
                   "fusion_epochs": epochs, "seconds_builds": secs}
            rows.append(row)
            print(f"{vname:12s} {sname:34s} val {row['val']:.4f} test {row['test']:.4f} epochs {epochs} {secs}s",
                  flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
