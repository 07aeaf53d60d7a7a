"""Liveness, version and the filter facets."""
from __future__ import annotations

import time
from dataclasses import asdict

from fastapi import APIRouter, Depends

from ...space.hits import jsonable
from ...space.popularity import novelty_setting
from ...space.strategies import recommend_strategy
from ... import __version__
from .. import schemas as S
from ..deps import ServiceState, get_state

router = APIRouter(tags=["meta"])


@router.get("/api/health", response_model=S.HealthResponse)
@router.head("/api/health", include_in_schema=False)
async def health(state: ServiceState = Depends(get_state)) -> S.HealthResponse:
    """Liveness: the space is loaded and answering. ``async``: answered on the event loop, so it
    does not queue behind searches when every worker thread is busy (a load balancer would
    take a busy server for a dead one). ``degraded``: alive, and ``problems`` says what needs
    a look (a background compaction failing, writes refused). ``HEAD`` too: what load balancers and ``curl -I`` send."""
    follows = S.FollowStatus(**state.follower.status()) if state.follower is not None else None
    problems = state.space.store.health + ([f"following the writer's files failed: {follows.error}"]
                                           if follows is not None and follows.error else [])
    return S.HealthResponse(status="degraded" if problems else "ok", problems=problems, items=len(state.space.index),
                            uptime_s=round(time.time() - state.started, 1), follows=follows)


@router.get("/api/version", response_model=S.VersionResponse)
def version(state: ServiceState = Depends(get_state)) -> S.VersionResponse:
    """talkrec version and what the served space holds (``novelty``: the default of
    ``recommend`` and ``similar``, what the page's sliders start at)."""
    space, cfg = state.space, state.space.config
    info = {"name": cfg.get("name"), "dataset": cfg.get("dataset"), "created": cfg.get("created"),
            "items": len(space.index), "modalities": space.modalities,
            "text_model": cfg.get("text", {}).get("model"),
            "search_mode": cfg.get("search", {}).get("mode", "hybrid"),
            "recommend_strategy": recommend_strategy(space, None),
            "novelty": {part: novelty_setting(space, part, None) for part in ("recommend", "similar")},
            "write_protected": state.api_key is not None}
    return S.VersionResponse(talkrec=__version__, api="1", space=jsonable(info))


@router.get("/api/facets", response_model=S.FacetsResponse)
def facets(state: ServiceState = Depends(get_state)) -> S.FacetsResponse:
    """Filterable fields (numeric ranges), the most frequent tags, and the decades."""
    f = state.space.facets()
    return S.FacetsResponse(fields=[S.FieldInfo(**asdict(x)) for x in f.fields],
                            top_tags=[S.TagCount(tag=t, count=n) for t, n in f.top_tags], decades=f.decades)
