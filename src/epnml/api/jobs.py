"""UWS 1.1 jobs: the store (``epnml.jobs``), the background worker and the XML documents.

Jobs live in PostgreSQL so a restart loses none: the worker thread of the service
claims QUEUED jobs with ``FOR UPDATE SKIP LOCKED``; at start-up, jobs left EXECUTING
by a dead process are re-queued once and fail with a clear error the second time.
A reaper destroys jobs past their destruction time (job records and result files only;
product rows are never touched by it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from epnml.api.auth import Caller
from epnml.api.requestlog import log_request
from epnml.api.safety import clean_message, log_internal
from epnml.api.votable import rows_votable
from epnml.api.workers import WorkerPool, pool_runner
from epnml.config import Settings
from epnml.db import connect
from epnml.rerun import (
    FAMILIES,
    Busy,
    InputError,
    Internal,
    NotFound,
    RerunPreview,
    SourceGone,
    Timeout,
    TooLarge,
    find_row,
    rerun,
    run_in_process,
)

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
#: most IDs one job may name.
MAX_IDS = 500
ACTIVE = ("PENDING", "QUEUED", "EXECUTING", "HELD", "SUSPENDED")
FINAL = ("COMPLETED", "ERROR", "ABORTED", "ARCHIVED")
#: an EXECUTING job whose worker has not written a heartbeat for this long is orphaned.
STALE_S = 60.0
HEARTBEAT_S = 5.0
#: after this many claims a job that keeps losing its worker fails instead of re-queuing.
MAX_ATTEMPTS = 2
_COLUMNS = ("job_id, phase, owner, pipeline, params, granule_ids, commit, creation_time,"
            " start_time, end_time, destruction_time, execution_duration, worker_id,"
            " heartbeat, attempts, error, result, n_rows")


class QueueFull(RuntimeError):
    """max_queued_jobs are QUEUED already (HTTP 503)."""


class PhaseConflict(RuntimeError):
    """The request does not apply to the job's phase (HTTP 409)."""


class TooManyPending(RuntimeError):
    """The client holds max_pending_per_client PENDING/QUEUED jobs already (HTTP 429)."""

    retry_after = 60


@dataclass
class Job:
    job_id: str
    phase: str
    owner: str
    pipeline: str
    params: dict[str, Any]
    granule_ids: list[str]
    commit: bool
    creation_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    destruction_time: datetime
    execution_duration: int
    worker_id: str | None = None
    heartbeat: datetime | None = None
    attempts: int = 0
    error: str | None = None
    result: dict[str, Any] | None = None
    n_rows: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def model_params(self) -> dict[str, Any]:
        """The job's pipeline parameters under their spec names (stored upper-case, as UWS
        names them: ``THRESHOLD``), already validated by the spec when they were set."""
        return {name: self.params[name.upper()] for name in _spec_names(self.pipeline)
                if self.params.get(name.upper()) is not None}

    def parameters(self) -> list[tuple[str, str]]:
        """The UWS parameter list, as the client named them."""
        out = [("PIPELINE", self.pipeline)]
        out += [("ID", i) for i in self.granule_ids]
        if self.params.get("MODEL_VERSION") is not None:
            out.append(("MODEL_VERSION", str(self.params["MODEL_VERSION"])))
        out += [(name.upper(), str(value)) for name, value in self.model_params().items()]
        out.append(("COMMIT", "true" if self.commit else "false"))
        return out


def _spec_names(pipeline: str) -> list[str]:
    from epnml.ingest.spec import SPECS

    spec = SPECS.get(pipeline)
    return list(spec.params.model_fields) if spec is not None else []


def job_params(validated: dict[str, Any]) -> dict[str, Any]:
    """Validated pipeline parameters as a job stores them (UWS upper-case names)."""
    return {name.upper(): value for name, value in validated.items()}


def new_job_id() -> str:
    return uuid.uuid4().hex


def job_dir(settings: Settings, job_id: str) -> Path:
    return settings.jobs_dir / "jobs" / job_id


def _job(row: dict[str, Any]) -> Job:
    return Job(**{k: row[k] for k in row})


def _missing(job_id: str) -> NotFound:
    return NotFound(f"no job {job_id} (never created, deleted or destroyed, or not yours: "
                    "send the job's owner token)")


def get_job(conn: psycopg.Connection, job_id: str, caller: Caller | None = None) -> Job:
    """The job; with ``caller``: NotFound unless theirs (a job of another is not shown
    to exist)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_COLUMNS} FROM epnml.jobs WHERE job_id = %s",
                          (job_id,)).fetchone()
    if row is None:
        raise _missing(job_id)
    job = _job(row)
    if caller is not None and not caller.may_see(job.owner):
        raise _missing(job_id)
    return job


def list_jobs(conn: psycopg.Connection, phases: list[str] | None = None,
              last: int | None = None, caller: Caller | None = None) -> list[Job]:
    """Jobs, newest first; with ``caller``: only theirs (all for the administrator)."""
    query = f"SELECT {_COLUMNS} FROM epnml.jobs WHERE true"
    args: list[Any] = []
    if caller is not None and not caller.admin:
        if caller.owner is None:
            return []
        query += " AND owner = %s"
        args.append(caller.owner)
    if phases:
        query += " AND phase = ANY(%s)"
        args.append(phases)
    query += " ORDER BY creation_time DESC"
    if last is not None:
        query += " LIMIT %s"
        args.append(last)
    with conn.cursor(row_factory=dict_row) as cur:
        return [_job(r) for r in cur.execute(query, args).fetchall()]


_QUEUE_LOCK = "epnml.jobs.queue"


def _check_queue(cur: psycopg.Cursor[Any], settings: Settings) -> None:
    """Inside the transaction: serialise queuers and refuse beyond max_queued_jobs."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_QUEUE_LOCK,))
    row = cur.execute("SELECT count(*) FROM epnml.jobs WHERE phase = 'QUEUED'").fetchone()
    n = int(row[0]) if row else 0
    if n >= settings.max_queued_jobs:
        raise QueueFull(f"the job queue is full ({n} queued, limit {settings.max_queued_jobs});"
                        " retry when some have finished")


def ids_of_pipeline(conn: psycopg.Connection, pipeline: str) -> list[str]:
    """One current row per source granule of the pipeline (a batch over all its granules)."""
    union = " UNION ALL ".join(
        f"SELECT obs_id, granule_uid FROM epnml.{f} WHERE pipeline = %(p)s"
        " AND superseded_at IS NULL" for f in FAMILIES)
    rows = conn.execute(
        f"SELECT DISTINCT ON (obs_id) granule_uid FROM ({union}) AS u"
        " ORDER BY obs_id, granule_uid LIMIT %(n)s", {"p": pipeline, "n": MAX_IDS}).fetchall()
    return [str(r[0]) for r in rows]


#: the key of ``params`` holding the address of a client that sent no owner token (its
#: jobs are counted per address; not a UWS parameter).
CLIENT_KEY = "_client"


def _check_pending(cur: psycopg.Cursor[Any], settings: Settings, owner: str,
                   address: str | None) -> None:
    """Inside the transaction: at most max_pending_per_client PENDING+QUEUED jobs per
    client: per owner token when the client sent one, else per client address."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("epnml.jobs.pending",))
    if address is None:
        row = cur.execute("SELECT count(*) FROM epnml.jobs WHERE owner = %s"
                          " AND phase IN ('PENDING', 'QUEUED')", (owner,)).fetchone()
    else:
        row = cur.execute("SELECT count(*) FROM epnml.jobs WHERE params->>%s = %s"
                          " AND phase IN ('PENDING', 'QUEUED')", (CLIENT_KEY, address)
                          ).fetchone()
    n = int(row[0]) if row else 0
    if n >= settings.max_pending_per_client:
        raise TooManyPending(
            f"you have {n} jobs PENDING or QUEUED (limit {settings.max_pending_per_client},"
            " max_pending_per_client); run, wait for or delete some first")


def create_job(conn: psycopg.Connection, settings: Settings, *, owner: str, pipeline: str,
               ids: list[str], params: dict[str, Any], commit: bool, run: bool,
               address: str = "unknown", limit_by_address: bool = False,
               limited: bool = True) -> str:
    """A new job of ``owner`` (an owner tag). The pending limit counts the owner's jobs,
    or the address's (``limit_by_address``: the client sent no token); ``limited`` False
    for the administrator."""
    reap(conn, settings)  # expired and long-PENDING jobs do not count
    job_id = new_job_id()
    destruction = datetime.now(UTC) + timedelta(hours=settings.job_lifetime_h)
    with conn.transaction(), conn.cursor() as cur:
        if limited:
            _check_pending(cur, settings, owner, address if limit_by_address else None)
        if run:
            _check_queue(cur, settings)
        cur.execute(
            "INSERT INTO epnml.jobs (job_id, phase, owner, pipeline, params, granule_ids,"
            " commit, destruction_time) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (job_id, "QUEUED" if run else "PENDING", owner, pipeline,
             Jsonb({**params, CLIENT_KEY: address} if limit_by_address else params), ids,
             commit, destruction))
    return job_id


def run_job(conn: psycopg.Connection, settings: Settings, job_id: str) -> None:
    """PHASE=RUN: PENDING -> QUEUED (bounded); already queued or running: nothing to do."""
    with conn.transaction(), conn.cursor() as cur:
        row = cur.execute("SELECT phase FROM epnml.jobs WHERE job_id = %s FOR UPDATE",
                          (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id}")
        if row[0] in ("QUEUED", "EXECUTING"):
            return
        if row[0] != "PENDING":
            raise PhaseConflict(f"job {job_id} is {row[0]}: only a PENDING job can be run")
        _check_queue(cur, settings)
        cur.execute("UPDATE epnml.jobs SET phase = 'QUEUED' WHERE job_id = %s", (job_id,))


def abort_job(conn: psycopg.Connection, job_id: str) -> None:
    """PHASE=ABORT: a running job stops before its next granule (written ones stay)."""
    cur = conn.execute(
        "UPDATE epnml.jobs SET phase = 'ABORTED', end_time = now(),"
        " error = coalesce(error, 'aborted by the client') WHERE job_id = %s"
        " AND phase = ANY(%s)", (job_id, list(ACTIVE)))
    if cur.rowcount == 0:
        job = get_job(conn, job_id)  # NotFound if it does not exist
        raise PhaseConflict(f"job {job_id} is {job.phase}: it cannot be aborted")


def delete_job(conn: psycopg.Connection, settings: Settings, job_id: str) -> None:
    cur = conn.execute("DELETE FROM epnml.jobs WHERE job_id = %s", (job_id,))
    if cur.rowcount == 0:
        raise NotFound(f"no job {job_id}")
    shutil.rmtree(job_dir(settings, job_id), ignore_errors=True)


def set_destruction(conn: psycopg.Connection, job_id: str, when: datetime) -> None:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    cur = conn.execute("UPDATE epnml.jobs SET destruction_time = %s WHERE job_id = %s",
                       (when, job_id))
    if cur.rowcount == 0:
        raise NotFound(f"no job {job_id}")


def set_execution_duration(conn: psycopg.Connection, job_id: str, seconds: int) -> None:
    cur = conn.execute(
        "UPDATE epnml.jobs SET execution_duration = %s WHERE job_id = %s AND phase = 'PENDING'",
        (seconds, job_id))
    if cur.rowcount == 0:
        job = get_job(conn, job_id)
        raise PhaseConflict(f"job {job_id} is {job.phase}: only a PENDING job can be changed")


def update_params(conn: psycopg.Connection, job_id: str, params: dict[str, Any]) -> None:
    with conn.transaction():
        job = get_job(conn, job_id)
        if job.phase != "PENDING":
            raise PhaseConflict(f"job {job_id} is {job.phase}: only a PENDING job can be changed")
        conn.execute("UPDATE epnml.jobs SET params = %s WHERE job_id = %s",
                     (Jsonb({**job.params, **params}), job_id))


def reap(conn: psycopg.Connection, settings: Settings) -> list[str]:
    """Destroy jobs past their destruction time, and jobs left PENDING longer than
    pending_lifetime_min: records and result files, never rows."""
    gone = [str(r[0]) for r in conn.execute(
        "DELETE FROM epnml.jobs WHERE destruction_time < now() OR (phase = 'PENDING'"
        " AND creation_time < now() - make_interval(mins => %s)) RETURNING job_id",
        (settings.pending_lifetime_min,)).fetchall()]
    for job_id in gone:
        shutil.rmtree(job_dir(settings, job_id), ignore_errors=True)
    return gone


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(conn: psycopg.Connection, worker_id: str) -> list[tuple[str, str]]:
    """Jobs EXECUTING on a dead worker: re-queue once, fail the second time."""
    host = socket.gethostname()
    rows = conn.execute(
        "SELECT job_id, worker_id, attempts, heartbeat < now() - make_interval(secs => %s)"
        " FROM epnml.jobs WHERE phase = 'EXECUTING'", (STALE_S,)).fetchall()
    done: list[tuple[str, str]] = []
    for job_id, wid, attempts, stale in rows:
        if wid == worker_id:
            continue
        parts = str(wid or "").split(":")
        dead_here = len(parts) >= 2 and parts[0] == host and parts[1].isdigit() and (
            int(parts[1]) == os.getpid() or not _pid_alive(int(parts[1])))
        if not (stale or dead_here or wid is None):
            continue
        if attempts >= MAX_ATTEMPTS:
            conn.execute(
                "UPDATE epnml.jobs SET phase = 'ERROR', end_time = now(), error = %s"
                " WHERE job_id = %s AND phase = 'EXECUTING'",
                (f"the service stopped {attempts} times while this job was executing; it is "
                 "not retried again (resubmit it, perhaps with fewer IDs)", job_id))
            done.append((job_id, "ERROR"))
        else:
            conn.execute(
                "UPDATE epnml.jobs SET phase = 'QUEUED', worker_id = NULL, start_time = NULL"
                " WHERE job_id = %s AND phase = 'EXECUTING'", (job_id,))
            done.append((job_id, "QUEUED"))
    return done


def claim(conn: psycopg.Connection, worker_id: str) -> Job | None:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE epnml.jobs SET phase = 'EXECUTING', start_time = now(), heartbeat = now(),"
            " worker_id = %s, attempts = attempts + 1 WHERE job_id = ("
            " SELECT job_id FROM epnml.jobs WHERE phase = 'QUEUED' ORDER BY creation_time"
            " FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING " + _COLUMNS, (worker_id,)).fetchone()
    return None if row is None else _job(row)


class JobWorker(threading.Thread):
    """The one background thread of a service process that runs queued jobs."""

    def __init__(self, settings: Settings, poll_s: float = 0.5,
                 pool: WorkerPool | None = None) -> None:
        super().__init__(name="epnml-jobs", daemon=True)
        self.settings = settings
        self.pool = pool
        self.poll_s = poll_s
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopping = threading.Event()
        self.current: str | None = None
        self.recovered: list[tuple[str, str]] = []

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.join(timeout)

    def run(self) -> None:
        conn: psycopg.Connection | None = None
        last_reap = 0.0
        while not self.stopping.is_set():
            try:
                if conn is None or conn.closed:
                    conn = connect(self.settings)
                    self.recovered += recover(conn, self.worker_id)
                if time.monotonic() - last_reap > 30:
                    reap(conn, self.settings)
                    self.recovered += recover(conn, self.worker_id)
                    last_reap = time.monotonic()
                job = claim(conn, self.worker_id)
                if job is None:
                    self.stopping.wait(self.poll_s)
                    continue
                self._execute(conn, job)
            except (psycopg.Error, RuntimeError):
                if conn is not None:
                    conn.close()
                conn = None
                self.stopping.wait(2.0)
        if conn is not None:
            conn.close()

    def _heartbeat(self, job_id: str, done: threading.Event) -> None:
        try:
            with connect(self.settings) as conn:
                while not done.wait(HEARTBEAT_S):
                    conn.execute("UPDATE epnml.jobs SET heartbeat = now() WHERE job_id = %s"
                                 " AND worker_id = %s", (job_id, self.worker_id))
        except (psycopg.Error, RuntimeError):
            pass

    def _execute(self, conn: psycopg.Connection, job: Job) -> None:
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.job_id, done), daemon=True)
        beat.start()
        self.current = job.job_id
        try:
            phase, error, result, n_rows = execute_job(conn, self.settings, job, self.pool)
        except Exception as exc:  # noqa: BLE001 - a job must end in ERROR, never hang EXECUTING
            error_id = log_internal(f"job {job.job_id}", f"{type(exc).__name__}: {exc}")
            phase, error, result, n_rows = "ERROR", f"internal error (error id {error_id})", \
                None, None
        finally:
            done.set()
            self.current = None
        conn.execute(
            "UPDATE epnml.jobs SET phase = %s, end_time = now(), error = %s, result = %s,"
            " n_rows = %s WHERE job_id = %s AND phase = 'EXECUTING' AND worker_id = %s",
            (phase, error, None if result is None else Jsonb(result), n_rows, job.job_id,
             self.worker_id))
        exists = conn.execute("SELECT 1 FROM epnml.jobs WHERE job_id = %s",
                              (job.job_id,)).fetchone()
        if exists is None:  # deleted while it ran: drop its files too
            shutil.rmtree(job_dir(self.settings, job.job_id), ignore_errors=True)


def _http_status(exc: Exception) -> int:
    for kind, code in ((TooLarge, 413), (InputError, 422), (NotFound, 404), (SourceGone, 410),
                       (Busy, 503), (Timeout, 504), (Internal, 500)):
        if isinstance(exc, kind):
            return code
    return 500


def _still_running(conn: psycopg.Connection, job_id: str) -> bool:
    row = conn.execute("SELECT phase FROM epnml.jobs WHERE job_id = %s", (job_id,)).fetchone()
    return row is not None and row[0] == "EXECUTING"


def execute_job(conn: psycopg.Connection, settings: Settings, job: Job,
                pool: WorkerPool | None = None) -> tuple[str, str | None, dict[str, Any], int]:
    """Re-run each distinct source granule of the job's IDs (:func:`epnml.rerun.rerun`, as
    /preview and /commit do); one log row per granule.

    Preview jobs run each granule in ``pool`` (deadline preview_timeout_s, memory cap;
    in this process without one); commit jobs (token holders) run inline.
    """
    model_version = job.params.get("MODEL_VERSION")
    params = job.model_params()
    mode = "ingest" if job.commit else "predict"
    runner = run_in_process if pool is None else pool_runner(pool, queue=False, wait_s=600.0)
    t_start = time.monotonic()
    reports: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    family: str | None = None
    seen: set[str] = set()
    stopped: str | None = None
    for uid in job.granule_ids:
        if not _still_running(conn, job.job_id):
            stopped = "aborted"
            break
        if job.execution_duration and time.monotonic() - t_start > job.execution_duration:
            stopped = f"execution duration of {job.execution_duration} s exceeded"
            break
        t0 = time.perf_counter()
        report: dict[str, Any] = {"ID": uid}
        try:
            ref = find_row(conn, uid)
            report["granule_id"] = ref.obs_id
            if ref.obs_id in seen:
                continue
            seen.add(ref.obs_id)
            if ref.pipeline != job.pipeline:
                raise InputError(f"{uid} belongs to pipeline {ref.pipeline}, not {job.pipeline}")
            family = family or ref.family
            done = rerun(conn, settings, ref, model_version=model_version, params=params,
                         commit=job.commit, preview=runner)
            if isinstance(done, RerunPreview):
                rows += done.rows
                report.update(run_id=done.run_id, pipeline=job.pipeline, mode=mode,
                              model_version=done.model_version, n_rows=done.n_rows,
                              n_superseded=0, n_failed=0, seconds=round(done.seconds, 4),
                              status="ok")
            else:
                rows += done.summary.rows
                data = done.report()
                data.pop("granules")  # one granule per run: its figures are the run's
                report.update(data, status="ok")
            outcome, status, err = "ok", 200, None
        except (InputError, NotFound, SourceGone, Busy, Timeout, Internal) as exc:
            err = clean_message(str(exc))
            report.update(status="failed", error=err)
            outcome, status = "failed", _http_status(exc)
        reports.append(report)
        log_request(conn, settings, client=f"job:{job.job_id} {job.owner}", endpoint="job",
                    pipeline=job.pipeline, granule_id=report.get("granule_id", uid),
                    model_version=report.get("model_version", model_version),
                    params={**params, "commit": job.commit},
                    seconds=time.perf_counter() - t0, outcome=outcome, http_status=status,
                    error=err)
    out_dir = job_dir(settings, job.job_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "rows.xml").write_bytes(rows_votable(rows, family, {"job": job.job_id}))
    n_ok = sum(r.get("status") == "ok" for r in reports)
    failed = [r for r in reports if r.get("status") == "failed"]
    result = {"granules": reports, "n_ok": n_ok, "n_failed": len(failed),
              "n_superseded": sum(int(r.get("n_superseded", 0)) for r in reports),
              "model_versions": sorted({str(r["model_version"]) for r in reports
                                        if r.get("model_version")}),
              "run_ids": [r["run_id"] for r in reports if r.get("run_id")]}
    if stopped == "aborted":
        return "ABORTED", "aborted by the client", result, len(rows)
    if stopped:
        return "ERROR", stopped, result, len(rows)
    if failed and n_ok == 0:
        return "ERROR", "; ".join(str(r["error"]) for r in failed[:5]), result, 0
    return "COMPLETED", None, result, len(rows)


# --- UWS 1.1 documents ---------------------------------------------------------------

def iso(dt: datetime | None) -> str:
    if dt is None:
        return ""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _el(name: str, value: str | None) -> str:
    if value is None or value == "":
        return f'<uws:{name} xsi:nil="true"/>'
    return f"<uws:{name}>{escape(value)}</uws:{name}>"


_HEAD = (f'xmlns:uws="{UWS_NS}" xmlns:xlink="http://www.w3.org/1999/xlink" '
         'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="1.1"')


def results_fragment(job: Job, base: str) -> str:
    if job.phase != "COMPLETED":
        return "<uws:results/>"
    href = f"{base}/jobs/{job.job_id}/results/rows"
    summary = f"{base}/jobs/{job.job_id}/results/summary"
    return ("<uws:results>"
            f'<uws:result id="rows" xlink:type="simple" xlink:href={quoteattr(href)} '
            'mime-type="application/x-votable+xml"/>'
            f'<uws:result id="summary" xlink:type="simple" xlink:href={quoteattr(summary)} '
            'mime-type="application/json"/></uws:results>')


def job_xml(job: Job, base: str) -> str:
    params = "".join(f'<uws:parameter id={quoteattr(k)}>{escape(v)}</uws:parameter>'
                     for k, v in job.parameters())
    error = ""
    if job.phase in ("ERROR", "ABORTED") and job.error:
        error = ('<uws:errorSummary type="fatal" hasDetail="false">'
                 f"<uws:message>{escape(job.error)}</uws:message></uws:errorSummary>")
    return (
        f'<?xml version="1.0" encoding="utf-8"?><uws:job {_HEAD}>'
        f"{_el('jobId', job.job_id)}{_el('ownerId', job.owner)}{_el('phase', job.phase)}"
        f"{_el('quote', None)}{_el('creationTime', iso(job.creation_time))}"
        f"{_el('startTime', iso(job.start_time))}{_el('endTime', iso(job.end_time))}"
        f"{_el('executionDuration', str(job.execution_duration))}"
        f"{_el('destruction', iso(job.destruction_time))}"
        f"<uws:parameters>{params}</uws:parameters>{results_fragment(job, base)}{error}"
        f"<uws:jobInfo><attempts>{job.attempts}</attempts>"
        f"<nRows>{'' if job.n_rows is None else job.n_rows}</nRows></uws:jobInfo>"
        "</uws:job>"
    )


def jobs_xml(jobs: list[Job], base: str) -> str:
    refs = "".join(
        f'<uws:jobref id={quoteattr(j.job_id)} xlink:type="simple" '
        f"xlink:href={quoteattr(f'{base}/jobs/{j.job_id}')}>"
        f"{_el('phase', j.phase)}{_el('ownerId', j.owner)}"
        f"{_el('creationTime', iso(j.creation_time))}</uws:jobref>"
        for j in jobs)
    return f'<?xml version="1.0" encoding="utf-8"?><uws:jobs {_HEAD}>{refs}</uws:jobs>'


def parameters_xml(job: Job) -> str:
    params = "".join(f'<uws:parameter id={quoteattr(k)}>{escape(v)}</uws:parameter>'
                     for k, v in job.parameters())
    return (f'<?xml version="1.0" encoding="utf-8"?><uws:parameters {_HEAD}>{params}'
            "</uws:parameters>")


def results_xml(job: Job, base: str) -> str:
    inner = results_fragment(job, base)
    inner = inner.replace("<uws:results>", "").replace("</uws:results>", "").replace(
        "<uws:results/>", "")
    return f'<?xml version="1.0" encoding="utf-8"?><uws:results {_HEAD}>{inner}</uws:results>'


def error_text(job: Job) -> str:
    return job.error or ""


def result_summary(job: Job) -> str:
    return json.dumps(job.result or {}, default=str)
