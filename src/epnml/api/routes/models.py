"""The model registry over HTTP: pipelines and their parameters, model versions, cards, drift
(what ``epnml_models.versions`` and ``epnml_models.score_drift`` serve over TAP)."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam
from psycopg.rows import dict_row

from epnml.api.deps import NAME, VERSION, Conn
from epnml.api.errors import ERRORS
from epnml.api.models import DriftRow, ModelEntry, ParamInfo, PipelineInfo, RegisteredVersion
from epnml.ingest.executor import get_stage
from epnml.ingest.spec import describe, get_spec
from epnml.rerun import NotFound, allowed_versions, pipelines, stage_problem

router = APIRouter()


@router.get("/pipelines", response_model=list[PipelineInfo], tags=["models"])
def list_pipelines() -> list[PipelineInfo]:
    """The allow-list: pipelines and the model versions clients may name."""
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


@router.get("/models", response_model=list[ModelEntry], tags=["models"])
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


@router.get("/models/{name}/{version}/card", tags=["models"], responses=ERRORS)
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


@router.get("/models/{name}/drift", response_model=list[DriftRow], tags=["models"],
            responses=ERRORS)
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
