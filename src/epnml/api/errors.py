"""Errors as HTTP answers: one status per exception, the body JSON ``{"detail": ...}`` or,
on the DALI endpoints (``/preview``, ``/jobs``), a DALI error document (VOTable with
``INFO name="QUERY_STATUS" value="ERROR"``) unless the client asked for JSON
(``RESPONSEFORMAT=json`` or an ``Accept`` naming JSON and no VOTable/XML type).

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
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from epnml.api.models import Problem
from epnml.api.uws.store import PhaseConflict, QueueFull, TooManyPending
from epnml.api.votable import VOTABLE_TYPE, error_votable
from epnml.rerun import Busy, InputError, Internal, NotFound, SourceGone, Timeout, TooLarge
from epnml.safety import clean_message, internal_detail, log_internal

#: the OpenAPI ``responses`` of the routes: every error is JSON whatever the media type.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": "error", "content": {"application/json": {
        "schema": Problem.model_json_schema()}}}
    for code in (400, 401, 403, 404, 409, 410, 413, 422, 429, 500, 503, 504)}
#: the same on the DALI endpoints: a DALI error document (VOTable) unless JSON is asked.
DALI_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": "error: a DALI error document (VOTABLE with INFO QUERY_STATUS "
                          "ERROR), JSON when asked (RESPONSEFORMAT=json or Accept)",
           "content": {VOTABLE_TYPE: {"schema": {"type": "string"}},
                       **ERRORS[code]["content"]}}
    for code in ERRORS}
#: path prefixes of the DALI endpoints (errors follow the format asked for).
DALI_PATHS = ("/preview", "/jobs")
_VOTABLE_ASKED = ("application/x-votable+xml", "text/xml", "application/xml")
_FORMATS = {"votable": "votable", "application/x-votable+xml": "votable",
            "text/xml": "votable", "json": "json", "application/json": "json"}

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


def error_format(request: Request) -> str:
    """``votable`` or ``json``: what the client asked for on a DALI endpoint (the route's
    RESPONSEFORMAT, else the query string's, else Accept; VOTable when nothing is asked,
    as the endpoints answer by default); ``json`` everywhere else."""
    path = request.url.path
    if not any(path == p or path.startswith(p + "/") for p in DALI_PATHS):
        return "json"
    asked = getattr(request.state, "response_format", None) or _FORMATS.get(
        request.query_params.get("RESPONSEFORMAT", "").strip().lower())
    if asked:
        return str(asked)
    accept = [part.split(";")[0].strip().lower()
              for part in request.headers.get("accept", "").split(",")]
    if any(a in _VOTABLE_ASKED for a in accept):
        return "votable"
    if "application/json" in accept:
        return "json"
    return "votable"


def problem(status: int, detail: str, headers: dict[str, str] | None = None,
            request: Request | None = None, error_id: str | None = None) -> Response:
    """Every error body: the message without server paths or control characters, capped;
    a DALI error document when the request is on a DALI endpoint and JSON is not asked."""
    message = clean_message(detail)
    if request is not None and error_format(request) == "votable":
        info = {"error_id": error_id} if error_id else None
        return Response(error_votable(message, info), status_code=status, headers=headers,
                        media_type=VOTABLE_TYPE)
    body = {"detail": message, **({"error_id": error_id} if error_id else {})}
    return JSONResponse(body, status_code=status, headers=headers)


async def invalid(request: Request, exc: Exception) -> Response:
    """FastAPI's own validation errors in the same shape: one readable message."""
    messages = []
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
        messages.append(f"{where}: {err.get('msg', 'invalid')}")
    return problem(422, "; ".join(messages) or "invalid request", request=request)


async def plain(request: Request, exc: Exception) -> Response:
    # the most specific class wins (TooLarge is an InputError)
    status = next(PLAIN[k] for k in type(exc).__mro__ if k in PLAIN)
    return problem(status, str(exc), request=request)


async def internal(request: Request, exc: Exception) -> Response:
    error_id = exc.error_id if isinstance(exc, Internal) else log_internal(
        f"{request.method} {request.url.path}", str(exc))
    return problem(500, internal_detail(error_id), request=request, error_id=error_id)


async def unexpected(request: Request, exc: Exception) -> Response:
    """Never a traceback to the client: a generic body, the details in the log."""
    error_id = log_internal(f"{request.method} {request.url.path}", "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return problem(500, internal_detail(error_id), request=request, error_id=error_id)


async def http(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    detail = exc.detail if isinstance(exc, StarletteHTTPException) else str(exc)
    return problem(status, str(detail), getattr(exc, "headers", None), request)


async def pending(request: Request, exc: Exception) -> Response:
    return problem(429, str(exc), {"Retry-After": str(TooManyPending.retry_after)}, request)


async def busy(request: Request, exc: Exception) -> Response:
    retry = exc.retry_after if isinstance(exc, Busy) else 10
    return problem(503, str(exc), {"Retry-After": str(retry)}, request)


async def queue_full(request: Request, exc: Exception) -> Response:
    return problem(503, str(exc), {"Retry-After": "30"}, request)


async def db_down(request: Request, exc: Exception) -> Response:
    return problem(503, "the database is unavailable; retry later", request=request)


Handler = Callable[[Request, Exception], Awaitable[Response]]

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
