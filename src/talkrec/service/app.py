"""The HTTP service: a JSON API (OpenAPI at ``/openapi.json``, docs at ``/docs``) and a web
page (``/``) over one built space.

``create_app(space_dir)`` loads the space once and includes one router per resource
(:mod:`talkrec.service.routers`); the routes only translate between HTTP and Space calls.
Reads run concurrently in the threadpool and never wait for a write: each request works on
the snapshot of the space that was current when it started. Writes (``POST`` and
``DELETE /api/items``) are serialized inside the Space and logged and fsync'ed before they
answer. Bad input is a 4xx with a JSON body ``{"error", "detail", ...}``, never a 500 (see
:mod:`talkrec.service.errors`).
"""
from __future__ import annotations

import ctypes
import gc
import ipaddress
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..device import limit_torch_threads
from ..space import Follower, Space
from .deps import ServiceState, guard_refusal, refuse_open_writes, require_key
from .errors import install_error_handlers, responses
from .middleware import DEFAULT_BODY_TIMEOUT, BodyLimitMiddleware, ReadsInFlightMiddleware
from .routers import explain, items, meta, playlists, recommend, search

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
DEFAULT_MAX_BODY = 2 * 1024 * 1024
DEFAULT_MAX_UPLOAD = 25 * 1024 * 1024


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def writes_refused(host: str, api_key: str | None, allow_open_writes: bool) -> bool:
    """Refuse writes on a server bound beyond loopback without an API key (unless told to
    allow them); warn either way."""
    if api_key is not None or is_loopback(host):
        return False
    if allow_open_writes:
        log.warning("serving on %s without an API key and with --allow-open-writes: anyone who can reach it can "
                    "add and delete items", host)
        return False
    log.warning("serving on %s without an API key: writes (POST/DELETE /api/items) are refused with 403; set an "
                "API key (--api-key / TALKREC_API_KEY) or pass --allow-open-writes", host)
    return True


def _trim_heap() -> None:
    """Hand the heap's free pages back to the system (glibc ``malloc_trim``; elsewhere nothing):
    loading and warming a space leaves ~20 MB of freed temporaries resident."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def create_app(space_dir: str | Path, *, api_key: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY,
               max_upload_bytes: int | None = None, query_cache: int = 1024, host: str = "127.0.0.1",
               allow_open_writes: bool = False, body_timeout: float = DEFAULT_BODY_TIMEOUT, follow: bool = False,
               follow_interval: float = 0.05) -> FastAPI:
    """The FastAPI app serving the space at ``space_dir`` (loaded once, here).

    ``api_key`` (or env ``TALKREC_API_KEY`` via the CLI) protects write endpoints; ``host``
    is where the server is bound: beyond loopback without an API key, writes are refused
    (403) unless ``allow_open_writes``. ``max_body_bytes`` caps JSON bodies (413 above),
    ``max_upload_bytes`` media uploads (env ``TALKREC_MAX_UPLOAD_BYTES``, default 25 MB);
    a body that takes longer than ``body_timeout`` seconds to arrive is answered 408;
    ``query_cache``: text query vectors kept (LRU). ``follow``: serve reads of a space another
    process writes (a read replica, :class:`~talkrec.space.Follower`: what it writes shows here
    within about ``follow_interval`` seconds), and answer writes 409."""
    if max_upload_bytes is None:
        max_upload_bytes = int(os.environ.get("TALKREC_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD))
    api_key = api_key or None          # an empty key protects nothing: it is no key (refused or warned below)
    threads = int(os.environ.get("TALKREC_TORCH_THREADS", "1"))
    if threads > 0:
        # one intra-op thread per request: concurrency comes from requests, and OpenMP
        # spin-waiting of a multi-threaded torch slows everything else on a busy machine (20x here)
        limit_torch_threads(threads)
    refused = not follow and writes_refused(host, api_key, allow_open_writes)     # a follower refuses them all
    space = Space.load(space_dir, query_cache=query_cache, **({"follow": True} if follow else {}))
    follower = Follower(space, interval=follow_interval, freeze=True) if follow else None     # as gc.freeze below
    space.warm_up()  # the text model, BM25 and the hits' fields now, not on the first request
    # What is loaded now lives as long as the server: out of the cyclic collector's full passes,
    # which walked every loaded object (~400 ms per 1,000 similar k=200; p99 at k=200 was 80-120 ms)
    gc.collect()
    gc.freeze()
    _trim_heap()
    cfg = space.config
    state = ServiceState(space, api_key, writes_refused=refused, write_nice=space.store.write_nice, follower=follower)
    if follower is not None:
        follower.catch_up()
        follower.start()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if follower is not None:
            follower.stop()
        state.close()          # let the writes in progress finish
        space.close()          # finish a compaction, release the space's writer lock

    app = FastAPI(
        lifespan=lifespan,
        title="talkrec",
        version=__version__,
        description="Search, recommendation, personalized search, playlists and cold-start upserts over one "
                    f"multimodal embedding space (space '{cfg.get('name')}', {len(space.index)} items, "
                    f"modalities {', '.join(space.modalities)}). Errors are JSON: "
                    "{\"error\": code, \"detail\": message}.",
        responses=responses(400, 408, 413, 422),   # any route: Content-Length, body, unknown query name
    )
    app.state.service = state
    app.add_middleware(BodyLimitMiddleware, max_body=max_body_bytes, max_upload=max_upload_bytes,
                       upload_paths=search.UPLOAD_PATHS, body_timeout=body_timeout)
    if follower is not None:           # its loads of a generation make way for the reads in flight
        app.add_middleware(ReadsInFlightMiddleware, reads=space.store.reads)
    writes = frozenset(r.endpoint for r in items.write_router.routes if isinstance(r, APIRoute))
    install_error_handlers(app, guard=lambda request: guard_refusal(request, writes))

    @app.get("/", include_in_schema=False)
    def index_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # recommend's /api/items/{id}/similar before items' /api/items/{id}: an id may hold "/"
    for router in (meta.router, search.router, recommend.router, explain.router, items.router, playlists.router):
        app.include_router(router)
    guard = ([Depends(require_key)] if api_key else []) + ([Depends(refuse_open_writes)] if refused or follow else [])
    codes = [c for c, on in ((401, api_key is not None), (403, refused), (409, follow)) if on]
    app.include_router(items.write_router, dependencies=guard, responses=responses(*codes) if codes else {})
    return app
