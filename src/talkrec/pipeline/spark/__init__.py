"""``engine: spark``: the build's heavy stages on a Spark cluster (or Spark local), the same
space at the end.

Runs where (docs/scale.md): the catalog is read and the descriptions written on the driver
by the embedded build's own stages; ALS (:mod:`.als`), text embedding (:mod:`.embed`) and
the projection of every item through the trained fusion encoders (:mod:`.project`) run on
Spark, each writing Parquet under ``spark.output``; the fusion model trains on the driver
from (a sample of) those tables; the space folder is written by the pipeline's index stage.
Settings and their checks: :mod:`.session`; Parquet helpers: :mod:`.frames`.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...data.catalog import Catalog
from ..cache import Cache, StageTimer, content_hash
from ..serving import check_item_fields, check_modalities, ease_stage, modality_weights
from ..stages import Built, catalog_stage, content_stage, descriptions_stage, fusion_stage, index_stage, plot_training_curve
from .als import cf_stage
from .embed import text_dim, text_stage
from .frames import matrix_of, parquet_stage, partitions, uri, vector_frame
from .project import collect_inputs, files_digest, join_tables, model_files, project, sample_inputs
from .session import SparkSettings, check_output, checkpoint_dir, preflight, spark_session

log = logging.getLogger(__name__)

__all__ = ["SparkSettings", "build_spark"]


def build_spark(cfg: Mapping[str, Any], *, show_progress: bool = True, catalog: Catalog | None = None) -> dict[str, Any]:
    """:func:`talkrec.pipeline.build` with ``engine: spark`` (``cfg`` already loaded).

    Every setting is checked before a session starts or a file is written; an existing
    space at ``output`` is replaced only when the new one is complete."""
    settings = SparkSettings.from_config(cfg)
    out_dir = Path(cfg["output"])
    preflight(settings, out_dir)
    timer = StageTimer()
    seed = int(cfg.get("seed", 0))
    with spark_session(settings) as spark:
        check_output(spark, settings)
        checkpoint_dir(spark, uri(settings.output, "checkpoints"))
        cache = Cache(Path(str(out_dir) + ".build"))
        catalog = catalog_stage(cfg, catalog, timer, seed)
        check_item_fields(cfg, catalog)
        check_modalities(cfg, catalog)
        data_key = content_hash(catalog.item_ids, catalog.tags,
                                catalog.interactions if catalog.interactions is not None else 0)
        describer, views = descriptions_stage(cfg, catalog, cache, timer, show_progress)
        text_encoder, cf_encoder, wide, layout, dims, scalers = _modality_tables(
            spark, cfg, settings, catalog, data_key, views, cache, timer, show_progress)
        ease = ease_stage(cfg, catalog, timer)            # on the driver, as the embedded build (issue 12)
        weights = modality_weights(cfg, list(layout))
        fusion, fused, inputs = _fuse(spark, cfg, settings, catalog.item_ids, wide, layout, dims, cache, timer,
                                      ease, weights)
    built = Built(catalog, data_key, describer, views, text_encoder, cf_encoder, inputs, scalers, ease, weights)
    index_stage(cfg, built, fusion, fused, out_dir, timer)
    plot_training_curve(fusion.history_, out_dir / "training_curve.png")
    return {"output": str(out_dir), "engine": "spark", "spark_output": settings.output, "stages": timer.stages}


def _modality_tables(spark: Any, cfg: Mapping[str, Any], s: SparkSettings, catalog: Catalog, data_key: str,
                     views: Mapping[str, Mapping[str, str]], cache: Cache, timer: StageTimer,
                     show_progress: bool) -> tuple[Any, Any, Any, dict[str, list[str]], dict[str, int], Any]:
    """Text (Spark), CF (Spark) and content (driver) as Parquet tables, joined per item."""
    ids = catalog.item_ids
    n_parts = partitions(spark, s.partitions)
    text_encoder, text = text_stage(spark, cfg, ids, views, timer, s.output, partitions=n_parts,
                                    batch_size=s.text_batch_size)
    tables: dict[str, dict[str, Any]] = {"text": {f"text__{v}": t for v, t in text.items()}}
    dims = {"text": text_dim(next(iter(text.values())))}
    seed = int(cfg.get("seed", 0))
    cf_encoder, cf_items = cf_stage(spark, cfg, catalog, data_key, cache, timer, seed, s.output)
    if cf_encoder is not None:
        tables["cf"] = {"cf": cf_items}
        dims["cf"] = int(cf_encoder.item_factors_.shape[1])
    content, scalers = content_stage(cfg, catalog, cache, timer, show_progress)
    with timer.stage("content-parquet") as info:
        for m, X in content.items():
            tables[m] = {m: parquet_stage(spark, uri(s.output, f"{m}-{content_hash(ids, X)}"),
                                          lambda m=m, X=X: vector_frame(spark, ids, X, m), info)}
            dims[m] = int(X.shape[1])
    wide, layout = join_tables(spark, ids, tables)
    return text_encoder, cf_encoder, wide, layout, dims, scalers


def _fuse(spark: Any, cfg: Mapping[str, Any], s: SparkSettings, ids: Any, wide: Any, layout: dict[str, list[str]],
          dims: dict[str, int], cache: Cache, timer: StageTimer, ease: Any = None,
          weights: Mapping[str, float] | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Train fusion on the driver (``spark.fusion_sample`` items, default all; the EASE
    lists as interaction positives when it trains on all items), project every item on
    Spark with the modality ``weights``; returns the model, the fused matrix and every
    item's inputs."""
    seed = int(cfg.get("seed", 0))
    with timer.stage("collect") as info:
        inputs = collect_inputs(wide, layout, dims)
        sample = inputs
        if s.fusion_sample is not None and s.fusion_sample < len(ids):
            sample = sample_inputs(wide, layout, dims, s.fusion_sample, seed)
        info["fusion_items"] = int(min(s.fusion_sample or len(ids), len(ids)))
    fusion, _ = fusion_stage(cfg, sample, cache, timer, seed, weights, ease if sample is inputs else None)
    with timer.stage("project") as info:
        files = model_files(fusion)
        key = content_hash(ids, files_digest(files), layout, dims, _sources(wide), dict(weights or {}))
        table = parquet_stage(spark, uri(s.output, f"fused-{key}"),
                              lambda: project(wide, fusion, layout, dims, partitions(spark, s.partitions), weights), info)
        fused = matrix_of(table, "fused", ids, int(fusion.out_dim))
        info["items_projected"] = int((~np.isnan(fused).any(axis=1)).sum())
    return fusion, fused, inputs


def _sources(wide: Any) -> list[str]:
    """The names of the tables the joined table reads (they carry the content hashes; the
    root they lie under does not count, so a moved build folder is still a cache)."""
    try:
        return sorted({f.rstrip("/").rsplit("/", 2)[-2] for f in wide.inputFiles()})
    except Exception:  # pragma: no cover - Spark Connect before inputFiles support
        return []
