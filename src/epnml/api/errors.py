"""Errors as HTTP answers: one status per exception, every body JSON ``{"detail": ...}``.

422 bad input, 404 unknown ID/model/job (or a job that is not the caller's), 410 source
data gone, 413 upload or declared work too large, 401/403 token, 409 wrong job phase,
429 too many pending jobs, 503 busy or queue full (Retry-After), 504 preview deadline.
Anything unexpected is a 500 with an ``error_id``; its details go to the log only.
Error texts never carry server paths (:func:`epnml.safety.clean_message`).
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from epnml.api.models import Problem
from epnml.api.uws.store import PhaseConflict, QueueFull, TooManyPending
from epnml.rerun import Busy, InputError, Internal, NotFound, SourceGone, Timeout, TooLarge
from epnml.safety import clean_message, internal_detail, log_internal

#: the OpenAPI ``responses`` of the routes: every error is JSON whatever the media type.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": "error", "content": {"application/json": {
        "schema": Problem.model_json_schema()}}}
    for code in (400, 401, 403, 404, 409, 410, 413, 422, 429, 500, 503, 504)}

#: errors whose message is the answer: one status each, no extra headers.
PLAIN: dict[type[Exception], int] = {
    InputError: 422, TooLarge: 413, Timeout: 504, NotFound: 404, SourceGone: 410,
    PhaseConflict: 409}


def http_status(exc: Exception) -> int:
    """The status of a re-run's error (what the request log and job reports record)."""
    for kind, code in ((TooLarge, 413), (InputError, 422), (NotFound, 404), (SourceGone, 410),
                       (Busy, 503), (Timeout, 504), (Internal, 500)):
        if isinstance(exc, kind):
            return code
    return 500


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Every error body: the message without server paths or control characters, capped."""
    return JSONResponse({"detail": clean_message(detail)}, status_code=status, headers=headers)


async def invalid(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own validation errors in the same shape: one readable message."""
    messages = []
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
        messages.append(f"{where}: {err.get('msg', 'invalid')}")
    return problem(422, "; ".join(messages) or "invalid request")


async def plain(request: Request, exc: Exception) -> JSONResponse:
    # the most specific class wins (TooLarge is an InputError)
    status = next(PLAIN[k] for k in type(exc).__mro__ if k in PLAIN)
    return problem(status, str(exc))


async def internal(request: Request, exc: Exception) -> JSONResponse:
    error_id = exc.error_id if isinstance(exc, Internal) else log_internal(
        f"{request.method} {request.url.path}", str(exc))
    return JSONResponse({"detail": internal_detail(error_id), "error_id": error_id},
                        status_code=500)


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Never a traceback to the client: a generic body, the details in the log."""
    error_id = log_internal(f"{request.method} {request.url.path}", "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return JSONResponse({"detail": internal_detail(error_id), "error_id": error_id},
                        status_code=500)


async def http(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    detail = exc.detail if isinstance(exc, StarletteHTTPException) else str(exc)
    return problem(status, str(detail), getattr(exc, "headers", None))


async def pending(request: Request, exc: Exception) -> JSONResponse:
    return problem(429, str(exc), {"Retry-After": str(TooManyPending.retry_after)})


async def busy(request: Request, exc: Exception) -> JSONResponse:
    retry = exc.retry_after if isinstance(exc, Busy) else 10
    return problem(503, str(exc), {"Retry-After": str(retry)})


async def queue_full(request: Request, exc: Exception) -> JSONResponse:
    return problem(503, str(exc), {"Retry-After": "30"})


async def db_down(request: Request, exc: Exception) -> JSONResponse:
    return problem(503, "the database is unavailable; retry later")


Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]

#: every handler create_app registers, in order.
HANDLERS: list[tuple[type[Exception], Handler]] = [
    (RequestValidationError, invalid),
    *((kind, plain) for kind in PLAIN),
    (Internal, internal),
    (Exception, unexpected),
    (StarletteHTTPException, http),
    (TooManyPending, pending),
    (Busy, busy),
    (QueueFull, queue_full),
    (psycopg.OperationalError, db_down),
]
