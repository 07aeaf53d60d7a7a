"""The HTTP service: a JSON API (OpenAPI at ``/openapi.json``, docs at ``/docs``) and a web
page (``/``) over one built space.

``create_app(space_dir)`` loads the space once. Reads run concurrently in the threadpool;
item writes take a writer lock (readers wait while an upsert swaps the index arrays) and
are persisted atomically by :meth:`talkrec.Space.add_items`. Bad input is a 4xx with a JSON
body ``{"error", "detail", ...}``, never a 500.
"""
from __future__ import annotations

import hmac
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import InputError, NotFoundError, TalkrecError
from ..index.filters import parse_where
from ..index.store import VectorIndex
from ..playlists import playlist_stats
from ..space import Hit as SpaceHit
from ..space import SEARCH_MODES, Space
from . import schemas as S

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
DEFAULT_MAX_BODY = 2 * 1024 * 1024
DEFAULT_MAX_UPLOAD = 25 * 1024 * 1024
UPLOAD_PATHS = ("/api/query/media",)
COHERENCE_MEASURE = ("coherence = mean pairwise cosine similarity of the playlist's items in the fused space "
                     "(1 = identical, 0 = unrelated); relevance = mean cosine of the items to the query. "
                     "*_plain_topn are the same figures for the plain top-n search results, the baseline.")
MEDIA_EXTENSIONS = {"audio": (".wav", ".mp3", ".flac", ".ogg"), "image": (".jpg", ".jpeg", ".png", ".webp", ".bmp")}


class ServiceError(Exception):
    """An error with an HTTP status (used for 401, 409, 413 and 501)."""

    def __init__(self, status: int, error: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.field = status, error, detail, field


# --------------------------------------------------------------------------- helpers
class RWLock:
    """Many readers or one writer; a waiting writer blocks new readers (no starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _Pending:
    __slots__ = ("text", "value", "error")

    def __init__(self, text: str) -> None:
        self.text = text
        self.value: np.ndarray | None = None
        self.error: BaseException | None = None


class SerializedTextEncoder:
    """Wraps the space's text encoder: one encode at a time (Hugging Face fast tokenizers are
    not safe to call from several threads: "Already borrowed"), an LRU cache of query vectors
    (results as you type re-send the same prefixes), and micro-batching: queries that arrive
    while an encode runs are encoded together in the next one (one forward pass for many
    concurrent searches)."""

    def __init__(self, encoder: Any, cache_size: int = 1024, max_batch: int = 32) -> None:
        self._enc = encoder
        self._lock = threading.Lock()  # held while encoding
        self._qlock = threading.Lock()  # guards the queue and the cache
        self._queue: list[_Pending] = []
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._max_batch = max_batch

    def encode(self, inputs: Any, **kw: Any) -> np.ndarray:
        if not (isinstance(inputs, str) and kw.get("kind") == "query" and set(kw) <= {"kind"}):
            with self._lock:
                return self._enc.encode(inputs, **kw)
        with self._qlock:
            hit = self._cache.get(inputs)
            if hit is not None:
                self._cache.move_to_end(inputs)
                return hit.copy()
            mine = _Pending(inputs)
            self._queue.append(mine)
        with self._lock:  # whoever holds the lock encodes everything queued so far
            if mine.value is None and mine.error is None:
                with self._qlock:
                    batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch:]
                    if mine not in batch:  # over max_batch: put ours first
                        self._queue.insert(0, batch.pop())
                        batch.insert(0, mine)
                        self._queue.remove(mine)
                try:
                    V = np.atleast_2d(self._enc.encode([p.text for p in batch], kind="query"))
                    with self._qlock:
                        for p, v in zip(batch, V):
                            p.value = v
                            self._cache[p.text] = v
                            self._cache.move_to_end(p.text)
                        while len(self._cache) > self._cache_size:
                            self._cache.popitem(last=False)
                except BaseException as e:  # noqa: BLE001 - handed to every waiter
                    for p in batch:
                        p.error = e
        if mine.error is not None:
            raise mine.error
        assert mine.value is not None
        return mine.value.copy()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._enc, name)


def _clean(v: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy -> Python, unknown objects -> str."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_clean(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if v is None or isinstance(v, str):
        return v
    try:
        import pandas as pd
        if v is pd.NA or v is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return str(v)




def _hits(hits: list[SpaceHit]) -> list[S.Hit]:
    return [S.Hit(item_id=h.item_id, name=h.name, score=float(h.score) if math.isfinite(h.score) else 0.0,
                  metadata=_clean(h.metadata)) for h in hits]


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1e3, 2)


def _err(status: int, error: str, detail: str, field: str | None = None,
         errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error, "detail": detail}
    if field is not None:
        body["field"] = field
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def R(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error codes."""
    desc = {400: "Bad request", 401: "Missing or wrong API key", 404: "Unknown item or user",
            409: "Not applicable to this space", 413: "Payload too large", 422: "Invalid input",
            501: "Encoder not installed"}
    return {c: {"model": S.ErrorResponse, "description": desc[c]} for c in codes}


class BodyLimitMiddleware:
    """Rejects request bodies over a byte limit with 413, by Content-Length and by the bytes
    actually streamed (the body is buffered up to the limit, then replayed to the app)."""

    def __init__(self, app: ASGIApp, max_body: int, max_upload: int, upload_paths: tuple[str, ...]) -> None:
        self.app, self.max_body, self.max_upload, self.upload_paths = app, max_body, max_upload, upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_upload if scope.get("path", "") in self.upload_paths else self.max_body
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    await _err(400, "bad_request", "invalid Content-Length header")(scope, receive, send)
                    return
                if n > limit:
                    await self._too_large(scope, receive, send, limit)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                await self.app(scope, _replay([], msg, receive), send)
                return
            body = msg.get("body", b"")
            size += len(body)
            if size > limit:
                await self._too_large(scope, receive, send, limit)
                return
            chunks.append(body)
            if not msg.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        await _err(413, "payload_too_large", f"request body larger than {limit} bytes")(scope, receive, send)


def _replay(chunks: list[bytes], first: Message | None, receive: Receive) -> Receive:
    sent = False

    async def inner() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if first is not None:
                return first
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return await receive()
    return inner


# --------------------------------------------------------------------------- state
class Service:
    """The loaded space plus what the endpoints share (locks, caches, facets)."""

    def __init__(self, space: Space, api_key: str | None, query_cache: int) -> None:
        self.space = space
        self.api_key = api_key
        self.lock = RWLock()
        self.started = time.time()
        self._facets: S.FacetsResponse | None = None
        self._names: dict[str, str] | None = None
        self._users: list[S.UserRef] | None = None
        enc = space.text_encoder()
        enc.encode("warm up", kind="query")  # load the model now, not on the first request
        space._text_encoder = SerializedTextEncoder(enc, query_cache)  # adapter: see docs/service.md
        space.lexical_index()  # BM25 for hybrid search, built now rather than on the first request

    # ---------------------------------------------------------------- lookups
    def resolve(self, ref: str) -> str:
        """An item id, or an exact (case-insensitive) item name."""
        if self.space.index.position(ref) is not None:
            return ref
        if self._names is None:
            meta = self.space.index.meta
            names: dict[str, str] = {}
            for iid, n in zip(meta["item_id"].astype(str), meta["name"].astype(str)):
                names.setdefault(n.lower(), iid)
            self._names = names
        iid = self._names.get(ref.lower())
        if iid is None:
            raise NotFoundError(f"unknown item {ref!r}")
        return iid

    def after_write(self) -> None:
        self._facets = None
        self._names = None

    # ---------------------------------------------------------------- filters
    def where(self, f: S.Filters | None) -> dict[str, Any] | None:
        """Filters -> the ``where`` mapping of the Python API (validated by the space)."""
        if f is None:
            return None
        out: dict[str, Any] = {}

        def add(field: str, op: str, value: Any) -> None:
            cur = out.setdefault(field, {} if op != "=" else [])
            if op == "=":
                if isinstance(cur, dict):
                    if "=" in cur:
                        raise InputError(f"conflicting filters on {field!r}", field="filters")
                    cur["="] = value
                else:
                    cur.append(value)
            else:
                if isinstance(cur, list):
                    if len(cur) > 1:
                        raise InputError(f"conflicting filters on {field!r}", field="filters")
                    out[field] = cur = ({"=": cur[0]} if cur else {})
                if op in cur:
                    raise InputError(f"two '{op}' filters on {field!r}; combine them into one range",
                                     field="filters")
                cur[op] = value

        cols = set(self.space.index.meta.columns)
        tag_col = "tags" if "tags" in cols else None
        for t in f.tags:
            if not t.strip():
                raise InputError("empty tag in filters", field="tags")
            if tag_col is None:
                raise InputError("this space has no tags to filter on", field="tags")
            add(tag_col, "=", t.strip())
        if f.decade and f.decade.strip():
            self._decade(f.decade.strip(), cols, add)
        for name, r in f.ranges.items():
            if r.min is None and r.max is None:
                continue
            if r.min is not None and r.max is not None and r.min > r.max:
                raise InputError(f"range on {name!r}: min {r.min} > max {r.max}", field="ranges")
            if name not in cols:
                raise InputError(f"unknown range field {name!r}; numeric fields: {self.numeric_fields()}",
                                 field="ranges")
            if r.min is not None:
                add(name, ">=", r.min)
            if r.max is not None:
                add(name, "<=", r.max)
        if f.where and f.where.strip():
            for c in parse_where(f.where):
                add(c.field, c.op, c.value)
        return out or None

    def _decade(self, d: str, cols: set[str], add: Callable[[str, str, Any], None]) -> None:
        m = re.fullmatch(r"(?:(1[89]|20)?(\d)0)'?s?", d.lower())
        if not m:
            raise InputError(f"decade must look like '80s' or '1980s', got {d!r}", field="decade")
        century = m.group(1) or ("20" if m.group(2) in "012" else "19")
        full = int(century + m.group(2) + "0")
        if "decade" in cols:
            # decade tags come in many spellings (80s, 1980s, 80's, 1980): match the two digits
            add("decade", "~", str(full)[2:])
        elif "year" in cols:
            add("year", ">=", full)
            add("year", "<=", full + 9)
        else:
            raise InputError("this space has no decade or year field", field="decade")

    def numeric_fields(self) -> list[str]:
        return [f.name for f in self.facets().fields if f.type == "numeric"]

    def facets(self) -> S.FacetsResponse:
        if self._facets is None:
            import pandas as pd
            meta = self.space.index.meta
            fields: list[S.FieldInfo] = []
            tag_counts: dict[str, int] = {}
            decades: dict[str, int] = {}
            for c in meta.columns:
                if c in ("item_id", "name", "description", "norm_name", "cold_start") or c.startswith("description_") \
                        or c.startswith("_"):
                    continue
                s = meta[c]
                head = s.dropna().head(50).tolist()
                if any(isinstance(v, (list, tuple, np.ndarray)) for v in head):
                    fields.append(S.FieldInfo(name=c, type="list"))
                    if c in ("tags", "decade"):
                        target = tag_counts if c == "tags" else decades
                        for v in s:
                            if isinstance(v, (list, tuple, np.ndarray)):
                                for t in v:
                                    target[str(t)] = target.get(str(t), 0) + 1
                elif pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                    num = pd.to_numeric(s, errors="coerce")
                    fields.append(S.FieldInfo(name=c, type="numeric", min=_clean(num.min()), max=_clean(num.max())))
                else:
                    fields.append(S.FieldInfo(name=c, type="text"))
            top = sorted(tag_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:200]
            dec = sorted({c for c in map(_canonical_decade, decades) if c}, key=_decade_key)
            self._facets = S.FacetsResponse(fields=fields, top_tags=[S.TagCount(tag=t, count=n) for t, n in top],
                                            decades=dec)
        return self._facets

    def users(self, limit: int) -> list[S.UserRef]:
        if self._users is None:
            inter = self.space.interactions
            if inter is None or not len(inter):
                self._users = []
            else:
                counts = inter.groupby("user_id").size().sort_values(ascending=False)
                self._users = [S.UserRef(user_id=str(u), n_items=int(n)) for u, n in counts.head(1000).items()]
        return self._users[:limit]

    # ---------------------------------------------------------------- auth
    def check_key(self, key: str | None) -> None:
        if self.api_key is None:
            return
        if key is None or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise ServiceError(401, "unauthorized", "this endpoint needs the API key in the X-API-Key header")


def _canonical_decade(x: str) -> str | None:
    """'80s', "80's", '1980s', '1985' -> '1980s'; anything else -> None."""
    x = x.strip().lower()
    m = re.fullmatch(r"(1[89]|20)?(\d)0'?s", x) or re.fullmatch(r"(1[89]|20)(\d)\d", x)
    if not m:
        return None
    century = m.group(1) or ("20" if m.group(2) in "012" else "19")
    return f"{century}{m.group(2)}0s"


def _decade_key(x: str) -> int:
    m = re.search(r"(\d+)", x)
    if not m:
        return 10_000
    v = int(m.group(1))
    return v if v >= 100 else (1900 + v if v >= 30 else 2000 + v)


# --------------------------------------------------------------------------- app
def create_app(space_dir: str | Path, *, api_key: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY,
               max_upload_bytes: int | None = None, query_cache: int = 1024) -> FastAPI:
    """The FastAPI app serving the space at ``space_dir`` (loaded once, here).

    ``api_key`` (or env ``TALKREC_API_KEY`` via the CLI) protects write endpoints;
    ``max_body_bytes`` caps JSON bodies (413 above), ``max_upload_bytes`` media uploads
    (env ``TALKREC_MAX_UPLOAD_BYTES``, default 25 MB)."""
    if max_upload_bytes is None:
        max_upload_bytes = int(os.environ.get("TALKREC_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD))
    threads = int(os.environ.get("TALKREC_TORCH_THREADS", "1"))
    if threads > 0:
        # one intra-op thread per request: concurrency comes from requests, and OpenMP
        # spin-waiting of a multi-threaded torch slows everything else on a busy machine (20x here)
        import torch
        torch.set_num_threads(threads)
    space = Space.load(space_dir)
    svc = Service(space, api_key, query_cache)
    cfg = space.config

    app = FastAPI(
        title="talkrec",
        version=__version__,
        description="Search, recommendation, personalized search, playlists and cold-start upserts over one "
                    f"multimodal embedding space (space '{cfg.get('name')}', {len(space.index)} items, "
                    f"modalities {', '.join(space.modalities)}). Errors are JSON: "
                    "{\"error\": code, \"detail\": message}.",
    )
    app.state.service = svc
    app.add_middleware(BodyLimitMiddleware, max_body=max_body_bytes, max_upload=max_upload_bytes,
                       upload_paths=UPLOAD_PATHS)

    # ---------------------------------------------------------------- errors
    @app.exception_handler(InputError)
    async def _input_error(request: Request, e: InputError) -> JSONResponse:
        return _err(422, "invalid_input", str(e), field=e.field)

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, e: NotFoundError) -> JSONResponse:
        return _err(404, "not_found", str(e))

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, e: ServiceError) -> JSONResponse:
        return _err(e.status, e.error, e.detail, field=e.field)

    @app.exception_handler(TalkrecError)
    async def _talkrec_error(request: Request, e: TalkrecError) -> JSONResponse:
        return _err(422, "invalid_input", str(e))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = []
        for x in e.errors():
            loc = [p if isinstance(p, (str, int)) else str(p) for p in x.get("loc", ())]
            msg = str(x.get("msg", "invalid"))
            if x.get("type") == "json_invalid":
                msg = f"malformed JSON: {x.get('ctx', {}).get('error', msg)}"
            errors.append({"loc": loc, "msg": msg, "type": str(x.get("type", ""))})
        detail = "; ".join(f"{'.'.join(str(p) for p in er['loc'])}: {er['msg']}" for er in errors) or "invalid request"
        return _err(422, "validation_error", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        detail = str(e.detail)
        if e.status_code == 400 and "parsing the body" in detail:
            detail = "could not parse the request body: malformed JSON or form data, or not UTF-8"
        return _err(e.status_code, code, detail, headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:  # pragma: no cover - last resort
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _err(500, "internal_error", f"internal error ({type(e).__name__}); see the server log")

    # ---------------------------------------------------------------- dependencies
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="required on write endpoints when the server has an API key")

    def require_key(key: str | None = Depends(key_header)) -> None:
        svc.check_key(key)

    def query_filters(
        tag: list[str] = Query([], max_length=20, description="repeatable: items must carry all these tags"),
        decade: str | None = Query(None, max_length=16, pattern=S.DECADE_PATTERN, description="e.g. 80s or 1980s"),
        range_: list[str] = Query([], alias="range", max_length=10,
                                  description="repeatable numeric range FIELD:MIN:MAX, a bound may be empty "
                                              "(listeners:1000:)"),
        where: str | None = Query(None, max_length=500, description="filter expression, e.g. 'listeners>=1000'"),
    ) -> S.Filters:
        ranges: dict[str, S.Range] = {}
        for r in range_:
            parts = r.split(":")
            if len(parts) != 3 or not parts[0].strip():
                raise InputError(f"range must be FIELD:MIN:MAX, got {r!r}", field="range")
            try:
                lo = float(parts[1]) if parts[1].strip() else None
                hi = float(parts[2]) if parts[2].strip() else None
            except ValueError:
                raise InputError(f"range bounds must be numbers, got {r!r}", field="range") from None
            if (lo is not None and not math.isfinite(lo)) or (hi is not None and not math.isfinite(hi)):
                raise InputError(f"range bounds must be finite, got {r!r}", field="range")
            ranges[parts[0].strip()] = S.Range(min=lo, max=hi)
        return S.Filters(tags=[t for t in tag], decade=decade or None, ranges=ranges, where=where)

    # ---------------------------------------------------------------- page + meta
    @app.get("/", include_in_schema=False)
    def index_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/health", response_model=S.HealthResponse, tags=["meta"])
    def health() -> S.HealthResponse:
        """Liveness: the space is loaded and answering."""
        return S.HealthResponse(status="ok", items=len(space.index), uptime_s=round(time.time() - svc.started, 1))

    @app.get("/api/version", response_model=S.VersionResponse, tags=["meta"])
    def version() -> S.VersionResponse:
        """talkrec version and what the served space holds."""
        info = {"name": cfg.get("name"), "dataset": cfg.get("dataset"), "created": cfg.get("created"),
                "items": len(space.index), "modalities": space.modalities,
                "text_model": cfg.get("text", {}).get("model"),
                "search_mode": cfg.get("search", {}).get("mode", "hybrid"),
                "write_protected": svc.api_key is not None}
        return S.VersionResponse(talkrec=__version__, api="1", space=_clean(info))

    @app.get("/api/facets", response_model=S.FacetsResponse, tags=["meta"])
    def facets() -> S.FacetsResponse:
        """Filterable fields (numeric ranges), the most frequent tags, and the decades."""
        with svc.lock.read():
            return svc.facets()

    # ---------------------------------------------------------------- search
    @app.get("/api/search", response_model=S.HitsResponse, tags=["search"], responses=R(404, 422))
    def search(q: str = Query(..., min_length=1, max_length=S.QUERY_MAX_CHARS, description="natural-language query"),
               k: int = Query(10, ge=1, le=S.K_MAX), offset: int = Query(0, ge=0, le=S.OFFSET_MAX),
               mode: str | None = Query(None, pattern=f"^({'|'.join(SEARCH_MODES)})$",
                                        description="multi (fused space, paper 001), text, lexical (BM25), "
                                                    "hybrid (default: RRF of the three)"),
               filters: S.Filters = Depends(query_filters)) -> S.HitsResponse:
        """Natural-language search with filters (tags, decade, numeric ranges, free expression)."""
        t0 = time.perf_counter()
        if not q.strip():
            raise InputError("query text is empty", field="q")
        with svc.lock.read():
            hits = space.search(q, k, where=svc.where(filters), offset=offset, mode=mode)
            return S.HitsResponse(items=_hits(hits), k=k, offset=offset, took_ms=_ms(t0))

    @app.post("/api/search/personalized", response_model=S.PersonalizedSearchResponse, tags=["search"],
              responses=R(400, 404, 413, 422))
    def personalized_search(req: S.PersonalizedSearchRequest) -> S.PersonalizedSearchResponse:
        """Text plus a user (paper 001 section 4.3): the query vector is
        ``normalize((1-alpha)*text + alpha*profile)``, the profile being the mean of the user's
        (or the given) items; ``alpha`` is the mixing weight."""
        t0 = time.perf_counter()
        if not req.query.strip():
            raise InputError("query text is empty", field="query")
        with svc.lock.read():
            items = [svc.resolve(i) for i in req.items] if req.items is not None else None
            hits = space.personalized_search(req.query, req.user, items=items, alpha=req.alpha, k=req.k,
                                             where=svc.where(req.filters), offset=req.offset,
                                             exclude_seen=req.exclude_seen)
            return S.PersonalizedSearchResponse(items=_hits(hits), k=req.k, offset=req.offset, alpha=req.alpha,
                                                took_ms=_ms(t0))

    @app.post("/api/query/vector", response_model=S.HitsResponse, tags=["search"], responses=R(400, 413, 422))
    def query_vector(req: S.VectorQuery) -> S.HitsResponse:
        """Query by example: a raw vector in any modality's input space (e.g. the Spotify audio
        descriptors of a track), projected through that modality's trained encoder."""
        t0 = time.perf_counter()
        with svc.lock.read():
            x64 = np.asarray(req.vector, dtype=np.float64)
            if not (np.abs(x64) < 3e38).all():
                raise InputError("vector values must be finite 32-bit floats (|x| < 3e38)", field="vector")
            x = x64.astype(np.float32)
            hits = space.search_by_vector(req.modality, x, req.k, where=svc.where(req.filters), offset=req.offset)
            return S.HitsResponse(items=_hits(hits), k=req.k, offset=req.offset, took_ms=_ms(t0))

    @app.post("/api/query/media", response_model=S.HitsResponse, tags=["search"], responses=R(400, 409, 413, 422, 501))
    def query_media(file: UploadFile = File(..., description="an audio or image file"),
                    modality: str = Form(..., min_length=1, max_length=64),
                    k: int = Form(10, ge=1, le=S.K_MAX)) -> S.HitsResponse:
        """Query by example with a media file, encoded by the modality's encoder (MusiCNN for audio,
        EfficientNet for images) when that encoder is installed and the space's modality was built
        from media files. Size-limited (413)."""
        t0 = time.perf_counter()
        vec = _encode_media(space, modality, file)
        with svc.lock.read():
            hits = space.search_by_vector(modality, vec, k)
            return S.HitsResponse(items=_hits(hits), k=k, offset=0, took_ms=_ms(t0))

    # ---------------------------------------------------------------- items
    @app.get("/api/items", response_model=S.LookupResponse, tags=["items"], responses=R(422))
    def lookup(name: str = Query(..., min_length=1, max_length=200, description="case-insensitive name substring"),
               limit: int = Query(10, ge=1, le=100)) -> S.LookupResponse:
        """Find items by name (for pickers)."""
        with svc.lock.read():
            meta = space.index.meta
            names = meta["name"].astype(str)
            low = names.str.lower()
            needle = name.strip().lower()
            if not needle:
                raise InputError("name is empty", field="name")
            hit = low.str.contains(needle, regex=False).to_numpy()
            idx = np.flatnonzero(hit)
            order = sorted(idx.tolist(), key=lambda i: (not low.iat[i].startswith(needle), len(low.iat[i])))[:limit]
            return S.LookupResponse(items=[S.ItemRef(item_id=str(meta["item_id"].iat[i]), name=names.iat[i])
                                           for i in order])

    @app.get("/api/items/{item_id}", response_model=S.ItemDetail, tags=["items"], responses=R(404, 422))
    def item(item_id: str) -> S.ItemDetail:
        """Everything about one item: description, which modalities it has, metadata."""
        with svc.lock.read():
            iid = svc.resolve(item_id)
            row = space.item(iid)
        meta = {k: _clean(v) for k, v in row.items()
                if k not in ("item_id", "name", "description", "modalities", "cold_start", "norm_name", "join_name")
                and not k.startswith("_")}
        mods = row.get("modalities") or []
        return S.ItemDetail(item_id=iid, name=str(row.get("name", iid)), description=row.get("description"),
                            modalities=[str(m) for m in mods], space_modalities=space.modalities,
                            cold_start=bool(row.get("cold_start") or False), metadata=meta)

    @app.get("/api/items/{item_id}/similar", response_model=S.HitsResponse, tags=["recommend"],
             responses=R(404, 422))
    def similar(item_id: str, k: int = Query(10, ge=1, le=S.K_MAX), offset: int = Query(0, ge=0, le=S.OFFSET_MAX),
                filters: S.Filters = Depends(query_filters)) -> S.HitsResponse:
        """Items nearest to an item in the fused space (the item itself excluded), with filters."""
        t0 = time.perf_counter()
        with svc.lock.read():
            hits = space.similar(svc.resolve(item_id), k, where=svc.where(filters), offset=offset)
            return S.HitsResponse(items=_hits(hits), k=k, offset=offset, took_ms=_ms(t0))

    @app.get("/api/explain", response_model=S.ExplainResponse, tags=["recommend"], responses=R(404, 422))
    def explain(a: str = Query(..., min_length=1, max_length=200), b: str = Query(..., min_length=1, max_length=200)
                ) -> S.ExplainResponse:
        """Why two items are close: shared tags and each modality pair's share of the cosine."""
        with svc.lock.read():
            out = space.explain(svc.resolve(a), svc.resolve(b))
        return S.ExplainResponse(**_clean(out))

    @app.post("/api/recommend", response_model=S.HitsResponse, tags=["recommend"], responses=R(400, 404, 413, 422))
    def recommend(req: S.RecommendRequest) -> S.HitsResponse:
        """Recommend from a user id (their history) or a list of items; already-seen items are
        excluded unless ``exclude_seen`` is false."""
        t0 = time.perf_counter()
        with svc.lock.read():
            items = [svc.resolve(i) for i in req.items] if req.items is not None else None
            hits = space.recommend(items=items, user=req.user, k=req.k, where=svc.where(req.filters),
                                   offset=req.offset, exclude_seen=req.exclude_seen)
            return S.HitsResponse(items=_hits(hits), k=req.k, offset=req.offset, took_ms=_ms(t0))

    @app.get("/api/users", response_model=S.UsersResponse, tags=["recommend"], responses=R(422))
    def users(limit: int = Query(20, ge=1, le=1000)) -> S.UsersResponse:
        """Known users with the most history (to try recommend / personalized search)."""
        with svc.lock.read():
            return S.UsersResponse(users=svc.users(limit))

    # ---------------------------------------------------------------- playlists
    @app.post("/api/playlists/continue", response_model=S.ContinueResponse, tags=["playlists"],
              responses=R(400, 404, 413, 422))
    def continue_playlist(req: S.ContinueRequest) -> S.ContinueResponse:
        """The next items for an ordered playlist: no duplicates (seeds excluded), optional MMR
        diversity and at most ``max_per_artist`` items per artist."""
        t0 = time.perf_counter()
        notes: list[str] = []
        with svc.lock.read():
            seeds = list(dict.fromkeys(svc.resolve(i) for i in req.items))
            max_per = None
            if req.max_per_artist is not None:
                if req.artist_field in space.index.meta.columns:
                    max_per = (req.artist_field, req.max_per_artist)
                else:
                    notes.append(f"no '{req.artist_field}' field: each item is its own artist, so results never "
                                 "repeat an artist")
            hits = space.continue_playlist(seeds, req.k, where=svc.where(req.filters), recency=req.recency,
                                           diversity=req.diversity, max_per=max_per)
            seen = set(seeds)
            unique = []
            for h in hits:  # belt and braces: never a seed, never twice
                if h.item_id not in seen:
                    seen.add(h.item_id)
                    unique.append(h)
            hits = unique
            V = space.index.vectors
            both = [space.index.position(i) for i in seeds + [h.item_id for h in hits]]
            coh = playlist_stats(V[both]).get("coherence")
            coh_seeds = playlist_stats(V[both[:len(seeds)]]).get("coherence")
            return S.ContinueResponse(items=_hits(hits), seeds=seeds, coherence=_clean(coh),
                                      coherence_seeds=_clean(coh_seeds), notes=notes, took_ms=_ms(t0))

    @app.post("/api/playlists/generate", response_model=S.GenerateResponse, tags=["playlists"],
              responses=R(400, 413, 422))
    def generate_playlist(req: S.GenerateRequest) -> S.GenerateResponse:
        """A playlist of ``n`` items for a text query that also hangs together (paper 001 section
        4.3). Coherence is measured and reported next to the plain top-n baseline."""
        t0 = time.perf_counter()
        if not req.query.strip():
            raise InputError("query text is empty", field="query")
        with svc.lock.read():
            hits, stats = space.generate_playlist(req.query, req.n, where=svc.where(req.filters),
                                                  coherence=req.coherence, pool=max(req.pool, req.n))
        st = S.PlaylistStats(**{k: _clean(v) for k, v in stats.items() if k in S.PlaylistStats.model_fields})
        return S.GenerateResponse(items=_hits(hits), stats=st, coherence_measure=COHERENCE_MEASURE, took_ms=_ms(t0))

    # ---------------------------------------------------------------- writes
    @app.post("/api/items", response_model=S.AddItemsResponse, tags=["items"],
              responses=R(400, 401, 413, 422) if api_key else R(400, 413, 422),
              dependencies=[Depends(require_key)] if api_key else [])
    def add_items(req: S.AddItemsRequest) -> S.AddItemsResponse:
        """Add or update items without retraining (cold start): any subset of modalities (tags /
        description -> text; raw vectors for the others) is projected through the trained
        encoders; the item is searchable and recommendable at once and survives a restart
        (the index is rewritten atomically before this returns)."""
        t0 = time.perf_counter()
        records = [_record(space, it, i) for i, it in enumerate(req.items, start=1)]
        with svc.lock.write():
            try:
                out = space.add_items(records)
            except (InputError, NotFoundError):
                raise
            except Exception as e:
                # persisting failed after the in-memory upsert: roll memory back to what is on disk
                log.exception("add_items failed; reloading the index from disk")
                space.index = VectorIndex.load(space.path / "index", ann=cfg.get("index", {}).get("ann", False))
                svc.after_write()
                raise ServiceError(500, "write_failed", f"the items could not be persisted ({type(e).__name__}: {e}); "
                                   "nothing was changed") from None
            svc.after_write()
            total = len(space.index)
        return S.AddItemsResponse(added=[S.AddedItem(**_clean(o)) for o in out], items_total=total, took_ms=_ms(t0))

    return app


# --------------------------------------------------------------------------- adapters
RESERVED = {"item_id", "name", "tags", "description", "vectors", "modalities", "cold_start", "metadata"}


def _record(space: Space, it: S.ItemIn, row: int) -> dict[str, Any]:
    """An API item -> a Space.add_items record, with metadata types checked against the
    existing columns (a string in a numeric column would break the parquet write)."""
    import pandas as pd
    rec: dict[str, Any] = {"item_id": it.item_id.strip(), "name": it.name.strip()}
    if it.tags is not None:
        rec["tags"] = it.tags
    if it.description is not None and it.description.strip():
        rec["description"] = it.description
    if it.vectors:
        rec["vectors"] = dict(it.vectors)  # raw; Space.add_items applies the build's standardization
    meta = space.index.meta
    for k, v in (it.metadata or {}).items():
        if k in RESERVED or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", k):
            raise InputError(f"metadata key {k!r} is reserved or not an identifier", row=row, field=f"metadata.{k}")
        if k in meta.columns and v is not None:
            s = meta[k]
            head = s.dropna().head(20).tolist()
            is_list = any(isinstance(x, (list, tuple, np.ndarray)) for x in head)
            if is_list and not isinstance(v, list):
                raise InputError(f"{k} is a list field; give a list of strings", row=row, field=f"metadata.{k}")
            if not is_list and isinstance(v, list):
                raise InputError(f"{k} is not a list field", row=row, field=f"metadata.{k}")
            if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) \
                    and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise InputError(f"{k} is numeric; got {v!r}", row=row, field=f"metadata.{k}")
            if pd.api.types.is_bool_dtype(s) and not isinstance(v, bool):
                raise InputError(f"{k} is true/false; got {v!r}", row=row, field=f"metadata.{k}")
            if s.dtype == object and head and all(isinstance(x, str) for x in head) and not isinstance(v, str):
                raise InputError(f"{k} is a text field; got {v!r}", row=row, field=f"metadata.{k}")
        rec[k] = v
    return rec




def _media_source(space: Space, modality: str) -> str | None:
    spec = (space.config.get("build_config", {}).get("content") or {}).get(modality) or {}
    return spec.get("source") if isinstance(spec, Mapping) else None


def _encode_media(space: Space, modality: str, file: UploadFile) -> np.ndarray:
    if modality not in space.modalities:
        raise InputError(f"unknown modality {modality!r}; this space has {space.modalities}", field="modality")
    source = _media_source(space, modality)
    if source not in ("audio_files", "image_files"):
        raise ServiceError(409, "not_applicable",
                           f"this space's {modality!r} modality was built from precomputed vectors (source: "
                           f"{source or 'vectors'}), not media files, so a file cannot be encoded into it; "
                           f"POST the raw vector to /api/query/vector instead", field="modality")
    kind = "audio" if source == "audio_files" else "image"
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in MEDIA_EXTENSIONS[kind]:
        raise InputError(f"{kind} file must end in one of {', '.join(MEDIA_EXTENSIONS[kind])}, got "
                         f"{file.filename!r}", field="file")
    try:
        if kind == "audio":
            from ..encoders.audio import AudioEncoder as Enc
        else:
            from ..encoders.image import ImageEncoder as Enc  # type: ignore[no-redef]
    except ImportError as e:  # pragma: no cover - depends on optional extras
        raise ServiceError(501, "encoder_not_installed", f"the {kind} encoder is not installed ({e}); "
                           f"pip install 'talkrec[{kind}]'") from None
    spec = (space.config.get("build_config", {}).get("content") or {}).get(modality) or {}
    tmpdir = Path(tempfile.mkdtemp(prefix="talkrec-upload-"))
    try:
        path = tmpdir / f"query{suffix}"
        with open(path, "wb") as out:
            shutil.copyfileobj(file.file, out)
        if path.stat().st_size == 0:
            raise InputError("the uploaded file is empty", field="file")
        try:
            enc = Enc(**{**spec.get("params", {}), "cache": False})
            vec = enc.encode(str(path))
        except ImportError as e:
            raise ServiceError(501, "encoder_not_installed", f"the {kind} encoder needs optional packages ({e}); "
                               f"pip install 'talkrec[{kind}]'") from None
        except (InputError, ServiceError):
            raise
        except (ValueError, OSError, RuntimeError) as e:
            raise InputError(f"could not decode the {kind} file: {e}", field="file") from None
        vec = np.asarray(vec, dtype=np.float32).ravel()
        if not np.isfinite(vec).all():
            raise InputError(f"could not decode the {kind} file", field="file")
        return vec
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
