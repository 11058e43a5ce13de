"""End to end through a real ``epnml serve`` (uvicorn on the test API port) and pyvo.

TAP row -> its datalink_url -> DataLink parsed by pyvo -> the #proc descriptor called
with another threshold -> rows; then a commit with the token: TAP serves the derived
version while the old rows stay in the store, superseded. Also: a restart with queued
and orphaned jobs. The commit uses a granule of its own (a simulated week of solar wind
in 2022), so the rows other tests count are untouched.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ICME_VERSION, Ingest, Stack

pyvo = pytest.importorskip("pyvo")

pytestmark = pytest.mark.stack

TOKEN = "e2e-token-91ab"
OBS_ID = "wind_simulated_20220801"
PORT = int(os.environ.get("EPNML_TEST_API_PORT", "8099"))
BASE = f"http://localhost:{PORT}"


@contextmanager
def serve(stack: Stack, log: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """``epnml serve --no-dachs`` on the test API port until the block ends."""
    full = dict(stack.env, EPNML_API_TOKEN=TOKEN, **env)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(Path(sys.prefix) / "bin" / "epnml"), "serve", "--no-dachs", "--host",
             "127.0.0.1", "--port", str(PORT), "--log-level", "warning"],
            env=full, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{BASE}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except (OSError, urllib.error.HTTPError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"epnml serve did not start:\n{log.read_text()}")
            time.sleep(0.3)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _post(path: str, data: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    body = urllib.parse.urlencode(data, doseq=True).encode()
    request = urllib.request.Request(f"{BASE}{path}", data=body, method="POST")
    request.add_header("Accept", "application/json")  # errors as JSON, not DALI documents
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _get(url: str, token: str | None = None) -> bytes:
    request = urllib.request.Request(url)
    if token:  # jobs are their owner's: the commit token (administrator) sees every job
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=120) as response:
        data: bytes = response.read()
    return data


@pytest.fixture(scope="module")
def own_granule(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Ingest:
    """A simulated week with two ICMEs, ingested through the CLI (only this module uses it)."""
    from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv

    inputs = tmp_path_factory.mktemp("api_e2e_inputs")
    frame, _ = simulate_solar_wind("2022-08-01", days=7, seed=5, n_icmes=2)
    source = inputs / f"{OBS_ID}.csv"
    write_csv(frame, source)
    result = stack.run(str(Path(sys.prefix) / "bin" / "epnml"), "ingest", "icme",
                       "--no-progress", "--workers", "1", "--model-version", ICME_VERSION,
                       str(source), check=False)
    assert result.returncode == 0, result.stderr
    return Ingest(stack, result, inputs, {"source": source})


def _db(stack: Stack) -> psycopg.Connection:
    return psycopg.connect(stack.env["EPNML_DSN"], autocommit=True)


def test_datalink_reinference_and_commit(stack: Stack, tap: Any, own_granule: Ingest,
                                         tmp_path: Path) -> None:
    from astropy.io.votable import parse
    from pyvo.dal.adhoc import DatalinkResults

    rows = tap.search("SELECT granule_uid, datalink_url, ml_model_version FROM "
                      f"epnml_events.epn_core WHERE obs_id = '{OBS_ID}'").to_table()
    assert len(rows) == own_granule.n_rows() and set(rows["ml_model_version"]) == {"1.0.0"}
    old_uids = {str(u) for u in rows["granule_uid"]}
    with serve(stack, tmp_path / "serve.log",
               EPNML_JOBS_DIR=str(tmp_path / "jobs")):
        links = DatalinkResults.from_result_url(str(rows[0]["datalink_url"]))
        semantics = {rec.semantics for rec in links}
        assert {"#progenitor", "#preview", "#documentation", "#proc"} <= semantics
        progenitor = next(links.bysemantics("#progenitor", include_narrower=False))
        assert _get(progenitor.access_url) == own_granule.files["source"].read_bytes()
        documentation = next(links.bysemantics("#documentation", include_narrower=False))
        card = json.loads(_get(documentation.access_url))
        assert card["model_version"] == "1.0.0"

        # call the service descriptor as pyvo does, with another threshold
        proc = next(links.bysemantics("#proc", include_narrower=False))
        names = {p.name for p in proc.input_params}
        assert {"ID", "model_version", "threshold", "RESPONSEFORMAT"} <= names
        votable = parse(io.BytesIO(proc.process(threshold=0.3).read()))
        infos = {i.name: i.value for i in votable.resources[0].infos}
        assert infos["model_version"] == "1.0.0+threshold-0.3"
        preview = votable.get_first_table().to_table()
        assert len(preview) > 0, "a preview without rows would check nothing below"
        assert set(str(v) for v in preview["ml_model_version"]) == {"1.0.0+threshold-0.3"}
        as_json = json.loads(proc.process(threshold=0.3, RESPONSEFORMAT="json").read())
        assert as_json["n_rows"] == len(preview)
        # the preview wrote nothing
        assert {str(u) for u in tap.search(
            f"SELECT granule_uid FROM epnml_events.epn_core WHERE obs_id = '{OBS_ID}'"
        ).to_table()["granule_uid"]} == old_uids

        # commit: a wrong token is refused, the right one writes the derived version
        uid = str(rows[0]["granule_uid"])
        assert _post("/commit", {"ID": uid, "threshold": 0.3}, "wrong")[0] == 403
        status, result = _post("/commit", {"ID": uid, "threshold": 0.3}, TOKEN)
        assert status == 200, result
        assert result["model_version"] == "1.0.0+threshold-0.3"
        assert result["n_rows"] == len(preview)
        assert result["n_superseded"] == len(old_uids)

        # TAP shows the new version; the old rows stay in the store, superseded
        served = tap.search("SELECT granule_uid, ml_model_version, datalink_url FROM "
                            f"epnml_events.epn_core WHERE obs_id = '{OBS_ID}'").to_table()
        assert len(served) == result["n_rows"]
        assert set(served["ml_model_version"]) == {"1.0.0+threshold-0.3"}
        with _db(stack) as conn:
            kept = conn.execute(
                "SELECT granule_uid, superseded_at FROM epnml.events WHERE obs_id = %s"
                " AND ml_model_version = '1.0.0'", (OBS_ID,)).fetchall()
        assert {str(u) for u, _ in kept} == old_uids
        assert all(when is not None for _, when in kept)
        registry = tap.search("SELECT model_version FROM epnml_models.versions"
                              " WHERE model_name = 'icme'").to_table()
        assert "1.0.0+threshold-0.3" in set(registry["model_version"])

        # the new rows' DataLink re-runs with their own parameters by default
        new_links = DatalinkResults.from_result_url(str(served[0]["datalink_url"]))
        new_proc = next(new_links.bysemantics("#proc", include_narrower=False))
        preset = {p.name: p.value for p in new_proc.input_params}
        assert preset["model_version"] == "1.0.0" and float(preset["threshold"]) == 0.3
        again = parse(io.BytesIO(new_proc.process().read())).resources[0].infos
        assert {i.name: i.value for i in again}["model_version"] == "1.0.0+threshold-0.3"
        # the superseded rows still answer DataLink (their ID is kept)
        assert next(DatalinkResults.from_result_url(
            str(rows[0]["datalink_url"])).bysemantics("#proc", include_narrower=False)) is not None
        drift = json.loads(_get(f"{BASE}/models/icme/drift"))
        assert {"1.0.0", "1.0.0+threshold-0.3"} <= {d["model_version"] for d in drift}

        # the same through a UWS job: COMMIT=true needs the token, then supersedes again
        new_uid = str(served[0]["granule_uid"])
        job = {"ID": new_uid, "THRESHOLD": "0.25", "COMMIT": "true", "PHASE": "RUN"}
        assert _post("/jobs", job)[0] == 401
        job_id = _create_job(job, TOKEN)
        deadline = time.monotonic() + 120
        while _phase(job_id) not in ("COMPLETED", "ERROR") and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _phase(job_id) == "COMPLETED", _get(f"{BASE}/jobs/{job_id}", TOKEN)
        summary = json.loads(_get(f"{BASE}/jobs/{job_id}/results/summary", TOKEN))
        assert summary["model_versions"] == ["1.0.0+threshold-0.25"]
        assert summary["n_superseded"] == len(served)
        now = tap.search("SELECT ml_model_version FROM epnml_events.epn_core"
                         f" WHERE obs_id = '{OBS_ID}'").to_table()
        assert set(now["ml_model_version"]) == {"1.0.0+threshold-0.25"}
        with _db(stack) as conn:
            versions = {str(v) for (v,) in conn.execute(
                "SELECT DISTINCT ml_model_version FROM epnml.events WHERE obs_id = %s"
                " AND superseded_at IS NOT NULL", (OBS_ID,)).fetchall()}
        assert versions == {"1.0.0", "1.0.0+threshold-0.3"}  # kept, superseded
    with _db(stack) as conn:
        logged = conn.execute("SELECT endpoint, outcome, http_status, client FROM"
                              " epnml.inference_log WHERE granule_id = %s", (uid,)).fetchall()
    assert ("commit", "ok", 200) in {(e, o, s) for e, o, s, _ in logged}
    assert ("commit", "failed", 403) in {(e, o, s) for e, o, s, _ in logged}
    assert not any(TOKEN in str(c) for *_, c in logged)


def _create_job(data: dict[str, str], token: str | None = None) -> str:
    """POST /jobs; the job id from the 303 Location."""
    request = urllib.request.Request(f"{BASE}/jobs", method="POST",
                                     data=urllib.parse.urlencode(data).encode())
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        opener.open(request, timeout=30)
    except urllib.error.HTTPError as exc:
        if exc.code != 303:
            raise
        return str(exc.headers["Location"]).rsplit("/", 1)[-1]
    raise AssertionError("expected a 303 to the new job")


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _phase(job_id: str) -> str:
    return _get(f"{BASE}/jobs/{job_id}/phase", TOKEN).decode()


def test_restart_resumes_queued_jobs_and_fails_orphans_cleanly(ingested_crossings: Ingest,
                                                               tmp_path: Path) -> None:
    from pyvo.io.uws import parse_job

    with _db(ingested_crossings.stack) as conn:
        conn.execute("DELETE FROM epnml.jobs")
        uid = str(conn.execute("SELECT granule_uid FROM epnml.crossings WHERE superseded_at"
                               " IS NULL ORDER BY granule_uid LIMIT 1").fetchone()[0])
    log = tmp_path / "serve.log"
    env = {"EPNML_JOBS_DIR": str(tmp_path / "jobs")}
    # 1. a job queued through HTTP while the worker is held, then the server is killed
    with serve(ingested_crossings.stack, log, EPNML_JOB_WORKER="0", **env) as proc:
        queued = _create_job({"ID": uid, "PHASE": "RUN"})
        assert _phase(queued) == "QUEUED"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # 2. two jobs a dead process left EXECUTING: first attempt and second attempt
    host, pid = socket.gethostname(), _dead_pid()
    with _db(ingested_crossings.stack) as conn:
        for job_id, attempts in (("orphanonce0001", 1), ("orphantwice001", 2)):
            conn.execute(
                "INSERT INTO epnml.jobs (job_id, phase, owner, pipeline, params, granule_ids,"
                " destruction_time, worker_id, heartbeat, start_time, attempts) VALUES"
                " (%s, 'EXECUTING', 'anonymous', 'crossings', '{}', %s,"
                " now() + interval '1 hour', %s, now(), now(), %s)",
                (job_id, [uid], f"{host}:{pid}:dead", attempts))
    # 3. the restarted service resumes the queued job, re-queues the first orphan once
    #    and fails the second one with a clear error
    with serve(ingested_crossings.stack, log, **env):
        deadline = time.monotonic() + 180
        final = ("COMPLETED", "ERROR", "ABORTED")
        while time.monotonic() < deadline and not all(
                _phase(j) in final for j in (queued, "orphanonce0001", "orphantwice001")):
            time.sleep(0.5)
        assert _phase(queued) == "COMPLETED"
        assert _phase("orphanonce0001") == "COMPLETED"
        failed = parse_job(io.BytesIO(_get(f"{BASE}/jobs/orphantwice001", TOKEN)))
        assert failed.phase == "ERROR"
        assert "not retried" in failed.errorsummary.message.content
        assert "not retried" in _get(f"{BASE}/jobs/orphantwice001/error", TOKEN).decode()
    with _db(ingested_crossings.stack) as conn:
        conn.execute("DELETE FROM epnml.jobs")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
