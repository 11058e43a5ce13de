"""Who is calling: reading is open, writing (commits) needs the service's bearer token.

UWS jobs have owners. Creating a job answers with the owner token in the header
``X-Job-Owner-Token`` (a new random token, or the one the client sent in that header).
Every later request on the job sends it again, in ``X-Job-Owner-Token`` or as
``Authorization: Bearer <token>``. The job stores only a hash of it (``ownerId``
``owner:<hash>``). The commit token of the service is the administrator: it sees and may
change every job. Anyone else gets 404 for a job that is not theirs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from fastapi import HTTPException, Request

from epnml.config import Settings
from epnml.rerun import InputError


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


OWNER_HEADER = "X-Job-Owner-Token"
#: what a client may choose as its owner token (a generated one is 43 URL-safe characters).
_OWNER_TOKEN = re.compile(r"^[A-Za-z0-9_\-.~+/=]{16,200}$")


@dataclass(frozen=True)
class Caller:
    """Who asks about jobs: the owner tag of their token (None: no token) and admin rights."""

    owner: str | None
    admin: bool
    #: the token sent (to echo at job creation); never stored or logged.
    token: str | None = None
    address: str = "unknown"

    def may_see(self, job_owner: str) -> bool:
        return self.admin or (self.owner is not None and hmac.compare_digest(
            self.owner.encode(), job_owner.encode()))


def owner_tag(token: str) -> str:
    """The stored owner of jobs made with ``token``: a hash, never the token."""
    return "owner:" + hashlib.sha256(token.encode()).hexdigest()[:32]


def caller(request: Request, settings: Settings) -> Caller:
    """The caller of a job route; 422 for an owner token of the wrong form."""
    bearer = _bearer(request) or None
    admin = bool(settings.api_token and bearer) and hmac.compare_digest(
        str(bearer).encode(), settings.api_token.encode())
    header = request.headers.get(OWNER_HEADER)
    token = header.strip() if header is not None else bearer
    address = request.client.host if request.client else "unknown"
    if not token:
        return Caller(None, admin, None, address)
    if not (admin and token == bearer) and not _OWNER_TOKEN.fullmatch(token):
        raise InputError(f"{OWNER_HEADER} must be 16-200 characters of A-Z a-z 0-9 _ - . ~ "
                         "+ / = (or leave it out: the service makes one)")
    return Caller(owner_tag(token), admin, token, address)


def new_owner_token() -> str:
    return secrets.token_urlsafe(32)


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
