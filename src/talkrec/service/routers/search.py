"""Natural-language search (plain and personalized) and query by example (a raw vector or
an uploaded media file)."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import cast

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import Response

from ...index.filters import FilterSpec
from ...space import SEARCH_MODES, Space
from ...space.search import search_score_kind as score_kind_of
from ...limits import K_MAX
from .. import schemas as S
from ..convert import hits, hits_response, took_ms
from ..deps import ServiceState, filter_spec, get_state, query_filters
from ..errors import responses

router = APIRouter(tags=["search"])

#: routes that take uploads (their own, larger body limit)
UPLOAD_PATHS = ("/api/query/media",)


def search_score_kind(space: Space, mode: str | None) -> S.ScoreKind:
    """:func:`talkrec.space.search.search_score_kind` as the response model types it."""
    return cast(S.ScoreKind, score_kind_of(space, mode))


@router.get("/api/search", response_model=S.HitsResponse, responses=responses(404, 422))
def search(q: str = Query(..., min_length=1, max_length=S.QUERY_MAX_CHARS, description="natural-language query"),
           k: int = Query(10, ge=1, le=K_MAX), offset: int = Query(0, ge=0, le=S.OFFSET_MAX),
           mode: str | None = Query(None, pattern=f"^({'|'.join(SEARCH_MODES)})$",
                                    description="multi (fused space, paper 001), text, lexical (BM25), "
                                                "hybrid (default: RRF of the three)"),
           filters: FilterSpec = Depends(query_filters),
           state: ServiceState = Depends(get_state)) -> Response:
    """Natural-language search with filters (tags, decade, numeric ranges, free expression).
    ``score_kind`` says what the scores are (cosines in multi mode, RRF scores in hybrid...)."""
    t0 = time.perf_counter()
    space = state.space.pinned()
    where = space.filter_where(filters)
    found = space.search(q, k, where=where, offset=offset, mode=mode)
    return hits_response(found, score_kind=search_score_kind(space, mode), k=k, offset=offset, t0=t0,
                         empty=(space, where))


@router.post("/api/search/personalized", response_model=S.PersonalizedSearchResponse,
             responses=responses(400, 404, 413, 422))
def personalized_search(req: S.PersonalizedSearchRequest,
                        state: ServiceState = Depends(get_state)) -> S.PersonalizedSearchResponse:
    """Text plus a user (paper 001 section 4.3): the query vector is
    ``normalize((1-alpha)*text + alpha*profile)``, the profile being the mean of the user's
    (or the given) items; ``alpha`` is the mixing weight."""
    t0 = time.perf_counter()
    space = state.space.pinned()
    items = [space.resolve(i) for i in req.items] if req.items is not None else None
    found = space.personalized_search(req.query, req.user, items=items, alpha=req.alpha, k=req.k,
                                      where=space.filter_where(filter_spec(req.filters)), offset=req.offset,
                                      exclude_seen=req.exclude_seen)
    return S.PersonalizedSearchResponse(items=hits(found), k=req.k, offset=req.offset, alpha=req.alpha,
                                        took_ms=took_ms(t0))


@router.post("/api/query/vector", response_model=S.HitsResponse, responses=responses(400, 413, 422))
def query_vector(req: S.VectorQuery, state: ServiceState = Depends(get_state)) -> Response:
    """Query by example: a raw vector in any modality's input space (e.g. the Spotify audio
    descriptors of a track), projected through that modality's trained encoder."""
    t0 = time.perf_counter()
    space = state.space.pinned()
    found = space.search_by_vector(req.modality, req.vector, req.k,
                                   where=space.filter_where(filter_spec(req.filters)), offset=req.offset)
    return hits_response(found, k=req.k, offset=req.offset, t0=t0)


@router.post("/api/query/media", response_model=S.HitsResponse, responses=responses(400, 409, 413, 422, 501))
def query_media(file: UploadFile = File(..., description="an audio or image file"),
                modality: str = Form(..., min_length=1, max_length=64),
                k: int = Form(10, ge=1, le=K_MAX), state: ServiceState = Depends(get_state)) -> Response:
    """Query by example with a media file, encoded by the modality's encoder (MusiCNN for audio,
    EfficientNet for images) when that encoder is installed and the space's modality was built
    from media files. Size-limited (413)."""
    t0 = time.perf_counter()
    space = state.space.pinned()
    with tempfile.TemporaryDirectory(prefix="talkrec-upload-") as tmp:
        path = Path(tmp) / f"upload{Path(file.filename or '').suffix.lower()}"
        with open(path, "wb") as out:
            shutil.copyfileobj(file.file, out)
        # an upload is not a catalog file: not cached; errors name it as the client did
        vec = space.encode_media(modality, path, cache=False, name=file.filename or "upload")
    found = space.search_by_vector(modality, vec, k)
    return hits_response(found, k=k, offset=0, t0=t0)
