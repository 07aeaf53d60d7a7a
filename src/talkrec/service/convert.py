"""Space results -> JSON-safe response values."""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import orjson
import pandas as pd
from fastapi.responses import Response

from ..space import Hit
from . import schemas as S


def clean(v: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy -> Python, unknown objects -> str."""
    t = type(v)
    if t is str or t is int or t is bool or v is None:      # the common cases first, by exact type
        return v
    if t is float:
        return v if math.isfinite(v) else None
    if t is list:
        return list(v) if all(type(x) is str for x in v) else [clean(x) for x in v]
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [clean(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if v is None or isinstance(v, str):
        return v
    if v is pd.NA or v is pd.NaT:
        return None
    return str(v)


def hits(found: list[Hit]) -> list[S.Hit]:
    return [S.Hit(item_id=h.item_id, name=h.name, score=float(h.score) if math.isfinite(h.score) else 0.0,
                  metadata=clean(h.metadata)) for h in found]


def hits_response(found: list[Hit], *, k: int, offset: int, t0: float, score_kind: S.ScoreKind = "cosine") -> Response:
    """A :class:`~talkrec.service.schemas.HitsResponse` (the route's ``response_model``, which
    the OpenAPI schema documents), encoded by ``orjson`` from the hits as they are: a hit's
    metadata is JSON-safe already (:func:`~talkrec.space.hits.jsonable`), so neither
    :func:`clean` nor a pydantic model is needed (~1.1 -> ~0.1 ms at k=200), nor a copy of
    each hit's fields (:meth:`~talkrec.space.hits.Hit.fields_view`)."""
    items = [{"item_id": h.item_id, "name": h.name, "score": float(h.score) if math.isfinite(h.score) else 0.0,
              "metadata": h.fields_view()} for h in found]
    body = {"items": items, "score_kind": score_kind, "k": k, "offset": offset, "took_ms": took_ms(t0)}
    # numpy values, non-string keys or other objects (never from ``jsonable``) still encode
    return Response(orjson.dumps(body, default=str, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS),
                    media_type="application/json")


def took_ms(t0: float) -> float:
    """Milliseconds since ``t0`` (a :func:`time.perf_counter` reading)."""
    return round((time.perf_counter() - t0) * 1e3, 2)
