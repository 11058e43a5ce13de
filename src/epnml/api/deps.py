"""What the routers share, as FastAPI dependencies on ``app.state`` (set by create_app):
the settings, a database connection per request, the preview worker pool, the caller;
and the path/parameter patterns several routers declare."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import psycopg
from fastapi import Depends, HTTPException, Query, Request
from psycopg_pool import ConnectionPool, PoolTimeout

from epnml.api.auth import Caller, caller
from epnml.api.params import form_params, query_params
from epnml.api.workers import WorkerPool
from epnml.config import Settings, read_dsn_file
from epnml.db import connect
from epnml.rerun import InputError

XML = "application/xml"
JOB_ID = r"^[a-z0-9]{8,40}$"
NAME = r"^[A-Za-z0-9_.\-]{1,80}$"
VERSION = r"^[A-Za-z0-9_.+\-]{1,120}$"
_FORMATS = {"votable": "votable", "application/x-votable+xml": "votable", "text/xml": "votable",
            "json": "json", "application/json": "json"}


def service_version() -> str:
    """The installed epnml's version (the OpenAPI document's and /health's)."""
    try:
        from importlib.metadata import version

        return version("epnml")
    except Exception:  # noqa: BLE001 - not installed: still serve
        return "unknown"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_pool(request: Request) -> WorkerPool:
    pool: WorkerPool = request.app.state.pool
    return pool


def db(request: Request) -> Iterator[psycopg.Connection]:
    """One autocommit connection per request: from the app's pool when the service runs
    (a new backend per request re-loads the catalogue entries of every partition a query
    touches), else opened for this request and closed after the answer."""
    pool: ConnectionPool | None = getattr(request.app.state, "db_pool", None)
    if pool is None:
        try:
            conn = connect(get_settings(request))
        except RuntimeError as exc:
            raise HTTPException(503, "the database is unavailable; retry later") from exc
        try:
            yield conn
        finally:
            conn.close()
        return
    try:
        conn = pool.getconn(timeout=DB_POOL_WAIT_S)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise HTTPException(503, "the database is unavailable; retry later") from exc
    try:
        yield conn
    finally:
        pool.putconn(conn)  # an open transaction is rolled back, a broken link dropped


#: connections the service keeps open at most (requests hold one for their whole answer;
#: more wait up to DB_POOL_WAIT_S, then get 503). PostgreSQL's default allows 100 in all.
DB_POOL_MAX = 16
DB_POOL_WAIT_S = 30.0


def open_db_pool(settings: Settings) -> ConnectionPool | None:
    """The service's connection pool, or None when no database is configured yet (then
    every request connects on its own and reads the secrets file again)."""
    dsn = settings.dsn or read_dsn_file(settings.dsn_file)
    if not dsn:
        return None
    # check: a connection is tested before it is handed out (the server may have restarted)
    return ConnectionPool(dsn, min_size=1, max_size=DB_POOL_MAX, kwargs={"autocommit": True},
                          check=ConnectionPool.check_connection, open=True, timeout=DB_POOL_WAIT_S)


def who(request: Request) -> Caller:
    return caller(request, get_settings(request))


def base_url(settings: Settings) -> str:
    """The service's public address (links in DataLink and UWS documents)."""
    return settings.api_url.rstrip("/")


def response_format(value: str) -> str:
    fmt = _FORMATS.get(value.strip().lower())
    if fmt is None:
        raise InputError("RESPONSEFORMAT must be votable or json")
    return fmt


AppSettings = Annotated[Settings, Depends(get_settings)]
Pool = Annotated[WorkerPool, Depends(get_pool)]
Conn = Annotated[psycopg.Connection, Depends(db)]
Who = Annotated[Caller, Depends(who)]
#: every spec parameter of the pipeline, any case (epnml.api.params); see /pipelines
QueryParams = Annotated[dict[str, str], Depends(query_params)]
FormParams = Annotated[dict[str, str], Depends(form_params)]
Version = Annotated[str | None, Query(max_length=80, description="see /pipelines")]
