"""What the HTTP endpoints and the job worker share: validation, row lookup, one run.

Every inference goes through :func:`epnml.ingest.runner.run_pipeline` (the CLI's code
path) with ``workers=1``: the stage is cached in this process, so models load once.
Source files come from ``epnml.granule_runs`` (what the ingest recorded), never from
the client.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from epnml.config import Settings
from epnml.ingest.limits import LimitExceeded
from epnml.ingest.runner import RunFailed, RunSummary, run_pipeline

#: granule_uid syntax accepted from clients (the product tables allow no '#' or spaces).
ID_RE = re.compile(r"^[A-Za-z0-9_.:+\-]{1,200}$")
#: model versions as clients may name them (base versions; derived ones come from params).
VERSION_RE = re.compile(r"^[A-Za-z0-9_.+\-]{1,80}$")
FAMILIES = ("events", "crossings", "landforms", "units", "meteors")
#: most IDs one request or job may name.
MAX_IDS = 500
#: one inference at a time per process: torch already uses every core, and 20
#: concurrent clients then queue here instead of thrashing (seconds to wait at most).
_INFER_SLOTS = threading.BoundedSemaphore(1)
INFER_WAIT_S = 120.0


class InputError(ValueError):
    """A client error (HTTP 422) with a message meant for the client."""


class NotFound(LookupError):
    """An unknown ID, model or job (HTTP 404)."""


class SourceGone(RuntimeError):
    """The row exists but its source files are no longer on disk (HTTP 410)."""


class Busy(RuntimeError):
    """No inference slot became free in time, or the queue is full (HTTP 503)."""

    def __init__(self, message: str, retry_after: int = 10) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooLarge(InputError):
    """The input declares more work or needs more memory than allowed (HTTP 413)."""


class Timeout(RuntimeError):
    """The preview passed its deadline; its worker process was killed (HTTP 504)."""


class Internal(RuntimeError):
    """An unexpected failure (HTTP 500); the details are logged under ``error_id`` only."""

    def __init__(self, error_id: str) -> None:
        super().__init__(f"internal error (error id {error_id})")
        self.error_id = error_id


@dataclass(frozen=True)
class RowRef:
    """A served (or superseded) product row and the run that wrote it."""

    granule_uid: str
    family: str
    pipeline: str
    obs_id: str
    run_id: str
    model_name: str
    model_version: str
    thumbnail_url: str | None
    superseded: bool
    run_params: dict[str, Any] = field(default_factory=dict)

    @property
    def base_version(self) -> str:
        return self.model_version.split("+")[0]

    def operational_params(self) -> dict[str, Any]:
        """The run's OPERATIONAL parameters (craters' ``target``): a re-run of the row needs
        them to read its granule (a chip without georeference) and they change no result.
        Model parameters are never carried over: a re-run asks for them."""
        from epnml.ingest.spec import get_spec, is_model_param

        fields = get_spec(self.pipeline).params.model_fields
        return {k: v for k, v in self.run_params.items()
                if k in fields and not is_model_param(fields[k]) and v is not None}


def pipelines() -> dict[str, Any]:
    from epnml.ingest.registry import PIPELINES

    return PIPELINES


def allowed_versions(pipeline: str) -> list[str]:
    """Committed versions; none when the pipeline's weights are missing (not deployable)."""
    from epnml.ingest.registry import MODEL_VERSIONS

    try:
        return list(MODEL_VERSIONS[pipeline]())
    except (OSError, ValueError, RuntimeError, KeyError):
        return []


def stage_problem(pipeline: str) -> str | None:
    """Why the pipeline's stage cannot be built here (e.g. weights not installed), or None."""
    from epnml.ingest.executor import get_stage

    try:
        get_stage(pipeline, None)
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        return f"{pipeline} is not available on this service: {type(exc).__name__}"
    return None


def check_id(value: str) -> str:
    if not ID_RE.fullmatch(value or ""):
        raise InputError("ID must be a granule_uid of this service: 1-200 characters of "
                         "A-Z a-z 0-9 _ . : + -")
    return value


def check_pipeline(pipeline: str, *, commit: bool = False) -> str:
    known = pipelines()
    if pipeline not in known:
        raise InputError(f"unknown pipeline; known: {', '.join(sorted(known))}")
    problem = stage_problem(pipeline)
    if problem:
        raise InputError(problem)
    if commit and _predict_only(pipeline):
        raise InputError(f"{pipeline} is predict-only: its results are not a product table")
    return pipeline


def _predict_only(pipeline: str) -> bool:
    from epnml.ingest.executor import get_stage

    return bool(getattr(get_stage(pipeline, None), "predict_only", False))


def check_model_version(pipeline: str, version: str | None) -> str | None:
    if version is None or version == "":
        return None
    allowed = allowed_versions(pipeline)
    if not VERSION_RE.fullmatch(version) or version not in allowed:
        raise InputError(f"model_version not allowed for {pipeline}; allowed: "
                         f"{', '.join(allowed)} (parameters such as threshold make a derived "
                         f"version by themselves)")
    return version


_LOOKUP = " UNION ALL ".join(
    f"SELECT '{family}', pipeline, obs_id, ml_run_id, ml_model_name, ml_model_version,"
    f" thumbnail_url, superseded_at IS NOT NULL FROM epnml.{family} WHERE granule_uid = %(uid)s"
    for family in FAMILIES
)


def find_row(conn: psycopg.Connection, uid: str) -> RowRef:
    """The product row with this granule_uid (current or superseded), or NotFound."""
    check_id(uid)
    found = conn.execute(_LOOKUP, {"uid": uid}).fetchone()
    if found is None:
        raise NotFound(f"unknown ID {uid}: no current or superseded row has this granule_uid")
    family, pipeline, obs_id, run_id, model_name, version, thumb, superseded = found
    params_row = conn.execute("SELECT params FROM epnml.runs WHERE run_id = %s",
                              (run_id,)).fetchone()
    params = params_row[0] if params_row and isinstance(params_row[0], dict) else {}
    return RowRef(uid, family, pipeline, obs_id, run_id, model_name, version, thumb,
                  bool(superseded), params)


def source_files(conn: psycopg.Connection, ref: RowRef) -> list[Path]:
    """The files the row's granule was read from (as recorded by the ingest run)."""
    found = conn.execute(
        "SELECT files FROM epnml.granule_runs WHERE run_id = %s AND granule_id = %s"
        " AND status = 'ok'", (ref.run_id, ref.obs_id)).fetchone()
    if found is None:
        found = conn.execute(
            "SELECT g.files FROM epnml.granule_runs g JOIN epnml.runs r USING (run_id)"
            " WHERE r.pipeline = %s AND g.granule_id = %s AND g.status = 'ok'"
            " ORDER BY r.started_at DESC LIMIT 1", (ref.pipeline, ref.obs_id)).fetchone()
    if found is None:
        raise SourceGone(f"no source files are recorded for {ref.granule_uid}")
    return [Path(p) for p in str(found[0]).split(", ") if p]


def available_sources(conn: psycopg.Connection, ref: RowRef) -> list[Path]:
    """Like :func:`source_files`, but SourceGone unless every file is still on disk."""
    paths = source_files(conn, ref)
    if not paths or not all(p.is_file() for p in paths):
        raise SourceGone(f"the source data of {ref.granule_uid} is no longer available")
    return paths


def scrub(message: str, paths: list[Path]) -> str:
    """Error text without server directories: clients see file names only."""
    from epnml.api.safety import clean_message

    return clean_message(message, paths)


def run_one(settings: Settings, pipeline: str, paths: list[Path], *, mode: str,
            model_version: str | None, params: dict[str, Any] | None = None) -> RunSummary:
    """One run_pipeline call on one granule's files, inline with the cached stage.

    Used for commits (mode ingest, token holders only); previews run in worker processes
    (:mod:`epnml.api.workers`). The runner's error lines on stderr (they name server
    files) are not let into the service's log. ``params``: pipeline parameters (validated
    again by the runner before anything is registered).
    """
    from epnml.api.safety import log_internal
    from epnml.api.workers import classify

    if not _INFER_SLOTS.acquire(timeout=INFER_WAIT_S):
        raise Busy("the service is busy with other inferences; retry later")
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return run_pipeline(pipeline, paths,
                                mode="ingest" if mode == "ingest" else "predict",
                                settings=settings, workers=1, model_version=model_version,
                                params=dict(params or {}), progress=False, keep_rows=True)
    except RunFailed as exc:
        kind = exc.kind or classify(str(exc))  # the granule's own failure class first
        if kind == "internal":
            raise Internal(log_internal(f"{mode} of {pipeline}", str(exc))) from exc
        error = TooLarge if kind in ("limit", "memory") else InputError
        raise error(f"{pipeline} failed on this granule: {scrub(str(exc), paths)}") from exc
    except LimitExceeded as exc:
        raise TooLarge(scrub(str(exc), paths)) from exc
    except (ValueError, OSError) as exc:  # GranuleError, unknown version, bad parameter
        raise InputError(scrub(str(exc), paths)) from exc
    finally:
        _INFER_SLOTS.release()


def summary_json(summary: RunSummary) -> dict[str, Any]:
    return {
        "run_id": summary.run_id, "pipeline": summary.pipeline, "mode": summary.mode,
        "model_version": summary.model_version, "n_rows": summary.n_rows,
        "n_superseded": sum(g.n_superseded for g in summary.granules),
        "n_failed": summary.n_failed, "seconds": round(summary.seconds, 4),
        "granules": [{"granule_id": g.granule_id, "status": g.status, "n_rows": g.n_rows,
                      "n_superseded": g.n_superseded, "error": g.error}
                     for g in summary.granules],
    }


def log_request(conn: psycopg.Connection | None, settings: Settings, *, client: str,
                endpoint: str, pipeline: str | None, granule_id: str | None,
                model_version: str | None, params: dict[str, Any], seconds: float,
                outcome: str, http_status: int, error: str | None = None) -> None:
    """One ``epnml.inference_log`` row; a logging failure never fails the request."""
    own = conn is None
    try:
        if conn is None:
            from epnml.db import connect

            conn = connect(settings)
        conn.execute(
            "INSERT INTO epnml.inference_log (client, endpoint, pipeline, granule_id,"
            " model_version, params, seconds, outcome, http_status, error)"
            " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s)",
            (client, endpoint, pipeline, granule_id, model_version,
             json.dumps(params, default=str), seconds, outcome, http_status,
             None if error is None else error[:2000]))
    except (psycopg.Error, RuntimeError):
        pass
    finally:
        if own and conn is not None:
            conn.close()
