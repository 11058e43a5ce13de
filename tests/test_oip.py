"""The Open Inference Protocol (v2 REST) endpoints: metadata of every committed version,
health, and ``infer`` on tiny SIMULATED inputs compared with the stage's own ``predict``
records on the same data (icme: a simulated solar-wind CSV; pits: a synthetic chip).

A migrated database of its own (``<EPNML_TEST_DB>_oip``, for readiness and the request
log); no DaCHS: the app runs in-process (TestClient), previews in its worker pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from epnml.api.routes.oip import MAPPINGS, SOLAR_WIND_COLUMNS
from epnml.config import Settings
from epnml.ingest.runner import run_pipeline
from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv
from epnml.rerun import allowed_versions, pipelines
from tests.conftest import ICME_VERSION, empty_store_settings, migrated_database
from tests.fixtures.make_pits_fixtures import terrain


@dataclass(frozen=True)
class Store:
    settings: Settings
    wind: Path
    chip: Path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    dsn = migrated_database("oip")
    tmp = tmp_path_factory.mktemp("oip")
    settings = replace(empty_store_settings(dsn, tmp, "http://localhost:8213"),
                       jobs_dir=tmp / "jobs", job_worker=0, server_url="http://127.0.0.1:9",
                       preview_memory_mb=0)
    frame, _ = simulate_solar_wind("2021-03-01", days=5, seed=3, n_icmes=1)
    wind = write_csv(frame, tmp / "wind_simulated_20210301.csv")
    chip = tmp / "chip_simulated.png"
    Image.fromarray(terrain(), mode="L").save(chip)
    return Store(settings, wind, chip)


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[TestClient]:
    from epnml.api import create_app

    with TestClient(create_app(store.settings)) as c:
        yield c


def _records(store: Store, pipeline: str, path: Path, version: str | None,
             **params: Any) -> list[dict[str, Any]]:
    """The stage's own predict records on the file (what ``epnml predict`` writes)."""
    summary = run_pipeline(pipeline, [path], mode="predict", settings=store.settings,
                           progress=False, model_version=version, params=params)
    assert summary.n_failed == 0
    return list(summary.records.to_dict("records"))


def _wind_request(store: Store, datatype: str = "FP32") -> dict[str, Any]:
    """The CSV's own rows as the icme tensors (FP32 keeps the CSV's 6 digits exactly)."""
    table = pd.read_csv(store.wind)
    values = table[list(SOLAR_WIND_COLUMNS)].to_numpy(dtype=np.float64)
    data = [None if np.isnan(v) else float(v) for v in values.reshape(-1)]
    return {"id": "req-1", "inputs": [
        {"name": "solar_wind", "shape": list(values.shape), "datatype": datatype,
         "data": data},
        {"name": "time", "shape": [len(table)], "datatype": "BYTES",
         "data": table["time"].astype(str).tolist()}]}


def _outputs(body: dict[str, Any]) -> dict[str, list[Any]]:
    return {o["name"]: o["data"] for o in body["outputs"]}


def test_metadata_of_every_committed_version(client: TestClient) -> None:
    pairs = [(p, v) for p in sorted(pipelines()) for v in allowed_versions(p)]
    assert ("icme", "1.0.0") in pairs and ("pits", "1.0.0") in pairs
    for name, version in pairs:
        whole = client.get(f"/v2/models/{name}")
        assert whole.status_code == 200, whole.text
        assert whole.json()["versions"] == allowed_versions(name)
        one = client.get(f"/v2/models/{name}/versions/{version}")
        assert one.status_code == 200, one.text
        body = one.json()
        assert (body["name"], body["versions"], body["platform"]) == \
            (name, [version], "pytorch")
        if name in MAPPINGS:
            assert [t["name"] for t in body["inputs"]] == \
                [t.name for t in MAPPINGS[name].inputs]
        else:
            assert body["inputs"] == [] and "no Open Inference Protocol tensor mapping" in \
                body["parameters"]["not_mapped"]
    icme = client.get("/v2/models/icme").json()
    assert icme["inputs"][0] | {"parameters": None} == {
        "name": "solar_wind", "datatype": "FP32", "shape": [-1, 10], "parameters": None}
    assert [p["name"] for p in icme["parameters"]["spec"]] == ["threshold", "min_duration_h"]
    missing = client.get("/v2/models/icme/versions/9.9.9")
    assert missing.status_code == 404
    assert missing.json()["error"] == "model icme has no version 9.9.9; versions: 1.0.0, 2.0.0"
    assert client.get("/v2/models/nosuch").status_code == 404


def test_server_health_and_readiness(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    assert client.get("/v2").json()["name"] == "epnml"
    assert client.get("/v2/models/icme/versions/1.0.0/ready").json() == \
        {"name": "icme", "ready": True}
    assert client.get("/v2/models/craters/ready").status_code == 503  # not mapped yet


def test_icme_infer_gives_the_stages_events(client: TestClient, store: Store) -> None:
    expected = _records(store, "icme", store.wind, ICME_VERSION)
    assert len(expected) == 1
    response = client.post(f"/v2/models/icme/versions/{ICME_VERSION}/infer",
                           json=_wind_request(store))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == \
        ("icme", ICME_VERSION, "req-1")
    assert _outputs(body) == {"start": [r["start"] for r in expected],
                              "end": [r["end"] for r in expected],
                              "score": [r["score"] for r in expected],
                              "peak": [r["peak"] for r in expected]}
    assert [o["shape"] for o in body["outputs"]] == [[1], [1], [1], [1]]
    # a spec parameter goes to the stage and derives the version, as on /preview
    request = _wind_request(store) | {"parameters": {"min_duration_h": 240}}
    long = client.post(f"/v2/models/icme/versions/{ICME_VERSION}/infer", json=request)
    assert long.status_code == 200, long.text
    assert long.json()["model_version"] == "1.0.0+min_duration_h-240"
    assert _outputs(long.json())["score"] == []


def test_pits_infer_gives_the_stages_boxes(client: TestClient, store: Store) -> None:
    expected = _records(store, "pits", store.chip, None)
    assert len(expected) == 4  # the three drawn pits, one of them also as class 3
    pixels = np.asarray(Image.open(store.chip))
    want = {"score": [r["score"] for r in expected], "class": [r["class"] for r in expected],
            "class_name": [r["class_name"] for r in expected],
            "box": [r[k] for r in expected for k in ("x_min", "y_min", "x_max", "y_max")]}
    for datatype in ("UINT8", "FP32"):
        response = client.post("/v2/models/pits/infer", json={"inputs": [
            {"name": "image", "shape": list(pixels.shape), "datatype": datatype,
             "data": pixels.tolist()}]})
        assert response.status_code == 200, response.text
        assert _outputs(response.json()) == want
        assert response.json()["outputs"][3]["shape"] == [len(expected), 4]


def _cut_time(r: dict[str, Any]) -> None:
    r["inputs"][1]["data"].pop()
    r["inputs"][1]["shape"] = [len(r["inputs"][1]["data"])]


#: (spoil the request, the message for a request of n rows)
BAD_TENSORS = [
    (lambda r: r["inputs"][0].update(shape=[r["inputs"][0]["shape"][0], 9]),
     lambda n: f"icme: input solar_wind has shape [{n}, 9], expected [-1, 10] (-1: any size)"),
    (lambda r: r["inputs"][0].update(datatype="FP16"),
     lambda n: "icme: input solar_wind has datatype 'FP16', expected FP32 or FP64"),
    (lambda r: r["inputs"][1].update(data=r["inputs"][1]["data"][:-1]),
     lambda n: f"icme: input time has {n - 1} values, shape [{n}] needs {n}"),
    (_cut_time,
     lambda n: f"icme: solar_wind has {n} rows but time has {n - 1}; they must be equally "
               "long"),
    (lambda r: r["inputs"].pop(1),
     lambda n: "icme: missing input 'time' (inputs: solar_wind, time)"),
    (lambda r: r["inputs"][0].update(data=["x"] * len(r["inputs"][0]["data"])),
     lambda n: "icme: input solar_wind (FP32) must hold numbers (null: missing)"),
    (lambda r: r.update(parameters={"threshold": 1.5}),
     lambda n: "icme: threshold must be in (0, 1), got 1.5"),
    (lambda r: r["inputs"][1].update(data=["noon"] * len(r["inputs"][1]["data"])),
     lambda n: "oip_solar_wind.csv: unparseable time (or none) at data row 1 (expected "
               "ISO 8601 in 1678-2261, e.g. 2024-05-10 00:00:00)"),
]


@pytest.mark.parametrize(("spoil", "message"), BAD_TENSORS)
def test_bad_tensors_are_400_with_the_reason(client: TestClient, store: Store, spoil: Any,
                                             message: Any) -> None:
    request = _wind_request(store)
    n = len(request["inputs"][1]["data"])
    assert n == 720  # 5 days of 10-min rows
    spoil(request)
    response = client.post("/v2/models/icme/infer", json=request)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": message(n), "detail": message(n)}


def test_bad_images_and_unmapped_models(client: TestClient) -> None:
    pixels = [[0.5, 1.0], [2.0, 3.0]]
    response = client.post("/v2/models/pits/infer", json={"inputs": [
        {"name": "image", "shape": [2, 2], "datatype": "FP32", "data": pixels}]})
    assert response.status_code == 400
    assert response.json()["error"] == ("pits: image values must be whole numbers in 0-255 "
                                        "(the pits model reads 8-bit chips); send UINT8 or "
                                        "rescale")
    response = client.post("/v2/models/pits/infer", json={"inputs": [
        {"name": "image", "shape": [2, 2, 1], "datatype": "UINT8", "data": [1, 2, 3, 4]}]})
    assert response.json()["error"] == \
        "pits: input image has shape [2, 2, 1], expected [-1, -1] (-1: any size)"
    response = client.post("/v2/models/pits/infer", json={"inputs": [
        {"name": "image", "shape": [2, 2], "datatype": "UINT8", "data": [1, 2, 3, 300]}]})
    assert response.json()["error"] == "pits: input image (UINT8) values must be in 0-255"
    response = client.post("/v2/models/craters/infer", json={"inputs": []})
    assert response.status_code == 400
    assert response.json()["error"] == (
        "craters has no Open Inference Protocol tensor mapping yet (mapped: icme, pits); "
        "send its files to the preview upload endpoint")
    response = client.post("/v2/models/pits/infer", content=b"{not json",
                           headers={"content-type": "application/json"})
    assert (response.status_code, response.json()["error"]) == \
        (400, "the request body is not JSON")


BAD_BODY = "icme: the request must be a JSON object with an 'inputs' list"


def test_requests_are_logged(client: TestClient, store: Store) -> None:
    response = client.post("/v2/models/icme/infer", json={"inputs": "x", "id": "log-me"})
    assert response.status_code == 400
    with psycopg.connect(store.settings.dsn) as conn:
        rows = conn.execute("SELECT DISTINCT http_status FROM epnml.inference_log"
                            " WHERE endpoint = 'oip_infer' AND pipeline = 'icme'"
                            " AND error = %s", (BAD_BODY,)).fetchall()
    assert [r[0] for r in rows] == [400]
