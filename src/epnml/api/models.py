"""Request/response models of the JSON endpoints (they make the OpenAPI document)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field


def _utc(value: datetime) -> datetime:
    """The store keeps naive UTC timestamps; clients get them with their zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class Problem(BaseModel):
    detail: str = Field(description="What was wrong and how to fix it")
    error_id: str | None = Field(
        default=None, description="HTTP 500 only: quote it to the operator (the details are "
                                  "in the service's log, never in the answer)")


class Health(BaseModel):
    status: str = Field(description="ok, or degraded when DaCHS does not answer")
    version: str
    database: bool
    dachs: bool
    job_worker: bool = Field(description="this process runs queued UWS jobs")
    queued_jobs: int | None = None


class ParamInfo(BaseModel):
    """One parameter of a pipeline's spec (epnml.ingest.spec)."""

    name: str
    type: str
    min: float | None = None
    max: float | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True
    range: str = ""
    choices: list[str | int] | None = None
    default: float | int | str | None = Field(
        description="the real default (the model's own for thresholds); null: none")
    model_param: bool = Field(description="another value derives a model version")
    description: str = ""


class PipelineInfo(BaseModel):
    name: str
    versions: list[str] = Field(description="allowed model versions (the allow-list)")
    available: bool = Field(description="its stage loads here (weights installed)")
    problem: str | None = None
    predict_only: bool
    takes_threshold: bool
    parameters: list[ParamInfo] = Field(default_factory=list,
                                        description="the spec's parameters and defaults")


class RegisteredVersion(BaseModel):
    model_name: str
    model_version: str
    weights_sha256: str
    registered_at: UtcDatetime


class ModelEntry(BaseModel):
    pipeline: str
    versions: list[str] = Field(description="committed versions clients may name")
    registered: list[RegisteredVersion] = Field(
        description="versions that wrote rows here, derived ones (e.g. +threshold-0.7) included")


class DriftRow(BaseModel):
    model_name: str
    model_version: str
    month_start: UtcDatetime
    n_rows: int
    n_scored: int
    n_current: int
    score_mean: float | None
    score_p10: float | None
    score_p50: float | None
    score_p90: float | None


class PreviewResult(BaseModel):
    ID: str | None = Field(None, description="the row whose granule was re-run (None: upload)")
    pipeline: str
    model_version: str = Field(description="version the rows carry (derived if parameters)")
    n_rows: int
    seconds: float
    rows: list[dict[str, Any]]


class CommitResult(BaseModel):
    ID: str
    pipeline: str
    run_id: str
    model_version: str
    n_rows: int
    n_superseded: int = Field(description="rows of other versions now superseded (kept)")
    seconds: float
    granules: list[dict[str, Any]]
