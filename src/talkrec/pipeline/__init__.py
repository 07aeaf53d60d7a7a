"""`talkrec build CONFIG`: every stage from a catalog to a served space, cached and resumable.

Stages (:mod:`.stages`): catalog -> descriptions -> text -> cf -> ease -> content -> fusion -> index
(EASE, modality weights, the similar / recommend strategies and ``fusion: paper``:
:mod:`.serving`).
Each stage's output is cached under ``<output>.build/`` keyed by a hash of its inputs and
settings (:mod:`.cache`), so a re-run after a failure (or a config change late in the chain)
redoes only what changed. The space folder itself is written to a temporary folder and
swapped in at the end.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import config as _config
from ..data.catalog import Catalog
from ..errors import InputError
from ..space.lock import replacing
from .cache import Cache, StageTimer, content_hash
from .reindex import index_settings
from .schema import output_folder
from .serving import check_item_fields, check_modalities, ease_stage, modality_weights, resolve_profile
from .stages import (Built, catalog_stage, cf_stage, content_stage, descriptions_stage, fusion_stage, index_stage,
                     load_dataset, plot_training_curve, subsample, text_stage)

__all__ = ["DEFAULTS", "build", "load_config", "load_dataset", "subsample"]

DEFAULTS: dict[str, Any] = {
    "engine": "local",                 # or "spark" (talkrec.pipeline.spark; settings in a spark: block)
    "data_root": "../shared/data",
    "descriptions": {"template": {}, "second": None},
    "text": {"model": "minilm"},
    "cf": {"tune": False, "n_trials": 8, "params": {}, "min_weight": 0.0},
    "content": {},
    "fusion": {},
    "ease": {"enabled": True, "regularization": 500.0, "min_weight": None, "binary": True, "n_neighbors": 200},
    "modality_weights": {},
    # similar: + the item's BM25 list (its own text as the query), weight 2 on validation queries
    # of music (docs/evaluation.md, "An item's BM25 list")
    "similar": {"strategy": "rrf", "cf_weight": 0.5, "rrf_c": 60.0, "depth": 1000, "lexical_weight": 2.0,
                "lexical_max_df": 0.2, "lexical_max_terms": 50},
    "recommend": {"strategy": "blend", "weights": {"fused": 1.0, "ease": 1.0, "als": 1.0}, "rrf_c": 60.0,
                  "depth": 1000},
    "index": {"ann": False},
    # hybrid search: text 1 / BM25 4 and BM25 with little length normalisation (descriptions are tag
    # lists) won on validation queries of both datasets, and word pairs as BM25 terms ("post rock")
    # on music, with no loss on movies (docs/evaluation.md; analysis.bm25_params); the names' own list at
    # weight 2: a name typed as the query found first far more often, tag queries unchanged on both
    # datasets (docs/evaluation.md, "Stemming and names"; space.namelist)
    "search": {"mode": "hybrid", "hybrid_text_weight": 1.0, "hybrid_bm25_weight": 4.0, "rrf_depth": 1000,
               "bm25_k1": 1.2, "bm25_b": 0.1, "bm25_pairs": True, "hybrid_name_weight": 2.0},
    "positive_threshold": 0.0,
    "seed": 0,
}

REQUIRED = ("name", "output")


def load_config(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML build config over :data:`DEFAULTS` and apply ``overrides`` (dotted keys
    allowed; a ``None`` value means "not given", as for an unset CLI option).
    ``name`` and ``output`` are required. See :func:`talkrec.config.load_config`."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    return _config.load_config(Path(path), defaults=DEFAULTS, overrides=given, required=REQUIRED)


def build(cfg: Mapping[str, Any], *, show_progress: bool = True, catalog: Catalog | None = None) -> dict[str, Any]:
    """Build the space described by ``cfg`` (see :func:`load_config`); returns a summary.

    ``catalog`` skips the config's dataset loading (for catalogs built in Python).
    ``engine: spark`` runs the heavy stages on Spark (:func:`talkrec.pipeline.spark.build_spark`)."""
    cfg = resolve_profile(_config.load_config(cfg, defaults=DEFAULTS, required=REQUIRED))
    cfg["output"] = str(output_folder(cfg))  # absolute; a folder a build would destroy is refused before any stage
    index_settings(cfg)                      # a vector database that cannot work fails before anything is written
    with replacing(Path(cfg["output"]), create=False):   # so does a space that another process writes to
        pass                                             # (checked again at the swap)
    engine = cfg.get("engine")
    if engine == "spark":
        from .spark import build_spark
        return build_spark(cfg, show_progress=show_progress, catalog=catalog)
    if engine != "local":
        raise InputError(f"unknown engine {engine!r}; expected local or spark", field="engine")
    timer = StageTimer()
    out_dir = Path(cfg["output"])
    cache = Cache(Path(cfg.get("build_cache") or str(out_dir) + ".build"))   # several builds may share one
    seed = int(cfg.get("seed", 0))

    catalog = catalog_stage(cfg, catalog, timer, seed)
    check_item_fields(cfg, catalog)
    check_modalities(cfg, catalog)
    ids = catalog.item_ids
    data_key = content_hash(ids, catalog.tags, catalog.interactions if catalog.interactions is not None else 0)
    describer, views = descriptions_stage(cfg, catalog, cache, timer, show_progress)
    text_encoder, text = text_stage(cfg, ids, views, cache, timer, show_progress)
    inputs: dict[str, Any] = {"text": text}
    cf_encoder = cf_stage(cfg, catalog, data_key, cache, timer, seed)
    if cf_encoder is not None:
        inputs["cf"] = cf_encoder.item_factors_
    ease = ease_stage(cfg, catalog, timer)
    content, scalers = content_stage(cfg, catalog, cache, timer, show_progress)
    inputs.update(content)
    weights = modality_weights(cfg, list(inputs))
    fusion, fused = fusion_stage(cfg, inputs, cache, timer, seed, weights, ease)
    built = Built(catalog, data_key, describer, views, text_encoder, cf_encoder, inputs, scalers, ease, weights)
    index_stage(cfg, built, fusion, fused, out_dir, timer)
    summary = {"output": str(out_dir), "stages": timer.stages}
    plot_training_curve(fusion.history_, out_dir / "training_curve.png")
    return summary
