"""IVOA UWS 1.1 over HTTP: ``/jobs`` and each job's phase, parameters, results, error,
destruction, execution duration, quote and owner.

Every job route is the owner's (or the administrator's): see :mod:`epnml.api.auth`. The
store is :mod:`epnml.api.store.store`, the documents :mod:`epnml.api.store.documents`; the
worker that runs queued jobs (:mod:`epnml.api.store.worker`) is started by create_app.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response

from epnml.api.auth import OWNER_HEADER, new_owner_token, owner_tag, require_token
from epnml.api.deps import JOB_ID, XML, AppSettings, Conn, FormParams, Who, base_url
from epnml.api.errors import DALI_ERRORS
from epnml.api.uws import documents, store
from epnml.api.votable import VOTABLE_TYPE
from epnml.config import Settings
from epnml.rerun import (
    InputError,
    NotFound,
    check_id,
    check_model_version,
    check_params,
    check_pipeline,
    find_row,
)

router = APIRouter()

JobId = Annotated[str, PathParam(pattern=JOB_ID)]


def _xml(text: str, status: int = 200) -> Response:
    return Response(text, media_type=XML, status_code=status)


def _see(settings: Settings, path: str, headers: dict[str, str] | None = None
         ) -> RedirectResponse:
    return RedirectResponse(f"{base_url(settings)}{path}", status_code=303, headers=headers)


def _guard(request: Request, settings: Settings, job: store.Job) -> None:
    """Jobs that write rows are changed only with the token."""
    if job.commit:
        require_token(request, settings)


@router.get("/jobs", tags=["uws"], response_class=Response,
            responses={200: {"content": {XML: {}}}, 422: DALI_ERRORS[422]})
def jobs_list(conn: Conn, settings: AppSettings, who: Who,
              PHASE: Annotated[list[str] | None, Query(max_length=10)] = None,
              LAST: Annotated[int | None, Query(ge=1, le=10000)] = None) -> Response:
    """UWS job list of the caller (filter PHASE repeatable, LAST most recent): the jobs
    of the owner token sent (all jobs for the commit token; none without a token)."""
    phases = [p.upper() for p in PHASE or []]
    bad = [p for p in phases if p not in (*store.ACTIVE, *store.FINAL, "UNKNOWN")]
    if bad:
        raise InputError(f"unknown PHASE; use {', '.join((*store.ACTIVE, *store.FINAL))}")
    jobs = store.list_jobs(conn, phases or None, LAST, who)
    return _xml(documents.jobs_xml(jobs, base_url(settings)))


@router.post("/jobs", tags=["uws"], status_code=303, response_class=Response,
             responses=DALI_ERRORS)
def jobs_create(
        request: Request, conn: Conn, settings: AppSettings, who: Who, given: FormParams,
        PIPELINE: Annotated[str | None, Form(max_length=80)] = None,
        ID: Annotated[list[str] | None, Form(max_length=store.MAX_IDS)] = None,
        MODEL_VERSION: Annotated[str | None, Form(max_length=80)] = None,
        COMMIT: Annotated[bool, Form()] = False,
        PHASE: Annotated[str | None, Form(max_length=10)] = None) -> Response:
    """Create a job: re-run the granules of the IDs (or, PIPELINE alone, of every current
    row of that pipeline). COMMIT=true writes rows and needs the token. PHASE=RUN queues
    it at once (503 when max_queued_jobs are queued). The answer's ``X-Job-Owner-Token``
    header is the token every later request on the job must send (the one the client
    sent, else a new one); 429 beyond max_pending_per_client PENDING/QUEUED jobs.
    Any parameter of the pipeline's spec may be given (``THRESHOLD``, ``MIN_DURATION_H``;
    any case), checked by the spec before the job is created."""
    if PHASE is not None and PHASE.upper() != "RUN":
        raise InputError("PHASE at creation can only be RUN")
    ids = [check_id(i) for i in ID or []]
    if COMMIT:
        require_token(request, settings)
    if PIPELINE is not None:
        check_pipeline(PIPELINE, commit=COMMIT)
    pipeline = PIPELINE
    for uid in ids:
        try:
            ref = find_row(conn, uid)
        except NotFound as exc:
            raise InputError(str(exc)) from exc
        if pipeline is None:
            pipeline = ref.pipeline
        elif ref.pipeline != pipeline:
            raise InputError(f"ID {uid} belongs to pipeline {ref.pipeline}, not {pipeline};"
                             " one job re-runs one pipeline")
    if pipeline is None:
        raise InputError("give PIPELINE or at least one ID")
    if COMMIT:
        check_pipeline(pipeline, commit=True)
    if not ids:
        ids = store.ids_of_pipeline(conn, pipeline)
        if not ids:
            raise InputError(f"pipeline {pipeline} has no current rows to re-run")
    version = check_model_version(pipeline, MODEL_VERSION)
    params = {"MODEL_VERSION": version,
              **store.job_params(check_params(pipeline, given, version))}
    token = who.token or new_owner_token()
    job_id = store.create_job(conn, settings, owner=owner_tag(token), pipeline=pipeline,
                            ids=ids, params=params, commit=COMMIT,
                            run=PHASE is not None, address=who.address,
                            limit_by_address=who.token is None, limited=not who.admin)
    return _see(settings, f"/jobs/{job_id}", {OWNER_HEADER: token, "Cache-Control": "no-store"})


@router.get("/jobs/{job_id}", tags=["uws"], response_class=Response, responses=DALI_ERRORS)
def job_get(conn: Conn, settings: AppSettings, who: Who, job_id: JobId) -> Response:
    return _xml(documents.job_xml(store.get_job(conn, job_id, who), base_url(settings)))


@router.post("/jobs/{job_id}", tags=["uws"], status_code=303, response_class=Response,
             responses=DALI_ERRORS)
def job_post(request: Request, conn: Conn, settings: AppSettings, who: Who,
             job_id: JobId, ACTION: Annotated[str, Form(max_length=10)]) -> Response:
    """ACTION=DELETE: destroy the job (its record and results; never product rows)."""
    job = store.get_job(conn, job_id, who)
    if ACTION.upper() != "DELETE":
        raise InputError("ACTION must be DELETE")
    _guard(request, settings, job)
    store.delete_job(conn, settings, job_id)
    return _see(settings, "/jobs")


@router.delete("/jobs/{job_id}", tags=["uws"], status_code=303, response_class=Response,
               responses=DALI_ERRORS)
def job_delete(request: Request, conn: Conn, settings: AppSettings, who: Who,
               job_id: JobId) -> Response:
    _guard(request, settings, store.get_job(conn, job_id, who))
    store.delete_job(conn, settings, job_id)
    return _see(settings, "/jobs")


@router.get("/jobs/{job_id}/phase", tags=["uws"], response_class=PlainTextResponse,
            responses=DALI_ERRORS)
def job_phase(conn: Conn, who: Who, job_id: JobId) -> str:
    return store.get_job(conn, job_id, who).phase


@router.post("/jobs/{job_id}/phase", tags=["uws"], status_code=303, response_class=Response,
             responses=DALI_ERRORS)
def job_phase_post(request: Request, conn: Conn, settings: AppSettings, who: Who,
                   job_id: JobId, PHASE: Annotated[str, Form(max_length=10)]) -> Response:
    """PHASE=RUN queues a PENDING job; PHASE=ABORT stops it (before its next granule)."""
    job = store.get_job(conn, job_id, who)
    action = PHASE.upper()
    if action not in ("RUN", "ABORT"):
        raise InputError("PHASE must be RUN or ABORT")
    _guard(request, settings, job)
    if action == "RUN":
        store.run_job(conn, settings, job_id)
    else:
        store.abort_job(conn, job_id)
    return _see(settings, f"/jobs/{job_id}")


@router.get("/jobs/{job_id}/parameters", tags=["uws"], response_class=Response,
            responses=DALI_ERRORS)
def job_parameters(conn: Conn, who: Who, job_id: JobId) -> Response:
    return _xml(documents.parameters_xml(store.get_job(conn, job_id, who)))


@router.post("/jobs/{job_id}/parameters", tags=["uws"], status_code=303,
             response_class=Response, responses=DALI_ERRORS)
def job_parameters_post(
        request: Request, conn: Conn, settings: AppSettings, who: Who, job_id: JobId,
        given: FormParams,
        MODEL_VERSION: Annotated[str | None, Form(max_length=80)] = None) -> Response:
    """Change MODEL_VERSION or pipeline parameters (any of the spec's) of a PENDING
    job; the job's parameters with the new ones must pass the spec together."""
    job = store.get_job(conn, job_id, who)
    _guard(request, settings, job)
    params: dict[str, Any] = {}
    if MODEL_VERSION is not None:
        params["MODEL_VERSION"] = check_model_version(job.pipeline, MODEL_VERSION)
    version = params.get("MODEL_VERSION", job.params.get("MODEL_VERSION"))
    if given:
        params.update(store.job_params(check_params(
            job.pipeline, {**job.model_params(), **given}, version)))
    store.update_params(conn, job_id, params)
    return _see(settings, f"/jobs/{job_id}")


@router.get("/jobs/{job_id}/results", tags=["uws"], response_class=Response,
            responses=DALI_ERRORS)
def job_results(conn: Conn, settings: AppSettings, who: Who, job_id: JobId) -> Response:
    return _xml(documents.results_xml(store.get_job(conn, job_id, who), base_url(settings)))


@router.get("/jobs/{job_id}/results/rows", tags=["uws"], response_class=Response,
            responses=DALI_ERRORS)
def job_result_rows(conn: Conn, settings: AppSettings, who: Who, job_id: JobId) -> Response:
    """The rows the job produced (previewed or written), as a VOTable."""
    job = store.get_job(conn, job_id, who)
    path = store.job_dir(settings, job_id) / "rows.xml"
    if job.phase != "COMPLETED" or not path.is_file():
        raise NotFound(f"job {job_id} has no result rows (phase {job.phase})")
    return FileResponse(path, media_type=VOTABLE_TYPE)


@router.get("/jobs/{job_id}/results/summary", tags=["uws"], responses=DALI_ERRORS)
def job_result_summary(conn: Conn, who: Who, job_id: JobId) -> dict[str, Any]:
    """Per granule: status, rows, superseded rows, model version, run id, error."""
    job = store.get_job(conn, job_id, who)
    data: dict[str, Any] = json.loads(documents.result_summary(job))
    return data


@router.get("/jobs/{job_id}/error", tags=["uws"], response_class=PlainTextResponse,
            responses=DALI_ERRORS)
def job_error(conn: Conn, who: Who, job_id: JobId) -> str:
    return documents.error_text(store.get_job(conn, job_id, who))


@router.get("/jobs/{job_id}/destruction", tags=["uws"], response_class=PlainTextResponse,
            responses=DALI_ERRORS)
def job_destruction(conn: Conn, who: Who, job_id: JobId) -> str:
    return documents.iso(store.get_job(conn, job_id, who).destruction_time)


@router.post("/jobs/{job_id}/destruction", tags=["uws"], status_code=303,
             response_class=Response, responses=DALI_ERRORS)
def job_destruction_post(request: Request, conn: Conn, settings: AppSettings, who: Who,
                         job_id: JobId, DESTRUCTION: Annotated[str, Form(max_length=40)]
                         ) -> Response:
    """A new destruction time (ISO 8601, UTC), at most 30 days ahead."""
    job = store.get_job(conn, job_id, who)
    try:
        when = datetime.fromisoformat(DESTRUCTION.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError("DESTRUCTION must be an ISO 8601 time, "
                         "e.g. 2030-01-01T00:00:00Z") from exc
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when > datetime.now(UTC) + timedelta(days=30):
        raise InputError("DESTRUCTION at most 30 days ahead")
    _guard(request, settings, job)
    store.set_destruction(conn, job_id, when)
    return _see(settings, f"/jobs/{job_id}")


@router.get("/jobs/{job_id}/executionduration", tags=["uws"],
            response_class=PlainTextResponse, responses=DALI_ERRORS)
def job_duration(conn: Conn, who: Who, job_id: JobId) -> str:
    return str(store.get_job(conn, job_id, who).execution_duration)


@router.post("/jobs/{job_id}/executionduration", tags=["uws"], status_code=303,
             response_class=Response, responses=DALI_ERRORS)
def job_duration_post(request: Request, conn: Conn, settings: AppSettings, who: Who,
                      job_id: JobId,
                      EXECUTIONDURATION: Annotated[int, Form(ge=0, le=86400)]) -> Response:
    """Seconds the job may run (0 = unlimited); checked between granules."""
    _guard(request, settings, store.get_job(conn, job_id, who))
    store.set_execution_duration(conn, job_id, EXECUTIONDURATION)
    return _see(settings, f"/jobs/{job_id}")


@router.get("/jobs/{job_id}/quote", tags=["uws"], response_class=PlainTextResponse,
            responses=DALI_ERRORS)
def job_quote(conn: Conn, who: Who, job_id: JobId) -> str:
    """No estimate is made (empty)."""
    store.get_job(conn, job_id, who)
    return ""


@router.get("/jobs/{job_id}/owner", tags=["uws"], response_class=PlainTextResponse,
            responses=DALI_ERRORS)
def job_owner(conn: Conn, who: Who, job_id: JobId) -> str:
    """The owner's tag (a hash of the owner token, never the token)."""
    return store.get_job(conn, job_id, who).owner
