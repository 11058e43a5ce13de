"""Provisioning security (issue #11): database roles and their generated passwords, file
modes, the HTTP service's bind address and stop escalation, deleted TAP async jobs.

Runs against the test instance that ``service/provision.sh stack`` provisions (``stack``).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pyvo

from epnml.config import read_dsn_file
from tests.conftest import REPO, TEST_API_PORT, TEST_DB, Ingest, Stack

pytestmark = pytest.mark.stack

PROVISION = str(REPO / "service" / "provision.sh")
OWNER = f"{TEST_DB}_owner"
INGEST = f"{TEST_DB}_ingest"
PRODUCTS = ("events", "crossings", "landforms", "units", "meteors", "aurora")


def _mode(path: Path) -> tuple[int, str, str]:
    st = path.stat()
    owner, group = pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name
    return stat.S_IMODE(st.st_mode), owner, group


def _dsn_fields(dsn: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in dsn.split())


def _profile_password(stack: Stack, profile: str) -> str:
    for line in (stack.dachs_root / "etc" / profile).read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "password":
            return value.strip()
    raise AssertionError(f"no password in DaCHS profile {profile}")


def test_generated_passwords_in_private_files(stack: Stack) -> None:
    etc = stack.dachs_root / "etc"
    owner = _dsn_fields(read_dsn_file(etc / "epnml-dsn-owner"))
    ingest = _dsn_fields(read_dsn_file(etc / "epnml-dsn-ingest"))
    assert (owner["user"], ingest["user"]) == (OWNER, INGEST)
    assert owner["dbname"] == ingest["dbname"] == TEST_DB
    assert owner["password"] != "epnml" and len(owner["password"]) == 43  # token_urlsafe(32)
    assert ingest["password"] not in ("epnml", owner["password"])
    for name in ("epnml-dsn-owner", "epnml-dsn-ingest"):
        assert _mode(etc / name) == (0o600, "root", "root")
    # the DSN epnml uses is the ingest role's, read from the file
    assert stack.env["EPNML_DSN"] == read_dsn_file(etc / "epnml-dsn-ingest")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(f"host=localhost dbname={TEST_DB} user={OWNER} password=epnml")


def _product_row(uid: str, superseded: bool) -> dict[str, Any]:
    now = datetime(2026, 1, 1, 12, 0, 0)
    return {
        "granule_uid": uid, "granule_gid": "icme", "obs_id": "prov_sec", "pipeline": "icme",
        "dataproduct_type": "ci", "target_name": "solar wind",
        "target_class": "interplanetary_medium", "time_min": 2459000.5, "time_max": 2459001.5,
        "spatial_frame_type": "none", "processing_level": 5, "creation_date": now,
        "modification_date": now, "release_date": now, "service_title": "epnml_events",
        "ml_model_name": "icme", "ml_model_version": "1", "ml_weights_sha256": "0" * 64,
        "ml_run_id": "prov_sec", "ml_score": 0.9, "superseded_at": now if superseded else None,
    }


def _insert(conn: psycopg.Connection, row: dict[str, Any]) -> None:
    names = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    conn.execute(f"INSERT INTO epnml.events ({names}) VALUES ({marks})", list(row.values()))


def test_ingest_role_cannot_delete_history_or_truncate(stack: Stack) -> None:
    with psycopg.connect(stack.env["EPNML_DSN"], autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (INGEST,)
        _insert(conn, _product_row("prov_sec_old", superseded=True))
        _insert(conn, _product_row("prov_sec_cur", superseded=False))
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match="superseded rows are never deleted"):
            conn.execute("DELETE FROM epnml.events WHERE obs_id = 'prov_sec'")
        for statement in ("TRUNCATE epnml.events", "DROP TABLE epnml.events",
                          "ALTER TABLE epnml.events DISABLE TRIGGER events_keep_superseded",
                          "DELETE FROM epnml.inference_log", "DELETE FROM epnml.runs",
                          "CREATE TABLE epnml.intruder (x int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        # the writer's one DELETE (current rows of a version, replaced) still works
        deleted = conn.execute("DELETE FROM epnml.events WHERE granule_uid = 'prov_sec_cur'")
        assert deleted.rowcount == 1
        kept = conn.execute("SELECT granule_uid FROM epnml.events WHERE obs_id = 'prov_sec'")
        assert kept.fetchall() == [("prov_sec_old",)]
    with psycopg.connect(stack.owner_dsn, autocommit=True) as owner:
        owner.execute("ALTER TABLE epnml.events DISABLE TRIGGER events_keep_superseded")
        owner.execute("DELETE FROM epnml.events WHERE obs_id = 'prov_sec'")
        owner.execute("ALTER TABLE epnml.events ENABLE TRIGGER events_keep_superseded")


def test_public_and_dachs_roles_cannot_modify(stack: Stack) -> None:
    with psycopg.connect(stack.owner_dsn, autocommit=True) as conn:
        public = conn.execute(
            "SELECT c.relname FROM pg_class c, aclexplode(c.relacl) a"
            " WHERE c.relnamespace = 'epnml'::regnamespace AND a.grantee = 0").fetchall()
        assert public == []
        schema_public = conn.execute(
            "SELECT count(*) FROM pg_namespace n, aclexplode(n.nspacl) a"
            " WHERE n.nspname = 'epnml' AND a.grantee = 0").fetchone()
        assert schema_public == (0,)
        tables = [r[0] for r in conn.execute(
            "SELECT format('epnml.%I', relname) FROM pg_class"
            " WHERE relnamespace = 'epnml'::regnamespace AND relkind IN ('r', 'p', 'v')")]
        assert {f"epnml.{t}" for t in PRODUCTS} <= set(tables)
        writable = conn.execute(
            "SELECT r.rolname, t FROM unnest(%s::text[]) AS t, pg_roles r"
            " WHERE r.rolname IN ('gavoadmin', 'gavo', 'untrusted')"
            " AND has_table_privilege(r.oid, t, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES,"
            " TRIGGER')", (tables,)).fetchall()
        assert writable == []
        readable = conn.execute(
            "SELECT t FROM unnest(%s::text[]) AS t WHERE has_table_privilege('gavoadmin', t,"
            " 'SELECT WITH GRANT OPTION') ORDER BY t", (tables,)).fetchall()
        # what the RDs serve: the products, the model registry, the training datasets
        # (rd/datasets) and the provenance graph (rd/provenance); nothing of the bookkeeping
        served = ["model_registry", "score_drift", "dataset_versions", "dataset_sources",
                  "dataset_samples", *(f"prov_{t}" for t in (
                      "entity", "activity", "agent", "used", "wasgeneratedby",
                      "wasassociatedwith", "wasderivedfrom", "wasinvalidatedby"))]
        assert [r[0] for r in readable] == sorted(
            [f"epnml.{t}" for t in (*PRODUCTS, *served)])
    # DaCHS' TAP role, with its own credentials: not even the schema
    password = _profile_password(stack, "untrustedquery")
    with psycopg.connect(f"host=localhost dbname={TEST_DB} user=untrusted password={password}",
                         autocommit=True) as conn:
        for statement in ("DELETE FROM epnml.events", "SELECT * FROM epnml.events",
                          "TRUNCATE epnml.jobs"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege,
                               match="permission denied for schema epnml"):
                conn.execute(statement)


def test_dachs_profiles_and_logs_private(stack: Stack) -> None:
    for profile in ("feed", "trustedquery", "untrustedquery"):
        assert _mode(stack.dachs_root / "etc" / profile) == (0o600, "gavo", "gavo")
    assert _mode(stack.dachs_root / "logs")[0] & 0o007 == 0
    assert _mode(stack.dachs_root / "logs" / "epnml-val.log") == (0o600, "root", "root")


def test_tap_still_serves_epn_core(ingested_icme: Ingest) -> None:
    stack = ingested_icme.stack
    with psycopg.connect(stack.owner_dsn) as conn:
        stored = conn.execute("SELECT count(*) FROM epnml.events WHERE superseded_at IS NULL"
                              ).fetchone()
    assert stored is not None and stored[0] > 0, "nothing to serve: the check would be empty"
    served = pyvo.dal.TAPService(stack.tap_url).search(
        "SELECT COUNT(*) AS n FROM epnml_events.epn_core").to_table()
    assert int(served["n"][0]) == stored[0]


def _listening(port: int) -> list[str]:
    out = subprocess.run(["ss", "-Htln", f"sport = :{port}"], text=True, capture_output=True,
                         check=True).stdout
    return sorted(line.split()[3] for line in out.splitlines())


def test_api_loopback_private_log_and_stop_escalates(stack: Stack) -> None:
    env = dict(stack.env, EPNML_API_PORT=str(TEST_API_PORT))
    log = stack.dachs_root / "logs" / "epnml-api.log"
    pidfile = stack.dachs_root / "epnml-api.pid"
    started = subprocess.run(["bash", PROVISION, "api"], env=env, text=True, capture_output=True)
    try:
        assert started.returncode == 0, started.stderr
        assert _mode(log) == (0o600, "root", "root")
        assert _listening(TEST_API_PORT) == [f"127.0.0.1:{TEST_API_PORT}"]
        pid = int(pidfile.read_text())
        assert os.getpgid(pid) == pid  # its own process group: workers stop with it
    finally:
        stopped = subprocess.run(["bash", PROVISION, "api", "stop"], env=env, text=True,
                                 capture_output=True)
    assert stopped.returncode == 0 and "SIGKILL" not in stopped.stderr
    assert not pidfile.exists() and _listening(TEST_API_PORT) == []

    # a service that ignores SIGTERM is SIGKILLed after the grace period
    stubborn = subprocess.Popen(
        ["bash", "-c", 'trap "" TERM; exec -a "epnml serve" sleep 600'], start_new_session=True)
    try:
        time.sleep(0.3)  # until exec
        pidfile.write_text(f"{stubborn.pid}\n")
        stopped = subprocess.run(["bash", PROVISION, "api", "stop"], text=True,
                                 env=dict(env, EPNML_STOP_GRACE="1"), capture_output=True)
        assert stopped.returncode == 0, stopped.stderr
        assert "did not stop within 1s: SIGKILL" in stopped.stderr
        assert stubborn.wait(timeout=10) == -9
    finally:
        if stubborn.poll() is None:
            stubborn.kill()


def _psql(sql: str) -> list[str]:
    """As the superuser: pg_stat_activity hides other roles' queries from the owner role."""
    out = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-d", TEST_DB, "-Atqc", sql],
                         text=True, capture_output=True, check=True).stdout
    return out.split()


def _tap_backends() -> list[int]:
    return [int(pid) for pid in _psql(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND usename = 'untrusted' AND state = 'active'")]


def _post(url: str, data: dict[str, str]) -> str:
    """POST a form; the URL DaCHS redirects to (303), not followed."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    request = urllib.request.Request(url, urllib.parse.urlencode(data).encode())
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=30) as response:
            return response.geturl()
    except urllib.error.HTTPError as exc:
        if exc.code == 303:
            return str(exc.headers["Location"])
        raise


def test_deleting_executing_tap_job_stops_its_query(stack: Stack) -> None:
    assert _tap_backends() == []
    # ~1e10 rows: runs until cancelled (or DaCHS' 600 s timeout)
    query = ("SELECT COUNT(*) AS n FROM tap_schema.columns AS a, tap_schema.columns AS b,"
             " tap_schema.columns AS c, tap_schema.columns AS d")
    job = _post(f"{stack.tap_url}/async", {"LANG": "ADQL", "QUERY": query})
    job_id = job.rstrip("/").rsplit("/", 1)[-1]
    try:
        _post(f"{job}/phase", {"PHASE": "RUN"})
        deadline = time.monotonic() + 60
        while not _tap_backends() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(_tap_backends()) == 1, "the slow query never started"
        _post(job, {"ACTION": "DELETE"})
        # the watchdog polls every 5 s; PostgreSQL notices the dead client within 2 s
        deadline = time.monotonic() + 30
        while _tap_backends() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _tap_backends() == []
        watch_log = (stack.dachs_root / "logs" / "epnml-tapwatch.log").read_text()
        assert f"TAP job {job_id} was deleted while executing" in watch_log
    finally:  # never leave a query running on the shared machine
        for pid in _tap_backends():
            _psql(f"SELECT pg_terminate_backend({pid})")
