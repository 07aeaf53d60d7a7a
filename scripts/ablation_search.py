"""Hybrid search of the product's space under other RRF weights (issue 12; docs/evaluation.md).

Loads the space ``talkrec evaluate`` built on all interactions (``<cache_dir>/product/<ds>-<name>/full``:
run the evaluation first) and scores ``Space.search`` on the evaluation's tag queries for each
(text, BM25) weight pair, validation and test means:

    python scripts/ablation_search.py movies --weights 1,4 0.5,4 1,8 2,4
    python scripts/ablation_search.py movies --weights 1,4 --depths 200 500 2000   # RRF depth, 95% CI
    python scripts/ablation_search.py music --weights 2,2 1,4 --bm25 1.5,0.75 1.2,0.1   # BM25 k1, b
    python scripts/ablation_search.py music --bm25 2,0.02 --fields description description+genre+decade+place+mood
    python scripts/ablation_search.py music --space spaces/lastfm --weights 0.5,4 --modes lexical --pairs off on
    python scripts/ablation_search.py movies --space spaces/movielens --weights 1,4 --modes lexical --stemmer none english
    python scripts/ablation_search.py movies --space spaces/movielens --weights 1,4 --fields genres+tags --name-weights 0 1 2
    python scripts/ablation_search.py movies --space spaces/movielens --weights 1,4 --stopwords none film+films+movie+movies
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from talkrec.config import resolve_path
from talkrec.metrics import bootstrap_ci
from talkrec.evaluation.common import Timer, val_mean
from talkrec.evaluation.product import ProductBuilder, search_ranker
from talkrec.evaluation.queries import MOVIE_TEMPLATES, MUSIC_TEMPLATES, item_tag_sets, relevant_items
from talkrec.evaluation.retrieval import queryset
from talkrec.evaluation.runner import load_config
from talkrec.evaluation.tasks import text_retrieval
from talkrec.space import Space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", choices=["music", "movies"])
    ap.add_argument("--config", default="configs/eval-minilm.yaml")
    ap.add_argument("--weights", nargs="+", default=["1,4", "2,2"])
    ap.add_argument("--build", default=None, help="name:key=value,... build this variant on all interactions "
                    "instead of loading the evaluation's space (e.g. paper:fusion=paper)")
    ap.add_argument("--depths", nargs="*", type=int, default=[], help="also the first weight pair at these RRF depths")
    ap.add_argument("--modes", nargs="*", default=[], help="also score these single modes (multi, text, lexical)")
    ap.add_argument("--bm25", nargs="*", default=[], help="k1,b pairs: every row again with these BM25 parameters "
                    "(search.bm25_k1 / search.bm25_b; the space's own when not given)")
    ap.add_argument("--fields", nargs="*", default=[], help="a+b+c field sets BM25 indexes (search.bm25_fields), "
                    "e.g. description+genre+decade")
    ap.add_argument("--pairs", nargs="*", default=[], choices=["on", "off"],
                    help="BM25 with / without word-pair terms (search.bm25_pairs): every row again with each")
    ap.add_argument("--stemmer", nargs="*", default=[], help="BM25 stemming (search.bm25_stemmer): every row "
                    "again with each, e.g. none english")
    ap.add_argument("--stopwords", nargs="*", default=[], help="the space's own BM25 stopwords (search.bm25_stopwords) "
                    "as a+b+c, or none: every row again with each")
    ap.add_argument("--name-weights", nargs="*", default=[], type=float, help="RRF weights of the names list "
                    "(search.hybrid_name_weight; 0: none): every row again with each")
    ap.add_argument("--known-items", type=int, default=0, help="also N items' names as queries (a seeded sample; "
                    "the item itself is the answer): hit@1, hit@10 and MRR@10 of Space.search, validation / test "
                    "halves by the sample's order")
    ap.add_argument("--space", default=None, help="a built space to load instead of the evaluation's "
                    "(e.g. spaces/lastfm: `talkrec build configs/lastfm.yaml` is the evaluation's full music space)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config)
    k, seed = int(cfg["k"]), int(cfg["seed"])
    if args.dataset == "music":
        from talkrec.evaluation.music import _load
        templates, name = MUSIC_TEMPLATES, "lastfm"
    else:
        from talkrec.evaluation.movies import _load
        templates, name = MOVIE_TEMPLATES, "movielens"
    d = _load(cfg, Timer())
    rc = cfg[args.dataset]["retrieval"]
    qs, _ = queryset(resolve_path(rc["queryset"], cfg), d.cat, rc, templates, seed, d.ids, name, write=True)
    it = item_tag_sets(d.cat.tags, min_weight=float(rc["min_weight"]), categories=rc.get("categories"))
    idx = {x: i for i, x in enumerate(d.ids.tolist())}
    rel = [{idx[i] for i in relevant_items(q.tags, it) if i in idx} for q in qs]
    keep = [j for j, r in enumerate(rel) if r]
    qs, rel = [qs[j] for j in keep], [rel[j] for j in keep]
    pb = ProductBuilder(cfg, args.dataset)
    if args.space:
        space = Space.load(args.space)
    elif args.build:
        from ablation_movies import parse_variant
        vname, over = parse_variant(args.build)
        space = pb.build(f"search-{vname}", pb.catalog(d.cat), **over)
    else:
        space = Space.load(Path(pb.root) / "full")
    base = dict(space.config.get("search", {}))
    for bm, fields, pairs, stem, nw, stop in [(bm, f, p, st, nw, sw) for bm in (args.bm25 or [None])
                                              for f in (args.fields or [None]) for p in (args.pairs or [None])
                                              for st in (args.stemmer or [None]) for nw in (args.name_weights or [None])
                                              for sw in (args.stopwords or [None])]:
        k1b = {} if bm is None else dict(zip(("bm25_k1", "bm25_b"), (float(x) for x in bm.split(","))))
        tag = "" if bm is None else f"bm25 k1 {k1b['bm25_k1']:g} b {k1b['bm25_b']:g}, "
        if fields is not None:
            k1b["bm25_fields"] = fields.split("+")
            tag += f"fields {fields}, "
        if pairs is not None:
            k1b["bm25_pairs"] = pairs == "on"
            tag += f"pairs {pairs}, "
        if stem is not None:
            k1b["bm25_stemmer"] = stem
            tag += f"stemmer {stem}, "
        if stop is not None:
            k1b["bm25_stopwords"] = [] if stop == "none" else stop.split("+")
            tag += f"stopwords {stop}, "
        if nw is not None:
            k1b["hybrid_name_weight"] = nw
            tag += f"names {nw:g}, "
        if args.known_items:
            space.config["search"] = {**base, **k1b, "mode": "hybrid"}
            print(f"{args.dataset} {tag}known items: {known_items(space, args.known_items, seed)}", flush=True)
        for mode in args.modes:
            space.config["search"] = {**base, **k1b, "mode": mode}
            r = text_retrieval([q.qid for q in qs], [q.split for q in qs], rel,
                               {"h": search_ranker(space, d.ids, [q.text for q in qs], k)}, k=k)
            print(f"{args.dataset} {tag}mode {mode}: val {val_mean(r, 'h'):.4f} "
                  f"test {r.scores['h']['ndcg'][r.split == 'test'].mean():.4f}", flush=True)
        grid = [(w, None) for w in args.weights] + [(args.weights[0], d) for d in args.depths]
        for w, depth in grid:
            tw, bw = (float(x) for x in w.split(","))
            space.config["search"] = {**base, **k1b, "mode": "hybrid", "hybrid_text_weight": tw,
                                      "hybrid_bm25_weight": bw, **({} if depth is None else {"rrf_depth": depth})}
            r = text_retrieval([q.qid for q in qs], [q.split for q in qs], rel,
                               {"h": search_ranker(space, d.ids, [q.text for q in qs], k)}, k=k)
            m, lo, hi = bootstrap_ci(r.scores["h"]["ndcg"][r.split == "test"])
            print(f"{args.dataset} {tag}text {tw:g} bm25 {bw:g} depth {space.config['search'].get('rrf_depth', 1000)}: "
                  f"val {val_mean(r, 'h'):.4f} test {m:.4f} [{lo:.4f}, {hi:.4f}]", flush=True)


def known_items(space: Space, n: int, seed: int) -> str:
    """Each of ``n`` seeded items' name (up to a " (", lower-cased: as a user types a title) as a
    ``Space.search`` query whose one answer is the item: hit@1, hit@10, MRR@10 over the first
    half (validation) and the second (test)."""
    import numpy as np

    ids = np.asarray(space.index.ids)
    pick = np.random.default_rng(seed).choice(len(ids), size=min(n, len(ids)), replace=False)
    ranks = []
    for p in pick.tolist():
        name = str(space.item(str(ids[p])).get("name") or "").split(" (")[0].lower()
        got = [h.item_id for h in space.search(name, k=10)] if name.strip() else []
        ranks.append(got.index(str(ids[p])) + 1 if str(ids[p]) in got else 0)
    out = []
    for half, r in (("val", ranks[:len(ranks) // 2]), ("test", ranks[len(ranks) // 2:])):
        r = np.asarray(r)
        out.append(f"{half} hit@1 {np.mean(r == 1):.3f} hit@10 {np.mean(r > 0):.3f} "
                   f"MRR@10 {np.mean(np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0)):.3f}")
    return "; ".join(out)


if __name__ == "__main__":
    main()
