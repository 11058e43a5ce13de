"""Every spec parameter over HTTP (issue #12): /preview, /commit, UWS jobs and DataLink #proc
read epnml.ingest.spec, validate with its validate_params, and advertise its real defaults.

A migrated database of its own (``<EPNML_TEST_DB>_paramshttp``) with one ingested ICME
granule (simulated solar wind); no DaCHS: the app runs in-process (TestClient).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from epnml.config import Settings
from epnml.ingest.runner import run_pipeline
from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv
from epnml.ingest.spec import SPECS, defaults
from tests.conftest import ICME_VERSION, empty_store_settings, migrated_database

TOKEN = "test-token-params-3c1d"


@dataclass(frozen=True)
class Store:
    settings: Settings
    uid: str
    wind: Path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    dsn = migrated_database("paramshttp")
    tmp = tmp_path_factory.mktemp("paramshttp")
    settings = replace(empty_store_settings(dsn, tmp, "http://localhost:8211"),
                       api_token=TOKEN, jobs_dir=tmp / "jobs", job_worker=0,
                       server_url="http://127.0.0.1:9", preview_memory_mb=0)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM epnml.jobs")
    frame, _ = simulate_solar_wind("2021-03-01", days=5, seed=3, n_icmes=1)
    wind = write_csv(frame, tmp / "wind_simulated_20210301.csv")
    summary = run_pipeline("icme", [wind], mode="ingest", settings=settings, progress=False,
                           model_version=ICME_VERSION)
    assert summary.n_failed == 0 and summary.n_rows == 1
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT granule_uid FROM epnml.events").fetchone()
    assert row is not None
    return Store(settings, str(row[0]), wind)


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[TestClient]:
    from epnml.api import create_app

    with TestClient(create_app(store.settings), headers={"Accept": "application/json"}) as c:
        yield c


def _all(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.dsn) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def _state(settings: Settings) -> dict[str, Any]:
    return {
        "versions": _all(settings, "SELECT model_name, model_version FROM epnml.model_versions"
                                   " ORDER BY 2"),
        "runs": _all(settings, "SELECT count(*) FROM epnml.runs"),
        "jobs": _all(settings, "SELECT count(*) FROM epnml.jobs"),
        "events": _all(settings, "SELECT count(*) FROM epnml.events"),
    }


AUTH = {"Authorization": f"Bearer {TOKEN}"}
BAD = [
    ({"threshold": "1.5"}, "icme: threshold must be in (0, 1), got 1.5"),
    ({"MIN_DURATION_H": "1000"}, "icme: min_duration_h must be in [0, 240], got 1000"),
    ({"speed": "1"}, "icme: unknown parameter 'speed' (known: threshold, min_duration_h)"),
    ({"target": "Mars"}, "icme: unknown parameter 'target' (known: threshold, min_duration_h)"),
    ({"min_duration_h": "abc"}, "icme: min_duration_h must be a number in [0, 240], got 'abc'"),
]


@pytest.mark.parametrize(("params", "message"), BAD)
@pytest.mark.parametrize("endpoint", ["get_preview", "post_preview", "upload", "commit",
                                      "jobs"])
def test_bad_parameters_are_one_line_4xx_and_register_nothing(
        client: TestClient, store: Store, endpoint: str, params: dict[str, str],
        message: str) -> None:
    before = _state(store.settings)
    if endpoint == "get_preview":
        response = client.get("/preview", params={"ID": store.uid, **params})
    elif endpoint == "post_preview":
        response = client.post("/preview", data={"ID": store.uid, **params})
    elif endpoint == "upload":
        response = client.post("/preview/icme", params=params, files=[
            ("file", (store.wind.name, store.wind.read_bytes(), "text/csv"))])
    elif endpoint == "commit":
        response = client.post("/commit", data={"ID": store.uid, **params}, headers=AUTH)
    else:
        response = client.post("/jobs", data={"ID": store.uid, **params},
                               follow_redirects=False)
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": message}
    assert _state(store.settings) == before


def test_a_parameter_given_twice_is_refused(client: TestClient, store: Store) -> None:
    response = client.get(f"/preview?ID={store.uid}&threshold=0.5&THRESHOLD=0.7")
    assert response.status_code == 422
    assert response.json() == {"detail": "parameter threshold given more than once"}


def _events(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What the model found (run ids and dates differ per run)."""
    return [(r["granule_uid"], r["time_min"], r["time_max"], r["ml_score"])
            for r in body["rows"]]


def test_a_non_threshold_parameter_reaches_the_stage(client: TestClient,
                                                     store: Store) -> None:
    """min_duration_h (an ICME post-processing parameter) over HTTP changes the rows and
    derives a version; its default (2 h) sent explicitly derives none."""
    base = client.get("/preview", params={"ID": store.uid, "RESPONSEFORMAT": "json"}).json()
    assert (base["model_version"], base["n_rows"]) == ("1.0.0", 1)
    same = client.get("/preview", params={"ID": store.uid, "min_duration_h": "2",
                                          "RESPONSEFORMAT": "json"}).json()
    assert same["model_version"] == "1.0.0" and _events(same) == _events(base)
    long = client.post("/preview", data={"ID": store.uid, "MIN_DURATION_H": "240",
                                         "RESPONSEFORMAT": "json"})
    assert long.status_code == 200, long.text
    assert long.json()["model_version"] == "1.0.0+min_duration_h-240"
    assert long.json()["n_rows"] == 0  # no ICME of the simulation lasts 240 h
    upload = client.post("/preview/icme", params={"model_version": ICME_VERSION,
                                                  "Min_Duration_H": "240",
                                                  "RESPONSEFORMAT": "json"},
                         files=[("file", (store.wind.name, store.wind.read_bytes(),
                                          "text/csv"))])
    assert upload.status_code == 200, upload.text
    assert (upload.json()["model_version"], upload.json()["n_rows"]) == \
        ("1.0.0+min_duration_h-240", 0)


def test_uws_job_carries_every_parameter(client: TestClient, store: Store) -> None:
    from epnml.api.uws import store as uws
    from epnml.api.uws.worker import execute_job
    from epnml.db import connect

    created = client.post("/jobs", data={"ID": store.uid, "MIN_DURATION_H": "240"},
                          follow_redirects=False)
    assert created.status_code == 303, created.text
    job_id = created.headers["location"].rsplit("/", 1)[1]
    owner = {"X-Job-Owner-Token": created.headers["X-Job-Owner-Token"]}
    changed = client.post(f"/jobs/{job_id}/parameters", data={"threshold": "0.7"},
                          headers=owner, follow_redirects=False)
    assert changed.status_code == 303, changed.text
    refused = client.post(f"/jobs/{job_id}/parameters", data={"threshold": "7"},
                          headers=owner, follow_redirects=False)
    assert refused.status_code == 422
    assert refused.json() == {"detail": "icme: threshold must be in (0, 1), got 7"}
    xml = client.get(f"/jobs/{job_id}/parameters", headers=owner).text
    assert '<uws:parameter id="MIN_DURATION_H">240.0</uws:parameter>' in xml
    assert '<uws:parameter id="THRESHOLD">0.7</uws:parameter>' in xml
    with connect(store.settings) as conn:
        job = uws.get_job(conn, job_id)
        assert job.model_params() == {"threshold": 0.7, "min_duration_h": 240.0}
        # run it here, as the job worker would (this app runs none)
        conn.execute("UPDATE epnml.jobs SET phase = 'EXECUTING' WHERE job_id = %s", (job_id,))
        conn.commit()
        phase, error, result, n_rows = execute_job(conn, store.settings, job)
    assert (phase, error, n_rows) == ("COMPLETED", None, 0)
    assert result["model_versions"] == ["1.0.0+min_duration_h-240_threshold-0.7"]
    client.delete(f"/jobs/{job_id}", headers=owner)


def test_datalink_proc_advertises_the_spec(client: TestClient, store: Store) -> None:
    pyvo = pytest.importorskip("pyvo")
    from astropy.io.votable import parse

    response = client.get("/datalink", params={"ID": store.uid})
    assert response.status_code == 200
    links = pyvo.dal.adhoc.DatalinkResults(parse(io.BytesIO(response.content)),
                                           url="http://test")
    (proc,) = [r for r in links if r.semantics == "#proc"]
    params = {p.name: p for p in proc.input_params}
    assert list(params) == ["ID", "model_version", *SPECS["icme"].params.model_fields,
                            "RESPONSEFORMAT"]
    assert {n: float(params[n].value) for n in SPECS["icme"].params.model_fields} == \
        defaults("icme", "1.0.0") == {"threshold": 0.6, "min_duration_h": 2.0}
    assert params["threshold"].datatype == params["min_duration_h"].datatype == "double"
    values = params["min_duration_h"].values
    assert (float(values.min), values.min_inclusive, float(values.max), values.max_inclusive) \
        == (0.0, True, 240.0, True)
    values = params["threshold"].values
    assert (values.min_inclusive, values.max_inclusive) == (False, False)


def test_commit_with_a_non_threshold_parameter_registers_its_version(
        client: TestClient, store: Store) -> None:
    """Last in this module: it writes rows."""
    response = client.post("/commit", data={"ID": store.uid, "min_duration_h": "1.5"},
                           headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == "1.0.0+min_duration_h-1.5"
    assert _all(store.settings, "SELECT model_version, card->'params' FROM"
                                " epnml.model_versions ORDER BY 1") == \
        [("1.0.0", None), ("1.0.0+min_duration_h-1.5", {"min_duration_h": 1.5})]
    # the new row's #proc presets its own min_duration_h, the default threshold, and says so
    pyvo = pytest.importorskip("pyvo")
    from astropy.io.votable import parse

    (uid,) = _all(store.settings, "SELECT granule_uid FROM epnml.events"
                                  " WHERE superseded_at IS NULL")
    links = pyvo.dal.adhoc.DatalinkResults(parse(io.BytesIO(
        client.get("/datalink", params={"ID": uid[0]}).content)), url="http://test")
    (proc,) = [r for r in links if r.semantics == "#proc"]
    params = {p.name: p for p in proc.input_params}
    assert (float(params["min_duration_h"].value), float(params["threshold"].value)) == \
        (1.5, 0.6)
    assert "this row's value; the model's default is 2.0" in \
        str(params["min_duration_h"].description)
