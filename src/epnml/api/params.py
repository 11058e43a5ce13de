"""DALI parameter names are case-insensitive: pyvo sends ``THRESHOLD``, TOPCAT ``threshold``.

A small ASGI middleware maps every known name, in the query string and in url-encoded
form bodies, to the spelling the endpoints declare, so FastAPI's validation and the
OpenAPI document keep one name per parameter.

Pipeline parameters are not declared one by one: every parameter of every pipeline's
spec (:mod:`epnml.ingest.spec`) is reachable, under its spec name in any case
(``min_duration_h``, ``MIN_DURATION_H``). :func:`given_params` collects the names an
endpoint does not read itself; :func:`epnml.rerun.check_params` validates them with the
spec's own :func:`~epnml.ingest.spec.validate_params` (the CLI's and the runner's check),
so an unknown or out-of-range parameter is a 422 with the spec's one-line message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request

from epnml.ingest.spec import parameter_names
from epnml.rerun import InputError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_COMMON = {"id": "ID", "responseformat": "RESPONSEFORMAT", "phase": "PHASE",
           "pipeline": "PIPELINE", "commit": "COMMIT", "action": "ACTION",
           "destruction": "DESTRUCTION", "executionduration": "EXECUTIONDURATION",
           "last": "LAST"}
#: /preview, /commit: DataLink-style lower-case names, the spec's own spelling.
_DATALINK = {**_COMMON, "model_version": "model_version",
             **{n.lower(): n for n in parameter_names()}}
#: /jobs: UWS-style upper-case names.
_UWS = {**_COMMON, "model_version": "MODEL_VERSION",
        **{n.lower(): n.upper() for n in parameter_names()}}
#: DALI names a client may send that no endpoint uses (ignored, never a pipeline parameter).
IGNORED = frozenset({"runid", "request", "version"})
#: names the endpoints read themselves (lower case); any other name is a pipeline parameter.
ENDPOINT_NAMES = frozenset({*_COMMON, "model_version"})
#: form bodies larger than this are passed through untouched (FastAPI then validates).
MAX_FORM = 1 << 20


def given_params(pairs: Iterable[tuple[str, str]], own: Collection[str]) -> dict[str, str]:
    """The pipeline parameters of a request: every name (lower-cased) an endpoint does not
    read itself (``own``, lower case). An empty value or ``NaN`` (the VOTable null a
    DataLink client may send back) means the default: left out. A name given twice is a
    client error (``InputError``: HTTP 422)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key in own or key in IGNORED:
            continue
        if key in out:
            raise InputError(f"parameter {key[:40]} given more than once")
        if value.strip() == "" or value.strip().lower() == "nan":
            continue
        out[key] = value
    return out


async def query_params(request: Request) -> dict[str, str]:
    """FastAPI dependency: the pipeline parameters of the query string (GET, uploads: an
    upload's multipart body is never read here)."""
    return given_params(request.query_params.multi_items(), ENDPOINT_NAMES)


async def form_params(request: Request) -> dict[str, str]:
    """FastAPI dependency: the pipeline parameters of the query string and the form body
    (endpoints that declare Form fields: the form is parsed once, and cached)."""
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        form = await request.form()
        pairs += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    return given_params(pairs, ENDPOINT_NAMES)


def _names(path: str) -> dict[str, str]:
    return _UWS if path.startswith("/jobs") else _DATALINK


def _rewrite(raw: bytes, names: dict[str, str]) -> bytes:
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    return urlencode([(names.get(k.lower(), k), v) for k, v in pairs]).encode("latin-1")


class CaseInsensitiveParams:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith("/hapi"):
            # HAPI names are case-sensitive and its deprecated ``id`` is not DALI's ``ID``
            await self.app(scope, receive, send)
            return
        names = _names(scope.get("path", ""))
        if scope.get("query_string"):
            scope["query_string"] = _rewrite(scope["query_string"], names)
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope.get("method") != "POST" or ctype != b"application/x-www-form-urlencoded":
            await self.app(scope, receive, send)
            return
        body, more, messages = b"", True, []
        while more and len(body) <= MAX_FORM:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
        if more or len(body) > MAX_FORM or any(m["type"] != "http.request" for m in messages):
            replay = iter(messages)

            async def passthrough() -> Message:
                return next(replay, None) or await receive()

            await self.app(scope, passthrough, send)
            return
        body = _rewrite(body, names)
        scope["headers"] = [(k, v) for k, v in scope.get("headers") or []
                            if k.lower() != b"content-length"]
        scope["headers"].append((b"content-length", str(len(body)).encode()))
        sent = False

        async def rewritten() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, rewritten, send)
