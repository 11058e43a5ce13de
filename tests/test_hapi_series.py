"""HAPI 3.3 series datasets: the solar-wind series the icme pipeline ingested.

A migrated database (no DaCHS; the app runs in-process) where the icme pipeline ingests the
simulated fixture set in its real formats: a Wind MFI+SWE CDF pair, OMNIWeb 5-min and
hourly listings (one run), then the shared-layout CSV of the same days (a second run, so
its samples win where the CDF pair's overlap). The HAPI verifier's checks are reproduced
for the series datasets, served values are compared with the input files, a re-ingest
writes no sample and a changed file supersedes its series without deleting it. The stack
test reads a series with hapiclient from a real ``epnml serve``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
from fastapi.testclient import TestClient

from epnml.api.routes.hapi import DATASET, SERIES_PARAMS, series_id
from epnml.config import Settings
from epnml.ingest.readers.solarwind import dynamic_pressure, proton_beta
from epnml.ingest.runner import run_pipeline
from tests.conftest import ICME_GOOD, ICME_VERSION, Ingest, empty_store_settings, migrated_database
from tests.fixtures.make_icme_fixtures import LONG_GAP, SHORT_GAP, make_icme_fixtures
from tests.fixtures.make_omni2_fixtures import FIRST_RECORD, make_omni2_fixtures

WIND = "solarwind_wind_10min_simulated"
OMNI_HOURLY = "solarwind_omni_1h_simulated"
OMNI_10MIN = "solarwind_omni_10min_simulated"
OMNI2 = "solarwind_omni_1h"
ACE = "solarwind_ace_10min_simulated"
NAMES = ["Time", "density", "speed", "temperature", "bx", "by", "bz", "b_total", "beta",
         "pdyn"]
#: served parameter -> CSV column (the reader's names)
CSV_COLUMNS = {"density": "np", "speed": "vt", "temperature": "tp", "bx": "bx", "by": "by",
               "bz": "bz", "b_total": "bt", "beta": "beta", "pdyn": "pdyn"}
FILL = -1.0e30


def _iso(when: pd.Timestamp) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Store:
    settings: Settings
    dsn: str
    files: dict[str, Path]
    #: the CSV as written: time -> row (the exact values the Wind series must serve)
    csv: pd.DataFrame
    #: samples stored after the first CSV run, and what the identical re-ingest wrote
    n_after_csv: int
    n_after_reingest: int
    reingest_rows: int


def _count(dsn: str, sql: str = "SELECT count(*) FROM epnml.solarwind_samples") -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    dsn = migrated_database("hapi_series")
    tmp = tmp_path_factory.mktemp("hapi_series")
    settings = replace(empty_store_settings(dsn, tmp, "http://127.0.0.1:9"),
                       jobs_dir=tmp / "jobs", job_worker=0, server_url="http://127.0.0.1:9",
                       preview_memory_mb=0, contact="hapi-test@example.org")
    files = make_icme_fixtures(tmp / "inputs")
    first = [files[k] for k in ("cdf_mfi", "cdf_swe", "omni_lst", "omni_fmt",
                                "omni_hourly_lst", "omni_hourly_fmt")]
    first.append(make_omni2_fixtures(tmp / "omni2")["omni2_2015"])
    summary = run_pipeline("icme", first, mode="ingest", settings=settings, progress=False,
                           model_version=ICME_VERSION)
    assert (summary.n_failed, len(summary.granules)) == (0, 4)
    summary = run_pipeline("icme", [files["csv"]], mode="ingest", settings=settings,
                           progress=False, model_version=ICME_VERSION)
    assert summary.n_failed == 0
    n_after_csv = _count(dsn)
    # the identical file again, with another model version: new rows, no new sample
    again = run_pipeline("icme", [files["csv"]], mode="ingest", settings=settings,
                         progress=False)
    assert again.n_failed == 0
    csv = pd.read_csv(files["csv"], parse_dates=["time"]).set_index("time")
    return Store(settings, dsn, files, csv, n_after_csv, _count(dsn), again.n_rows)


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[TestClient]:
    from epnml.api import create_app

    with TestClient(create_app(store.settings)) as c:
        yield c


def _info(client: TestClient, dataset: str, **extra: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/hapi/info", params={"dataset": dataset, **extra}).json()
    return body


def _data(client: TestClient, dataset: str, **extra: str) -> Any:
    info = _info(client, dataset)
    q = {"dataset": dataset, "start": info["startDate"], "stop": info["stopDate"], **extra}
    return client.get("/hapi/data", params=q)


def _csv(text: str) -> list[list[str]]:
    return [line.split(",") for line in text.splitlines()]


def _status(response: Any) -> tuple[int, int]:
    return response.status_code, response.json()["status"]["code"]


def test_series_ids() -> None:
    assert series_id("STEREO-A", 600.0, False) == "solarwind_stereo_a_10min"
    assert series_id("OMNI", 3600.0, True) == "solarwind_omni_1h_simulated"
    assert series_id("Wind", 60.0, False) == "solarwind_wind_1min"


def test_catalog_lists_one_dataset_per_source(client: TestClient) -> None:
    catalog = client.get("/hapi/catalog").json()
    assert [e["id"] for e in catalog["catalog"]] == [DATASET, OMNI_10MIN, OMNI2, OMNI_HOURLY,
                                                     WIND]
    titles = {e["id"]: e["title"] for e in catalog["catalog"]}
    assert titles[OMNI_HOURLY] == ("OMNI solar wind at 1h, as ingested by the epnml ICME "
                                   "pipeline (SIMULATED)")
    full = client.get("/hapi/catalog", params={"depth": "all"}).json()["catalog"]
    for entry in full:
        info = _info(client, entry["id"])
        del info["HAPI"], info["status"]
        assert entry["info"] == info


def test_info_metadata(client: TestClient, store: Store) -> None:
    info = _info(client, WIND)
    assert info["status"] == {"code": 1200, "message": "OK"}
    assert [p["name"] for p in info["parameters"]] == NAMES
    assert info["parameters"][0] == {
        "name": "Time", "type": "isotime", "units": "UTC", "fill": None, "length": 24,
        "label": "Time", "description": SERIES_PARAMS[0].description}
    for p in info["parameters"][1:]:
        assert (p["type"], p["fill"]) == ("double", "-1.0E30")
        assert "length" not in p and p["units"] != "" and p["description"]
    units = {p["name"]: p["units"] for p in info["parameters"]}
    assert units == {"Time": "UTC", "density": "cm^-3", "speed": "km/s", "temperature": "K",
                     "bx": "nT", "by": "nT", "bz": "nT", "b_total": "nT", "beta": None,
                     "pdyn": "Pa"}
    assert (info["cadence"], info["timeStampLocation"]) == ("PT10M", "begin")
    # first sample to last sample + cadence (the CSV, 2024-03-01 to 03-03, 10-min)
    assert info["startDate"] == _iso(store.csv.index[0])
    assert info["stopDate"] == _iso(store.csv.index[-1] + pd.Timedelta("10min"))
    assert info["licenseURL"] == "https://creativecommons.org/licenses/by/4.0/"
    assert info["resourceID"] == f"ivo://epnml.example.org/hapi/{WIND}"
    assert info["datasetCitation"] == (f"epnml solar-wind series {WIND}, ivo://epnml.example."
                                       "org/hapi/" + WIND + "; source data: simulated data, "
                                       "no source to cite")
    assert info["description"].startswith("SIMULATED solar wind")
    # two granules (CDF pair, CSV), each named with its content hash
    with psycopg.connect(store.dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT g.obs_id, g.sha256 FROM epnml.solarwind_granules g JOIN "
                            "epnml.solarwind_series r USING (sha256) WHERE r.spacecraft = "
                            "'Wind' ORDER BY 1").fetchall()
    assert len(rows) == 2
    assert "from 2 granule(s)" in info["provenance"]
    for obs_id, sha in rows:
        assert f"{obs_id} (sha256 {sha}, run " in info["provenance"]
    assert info["contact"] == "hapi-test@example.org"
    hourly = _info(client, OMNI_HOURLY)
    assert (hourly["cadence"], hourly["timeStampLocation"]) == ("PT1H", "center")
    assert hourly["startDate"] == "2024-03-01T00:30:00.000Z"
    assert hourly["stopDate"] == "2024-03-04T00:30:00.000Z"
    sub = _info(client, WIND, parameters="speed,pdyn")
    assert [p["name"] for p in sub["parameters"]] == ["Time", "speed", "pdyn"]
    assert _info(client, WIND) == client.get("/hapi/info", params={"id": WIND}).json()


def test_wind_series_is_the_csv_exactly(client: TestClient, store: Store) -> None:
    """The CSV's values, exactly; the long gap (3 h) is absent; the short gap (30 min) is
    interpolated as the model reads it; where the CDF pair overlaps, the CSV (stored last)
    is served, each time once."""
    rows = _csv(_data(client, WIND).text)
    served = {r[0]: r for r in rows}
    assert len(served) == len(rows)
    assert [r[0] for r in rows] == sorted(served)
    grid = pd.date_range("2024-03-01", "2024-03-03 23:50", freq="10min")
    long_gap = (grid >= LONG_GAP[0]) & (grid < LONG_GAP[1])
    assert [r[0] for r in rows] == [_iso(t) for t in grid[~long_gap]]
    assert len(rows) == 3 * 144 - 18
    assert len(store.csv) == 3 * 144 - 18 - 3  # the CSV leaves both gaps out
    for when, values in store.csv.iterrows():
        row = served[_iso(pd.Timestamp(when))]
        for k, name in enumerate(NAMES[1:], start=1):
            assert float(row[k]) == float(values[CSV_COLUMNS[name]]), (when, name)
    short = [_iso(t) for t in grid[(grid >= SHORT_GAP[0]) & (grid < SHORT_GAP[1])]]
    before, after = store.csv.loc["2024-03-01 05:50"], store.csv.loc["2024-03-01 06:30"]
    for k, iso in enumerate(short, start=1):  # linear between 05:50 and 06:30
        expected = before["vt"] + (after["vt"] - before["vt"]) * k / 4
        assert float(served[iso][2]) == pytest.approx(expected, rel=1e-12)


def test_hourly_series_is_the_listing_exactly(client: TestClient, store: Store) -> None:
    """The hourly OMNIWeb listing: its values at the hour centres, no interpolated bin;
    the three all-fill hours are absent."""
    fmt = store.files["omni_hourly_fmt"].read_text()
    order = ["Scalar B", "BX", "BY", "BZ", "Temperature", "Density", "Speed"]
    assert [fmt.index(name) for name in order] == sorted(fmt.index(name) for name in order)
    listing = np.loadtxt(store.files["omni_hourly_lst"])
    assert listing.shape == (72, 10)
    rows = _csv(_data(client, OMNI_HOURLY).text)
    served = {r[0]: r for r in rows}
    expected_times = []
    for year, doy, hour, bt, bx, by, bz, tp, n, v in listing:
        when = pd.Timestamp(f"{int(year)}-01-01") + pd.Timedelta(days=doy - 1, hours=hour,
                                                                 minutes=30)
        if bt >= 999.9 and n >= 999.9:
            assert _iso(when) not in served
            continue
        expected_times.append(_iso(when))
        row = [float(x) for x in served[_iso(when)][1:]]
        assert row[:7] == [n, v, tp, bx, by, bz, bt]
        assert row[7] == pytest.approx(float(proton_beta(n, tp, bt)), rel=1e-12)
        assert row[8] == pytest.approx(float(dynamic_pressure(n, v)), rel=1e-12)
    assert [r[0] for r in rows] == expected_times
    assert len(rows) == 69


def test_reingest_writes_no_sample(store: Store) -> None:
    assert store.reingest_rows > 0  # the other model version wrote its rows
    assert store.n_after_reingest == store.n_after_csv
    # one series per content: CDF pair, two listings, OMNI2 file, CSV
    assert _count(store.dsn, "SELECT count(*) FROM epnml.solarwind_series") == 5
    assert _count(store.dsn, "SELECT sum(n_samples) FROM epnml.solarwind_series") == \
        store.n_after_csv


def test_start_inclusive_stop_exclusive_and_concatenation(client: TestClient) -> None:
    info = _info(client, WIND)
    start, stop = info["startDate"], info["stopDate"]
    middle = "2024-03-02T00:00:00.000Z"
    q = {"dataset": WIND, "parameters": "speed"}
    before = _csv(client.get("/hapi/data", params={**q, "start": start, "stop": middle}).text)
    after = _csv(client.get("/hapi/data", params={**q, "start": middle, "stop": stop}).text)
    whole = _csv(client.get("/hapi/data", params={**q, "start": start, "stop": stop}).text)
    assert before[-1][0] == "2024-03-01T23:50:00.000Z" and after[0][0] == middle
    assert before + after == whole and len(whole) == 3 * 144 - 18
    one = _csv(client.get("/hapi/data", params={**q, "start": middle,
                                                "stop": "2024-03-02T00:00:00.001Z"}).text)
    assert [r[0] for r in one] == [middle]
    # a request reaching past the span is clipped to it
    wide = client.get("/hapi/data", params={**q, "start": "2024-02-01", "stop": "2024-04-01"})
    assert _csv(wide.text) == whole


def test_parameter_subsets_header_json_binary(client: TestClient, store: Store) -> None:
    whole = _csv(_data(client, WIND).text)
    sub = _csv(_data(client, WIND, parameters="temperature,b_total").text)
    assert sub == [[r[0], r[3], r[7]] for r in whole]
    assert _csv(_data(client, WIND, parameters="Time").text) == [[r[0]] for r in whole]
    headed = _data(client, WIND, parameters="speed", include="header").text
    head = [ln for ln in headed.splitlines() if ln.startswith("#")]
    header = json.loads("".join(ln[1:] for ln in head))
    assert header["format"] == "csv" and header["status"]["code"] == 1200
    assert header["parameters"] == _info(client, WIND, parameters="speed")["parameters"]
    assert header["cadence"] == "PT10M"
    assert headed.splitlines()[len(head):] == [f"{r[0]},{r[2]}" for r in whole]
    body = _data(client, WIND, format="json", parameters="density,speed").json()
    assert body["status"]["code"] == 1200
    assert body["data"] == [[r[0], float(r[1]), float(r[2])] for r in whole]
    binary = _data(client, WIND, format="binary").content
    fmt = "<24s" + "d" * 9
    size = struct.calcsize(fmt)
    assert len(binary) == size * len(whole)
    for i, row in enumerate(whole):
        record = struct.unpack_from(fmt, binary, i * size)
        assert record[0].decode() == row[0]
        assert list(record[1:]) == [float(x) for x in row[1:]]


def test_omni2_file_fills_and_exact_values(client: TestClient) -> None:
    """An OMNI2 hourly file (NASA format, simulated values, named like a real one): its
    declared fills and non-physical values are the HAPI fill, its first record exact."""
    rows = {r[0]: r for r in _csv(_data(client, OMNI2).text)}
    assert len(rows) == 72
    first = rows["2015-01-01T00:30:00.000Z"]
    assert [float(x) for x in first[1:8]] == [FIRST_RECORD[k] for k in
                                              ("np", "vt", "tp", "bx", "by", "bz", "bt")]
    fill = "-1.0E30"
    assert rows["2015-01-01T05:30:00.000Z"][2] == fill  # speed 9999.
    assert rows["2015-01-01T06:30:00.000Z"][1] == fill  # density 999.9
    assert rows["2015-01-01T07:30:00.000Z"][4:8] == [fill] * 4  # the whole field
    assert rows["2015-01-01T10:30:00.000Z"][1] == fill  # density -3.0 (non-physical)
    assert rows["2015-01-01T11:30:00.000Z"][3] == fill  # temperature "nan"
    assert rows["2015-01-01T12:30:00.000Z"][2] == fill  # speed -400.
    assert rows["2015-01-01T04:30:00.000Z"][2] != fill
    body = _data(client, OMNI2, format="json", parameters="speed").json()["data"]
    assert body[5] == ["2015-01-01T05:30:00.000Z", FILL]
    binary = _data(client, OMNI2, format="binary", parameters="speed").content
    assert struct.unpack_from("<24sd", binary, 5 * 32) == (b"2015-01-01T05:30:00.000Z", FILL)


def test_no_data_is_1201(client: TestClient) -> None:
    q = {"dataset": WIND, "start": "2024-03-02T12:00Z", "stop": "2024-03-02T15:00Z"}
    empty = client.get("/hapi/data", params=q)  # the long gap
    assert (empty.status_code, empty.content) == (200, b"")
    as_json = client.get("/hapi/data", params={**q, "format": "json"}).json()
    assert (as_json["status"]["code"], as_json["data"]) == (1201, [])


ERRORS = [
    ({"dataset": "solarwind_voyager_10min"}, 404, 1406),
    ({"start": "2021-13-01"}, 400, 1402),
    ({"stop": "x"}, 400, 1403),
    ({"start": "2024-03-02", "stop": "2024-03-01"}, 400, 1404),
    ({"start": "1990-01-01", "stop": "1990-02-01"}, 400, 1405),
    ({"start": "2024-03-04T00:10Z", "stop": "2024-03-05"}, 400, 1405),
    ({"parameters": "score"}, 404, 1407),
    ({"parameters": "pdyn,speed"}, 400, 1411),
    ({"format": "cdf"}, 400, 1409),
    ({"include": "all"}, 400, 1410),
    ({"foo": "1"}, 400, 1401),
]


@pytest.mark.parametrize(("change", "http", "code"), ERRORS)
def test_data_errors(client: TestClient, change: dict[str, str], http: int,
                     code: int) -> None:
    q = {"dataset": WIND, "start": "2024-03-01", "stop": "2024-03-02", **change}
    response = client.get("/hapi/data", params=q)
    assert response.headers["content-type"] == "application/json"
    assert _status(response) == (http, code)


def test_changed_file_supersedes_its_series(client: TestClient, store: Store,
                                            tmp_path: Path) -> None:
    """A changed file of the same granule (same path): its new series is served, the
    former one stays stored, superseded; the other sources are untouched."""
    from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv

    frame, _ = simulate_solar_wind("2023-05-01", days=2, seed=11, n_icmes=0)
    path = write_csv(frame, tmp_path / "ace_simulated_20230501.csv")
    assert run_pipeline("icme", [path], mode="ingest", settings=store.settings,
                        progress=False, model_version=ICME_VERSION).n_failed == 0
    n_before = _count(store.dsn)
    first = _csv(_data(client, ACE, parameters="speed").text)
    assert len(first) == 2 * 144
    frame["vt"] = frame["vt"] + 100.0
    write_csv(frame, path)
    assert run_pipeline("icme", [path], mode="ingest", settings=store.settings,
                        progress=False, model_version=ICME_VERSION).n_failed == 0
    assert _count(store.dsn) == n_before + 2 * 144  # added, nothing deleted
    second = _csv(_data(client, ACE, parameters="speed").text)
    assert [r[0] for r in second] == [r[0] for r in first]
    assert [float(b[1]) - float(a[1]) for a, b in zip(first, second, strict=True)] == \
        pytest.approx([100.0] * len(first), abs=1e-3)
    assert _count(store.dsn, "SELECT count(*) FROM epnml.solarwind_granules WHERE obs_id = "
                  "'ace_simulated_20230501' AND superseded_at IS NOT NULL") == 1
    assert [e["id"] for e in client.get("/hapi/catalog").json()["catalog"]] == \
        [DATASET, ACE, OMNI_10MIN, OMNI2, OMNI_HOURLY, WIND]


# -- a real `epnml serve` and hapiclient (the stack of this instance) -------------------

@pytest.mark.stack
def test_hapiclient_reads_the_series(ingested_icme: Ingest, tmp_path: Path) -> None:
    hapiclient = pytest.importorskip("hapiclient")
    from hapiclient import hapi

    from tests.test_api_e2e import BASE, serve

    csv = pd.read_csv(ingested_icme.files["good"], parse_dates=["time"]).set_index("time")
    assert ingested_icme.files["good"].name == ICME_GOOD
    with serve(ingested_icme.stack, tmp_path / "serve.log"):
        server = f"{BASE}/hapi"
        meta = hapi(server, WIND)
        assert meta["cadence"] == "PT10M" and hapiclient.__version__
        start = _iso(csv.index[0])
        stop = _iso(csv.index[-1] + pd.Timedelta("10min"))
        for fmt in ("csv", "binary"):
            data, meta = hapi(server, WIND, "speed,b_total,pdyn", start, stop, format=fmt,
                              usecache=False, cache=False, cachedir=str(tmp_path),
                              logging=False)
            assert [p["name"] for p in meta["parameters"]] == ["Time", "speed", "b_total",
                                                              "pdyn"]
            times = [t.decode() if isinstance(t, bytes) else str(t) for t in data["Time"]]
            got = dict(zip(times, zip(data["speed"].tolist(), data["b_total"].tolist(),
                                      data["pdyn"].tolist(), strict=True), strict=True))
            assert times == [_iso(pd.Timestamp(t)) for t in csv.index]
            for when, row in csv.iterrows():
                assert got[_iso(pd.Timestamp(when))] == (row["vt"], row["bt"], row["pdyn"])
