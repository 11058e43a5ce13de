"""The HTTP service in-process (issue #6): DataLink, preview, validation, tokens, UWS.

Runs ``create_app`` on the test database with the rows of the icme, crossings and pits ingests;
nothing here commits rows (tests/test_api_e2e.py does, on a granule of its own).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from epnml.api.auth import owner_tag
from epnml.config import Settings, load_settings
from tests.conftest import ICME_VERSION, PITS_VERSION, Ingest

pyvo = pytest.importorskip("pyvo")
from fastapi.testclient import TestClient  # noqa: E402

pytestmark = pytest.mark.stack

TOKEN = "test-token-6f1c"
TABLES = ("events", "crossings", "landforms", "units")
INJECTIONS = [
    "x' OR '1'='1",
    "1; DROP TABLE epnml.events; --",
    "../../../../etc/passwd",
    "/etc/passwd",
    "<script>alert(1)</script>",
    "icme_x\u0000y",
    "a" * 300,
    "$(rm -rf /)",
    "%27%20OR%201=1",
]


@pytest.fixture(scope="module")
def settings(ingested_icme: Ingest, ingested_crossings: Ingest, ingested_pits: Ingest,
             tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = load_settings()
    with psycopg.connect(base.dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM epnml.jobs")  # the test database is disposable
    return replace(base, api_token=TOKEN, jobs_dir=tmp_path_factory.mktemp("jobs"),
                   max_upload_mb=1, max_queued_jobs=3, job_worker=0)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    from epnml.api import create_app

    with TestClient(create_app(settings), headers={"Accept": "application/json"}) as c:
        yield c


def _one(settings: Settings, sql: str, *args: Any) -> Any:
    with psycopg.connect(settings.dsn) as conn:
        row = conn.execute(sql, args).fetchone()
    return None if row is None else row[0]


#: the pipeline whose default-parameter rows each table's tests use (other tests of the
#: session may add rows of other pipelines or derived versions to the same tables).
MODELS = {"events": "icme", "crossings": "crossings", "landforms": "pits", "units": "units"}


def _version(table: str) -> str:
    """The model version of the rows ``_uid`` picks (the stack ingests pits' default)."""
    return PITS_VERSION if MODELS[table] == "pits" else "1.0.0"


def _uid(settings: Settings, table: str) -> str:
    version = _version(table)
    uid = _one(settings, f"SELECT granule_uid FROM epnml.{table} WHERE superseded_at IS NULL"
                         " AND ml_model_name = %s AND ml_model_version = %s"
                         " ORDER BY granule_uid LIMIT 1", MODELS[table], version)
    assert uid is not None, f"no {MODELS[table]} row in epnml.{table}"
    return str(uid)


def _counts(settings: Settings) -> dict[str, int]:
    counts = {t: int(_one(settings, f"SELECT count(*) FROM epnml.{t}")) for t in TABLES}
    counts["runs"] = int(_one(settings, "SELECT count(*) FROM epnml.runs"))
    return counts


def _path(url: str, settings: Settings) -> str:
    return url.replace(settings.api_url.rstrip("/"), "")


def test_health_and_allow_lists(client: TestClient) -> None:
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["database"] is True
    assert health.json()["dachs"] is True  # the stack's DaCHS answers at server_url
    pipelines = {p["name"]: p for p in client.get("/pipelines").json()}
    assert {"icme", "crossings", "units", "pits"} <= set(pipelines)
    assert pipelines["icme"]["versions"] and pipelines["minerals"]["predict_only"]
    models = {m["pipeline"]: m for m in client.get("/models").json()}
    assert any(r["model_version"] == "1.0.0" for r in models["icme"]["registered"])
    card = client.get("/models/icme/1.0.0/card")
    assert card.status_code == 200 and card.json()["model_version"] == "1.0.0"
    assert client.get("/models/icme/9.9.9/card").status_code == 404
    assert "/preview" in client.get("/openapi.json").json()["paths"]


def test_requests_share_the_service_connection_pool(client: TestClient,
                                                   settings: Settings) -> None:
    """Requests borrow connections from the service's pool (a new backend per request
    re-plans lookups over every partition), and hand them back."""
    pool = client.app.state.db_pool  # type: ignore[attr-defined]
    assert pool is not None
    uid = _uid(settings, "events")
    before = pool.get_stats()
    for _ in range(3):
        assert client.get("/datalink", params={"ID": uid}).status_code == 200
    after = pool.get_stats()
    assert after.get("requests_num", 0) - before.get("requests_num", 0) >= 3
    assert after["pool_size"] <= 16 and after["pool_available"] == after["pool_size"]


def test_drift_indicator(client: TestClient, settings: Settings) -> None:
    drift = client.get("/models/crossings/drift")
    assert drift.status_code == 200
    rows = drift.json()
    assert rows and all(r["model_name"] == "crossings" for r in rows)
    n = sum(r["n_rows"] for r in rows)
    assert n == int(_one(settings, "SELECT count(*) FROM epnml.crossings"))
    for r in rows:
        assert 0 <= r["score_p10"] <= r["score_p50"] <= r["score_p90"] <= 1
    assert client.get("/models/nosuchmodel/drift").status_code == 404


def test_drift_is_served_through_tap(tap: Any, client: TestClient, settings: Settings) -> None:
    served = tap.search("SELECT model_name, model_version, n_rows, score_p50"
                        " FROM epnml_models.score_drift WHERE model_name = 'icme'").to_table()
    api = client.get("/models/icme/drift").json()
    # one row per model version and month of creation, current and superseded rows alike
    groups = int(_one(settings, "SELECT count(DISTINCT (ml_model_version,"
                                " date_trunc('month', creation_date))) FROM epnml.events"
                                " WHERE ml_model_name = 'icme'"))
    assert len(served) == len(api) == groups > 0
    assert sum(int(n) for n in served["n_rows"]) == sum(r["n_rows"] for r in api) == int(
        _one(settings, "SELECT count(*) FROM epnml.events WHERE ml_model_name = 'icme'"))


def test_datalink_document(client: TestClient, settings: Settings) -> None:
    from astropy.io.votable import parse
    from pyvo.dal.adhoc import DatalinkResults

    uid = _uid(settings, "events")
    response = client.get("/datalink", params={"ID": uid})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-votable+xml;content=datalink"
    links = DatalinkResults(parse(io.BytesIO(response.content)), url="http://test")
    by_sem = {rec.semantics: rec for rec in links}
    assert {"#progenitor", "#preview", "#documentation", "#proc"} <= set(by_sem)
    assert all(str(rec["ID"]) == uid for rec in links)
    # the source file is served as it was ingested
    source = client.get(_path(by_sem["#progenitor"].access_url, settings))
    assert source.status_code == 200
    files = str(_one(settings, "SELECT files FROM epnml.granule_runs g JOIN epnml.events e"
                               " ON e.ml_run_id = g.run_id AND e.obs_id = g.granule_id"
                               " WHERE e.granule_uid = %s", uid))
    assert source.content == Path(files).read_bytes()
    card = client.get(_path(by_sem["#documentation"].access_url, settings))
    assert card.status_code == 200 and card.json()["model_name"] == "icme"
    # the #proc service descriptor: ID from the row, model versions, threshold, format
    proc = by_sem["#proc"]
    params = {p.name: p for p in proc.input_params}
    assert params["ID"].ref == "ID"
    assert "1.0.0" in params["model_version"].values.options[0]
    assert params["threshold"].datatype == "double"
    assert links.get_adhocservice_by_id(proc.service_def) is not None


def test_datalink_of_a_multi_file_granule_is_a_zip(client: TestClient,
                                                   settings: Settings) -> None:
    import zipfile

    from astropy.io.votable import parse
    from pyvo.dal.adhoc import DatalinkResults

    uid = _uid(settings, "crossings")
    links = DatalinkResults(parse(io.BytesIO(client.get("/datalink", params={"ID": uid}).content)),
                            url="http://test")
    progenitor = next(rec for rec in links if rec.semantics == "#progenitor")
    assert progenitor.content_type == "application/zip"
    archive = client.get(_path(progenitor.access_url, settings))
    names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    assert {Path(n).suffix.upper() for n in names} == {".LBL", ".TAB"}


def test_datalink_unknown_and_malformed_ids(client: TestClient) -> None:
    from astropy.io.votable import parse

    unknown = client.get("/datalink", params={"ID": "icme_no_such_row_v1.0.0"})
    assert unknown.status_code == 200  # DataLink: an error row, not an HTTP error
    table = parse(io.BytesIO(unknown.content)).get_first_table().to_table()
    assert len(table) == 1 and "NotFoundFault" in str(table["error_message"][0])
    for bad in INJECTIONS[:5]:
        response = client.get("/datalink", params={"ID": bad})
        assert response.status_code == 422, bad
        assert "granule_uid" in response.json()["detail"]


@pytest.mark.parametrize("table", ["events", "crossings", "landforms"])
def test_preview_returns_rows_and_writes_nothing(client: TestClient, settings: Settings,
                                                table: str) -> None:
    from astropy.io.votable import parse

    uid = _uid(settings, table)
    obs_id = _one(settings, f"SELECT obs_id FROM epnml.{table} WHERE granule_uid = %s", uid)
    # the image of a routed ingest has rows of several models (pits and ice) under one obs_id
    n_current = int(_one(settings, f"SELECT count(*) FROM epnml.{table} WHERE obs_id = %s"
                                   " AND ml_model_name = %s AND superseded_at IS NULL",
                         obs_id, MODELS[table]))
    before = _counts(settings)
    n_log = int(_one(settings, "SELECT count(*) FROM epnml.inference_log"))
    as_json = client.get("/preview", params={"ID": uid, "RESPONSEFORMAT": "json"})
    assert as_json.status_code == 200, as_json.text
    body = as_json.json()
    # the same model and parameters on the same source reproduce the served rows
    assert body["n_rows"] == len(body["rows"]) == n_current
    assert body["model_version"] == _version(table)
    assert uid in {r["granule_uid"] for r in body["rows"]}
    assert {"granule_uid", "obs_id", "ml_score", "ml_model_version"} <= set(body["rows"][0])
    as_vot = client.post("/preview", data={"ID": uid})
    assert as_vot.status_code == 200
    assert as_vot.headers["content-type"].startswith("application/x-votable+xml")
    rows = parse(io.BytesIO(as_vot.content)).get_first_table().to_table()
    assert len(rows) == n_current and "granule_uid" in rows.colnames
    other = client.get("/preview", params={"ID": uid, "threshold": 0.9,
                                           "RESPONSEFORMAT": "json"})
    assert other.status_code == 200
    assert other.json()["model_version"] == f"{_version(table)}+threshold-0.9"
    assert _counts(settings) == before  # nothing written: no rows, no runs
    logged = int(_one(settings, "SELECT count(*) FROM epnml.inference_log"))
    assert logged == n_log + 3  # json, VOTable and threshold previews: one line each
    assert _one(settings, "SELECT outcome FROM epnml.inference_log WHERE endpoint = 'preview'"
                          " AND granule_id = %s ORDER BY id DESC LIMIT 1", uid) == "ok"


def test_preview_of_an_upload(client: TestClient, ingested_icme: Ingest,
                              settings: Settings) -> None:
    source = ingested_icme.files["good"]
    before = _counts(settings)
    response = client.post(
        "/preview/icme", params={"RESPONSEFORMAT": "json", "model_version": ICME_VERSION},
        files=[("file", ("../../etc/wind_simulated_20210301.csv", source.read_bytes(),
                         "text/csv"))])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ID"] is None and body["pipeline"] == "icme"
    assert body["n_rows"] == ingested_icme.n_rows()  # the same model on the same file
    assert _counts(settings) == before
    # the upload directory is gone afterwards; no client path was ever used
    assert not any((settings.jobs_dir / "uploads").glob("*/*"))


def test_oversized_upload_is_refused(client: TestClient) -> None:
    big = b"time,bx\n" + b"2021-01-01 00:00:00,1\n" * 60000  # > 1 MB (max_upload_mb=1)
    response = client.post("/preview/icme", files=[("file", ("big.csv", big, "text/csv"))])
    assert response.status_code == 413
    assert "max_upload_mb" in response.json()["detail"]


@pytest.mark.parametrize("params, fragment", [
    ({"model_version": "9.9.9"}, "model_version not allowed"),
    ({"model_version": "1.0.0+threshold-0.7"}, "model_version not allowed"),
    ({"threshold": 0}, "threshold must be in (0, 1)"),
    ({"threshold": 1}, "threshold must be in (0, 1)"),
    ({"threshold": 1.5}, "threshold must be in (0, 1)"),
    ({"threshold": -0.2}, "threshold must be in (0, 1)"),
    ({"threshold": "inf"}, "threshold must be in (0, 1)"),
    ({"threshold": "abc"}, "threshold"),
    ({"RESPONSEFORMAT": "csv"}, "RESPONSEFORMAT"),
])
def test_bad_preview_parameters(client: TestClient, settings: Settings,
                                params: dict[str, Any], fragment: str) -> None:
    response = client.get("/preview", params={"ID": _uid(settings, "events"), **params})
    assert response.status_code == 422
    assert fragment in str(response.json()["detail"])


def test_unknown_pipeline_and_predict_only_commit(client: TestClient) -> None:
    response = client.post("/preview/nope", files=[("file", ("a.csv", b"x", "text/csv"))])
    assert response.status_code == 422 and "unknown pipeline" in response.json()["detail"]
    job = client.post("/jobs", data={"PIPELINE": "nope"}, follow_redirects=False)
    assert job.status_code == 422 and "unknown pipeline" in job.json()["detail"]
    committing = client.post("/jobs", data={"PIPELINE": "minerals", "COMMIT": "true"},
                             headers={"Authorization": f"Bearer {TOKEN}"},
                             follow_redirects=False)
    assert committing.status_code == 422 and "predict-only" in committing.json()["detail"]


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_attempts_in_every_parameter(client: TestClient, settings: Settings,
                                               value: str) -> None:
    before = _counts(settings)
    uid = _uid(settings, "events")
    attempts = [
        client.get("/preview", params={"ID": value}),
        client.get("/preview", params={"ID": uid, "model_version": value}),
        client.get("/preview", params={"ID": uid, "threshold": value}),
        client.get("/preview", params={"ID": uid, "RESPONSEFORMAT": value}),
        client.get("/datalink", params={"ID": value}),
        client.get(f"/granules/{quote(value, safe='')}/source"),
        client.post("/preview", data={"ID": value}),
        client.post(f"/preview/{quote(value, safe='')}",
                    files=[("file", ("a.csv", b"x", "text/csv"))]),
        client.post("/preview/icme", params={"model_version": value},
                    files=[("file", (value, b"x", "text/csv"))]),
        client.post("/commit", data={"ID": value}, headers={"Authorization": f"Bearer {TOKEN}"}),
        client.post("/commit", data={"ID": uid, "model_version": value},
                    headers={"Authorization": f"Bearer {TOKEN}"}),
        client.post("/jobs", data={"ID": value}),
        client.post("/jobs", data={"PIPELINE": value}),
        client.post("/jobs", data={"ID": uid, "MODEL_VERSION": value}),
        client.post("/jobs", data={"ID": uid, "THRESHOLD": value}),
        client.post("/jobs", data={"ID": uid, "PHASE": value}),
        client.get(f"/jobs/{quote(value, safe='')}"),
        client.get("/jobs", params={"PHASE": value}),
        client.get(f"/models/{quote(value, safe='')}/drift"),
        client.get(f"/models/icme/{quote(value, safe='')}/card"),
    ]
    for response in attempts:
        assert 400 <= response.status_code < 500, (response.request.url, response.text)
        if response.headers.get("content-type", "").startswith("application/json"):
            assert response.json()["detail"]
    assert _counts(settings) == before
    assert _one(settings, "SELECT count(*) FROM epnml.jobs") == 0


def test_commit_needs_the_token(client: TestClient, settings: Settings) -> None:
    from epnml.api import create_app

    uid = _uid(settings, "events")
    before = _counts(settings)
    missing = client.post("/commit", data={"ID": uid, "threshold": 0.4})
    assert missing.status_code == 401 and "Bearer" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/commit", data={"ID": uid, "threshold": 0.4},
                        headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 403 and wrong.json()["detail"] == "wrong token"
    job = client.post("/jobs", data={"ID": uid, "COMMIT": "true"}, follow_redirects=False)
    assert job.status_code == 401
    with TestClient(create_app(replace(settings, api_token="")),
                    headers={"Accept": "application/json"}) as closed:
        refused = closed.post("/commit", data={"ID": uid},
                              headers={"Authorization": f"Bearer {TOKEN}"})
        assert refused.status_code == 403 and "EPNML_API_TOKEN" in refused.json()["detail"]
    assert _counts(settings) == before
    # never the token itself in the log, only a tag of it
    clients = [str(r) for r in _rows(settings, "SELECT client FROM epnml.inference_log")]
    assert clients and not any(TOKEN in c or "not-the-token" in c for c in clients)


def _rows(settings: Settings, sql: str) -> list[Any]:
    with psycopg.connect(settings.dsn) as conn:
        return [r[0] for r in conn.execute(sql).fetchall()]


def _wait(client: TestClient, job_path: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    phase = ""
    while time.monotonic() < deadline:
        phase = client.get(f"{job_path}/phase").text
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            return phase
        time.sleep(0.3)
    return phase


def test_uws_lifecycle(settings: Settings) -> None:
    from astropy.io.votable import parse
    from pyvo.io.uws import parse_job, parse_job_list

    from epnml.api import create_app

    uids = _rows(settings, "SELECT granule_uid FROM epnml.crossings WHERE superseded_at IS NULL"
                           " ORDER BY granule_uid")
    assert len(uids) > 3
    before = _counts(settings)
    job_log = "SELECT count(*) FROM epnml.inference_log WHERE endpoint = 'job'" \
        " AND pipeline = 'crossings'"
    n_job_log = int(_one(settings, job_log))
    with TestClient(create_app(replace(settings, job_worker=1)),
                    headers={"Accept": "application/json"}) as client:
        created = client.post("/jobs", data={"ID": uids[:3], "THRESHOLD": "0.5"},
                              follow_redirects=False)
        assert created.status_code == 303
        path = _path(created.headers["location"], settings)
        assert client.get(path).status_code == 404  # jobs are their owner's
        owner_token = created.headers["x-job-owner-token"]
        client.headers["X-Job-Owner-Token"] = owner_token
        job = parse_job(io.BytesIO(client.get(path).content))
        owner = owner_tag(owner_token)
        assert job.phase == "PENDING" and job.ownerid == owner
        params = {p.id_: p.content for p in job.parameters}
        assert params["PIPELINE"] == "crossings" and params["THRESHOLD"] == "0.5"
        # UWS 1.1 sub-resources of a PENDING job
        assert client.post(f"{path}/parameters", data={"THRESHOLD": "0.6"},
                           follow_redirects=False).status_code == 303
        assert client.post(f"{path}/executionduration", data={"EXECUTIONDURATION": "600"},
                           follow_redirects=False).status_code == 303
        assert client.get(f"{path}/executionduration").text == "600"
        assert client.post(f"{path}/destruction", data={"DESTRUCTION": "2099-01-01T00:00:00Z"},
                           follow_redirects=False).status_code == 422  # > 30 days ahead
        assert client.get(f"{path}/quote").status_code == 200
        assert client.get(f"{path}/owner").text == owner
        # run it
        assert client.post(f"{path}/phase", data={"PHASE": "RUN"},
                           follow_redirects=False).status_code == 303
        assert _wait(client, path) == "COMPLETED", client.get(path).text
        job = parse_job(io.BytesIO(client.get(path).content))
        assert job.phase == "COMPLETED" and job.starttime is not None and job.endtime
        assert {p.id_: p.content for p in job.parameters}["THRESHOLD"] == "0.6"
        hrefs = {r.id_: r.href for r in job.results}
        rows = parse(io.BytesIO(client.get(_path(hrefs["rows"], settings)).content))
        table = rows.get_first_table().to_table()
        assert set(str(v) for v in table["ml_model_version"]) == {"1.0.0+threshold-0.6"}
        summary = client.get(_path(hrefs["summary"], settings)).json()
        assert summary["n_ok"] == 1 and summary["n_failed"] == 0  # 3 IDs, one orbit
        assert client.post(f"{path}/parameters", data={"THRESHOLD": "0.7"},
                           follow_redirects=False).status_code == 409
        listed = parse_job_list(io.BytesIO(client.get("/jobs").content))
        assert job.jobid in {j.jobid for j in listed}
        # abort a pending job, then delete both
        other = _path(client.post("/jobs", data={"ID": uids[0]},
                                  follow_redirects=False).headers["location"], settings)
        assert client.post(f"{other}/phase", data={"PHASE": "ABORT"},
                           follow_redirects=False).status_code == 303
        aborted = parse_job(io.BytesIO(client.get(other).content))
        assert aborted.phase == "ABORTED" and aborted.errorsummary is not None
        assert client.post(other, data={"ACTION": "DELETE"},
                           follow_redirects=False).status_code == 303
        assert client.delete(path, follow_redirects=False).status_code == 303
        assert client.get(path).status_code == 404 and client.get(other).status_code == 404
    assert _counts(settings) == before  # a preview job writes no rows
    assert int(_one(settings, job_log)) == n_job_log + 1  # the job that ran


def test_bounded_queue(client: TestClient, settings: Settings) -> None:
    uid = _uid(settings, "events")
    made = []
    owner = {"X-Job-Owner-Token": "bounded-queue-owner-0001"}
    for _ in range(settings.max_queued_jobs):
        response = client.post("/jobs", data={"ID": uid, "PHASE": "RUN"}, headers=owner,
                               follow_redirects=False)
        assert response.status_code == 303
        made.append(_path(response.headers["location"], settings))
    full = client.post("/jobs", data={"ID": uid, "PHASE": "RUN"}, headers=owner,
                       follow_redirects=False)
    assert full.status_code == 503 and "queue is full" in full.json()["detail"]
    assert full.headers["retry-after"]
    pending = client.post("/jobs", data={"ID": uid}, headers=owner, follow_redirects=False)
    assert pending.status_code == 303
    made.append(_path(pending.headers["location"], settings))
    assert client.post(f"{made[-1]}/phase", data={"PHASE": "RUN"}, headers=owner,
                       follow_redirects=False).status_code == 503
    for path in made:
        assert client.delete(path, headers=owner, follow_redirects=False).status_code == 303
    assert _one(settings, "SELECT count(*) FROM epnml.jobs") == 0
