"""DataLink 1.1: the document of every served row (``datalink_url``) and its source files.

``#progenitor`` (the recorded source files, a zip when there are several), ``#preview``
(quicklook), ``#documentation`` (model card) and ``#proc``: a service descriptor of
``/preview`` whose input parameters are the row's pipeline spec.
"""

from __future__ import annotations

import mimetypes
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import psycopg
from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from epnml.api.datalink import DATALINK_TYPE, Link, ProcService, document
from epnml.api.deps import AppSettings, Conn, base_url
from epnml.api.errors import ERRORS
from epnml.api.votable import VOTABLE_TYPE
from epnml.ingest.spec import describe, validate_params
from epnml.rerun import (
    NotFound,
    RowRef,
    SourceGone,
    allowed_versions,
    available_sources,
    check_id,
    find_row,
)

router = APIRouter()


def _links(conn: psycopg.Connection, base: str, uid: str, n: int
           ) -> tuple[list[Link], ProcService | None]:
    """The rows of one ID and its #proc descriptor (None for an unknown ID)."""
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
    links.append(Link(uid, "#provenance",
                      access_url=f"{base}/rows/{quote(uid, safe='')}/provenance?format=json",
                      description="W3C PROV-JSON provenance: run, input files, model, "
                                  "parameters, software, training dataset (format=provn: "
                                  "PROV-N, format=votable: ProvTAP tables)",
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


@router.get("/datalink", tags=["datalink"], response_class=Response,
            responses={200: {"content": {DATALINK_TYPE: {}}}, 422: ERRORS[422]})
def datalink(conn: Conn, settings: AppSettings,
             ID: Annotated[list[str], Query(min_length=1, max_length=50)]) -> Response:
    """DataLink document of rows (by granule_uid). An unknown ID gets an error row
    (HTTP 200, as DataLink wants); a malformed one is a 422."""
    for uid in ID:
        check_id(uid)
    links: list[Link] = []
    services: list[ProcService] = []
    for n, uid in enumerate(ID):
        found, svc = _links(conn, base_url(settings), uid, n)
        links += found
        if svc is not None:
            services.append(svc)
    return Response(document(links, services), media_type=DATALINK_TYPE)


@router.get("/granules/{ID}/source", tags=["datalink"], response_class=Response,
            responses=ERRORS)
def granule_source(conn: Conn, settings: AppSettings,
                   ID: Annotated[str, PathParam(max_length=200)]) -> Response:
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
    return FileResponse(handle.name, media_type="application/zip",
                        filename=f"{ref.obs_id}.zip",
                        background=BackgroundTask(Path(handle.name).unlink, missing_ok=True))


def _mime(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"
