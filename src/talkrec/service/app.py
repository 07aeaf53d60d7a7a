"""The HTTP service: a JSON API (OpenAPI at ``/openapi.json``, docs at ``/docs``) and a web
page (``/``) over one built space.

``create_app(space_dir)`` loads the space once and includes one router per resource
(:mod:`talkrec.service.routers`); the routes only translate between HTTP and Space calls.
Reads run concurrently in the threadpool; item writes take a writer lock (readers wait
while an upsert swaps the index arrays) and are persisted atomically by
:meth:`talkrec.Space.add_items`. Bad input is a 4xx with a JSON body
``{"error", "detail", ...}``, never a 500 (see :mod:`talkrec.service.errors`).
"""
from __future__ import annotations

import os
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..space import Space
from .deps import ServiceState, require_key
from .errors import install_error_handlers, responses
from .middleware import BodyLimitMiddleware
from .routers import items, meta, playlists, recommend, search

STATIC = Path(__file__).parent / "static"
DEFAULT_MAX_BODY = 2 * 1024 * 1024
DEFAULT_MAX_UPLOAD = 25 * 1024 * 1024


def create_app(space_dir: str | Path, *, api_key: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY,
               max_upload_bytes: int | None = None, query_cache: int = 1024) -> FastAPI:
    """The FastAPI app serving the space at ``space_dir`` (loaded once, here).

    ``api_key`` (or env ``TALKREC_API_KEY`` via the CLI) protects write endpoints;
    ``max_body_bytes`` caps JSON bodies (413 above), ``max_upload_bytes`` media uploads
    (env ``TALKREC_MAX_UPLOAD_BYTES``, default 25 MB); ``query_cache``: text query vectors
    kept (LRU)."""
    if max_upload_bytes is None:
        max_upload_bytes = int(os.environ.get("TALKREC_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD))
    threads = int(os.environ.get("TALKREC_TORCH_THREADS", "1"))
    if threads > 0:
        # one intra-op thread per request: concurrency comes from requests, and OpenMP
        # spin-waiting of a multi-threaded torch slows everything else on a busy machine (20x here)
        import torch
        torch.set_num_threads(threads)
    space = Space.load(space_dir, query_cache=query_cache)
    space.warm_up()  # the text model and BM25 now, not on the first request
    cfg = space.config

    app = FastAPI(
        title="talkrec",
        version=__version__,
        description="Search, recommendation, personalized search, playlists and cold-start upserts over one "
                    f"multimodal embedding space (space '{cfg.get('name')}', {len(space.item_ids)} items, "
                    f"modalities {', '.join(space.modalities)}). Errors are JSON: "
                    "{\"error\": code, \"detail\": message}.",
    )
    app.state.service = ServiceState(space, api_key)
    app.add_middleware(BodyLimitMiddleware, max_body=max_body_bytes, max_upload=max_upload_bytes,
                       upload_paths=search.UPLOAD_PATHS)
    install_error_handlers(app)

    @app.get("/", include_in_schema=False)
    def index_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in (meta.router, search.router, items.router, recommend.router, playlists.router):
        app.include_router(router)
    app.include_router(items.write_router, dependencies=[Depends(require_key)] if api_key else [],
                       responses=responses(401) if api_key else {})
    return app
