"""Who is calling: reading is open, writing (commits) needs the service's bearer token."""

from __future__ import annotations

import hashlib
import hmac

from epnml.config import Settings
from fastapi import HTTPException, Request


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return token.strip()


def token_tag(token: str) -> str:
    """A stable, non-reversible tag of a token for logs and job owners (never the token)."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def client_id(request: Request) -> str:
    """IP plus the token's tag if one was sent: what the request log records."""
    host = request.client.host if request.client else "unknown"
    token = _bearer(request)
    return f"{host} {token_tag(token)}" if token else host


def owner_of(request: Request) -> str:
    token = _bearer(request)
    return token_tag(token) if token else "anonymous"


def require_token(request: Request, settings: Settings) -> None:
    """401 without a token, 403 with a wrong one or when the service has none configured."""
    if not settings.api_token:
        raise HTTPException(403, "commits are disabled on this service: the operator sets a "
                                 "token with EPNML_API_TOKEN (or api_token in epnml.toml)")
    token = _bearer(request)
    if token is None:
        raise HTTPException(401, "committing needs a token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(token.encode(), settings.api_token.encode()):
        raise HTTPException(403, "wrong token")
