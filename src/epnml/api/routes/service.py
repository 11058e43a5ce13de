"""Service state: ``GET /health`` (database, DaCHS, job worker)."""

from __future__ import annotations

import urllib.request

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from epnml.api.deps import get_settings, service_version
from epnml.api.models import Health
from epnml.db import connect

router = APIRouter()


@router.get("/health", response_model=Health, tags=["service"],
            responses={503: {"model": Health}})
def health(request: Request) -> JSONResponse:
    """Database and DaCHS reachability; 503 when the database is down."""
    settings = get_settings(request)
    db_ok, queued = False, None
    try:
        with connect(settings) as conn:
            row = conn.execute(
                "SELECT count(*) FROM epnml.jobs WHERE phase = 'QUEUED'").fetchone()
            queued = int(row[0]) if row else 0
            db_ok = True
    except (RuntimeError, psycopg.Error):
        pass
    try:
        with urllib.request.urlopen(f"{settings.server_url.rstrip('/')}/tap/availability",
                                    timeout=3) as response:
            dachs_ok = response.status == 200
    except OSError:
        dachs_ok = False
    worker = request.app.state.worker
    body = Health(status="ok" if db_ok and dachs_ok else "degraded", version=service_version(),
                  database=db_ok, dachs=dachs_ok,
                  job_worker=bool(worker is not None and worker.is_alive()),
                  queued_jobs=queued)
    return JSONResponse(body.model_dump(), status_code=200 if db_ok else 503)
