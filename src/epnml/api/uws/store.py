"""UWS 1.1 jobs: the store (``epnml.jobs`` in PostgreSQL), so a restart loses none.

Creating, queuing (bounded: max_queued_jobs, max_pending_per_client), changing, aborting and
deleting jobs; :func:`claim` hands a QUEUED job to the worker (``FOR UPDATE SKIP LOCKED``),
:func:`recover` re-queues once a job a dead process left EXECUTING and fails it the second
time, :func:`reap` destroys jobs past their destruction time (job records and result files
only; product rows are never touched by it). The worker is :mod:`epnml.api.uws.worker`,
the XML documents :mod:`epnml.api.uws.documents`.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from epnml.api.auth import Caller
from epnml.config import Settings
from epnml.rerun import FAMILIES, NotFound

#: most IDs one job may name.
MAX_IDS = 500
ACTIVE = ("PENDING", "QUEUED", "EXECUTING", "HELD", "SUSPENDED")
FINAL = ("COMPLETED", "ERROR", "ABORTED", "ARCHIVED")
#: an EXECUTING job whose worker has not written a heartbeat for this long is orphaned.
STALE_S = 60.0
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
