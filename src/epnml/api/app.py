"""The FastAPI application: ``create_app(settings)``; ``epnml serve`` runs it with uvicorn.

A thin shell: every re-run is one :func:`epnml.rerun.rerun` call (what ``epnml rerun``
runs), every inference one ``run_pipeline`` call. The routes live in one router per
standard (:mod:`epnml.api.routes`); what they share (settings, worker pool, job worker)
is on ``app.state`` and reaches them as FastAPI dependencies (:mod:`epnml.api.deps`).
Reading needs no token; writing rows (``/commit``, jobs with COMMIT=true) needs the
bearer token of the service. Errors: :mod:`epnml.api.errors`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import psycopg
from fastapi import APIRouter, FastAPI
from fastapi.concurrency import run_in_threadpool

from epnml.api import errors
from epnml.api.deps import open_db_pool, service_version
from epnml.api.params import CaseInsensitiveParams
from epnml.api.routes import datalink, hapi, inference, models, oip, provenance, service, uws
from epnml.api.uws.worker import JobWorker
from epnml.api.workers import WorkerPool
from epnml.config import Settings, load_settings
from epnml.safety import AccessLog, install_query_filter

#: the routers, in the order of the OpenAPI document.
ROUTERS: list[APIRouter] = [service.router, models.router, datalink.router, provenance.router,
                            inference.router, uws.router,
                            hapi.router, oip.router]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncGenerator[None, None]:
    """Start the preview workers (they import the runner before the first call) and, when
    ``job_worker`` is set, the UWS job worker; stop both at shutdown."""
    settings: Settings = app.state.settings
    pool: WorkerPool = app.state.pool
    settings.jobs_dir.mkdir(parents=True, exist_ok=True)
    worker = None
    await run_in_threadpool(pool.start)
    if settings.job_worker:
        worker = JobWorker(settings, pool=pool)
        worker.start()
    app.state.worker = worker
    try:
        app.state.db_pool = await run_in_threadpool(open_db_pool, settings)
    except psycopg.OperationalError:
        app.state.db_pool = None  # database down at start: connect per request
    yield
    if worker is not None:
        await run_in_threadpool(worker.stop)
    pool.close()
    if app.state.db_pool is not None:
        await run_in_threadpool(app.state.db_pool.close)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for these settings (default: ``load_settings()``)."""
    settings = settings or load_settings()
    app = FastAPI(
        title="epnml re-inference and DataLink service",
        version=service_version(),
        description=(
            "Re-runs the models behind the epnml EPN-TAP catalogues on one granule "
            "(preview, nothing written), commits new model versions (token; old rows are "
            "superseded, never deleted), runs batches as IVOA UWS 1.1 jobs and serves the "
            "DataLink document of every row (`datalink_url`)."),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.worker = None
    app.state.db_pool = None
    app.state.pool = WorkerPool.from_settings(settings)
    app.add_middleware(CaseInsensitiveParams)
    app.add_middleware(AccessLog)
    install_query_filter()
    for error_type, handler in errors.HANDLERS:
        app.add_exception_handler(error_type, handler)
    for router in ROUTERS:
        app.include_router(router)
    return app
