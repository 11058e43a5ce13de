"""The declared stage specs (epnml.ingest.spec): validation once, before anything is
registered or read, and only model parameters that differ from the default derive a version.

Database tests use ``<EPNML_TEST_DB>_specs`` (created and migrated here, emptied before each
test), never the stack's own database.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from epnml.config import Settings, load_settings
from epnml.ingest.runner import run_pipeline
from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv
from epnml.ingest.spec import SPECS, defaults, validate_params
from tests.conftest import empty_store_settings, migrated_database


@pytest.fixture(scope="session")
def store_dsn() -> str:
    """A migrated database of its own (conftest.migrated_database)."""
    return migrated_database("specs")


@pytest.fixture()
def settings(store_dsn: str, tmp_path: Path) -> Settings:
    return empty_store_settings(store_dsn, tmp_path, "http://localhost:8131")


@pytest.fixture()
def wind(tmp_path: Path) -> Path:
    frame, _ = simulate_solar_wind("2021-03-01", days=5, seed=3, n_icmes=1)
    return write_csv(frame, tmp_path / "wind_simulated_20210301.csv")


def _versions(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT model_name, model_version FROM epnml.model_versions ORDER BY 2").fetchall()]


def _runs(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM epnml.runs").fetchone()
    assert row is not None
    return int(row[0])


# --- the spec itself (no database) -------------------------------------------------------

def test_every_pipeline_has_a_spec() -> None:
    from epnml.ingest.registry import PIPELINES

    assert list(SPECS) == list(PIPELINES)


def test_defaults_are_the_models_own() -> None:
    assert defaults("icme") == {"threshold": 0.4, "min_duration_h": 12.0}  # icme 2.2.0
    assert defaults("icme", "2.1.0") == {"threshold": 0.45, "min_duration_h": 8.0}
    assert defaults("icme", "2.0.0") == {"threshold": 0.6, "min_duration_h": 12.0}
    assert defaults("ice") == {"threshold": 0.6}
    assert defaults("mounds") == {"threshold": 0.6, "min_area_px": 4}
    assert defaults("pits") == {"threshold": 0.275}  # pits 2.0.0
    assert defaults("pits", "1.0.0") == {"threshold": 0.3}
    # craters 2.3.0 (banded): each band's own threshold
    assert defaults("craters") == {"threshold": None, "target": None, "pixel_scale_m": None}
    assert defaults("craters", "2.0.0") == {"threshold": 0.45, "target": None,
                                            "pixel_scale_m": None}
    assert defaults("craters", "1.0.0") == {"threshold": 0.4, "target": None,
                                            "pixel_scale_m": None}
    assert defaults("crossings")["min_region_s"] == 10
    assert defaults("crossings")["threshold"] == 0.0
    assert defaults("minerals") == {}


@pytest.mark.parametrize(("pipeline", "raw", "message"), [
    ("icme", {"threshold": 1.5}, "icme: threshold must be in (0, 1), got 1.5"),
    ("icme", {"threshold": "abc"}, "icme: threshold must be a number in (0, 1), got 'abc'"),
    ("icme", {"target": "Mars"},
     "icme: unknown parameter 'target' (known: threshold, min_duration_h)"),
    ("icme", {"min_duration_h": "-1"}, "icme: min_duration_h must be in [0, 240], got -1"),
    ("craters", {"target": "Venus"},
     "craters: target must be one of Moon, Mars, Mercury, got 'Venus'"),
    ("units", {"connectivity": "6"}, "units: connectivity must be one of 4, 8, got 6"),
    ("mounds", {"min_area_px": "2.5"},
     "mounds: min_area_px must be an integer in [1, 1000000], got 2.5"),
    ("minerals", {"threshold": 0.5}, "minerals: unknown parameter 'threshold' (known: none)"),
    ("crossings", {"threshold": 1.0}, "crossings: threshold must be in [0, 1), got 1.0"),
])
def test_bad_parameters_are_one_line(pipeline: str, raw: dict[str, object],
                                     message: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_params(pipeline, raw)
    assert str(info.value) == message


def test_only_changed_model_parameters_derive() -> None:
    assert validate_params("craters", {"target": "mars"}) == ({"target": "Mars"}, {})
    assert validate_params("icme", {"threshold": "0.4", "min_duration_h": 12}) == \
        ({"threshold": 0.4, "min_duration_h": 12.0}, {})
    assert validate_params("icme", {"threshold": "0.7"}) == \
        ({"threshold": 0.7}, {"threshold": 0.7})
    assert validate_params("units", {"connectivity": "8", "step_deg": "1"}) == \
        ({"connectivity": 8, "step_deg": 1.0}, {"connectivity": 8})


# --- the store: nothing registered before validation --------------------------------------

@pytest.mark.parametrize("params", [{"threshold": 1.5}, {"threshold": "1.5"},
                                    {"target": "Mars"}, {"min_duration_h": 1000}])
def test_bad_parameters_register_nothing(settings: Settings, wind: Path,
                                         params: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"^icme: "):
        run_pipeline("icme", [wind], mode="ingest", settings=settings, progress=False,
                     params=params)
    assert _versions(settings.dsn) == []
    assert _runs(settings.dsn) == 0


def test_explicit_default_derives_no_version(settings: Settings, wind: Path) -> None:
    summary = run_pipeline("icme", [wind], mode="ingest", settings=settings, progress=False,
                           params={"threshold": 0.4, "min_duration_h": "12"})
    assert summary.model_version == "2.2.0"
    assert _versions(settings.dsn) == [("icme", "2.2.0")]


def test_model_parameter_derives_a_version(settings: Settings, wind: Path) -> None:
    summary = run_pipeline("icme", [wind], mode="ingest", settings=settings, progress=False,
                           params={"threshold": "0.7"})
    assert summary.model_version == "2.2.0+threshold-0.7"
    assert _versions(settings.dsn) == [("icme", "2.2.0+threshold-0.7")]
    with psycopg.connect(settings.dsn) as conn:
        row = conn.execute("SELECT card->'params', card->>'base_version'"
                           " FROM epnml.model_versions").fetchone()
    assert row == ({"threshold": 0.7}, "2.2.0")


def test_operational_parameter_derives_no_version() -> None:
    from epnml.ingest.executor import get_stage

    base = get_stage("craters", None).model_info().version
    validated, derived = validate_params("craters", {"target": "Mars"})
    assert derived == {}
    assert get_stage("craters", None, validated).model_info().version == base
    tagged = get_stage("craters", None, validate_params("craters", {"threshold": 0.7})[0])
    assert tagged.model_info().version == f"{base}+threshold-0.7"


def test_cli_exits_2_before_registering(settings: Settings, wind: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from epnml import cli

    monkeypatch.setattr(cli, "load_settings", lambda: settings)
    assert cli.main(["ingest", "icme", str(wind), "--threshold", "1.5", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == \
        "epnml: error: icme: threshold must be in (0, 1), got 1.5"
    assert cli.main(["ingest", "icme", str(wind), "--param", "target=Mars"]) == 2
    assert _versions(settings.dsn) == []
    assert _runs(settings.dsn) == 0


# --- HTTP: /pipelines advertises the spec ----------------------------------------------------

def test_pipelines_advertise_the_spec(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from epnml.api import create_app

    offline = replace(load_settings(), dsn="host=/nonexistent-epnml-socket dbname=none",
                      server_url="http://127.0.0.1:9", jobs_dir=tmp_path / "jobs",
                      job_worker=0, preview_memory_mb=0)
    with TestClient(create_app(offline), headers={"Accept": "application/json"}) as client:
        body = {p["name"]: p for p in client.get("/pipelines").json()}
    assert sorted(body) == sorted(SPECS)
    icme = {p["name"]: p for p in body["icme"]["parameters"]}
    assert icme["threshold"]["default"] == 0.4  # icme 2.2.0
    assert icme["threshold"]["range"] == "(0, 1)"
    assert icme["threshold"]["model_param"] is True
    assert icme["min_duration_h"]["default"] == 12.0
    craters = {p["name"]: p for p in body["craters"]["parameters"]}
    assert craters["target"]["model_param"] is False
    assert craters["target"]["choices"] == ["Moon", "Mars", "Mercury"]
    assert body["minerals"]["parameters"] == []


# --- the stages read the spec: no range of their own ----------------------------------------

def _edges(pipeline: str) -> list[dict[str, object]]:
    """One-parameter dicts at the edges of what the spec accepts (bounds, just inside open
    bounds, every choice, None where the default is the model's own)."""
    from epnml.ingest.spec import describe

    out: list[dict[str, object]] = []
    for p in describe(pipeline):
        name, kind = p["name"], p["type"]
        if p["choices"]:
            out += [{name: c} for c in p["choices"]]
            continue
        step = 1 if kind == "int" else 1e-6
        if p["min"] is not None:
            out.append({name: p["min"] if p["min_inclusive"] else p["min"] + step})
        if p["max"] is not None:
            out.append({name: p["max"] if p["max_inclusive"] else p["max"] - step})
        if SPECS[pipeline].params.model_fields[name].default is None:
            out.append({name: None})
    return out


def _stage_reads(pipeline: str, params: dict[str, object]) -> object:
    """What the stage hands its model for ``params`` (its own parameter code path), and the
    model-side checks those values meet (ml validators the stage forwards to)."""
    from datetime import datetime

    import numpy as np
    import pandas as pd

    from epnml.ingest.executor import get_stage
    from epnml.ingest.stage import RunContext

    stage: Any = get_stage(pipeline, None)
    ctx = RunContext("edges", "http://f", datetime(2026, 1, 1), params=dict(params))
    if pipeline == "icme":
        from epnml.ml.icme.events import extract_events

        kwargs = stage._postprocess(ctx)
        index = pd.date_range("2021-01-01", periods=48, freq="10min")
        extract_events(index, np.linspace(0, 1, 48), **kwargs)
        return kwargs
    if pipeline == "crossings":
        from epnml.ml.crossings.postprocess import PostprocessParams

        threshold, extra = stage._params(ctx)
        return threshold, PostprocessParams.from_dict(extra)
    if pipeline in ("units", "craters", "mounds"):
        return stage._params(ctx)
    if pipeline in ("pits", "ice"):
        threshold = stage._threshold(ctx)
        if pipeline == "pits":
            from epnml.ml.pits.inference import detect

            detect(np.zeros((64, 64), np.float32), stage._model, threshold=threshold)
        return threshold
    from epnml.ingest.spec import resolve

    return resolve(pipeline, params, stage.model_info().version)  # minerals: none declared


@pytest.mark.parametrize("pipeline", list(SPECS))
def test_stages_refuse_nothing_the_spec_accepts(pipeline: str) -> None:
    edges = _edges(pipeline)
    assert (len(edges) == 0) == (pipeline == "minerals")
    for params in [{}, *edges]:
        validate_params(pipeline, params)  # the spec accepts it ...
        _stage_reads(pipeline, params)  # ... and so does the stage


@pytest.mark.parametrize("pipeline", list(SPECS))
def test_stages_refuse_what_the_spec_refuses(pipeline: str) -> None:
    raw = {"no_such_parameter": 1}
    with pytest.raises(ValueError) as info:
        _stage_reads(pipeline, raw)
    assert str(info.value).startswith(f"{pipeline}: unknown parameter 'no_such_parameter'")


@pytest.mark.parametrize("pipeline", list(SPECS))
def test_spec_defaults_are_what_the_stage_uses(pipeline: str) -> None:
    """A parameter left out and its advertised default sent explicitly run the same."""
    real = {k: v for k, v in defaults(pipeline).items() if v is not None}
    assert _stage_reads(pipeline, {}) == _stage_reads(pipeline, real)
    if pipeline in ("pits", "craters", "mounds", "ice"):
        from epnml.ingest.executor import get_stage

        stage: Any = get_stage(pipeline, None)
        if pipeline == "craters":  # 2.3.0 is banded: no one default, each band its own
            assert "threshold" not in real and stage._model.banded
        else:
            assert stage._model.threshold == real["threshold"]


@pytest.mark.parametrize("pipeline", list(SPECS))
def test_proc_descriptor_advertises_the_spec(pipeline: str) -> None:
    """DataLink #proc: every parameter, its real default, datatype and VALUES."""
    pyvo = pytest.importorskip("pyvo")
    import io

    from astropy.io.votable import parse

    from epnml.api.datalink import Link, ProcService, document
    from epnml.api.params import ENDPOINT_NAMES, given_params
    from epnml.ingest.spec import describe

    doc = document([Link("x", "#proc", service_def="s0")],
                   [ProcService("s0", "http://h/preview", ["1.0.0"], "1.0.0",
                                describe(pipeline, "1.0.0"))])
    results = pyvo.dal.adhoc.DatalinkResults(parse(io.BytesIO(doc)), url="http://h")
    (link,) = results
    params = {p.name: p for p in link.input_params}
    names = list(SPECS[pipeline].params.model_fields)
    # what pyvo sends back unchanged passes the spec and derives no version
    query = pyvo.dal.adhoc.DatalinkQuery.from_resource(
        link, results.get_adhocservice_by_id("s0"))
    sent = given_params([(k, str(v)) for k, v in query.items()], ENDPOINT_NAMES)
    assert validate_params(pipeline, sent, "1.0.0")[1] == {}
    assert list(params) == ["ID", "model_version", *names, "RESPONSEFORMAT"]
    real = defaults(pipeline, "1.0.0")
    for name in names:
        field = SPECS[pipeline].params.model_fields[name]
        param = params[name]
        kind = {"double": float, "int": int, "char": str}[param.datatype]
        value = param.value
        null = param.values.null if param.values is not None else None
        shown = None if value is None or str(value) in ("", "--", "nan") or (
            null is not None and value == null) else kind(value)
        assert shown == real[name], name
        info = next(p for p in describe(pipeline, "1.0.0") if p["name"] == name)
        if info["choices"]:
            assert [v for _, v in param.values.options] == [str(c) for c in info["choices"]]
        elif info["min"] is not None:
            assert float(param.values.min) == info["min"]
            assert param.values.min_inclusive == info["min_inclusive"]
        assert field.description in str(param.description)
