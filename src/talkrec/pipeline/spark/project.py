"""Fusion on ``engine: spark``: the modality tables joined into one item table, the fusion
model trained on one node from (a sample of) it, then every item projected on Spark.

The joined table has one row per catalog item: ``item_id``, ``pos`` (the catalog order) and
one ``array<float>`` column per input (``text__<view>`` for each description view, ``cf``,
each content modality), null where an item lacks it. Training reads the rows into the
``{modality: matrix}`` inputs of :class:`~talkrec.fusion.model.ContrastiveFusion` (NaN rows
where missing, a list of view matrices for several text views); the trained model travels
to the Python workers as its saved files and projects each Arrow batch (``mapInPandas``).
"""
from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Layout", "collect_inputs", "join_tables", "model_files", "project", "sample_inputs"]

#: modality -> its columns in the joined table (several for several text views)
Layout = dict[str, list[str]]

_LOADED: dict[str, Any] = {}      # fusion models loaded in this Python worker, by digest of their files


def join_tables(spark: Any, ids: np.ndarray, tables: Mapping[str, Mapping[str, Any]]) -> tuple[Any, Layout]:
    """``tables``: ``{modality: {column: DataFrame(item_id, <its vector column>)}}`` -> the
    joined item table and its layout."""
    from .frames import item_frame

    wide = item_frame(spark, ids)
    layout: Layout = {}
    for m, cols in tables.items():
        layout[m] = []
        for col, df in cols.items():
            vec = [c for c in df.columns if c != "item_id"][0]
            wide = wide.join(df.select("item_id", df[vec].alias(col)), "item_id", "left")
            layout[m].append(col)
    return wide, layout


def to_inputs(pdf: pd.DataFrame, layout: Layout, dims: Mapping[str, int]) -> dict[str, Any]:
    """Fusion inputs of a pandas batch of the joined table (NaN rows for nulls)."""
    out: dict[str, Any] = {}
    for m, cols in layout.items():
        mats = []
        for col in cols:
            X = np.full((len(pdf), dims[m]), np.nan, dtype=np.float32)
            have = pdf[col].notna().to_numpy()
            if have.any():
                X[have] = np.stack(pdf[col].to_numpy()[have]).astype(np.float32)
            mats.append(X)
        out[m] = mats if len(mats) > 1 else mats[0]
    return out


def collect_inputs(wide: Any, layout: Layout, dims: Mapping[str, int]) -> dict[str, Any]:
    """Every item's inputs on the driver, in catalog order (what the space folder stores)."""
    pdf = wide.toPandas().sort_values("pos", kind="stable").reset_index(drop=True)
    return to_inputs(pdf, layout, dims)


def sample_inputs(wide: Any, layout: Layout, dims: Mapping[str, int], n: int, seed: int) -> dict[str, Any]:
    """The inputs of ``n`` items chosen by a seeded hash of their ids (the same items on any
    partitioning), in catalog order."""
    from pyspark.sql import functions as F

    pdf = wide.orderBy(F.xxhash64("item_id", F.lit(int(seed)))).limit(int(n)).toPandas()
    return to_inputs(pdf.sort_values("pos", kind="stable").reset_index(drop=True), layout, dims)


def model_files(fusion: Any) -> dict[str, bytes]:
    """The files :meth:`ContrastiveFusion.save` writes, as bytes (what the workers load)."""
    with tempfile.TemporaryDirectory() as d:
        fusion.save(Path(d) / "fusion")
        return {p.name: p.read_bytes() for p in sorted((Path(d) / "fusion").iterdir())}


def files_digest(files: Mapping[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode())
        h.update(files[name])
    return h.hexdigest()[:16]


def _model(files: Mapping[str, bytes], digest: str) -> Any:
    """The fusion model of ``files``, loaded once per Python worker."""
    if digest not in _LOADED:
        from ...fusion.model import ContrastiveFusion

        with tempfile.TemporaryDirectory() as d:
            for name, data in files.items():
                (Path(d) / name).write_bytes(data)
            _LOADED[digest] = ContrastiveFusion.load(d)
    return _LOADED[digest]


def _projector(files: Mapping[str, bytes], layout: Layout, dims: Mapping[str, int],
               weights: Mapping[str, float] | None = None) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    digest = files_digest(files)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from ...device import torch_threads

        model = _model(files, digest)
        for pdf in batches:
            with torch_threads(model.n_threads):
                fused = model.transform(to_inputs(pdf, layout, dims), weights)
            ok = ~np.isnan(fused).any(axis=1)
            yield pd.DataFrame({"item_id": pdf["item_id"].to_numpy()[ok], "fused": list(fused[ok])})

    return run


def project(wide: Any, fusion: Any, layout: Layout, dims: Mapping[str, int], partitions: int,
            weights: Mapping[str, float] | None = None) -> Any:
    """``(item_id, fused array<float>)`` of every item with at least one modality (the
    ``weights``-weighted mean of its modalities' projections, as the embedded build)."""
    return wide.repartition(partitions).mapInPandas(_projector(model_files(fusion), layout, dims, weights),
                                                    schema="item_id string, fused array<float>")

