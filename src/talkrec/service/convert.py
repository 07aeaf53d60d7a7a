"""Space results -> JSON-safe response values."""
from __future__ import annotations

import math
import time
from typing import Any

import orjson
from fastapi.responses import Response

from ..index.filters import Where
from ..space import Hit
from ..space.browse import empty_reason
from ..space.hits import jsonable
from . import schemas as S


def hits(found: list[Hit]) -> list[S.Hit]:
    return [S.Hit(item_id=h.item_id, name=h.name, score=float(h.score) if math.isfinite(h.score) else 0.0,
                  metadata=jsonable(h.fields_view())) for h in found]


def hits_response(found: list[Hit], *, k: int, offset: int, t0: float, score_kind: S.ScoreKind = "cosine",
                  empty: tuple[Any, Where] | None = None) -> Response:
    """A :class:`~talkrec.service.schemas.HitsResponse` (the route's ``response_model``, which
    the OpenAPI schema documents), encoded by ``orjson`` from the hits as they are: a hit's
    metadata is JSON-safe already (:func:`~talkrec.space.hits.jsonable`), so neither
    another pass over it nor a pydantic model is needed (~1.1 -> ~0.1 ms at k=200), nor a copy of
    each hit's fields (:meth:`~talkrec.space.hits.Hit.fields_view`). ``empty``: the space and the
    filter of the query, for an empty list's ``note``."""
    return json_response(hits_body(found, k=k, offset=offset, t0=t0, score_kind=score_kind, empty=empty))


def hits_body(found: list[Hit], *, k: int, offset: int, t0: float, score_kind: S.ScoreKind = "cosine",
              empty: tuple[Any, Where] | None = None) -> dict:
    """The body of :func:`hits_response`, to encode alone or inside another body; an empty list
    with ``empty`` given says why in ``note`` (:func:`~talkrec.space.browse.empty_reason`)."""
    items = [{"item_id": h.item_id, "name": h.name, "score": float(h.score) if math.isfinite(h.score) else 0.0,
              "metadata": h.fields_view()} for h in found]
    note = empty_reason(*empty) if not found and empty is not None else None
    return {"items": items, "score_kind": score_kind, "k": k, "offset": offset, "took_ms": took_ms(t0), "note": note}


def json_response(body: dict) -> Response:
    """``body`` encoded by ``orjson``: numpy values, non-string keys or other objects (never
    from ``jsonable``) still encode."""
    return Response(orjson.dumps(body, default=str, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS),
                    media_type="application/json")


def took_ms(t0: float) -> float:
    """Milliseconds since ``t0`` (a :func:`time.perf_counter` reading)."""
    return round((time.perf_counter() - t0) * 1e3, 2)
