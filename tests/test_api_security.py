"""The HTTP service under hostile use (issue #11): owners of jobs, pending limits, no
secrets or server paths in answers and logs, previews with a deadline that kills.

The first tests need no stack (the database is unreachable on purpose: previews of
uploads need none; the request log then stays silent). The ``stack`` tests run
``create_app`` on the test database with the rows of the icme ingest (``ingested_icme``).
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient

from epnml.api.workers import WorkerPool
from epnml.config import Settings, load_settings
from epnml.rerun import Busy, Timeout, TooLarge
from epnml.safety import QueryStringFilter, clean_message, install_query_filter, open_log
from tests.conftest import Ingest
from tests.fixtures.make_crossings_fixtures import make_crossings_fixtures
from tests.fixtures.make_units_fixtures import make_units_fixtures

REPO = Path(__file__).resolve().parent.parent
TOKEN = "security-test-token-91d2"
SECRET = "SECRET-CONTENT-4b7e0c"
OWNER_A = "owner-a-0123456789abcdef"
OWNER_B = "owner-b-0123456789abcdef"


def _slow_preview(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Stands in for the preview inside the worker process: never finishes in time."""
    time.sleep(120)
    return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(
        f"/proc/{pid}/status").read_text().lower()


# --- no stack ------------------------------------------------------------------------

@pytest.fixture
def offline(tmp_path: Path) -> Settings:
    """Settings whose database is unreachable (nothing here may need it)."""
    return replace(load_settings(), dsn="host=/nonexistent-epnml-socket dbname=none",
                   server_url="http://127.0.0.1:9", api_token=TOKEN,
                   jobs_dir=tmp_path / "jobs", job_worker=0, preview_memory_mb=0)


@pytest.fixture
def solar_wind(tmp_path: Path) -> Path:
    from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv

    frame, _ = simulate_solar_wind("2021-03-01", days=5, seed=3, n_icmes=1)
    path = tmp_path / "wind_simulated_20210301.csv"
    write_csv(frame, path)
    return path


def test_serve_binds_to_loopback_by_default() -> None:
    from epnml.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1"
    assert args.log_file is None
    shown = subprocess.run([str(Path(sys.prefix) / "bin" / "epnml"), "serve", "--help"],
                           capture_output=True, text=True, check=True).stdout
    assert "default 127.0.0.1" in " ".join(shown.split())


def test_clean_message_keeps_file_names_only() -> None:
    assert clean_message("/var/tmp/epnml-jobs/uploads/ab12/x.lbl: ^TABLE pointer must name a "
                         "file in the label's folder") == (
        "x.lbl: ^TABLE pointer must name a file in the label's folder")
    assert clean_message("cannot read '/var/gavo/epnml-api-token'") == (
        "cannot read 'epnml-api-token'")
    assert clean_message("see /models or http://localhost:8080/tap/sync") == (
        "see /models or http://localhost:8080/tap/sync")
    assert clean_message("a\x00b\nc") == "a b c"
    long = clean_message("x" * 2000)
    assert len(long) == 500 and long.endswith("...")


def test_log_file_is_created_mode_600_and_tightened(tmp_path: Path) -> None:
    new = tmp_path / "api.log"
    os.close(open_log(new))
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    old = tmp_path / "old.log"
    old.write_text("x")
    old.chmod(0o644)
    os.close(open_log(old))
    assert stat.S_IMODE(old.stat().st_mode) == 0o600


def test_deadline_kills_the_worker_process() -> None:
    pool = WorkerPool(workers=1, queue=0, memory_mb=0)
    try:
        first = pool.call(60, os.getpid)
        assert first != os.getpid()
        with pytest.raises(Timeout, match=r"did not finish within 1 s \(preview_timeout_s\)"):
            pool.call(1, time.sleep, 120)
        assert pool.killed == [first]
        assert not _alive(first)
        second = pool.call(60, os.getpid)  # a fresh worker serves the next call
        assert second not in (first, os.getpid())
    finally:
        pool.close()


def test_memory_cap_of_a_worker() -> None:
    pool = WorkerPool(workers=1, queue=0, memory_mb=1024)
    try:
        with pytest.raises(TooLarge, match=r"\(1024 MB, preview_memory_mb\)"):
            pool.call(60, bytearray, 4 * 2**30)
        assert pool.call(60, sum, [1, 2, 3]) == 6
    finally:
        pool.close()


def test_full_queue_answers_busy_at_once() -> None:
    pool = WorkerPool(workers=1, queue=1, memory_mb=0)
    done: list[Any] = []
    threads = [threading.Thread(target=lambda: done.append(pool.call(60, time.sleep, 2)))
               for _ in range(2)]
    try:
        threads[0].start()
        deadline = time.monotonic() + 60
        while not pool._busy and time.monotonic() < deadline:
            time.sleep(0.05)
        threads[1].start()  # waits in the queue for the one worker
        while pool._admitted._value > 0 and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.05)
        with pytest.raises(Busy, match="2 previews are running or waiting already") as err:
            pool.call(60, os.getpid)
        assert err.value.retry_after == 10
    finally:
        for t in threads:
            t.join(120)
        pool.close()
    assert done == [None, None]  # the queued call ran once the worker was free


def test_http_preview_deadline_answers_504_and_kills(offline: Settings, solar_wind: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from epnml.api import create_app, workers

    monkeypatch.setattr(workers, "predict_once", _slow_preview)
    app = create_app(replace(offline, preview_timeout_s=2))
    with TestClient(app, headers={"Accept": "application/json"}) as client:
        response = client.post("/preview/icme", files=[
            ("file", (solar_wind.name, solar_wind.read_bytes(), "text/csv"))])
        assert response.status_code == 504
        assert response.json() == {"detail": "the preview did not finish within 2 s "
                                              "(preview_timeout_s) and was stopped; try a "
                                              "smaller input"}
        killed = app.state.pool.killed
        assert len(killed) == 1 and not _alive(killed[0])


def test_http_preview_busy_answers_503_with_retry_after(offline: Settings, solar_wind: Path
                                                        ) -> None:
    from epnml.api import create_app

    app = create_app(replace(offline, preview_workers=1, preview_queue=0))
    with TestClient(app, headers={"Accept": "application/json"}) as client:
        pool = app.state.pool
        holder = threading.Thread(target=pool.call, args=(60, time.sleep, 3))
        holder.start()
        deadline = time.monotonic() + 60
        while pool._admitted._value > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        response = client.post("/preview/icme", files=[
            ("file", (solar_wind.name, solar_wind.read_bytes(), "text/csv"))])
        holder.join(120)
        assert response.status_code == 503 and response.headers["retry-after"] == "10"
        assert "retry later" in response.json()["detail"]
        after = client.post("/preview/icme", params={"RESPONSEFORMAT": "json"}, files=[
            ("file", (solar_wind.name, solar_wind.read_bytes(), "text/csv"))])
        assert after.status_code == 200, after.text
        assert after.json()["pipeline"] == "icme"


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Real MESSENGER and MASCS products whose labels point at a secret file outside."""
    outside = tmp_path_factory.mktemp("outside")
    secret = outside / "epnml-api-token"
    secret.write_text(f"{SECRET}\n")
    mag = make_crossings_fixtures(tmp_path_factory.mktemp("c"))
    units = make_units_fixtures(tmp_path_factory.mktemp("u"))
    mag_label = mag["pds3_lbl"].read_text().replace(f'"{mag["pds3_tab"].name}"',
                                                     f'"{secret}"')
    vis = units["vis_lbl"].read_text()
    assert "^STRUCTURE" in vis or "^TABLE" in vis
    import re

    vis_label = re.sub(r'(\^STRUCTURE\s*=\s*)"[^"]*"', rf'\1"{secret}"', vis)
    if vis_label == vis:
        vis_label = re.sub(r'(\^TABLE\s*=\s*)"?[^"\s]*"?', rf'\1"{secret}"', vis)
    assert str(secret) in vis_label
    return {"secret": secret, "outside": outside,
            "crossings": [(mag["pds3_lbl"].name, mag_label.encode()),
                          (mag["pds3_tab"].name, mag["pds3_tab"].read_bytes())],
            "units": [(units["vis_lbl"].name, vis_label.encode()),
                      (units["vis_dat"].name, units["vis_dat"].read_bytes())]}


@pytest.mark.parametrize("pipeline", ["crossings", "units"])
def test_crafted_upload_error_has_no_server_path_nor_content(
        offline: Settings, crafted: dict[str, Any], pipeline: str,
        capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    from epnml.api import create_app

    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(offline), headers={"Accept": "application/json"}) as client:
        response = client.post(f"/preview/{pipeline}", files=[
            ("file", (name, data, "application/octet-stream"))
            for name, data in crafted[pipeline]])
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    label_name = crafted[pipeline][0][0]
    assert detail.startswith(f"{label_name}: ") and "pointer must name a file" in detail
    for leak in (SECRET, str(offline.jobs_dir), str(crafted["outside"]), "/uploads/"):
        assert leak not in response.text
    out, err = capfd.readouterr()
    assert SECRET not in out + err + caplog.text
    assert str(offline.jobs_dir) not in out + err


def test_declared_work_beyond_the_limits_is_413(offline: Settings, tmp_path: Path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0,
                                                              0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 30001 * 4)) + chunk(b"IEND", b""))
    from epnml.api import create_app

    with TestClient(create_app(offline), headers={"Accept": "application/json"}) as client:
        response = client.post("/preview/pits", files=[("file", ("bomb.png", png, "image/png"))])
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == "bomb.png: pixels 9e+08 exceeds the limit of 2.5e+07"


def test_query_strings_never_reach_the_log(offline: Settings, solar_wind: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    from epnml.api import create_app

    caplog.set_level(logging.INFO)
    with TestClient(create_app(offline), headers={"Accept": "application/json"}) as client:
        assert client.get("/pipelines", params={"token": SECRET}).status_code == 200
        refused = client.post("/preview/icme", params={"token": SECRET, "RESPONSEFORMAT": "json"},
                              files=[("file", (solar_wind.name, solar_wind.read_bytes(),
                                               "text/csv"))])
    # not a parameter of the icme spec: refused, and the message names it without its value
    assert refused.json() == {"detail": "icme: unknown parameter 'token' "
                                        "(known: threshold, min_duration_h)"}
    access = [r.getMessage() for r in caplog.records if r.name == "epnml.api.access"]
    assert [m.split(" ", 1)[1].rsplit(" ", 1)[0] for m in access] == [
        '"GET /pipelines" 200', '"POST /preview/icme" 422']
    served = [r for r in caplog.records if not r.name.startswith("httpx")]  # httpx: the client
    assert served and SECRET not in "\n".join(r.getMessage() for r in served)
    # uvicorn's own access logger, if someone runs the app with it, is filtered too
    install_query_filter()
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "10.0.0.1", "GET",
                                             f"/preview?ID=x&token={SECRET}", "1.1", 200)
    line = caplog.records[-1].getMessage()
    assert line == '10.0.0.1 - "GET /preview HTTP/1.1" 200'
    assert any(isinstance(f, QueryStringFilter)
               for f in logging.getLogger("uvicorn.access").filters)


def test_unexpected_exception_is_a_generic_500_with_an_error_id(
        offline: Settings, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from epnml.api import create_app
    from epnml.api.routes import models as app_module

    def broken(name: str) -> None:
        raise KeyError(f"{SECRET} /var/secret/dir/file")

    monkeypatch.setattr(app_module, "stage_problem", broken)
    caplog.set_level(logging.ERROR, logger="epnml.api.errors")
    with TestClient(create_app(offline),
                    headers={"Accept": "application/json"},
                    raise_server_exceptions=False) as client:
        response = client.get("/pipelines")
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"detail", "error_id"} and len(body["error_id"]) == 16
    assert SECRET not in response.text and "/var/secret" not in response.text
    errors = [r.getMessage() for r in caplog.records if r.name == "epnml.api.errors"]
    assert len(errors) == 1 and body["error_id"] in errors[0] and SECRET in errors[0]


@pytest.mark.parametrize("request_args", [
    ("post", "/preview/icme", {"content": b'{"file": "x"}',
                               "headers": {"content-type": "application/json"}}),
    ("post", "/preview/icme", {"content": b"--x\r\n",
                               "headers": {"content-type": "multipart/form-data"}}),
    ("post", "/preview/icme", {"data": {"file": "not a file"}}),
    ("post", "/preview/icme", {"files": [("file", ("x.csv", b"", "text/csv"))]}),
    ("post", "/preview/icme", {"files": [("file", ("\u00e9\u00e8\u2603.csv", b"a,b\n1,2\n",
                                                   "text/csv"))]}),
    ("post", "/preview/n\u00f6pe", {"files": [("file", ("a.csv", b"x", "text/csv"))]}),
    ("post", "/preview/" + "a" * 5000, {"files": [("file", ("a.csv", b"x", "text/csv"))]}),
    ("post", "/preview/icme?threshold=nan&RESPONSEFORMAT=\u2603",
     {"files": [("file", ("a.csv", b"x", "text/csv"))]}),
    ("post", "/preview/icme?threshold=-1e309", {"files": [("file", ("a.csv", b"x", "t/c"))]}),
    ("post", "/preview/icme?model_version=%00", {"files": [("file", ("a.csv", b"x", "t/c"))]}),
])
def test_hostile_values_without_a_database_are_4xx(offline: Settings,
                                                   request_args: tuple[str, str, dict[str, Any]]
                                                   ) -> None:
    from epnml.api import create_app

    method, url, kwargs = request_args
    with TestClient(create_app(offline),
                    headers={"Accept": "application/json"},
                    raise_server_exceptions=False) as client:
        response = getattr(client, method)(url, **kwargs)
    assert 400 <= response.status_code < 500, (url, response.status_code, response.text)
    assert response.json()["detail"]
    assert "Traceback" not in response.text and str(offline.jobs_dir) not in response.text


# --- with the stack: owners, limits, expiry --------------------------------------------

@pytest.fixture(scope="module")
def stack_settings(ingested_icme: Ingest, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = load_settings()
    with psycopg.connect(base.dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM epnml.jobs")  # the test database is disposable
    return replace(base, api_token=TOKEN, jobs_dir=tmp_path_factory.mktemp("sec-jobs"),
                   job_worker=0, max_queued_jobs=100, max_pending_per_client=3)


@pytest.fixture
def client(stack_settings: Settings) -> Iterator[TestClient]:
    from epnml.api import create_app

    with psycopg.connect(stack_settings.dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM epnml.jobs")
    with TestClient(create_app(stack_settings), headers={"Accept": "application/json"}) as c:
        yield c


def _uid(settings: Settings) -> str:
    with psycopg.connect(settings.dsn) as conn:
        row = conn.execute("SELECT granule_uid FROM epnml.events WHERE superseded_at IS NULL"
                           " ORDER BY granule_uid LIMIT 1").fetchone()
    assert row is not None
    return str(row[0])


def _create(client: TestClient, settings: Settings, headers: dict[str, str]) -> tuple[str, Any]:
    response = client.post("/jobs", data={"ID": _uid(settings)}, headers=headers,
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"].replace(settings.api_url.rstrip("/"), ""), response


def _job_routes(path: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("get", path, {}), ("get", f"{path}/phase", {}), ("get", f"{path}/parameters", {}),
        ("get", f"{path}/results", {}), ("get", f"{path}/results/rows", {}),
        ("get", f"{path}/results/summary", {}), ("get", f"{path}/error", {}),
        ("get", f"{path}/destruction", {}), ("get", f"{path}/executionduration", {}),
        ("get", f"{path}/quote", {}), ("get", f"{path}/owner", {}),
        ("post", f"{path}/parameters", {"data": {"THRESHOLD": "0.6"}}),
        ("post", f"{path}/destruction", {"data": {"DESTRUCTION": "2030-01-01T00:00:00Z"}}),
        ("post", f"{path}/executionduration", {"data": {"EXECUTIONDURATION": "60"}}),
        ("post", f"{path}/phase", {"data": {"PHASE": "RUN"}}),
        ("post", f"{path}/phase", {"data": {"PHASE": "ABORT"}}),
        ("post", path, {"data": {"ACTION": "DELETE"}}),
        ("delete", path, {}),
    ]


@pytest.mark.stack
def test_jobs_are_their_owners(client: TestClient, stack_settings: Settings) -> None:
    from epnml.api.auth import owner_tag

    path, created = _create(client, stack_settings, {"X-Job-Owner-Token": OWNER_A})
    assert created.headers["x-job-owner-token"] == OWNER_A
    job_id = path.rsplit("/", 1)[-1]
    strangers = [{"X-Job-Owner-Token": OWNER_B}, {}, {"Authorization": f"Bearer {OWNER_B}"}]
    routes = _job_routes(path)
    assert len(routes) == 18
    for headers in strangers:
        for method, url, kwargs in routes:
            response = getattr(client, method)(url, headers=headers, follow_redirects=False,
                                               **kwargs)
            assert response.status_code == 404, (headers, method, url, response.text)
            assert response.json()["detail"].startswith(f"no job {job_id} ")
        listed = client.get("/jobs", headers=headers).text
        assert job_id not in listed
    # nothing changed by the strangers
    owner = {"X-Job-Owner-Token": OWNER_A}
    phase = client.get(f"{path}/phase", headers=owner)
    assert phase.text == "PENDING", (phase.status_code, phase.text)
    assert client.get(f"{path}/executionduration", headers=owner).text == "0"
    # the owner (header or Bearer) and the administrator see and change it
    xml = client.get(path, headers=owner).text
    assert f"<uws:ownerId>{owner_tag(OWNER_A)}</uws:ownerId>" in xml and OWNER_A not in xml
    assert job_id in client.get("/jobs", headers={"Authorization": f"Bearer {OWNER_A}"}).text
    assert job_id in client.get("/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert client.post(f"{path}/parameters", data={"THRESHOLD": "0.6"}, headers=owner,
                       follow_redirects=False).status_code == 303
    assert client.get(f"{path}/owner", headers={"Authorization": f"Bearer {TOKEN}"}).text == \
        owner_tag(OWNER_A)
    # a job made without a token: the service makes one and answers it once
    other, made = _create(client, stack_settings, {})
    token = made.headers["x-job-owner-token"]
    assert len(token) == 43 and made.headers["cache-control"] == "no-store"
    assert client.get(other).status_code == 404
    assert client.get(other, headers={"X-Job-Owner-Token": token}).status_code == 200
    listed = client.get("/jobs", headers={"X-Job-Owner-Token": token}).text
    assert other.rsplit("/", 1)[-1] in listed and job_id not in listed
    assert client.delete(path, headers=owner, follow_redirects=False).status_code == 303
    assert client.delete(other, headers={"Authorization": f"Bearer {TOKEN}"},
                         follow_redirects=False).status_code == 303
    assert client.get(path, headers=owner).status_code == 404


@pytest.mark.stack
def test_pending_jobs_are_limited_per_client(client: TestClient,
                                             stack_settings: Settings) -> None:
    assert stack_settings.max_pending_per_client == 3
    for headers in ({"X-Job-Owner-Token": OWNER_A}, {}):
        for _ in range(3):
            _create(client, stack_settings, headers)
        refused = client.post("/jobs", data={"ID": _uid(stack_settings)}, headers=headers,
                              follow_redirects=False)
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "60"
        assert refused.json()["detail"] == (
            "you have 3 jobs PENDING or QUEUED (limit 3, max_pending_per_client); run, wait "
            "for or delete some first")
    # another owner token is another client; the administrator is not limited
    _create(client, stack_settings, {"X-Job-Owner-Token": OWNER_B})
    for _ in range(4):
        _create(client, stack_settings, {"Authorization": f"Bearer {TOKEN}"})
    with psycopg.connect(stack_settings.dsn) as conn:
        row = conn.execute("SELECT count(*) FROM epnml.jobs").fetchone()
    assert row is not None and row[0] == 3 + 3 + 1 + 4


@pytest.mark.stack
def test_long_pending_jobs_expire(client: TestClient, stack_settings: Settings) -> None:
    path, _ = _create(client, stack_settings, {"X-Job-Owner-Token": OWNER_A})
    job_id = path.rsplit("/", 1)[-1]
    minutes = stack_settings.pending_lifetime_min
    with psycopg.connect(stack_settings.dsn, autocommit=True) as conn:
        conn.execute("UPDATE epnml.jobs SET creation_time = now() - make_interval(mins => %s)"
                     " WHERE job_id = %s", (minutes + 1, job_id))
    _create(client, stack_settings, {"X-Job-Owner-Token": OWNER_B})  # the reaper runs
    assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


@pytest.mark.stack
def test_hostile_values_on_every_route(client: TestClient, stack_settings: Settings) -> None:
    uid = _uid(stack_settings)
    path, _ = _create(client, stack_settings, {"X-Job-Owner-Token": OWNER_A})
    owner = {"X-Job-Owner-Token": OWNER_A}
    huge = "9" * 400
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("get", "/datalink", {"params": {"ID": [uid] * 51}}),
        ("get", "/datalink", {"params": {"ID": "\u2603" * 10}}),
        ("get", f"/granules/{quote(huge)}/source", {}),
        ("get", "/granules/%E2%98%83/source", {}),
        ("get", "/preview", {"params": {"ID": uid, "threshold": "nan(1)"}}),
        ("get", "/preview", {"params": {"ID": uid, "threshold": "-0"}}),
        ("get", "/preview", {"params": {"ID": uid, "threshold": "1e999"}}),
        ("get", "/preview", {"params": {"ID": uid, "RESPONSEFORMAT": "\u00e9"}}),
        ("get", "/preview", {"params": {"ID": huge}}),
        ("get", "/preview", {}),
        ("post", "/preview", {"content": b"\xff\xfe", "headers": {
            "content-type": "application/x-www-form-urlencoded"}}),
        ("post", "/commit", {"data": {"ID": uid, "threshold": "-5"},
                             "headers": {"Authorization": f"Bearer {TOKEN}"}}),
        ("post", "/commit", {"data": {"ID": uid, "model_version": "\u2603"},
                             "headers": {"Authorization": f"Bearer {TOKEN}"}}),
        ("get", "/models/%E2%98%83/drift", {}),
        ("get", f"/models/icme/{'1' * 500}/card", {}),
        ("get", "/jobs", {"params": {"LAST": "-1"}, "headers": owner}),
        ("get", "/jobs", {"params": {"LAST": "1e99"}, "headers": owner}),
        ("get", "/jobs", {"params": {"LAST": "NaN"}, "headers": owner}),
        ("get", "/jobs", {"params": {"PHASE": "\u00fcnknown"}, "headers": owner}),
        ("get", "/jobs", {"headers": {"X-Job-Owner-Token": ("\u00e9" * 20).encode()}}),
        ("get", "/jobs", {"headers": {"X-Job-Owner-Token": "short"}}),
        ("get", "/jobs/" + "9" * 5000, {"headers": owner}),
        ("get", "/models/icme/%E2%98%83/card", {}),
        ("post", "/jobs", {"data": {"ID": uid, "THRESHOLD": "NaN(2)"}, "headers": owner}),
        ("post", "/jobs", {"data": {"ID": uid, "THRESHOLD": "-1"}, "headers": owner}),
        ("post", "/jobs", {"data": {"ID": uid, "COMMIT": "maybe"}, "headers": owner}),
        ("post", "/jobs", {"data": {"PIPELINE": "nope"}, "headers": owner}),
        ("post", "/jobs", {"data": {"ID": huge}, "headers": owner}),
        ("post", "/jobs", {"content": b'{"ID": 1}', "headers": {
            **owner, "content-type": "application/json"}}),
        ("get", "/jobs/" + "a" * 41, {"headers": owner}),
        ("get", "/jobs/ABCDEFGH1", {"headers": owner}),
        ("post", f"{path}/executionduration", {"data": {"EXECUTIONDURATION": "-5"},
                                               "headers": owner}),
        ("post", f"{path}/executionduration", {"data": {"EXECUTIONDURATION": "1e99"},
                                               "headers": owner}),
        ("post", f"{path}/destruction", {"data": {"DESTRUCTION": "\u2603"}, "headers": owner}),
        ("post", f"{path}/destruction", {"data": {"DESTRUCTION": "99999-01-01"},
                                         "headers": owner}),
        ("post", f"{path}/phase", {"data": {"PHASE": "SUSPEND"}, "headers": owner}),
        ("post", f"{path}/parameters", {"data": {"THRESHOLD": "inf"}, "headers": owner}),
        ("post", f"{path}/parameters", {"data": {"MODEL_VERSION": "../../x"},
                                        "headers": owner}),
        ("post", path, {"data": {"ACTION": "EXPLODE"}, "headers": owner}),
    ]
    for method, url, kwargs in attempts:
        response = getattr(client, method)(url, follow_redirects=False, **kwargs)
        assert 400 <= response.status_code < 500, (method, url, kwargs, response.text)
        assert response.json()["detail"], (method, url)
    phase = client.get(f"{path}/phase", headers=owner)
    assert phase.text == "PENDING", (phase.status_code, phase.text)
