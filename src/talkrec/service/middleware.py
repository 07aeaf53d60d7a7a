"""Request bodies: over a byte limit they are refused with 413, and one that does not arrive
within a time limit is answered 408 (and the connection closed) before the app sees it. Read
requests counted in flight, for a follower's loads to make way for them."""
from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..space.follower import ReadsInFlight
from .errors import error_response

DEFAULT_BODY_TIMEOUT = 15.0


class BodyLimitMiddleware:
    """Rejects request bodies over a byte limit with 413, by Content-Length and by the bytes
    actually streamed (the body is buffered up to the limit, then replayed to the app), and
    bodies that take longer than ``body_timeout`` seconds to arrive with 408 (a client that
    announces more bytes than it sends would otherwise hold a worker until it gives up)."""

    def __init__(self, app: ASGIApp, max_body: int, max_upload: int, upload_paths: tuple[str, ...],
                 body_timeout: float = DEFAULT_BODY_TIMEOUT) -> None:
        self.app, self.max_body, self.max_upload, self.upload_paths = app, max_body, max_upload, upload_paths
        self.body_timeout = body_timeout

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
                    await error_response(400, "bad_request", "invalid Content-Length header")(scope, receive, send)
                    return
                if n > limit:
                    await self._too_large(scope, receive, send, limit)
                    return
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.body_timeout
        while True:
            try:
                msg = await asyncio.wait_for(receive(), timeout=max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                await self._timed_out(scope, receive, send)
                return
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

    async def _timed_out(self, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(408, "request_timeout", f"the request body did not arrive within {self.body_timeout:g} s",
                             headers={"Connection": "close"})(scope, receive, send)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        await error_response(413, "payload_too_large", f"request body larger than {limit} bytes")(scope, receive, send)


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


class ReadsInFlightMiddleware:
    """Counts each read request (``GET``) in ``reads`` (a space store's
    :class:`~talkrec.space.follower.ReadsInFlight`) from its arrival to its last byte: the
    parsing, the validation and the JSON of its answer as well as the ``Space`` read, so that a
    follower's load of a generation waits for all of it (``talkrec serve --follow``)."""

    def __init__(self, app: ASGIApp, reads: ReadsInFlight) -> None:
        self.app, self.reads = app, reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        with self.reads:
            await self.app(scope, receive, send)
