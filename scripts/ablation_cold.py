"""The MovieLens cold start of ``talkrec evaluate`` alone (issue 12; docs/evaluation.md): 10% of
the movies with positives held out of CF on the tuning folds, re-added by ``Space.add_items``,
each ``movies.cold_start.variants`` (or ``--variants``, a JSON object of ``{name: recommend
settings}``) scored on the cold targets and on every target. The warm fold spaces are the
evaluation's (built here when it has not run):

    python scripts/ablation_cold.py [--config configs/eval-minilm.yaml] [--out runs/ablation-cold.json]
        [--variants '{"prior": {"cold_prior": ["tmdb_votes"]}}'] [--folds 10]
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from talkrec.evaluation.coldstart import movies_cold_start
from talkrec.evaluation.common import Timer
from talkrec.evaluation.movies import _load
from talkrec.evaluation.product import ProductBuilder
from talkrec.evaluation.runner import load_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/eval-minilm.yaml")
    ap.add_argument("--out", default="runs/ablation-cold.json")
    ap.add_argument("--variants", type=json.loads, default=None, help="JSON {name: recommend settings}")
    ap.add_argument("--folds", type=int, default=None, help="folds to run (movies.cold_start.folds otherwise)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config)
    if args.folds is not None:
        cfg["movies"]["cold_start"]["folds"] = args.folds
    if args.variants is not None:
        cfg["movies"]["cold_start"]["variants"] = args.variants
    d = _load(cfg, Timer())
    pb = ProductBuilder(cfg, "movies")
    out = movies_cold_start(cfg, d, pb, Timer())
    for name, r in (out or {}).items():
        if isinstance(r, dict) and isinstance(r.get("test"), dict):
            print(f"{name:40s} val {r['val']['mean']:.4f} test {r['test']['mean']:.4f} "
                  f"[{r['test']['lo']:.4f}, {r['test']['hi']:.4f}] n {r['val']['n']}/{r['test']['n']}", flush=True)
    print("ratio", (out or {}).get("ratio"))
    Path(args.out).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
