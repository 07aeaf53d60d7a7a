"""Item vectors between NumPy and Spark: Parquet tables of ``(item_id, <column> array<float>)``.

A modality's Parquet table holds one row per item that has the modality (no row: missing,
the NaN row of the in-memory matrices). :func:`parquet_stage` makes a table once: its URI
carries a content hash of the inputs, so a re-run reads what a finished run wrote.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["finished", "hadoop_path", "item_frame", "matrix_of", "parquet_stage", "partitions", "uri", "vector_frame"]


def uri(root: str, name: str) -> str:
    """``name`` under the output URI ``root`` (a local path or ``scheme://...``)."""
    return root.rstrip("/") + "/" + name


def partitions(spark: Any, given: int | None) -> int:
    """``given``, else the session's default parallelism (8 where Spark Connect hides it)."""
    if given:
        return int(given)
    try:
        return max(1, int(spark.sparkContext.defaultParallelism))
    except Exception:  # Spark Connect sessions have no SparkContext
        return 8


def item_frame(spark: Any, ids: Sequence[str] | np.ndarray) -> Any:
    """``(item_id string, pos int)``: the catalog's item order, as Spark joins back to it."""
    ids = np.asarray(ids).astype(str)
    return spark.createDataFrame(pd.DataFrame({"item_id": ids, "pos": np.arange(len(ids), dtype=np.int32)}))


def vector_frame(spark: Any, ids: Sequence[str] | np.ndarray, X: np.ndarray, column: str) -> Any:
    """``(item_id, column array<float>)`` of the rows of ``X`` without NaN."""
    X = np.asarray(X, dtype=np.float32)
    ok = ~np.isnan(X).any(axis=1)
    pdf = pd.DataFrame({"item_id": np.asarray(ids).astype(str)[ok], column: list(X[ok])})
    return spark.createDataFrame(pdf, schema=f"item_id string, {column} array<float>")


def matrix_of(df: Any, column: str, ids: Sequence[str] | np.ndarray, dim: int, *, key: str = "item_id") -> np.ndarray:
    """The ``column`` vectors of ``df`` as a matrix in the order of ``ids`` (matched on the
    ``key`` column; NaN rows where an id has no row or a null), collected through Arrow."""
    pdf = df.select(key, column).toPandas()
    out = np.full((len(ids), dim), np.nan, dtype=np.float32)
    if len(pdf):
        pos = pd.Series(np.arange(len(ids)), index=np.asarray(ids).astype(str))
        rows = pos.reindex(pdf[key].astype(str).to_numpy()).to_numpy()
        have = ~np.isnan(rows) & pdf[column].notna().to_numpy()
        if have.any():
            out[rows[have].astype(np.int64)] = np.stack(pdf[column].to_numpy()[have]).astype(np.float32)
    return out


def parquet_stage(spark: Any, path: str, make: Callable[[], Any], info: dict[str, Any]) -> Any:
    """The Parquet table at ``path``: read if a finished run wrote it, else ``make()`` a
    DataFrame, write it (overwriting a failed attempt) and read it back."""
    if finished(spark, path):
        info["cached"] = True
        return spark.read.parquet(path)
    make().write.mode("overwrite").parquet(path)
    log.info("wrote %s", path)
    return spark.read.parquet(path)


def hadoop_path(spark: Any, path: str) -> tuple[Any, Any] | None:
    """``(FileSystem, Path)`` of Hadoop for ``path`` through the session's JVM (s3a, hdfs,
    file...), or None on Spark Connect, whose client has no JVM."""
    try:
        jvm, jsc = spark.sparkContext._jvm, spark.sparkContext._jsc
    except Exception:  # Spark Connect sessions have no SparkContext
        return None
    p = jvm.org.apache.hadoop.fs.Path(path)
    return p.getFileSystem(jsc.hadoopConfiguration()), p


def finished(spark: Any, path: str) -> bool:
    """Whether a Spark write of ``path`` finished (its ``_SUCCESS`` marker exists; on Spark
    Connect: whether it reads)."""
    fs_path = hadoop_path(spark, uri(path, "_SUCCESS"))
    if fs_path is not None:
        fs, p = fs_path
        return bool(fs.exists(p))
    try:
        spark.read.parquet(path).limit(0).collect()
        return True
    except Exception:  # AnalysisException: path not found / no schema (nothing committed)
        return False
