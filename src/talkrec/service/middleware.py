"""Request size limits: bodies over a byte limit are refused with 413 before the app sees them."""
from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response


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
                    await error_response(400, "bad_request", "invalid Content-Length header")(scope, receive, send)
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
