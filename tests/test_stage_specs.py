"""The declared stage specs (epnml.ingest.spec): validation once, before anything is
registered or read, and only model parameters that differ from the default derive a version.

Database tests use ``<EPNML_TEST_DB>_specs`` (created and migrated here, emptied before each
test), never the stack's own database.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

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
    assert defaults("icme") == {"threshold": 0.6, "min_duration_h": 2.0}
    assert defaults("ice") == {"threshold": 0.6}
    assert defaults("mounds") == {"threshold": 0.6, "min_area_px": 4}
    assert defaults("pits") == {"threshold": 0.3}
    assert defaults("craters") == {"threshold": 0.4, "target": None}
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
    assert validate_params("icme", {"threshold": "0.6", "min_duration_h": 2}) == \
        ({"threshold": 0.6, "min_duration_h": 2.0}, {})
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
                           params={"threshold": 0.6, "min_duration_h": "2"})
    assert summary.model_version == "1.0.0"
    assert _versions(settings.dsn) == [("icme", "1.0.0")]


def test_model_parameter_derives_a_version(settings: Settings, wind: Path) -> None:
    summary = run_pipeline("icme", [wind], mode="ingest", settings=settings, progress=False,
                           params={"threshold": "0.7"})
    assert summary.model_version == "1.0.0+threshold-0.7"
    assert _versions(settings.dsn) == [("icme", "1.0.0+threshold-0.7")]
    with psycopg.connect(settings.dsn) as conn:
        row = conn.execute("SELECT card->'params', card->>'base_version'"
                           " FROM epnml.model_versions").fetchone()
    assert row == ({"threshold": 0.7}, "1.0.0")


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
    with TestClient(create_app(offline)) as client:
        body = {p["name"]: p for p in client.get("/pipelines").json()}
    assert sorted(body) == sorted(SPECS)
    icme = {p["name"]: p for p in body["icme"]["parameters"]}
    assert icme["threshold"]["default"] == 0.6
    assert icme["threshold"]["range"] == "(0, 1)"
    assert icme["threshold"]["model_param"] is True
    assert icme["min_duration_h"]["default"] == 2.0
    craters = {p["name"]: p for p in body["craters"]["parameters"]}
    assert craters["target"]["model_param"] is False
    assert craters["target"]["choices"] == ["Moon", "Mars", "Mercury"]
    assert body["minerals"]["parameters"] == []
