"""Explanations: why an item is next to another in ``similar``, a hit for a search, or recommended."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from ...errors import InputError
from ...limits import NEGATIVE_WEIGHT_MAX
from ...space.hits import jsonable
from ...space.search import SEARCH_MODES
from .. import explain_schemas as E
from .. import schemas as S
from ..deps import ServiceState, get_state
from ..errors import responses

router = APIRouter(tags=["explain"])


@router.get("/api/explain", response_model=E.ExplainResponse, responses=responses(404, 422))
def explain(a: str = Query(..., min_length=1, max_length=200), b: str = Query(..., min_length=1, max_length=200),
            state: ServiceState = Depends(get_state)) -> E.ExplainResponse:
    """Why two items are close: shared tags and each modality pair's share of the cosine; and
    where ``b`` stands in what ``/api/items/{a}/similar`` serves, with each fused list's part."""
    space = state.space.pinned()
    out = space.explain(space.resolve(a), space.resolve(b))
    return E.ExplainResponse(**jsonable(out))


@router.get("/api/explain/search", response_model=E.ExplainSearchResponse, responses=responses(404, 422))
def explain_search(q: str = Query(..., min_length=1, max_length=S.QUERY_MAX_CHARS, description="the query"),
                   item: str = Query(..., min_length=1, max_length=200, description="an item id or exact name"),
                   mode: str | None = Query(None, pattern=f"^({'|'.join(SEARCH_MODES)})$",
                                            description="the search mode (default: the space's)"),
                   state: ServiceState = Depends(get_state)) -> E.ExplainSearchResponse:
    """Why an item is a hit for a query: its rank and score in what ``/api/search`` serves (no
    filter), each hybrid list's rank of it and part of the score, and the query's BM25 terms it
    matches."""
    space = state.space.pinned()
    out = space.explain_search(q, space.resolve(item), mode=mode)
    return E.ExplainSearchResponse(**jsonable(out))


@router.get("/api/explain/recommend", response_model=E.ExplainRecommendResponse, responses=responses(404, 422))
def explain_recommend(item: str = Query(..., min_length=1, max_length=200, description="an item id or exact name"),
                      user: str | None = Query(None, min_length=1, max_length=200, description="a user id"),
                      items: list[str] | None = Query(None, max_length=S.SEEDS_MAX,
                                                      description="the history instead of a user: item ids or names "
                                                                  "(repeat the parameter)"),
                      negative: list[str] | None = Query(None, max_length=S.SEEDS_MAX,
                                                         description="items not wanted, as in /api/recommend"),
                      negative_weight: float | None = Query(None, ge=0.0, le=NEGATIVE_WEIGHT_MAX,
                                                            description="their weight against the history "
                                                                        "(default: the space's)"),
                      strategy: S.RecommendStrategy | None = Query(
                          None, description="as in /api/recommend (default: the space's recommend.strategy)"),
                      state: ServiceState = Depends(get_state)) -> E.ExplainRecommendResponse:
    """Why an item is recommended from a user's history or from items (away from ``negative``):
    its rank and score in what ``/api/recommend`` serves (no filter), each term of its score,
    and the history items that bring it."""
    if (user is None) == (items is None):
        raise InputError("give exactly one of user or items", field="items")
    space = state.space.pinned()
    hist = [space.resolve(i) for i in items] if items is not None else None
    neg = [space.resolve(i) for i in negative] if negative is not None else None
    out = space.explain_recommend(space.resolve(item), items=hist, user=user, negative=neg,
                                  negative_weight=negative_weight, strategy=strategy)
    return E.ExplainRecommendResponse(**jsonable(out))
