"""What the HTTP service says and logs: no server paths, no file content, no secrets.

* :func:`clean_message` is applied to every error body: server directories are removed
  from any absolute path (the client keeps the file's own name), control characters are
  dropped and the length is capped.
* Unexpected exceptions become a generic 500 with an error id; the details go to the
  ``epnml.api.errors`` logger only (the service's log file, mode 600).
* The access log is written by :class:`AccessLog` (method, path WITHOUT the query string,
  status, client address); :class:`QueryStringFilter` also strips query strings from
  uvicorn's own access logger, so a token sent as ``?token=`` never reaches a log.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: longest error message returned to a client.
MAX_MESSAGE = 500

ERRORS = logging.getLogger("epnml.api.errors")
ACCESS = logging.getLogger("epnml.api.access")

# an absolute path (not part of a URL "http://h/p" nor of a relative path "a/b"): its
# directories are dropped, its last component (the file's own name) is kept.
_ABSOLUTE = re.compile(r"(?<![\w:/.~-])/[^\s'\"<>(),;]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_message(text: object, paths: Iterable[Path] = (), limit: int = MAX_MESSAGE) -> str:
    """``text`` without server directories or control characters, at most ``limit`` chars."""
    message = str(text)
    for path in sorted(paths, key=lambda p: -len(str(p))):
        message = message.replace(str(path), path.name)
        message = message.replace(str(path.parent) + "/", "")
    message = _ABSOLUTE.sub(_file_name, message)
    message = _CONTROL.sub(" ", message).replace("\n", " ").strip()
    if len(message) > limit:
        message = message[:limit - 3].rstrip() + "..."
    return message


def _file_name(match: re.Match[str]) -> str:
    text = match.group(0)
    core = text.rstrip(":.")
    if core.count("/") < 2:  # "/models", "/jobs": no directory to hide
        return text
    return core.rstrip("/").rsplit("/", 1)[-1] + text[len(core):]


def new_error_id() -> str:
    return uuid.uuid4().hex[:16]


def log_internal(where: str, detail: str) -> str:
    """Log an unexpected failure with a new error id (operator's log only); return the id."""
    error_id = new_error_id()
    ERRORS.error("error %s in %s: %s", error_id, where, detail)
    return error_id


def internal_detail(error_id: str) -> str:
    return (f"internal error (error id {error_id}); the operator finds the details in the "
            "service's log")


def strip_query(target: str) -> str:
    """A request target without its query string (``/preview?token=x`` -> ``/preview``)."""
    return target.split("?", 1)[0]


class QueryStringFilter(logging.Filter):
    """Drop query strings from access-log records (uvicorn's args hold the full path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(strip_query(a) if isinstance(a, str) and a.startswith("/")
                                else a for a in record.args)
        if isinstance(record.msg, str) and "?" in record.msg and not record.args:
            record.msg = re.sub(r"(/[^\s?\"]*)\?[^\s\"]*", r"\1", record.msg)
        return True


def install_query_filter() -> None:
    """On uvicorn's access logger (and ours), whoever configured the handlers."""
    for name in ("uvicorn.access", ACCESS.name):
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryStringFilter) for f in logger.filters):
            logger.addFilter(QueryStringFilter())


class AccessLog:
    """ASGI middleware: one line per request (client, method, path, status, seconds).

    Never the query string, headers or body: tokens and file content stay out of logs.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def send_status(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                status[0] = int(message.get("status", 500))
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            client = scope.get("client") or ("-", 0)
            path = str(scope.get("path", ""))[:200]
            ACCESS.info('%s "%s %s" %d %.3fs', client[0], scope.get("method", "-"),
                        _CONTROL.sub("?", path), status[0], time.perf_counter() - t0)


def open_log(path: str | os.PathLike[str]) -> int:
    """Open (create) the service's log file with mode 600 and return its descriptor.

    An existing file is tightened to 600 as well: it may hold error details.
    """
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        pass  # not ours (another user's file): keep its mode
    return fd


def redirect_output(path: str | os.PathLike[str]) -> None:
    """stdout and stderr of this process to the log file (mode 600)."""
    fd = open_log(path)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging config: our access log and errors on stderr, query strings dropped."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"no_query": {"()": QueryStringFilter}},
        "formatters": {"plain": {"format": fmt}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                                "filters": ["no_query"], "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": ["stderr"], "level": level.upper(),
                               "propagate": False, "filters": ["no_query"]},
            "epnml": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
        },
    }
