"""What the routes share: the service state (the Space, the API key, whether writes are
refused) and the dependencies that get it, check the API key and the query string's names,
and read the GET filters."""
from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader

from ..device import lower_thread_priority
from ..errors import did_you_mean
from ..index.filters import FilterSpec, parse_range
from ..space import Follower, Space
from . import schemas as S
from .errors import ServiceError

T = TypeVar("T")
#: concurrent writes in progress (more wait for a thread; their descriptions are embedded
#: ``storage.write_threads`` at a time by the space's write encoder)
WRITE_THREADS = 8


class ServiceState:
    """The served Space and what the routes share. Reads never wait: each works on the
    snapshot current when it starts; writes are serialized inside the Space.

    ``writes_refused``: the server is reachable beyond loopback without an API key, and
    was not told to allow open writes: every write answers 403. ``follower``: the space is
    followed read-only (``talkrec serve --follow``): every write answers 409."""

    def __init__(self, space: Space, api_key: str | None, *, writes_refused: bool = False,
                 write_nice: int = 10, follower: Follower | None = None) -> None:
        self.space, self.follower = space, follower
        self.api_key = api_key
        self.writes_refused = writes_refused
        self.started = time.time()
        # Writes run on threads of lower priority: with writers keeping both cores busy, reads
        # queued for the CPU behind them (read p99 8.5x of an idle server; docs/service.md).
        self.write_pool = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="talkrec-write",
                                             initializer=lower_thread_priority, initargs=(write_nice,))

    def run_write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the low-priority write threads (the caller waits)."""
        return self.write_pool.submit(fn, *args).result()

    def close(self) -> None:
        self.write_pool.shutdown(wait=True)

    def check_writes_allowed(self) -> None:
        if self.follower is not None:
            raise ServiceError(409, "read_only_follower",
                               "this server follows a space that another process writes (talkrec serve --follow) "
                               "and answers reads only: send writes to the server that writes the space")
        if self.writes_refused:
            raise ServiceError(403, "writes_refused",
                               "this server is reachable beyond loopback without an API key, so writes are refused; "
                               "restart it with an API key (--api-key / TALKREC_API_KEY) or with --allow-open-writes")

    def check_key(self, key: str | None) -> None:
        if self.api_key is None:
            return
        if key is None or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise ServiceError(401, "unauthorized", "this endpoint needs the API key in the X-API-Key header")


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route's dependant takes, its dependencies' included."""
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def check_query_names(request: Request) -> None:
    """A query parameter the route does not take is an error (422) naming it and the nearest
    one it takes: ``?mdoe=text`` or ``?K=50`` used to be ignored, and the search ran with the
    defaults in their place. Called by :func:`get_state`, which every route depends on (as an
    own router dependency it cost ~0.3 ms of server CPU a request)."""
    route = request.scope.get("route")
    if route is None or not request.query_params or not hasattr(route, "dependant"):
        return
    names = getattr(route, "_talkrec_query_names", None)          # made once per route, kept on it
    if names is None:
        names = frozenset(_query_names(route.dependant))
        route._talkrec_query_names = names
    for key in request.query_params.keys():
        if key not in names:
            takes = ", ".join(sorted(names)) or "none"
            raise ServiceError(422, "unknown_parameter", f"unknown query parameter '{key}'"
                                                         f"{did_you_mean(key, names)} (this endpoint takes: {takes})",
                               field=key)


async def get_state(request: Request) -> ServiceState:
    """The app's :class:`ServiceState` (set by :func:`talkrec.service.app.create_app`), once the
    query string's names are checked (:func:`check_query_names`)."""
    check_query_names(request)
    return request.app.state.service  # type: ignore[no-any-return]


key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                          description="required on write endpoints when the server has an API key")


async def require_key(key: str | None = Depends(key_header), state: ServiceState = Depends(get_state)) -> None:
    state.check_key(key)


async def refuse_open_writes(state: ServiceState = Depends(get_state)) -> None:
    state.check_writes_allowed()


def guard_refusal(request: Request, writes: Collection[Callable[..., Any]]) -> ServiceError | None:
    """What the write routes' guards (the API key, then writes refused) answer to ``request``
    when its route's endpoint is one of ``writes``. A body that is not JSON fails before
    FastAPI runs a route's dependencies; the error handler asks this first, so a client
    without the key gets 401 (not a 422 about the body), as it does for a well-formed body."""
    state: ServiceState | None = getattr(request.app.state, "service", None)
    if state is None or getattr(request.scope.get("route"), "endpoint", None) not in writes:
        return None
    try:
        state.check_key(request.headers.get("x-api-key"))
        state.check_writes_allowed()
    except ServiceError as e:
        return e
    return None


async def query_filters(
    tag: list[str] = Query([], max_length=20, description="repeatable: items must carry all these tags"),
    decade: str | None = Query(None, max_length=16, pattern=S.DECADE_PATTERN, description="e.g. 80s or 1980s"),
    range_: list[str] = Query([], alias="range", max_length=10,
                              description="repeatable numeric range FIELD:MIN:MAX, a bound may be empty "
                                          "(listeners:1000:)"),
    where: str | None = Query(None, max_length=500, description="filter expression, e.g. 'listeners>=1000'"),
) -> FilterSpec:
    """The filters of a GET route's query string (``async``: FastAPI runs it in the event loop,
    not through a worker thread as it would a plain function)."""
    ranges = {f: (lo, hi) for f, lo, hi in map(parse_range, range_)}
    return FilterSpec(tags=list(tag), decade=decade or None, ranges=ranges, where=where)


def filter_spec(f: S.Filters | None) -> FilterSpec | None:
    """The filters of a POST body."""
    if f is None:
        return None
    return FilterSpec(tags=list(f.tags), decade=f.decade, ranges={k: (r.min, r.max) for k, r in f.ranges.items()},
                      where=f.where)
