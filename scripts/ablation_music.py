"""Ablation of the product on Last.fm artist-to-artist queries (issue 12; docs/evaluation.md).

Builds the music space (the build config of the evaluation config: the protocol of
``talkrec evaluate``) for each build variant given and scores every ``Space.similar``
strategy on the AllMusic query artists (validation and test means):

    python scripts/ablation_music.py                                    # the build config as is
    python scripts/ablation_music.py w1:modality_weights.audio=1.0 paper:fusion=paper
    python scripts/ablation_music.py --lexical          # the item's BM25 list: weights, max_df, max_terms

A variant is ``name:key=value,...`` with dotted build-config keys (``fusion=paper``: the
paper's setup). Writes ``runs/ablation-music.json``; one line per (variant, strategy).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ablation_movies import arguments, parse_variant, setup

from talkrec.config import merge
from talkrec.evaluation.common import val_mean
from talkrec.evaluation.music import _load
from talkrec.evaluation.product import lexical_ranker, similar_ranker, vectors_aligned
from talkrec.evaluation.tasks import item_to_item

STRATEGIES: dict[str, dict[str, Any]] = {
    "knn (fused space)": {"strategy": "knn"},
    "rrf fused+EASE w 0.25": {"strategy": "rrf", "cf_weight": 0.25, "lexical_weight": 0.0},
    "rrf fused+EASE w 0.5": {"strategy": "rrf", "cf_weight": 0.5, "lexical_weight": 0.0},
    "rrf fused+EASE w 1": {"strategy": "rrf", "cf_weight": 1.0, "lexical_weight": 0.0},
}
#: ``--lexical``: the item's BM25 list in the RRF (similar.lexical_*: weight, max_df, max_terms)
LEXICAL: dict[str, dict[str, Any]] = {
    **{f"rrf fused+EASE+BM25 w {w}, max_df {df}, terms {t or 'all'}":
       {"strategy": "rrf", "cf_weight": 0.5, "lexical_weight": w, "lexical_max_df": df, "lexical_max_terms": t}
       for w, df, t in ((0.5, 1.0, 0), (1.0, 1.0, 0), (1.5, 1.0, 0), (2.0, 1.0, 0), (3.0, 1.0, 0),
                        (1.5, 0.5, 0), (1.5, 0.2, 0), (1.5, 0.1, 0), (1.5, 0.05, 0), (1.0, 0.2, 0), (2.0, 0.2, 0),
                        (2.0, 0.2, 10), (2.0, 0.2, 20), (2.0, 0.2, 30), (2.0, 0.2, 40), (2.0, 0.2, 50), (2.0, 0.2, 60),
                        (1.5, 0.2, 50), (2.5, 0.2, 50), (2.0, 0.3, 50))},
    **{f"BM25 list alone, max_df {df}": {"lexical_only": True, "lexical_max_df": df} for df in (1.0, 0.2, 0.1)},
}


def main() -> None:
    ap = arguments(__doc__, "runs/ablation-music.json")
    ap.add_argument("--no-default", action="store_true", help="skip the build config as is")
    ap.add_argument("--strategies", nargs="*", default=None, help="only these strategies (names as printed)")
    ap.add_argument("--lexical", action="store_true", help="the grid of the item's BM25 list instead")
    args = ap.parse_args()
    grid = LEXICAL if args.lexical else STRATEGIES
    cfg, d, pb, cat = setup(args, "music", _load)
    k = int(cfg["k"])
    rows = []
    variants = ([] if args.no_default else [("build", {})]) + [parse_variant(v) for v in args.variants]
    for vname, over in variants:
        t0 = time.perf_counter()
        space = pb.build(f"abl-{vname}", cat, **over)
        secs = round(time.perf_counter() - t0, 1)
        for sname, scfg in grid.items():
            if args.strategies is not None and sname not in args.strategies:
                continue
            if not scfg.get("lexical_only"):
                space.config["similar"] = merge(space.config.get("similar", {}), scfg)
            if scfg.get("lexical_only"):
                ranker = lexical_ranker(space, d.ids, k, max_df=scfg["lexical_max_df"])
                r = item_to_item(d.ids, d.related, d.split, {}, k=k, rankers={sname: ranker})
            elif scfg["strategy"] == "knn":
                r = item_to_item(d.ids, d.related, d.split, {sname: vectors_aligned(space, d.ids)}, k=k)
            else:
                r = item_to_item(d.ids, d.related, d.split, {}, k=k, rankers={sname: similar_ranker(space, d.ids, k)})
            test = r.scores[sname]["ndcg"][r.split == "test"]
            row = {"variant": vname, "overrides": over, "strategy": sname, "val": val_mean(r, sname),
                   "test": float(test.mean()), "n_val": int((r.split == "val").sum()), "n_test": int(len(test)),
                   "fusion_epochs": len(space.fusion.history_), "seconds_build": secs}
            rows.append(row)
            print(f"{vname:12s} {sname:32s} val {row['val']:.4f} test {row['test']:.4f} "
                  f"epochs {row['fusion_epochs']} {secs}s", flush=True)
        space.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
