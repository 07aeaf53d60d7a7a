"""The text modality on Spark: every description view embedded by the space's text model
through ``pyspark.ml.functions.predict_batch_udf`` (one model load per Python worker,
batches of ``spark.text_batch_size`` texts), written as Parquet ``(item_id, text)``."""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["embed_texts", "text_stage"]


def _text_model(text_cfg: Mapping[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """``make_predict_fn`` of predict_batch_udf: loads the text model once per worker."""
    from ...encoders.text import TextEncoder

    enc = TextEncoder(**text_cfg)

    def predict(texts: np.ndarray) -> np.ndarray:
        return enc.encode([str(t) for t in texts], batch_size=max(1, len(texts)))

    return predict


def embed_texts(spark: Any, texts: Mapping[str, str], text_cfg: Mapping[str, Any], *, partitions: int,
                batch_size: int) -> Any:
    """``(item_id, text array<float>)``: ``texts`` ({item_id: description}) embedded on Spark,
    each partition in order of length (as the embedded encoder sorts its batches)."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType

    pdf = pd.DataFrame({"item_id": list(texts), "description": list(texts.values())})
    frame = (spark.createDataFrame(pdf, schema="item_id string, description string").repartition(partitions)
             .sortWithinPartitions(F.length("description")))       # batches of like lengths pad less
    model = predict_batch_udf(functools.partial(_text_model, dict(text_cfg)), return_type=ArrayType(FloatType()),
                              batch_size=batch_size)
    return frame.select("item_id", model("description").alias("text"))


def text_stage(spark: Any, cfg: Mapping[str, Any], ids: np.ndarray, views: Mapping[str, Mapping[str, str]],
               timer: Any, root: str, *, partitions: int, batch_size: int) -> tuple[Any, dict[str, Any]]:
    """The text encoder (its settings, for the space) and one Parquet table per description
    view, keyed like the embedded text stage's cache (model settings + texts)."""
    from ...encoders.text import TextEncoder
    from ..cache import content_hash
    from .frames import parquet_stage, uri

    text_cfg = dict(cfg["text"])
    enc = TextEncoder(**text_cfg)
    tables: dict[str, Any] = {}
    with timer.stage("text") as info:
        for vname, texts in views.items():
            present = {str(i): texts[i] for i in ids if texts.get(i)}
            key = content_hash(text_cfg, list(present.values()), list(present))
            tables[vname] = parquet_stage(spark, uri(root, f"text-{vname}-{key}"), lambda p=present: embed_texts(
                spark, p, text_cfg, partitions=partitions, batch_size=batch_size), info)
        info["dim"] = text_dim(next(iter(tables.values())))
    return enc, tables


def text_dim(table: Any) -> int:
    """The length of the vectors of a ``(item_id, text)`` table."""
    from pyspark.sql import functions as F

    row = table.select(F.size("text").alias("d")).first()
    return int(row["d"]) if row is not None else 0
