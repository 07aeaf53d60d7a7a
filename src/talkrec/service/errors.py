"""Errors as HTTP: every 4xx/5xx is JSON ``{"error": code, "detail": message[, "field", "errors"]}``.

The Space's exceptions map to statuses here, once: bad input 422, unknown item / user 404,
a media file for a modality not built from media 409, a write while another process writes the
space (or changed it since this one loaded it) 409, a missing media encoder 501, a write that
could not be persisted 500 (nothing was changed). The service's own 401 is a
:class:`ServiceError`; the 413 comes from :mod:`talkrec.service.middleware`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..encoders.media import MediaEncoderUnavailable, NotMediaModality
from ..errors import InputError, NotFoundError, TalkrecError
from ..space import WriteConflict, WriteError
from . import schemas as S

log = logging.getLogger(__name__)

DESCRIPTIONS = {400: "Bad request", 401: "Missing or wrong API key",
                403: "Writes refused: the server is open beyond loopback without an API key",
                404: "Unknown item or user", 408: "The request body did not arrive in time",
                409: "Not applicable to this space or server (a write to a read-only follower, or while another "
                     "process writes the space)", 413: "Payload too large", 422: "Invalid input",
                501: "Encoder not installed"}


class ServiceError(Exception):
    """An error with an HTTP status raised by the service itself (the API key check: 401;
    writes refused on an open server: 403)."""

    def __init__(self, status: int, error: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.field = status, error, detail, field


def error_response(status: int, error: str, detail: str, field: str | None = None,
                   errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error, "detail": detail}
    if field is not None:
        body["field"] = field
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error codes."""
    return {c: {"model": S.ErrorResponse, "description": DESCRIPTIONS[c]} for c in codes}


def _validation(e: RequestValidationError) -> JSONResponse:
    errors = []
    for x in e.errors():
        loc = [p if isinstance(p, (str, int)) else str(p) for p in x.get("loc", ())]
        msg = str(x.get("msg", "invalid"))
        if x.get("type") == "json_invalid":
            msg = f"malformed JSON: {x.get('ctx', {}).get('error', msg)}"
        errors.append({"loc": loc, "msg": msg, "type": str(x.get("type", ""))})
    detail = "; ".join(f"{'.'.join(str(p) for p in er['loc'])}: {er['msg']}" for er in errors) or "invalid request"
    return error_response(422, "validation_error", detail, errors=errors)


def _http(e: StarletteHTTPException) -> JSONResponse:
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
    detail = str(e.detail)
    if e.status_code == 400 and "parsing the body" in detail:
        detail = "could not parse the request body: malformed JSON or form data, or not UTF-8"
    return error_response(e.status_code, code, detail, headers=getattr(e, "headers", None))


def install_error_handlers(app: FastAPI,
                           guard: Callable[[Request], ServiceError | None] = lambda request: None) -> None:
    """Map the Space's and the framework's exceptions to JSON error responses. ``guard``: what
    a route's own checks answer to a request whose body failed validation (it goes first)."""
    handlers: dict[type[BaseException], Any] = {
        NotMediaModality: lambda e: error_response(409, "not_applicable", f"{e} (POST it to /api/query/vector)",
                                                   field=e.field),
        InputError: lambda e: error_response(422, "invalid_input", str(e), field=e.field),
        NotFoundError: lambda e: error_response(404, "not_found", str(e)),
        MediaEncoderUnavailable: lambda e: error_response(501, "encoder_not_installed", str(e)),
        WriteConflict: lambda e: error_response(409, "write_conflict", str(e)),
        WriteError: lambda e: error_response(500, "write_failed", str(e)),
        ServiceError: lambda e: error_response(e.status, e.error, e.detail, field=e.field),
        TalkrecError: lambda e: error_response(422, "invalid_input", str(e)),
        StarletteHTTPException: _http,
    }
    for exc, to_response in handlers.items():
        async def handle(request: Request, e: Exception, to_response: Any = to_response) -> JSONResponse:
            return to_response(e)
        app.add_exception_handler(exc, handle)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        refused = guard(request)
        if refused is not None:
            return error_response(refused.status, refused.error, refused.detail, field=refused.field)
        return _validation(e)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:  # pragma: no cover - last resort
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"internal error ({type(e).__name__}); see the server log")
