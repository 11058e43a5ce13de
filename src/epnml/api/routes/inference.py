"""Re-inference: ``/preview`` (a row's granule re-run, nothing written), ``/preview/{pipeline}``
(your own files), ``/commit`` (token: the rows are written as a new version).

A re-run by ID is :func:`epnml.rerun.rerun`, the function behind ``epnml rerun``: previews
run in the service's worker pool (deadline, memory cap), commits inline. Every request is
logged in ``epnml.inference_log``.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from epnml.api.auth import client_id, require_token
from epnml.api.deps import (
    NAME,
    AppSettings,
    Conn,
    FormParams,
    Pool,
    QueryParams,
    Version,
    response_format,
)
from epnml.api.errors import DALI_ERRORS, ERRORS, http_status
from epnml.api.models import CommitResult, PreviewResult
from epnml.api.requestlog import log_request
from epnml.api.votable import VOTABLE_TYPE, json_rows, rows_votable
from epnml.api.workers import WorkerPool, pool_runner, run_preview
from epnml.config import Settings
from epnml.ingest.executor import get_stage
from epnml.rerun import (
    Busy,
    InputError,
    Internal,
    NotFound,
    SourceGone,
    Timeout,
    Trace,
    check_model_version,
    check_params,
    check_pipeline,
    rerun,
)
from epnml.safety import clean_message

router = APIRouter()

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,120}$")
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


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


def _preview(request: Request, conn: psycopg.Connection, settings: Settings, pool: WorkerPool,
             uid: str, model_version: str | None, given: dict[str, str], fmt: str | None
             ) -> Response:
    """A re-run of the row's granule in the worker pool, logged."""
    t0 = time.perf_counter()
    status, error = 500, None
    trace = Trace(model_version=model_version)
    try:
        fmt = _asked_format(request, fmt)
        done = rerun(conn, settings, uid, model_version=model_version, params=given,
                     preview=pool_runner(pool), trace=trace)
        status = 200
        return _respond(done.rows, fmt, uid=uid, pipeline=done.ref.pipeline,
                        family=done.ref.family, model_version=done.model_version,
                        seconds=done.seconds)
    except (InputError, NotFound, SourceGone, Busy, Timeout, Internal) as exc:
        status = http_status(exc)
        error = clean_message(str(exc))
        raise
    finally:
        log_request(conn, settings, client=client_id(request), endpoint="preview",
                    pipeline=trace.ref.pipeline if trace.ref else None,
                    granule_id=uid[:200], model_version=trace.model_version,
                    params=given, seconds=time.perf_counter() - t0,
                    outcome="ok" if status == 200 else "failed", http_status=status,
                    error=error)


Fmt = Annotated[str | None, Query(alias="RESPONSEFORMAT", max_length=40,
                                  description="votable (default) or json")]
FmtForm = Annotated[str | None, Form(alias="RESPONSEFORMAT", max_length=40)]


def _asked_format(request: Request, value: str | None) -> str:
    """The answer's format (VOTable by default); a format the client named is also the
    format of an error answer (:func:`epnml.api.errors.error_format`)."""
    if value is None:
        return "votable"
    fmt = response_format(value)
    request.state.response_format = fmt
    return fmt


@router.get("/preview", tags=["inference"], response_class=Response,
            responses={200: {"content": {VOTABLE_TYPE: {}, "application/json": {
                "schema": PreviewResult.model_json_schema()}}}, **DALI_ERRORS})
def preview(request: Request, conn: Conn, settings: AppSettings, pool: Pool,
            ID: Annotated[str, Query(max_length=200, description="granule_uid of a row")],
            given: QueryParams, model_version: Version = None,
            RESPONSEFORMAT: Fmt = None) -> Response:
    """Re-run the row's model on its source granule; return the rows, write nothing.
    Any parameter of the pipeline's spec (see /pipelines) may be given, e.g.
    ``threshold=0.7``; another value than the default derives a version."""
    return _preview(request, conn, settings, pool, ID, model_version, given, RESPONSEFORMAT)


@router.post("/preview", tags=["inference"], response_class=Response, responses=DALI_ERRORS)
def preview_post(request: Request, conn: Conn, settings: AppSettings, pool: Pool,
                 ID: Annotated[str, Form(max_length=200)],
                 given: FormParams,
                 model_version: Annotated[str | None, Form(max_length=80)] = None,
                 RESPONSEFORMAT: FmtForm = None) -> Response:
    """As GET /preview, with form parameters."""
    return _preview(request, conn, settings, pool, ID, model_version, given, RESPONSEFORMAT)


@router.post("/preview/{pipeline}", tags=["inference"], response_class=Response,
             responses=DALI_ERRORS, openapi_extra={"requestBody": {"required": True, "content": {
                 "multipart/form-data": {"schema": {
                     "type": "object", "required": ["file"],
                     "properties": {"file": {"type": "array", "items": {
                         "type": "string", "format": "binary"}}}}}}}})
async def preview_upload(
        request: Request, settings: AppSettings, pool: Pool,
        pipeline: Annotated[str, PathParam(pattern=NAME)], given: QueryParams,
        model_version: Version = None, RESPONSEFORMAT: Fmt = None) -> Response:
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
        fmt = _asked_format(request, RESPONSEFORMAT)
        paths = await _receive_upload(request, settings, upload_dir)
        out = await run_in_threadpool(run_preview, pool, settings, pipeline, paths,
                                      model_version=version, params=params)
        family = get_stage(pipeline, version).product
        status = 200
        return _respond(out["rows"], fmt, uid=None, pipeline=pipeline, family=family,
                        model_version=out["model_version"], seconds=out["seconds"])
    except HTTPException as exc:
        status, error = exc.status_code, clean_message(str(exc.detail))
        raise
    except (InputError, Busy, Timeout, Internal) as exc:
        status, error = http_status(exc), clean_message(str(exc))
        raise
    finally:
        shutil.rmtree(upload_dir, ignore_errors=True)
        await run_in_threadpool(
            log_request, None, settings, client=client_id(request),
            endpoint="preview_upload", pipeline=pipeline[:80], granule_id=None,
            model_version=model_version, params=given,
            seconds=time.perf_counter() - t0,
            outcome="ok" if status == 200 else "failed", http_status=status, error=error)


async def _receive_upload(request: Request, settings: Settings, directory: Path
                          ) -> list[Path]:
    """The multipart ``file`` parts, streamed into ``directory`` (max_upload_mb)."""
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


@router.post("/commit", tags=["inference"], response_model=CommitResult,
             responses=ERRORS)
def commit(request: Request, conn: Conn, settings: AppSettings,
           ID: Annotated[str, Form(max_length=200)],
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
        status, error = http_status(exc), clean_message(str(exc))
        raise
    finally:
        log_request(conn, settings, client=client_id(request), endpoint="commit",
                    pipeline=trace.ref.pipeline if trace.ref else None,
                    granule_id=ID[:200], model_version=trace.model_version,
                    params=given, seconds=time.perf_counter() - t0,
                    outcome="ok" if status == 200 else "failed", http_status=status,
                    error=error)


def _safe_name(filename: str, index: int) -> str:
    """A client's file name reduced to a plain name in the upload directory."""
    name = PurePosixPath(filename.replace("\\", "/")).name
    if _SAFE_NAME.fullmatch(name) and ".." not in name:
        return name
    suffix = PurePosixPath(name).suffix
    return f"upload{index}{suffix if _SAFE_SUFFIX.fullmatch(suffix) else ''}"
