"""DALI parameter names are case-insensitive: pyvo sends ``THRESHOLD``, TOPCAT ``threshold``.

A small ASGI middleware maps every known name, in the query string and in url-encoded
form bodies, to the spelling the endpoints declare, so FastAPI's validation and the
OpenAPI document keep one name per parameter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_COMMON = {"id": "ID", "responseformat": "RESPONSEFORMAT", "phase": "PHASE",
           "pipeline": "PIPELINE", "commit": "COMMIT", "action": "ACTION",
           "destruction": "DESTRUCTION", "executionduration": "EXECUTIONDURATION",
           "last": "LAST"}
#: /preview, /commit: DataLink-style lower-case names.
_DATALINK = {**_COMMON, "model_version": "model_version", "threshold": "threshold"}
#: /jobs: UWS-style upper-case names.
_UWS = {**_COMMON, "model_version": "MODEL_VERSION", "threshold": "THRESHOLD"}
#: form bodies larger than this are passed through untouched (FastAPI then validates).
MAX_FORM = 1 << 20


def _names(path: str) -> dict[str, str]:
    return _UWS if path.startswith("/jobs") else _DATALINK


def _rewrite(raw: bytes, names: dict[str, str]) -> bytes:
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    return urlencode([(names.get(k.lower(), k), v) for k, v in pairs]).encode("latin-1")


class CaseInsensitiveParams:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
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
