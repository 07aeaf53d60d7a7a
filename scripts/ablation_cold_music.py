"""The music cold start of ``talkrec evaluate`` alone, over a grid of ``similar`` settings for
cold artists (issue 12; docs/evaluation.md): 10% of the AllMusic query artists held out of CF,
re-added by ``Space.add_items``, each setting scored with those artists as queries
(``Space.similar``), validation and test means:

    python scripts/ablation_cold_music.py [--config configs/eval-minilm.yaml] [--out runs/ablation-cold-music.json]
    python scripts/ablation_cold_music.py --lexical     # only the rows with the item's BM25 list

The warm side (the same artists in the full space) is ``talkrec evaluate``'s ``music.cold_start``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ablation_movies import arguments, setup

from talkrec.config import merge
from talkrec.evaluation.coldstart import cold_catalog, draw_cold, readd_items
from talkrec.evaluation.music import _load
from talkrec.evaluation.product import similar_ranker
from talkrec.evaluation.tasks import item_to_item

OFF = {"lexical_weight": 0.0}           # the rows before the item's BM25 list
GRID = [{"cold_match": "fused", "cold_neighbors": 20, "cold_weight": 0.25, **OFF}] + [
    {"cold_match": m, "cold_neighbors": n, "cold_weight": w, **OFF}
    for m, ws in (("content", (0.25, 0.5, 1.0)), ("fused", (0.5,))) for n in (10, 20, 40) for w in ws] + [
    # + the cold item's own list by content (similar.cold_content_weight)
    {"cold_match": "content", "cold_neighbors": n, "cold_weight": w, "cold_content_weight": c, **OFF}
    for n, w, c in ((20, 0.5, 0.125), (20, 0.5, 0.25), (20, 0.5, 0.375), (20, 0.5, 0.5), (20, 0.5, 1.0),
                    (20, 0.25, 0.25), (20, 0.75, 0.25), (40, 0.5, 0.25))]
#: + the item's BM25 list (similar.lexical_*) beside the configured cold settings (``--lexical``: these alone)
LEXICAL = [{"cold_match": "content", "cold_neighbors": 20, "cold_weight": 0.5, "cold_content_weight": 0.25,
            "lexical_weight": w, "lexical_max_df": df, "lexical_max_terms": t}
           for w, df, t in ((0.25, 1.0, 0), (0.5, 1.0, 0), (1.0, 1.0, 0), (1.5, 1.0, 0), (2.0, 1.0, 0), (3.0, 1.0, 0),
                            (2.0, 0.2, 50))]


def main() -> None:
    ap = arguments(__doc__, "runs/ablation-cold-music.json")
    ap.add_argument("--lexical", action="store_true", help="only the rows with the item's BM25 list")
    args = ap.parse_args()
    cfg, d, pb, cat = setup(args, "music", _load)
    k, seed = int(cfg["k"]), int(cfg["seed"])
    cold = draw_cold(d.related, float((cfg["music"].get("cold_start") or {}).get("fraction", 0.1)), seed)
    space = pb.build("cold", cold_catalog(cat, cold))
    readd_items(space, cat, cold)
    rel = {q: d.related[q] for q in cold}
    base = dict(space.config.get("similar", {}))
    rows = []
    for setting in (LEXICAL if args.lexical else GRID + LEXICAL):
        space.config["similar"] = merge(base, setting)
        name = ", ".join(f"{a}={b}" for a, b in setting.items())
        r = item_to_item(d.ids, rel, d.split, {}, k=k, rankers={name: similar_ranker(space, d.ids, k)})
        v = r.scores[name]["ndcg"]
        row = {**setting, "val": float(np.nanmean(v[r.split == "val"])), "test": float(np.nanmean(v[r.split == "test"]))}
        rows.append(row)
        print(f"{name:55s} val {row['val']:.4f} test {row['test']:.4f}", flush=True)
    space.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
