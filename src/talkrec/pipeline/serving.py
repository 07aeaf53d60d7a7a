"""What a build adds for serving beyond the fused vectors (issue 12): the EASE item-item
model, the modality weights of the item mean, and the strategies ``Space.similar`` and
``Space.recommend`` serve by default; and ``fusion: paper``, the paper's exact setup.

* ``ease: {enabled, regularization, min_weight, binary, n_neighbors}`` - EASE
  (:class:`~talkrec.encoders.ease.EASE`) on the catalog's interactions, saved in the space
  as ``ease/``.
* ``modality_weights: {audio: 0.5}`` - weights of the modalities in an item's fused mean
  (missing modalities weigh 1), used by the build and by cold-start upserts.
* ``similar: {strategy: rrf | knn, cf_weight, rrf_c, depth, cold_neighbors, cold_weight,
  cold_match: content | fused, cold_content_weight, lexical_weight, lexical_max_df, lexical_max_terms, novelty}`` and
  ``recommend: {strategy: blend | rrf | knn | best_score, weights: {fused, ease, als}, rrf_c, depth,
  cold_neighbors, cold_boost, cold_match: fused | content, cold_prior: [numeric item field, ...],
  cold_prior_weight, negative_weight, novelty}`` (:mod:`talkrec.space.strategies`, :mod:`talkrec.space.priors`;
  ``novelty``, also in ``similar``: the default of the calls' ``novelty``, :mod:`talkrec.space.popularity`).
* ``fusion: paper`` - paper 001's fusion (lr 1e-4, 400 epochs, patience 25), equal weights,
  no EASE, plain kNN for similar and recommend: the Table 4 reproduction.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from threadpoolctl import threadpool_limits

from ..data.catalog import Catalog
from ..device import free_cores
from ..errors import InputError
from ..index.analysis import bm25_params, check_fields
from ..space.strategies import RECOMMEND_STRATEGIES
from .cache import StageTimer
from .schema import check_build_config

__all__ = ["PAPER_FUSION", "check_modalities", "ease_stage", "modality_weights", "resolve_profile", "serving_config"]

#: the fusion settings of paper 001 (section 2), what ``fusion: paper`` trains
PAPER_FUSION: dict[str, Any] = {"learning_rate": 1e-4, "max_epochs": 400, "patience": 25}

SIMILAR_STRATEGIES = ("rrf", "knn")


def resolve_profile(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with ``fusion: paper`` expanded (paper fusion, no EASE, equal weights, kNN),
    and its keys (:func:`~.schema.check_build_config`), strategy names and BM25 settings checked
    (an error names the config file)."""
    check_build_config(cfg)
    try:
        return _resolved(cfg)
    except InputError as e:
        raise e.at(cfg.get("_config_path")) from None


def _resolved(cfg: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(cfg))
    if isinstance(out.get("fusion"), str):
        if out["fusion"] != "paper":
            raise InputError(f"fusion must be a mapping of settings or 'paper', got {out['fusion']!r}", field="fusion")
        out.update(fusion=dict(PAPER_FUSION), modality_weights={}, similar={"strategy": "knn"},
                   recommend={"strategy": "knn"}, profile="paper")
        out["ease"] = {**out.get("ease", {}), "enabled": False}
    s, r = out["similar"].get("strategy", "knn"), out["recommend"].get("strategy", "knn")
    if s not in SIMILAR_STRATEGIES:
        raise InputError(f"similar.strategy must be one of {', '.join(SIMILAR_STRATEGIES)}, got {s!r}",
                         field="similar.strategy")
    if r not in RECOMMEND_STRATEGIES:
        raise InputError(f"recommend.strategy must be one of {', '.join(RECOMMEND_STRATEGIES)}, got {r!r}",
                         field="recommend.strategy")
    for part in ("similar", "recommend"):
        match = out[part].get("cold_match", "content")
        if match not in ("content", "fused"):
            raise InputError(f"{part}.cold_match must be 'content' or 'fused', got {match!r}", field=f"{part}.cold_match")
    for key, low, high in (("cold_content_weight", 0.0, np.inf), ("lexical_weight", 0.0, np.inf),
                           ("lexical_max_df", 1e-9, 1.0)):
        w = out["similar"].get(key, low)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not low <= w <= high:
            within = f"a number >= {low:g}" if high == np.inf else "a number in (0, 1]"
            raise InputError(f"similar.{key} must be {within}, got {w!r}", field=f"similar.{key}")
    t = out["similar"].get("lexical_max_terms", 0)
    if isinstance(t, bool) or not isinstance(t, int) or t < 0:
        raise InputError(f"similar.lexical_max_terms must be an integer >= 0 (0: every term), got {t!r}",
                         field="similar.lexical_max_terms")
    _check_prior(out["recommend"])
    bm25_params(out.get("search"))           # the BM25 settings fail before any stage runs
    return out


def _check_prior(rec: dict[str, Any]) -> None:
    """``recommend.cold_prior``: a field name or a list of them (stored as a list);
    ``cold_prior_weight``: a number >= 0."""
    fields = rec.get("cold_prior")
    if fields is None:
        return
    fields = [fields] if isinstance(fields, str) else fields
    if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
        raise InputError(f"recommend.cold_prior must be an item field or a list of them, got {rec['cold_prior']!r}",
                         field="recommend.cold_prior")
    rec["cold_prior"] = fields
    g = rec.get("cold_prior_weight", 1.0)
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 <= g < np.inf:
        raise InputError(f"recommend.cold_prior_weight must be a number >= 0, got {g!r}",
                         field="recommend.cold_prior_weight")


def check_item_fields(cfg: Mapping[str, Any], catalog: Catalog) -> None:
    """What the config names in the catalog is there (checked once the catalog is loaded,
    before the embedding stages): ``search.bm25_fields`` the description or item fields,
    ``recommend.cold_prior`` numeric item fields, and for a default ``recommend.novelty`` /
    ``similar.novelty`` interactions above ``positive_threshold`` to count (:mod:`talkrec.space.popularity`)."""
    from ..space.popularity import item_popularity                # what the space will count
    x, threshold = catalog.interactions, float(cfg.get("positive_threshold", 0.0))
    wanted = [part for part in ("recommend", "similar") if float(cfg[part].get("novelty", 0.0)) > 0]
    if wanted and item_popularity(x, threshold) is None:
        raise InputError(f"{wanted[0]}.novelty needs interactions above positive_threshold ({threshold:g}) to "
                         f"count how many users have each item; this catalog has "
                         f"{'none' if x is None or not len(x) else 'none above it'}",
                         path=cfg.get("_config_path"), field=f"{wanted[0]}.novelty")
    check_fields(bm25_params(cfg.get("search")).fields or (), {"name", "tags", *catalog.items.columns})
    for f in cfg["recommend"].get("cold_prior") or ():
        if f not in catalog.items.columns:
            raise InputError(f"recommend.cold_prior: no item field {f!r}; the items have "
                             f"{', '.join(sorted(map(str, catalog.items.columns)))}", field="recommend.cold_prior")
        col = catalog.items[f]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise InputError(f"recommend.cold_prior: item field {f!r} is not numeric (its type: {col.dtype})",
                             field="recommend.cold_prior")


def check_modalities(cfg: Mapping[str, Any], catalog: Catalog) -> None:
    """Fusion needs a second modality beside text: CF (interactions, ``cf.enabled``) or a
    ``content`` block; refused once the catalog is loaded, before the embedding stages, naming
    the config and what to add (the fusion model itself said only ``got ['text']``)."""
    has_cf = catalog.interactions is not None and len(catalog.interactions) > 0 and cfg["cf"].get("enabled", True)
    if has_cf or cfg.get("content"):
        return
    why = ("cf.enabled is false" if catalog.interactions is not None and len(catalog.interactions)
           else "the catalog has no interactions")
    unused = (f"; the catalog's vectors {sorted(catalog.vectors)} are used only through a content: block"
              if catalog.vectors else "")
    raise InputError(f"fusion needs at least two modalities and this build of the catalog has only text ({why} "
                     f"and the config has no content: block{unused}). Add interactions (catalog.interactions: "
                     "user-item plays, ratings or clicks) for a CF modality, or item vectors, audio or image files "
                     "(catalog.vectors / catalog.media) with a content: block, e.g. "
                     "content: {audio: {source: vectors}}",
                     path=cfg.get("_config_path"), field="catalog")


def ease_stage(cfg: Mapping[str, Any], catalog: Catalog, timer: StageTimer) -> Any:
    """The fitted EASE model, or None (no interactions, or ``ease.enabled: false``)."""
    ecfg = dict(cfg.get("ease") or {})
    if catalog.interactions is None or not ecfg.pop("enabled", True):
        return None
    from ..encoders.ease import EASE

    if ecfg.get("min_weight") is None:
        ecfg["min_weight"] = float(cfg["cf"].get("min_weight", 0.0))
    with timer.stage("ease") as info, threadpool_limits(info.setdefault("threads", free_cores()), "blas"):
        model = EASE(**ecfg).fit(catalog.interactions, catalog.item_ids)   # dense products: every free core
        info.update(items_with_cf=int(model.has_cf_.sum()), users=model.n_users_,
                    n_neighbors=int(model.neighbors_.shape[1]))
    return model


def modality_weights(cfg: Mapping[str, Any], modalities: list[str]) -> dict[str, float]:
    """Every modality's weight in the fused item mean (1 unless ``modality_weights`` says)."""
    given = dict(cfg.get("modality_weights") or {})
    unknown = set(given) - set(modalities)
    if unknown:
        raise InputError(f"modality_weights names {sorted(unknown)}, not modalities of this build {modalities}",
                         field="modality_weights")
    w = {m: float(given.get(m, 1.0)) for m in modalities}
    if any(not np.isfinite(v) or v < 0 for v in w.values()) or not any(v > 0 for v in w.values()):
        raise InputError(f"modality_weights must be finite, >= 0 and not all 0, got {given}", field="modality_weights")
    return w


def serving_config(cfg: Mapping[str, Any], weights: Mapping[str, float], has_ease: bool) -> dict[str, Any]:
    """The ``space.json`` entries the Space's similar / recommend / upserts read."""
    sim, rec = dict(cfg["similar"]), dict(cfg["recommend"])
    if not has_ease:                       # no CF at all: the fused space (and similar's BM25 list) alone
        if not float(sim.get("lexical_weight", 0.0)) > 0:
            sim["strategy"] = "knn"
        if rec.get("strategy") != "best_score":              # the one without a CF list
            rec["strategy"] = "knn"
    return {"similar": sim, "recommend": rec, "modality_weights": dict(weights), "profile": cfg.get("profile", "default")}
