"""Re-running a served row's model: find the row, check, run, then preview or commit.

One use case behind ``epnml rerun ID``, the HTTP ``/preview`` and ``/commit`` and every
granule of a UWS job: :func:`rerun`. The caller chooses only how a preview runs (a
:class:`PreviewRunner`): the service passes its worker pool (deadline, memory cap), the
CLI runs it in its own process (:func:`run_in_process`). Commits always run in the caller's
process (:func:`run_inline`). Both go through :func:`epnml.ingest.runner.run_pipeline`,
so the rows are the CLI's.

Source files come from ``epnml.granule_runs`` (what the ingest recorded), never from a
client. Parameters are checked by the pipeline's spec (:mod:`epnml.ingest.spec`) before
any file is read or anything registered. Errors are the exceptions below; each carries a
message meant for the user (server directories removed) and the HTTP layer maps each to
one status.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict, overload

import psycopg

from epnml.config import Settings
from epnml.ingest.limits import LimitExceeded
from epnml.ingest.runner import RunFailed, RunSummary, run_pipeline
from epnml.safety import clean_message, log_internal
from epnml.schemas.products import PRODUCTS

#: granule_uid syntax accepted from users (the product tables allow no '#' or spaces;
#: '~' is in the ids of archived superseded rows, ``<uid>~s<superseded_at>``).
ID_RE = re.compile(r"^[A-Za-z0-9_.:+~\-]{1,200}$")
#: model versions as users may name them (base versions; derived ones come from params).
VERSION_RE = re.compile(r"^[A-Za-z0-9_.+\-]{1,80}$")
#: the product families whose rows can be re-run (one storage table each).
FAMILIES = tuple(PRODUCTS)
#: one inference at a time per process: torch already uses every core, and 20
#: concurrent clients then queue here instead of thrashing (seconds to wait at most).
_INFER_SLOTS = threading.BoundedSemaphore(1)
INFER_WAIT_S = 120.0


# --- errors (each maps to one HTTP status: epnml.api.errors) -----------------------------

class InputError(ValueError):
    """Bad input: an ID, version or parameter the service refuses (HTTP 422)."""


class RunError(InputError):
    """The pipeline failed on the row's granule (HTTP 422; ``epnml rerun`` exits 1)."""


class TooLarge(InputError):
    """The input declares more work or needs more memory than allowed (HTTP 413)."""


class NotFound(LookupError):
    """An unknown ID, model or job (HTTP 404)."""


class SourceGone(RuntimeError):
    """The row exists but its source files are no longer on disk (HTTP 410)."""


class Busy(RuntimeError):
    """No inference slot became free in time, or the queue is full (HTTP 503)."""

    def __init__(self, message: str, retry_after: int = 10) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Timeout(RuntimeError):
    """The preview passed its deadline; its worker process was killed (HTTP 504)."""


class Internal(RuntimeError):
    """An unexpected failure (HTTP 500); the details are logged under ``error_id`` only."""

    def __init__(self, error_id: str) -> None:
        super().__init__(f"internal error (error id {error_id})")
        self.error_id = error_id


# --- the row -----------------------------------------------------------------------

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


def predict_only(pipeline: str) -> bool:
    from epnml.ingest.executor import get_stage

    return bool(getattr(get_stage(pipeline, None), "predict_only", False))


def check_id(value: str) -> str:
    if not ID_RE.fullmatch(value or ""):
        raise InputError("ID must be a granule_uid of this service: 1-200 characters of "
                         "A-Z a-z 0-9 _ . : + - ~")
    return value


def check_pipeline(pipeline: str, *, commit: bool = False) -> str:
    known = pipelines()
    if pipeline not in known:
        raise InputError(f"unknown pipeline; known: {', '.join(sorted(known))}")
    problem = stage_problem(pipeline)
    if problem:
        raise InputError(problem)
    if commit and predict_only(pipeline):
        raise InputError(f"{pipeline} is predict-only: its results are not a product table")
    return pipeline


def check_model_version(pipeline: str, version: str | None) -> str | None:
    if version is None or version == "":
        return None
    allowed = allowed_versions(pipeline)
    if not VERSION_RE.fullmatch(version) or version not in allowed:
        raise InputError(f"model_version not allowed for {pipeline}; allowed: "
                         f"{', '.join(allowed)} (parameters such as threshold make a derived "
                         f"version by themselves)")
    return version


def check_params(pipeline: str, given: dict[str, Any],
                 model_version: str | None = None) -> dict[str, Any]:
    """``given`` validated by the pipeline's spec (the runner's own check): the typed
    values, or InputError with the spec's one-line message. Registers nothing."""
    from epnml.ingest.spec import validate_params

    try:
        return validate_params(pipeline, given, model_version)[0]
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _select_row(family: str) -> str:
    return (f"SELECT '{family}', pipeline, obs_id, ml_run_id, ml_model_name, ml_model_version,"
            f" thumbnail_url, superseded_at IS NOT NULL FROM epnml.{family}"
            " WHERE granule_uid = %(uid)s")


_LOOKUP = " UNION ALL ".join(_select_row(family) for family in FAMILIES)
_LOOKUP_IN = {family: _select_row(family) for family in FAMILIES}


def find_row(conn: psycopg.Connection, uid: str) -> RowRef:
    """The product row with this granule_uid (current or superseded), or NotFound."""
    check_id(uid)
    # The uid registry names the family: planning a lookup over every family's
    # partitions (~150, no partition key in the WHERE) costs ~14 ms per request, one
    # family's a few ms. Not registered: the full lookup decides (it finds nothing).
    registered = conn.execute("SELECT family FROM epnml.granule_uids WHERE granule_uid = %s",
                              (uid,)).fetchone()
    query = _LOOKUP_IN.get(str(registered[0]), _LOOKUP) if registered else _LOOKUP
    found = conn.execute(query, {"uid": uid}).fetchone()
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


def rerun_version(ref: RowRef, model_version: str | None) -> str | None:
    """The asked (allow-listed) version, else the base version that wrote the row while
    it is still committed, else the newest (None)."""
    return check_model_version(ref.pipeline, model_version) or (
        ref.base_version if ref.base_version in allowed_versions(ref.pipeline) else None)


def rerun_params(ref: RowRef, given: dict[str, Any], version: str | None) -> dict[str, Any]:
    """The user's pipeline parameters over the row's operational ones (craters' target),
    checked by the spec before any file is read (InputError)."""
    return check_params(ref.pipeline, {**ref.operational_params(), **given}, version)


# --- running -----------------------------------------------------------------------

def scrub(message: str, paths: list[Path]) -> str:
    """Error text without server directories: users see file names only."""
    return clean_message(message, paths)


_UNEXPECTED = re.compile(r"unexpected [A-Z][A-Za-z0-9_]*(Error|Exception|Exit|Interrupt)\b"
                         r"|worker failed: ")


def classify(message: str) -> str:
    """The kind of a granule's error line (limit, memory, internal or input), for errors
    that come without RunFailed.kind (e.g. a lost worker's line)."""
    if " exceeds the limit of " in message:
        return "limit"
    if "MemoryError" in message:
        return "memory"
    if _UNEXPECTED.search(message):
        return "internal"
    return "input"


class PredictOutput(TypedDict):
    """What a preview run gives back (picklable: it crosses the worker pipe)."""

    rows: list[dict[str, Any]]
    model_version: str
    n_rows: int
    seconds: float
    run_id: str


def predict_once(settings: Settings, pipeline: str, paths: list[Path],
                 model_version: str | None, params: dict[str, Any] | None,
                 granule_id: str | None = None) -> dict[str, Any]:
    """One predict-mode ``run_pipeline`` on one granule's files: a :class:`PredictOutput`,
    or ``{"error": kind, "message": ...}`` (errors travel as data out of a worker process;
    :func:`preview_output` raises them)."""
    try:
        summary = run_pipeline(pipeline, paths, mode="predict", settings=settings, workers=1,
                               model_version=model_version, params=dict(params or {}),
                               progress=False, keep_rows=True, granule_id=granule_id)
    except LimitExceeded as exc:
        return {"error": "limit", "message": str(exc)}
    except RunFailed as exc:
        return {"error": exc.kind or classify(str(exc)), "message": str(exc)}
    except (ValueError, OSError) as exc:  # GranuleError, unknown version, bad parameter
        return {"error": "input", "message": str(exc)}
    return {"rows": summary.rows, "model_version": summary.model_version,
            "n_rows": summary.n_rows, "seconds": summary.seconds, "run_id": summary.run_id}


def preview_output(out: dict[str, Any], settings: Settings, pipeline: str,
                   paths: list[Path]) -> PredictOutput:
    """:func:`predict_once`'s answer, its error raised as the matching exception."""
    kind = out.get("error")
    if kind is None:
        return PredictOutput(rows=out["rows"], model_version=out["model_version"],
                             n_rows=out["n_rows"], seconds=out["seconds"],
                             run_id=out["run_id"])
    message = str(out.get("message", ""))
    if kind == "internal":
        raise Internal(log_internal(f"preview of {pipeline}", message))
    if kind == "memory":
        raise TooLarge(f"the input needs more memory than a preview may use "
                       f"({settings.preview_memory_mb} MB, preview_memory_mb)")
    text = scrub(message, paths)
    if kind == "limit":
        raise TooLarge(text)
    raise RunError(text)


class PreviewRunner(Protocol):
    """How a preview runs: in this process, or in the service's worker pool."""

    def __call__(self, settings: Settings, pipeline: str, paths: list[Path], *,
                 model_version: str | None, params: dict[str, Any],
                 granule_id: str | None = None) -> PredictOutput: ...


def run_in_process(settings: Settings, pipeline: str, paths: list[Path], *,
                   model_version: str | None, params: dict[str, Any],
                   granule_id: str | None = None) -> PredictOutput:
    """The CLI's :class:`PreviewRunner`: :func:`predict_once` here, no deadline."""
    return preview_output(predict_once(settings, pipeline, paths, model_version, params,
                                       granule_id), settings, pipeline, paths)


def run_inline(settings: Settings, pipeline: str, paths: list[Path], *, mode: str,
               model_version: str | None, params: dict[str, Any] | None = None) -> RunSummary:
    """One run_pipeline call on one granule's files, inline with the cached stage.

    Used for commits (mode ingest); the service runs previews in worker processes. One
    inference at a time per process (Busy after INFER_WAIT_S). The runner's error lines on
    stderr (they name server files) are not let into the service's log. ``params``:
    pipeline parameters (validated again by the runner before anything is registered).
    """
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
        if kind in ("limit", "memory"):
            raise TooLarge(f"{pipeline} failed on this granule: "
                           f"{scrub(str(exc), paths)}") from exc
        raise RunError(f"{pipeline} failed on this granule: {scrub(str(exc), paths)}") from exc
    except LimitExceeded as exc:
        raise TooLarge(scrub(str(exc), paths)) from exc
    except (ValueError, OSError) as exc:  # GranuleError, unknown version, bad parameter
        raise RunError(scrub(str(exc), paths)) from exc
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


# --- the use case ------------------------------------------------------------------

@dataclass(frozen=True)
class RerunPreview:
    """The rows a re-run produced; nothing was written."""

    ref: RowRef
    model_version: str
    rows: list[dict[str, Any]]
    n_rows: int
    seconds: float
    run_id: str


@dataclass(frozen=True)
class RerunCommit:
    """A committed re-run: the run's summary (new rows, superseded rows, version)."""

    ref: RowRef
    summary: RunSummary

    @property
    def model_version(self) -> str:
        return self.summary.model_version

    def report(self) -> dict[str, Any]:
        return summary_json(self.summary)


@dataclass
class Trace:
    """Filled as :func:`rerun` goes, so a caller can log a failed re-run: the row once
    found, the model version once resolved (then the one the rows carry)."""

    ref: RowRef | None = None
    model_version: str | None = None


@overload
def rerun(conn: psycopg.Connection, settings: Settings, row: str | RowRef, *,
          model_version: str | None = None, params: dict[str, Any] | None = None,
          commit: Literal[False] = False, preview: PreviewRunner = ...,
          trace: Trace | None = None) -> RerunPreview: ...


@overload
def rerun(conn: psycopg.Connection, settings: Settings, row: str | RowRef, *,
          model_version: str | None = None, params: dict[str, Any] | None = None,
          commit: Literal[True], preview: PreviewRunner = ...,
          trace: Trace | None = None) -> RerunCommit: ...


@overload
def rerun(conn: psycopg.Connection, settings: Settings, row: str | RowRef, *,
          model_version: str | None = None, params: dict[str, Any] | None = None,
          commit: bool, preview: PreviewRunner = ...,
          trace: Trace | None = None) -> RerunPreview | RerunCommit: ...


def rerun(conn: psycopg.Connection, settings: Settings, row: str | RowRef, *,
          model_version: str | None = None, params: dict[str, Any] | None = None,
          commit: bool = False, preview: PreviewRunner = run_in_process,
          trace: Trace | None = None) -> RerunPreview | RerunCommit:
    """Re-run the model of the row ``row`` (a granule_uid, or a row already found) on
    its recorded source files.

    The version is ``model_version`` (allow-listed), else the row's own base version while
    it is committed, else the newest. ``params`` (raw or typed, spec names) go over the
    row's operational ones and are checked by the spec before any file is read or anything
    registered. ``commit``: write the rows (a new version supersedes the current rows;
    never for a predict-only pipeline); else ``preview`` runs it and nothing is written.
    Raises InputError (RunError, TooLarge), NotFound, SourceGone, Busy, Timeout, Internal.
    """
    trace = trace if trace is not None else Trace()
    trace.model_version = model_version
    ref = row if isinstance(row, RowRef) else find_row(conn, check_id(row))
    trace.ref = ref
    if commit:
        check_pipeline(ref.pipeline, commit=True)
    version = rerun_version(ref, model_version)
    trace.model_version = version
    checked = rerun_params(ref, dict(params or {}), version)
    paths = available_sources(conn, ref)
    if not commit:
        # the stored granule's obs_id (ingest may have renamed it: another source held the
        # stage's id), so the preview's rows carry the ids of the rows they re-compute
        out = preview(settings, ref.pipeline, paths, model_version=version, params=checked,
                      granule_id=ref.obs_id)
        trace.model_version = out["model_version"]
        return RerunPreview(ref, out["model_version"], out["rows"], out["n_rows"],
                            out["seconds"], out["run_id"])
    summary = run_inline(settings, ref.pipeline, paths, mode="ingest", model_version=version,
                         params=checked)
    trace.model_version = summary.model_version
    if summary.n_failed:
        raise RunError(f"the commit failed: {summary_json(summary)['granules'][0]['error']}")
    return RerunCommit(ref, summary)
