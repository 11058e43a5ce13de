"""The Open Inference Protocol (v2 REST) endpoints: metadata of every committed version,
health, and ``infer`` on tiny SIMULATED inputs compared with the stage's own ``predict``
records on the same data (icme: a simulated solar-wind CSV; pits: a synthetic chip).

A migrated database of its own (``<EPNML_TEST_DB>_oip``, for readiness and the request
log); no DaCHS: the app runs in-process (TestClient), previews in its worker pool.
"""

from __future__ import annotations

import json
import math
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
from epnml.ingest.registry import MODEL_VERSIONS
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
    assert missing.json()["error"] == \
        "model icme has no version 9.9.9; versions: 1.0.0, 2.0.0, 2.1.0, 2.2.0"
    assert client.get("/v2/models/nosuch").status_code == 404


def test_server_health_and_readiness(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    assert client.get("/v2").json()["name"] == "epnml"
    assert client.get("/v2/models/icme/versions/1.0.0/ready").json() == \
        {"name": "icme", "ready": True}
    assert client.get("/v2/models/craters/versions/2.0.0/ready").json() == \
        {"name": "craters", "ready": True}


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
    assert response.json()["error"] == "craters: missing input 'image' (inputs: image)"
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


# --- every model of the registry ------------------------------------------------------

def _tensor(name: str, datatype: str, values: Any) -> dict[str, Any]:
    """One request tensor of the protocol's JSON (NaN -> null)."""
    array = np.asarray(values)
    flat = array.reshape(-1).tolist()
    if array.dtype.kind == "f":
        flat = [None if math.isnan(v) else v for v in flat]
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": flat}


def _chip(path: Path) -> list[dict[str, Any]]:
    image = Image.open(path)
    assert image.mode == "L", (path.name, image.mode)
    return [_tensor("image", "UINT8", np.asarray(image))]


def _case_icme(store: Store, tmp: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    return [store.wind], _wind_request(store)["inputs"]


def _case_pits(store: Store, tmp: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    return [store.chip], _chip(store.chip)


def _case_crossings(store: Store, tmp: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    from epnml.ingest.simulate.messenger import simulate_orbit, write_csv

    path = write_csv(simulate_orbit(None, 11), tmp / "simulated_orbit.csv")
    table = pd.read_csv(path, comment="#")
    return [path], [
        _tensor("position", "FP64", table[["x_mso_km", "y_mso_km", "z_mso_km"]].to_numpy()),
        _tensor("field", "FP64", table[["bx_mso_nt", "by_mso_nt", "bz_mso_nt"]].to_numpy()),
        _tensor("time", "BYTES", table["time"].astype(str).to_numpy())]


UNITS_BOX = {"lon_range": (350.0, 20.0), "lat_range": (-15.0, 15.0), "step_deg": 1.0,
             "n_units": 3, "seed": 7}


def _case_units(store: Store, tmp: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    from epnml.ingest.simulate.units import (
        FILL,
        SIMULATED_EPOCH,
        simulate_footprints,
        write_simulated_mascs,
    )

    files = write_simulated_mascs(tmp / "units", **UNITS_BOX)
    meta, iof, wl = simulate_footprints(**UNITS_BOX)
    iof = np.where(iof >= FILL, np.nan, iof).astype(np.float32)
    corners = [f"{{}}_c{i}" for i in range(1, 5)]
    seconds = int(SIMULATED_EPOCH.timestamp()) + np.arange(len(meta))
    return [files["lbl"], files["dat"], files["fmt"]], [
        _tensor("iof", "FP32", iof), _tensor("wavelength_nm", "FP32", wl.astype(np.float32)),
        _tensor("latitude", "FP64", meta[["lat", *(c.format("lat") for c in corners)]]),
        _tensor("longitude", "FP64", meta[["lon", *(c.format("lon") for c in corners)]]),
        _tensor("angles", "FP64", meta[["incidence", "emission", "phase"]]),
        _tensor("time", "INT64", seconds)]


def _case_minerals(store: Store, tmp: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    wl = np.arange(300.0, 1101.0, 5.0)
    spectra = np.stack([0.30 - 0.12 * np.exp(-0.5 * ((wl - 1050.0) / 120.0) ** 2),
                        0.25 - 0.05 * np.exp(-0.5 * ((wl - 920.0) / 60.0) ** 2)])
    paths = []
    for i, row in enumerate(spectra):
        path = tmp / f"spectrum_{i}.csv"
        pd.DataFrame({"wavelength_nm": wl, "reflectance": row}).to_csv(path, index=False)
        paths.append(path)
    return paths, [_tensor("wavelength_nm", "FP64", wl),
                   _tensor("reflectance", "FP64", spectra)]


def _case_craters(store: Store, tmp: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    """The Moon fixture's bowl craters as a chip without georeference (target: Moon)."""
    from tests.fixtures.make_craters_fixtures import MOON_CRATERS, MOON_GRID, MOON_R, SEED, render

    path = tmp / "crater_chip.png"
    Image.fromarray(render(MOON_GRID, MOON_R, MOON_CRATERS, SEED), mode="L").save(path)
    return [path], _chip(path)


def _case_mounds(store: Store, tmp: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    from tests.fixtures.make_mounds_fixtures import make_mounds_fixtures

    path = make_mounds_fixtures(tmp / "mounds")["hillshade_png"]
    return [path], _chip(path)


def _case_ice(store: Store, tmp: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    from tests.fixtures.make_ice_fixtures import make_ice_fixtures

    path = make_ice_fixtures(tmp / "ice")["chip_png"]
    return [path], _chip(path)


def _case_meteors(store: Store, tmp: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    from epnml.ingest.readers.meteors import write_meteors_csv
    from epnml.ingest.simulate.meteors import simulate_meteors

    frame, _ = simulate_meteors(6, 31)
    path = tmp / "simulated_meteors.csv"
    write_meteors_csv(frame, path)
    lists = {k: [np.array([float(v) for v in str(x).split(";")]) for x in frame[k]]
             for k in ("mag", "ra", "dec")}
    width = max(len(v) for v in lists["mag"])
    padded = {k: np.array([np.pad(v, (0, width - len(v)), constant_values=np.nan)
                           for v in vs]) for k, vs in lists.items()}
    starts = [f"{int(r.year):04d}-{int(r.month):02d}-{int(r.day):02d}T{int(r.hour):02d}:"
              f"{int(r.minute):02d}:{int(r.second):02d}" for r in frame.itertuples()]
    return [path], [
        _tensor("meteor_id", "BYTES", np.array([str(f)[:-4] for f in frame["fname"]])),
        _tensor("camera", "BYTES", frame["cam"].astype(str).to_numpy()),
        _tensor("start", "BYTES", np.array(starts)),
        *(_tensor(k, "FP64", padded[k]) for k in ("mag", "ra", "dec"))]


def _case_aurora(store: Store, tmp: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    from tests.fixtures.make_aurora_fixtures import make_aurora_fixtures

    path = make_aurora_fixtures(tmp / "aurora")["simulated_emus_discrete.png"]
    return [path], _chip(path)


#: model -> (its reference files, the same data as request tensors).
CASES = {"icme": _case_icme, "pits": _case_pits, "crossings": _case_crossings,
         "units": _case_units, "minerals": _case_minerals, "craters": _case_craters,
         "mounds": _case_mounds, "ice": _case_ice, "meteors": _case_meteors,
         "aurora": _case_aurora}
#: spec parameters for these inputs (a chip has no georeference to say its body; the
#: stack tests run craters 1.0.0 at threshold 0.2 on the same synthetic craters).
PARAMS: dict[str, dict[str, Any]] = {"craters": {"target": "Moon", "threshold": 0.2}}
REGISTRY = [(name, version) for name, versions in MODEL_VERSIONS.items()
            for version in versions()]


def test_every_registry_model_is_mapped() -> None:
    from epnml.ml.minerals.abundance import PHASES

    assert sorted(MAPPINGS) == sorted(MODEL_VERSIONS) == sorted(CASES)
    # icme 1.0.0 2.0.0 2.1.0 2.2.0, craters 1.0.0 2.0.0 2.1.0 2.2.0 2.3.0, pits 1.0.0 2.0.0,
    # seven 1.0.0
    assert len(REGISTRY) == 18
    assert [o.name for o in MAPPINGS["minerals"].outputs][1:] == \
        ["presence_prob", "abundance", "abundance_sigma"]
    assert MAPPINGS["minerals"].outputs[1].shape == (-1, len(PHASES))
    assert all(p in MAPPINGS["minerals"].outputs[1].description for p in PHASES)


@pytest.mark.parametrize(("name", "version"), REGISTRY)
def test_an_oip_client_infers_on_every_model(client: TestClient, store: Store,
                                             tmp_path: Path, name: str, version: str) -> None:
    """A KServe v2 REST call (metadata, ready, infer) on each registry version gives the
    stage's own predict records on the same data as output tensors."""
    files, inputs = CASES[name](store, tmp_path)
    meta = client.get(f"/v2/models/{name}/versions/{version}")
    assert meta.status_code == 200, meta.text
    assert [t["name"] for t in meta.json()["inputs"]] == [t["name"] for t in inputs]
    assert "not_mapped" not in meta.json()["parameters"]
    assert client.get(f"/v2/models/{name}/versions/{version}/ready").json() == \
        {"name": name, "ready": True}
    summary = run_pipeline(name, files, mode="predict", settings=store.settings,
                           progress=False, model_version=version,
                           params=PARAMS.get(name, {}))
    assert summary.n_failed == 0
    expected = json.loads(summary.records.to_json(orient="records"))
    assert expected, f"{name} {version}: the fixture gives no record to compare"
    response = client.post(f"/v2/models/{name}/versions/{version}/infer",
                           json={"id": f"{name}-{version}", "inputs": inputs,
                                 "parameters": PARAMS.get(name, {})})
    assert response.status_code == 200, response.text
    body = response.json()
    # a parameter off the card's default derives the version (1.0.0+threshold-0.2)
    assert summary.model_version.split("+")[0] == version
    assert (body["model_name"], body["model_version"], body["id"]) == \
        (name, summary.model_version, f"{name}-{version}")
    assert body["outputs"] == MAPPINGS[name].answer(expected)
    assert [o["name"] for o in body["outputs"]] == [t.name for t in MAPPINGS[name].outputs]
    assert all(o["shape"][0] == len(expected) for o in body["outputs"])
