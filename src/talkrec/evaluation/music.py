"""The music half of the evaluation (Last.fm-2k + Spotify descriptors + AllMusic links).

:func:`run_music` in named steps: load the slice and embed the descriptions, search ALS on
validation queries, choose the fusion settings on validation queries of both tasks, the
optional GEN view, artist-to-artist recommendation for every system, text retrieval, and
the paper-004 analyses (:func:`music_analyses`).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import resolve_path
from . import baselines as B
from .coldstart import music_cold_start
from .common import Timer, fit_fusion, param_grid_draws, subset_catalog, val_mean
from .embed import embed_texts
from .product import ProductBuilder, inputs_aligned, lexical_ranker, similar_ranker, vectors_aligned
from .queries import MUSIC_TEMPLATES
from .retrieval import queryset, retrieval
from .splits import check_both_splits, split_val_test
from .tasks import TaskResult, item_to_item, olga_ground_truth

log = logging.getLogger(__name__)

__all__ = ["music_analyses", "run_music"]


@dataclass
class MusicData:
    """The (sliced) catalog, its descriptions and text embeddings, the AllMusic ground truth."""

    cat: Any
    related: dict[str, set[str]]
    olga_report: dict[str, int]
    ids: np.ndarray
    texts: list[str]
    T: dict[str, np.ndarray]          # text model -> item matrix
    split: dict[str, str]             # query artist -> "val" | "test"
    pop: np.ndarray                   # listeners
    plays: np.ndarray


def run_music(cfg: dict[str, Any], timer: Timer) -> dict[str, Any]:
    """Every music system on artist-to-artist recommendation and tag-query retrieval; the
    MULTI rows come from the product (:mod:`.product`): a space built from the music build
    config, queried with ``Space.similar`` and ``Space.search``."""
    mc, seed, k = cfg["music"], int(cfg["seed"]), int(cfg["k"])
    pb = ProductBuilder(cfg, "music")
    d = _load(cfg, timer, pb)
    base = pb.catalog(d.cat)
    als_params, als, als_trials = _als_search(cfg, d, timer)
    ease, ease_trials = _ease_search(cfg, d, timer)
    C = als.item_factors
    n = len(d.ids)
    audio = d.cat.vectors["audio"].aligned(d.ids) if "audio" in d.cat.vectors else np.full((n, 1), np.nan, np.float32)
    A = B.standardize(audio)
    has_audio = B.present(A)
    fm = cfg["fusion_text_model"]

    t0 = time.perf_counter()
    space = pb.build("full", base)
    timer("music/product-build", t0)
    fusion, MULTI, inputs = space.fusion, vectors_aligned(space, d.ids), inputs_aligned(space, d.ids)
    weights = space.config.get("modality_weights")
    rc = mc["retrieval"]
    qpath = resolve_path(rc["queryset"], cfg) if not cfg["small_mode"] else None
    qs, qmeta = queryset(qpath or Path("/nonexistent"), d.cat, rc, MUSIC_TEMPLATES, seed, d.ids, "lastfm",
                         write=qpath is not None)
    multi_systems: dict[str, tuple[Any, np.ndarray]] = {"MULTI TEMPLATE": (fusion, MULTI)}
    gen_info, gen_note = None, ""
    if mc.get("gen"):
        f_gen, M_gen, gen_info, gen_note = _gen_view(cfg, d, inputs, fusion.config(), timer)
        multi_systems["MULTI TEMPLATE+GEN"] = (f_gen, M_gen)
    mods = {"cf": C, "text": d.T[fm], "audio": A}
    sim = space.config.get("similar", {})
    product = {"MULTI talkrec (Space.similar)": similar_ranker(space, d.ids, k),
               "EASE": lambda qi, ex: B.ease_ranking(ease, [[q] for q in qi], k, ex),
               # the item's own BM25 text as the query (Elasticsearch's more_like_this): whole, and
               # as Space.similar reads it (the similar.lexical_* settings)
               "BM25 more-like-this": lexical_ranker(space, d.ids, k),
               "BM25 more-like-this (similar.lexical_* terms)": lexical_ranker(
                   space, d.ids, k, max_df=float(sim.get("lexical_max_df", 1.0)),
                   max_terms=int(sim.get("lexical_max_terms", 0)))}
    rec = _item_to_item(cfg, d, multi_systems, mods, has_audio, timer, product)
    t0 = time.perf_counter()
    ret, ret_info = retrieval(qs, d.ids, d.cat.tags, rc, cfg, d.texts, {m: d.T[m] for m in cfg["text_models"]},
                              multi_systems, d.pop, "music-retrieval", spaces={"talkrec (Space.search)": space})
    for res in (rec, ret):
        if gen_note:
            res.notes["MULTI TEMPLATE+GEN"] = gen_note
    timer("music/retrieval", t0)
    cold = music_cold_start(cfg, d, pb, space, timer)

    t0 = time.perf_counter()
    extra = music_analyses(cfg, d.ids, rec, inputs, fusion, mods, d.plays, seed, k, d.cat, weights)
    timer("music/analyses", t0)
    return {"rec": rec, "ret": ret, "n_items": n, "ret_info": ret_info, "queryset_meta": qmeta,
            "item_users": d.pop, "n_users": int(d.cat.interactions["user_id"].nunique()),   # novelty@k
            "dataset": {**d.olga_report, "artists": n, "with_audio": int(has_audio.sum()),
                        "with_cf": int(B.present(C).sum()),
                        "with_tags": int((d.cat.items["tags"].str.len() > 0).sum()),
                        "query_split": {s: sum(v == s for v in d.split.values()) for s in ("val", "test")}},
            "als": {"chosen": als_params.__dict__, "trials": als_trials}, "ease": ease_trials,
            "fusion": {"chosen": pb.settings(space), "history": fusion.history_},
            "cold_start": cold, "gen": gen_info, "analyses": extra}


def _load(cfg: Mapping[str, Any], timer: Timer, pb: ProductBuilder | None = None) -> MusicData:
    """Last.fm artists with AllMusic related artists (small mode: the query artists with the
    most relations, and those), their template descriptions and text embeddings. ``pb``: its
    catalog is loaded (and checked against the query artists) before the embeddings."""
    from ..data.datasets import load_lastfm
    from ..descriptions import TemplateDescriber

    mc, seed = cfg["music"], int(cfg["seed"])
    data_root = resolve_path(cfg["data_root"], cfg)
    t0 = time.perf_counter()
    cat = load_lastfm(data_root / "lastfm-hetrec2011-2k")
    related, olga_rep = olga_ground_truth(cat.items, data_root / "olga-allmusic-partial")
    if mc.get("max_items"):
        n = int(mc["max_items"])
        top = sorted(related, key=lambda a: (-len(related[a]), a))[: n // 2]
        keep = set(top)
        for a in top:
            keep |= related[a]
        keep = set(sorted(keep, key=lambda a: (a not in top, a))[:n])
        cat = subset_catalog(cat, keep)
        related = {a: {b for b in r if b in keep} for a, r in related.items() if a in keep}
        related = {a: r for a, r in related.items() if r}
    if pb is not None:
        pb.catalog(cat, query_ids=list(related))   # a build config without the query artists fails now
    split = split_val_test(sorted(related), val_fraction=float(mc["val_fraction"]), random_state=seed)
    check_both_splits(split, what="query artists (with AllMusic relations)", where="music")
    ids = cat.item_ids
    desc = TemplateDescriber(**mc["template"]).describe(cat)
    texts = [desc[i] for i in ids]
    timer("music/load", t0)

    t0 = time.perf_counter()
    cache = resolve_path(cfg["cache_dir"], cfg)
    T = {m: embed_texts(texts, m, kind="passage", cache_dir=cache) for m in cfg["text_models"]}
    timer("music/text-embeddings", t0)
    return MusicData(cat, related, olga_rep, ids, texts, T, split, cat.items["listeners"].to_numpy(dtype=np.float64),
                     cat.items["plays"].to_numpy(dtype=np.float64))


def _ease_search(cfg: Mapping[str, Any], d: MusicData, timer: Timer) -> tuple[Any, list[dict[str, Any]]]:
    """EASE's lambda chosen on the validation query artists: (its model, trials)."""
    ec, k = cfg["music"]["ease"], int(cfg["k"])
    t0 = time.perf_counter()
    params = {kk: v for kk, v in ec.items() if kk != "regularization"}
    trials, best = [], None
    for lam in ec["regularization"]:
        model = B.fit_ease(d.cat.interactions, d.ids, regularization=float(lam), **params)
        r = item_to_item(d.ids, d.related, d.split, {}, k=k,
                         rankers={"E": lambda qi, ex, m=model: B.ease_ranking(m, [[q] for q in qi], k, ex)})
        v = val_mean(r, "E")
        trials.append({"regularization": float(lam), **params, "val_ndcg": v})
        log.info("music EASE lambda %s val nDCG %.4f", lam, v)
        if best is None or v > best[0]:
            best = (v, model)
    timer("music/ease-search", t0)
    return best[1], trials


def _als_search(cfg: Mapping[str, Any], d: MusicData, timer: Timer) -> tuple[B.ALSParams, B.ALSModel, list[dict]]:
    """ALS random search scored on the validation query artists: (best params, its model, trials)."""
    mc, seed, k = cfg["music"], int(cfg["seed"]), int(cfg["k"])
    t0 = time.perf_counter()
    trials, best = [], None
    for p in param_grid_draws(mc["als"], int(mc["als"]["n_trials"]), seed):
        als = B.ALSModel(d.cat.interactions, d.ids, p, random_state=seed)
        r = item_to_item(d.ids, d.related, d.split, {"CF": als.item_factors}, k=k)
        v = val_mean(r, "CF")
        trials.append({**p.__dict__, "val_ndcg": v})
        log.info("music ALS %s val nDCG %.4f", p, v)
        if best is None or v > best[0]:
            best = (v, p, als)
    timer("music/als-search", t0)
    return best[1], best[2], trials


def _gen_view(cfg: Mapping[str, Any], d: MusicData, inputs: Mapping[str, np.ndarray], chosen: Mapping[str, Any],
              timer: Timer) -> tuple[Any, np.ndarray, dict[str, Any], str]:
    """Paper 001 MULTI_TEMPLATE+GEN: LLM texts as a second text view, trained with the
    build's fusion settings ``chosen`` on the product's inputs.
    Returns (model, item matrix, GEN facts, the note shown next to the system)."""
    from .gen_view import gen_view

    seed, fm, ids = int(cfg["seed"]), cfg["fusion_text_model"], d.ids
    t0 = time.perf_counter()
    gcfg = cfg["music"]["gen"]
    gen, gen_info = gen_view(gcfg, ids.tolist(), dict(zip(ids.tolist(), d.texts)), d.cat.items["plays"].to_numpy(),
                             resolve_path(gcfg.get("cache") or Path(cfg["cache_dir"]) / "gen-lastfm.jsonl", cfg))
    has_gen = np.array([i in gen for i in ids.tolist()])
    G = np.full_like(inputs["text"], np.nan)
    if has_gen.any():
        G[has_gen] = embed_texts([gen[i] for i in ids[has_gen].tolist()], fm, kind="passage",
                                 cache_dir=resolve_path(cfg["cache_dir"], cfg))
    gen_inputs = {**inputs, "text": [inputs["text"], G]}
    f_gen = fit_fusion(gen_inputs, {}, {kk: v for kk, v in chosen.items()
                                        if kk not in ("random_state", "device", "n_threads", "verbose")}, seed)
    gen_info["with_gen_view"] = int(has_gen.sum())
    note = (f"GEN by {gen_info['backend'].get('model', '?')} for {int(has_gen.sum())} of {len(ids)} artists "
            f"(the {gen_info['asked']} most played asked)")
    timer("music/gen", t0)
    return f_gen, f_gen.transform(gen_inputs), gen_info, note


def _item_to_item(cfg: Mapping[str, Any], d: MusicData, multi_systems: Mapping[str, tuple[Any, np.ndarray]],
                  mods: Mapping[str, np.ndarray], has_audio: np.ndarray, timer: Timer,
                  product: Mapping[str, Any]) -> TaskResult:
    """Artist-to-artist kNN of every system (audio on the artists that have it), and the
    ranking functions ``product`` (the product's Space.similar, EASE)."""
    seed, k = int(cfg["seed"]), int(cfg["k"])
    t0 = time.perf_counter()
    emb: dict[str, np.ndarray] = {name: M for name, (_, M) in multi_systems.items()}
    for m in cfg["text_models"]:
        emb[f"TEXT {m}"] = d.T[m]
    emb["CF (ALS)"] = mods["cf"]
    emb["AUDIO (Spotify)"] = mods["audio"]
    emb["CONCAT CF+TEXT"] = B.concat_modalities({"cf": mods["cf"], "text": mods["text"]})
    emb["CONCAT CF+TEXT+AUDIO"] = B.concat_modalities(mods)
    emb["PCA-200 CF+TEXT+AUDIO"] = B.reduce_concat(mods, method="pca", random_state=seed)
    emb["RP-200 CF+TEXT+AUDIO"] = B.reduce_concat(mods, method="rp", random_state=seed)
    rankers = {**product, "Popularity": lambda qi, ex: B.popularity_ranking(d.pop, k, len(qi), ex)}
    rec = item_to_item(d.ids, d.related, d.split, emb, k=k, rankers=rankers,
                       restricted={"AUDIO (Spotify)": has_audio})
    timer("music/item2item", t0)
    return rec


# --------------------------------------------------------------------------- paper-004 analyses
def music_analyses(cfg: Mapping[str, Any], ids: np.ndarray, rec: TaskResult, inputs: Mapping[str, np.ndarray],
                   fusion: Any, mods: Mapping[str, np.ndarray], plays: np.ndarray, seed: int, k: int,
                   cat: Any, weights: Mapping[str, float] | None = None) -> dict[str, Any]:
    """004 sections 2.4-3.4: popularity buckets vs CF, ECL, modality-group entropy; the MULTI
    model is the product's (``inputs``: its raw modality inputs, ``weights``: its item mean)."""
    from scipy.stats import kendalltau

    from ..metrics import expected_contrastive_loss, popularity_buckets, relative_to_reference_by_bucket

    out: dict[str, Any] = {}
    idx = {x: i for i, x in enumerate(ids.tolist())}
    test = rec.split == "test"
    qi = np.array([idx[q] for q in rec.query_ids])[test]
    popq = np.log1p(plays[qi])
    nb = int(cfg["music"]["popularity_buckets"])
    bk = popularity_buckets(popq, nb)
    ref = rec.scores["CF (ALS)"]["ndcg"][test]
    out["popularity_buckets"] = {
        "n_buckets": nb, "reference": "CF (ALS)",
        "bucket_cf_ndcg": {int(b): float(ref[bk == b].mean()) for b in range(nb)},
        "relative": {name: relative_to_reference_by_bucket(np.nan_to_num(sc["ndcg"][test]), ref, bk)
                     for name, sc in rec.scores.items() if name not in ("AUDIO (Spotify)",)}}
    # ECL of the fused model per item, vs nDCG and popularity (004 Figure 3 / section 3.4)
    outs = fusion.modality_outputs(dict(inputs))
    ecl = expected_contrastive_loss(outs)
    nd = rec.scores["MULTI TEMPLATE"]["ndcg"][test]
    e = ecl[qi]
    ok = ~np.isnan(e)
    out["ecl"] = {"mean_all_items": float(np.nanmean(ecl)), "mean_test_queries": float(np.nanmean(e)),
                  "kendall_tau_ecl_ndcg": float(kendalltau(e[ok], nd[ok]).statistic) if ok.sum() > 2 else None,
                  "kendall_tau_pop_ndcg": float(kendalltau(popq, nd).statistic) if len(nd) > 2 else None,
                  "kendall_tau_pop_ecl": float(kendalltau(popq[ok], e[ok]).statistic) if ok.sum() > 2 else None,
                  "per_item": {"ids": ids.tolist(), "ecl": [None if np.isnan(x) else round(float(x), 5) for x in ecl]}}
    out["modality_groups"] = _modality_groups(cfg, ids, fusion, mods, seed, cat, inputs, weights)
    return out


GROUPS = [("cf",), ("audio",), ("text",), ("cf", "audio"), ("cf", "text"), ("audio", "text"), ("cf", "audio", "text")]


def _modality_groups(cfg: Mapping[str, Any], ids: np.ndarray, fusion: Any, mods: Mapping[str, np.ndarray], seed: int,
                     cat: Any, inputs: Mapping[str, np.ndarray], weights: Mapping[str, float] | None
                     ) -> dict[str, Any]:
    """Modality-group entropy on the full-coverage items (004 section 2.4, Table 2): items
    assigned at random to groups that keep only some modalities, kNN among them (MULTI: the
    product's fusion on its own inputs, masked the same way)."""
    from ..metrics import modality_group_entropy

    full = np.ones(len(ids), dtype=bool)
    for X in (*mods.values(), *inputs.values()):
        full &= B.present(X)
    full &= (cat.items["tags"].str.len() > 0).to_numpy()
    fidx = np.flatnonzero(full)
    perm = np.random.default_rng(seed).permutation(fidx)
    g_of = {int(i): j % len(GROUPS) for j, i in enumerate(perm)}
    masked = {m: np.array(X, dtype=np.float32, copy=True) for m, X in mods.items()}
    masked_in = {m: np.array(X, dtype=np.float32, copy=True) for m, X in inputs.items()}
    for i, g in g_of.items():
        for d in (masked, masked_in):
            for m in d:
                if m not in GROUPS[g]:
                    d[m][i] = np.nan
    cand = np.zeros(len(ids), dtype=bool)
    cand[fidx] = True
    kk = int(cfg["music"]["group_entropy"]["k"])
    systems = {"MULTI TEMPLATE": fusion.transform(masked_in, weights),
               "CONCAT CF+TEXT+AUDIO": B.concat_modalities(masked),
               "CF (ALS)": masked["cf"], "AUDIO (Spotify)": masked["audio"], "TEXT": masked["text"]}
    # PCA / RP fitted on the unmasked full-coverage items, applied with global-mean imputation
    for meth, nm in (("pca", "PCA-200 CF+TEXT+AUDIO"), ("rp", "RP-200 CF+TEXT+AUDIO")):
        systems[nm] = _fit_then_apply(mods, masked, meth, seed)
    ent: dict[str, Any] = {}
    for name, E in systems.items():
        qmask = ~np.isnan(E[fidx]).any(axis=1)
        q = fidx[qmask]
        R = B.knn(E[q], E, kk, exclude=[[i] for i in q], candidates=cand)
        ranks = {int(i): [int(x) for x in r if x >= 0] for i, r in zip(q, R)}
        h, mat = modality_group_entropy(ranks, g_of, k=kk)
        ent[name] = {"entropy": h, "queries": int(len(q)),
                     "matrix": {"+".join(GROUPS[g]): {"+".join(GROUPS[h2]): c for h2, c in sorted(row.items())}
                                for g, row in sorted(mat.items())}}
    return {"items": int(len(fidx)), "groups": ["+".join(g) for g in GROUPS], "k": kk,
            "max_entropy": float(np.log(len(GROUPS))), "systems": ent}


def _fit_then_apply(mods: Mapping[str, np.ndarray], masked: Mapping[str, np.ndarray], method: str, seed: int
                    ) -> np.ndarray:
    """PCA / random projection (``method``) fitted on the unmasked items that have every
    modality, applied to the masked matrices with each missing block set to its global mean."""
    from sklearn.decomposition import PCA
    from sklearn.random_projection import GaussianRandomProjection

    full = np.ones(len(next(iter(mods.values()))), dtype=bool)
    for X in mods.values():
        full &= B.present(X)
    means = {m: B.l2n(X)[full].mean(axis=0) for m, X in mods.items()}

    def cat_(d: Mapping[str, np.ndarray]) -> np.ndarray:
        bl = []
        for m, X in d.items():
            Y = B.l2n(np.nan_to_num(X))
            Y[~B.present(X)] = means[m]
            bl.append(Y)
        return np.concatenate(bl, axis=1)

    Xf = cat_(mods)[full]
    nc = min(200, Xf.shape[1], len(Xf))
    r = PCA(n_components=nc, random_state=seed) if method == "pca" else GaussianRandomProjection(nc, random_state=seed)
    r.fit(Xf)
    return B.l2n(r.transform(cat_(masked)).astype(np.float32))
