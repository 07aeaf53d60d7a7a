"""Recommendation: similar items, from a user or items, users."""
from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from ...errors import NotFoundError, TalkrecError
from ...space import Hit, Space
from ...space.strategies import score_kind
from ...index.filters import FilterSpec
from ...limits import K_MAX
from .. import schemas as S
from ..convert import hits_body, hits_response, json_response, took_ms
from ..deps import ServiceState, filter_spec, get_state, query_filters
from ..errors import ServiceError, responses

router = APIRouter(tags=["recommend"])


@router.get("/api/items/{item_id:path}/similar", response_model=S.HitsResponse, responses=responses(404, 422))
def similar(item_id: str, k: int = Query(10, ge=1, le=K_MAX), offset: int = Query(0, ge=0, le=S.OFFSET_MAX),
            novelty: float | None = Query(None, ge=0.0, lt=1.0, description="weight of an item's novelty (how few "
                                          "of the space's users have it) against its score in the top `pool`; 0 = "
                                          "the ranking as is (default: the space's similar.novelty, else 0)"),
            pool: int | None = Query(None, ge=1, le=2000, description="with novelty: the candidates re-ranked; at "
                                                                      "least offset + k (default: 100, or offset + "
                                                                      "k when more)"),
            filters: FilterSpec = Depends(query_filters), state: ServiceState = Depends(get_state)) -> Response:
    """Items like an item (itself excluded; an id may hold ``/``), with filters: by ``similar.strategy`` (RRF of its fused,
    EASE and BM25 lists, or the fused space's nearest); ``score_kind`` says which. ``novelty`` moves less
    popular items up."""
    t0 = time.perf_counter()
    space = state.space.pinned()
    where = space.filter_where(filters)
    found = space.similar(space.resolve(item_id), k, where=where, offset=offset, novelty=novelty, pool=pool)
    return hits_response(found, score_kind=score_kind(space, "similar"), k=k, offset=offset, t0=t0,
                         empty=(space, where))


@router.post("/api/recommend", response_model=S.HitsResponse, responses=responses(400, 404, 413, 422))
def recommend(req: S.RecommendRequest, state: ServiceState = Depends(get_state)) -> Response:
    """Recommend from a user id (their history) or a list of items; already-seen items are
    excluded unless ``exclude_seen`` is false."""
    t0 = time.perf_counter()
    space = state.space.pinned()
    found = _recommend(space, req)
    return hits_response(found, score_kind=score_kind(space, "recommend", req.strategy), k=req.k, offset=req.offset,
                         t0=t0, empty=(space, space.filter_where(filter_spec(req.filters))))


@router.post("/api/recommend/batch", response_model=S.RecommendBatchResponse, responses=responses(400, 404, 413, 422))
def recommend_batch(req: S.RecommendBatchRequest, state: ServiceState = Depends(get_state)) -> Response:
    """Several recommendations in one request (at most 100), each as ``POST /api/recommend``
    takes it, all on the same snapshot of the space (a write is seen by all or none). The
    first request that fails fails the batch, its position named (``requests[2]: ...``)."""
    t0 = time.perf_counter()
    space = state.space.pinned()
    results = []
    for i, r in enumerate(req.requests):
        t = time.perf_counter()
        try:
            found = _recommend(space, r)
        except NotFoundError as e:
            raise ServiceError(404, "not_found", f"requests[{i}]: {e}") from None
        except TalkrecError as e:
            field = getattr(e, "field", None)
            raise ServiceError(422, "invalid_input", f"requests[{i}]: {e}",
                               field=f"requests[{i}].{field}" if field else None) from None
        results.append(hits_body(found, score_kind=score_kind(space, "recommend", r.strategy), k=r.k, offset=r.offset,
                                 t0=t, empty=(space, space.filter_where(filter_spec(r.filters)))))
    return json_response({"results": results, "took_ms": took_ms(t0)})


def _recommend(space: Space, req: S.RecommendRequest) -> list[Hit]:
    items = [space.resolve(i) for i in req.items] if req.items is not None else None
    negative = [space.resolve(i) for i in req.negative] if req.negative is not None else None
    return space.recommend(items=items, user=req.user, k=req.k, where=space.filter_where(filter_spec(req.filters)),
                           offset=req.offset, exclude_seen=req.exclude_seen, diversity=req.diversity,
                           max_per_artist=req.max_per_artist, artist_field=req.artist_field, pool=req.pool,
                           negative=negative, negative_weight=req.negative_weight, novelty=req.novelty,
                           strategy=req.strategy)


@router.get("/api/users", response_model=S.UsersResponse, responses=responses(422))
def users(limit: int = Query(20, ge=1, le=1000), state: ServiceState = Depends(get_state)) -> S.UsersResponse:
    """Known users with the most history (to try recommend / personalized search)."""
    top = state.space.users(limit)
    return S.UsersResponse(users=[S.UserRef(user_id=u, n_items=n) for u, n in top])
