"""HAPI 3.3 (/hapi) for the ICME event catalogue: the HAPI verifier's key checks (time
order, start inclusive / stop exclusive, parameter subsets and their order, the header,
error codes, the binary layout) on a migrated database with ICME rows ingested from
simulated solar wind (no DaCHS: the app runs in-process), and hapiclient reading it over
real HTTP.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from epnml.api.routes.hapi import DATASET, PARAMS, parse_time
from epnml.config import Settings
from epnml.ingest.runner import run_pipeline
from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv
from tests.conftest import ICME_VERSION, empty_store_settings, migrated_database

API_PORT = 8301
NAMES = ["Time", "stop_time", "duration", "score", "spacecraft", "simulated", "icmecat_id",
         "icmecat_overlap", "nguyen_id", "nguyen_overlap", "model_version", "granule_uid"]


@dataclass(frozen=True)
class Store:
    settings: Settings
    #: the current rows as the stream must write them: (start, stop, score, uid), by start
    events: list[tuple[str, str, float, str]]


def _iso(jd: float) -> str:
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        milliseconds=round((jd - 2440587.5) * 86400000.0))
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    dsn = migrated_database("hapi")
    tmp = tmp_path_factory.mktemp("hapi")
    settings = replace(empty_store_settings(dsn, tmp, f"http://127.0.0.1:{API_PORT}"),
                       jobs_dir=tmp / "jobs", job_worker=0, server_url="http://127.0.0.1:9",
                       preview_memory_mb=0, contact="hapi-test@example.org")
    winds = []
    for day, seed in (("2021-03-01", 3), ("2021-06-01", 5)):
        frame, _ = simulate_solar_wind(day, days=5, seed=seed, n_icmes=1)
        winds.append(write_csv(frame, tmp / f"wind_simulated_{day.replace('-', '')}.csv"))
    summary = run_pipeline("icme", winds, mode="ingest", settings=settings, progress=False,
                           model_version=ICME_VERSION)
    assert summary.n_failed == 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        # a superseded copy of one row, 40 days later: HAPI must never serve it
        conn.execute("CREATE TEMP TABLE old AS SELECT * FROM epnml.events LIMIT 1")
        conn.execute("UPDATE old SET granule_uid = granule_uid || '_old', superseded_at = now(),"
                     " time_min = time_min + 40, time_max = time_max + 40")
        conn.execute("INSERT INTO epnml.events SELECT * FROM old")
        rows = conn.execute(
            "SELECT time_min, time_max, ml_score, granule_uid FROM epnml.events "
            "WHERE superseded_at IS NULL ORDER BY time_min").fetchall()
    events = [(_iso(a), _iso(b), float(s), str(u)) for a, b, s, u in rows]
    assert len(events) >= 2, "the simulated winds should yield at least two events"
    return Store(settings, events)


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[TestClient]:
    from epnml.api import create_app

    with TestClient(create_app(store.settings)) as c:
        yield c


def _status(response: Any) -> tuple[int, int]:
    return response.status_code, response.json()["status"]["code"]


def _csv(text: str) -> list[list[str]]:
    return [line.split(",") for line in text.splitlines()]


def _all_range(client: TestClient) -> tuple[str, str]:
    info = client.get("/hapi/info", params={"dataset": DATASET}).json()
    return info["startDate"], info["stopDate"]


def test_capabilities_about_catalog(client: TestClient) -> None:
    caps = client.get("/hapi/capabilities")
    assert caps.headers["content-type"] == "application/json"
    assert caps.json() == {"HAPI": "3.3", "status": {"code": 1200, "message": "OK"},
                           "outputFormats": ["csv", "binary", "json"],
                           "catalogDepthOptions": ["dataset", "all"]}
    about = client.get("/hapi/about").json()
    assert (about["HAPI"], about["status"]["code"]) == ("3.3", 1200)
    assert about["id"] == "epnml.example.org/epnml"
    assert about["contact"] == "hapi-test@example.org"
    assert about["title"] == "epnml ML-detected heliophysics events"
    catalog = client.get("/hapi/catalog").json()
    # the events, and the simulated Wind series the pipeline read (tests/test_hapi_series.py)
    assert catalog["catalog"] == [
        {"id": DATASET, "title": "ICMEs detected by the epnml model"},
        {"id": "solarwind_wind_10min_simulated", "title": "Wind solar wind at 10min, as "
         "ingested by the epnml ICME pipeline (SIMULATED)"}]
    full = client.get("/hapi/catalog", params={"depth": "all"}).json()
    info = client.get("/hapi/info", params={"dataset": DATASET}).json()
    del info["HAPI"], info["status"]
    assert full["catalog"][0]["info"] == info


def test_info_metadata(client: TestClient, store: Store) -> None:
    info = client.get("/hapi/info", params={"dataset": DATASET}).json()
    assert info["status"] == {"code": 1200, "message": "OK"}
    assert [p["name"] for p in info["parameters"]] == NAMES
    time_param = info["parameters"][0]
    assert time_param == {"name": "Time", "type": "isotime", "units": "UTC", "fill": None,
                          "length": 24, "label": "Event start",
                          "description": "Start of the detected event (time_min)"}
    for p in info["parameters"]:
        assert set(p) >= {"name", "type", "units", "fill"}
        assert ("length" in p) == (p["type"] in ("isotime", "string"))
        assert p["units"] != ""
    assert "cadence" not in info
    assert info["timeStampLocation"] == "begin"
    first = store.events[0][0]
    last = store.events[-1][0]
    assert info["startDate"] == first[:10] + "T00:00:00.000Z"
    assert parse_time(info["stopDate"]) == parse_time(last[:10]) + timedelta(days=1)
    assert info["licenseURL"] == "https://creativecommons.org/licenses/by/4.0/"
    assert info["resourceID"] == "ivo://epnml.example.org/events/q/epn_core"
    assert info["datasetCitation"].startswith("epnml ICME event catalogue")
    assert f"icme {ICME_VERSION} (weights sha256 " in info["provenance"]
    assert "/datalink?ID=<granule_uid>" in info["provenance"]
    assert info["contact"] == "hapi-test@example.org"
    sub = client.get("/hapi/info", params={"dataset": DATASET,
                                           "parameters": "score,nguyen_id"}).json()
    assert [p["name"] for p in sub["parameters"]] == ["Time", "score", "nguyen_id"]
    # the deprecated 2.x name
    old = client.get("/hapi/info", params={"id": DATASET}).json()
    assert old == info


def test_data_csv_is_the_current_rows_in_time_order(client: TestClient, store: Store) -> None:
    start, stop = _all_range(client)
    response = client.get("/hapi/data", params={"dataset": DATASET, "start": start,
                                                "stop": stop})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = _csv(response.text)
    assert [(r[0], r[1], float(r[3]), r[11]) for r in rows] == store.events
    assert all(len(r) == len(NAMES) for r in rows)
    times = [r[0] for r in rows]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert not any(r[11].endswith("_old") for r in rows)
    for r in rows:  # duration = stop - start, in hours
        hours = (parse_time(r[1]) - parse_time(r[0])).total_seconds() / 3600
        assert abs(float(r[2]) - hours) < 1e-3
        assert r[5] == "1"  # simulated inputs say so
        assert r[10] == ICME_VERSION


def test_start_inclusive_stop_exclusive_and_concatenation(client: TestClient,
                                                          store: Store) -> None:
    start, stop = _all_range(client)
    second = store.events[1][0]
    q = {"dataset": DATASET, "parameters": "score"}
    before = _csv(client.get("/hapi/data", params={**q, "start": start, "stop": second}).text)
    after = _csv(client.get("/hapi/data", params={**q, "start": second, "stop": stop}).text)
    whole = _csv(client.get("/hapi/data", params={**q, "start": start, "stop": stop}).text)
    assert second not in [r[0] for r in before]
    assert after[0][0] == second
    assert before + after == whole
    assert len(whole) == len(store.events)
    one_ms = isoplus(second, 0.001)
    exact = _csv(client.get("/hapi/data", params={**q, "start": second, "stop": one_ms}).text)
    assert [r[0] for r in exact] == [second]


def isoplus(iso: str, seconds: float) -> str:
    when = parse_time(iso) + timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def test_time_forms_and_2x_names_give_the_same_stream(client: TestClient) -> None:
    start, stop = _all_range(client)
    day_start, day_stop = parse_time(start), parse_time(stop)
    forms = [
        (start, stop),
        (start[:10] + "Z", stop[:10] + "Z"),
        (start[:10], stop[:10]),
        (day_start.strftime("%Y-%jZ"), day_stop.strftime("%Y-%jT00:00Z")),
        (day_start.strftime("%Y-%m-%dT00"), day_stop.strftime("%Y-%m-%dT00:00:00.000000000Z")),
    ]
    bodies = {client.get("/hapi/data", params={"dataset": DATASET, "start": a,
                                               "stop": b}).text for a, b in forms}
    old = client.get("/hapi/data", params={"id": DATASET, "time.min": start,
                                           "time.max": stop}).text
    assert len(bodies) == 1 and old in bodies and old != ""


def test_parameter_subsets_and_header(client: TestClient, store: Store) -> None:
    start, stop = _all_range(client)
    q = {"dataset": DATASET, "start": start, "stop": stop}
    only_time = _csv(client.get("/hapi/data", params={**q, "parameters": "Time"}).text)
    assert only_time == [[e[0]] for e in store.events]
    sub = _csv(client.get("/hapi/data", params={**q, "parameters": "stop_time,score"}).text)
    assert [(r[0], r[1], float(r[2])) for r in sub] == [e[:3] for e in store.events]
    response = client.get("/hapi/data", params={**q, "parameters": "score,granule_uid",
                                                "include": "header"})
    lines = response.text.splitlines(keepends=True)
    head = [ln for ln in lines if ln.startswith("#")]
    body = lines[len(head):]
    assert head and not any(ln.startswith("#") for ln in body)
    header = json.loads("".join(ln[1:] for ln in head))
    assert header["format"] == "csv" and header["status"]["code"] == 1200
    assert [p["name"] for p in header["parameters"]] == ["Time", "score", "granule_uid"]
    info = client.get("/hapi/info", params={"dataset": DATASET,
                                            "parameters": "score,granule_uid"}).json()
    assert header["parameters"] == info["parameters"]
    assert [r.rstrip("\n").split(",")[2] for r in body] == [e[3] for e in store.events]


def test_binary_layout(client: TestClient, store: Store) -> None:
    start, stop = _all_range(client)
    q = {"dataset": DATASET, "start": start, "stop": stop}
    info = client.get("/hapi/info", params={"dataset": DATASET}).json()
    response = client.get("/hapi/data", params={**q, "format": "binary"})
    assert response.headers["content-type"] == "application/octet-stream"
    fmt = "<" + "".join({"isotime": f"{p.get('length')}s", "string": f"{p.get('length')}s",
                         "double": "d", "integer": "i"}[p["type"]]
                        for p in info["parameters"])
    size = struct.calcsize(fmt)
    assert len(response.content) == size * len(store.events)
    records = [struct.unpack_from(fmt, response.content, i * size)
               for i in range(len(store.events))]
    csv_rows = _csv(client.get("/hapi/data", params=q).text)
    for record, row in zip(records, csv_rows, strict=True):
        values = [v.rstrip(b"\0").decode() if isinstance(v, bytes) else v for v in record]
        assert values[0] == row[0] and len(record[0]) == 24
        assert values[2] == float(row[2]) and values[3] == float(row[3])
        assert values[5] == int(row[5])
        assert values[11] == row[11]
    # doubles little-endian: the score of the first record, byte for byte
    offset = struct.calcsize("<24s24sd")
    assert response.content[offset:offset + 8] == struct.pack("<d", store.events[0][2])
    headed = client.get("/hapi/data", params={**q, "format": "binary", "include": "header"})
    assert headed.content.endswith(response.content)
    head = headed.content[:-len(response.content)].decode()
    assert all(ln.startswith("#") for ln in head.splitlines())
    assert json.loads("".join(ln[1:] for ln in head.splitlines()))["format"] == "binary"


def test_json_format(client: TestClient, store: Store) -> None:
    start, stop = _all_range(client)
    body = client.get("/hapi/data", params={"dataset": DATASET, "start": start, "stop": stop,
                                            "format": "json", "parameters": "score"}).json()
    assert body["format"] == "json" and body["status"]["code"] == 1200
    assert body["data"] == [[e[0], e[2]] for e in store.events]


def test_no_data_is_1201(client: TestClient, store: Store) -> None:
    first = store.events[0][0]
    start = first[:10] + "T00:00:00.000Z"
    q = {"dataset": DATASET, "start": start, "stop": first}
    empty = client.get("/hapi/data", params=q)
    assert (empty.status_code, empty.content) == (200, b"")
    headed = client.get("/hapi/data", params={**q, "include": "header"}).text
    header = json.loads("".join(ln[1:] for ln in headed.splitlines()))
    assert header["status"] == {"code": 1201, "message": "OK - no data for time range"}
    as_json = client.get("/hapi/data", params={**q, "format": "json"}).json()
    assert (as_json["status"]["code"], as_json["data"]) == (1201, [])


ERRORS = [
    ({"dataset": "nope"}, 404, 1406),
    ({"stop": "x"}, 400, 1403),
    ({"start": "2021-13-01"}, 400, 1402),
    ({"start": "2021-03-02T25"}, 400, 1402),
    ({"start": "2021-06-01", "stop": "2021-06-01T00Z"}, 400, 1404),
    ({"start": "2021-06-02", "stop": "2021-06-01"}, 400, 1404),
    ({"start": "1990-01-01", "stop": "1990-02-01"}, 400, 1405),
    ({"parameters": "speed"}, 404, 1407),
    ({"parameters": "nguyen_id,score"}, 400, 1411),
    ({"parameters": "score,score"}, 400, 1411),
    ({"format": "cdf"}, 400, 1409),
    ({"include": "all"}, 400, 1410),
    ({"Dataset": DATASET}, 400, 1401),
    ({"foo": "1"}, 400, 1401),
]


@pytest.mark.parametrize(("change", "http", "code"), ERRORS)
def test_data_errors(client: TestClient, change: dict[str, str], http: int,
                     code: int) -> None:
    q = {"dataset": DATASET, "start": "2021-01-01", "stop": "2022-01-01", **change}
    response = client.get("/hapi/data", params=q)
    assert response.headers["content-type"] == "application/json"
    assert _status(response) == (http, code)
    assert response.json()["HAPI"] == "3.3"


def test_other_errors(client: TestClient) -> None:
    assert _status(client.get("/hapi/info", params={"dataset": "nope"})) == (404, 1406)
    assert _status(client.get("/hapi/info", params={"dataset": DATASET,
                                                    "parameters": "score,Time"})) == (400, 1411)
    assert _status(client.get("/hapi/info")) == (400, 1400)
    assert _status(client.get("/hapi/data", params={"dataset": DATASET,
                                                    "start": "2021-01-01"})) == (400, 1400)
    assert _status(client.get("/hapi/catalog", params={"depth": "x"})) == (400, 1413)
    assert _status(client.get("/hapi/capabilities", params={"x": "1"})) == (400, 1401)
    assert _status(client.get("/hapi/info", params={"dataset": DATASET, "id": DATASET})) \
        == (400, 1400)
    assert _status(client.get("/hapi/nothing")) == (400, 1400)
    message = client.get("/hapi/data", params={"dataset": DATASET, "start": "1990-01-01",
                                               "stop": "1990-02-01"}).json()["status"]
    assert message["message"].startswith("Bad request - start < startDate")


def test_params_declare_one_time_first() -> None:
    assert PARAMS[0].type == "isotime" and PARAMS[0].fill is None
    assert [p.name for p in PARAMS] == NAMES


def test_parse_time() -> None:
    assert parse_time("2021-060") == datetime(2021, 3, 1, tzinfo=UTC)
    assert parse_time("2021Z") == datetime(2021, 1, 1, tzinfo=UTC)
    assert parse_time("2021-03-01T12:30:15.250Z") == datetime(2021, 3, 1, 12, 30, 15, 250000,
                                                              tzinfo=UTC)
    assert parse_time("2021-03-01T24:00Z") == datetime(2021, 3, 2, tzinfo=UTC)
    for bad in ("2021-03T12", "21-03-01", "2021-03-01 12:00", "2021-366", "2021-03-01T12:61"):
        with pytest.raises(ValueError):
            parse_time(bad)


@pytest.fixture(scope="module")
def server(store: Store) -> Iterator[str]:
    import uvicorn

    from epnml.api import create_app

    config = uvicorn.Config(create_app(store.settings), host="127.0.0.1", port=API_PORT,
                            log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{API_PORT}/hapi"
    srv.should_exit = True
    thread.join(timeout=30)


@pytest.mark.parametrize("fmt", ["csv", "binary"])
def test_hapiclient_reads_the_catalogue(server: str, store: Store, tmp_path: Path,
                                        fmt: str) -> None:
    hapiclient = pytest.importorskip("hapiclient")
    from hapiclient import hapi

    assert hapiclient.__version__
    info = hapi(server, DATASET)
    start, stop = info["startDate"], info["stopDate"]
    data, meta = hapi(server, DATASET, "score,icmecat_id,granule_uid", start, stop,
                      format=fmt, usecache=False, cache=False, cachedir=str(tmp_path),
                      logging=False)
    assert [p["name"] for p in meta["parameters"]] == ["Time", "score", "icmecat_id",
                                                      "granule_uid"]
    times = [t.decode() if isinstance(t, bytes) else str(t) for t in data["Time"]]
    uids = [u.decode() if isinstance(u, bytes) else str(u) for u in data["granule_uid"]]
    assert list(zip(times, [float(s) for s in data["score"]], uids, strict=True)) == \
        [(e[0], e[2], e[3]) for e in store.events]
