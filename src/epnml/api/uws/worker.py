"""UWS 1.1 jobs: the background worker that runs queued jobs.

One thread per service process claims QUEUED jobs from the store
(:mod:`epnml.api.uws.store`), writes a heartbeat while it runs one, and re-runs each ID
with :func:`epnml.rerun.rerun` (what /preview and /commit run): previews in the service's
worker pool, commits inline. Its results (rows VOTable, summary) go to the job's folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from epnml.api.errors import http_status
from epnml.api.requestlog import log_request
from epnml.api.uws.store import Job, claim, job_dir, reap, recover
from epnml.api.votable import rows_votable
from epnml.api.workers import WorkerPool, pool_runner
from epnml.config import Settings
from epnml.db import connect
from epnml.rerun import (
    Busy,
    InputError,
    Internal,
    NotFound,
    RerunPreview,
    SourceGone,
    Timeout,
    find_row,
    rerun,
    run_in_process,
)
from epnml.safety import clean_message, log_internal

HEARTBEAT_S = 5.0


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
            outcome, status = "failed", http_status(exc)
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
