"""Playlists: continue one from seed items, generate one from a text query."""
from __future__ import annotations

import time

from fastapi import APIRouter, Depends

from ...space.hits import jsonable
from .. import schemas as S
from ..convert import hits, took_ms
from ..deps import ServiceState, filter_spec, get_state
from ..errors import responses
from .search import search_score_kind

router = APIRouter(tags=["playlists"])

COHERENCE_MEASURE = ("coherence = mean pairwise cosine similarity of the playlist's items in the fused space "
                     "(1 = identical, 0 = unrelated); relevance = mean cosine of the items to the query. "
                     "*_plain_topn are the same figures for the plain top-n search results, the baseline.")


@router.post("/api/playlists/continue", response_model=S.ContinueResponse, responses=responses(400, 404, 413, 422))
def continue_playlist(req: S.ContinueRequest, state: ServiceState = Depends(get_state)) -> S.ContinueResponse:
    """The next items for an ordered playlist: no duplicates (seeds excluded), optional MMR
    diversity and at most ``max_per_artist`` items per artist."""
    t0 = time.perf_counter()
    space = state.space.pinned()
    c = space.continuation([space.resolve(i) for i in req.items], req.k,
                           where=space.filter_where(filter_spec(req.filters)), recency=req.recency,
                           diversity=req.diversity, max_per_artist=req.max_per_artist,
                           artist_field=req.artist_field, method=req.method)
    kind: S.ScoreKind = "session" if c.score_kind == "session" else "cosine"
    return S.ContinueResponse(items=hits(c.items), score_kind=kind, seeds=c.seeds, coherence=jsonable(c.coherence),
                              coherence_seeds=jsonable(c.coherence_seeds), notes=c.notes, took_ms=took_ms(t0))


@router.post("/api/playlists/generate", response_model=S.GenerateResponse, responses=responses(400, 413, 422))
def generate_playlist(req: S.GenerateRequest, state: ServiceState = Depends(get_state)) -> S.GenerateResponse:
    """A playlist of ``n`` items for a text query that also hangs together (paper 001 section
    4.3). Coherence is measured and reported next to the plain top-n baseline."""
    t0 = time.perf_counter()
    space = state.space.pinned()
    found, stats = space.generate_playlist(req.query, req.n, where=space.filter_where(filter_spec(req.filters)),
                                           coherence=req.coherence, pool=req.pool)
    st = S.PlaylistStats(**{k: jsonable(v) for k, v in stats.items() if k in S.PlaylistStats.model_fields})
    return S.GenerateResponse(items=hits(found), score_kind=search_score_kind(space, None), stats=st,
                              coherence_measure=COHERENCE_MEASURE, took_ms=took_ms(t0))
