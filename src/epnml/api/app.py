"""The FastAPI application: ``create_app(settings)``; ``epnml serve`` runs it with uvicorn.

A thin shell: every re-run is one :func:`epnml.rerun.rerun` call, every inference one
``run_pipeline`` call.
Reading needs no token; writing rows (``/commit``, jobs with COMMIT=true) needs the
bearer token of the service. Errors are JSON ``{"detail": ...}`` with 4xx codes:
422 bad input, 404 unknown ID/model/job (or a job that is not the caller's), 410 source
data gone, 413 upload or declared work too large, 401/403 token, 409 wrong job phase,
429 too many pending jobs, 503 busy or queue full (Retry-After), 504 preview deadline.
Anything unexpected is a 500 with an ``error_id``; its details go to the log only.
Error texts never carry server paths (see :mod:`epnml.api.safety`).
"""


import json
import re
import shutil
import tempfile
import time
import urllib.request
import uuid
import zipfile
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote

import psycopg
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from psycopg.rows import dict_row
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from epnml.api import jobs as uws
from epnml.api.auth import (
    OWNER_HEADER,
    Caller,
    caller,
    client_id,
    new_owner_token,
    owner_tag,
    require_token,
)
from epnml.api.datalink import DATALINK_TYPE, Link, ProcService, document
from epnml.api.models import (
    CommitResult,
    DriftRow,
    Health,
    ModelEntry,
    ParamInfo,
    PipelineInfo,
    PreviewResult,
    Problem,
    RegisteredVersion,
)
from epnml.api.params import CaseInsensitiveParams, form_params, query_params
from epnml.api.requestlog import log_request
from epnml.api.safety import (
    AccessLog,
    clean_message,
    install_query_filter,
    internal_detail,
    log_internal,
)
from epnml.api.votable import VOTABLE_TYPE, json_rows, rows_votable
from epnml.api.workers import WorkerPool, pool_runner, run_preview
from epnml.config import Settings, load_settings
from epnml.db import connect
from epnml.rerun import (
    Busy,
    InputError,
    Internal,
    NotFound,
    RowRef,
    SourceGone,
    Timeout,
    TooLarge,
    Trace,
    allowed_versions,
    available_sources,
    check_id,
    check_model_version,
    check_params,
    check_pipeline,
    find_row,
    pipelines,
    rerun,
    stage_problem,
)

XML = "application/xml"
JOB_ID = r"^[a-z0-9]{8,40}$"
NAME = r"^[A-Za-z0-9_.\-]{1,80}$"
VERSION = r"^[A-Za-z0-9_.+\-]{1,120}$"
_FORMATS = {"votable": "votable", "application/x-votable+xml": "votable", "text/xml": "votable",
            "json": "json", "application/json": "json"}
#: every error is JSON {"detail": "..."} whatever the endpoint's own media type.
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": "error", "content": {"application/json": {
        "schema": Problem.model_json_schema()}}}
    for code in (400, 401, 403, 404, 409, 410, 413, 422, 429, 500, 503, 504)}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,120}$")
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("epnml")
    except Exception:  # noqa: BLE001 - not installed: still serve
        return "unknown"


def _format(value: str) -> str:
    fmt = _FORMATS.get(value.strip().lower())
    if fmt is None:
        raise InputError("RESPONSEFORMAT must be votable or json")
    return fmt


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Every error body: the message without server paths or control characters, capped."""
    return JSONResponse({"detail": clean_message(detail)}, status_code=status, headers=headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for these settings (default: ``load_settings()``)."""
    settings = settings or load_settings()

    pool = WorkerPool.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None, None]:
        settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        worker = None
        await run_in_threadpool(pool.start)  # workers import the runner before the 1st call
        if settings.job_worker:
            worker = uws.JobWorker(settings, pool=pool)
            worker.start()
        app.state.worker = worker
        yield
        if worker is not None:
            await run_in_threadpool(worker.stop)
        pool.close()

    app = FastAPI(
        title="epnml re-inference and DataLink service",
        version=_version(),
        description=(
            "Re-runs the models behind the epnml EPN-TAP catalogues on one granule "
            "(preview, nothing written), commits new model versions (token; old rows are "
            "superseded, never deleted), runs batches as IVOA UWS 1.1 jobs and serves the "
            "DataLink document of every row (`datalink_url`)."),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.worker = None
    app.state.pool = pool
    app.add_middleware(CaseInsensitiveParams)
    app.add_middleware(AccessLog)
    install_query_filter()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own validation errors in the same shape: one readable message."""
        messages = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
            messages.append(f"{where}: {err.get('msg', 'invalid')}")
        return _problem(422, "; ".join(messages) or "invalid request")

    # errors whose message is the answer: one status each, no extra headers
    plain_errors: dict[type[Exception], int] = {
        InputError: 422, TooLarge: 413, Timeout: 504, NotFound: 404, SourceGone: 410,
        uws.PhaseConflict: 409}

    async def _plain(request: Request, exc: Exception) -> JSONResponse:
        # the most specific class wins (TooLarge is an InputError)
        status = next(plain_errors[k] for k in type(exc).__mro__ if k in plain_errors)
        return _problem(status, str(exc))

    for error_type in plain_errors:
        app.add_exception_handler(error_type, _plain)

    @app.exception_handler(Internal)
    async def _internal(request: Request, exc: Internal) -> JSONResponse:
        return JSONResponse({"detail": internal_detail(exc.error_id), "error_id": exc.error_id},
                            status_code=500)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        """Never a traceback to the client: a generic body, the details in the log."""
        import traceback

        error_id = log_internal(f"{request.method} {request.url.path}", "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return JSONResponse({"detail": internal_detail(error_id), "error_id": error_id},
                            status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _problem(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(uws.TooManyPending)
    async def _pending(request: Request, exc: uws.TooManyPending) -> JSONResponse:
        return _problem(429, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> JSONResponse:
        return _problem(503, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(uws.QueueFull)
    async def _full(request: Request, exc: uws.QueueFull) -> JSONResponse:
        return _problem(503, str(exc), {"Retry-After": "30"})

    @app.exception_handler(psycopg.OperationalError)
    async def _db_down(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        return _problem(503, "the database is unavailable; retry later")

    def db() -> Iterator[psycopg.Connection]:
        try:
            conn = connect(settings)
        except RuntimeError as exc:
            raise HTTPException(503, "the database is unavailable; retry later") from exc
        try:
            yield conn
        finally:
            conn.close()

    Conn = Annotated[psycopg.Connection, Depends(db)]
    base = settings.api_url.rstrip("/")

    # --- service ---------------------------------------------------------------------

    @app.get("/health", response_model=Health, tags=["service"],
             responses={503: {"model": Health}})
    def health() -> JSONResponse:
        """Database and DaCHS reachability; 503 when the database is down."""
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
        worker = app.state.worker
        body = Health(status="ok" if db_ok and dachs_ok else "degraded", version=_version(),
                      database=db_ok, dachs=dachs_ok,
                      job_worker=bool(worker is not None and worker.is_alive()),
                      queued_jobs=queued)
        return JSONResponse(body.model_dump(), status_code=200 if db_ok else 503)

    @app.get("/pipelines", response_model=list[PipelineInfo], tags=["models"])
    def list_pipelines() -> list[PipelineInfo]:
        """The allow-list: pipelines and the model versions clients may name."""
        from epnml.ingest.executor import get_stage
        from epnml.ingest.spec import describe, get_spec

        out = []
        for name in sorted(pipelines()):
            problem = stage_problem(name)
            out.append(PipelineInfo(
                name=name, versions=allowed_versions(name), available=problem is None,
                problem=problem,
                predict_only=problem is None and bool(getattr(get_stage(name, None),
                                                              "predict_only", False)),
                takes_threshold="threshold" in get_spec(name).params.model_fields,
                parameters=[ParamInfo(**p) for p in describe(name)]))
        return out

    @app.get("/models", response_model=list[ModelEntry], tags=["models"])
    def list_models(conn: Conn) -> list[ModelEntry]:
        """Committed versions per pipeline and every version registered in this store."""
        with conn.cursor(row_factory=dict_row) as cur:
            registered = cur.execute(
                "SELECT model_name, model_version, weights_sha256, registered_at"
                " FROM epnml.model_versions ORDER BY model_name, registered_at").fetchall()
        return [ModelEntry(pipeline=name, versions=allowed_versions(name),
                           registered=[RegisteredVersion(**r) for r in registered
                                       if r["model_name"] == name])
                for name in sorted(pipelines())]

    @app.get("/models/{name}/{version}/card", tags=["models"], responses=_ERRORS)
    def model_card(conn: Conn, name: Annotated[str, PathParam(pattern=NAME)],
                   version: Annotated[str, PathParam(pattern=VERSION)]) -> dict[str, Any]:
        """The model card (JSON) recorded when the version first wrote rows."""
        row = conn.execute(
            "SELECT card, weights_sha256, registered_at FROM epnml.model_versions"
            " WHERE model_name = %s AND model_version = %s", (name, version)).fetchone()
        if row is None:
            raise NotFound(f"no registered model {name} {version} (see /models)")
        return {"model_name": name, "model_version": version, "weights_sha256": row[1],
                "registered_at": row[2].replace(tzinfo=UTC).isoformat(), "card": row[0]}

    @app.get("/models/{name}/drift", response_model=list[DriftRow], tags=["models"],
             responses=_ERRORS)
    def model_drift(conn: Conn, name: Annotated[str, PathParam(pattern=NAME)]
                    ) -> list[DriftRow]:
        """Score distribution per version and month of creation_date (current + superseded)."""
        known = conn.execute("SELECT 1 FROM epnml.model_versions WHERE model_name = %s LIMIT 1",
                             (name,)).fetchone()
        if known is None and name not in pipelines():
            raise NotFound(f"no model {name} (see /models)")
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute("SELECT * FROM epnml.score_drift WHERE model_name = %s"
                               " ORDER BY month_start, model_version", (name,)).fetchall()
        return [DriftRow(**r) for r in rows]

    # --- DataLink --------------------------------------------------------------------

    def _links(conn: psycopg.Connection, uid: str, n: int
               ) -> tuple[list[Link], ProcService | None]:
        try:
            ref = find_row(conn, uid)
        except NotFound as exc:
            return [Link(uid, "#this", error_message=f"NotFoundFault: {exc}")], None
        links: list[Link] = []
        try:
            paths = available_sources(conn, ref)
            size = sum(p.stat().st_size for p in paths) if len(paths) == 1 else None
            ctype = "application/zip" if len(paths) > 1 else _mime(paths[0])
            links.append(Link(uid, "#progenitor",
                              access_url=f"{base}/granules/{quote(uid, safe='')}/source",
                              description=f"source data of granule {ref.obs_id} "
                                          f"({', '.join(p.name for p in paths)})",
                              content_type=ctype, content_length=size))
        except SourceGone:
            links.append(Link(uid, "#progenitor",
                              error_message="NotFoundFault: source no longer available"))
        if ref.thumbnail_url:
            links.append(Link(uid, "#preview", access_url=ref.thumbnail_url,
                              description="quicklook", content_type="image/png"))
        card = (f"{base}/models/{quote(ref.model_name, safe='')}/"
                f"{quote(ref.model_version, safe='+')}/card")
        links.append(Link(uid, "#documentation", access_url=card,
                          description=f"model card of {ref.model_name} {ref.model_version}",
                          content_type="application/json"))
        svc_id = f"proc_svc_{n}"
        links.append(Link(uid, "#proc", service_def=svc_id,
                          description=f"re-run {ref.model_name} on this granule (preview; "
                                      "nothing is written)",
                          content_type=VOTABLE_TYPE))
        versions = allowed_versions(ref.pipeline)
        preset = ref.base_version if ref.base_version in versions else (versions[-1]
                                                                         if versions else "")
        svc = ProcService(svc_id, f"{base}/preview", versions, preset,
                          _proc_params(ref, preset))
        return links, svc

    def _proc_params(ref: RowRef, version: str) -> list[dict[str, Any]]:
        """The spec's parameters with their real defaults for ``version``, except those
        the row's run set (a derived version's threshold, craters' target): the preset
        then re-runs the row as it was made; ``model_default`` keeps the model's own."""
        from epnml.ingest.spec import describe, validate_params

        try:
            params = describe(ref.pipeline, version or None)
        except (OSError, ValueError, RuntimeError, KeyError):  # weights or card missing
            return []
        names = {p["name"] for p in params}
        own = {k: v for k, v in ref.run_params.items() if k in names and v is not None}
        try:
            own = validate_params(ref.pipeline, own, version or None)[0]
        except ValueError:  # an old run's value the spec now refuses: advertise defaults
            own = {}
        return [{**p, "default": own[p["name"]], "model_default": p["default"]}
                if p["name"] in own else p for p in params]

    @app.get("/datalink", tags=["datalink"], response_class=Response,
             responses={200: {"content": {DATALINK_TYPE: {}}}, 422: _ERRORS[422]})
    def datalink(conn: Conn, ID: Annotated[list[str], Query(min_length=1, max_length=50)]
                 ) -> Response:
        """DataLink document of rows (by granule_uid). An unknown ID gets an error row
        (HTTP 200, as DataLink wants); a malformed one is a 422."""
        for uid in ID:
            check_id(uid)
        links: list[Link] = []
        services: list[ProcService] = []
        for n, uid in enumerate(ID):
            found, svc = _links(conn, uid, n)
            links += found
            if svc is not None:
                services.append(svc)
        return Response(document(links, services), media_type=DATALINK_TYPE)

    @app.get("/granules/{ID}/source", tags=["datalink"], response_class=Response,
             responses=_ERRORS)
    def granule_source(conn: Conn, ID: Annotated[str, PathParam(max_length=200)]) -> Response:
        """The row's source file (or a zip of its files) while it is still on disk."""
        ref = find_row(conn, check_id(ID))
        paths = available_sources(conn, ref)
        if len(paths) == 1:
            return FileResponse(paths[0], media_type=_mime(paths[0]), filename=paths[0].name)
        settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=settings.jobs_dir, suffix=".zip",
                                             delete=False)
        with handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in paths:
                archive.write(path, arcname=path.name)
        from starlette.background import BackgroundTask

        return FileResponse(handle.name, media_type="application/zip",
                            filename=f"{ref.obs_id}.zip",
                            background=BackgroundTask(Path(handle.name).unlink, missing_ok=True))

    # --- preview and commit ----------------------------------------------------------

    def _respond(summary_rows: list[dict[str, Any]], fmt: str, *, uid: str | None,
                 pipeline: str, family: str | None, model_version: str,
                 seconds: float) -> Response:
        if fmt == "json":
            body = PreviewResult(ID=uid, pipeline=pipeline, model_version=model_version,
                                 n_rows=len(summary_rows), seconds=round(seconds, 4),
                                 rows=json_rows(summary_rows))
            return JSONResponse(body.model_dump())
        info = {"pipeline": pipeline, "model_version": model_version}
        if uid:
            info["ID"] = uid
        return Response(rows_votable(summary_rows, family, info), media_type=VOTABLE_TYPE)

    def _preview(request: Request, conn: psycopg.Connection, uid: str,
                 model_version: str | None, given: dict[str, str], fmt: str) -> Response:
        t0 = time.perf_counter()
        status, error = 500, None
        trace = Trace(model_version=model_version)
        try:
            fmt = _format(fmt)
            done = rerun(conn, settings, uid, model_version=model_version, params=given,
                         preview=pool_runner(pool), trace=trace)
            status = 200
            return _respond(done.rows, fmt, uid=uid, pipeline=done.ref.pipeline,
                            family=done.ref.family, model_version=done.model_version,
                            seconds=done.seconds)
        except (InputError, NotFound, SourceGone, Busy, Timeout, Internal) as exc:
            status = _status(exc)
            error = clean_message(str(exc))
            raise
        finally:
            log_request(conn, settings, client=client_id(request), endpoint="preview",
                        pipeline=trace.ref.pipeline if trace.ref else None,
                        granule_id=uid[:200], model_version=trace.model_version,
                        params=given, seconds=time.perf_counter() - t0,
                        outcome="ok" if status == 200 else "failed", http_status=status,
                        error=error)

    Fmt = Annotated[str, Query(alias="RESPONSEFORMAT", max_length=40,
                               description="votable (default) or json")]
    FmtForm = Annotated[str, Form(alias="RESPONSEFORMAT", max_length=40)]
    Version = Annotated[str | None, Query(max_length=80, description="see /pipelines")]
    #: every spec parameter of the pipeline, any case (epnml.api.params); see /pipelines
    QueryParams = Annotated[dict[str, str], Depends(query_params)]
    FormParams = Annotated[dict[str, str], Depends(form_params)]

    @app.get("/preview", tags=["inference"], response_class=Response,
             responses={200: {"content": {VOTABLE_TYPE: {}, "application/json": {
                 "schema": PreviewResult.model_json_schema()}}}, **_ERRORS})
    def preview(request: Request, conn: Conn,
                ID: Annotated[str, Query(max_length=200, description="granule_uid of a row")],
                given: QueryParams, model_version: Version = None,
                RESPONSEFORMAT: Fmt = "votable") -> Response:
        """Re-run the row's model on its source granule; return the rows, write nothing.
        Any parameter of the pipeline's spec (see /pipelines) may be given, e.g.
        ``threshold=0.7``; another value than the default derives a version."""
        return _preview(request, conn, ID, model_version, given, RESPONSEFORMAT)

    @app.post("/preview", tags=["inference"], response_class=Response, responses=_ERRORS)
    def preview_post(request: Request, conn: Conn,
                     ID: Annotated[str, Form(max_length=200)],
                     given: FormParams,
                     model_version: Annotated[str | None, Form(max_length=80)] = None,
                     RESPONSEFORMAT: FmtForm = "votable") -> Response:
        """As GET /preview, with form parameters."""
        return _preview(request, conn, ID, model_version, given, RESPONSEFORMAT)

    @app.post("/preview/{pipeline}", tags=["inference"], response_class=Response,
              responses=_ERRORS, openapi_extra={"requestBody": {"required": True, "content": {
                  "multipart/form-data": {"schema": {
                      "type": "object", "required": ["file"],
                      "properties": {"file": {"type": "array", "items": {
                          "type": "string", "format": "binary"}}}}}}}})
    async def preview_upload(
            request: Request, pipeline: Annotated[str, PathParam(pattern=NAME)],
            given: QueryParams, model_version: Version = None,
            RESPONSEFORMAT: Fmt = "votable") -> Response:
        """Preview on your own files (multipart ``file`` parts, streamed to disk, at most
        ``max_upload_mb``). Only a file's plain name is kept (PDS3 labels name their data
        file); anything path-like becomes ``uploadN.<suffix>``. The pipeline's spec
        parameters go in the query string."""
        t0 = time.perf_counter()
        status, error = 500, None
        upload_dir = settings.jobs_dir / "uploads" / uuid.uuid4().hex
        try:
            check_pipeline(pipeline)
            version = check_model_version(pipeline, model_version)
            params = check_params(pipeline, given, version)
            fmt = _format(RESPONSEFORMAT)
            paths = await _receive_upload(request, upload_dir)
            out = await run_in_threadpool(run_preview, pool, settings, pipeline, paths,
                                          model_version=version, params=params)
            from epnml.ingest.executor import get_stage

            family = get_stage(pipeline, version).product
            status = 200
            return _respond(out["rows"], fmt, uid=None, pipeline=pipeline, family=family,
                            model_version=out["model_version"], seconds=out["seconds"])
        except HTTPException as exc:
            status, error = exc.status_code, clean_message(str(exc.detail))
            raise
        except (InputError, Busy, Timeout, Internal) as exc:
            status, error = _status(exc), clean_message(str(exc))
            raise
        finally:
            shutil.rmtree(upload_dir, ignore_errors=True)
            await run_in_threadpool(
                log_request, None, settings, client=client_id(request),
                endpoint="preview_upload", pipeline=pipeline[:80], granule_id=None,
                model_version=model_version, params=given,
                seconds=time.perf_counter() - t0,
                outcome="ok" if status == 200 else "failed", http_status=status, error=error)

    async def _receive_upload(request: Request, directory: Path) -> list[Path]:
        limit = settings.max_upload_mb * 1024 * 1024
        too_big = HTTPException(413, f"upload larger than {settings.max_upload_mb} MB "
                                     "(max_upload_mb)")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + 65536:
            raise too_big
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise InputError("send the files as multipart/form-data parts named 'file'")

        async def counted() -> AsyncGenerator[bytes, None]:
            n = 0
            async for chunk in request.stream():
                n += len(chunk)
                if n > limit + 65536:
                    raise too_big
                yield chunk

        parser = MultiPartParser(request.headers, counted(), max_files=20, max_fields=20)
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise InputError(f"bad multipart body: {exc.message}") from exc
        directory.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []
        total = 0
        try:
            for i, (_, value) in enumerate(form.multi_items()):
                if not isinstance(value, UploadFile):
                    continue
                target = directory / _safe_name(value.filename or "", i)
                if target.exists():
                    target = directory / f"{i}_{target.name}"
                with target.open("wb") as out:
                    while chunk := await value.read(1 << 20):
                        total += len(chunk)
                        if total > limit:
                            raise too_big
                        out.write(chunk)
                paths.append(target)
        finally:
            await form.close()
        if not paths:
            raise InputError("no file parts in the upload (name them 'file')")
        return paths

    @app.post("/commit", tags=["inference"], response_model=CommitResult,
              responses=_ERRORS)
    def commit(request: Request, conn: Conn, ID: Annotated[str, Form(max_length=200)],
               given: FormParams,
               model_version: Annotated[str | None, Form(max_length=80)] = None
               ) -> CommitResult:
        """Re-run and WRITE the granule's rows (Bearer token). Non-default parameters make a
        derived version (``1.0.0+threshold-0.7``) that supersedes the current rows; the old
        rows stay in the store with superseded_at set."""
        t0 = time.perf_counter()
        status, error = 500, None
        trace = Trace(model_version=model_version)
        try:
            require_token(request, settings)
            done = rerun(conn, settings, ID, model_version=model_version, params=given,
                         commit=True, trace=trace)
            data = done.report()
            status = 200
            return CommitResult(ID=ID, pipeline=done.ref.pipeline, run_id=data["run_id"],
                                model_version=data["model_version"], n_rows=data["n_rows"],
                                n_superseded=data["n_superseded"], seconds=data["seconds"],
                                granules=data["granules"])
        except HTTPException as exc:
            status, error = exc.status_code, clean_message(str(exc.detail))
            raise
        except (InputError, NotFound, SourceGone, Busy, Internal) as exc:
            status, error = _status(exc), clean_message(str(exc))
            raise
        finally:
            log_request(conn, settings, client=client_id(request), endpoint="commit",
                        pipeline=trace.ref.pipeline if trace.ref else None,
                        granule_id=ID[:200], model_version=trace.model_version,
                        params=given, seconds=time.perf_counter() - t0,
                        outcome="ok" if status == 200 else "failed", http_status=status,
                        error=error)

    # --- UWS 1.1 ---------------------------------------------------------------------
    # Every job route is the owner's (or the administrator's): see epnml.api.auth.

    JobId = Annotated[str, PathParam(pattern=JOB_ID)]

    def _xml(text: str, status: int = 200) -> Response:
        return Response(text, media_type=XML, status_code=status)

    def _see(path: str, headers: dict[str, str] | None = None) -> RedirectResponse:
        return RedirectResponse(f"{base}{path}", status_code=303, headers=headers)

    def _who(request: Request) -> Caller:
        return caller(request, settings)

    Who = Annotated[Caller, Depends(_who)]

    def _guard(request: Request, job: uws.Job) -> None:
        """Jobs that write rows are changed only with the token."""
        if job.commit:
            require_token(request, settings)

    @app.get("/jobs", tags=["uws"], response_class=Response,
             responses={200: {"content": {XML: {}}}, 422: _ERRORS[422]})
    def jobs_list(conn: Conn, who: Who,
                  PHASE: Annotated[list[str] | None, Query(max_length=10)] = None,
                  LAST: Annotated[int | None, Query(ge=1, le=10000)] = None) -> Response:
        """UWS job list of the caller (filter PHASE repeatable, LAST most recent): the jobs
        of the owner token sent (all jobs for the commit token; none without a token)."""
        phases = [p.upper() for p in PHASE or []]
        bad = [p for p in phases if p not in (*uws.ACTIVE, *uws.FINAL, "UNKNOWN")]
        if bad:
            raise InputError(f"unknown PHASE; use {', '.join((*uws.ACTIVE, *uws.FINAL))}")
        return _xml(uws.jobs_xml(uws.list_jobs(conn, phases or None, LAST, who), base))

    @app.post("/jobs", tags=["uws"], status_code=303, response_class=Response,
              responses=_ERRORS)
    def jobs_create(
            request: Request, conn: Conn, who: Who, given: FormParams,
            PIPELINE: Annotated[str | None, Form(max_length=80)] = None,
            ID: Annotated[list[str] | None, Form(max_length=uws.MAX_IDS)] = None,
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
            ids = uws.ids_of_pipeline(conn, pipeline)
            if not ids:
                raise InputError(f"pipeline {pipeline} has no current rows to re-run")
        version = check_model_version(pipeline, MODEL_VERSION)
        params = {"MODEL_VERSION": version,
                  **uws.job_params(check_params(pipeline, given, version))}
        token = who.token or new_owner_token()
        job_id = uws.create_job(conn, settings, owner=owner_tag(token), pipeline=pipeline,
                                ids=ids, params=params, commit=COMMIT,
                                run=PHASE is not None, address=who.address,
                                limit_by_address=who.token is None, limited=not who.admin)
        return _see(f"/jobs/{job_id}", {OWNER_HEADER: token, "Cache-Control": "no-store"})

    @app.get("/jobs/{job_id}", tags=["uws"], response_class=Response, responses=_ERRORS)
    def job_get(conn: Conn, who: Who, job_id: JobId) -> Response:
        return _xml(uws.job_xml(uws.get_job(conn, job_id, who), base))

    @app.post("/jobs/{job_id}", tags=["uws"], status_code=303, response_class=Response,
              responses=_ERRORS)
    def job_post(request: Request, conn: Conn, who: Who, job_id: JobId,
                 ACTION: Annotated[str, Form(max_length=10)]) -> Response:
        """ACTION=DELETE: destroy the job (its record and results; never product rows)."""
        job = uws.get_job(conn, job_id, who)
        if ACTION.upper() != "DELETE":
            raise InputError("ACTION must be DELETE")
        _guard(request, job)
        uws.delete_job(conn, settings, job_id)
        return _see("/jobs")

    @app.delete("/jobs/{job_id}", tags=["uws"], status_code=303, response_class=Response,
                responses=_ERRORS)
    def job_delete(request: Request, conn: Conn, who: Who, job_id: JobId) -> Response:
        _guard(request, uws.get_job(conn, job_id, who))
        uws.delete_job(conn, settings, job_id)
        return _see("/jobs")

    @app.get("/jobs/{job_id}/phase", tags=["uws"], response_class=PlainTextResponse,
             responses=_ERRORS)
    def job_phase(conn: Conn, who: Who, job_id: JobId) -> str:
        return uws.get_job(conn, job_id, who).phase

    @app.post("/jobs/{job_id}/phase", tags=["uws"], status_code=303, response_class=Response,
              responses=_ERRORS)
    def job_phase_post(request: Request, conn: Conn, who: Who, job_id: JobId,
                       PHASE: Annotated[str, Form(max_length=10)]) -> Response:
        """PHASE=RUN queues a PENDING job; PHASE=ABORT stops it (before its next granule)."""
        job = uws.get_job(conn, job_id, who)
        action = PHASE.upper()
        if action not in ("RUN", "ABORT"):
            raise InputError("PHASE must be RUN or ABORT")
        _guard(request, job)
        if action == "RUN":
            uws.run_job(conn, settings, job_id)
        else:
            uws.abort_job(conn, job_id)
        return _see(f"/jobs/{job_id}")

    @app.get("/jobs/{job_id}/parameters", tags=["uws"], response_class=Response,
             responses=_ERRORS)
    def job_parameters(conn: Conn, who: Who, job_id: JobId) -> Response:
        return _xml(uws.parameters_xml(uws.get_job(conn, job_id, who)))

    @app.post("/jobs/{job_id}/parameters", tags=["uws"], status_code=303,
              response_class=Response, responses=_ERRORS)
    def job_parameters_post(
            request: Request, conn: Conn, who: Who, job_id: JobId, given: FormParams,
            MODEL_VERSION: Annotated[str | None, Form(max_length=80)] = None) -> Response:
        """Change MODEL_VERSION or pipeline parameters (any of the spec's) of a PENDING
        job; the job's parameters with the new ones must pass the spec together."""
        job = uws.get_job(conn, job_id, who)
        _guard(request, job)
        params: dict[str, Any] = {}
        if MODEL_VERSION is not None:
            params["MODEL_VERSION"] = check_model_version(job.pipeline, MODEL_VERSION)
        version = params.get("MODEL_VERSION", job.params.get("MODEL_VERSION"))
        if given:
            params.update(uws.job_params(check_params(
                job.pipeline, {**job.model_params(), **given}, version)))
        uws.update_params(conn, job_id, params)
        return _see(f"/jobs/{job_id}")

    @app.get("/jobs/{job_id}/results", tags=["uws"], response_class=Response,
             responses=_ERRORS)
    def job_results(conn: Conn, who: Who, job_id: JobId) -> Response:
        return _xml(uws.results_xml(uws.get_job(conn, job_id, who), base))

    @app.get("/jobs/{job_id}/results/rows", tags=["uws"], response_class=Response,
             responses=_ERRORS)
    def job_result_rows(conn: Conn, who: Who, job_id: JobId) -> Response:
        """The rows the job produced (previewed or written), as a VOTable."""
        job = uws.get_job(conn, job_id, who)
        path = uws.job_dir(settings, job_id) / "rows.xml"
        if job.phase != "COMPLETED" or not path.is_file():
            raise NotFound(f"job {job_id} has no result rows (phase {job.phase})")
        return FileResponse(path, media_type=VOTABLE_TYPE)

    @app.get("/jobs/{job_id}/results/summary", tags=["uws"], responses=_ERRORS)
    def job_result_summary(conn: Conn, who: Who, job_id: JobId) -> dict[str, Any]:
        """Per granule: status, rows, superseded rows, model version, run id, error."""
        job = uws.get_job(conn, job_id, who)
        data: dict[str, Any] = json.loads(uws.result_summary(job))
        return data

    @app.get("/jobs/{job_id}/error", tags=["uws"], response_class=PlainTextResponse,
             responses=_ERRORS)
    def job_error(conn: Conn, who: Who, job_id: JobId) -> str:
        return uws.error_text(uws.get_job(conn, job_id, who))

    @app.get("/jobs/{job_id}/destruction", tags=["uws"], response_class=PlainTextResponse,
             responses=_ERRORS)
    def job_destruction(conn: Conn, who: Who, job_id: JobId) -> str:
        return uws.iso(uws.get_job(conn, job_id, who).destruction_time)

    @app.post("/jobs/{job_id}/destruction", tags=["uws"], status_code=303,
              response_class=Response, responses=_ERRORS)
    def job_destruction_post(request: Request, conn: Conn, who: Who, job_id: JobId,
                             DESTRUCTION: Annotated[str, Form(max_length=40)]) -> Response:
        """A new destruction time (ISO 8601, UTC), at most 30 days ahead."""
        job = uws.get_job(conn, job_id, who)
        try:
            when = datetime.fromisoformat(DESTRUCTION.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise InputError("DESTRUCTION must be an ISO 8601 time, "
                             "e.g. 2030-01-01T00:00:00Z") from exc
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        if when > datetime.now(UTC) + timedelta(days=30):
            raise InputError("DESTRUCTION at most 30 days ahead")
        _guard(request, job)
        uws.set_destruction(conn, job_id, when)
        return _see(f"/jobs/{job_id}")

    @app.get("/jobs/{job_id}/executionduration", tags=["uws"],
             response_class=PlainTextResponse, responses=_ERRORS)
    def job_duration(conn: Conn, who: Who, job_id: JobId) -> str:
        return str(uws.get_job(conn, job_id, who).execution_duration)

    @app.post("/jobs/{job_id}/executionduration", tags=["uws"], status_code=303,
              response_class=Response, responses=_ERRORS)
    def job_duration_post(request: Request, conn: Conn, who: Who, job_id: JobId,
                          EXECUTIONDURATION: Annotated[int, Form(ge=0, le=86400)]) -> Response:
        """Seconds the job may run (0 = unlimited); checked between granules."""
        _guard(request, uws.get_job(conn, job_id, who))
        uws.set_execution_duration(conn, job_id, EXECUTIONDURATION)
        return _see(f"/jobs/{job_id}")

    @app.get("/jobs/{job_id}/quote", tags=["uws"], response_class=PlainTextResponse,
             responses=_ERRORS)
    def job_quote(conn: Conn, who: Who, job_id: JobId) -> str:
        """No estimate is made (empty)."""
        uws.get_job(conn, job_id, who)
        return ""

    @app.get("/jobs/{job_id}/owner", tags=["uws"], response_class=PlainTextResponse,
             responses=_ERRORS)
    def job_owner(conn: Conn, who: Who, job_id: JobId) -> str:
        """The owner's tag (a hash of the owner token, never the token)."""
        return uws.get_job(conn, job_id, who).owner

    return app


def _status(exc: Exception) -> int:
    for kind, code in ((TooLarge, 413), (InputError, 422), (NotFound, 404), (SourceGone, 410),
                       (Busy, 503), (Timeout, 504), (Internal, 500)):
        if isinstance(exc, kind):
            return code
    return 500


def _mime(path: Path) -> str:
    import mimetypes

    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _safe_name(filename: str, index: int) -> str:
    """A client's file name reduced to a plain name in the upload directory."""
    name = PurePosixPath(filename.replace("\\", "/")).name
    if _SAFE_NAME.fullmatch(name) and ".." not in name:
        return name
    suffix = PurePosixPath(name).suffix
    return f"upload{index}{suffix if _SAFE_SUFFIX.fullmatch(suffix) else ''}"

