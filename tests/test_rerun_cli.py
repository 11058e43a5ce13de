"""`epnml rerun ID` (issue #12): the re-run use case of /preview and /commit on the command line.

A migrated database of its own (``<EPNML_TEST_DB>_reruncli``) with one ingested ICME granule
(simulated solar wind); no DaCHS. The CLI reads its settings from ``EPNML_*`` variables, as
`epnml ingest` does; the HTTP service runs in-process (TestClient) on the same settings.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from epnml.cli import main
from epnml.config import Settings
from epnml.ingest.runner import run_pipeline
from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv
from tests.conftest import ICME_VERSION, empty_store_settings, migrated_database

#: columns that differ between two runs of the same model on the same granule.
PER_RUN = {"ml_run_id", "creation_date", "modification_date", "release_date"}


@dataclass(frozen=True)
class Store:
    settings: Settings
    uid: str


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    dsn = migrated_database("reruncli")
    tmp = tmp_path_factory.mktemp("reruncli")
    settings = replace(empty_store_settings(dsn, tmp, "http://localhost:8251"),
                       jobs_dir=tmp / "jobs", job_worker=0, server_url="http://127.0.0.1:9",
                       preview_memory_mb=0)
    frame, _ = simulate_solar_wind("2021-03-01", days=5, seed=3, n_icmes=1)
    wind = write_csv(frame, tmp / "wind_simulated_20210301.csv")
    summary = run_pipeline("icme", [wind], mode="ingest", settings=settings, progress=False,
                           model_version=ICME_VERSION)
    assert summary.n_failed == 0 and summary.n_rows == 1
    (uid,) = _all(settings, "SELECT granule_uid FROM epnml.events")
    return Store(settings, str(uid[0]))


@pytest.fixture
def env(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The CLI's settings: the test store's DSN and folders."""
    for name, value in (("DSN", store.settings.dsn), ("DATA_DIR", store.settings.data_dir),
                        ("API_URL", store.settings.api_url), ("WORKERS", "1"),
                        # the stack fixture exports its own URLs: the CLI must not see them
                        ("SERVER_URL", store.settings.server_url),
                        ("FILES_URL", store.settings.files_url),
                        ("JOBS_DIR", store.settings.jobs_dir)):
        monkeypatch.setenv(f"EPNML_{name}", str(value))
    monkeypatch.setenv("EPNML_CONFIG", "/nonexistent/epnml.toml")
    return store


def _all(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.dsn) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def _state(settings: Settings) -> dict[str, Any]:
    return {"versions": _all(settings, "SELECT model_name, model_version FROM"
                                       " epnml.model_versions ORDER BY 2"),
            "runs": _all(settings, "SELECT count(*) FROM epnml.runs"),
            "events": _all(settings, "SELECT count(*), count(superseded_at)"
                                     " FROM epnml.events")}


def _same_run(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in PER_RUN} for r in rows]


def test_preview_json_rows_are_the_http_previews(env: Store,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from epnml.api import create_app

    before = _state(env.settings)
    assert main(["rerun", env.uid, "--param", "min_duration_h=1.5", "--format", "json"]) == 0
    out = capsys.readouterr()
    cli = json.loads(out.out)
    assert out.err == f"icme 1.0.0+min_duration_h-1.5 on {cli['rows'][0]['obs_id']}: " \
                      "1 row(s), nothing written\n"
    with TestClient(create_app(env.settings), headers={"Accept": "application/json"}) as client:
        response = client.get("/preview", params={"ID": env.uid, "MIN_DURATION_H": "1.5",
                                                  "RESPONSEFORMAT": "json"})
    assert response.status_code == 200, response.text
    http = response.json()
    assert (cli["ID"], cli["pipeline"], cli["model_version"], cli["n_rows"]) == \
        (http["ID"], http["pipeline"], http["model_version"], http["n_rows"]) == \
        (env.uid, "icme", "1.0.0+min_duration_h-1.5", 1)
    assert set(cli["rows"][0]) == set(http["rows"][0])
    assert env.uid.endswith("_v1.0.0")
    assert cli["rows"][0]["granule_uid"] == env.uid + "+min_duration_h-1.5"
    differing = {k: (a, http["rows"][0][k]) for k, a in _same_run(cli["rows"])[0].items()
                 if a != http["rows"][0][k]}
    assert differing == {}
    assert _same_run(cli["rows"]) == _same_run(http["rows"])
    assert cli["rows"][0]["ml_run_id"] != http["rows"][0]["ml_run_id"]  # two runs indeed
    assert _state(env.settings) == before  # a preview writes nothing


def test_preview_csv_to_a_file(env: Store, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rows.csv"
    assert main(["rerun", env.uid, "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    (row,) = list(csv.DictReader(io.StringIO(out.read_text())))
    assert (row["granule_uid"], row["ml_model_version"]) == (env.uid, "1.0.0")


@pytest.mark.parametrize(("args", "message"), [
    (["--param", "threshold=1.5"], "icme: threshold must be in (0, 1), got 1.5"),
    (["--param", "target=Mars"],
     "icme: unknown parameter 'target' (known: threshold, min_duration_h)"),
    (["--param", "threshold"], "--param wants NAME=VALUE, got 'threshold'"),
    (["--model-version", "9.9.9"], "model_version not allowed for icme; allowed: 1.0.0, 2.0.0, "
                                   "2.1.0, 2.2.0 (parameters such as threshold make a derived "
                                   "version by themselves)"),
])
@pytest.mark.parametrize("commit", [False, True])
def test_bad_input_exits_2_and_registers_nothing(
        env: Store, capsys: pytest.CaptureFixture[str], args: list[str], message: str,
        commit: bool) -> None:
    before = _state(env.settings)
    assert main(["rerun", env.uid, *args, *(["--commit"] if commit else [])]) == 2
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", f"epnml: error: {message}\n")
    assert _state(env.settings) == before


@pytest.mark.parametrize(("uid", "message"), [
    ("nope-0001", "unknown ID nope-0001: no current or superseded row has this granule_uid"),
    ("a b", "ID must be a granule_uid of this service: 1-200 characters of "
            "A-Z a-z 0-9 _ . : + - ~"),
])
def test_unknown_or_malformed_id_exits_2(env: Store, capsys: pytest.CaptureFixture[str],
                                         uid: str, message: str) -> None:
    assert main(["rerun", uid]) == 2
    assert capsys.readouterr().err == f"epnml: error: {message}\n"


def test_commit_writes_a_derived_version(env: Store, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Last in this module: it writes rows."""
    out = tmp_path / "summary.json"
    assert main(["rerun", env.uid, "--param", "threshold=0.5", "--commit",
                 "--format", "json", "-o", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert (summary["ID"], summary["pipeline"], summary["mode"], summary["model_version"],
            summary["n_rows"], summary["n_superseded"], summary["n_failed"]) == \
        (env.uid, "icme", "ingest", "1.0.0+threshold-0.5", 1, 1, 0)
    assert _all(env.settings, "SELECT model_version, card->'params' FROM"
                              " epnml.model_versions ORDER BY 1") == \
        [("1.0.0", None), ("1.0.0+threshold-0.5", {"threshold": 0.5})]
    assert _all(env.settings, "SELECT ml_model_version, superseded_at IS NULL FROM"
                              " epnml.events ORDER BY 1") == \
        [("1.0.0", False), ("1.0.0+threshold-0.5", True)]
    assert f"run {summary['run_id']} (icme, ingest, model 1.0.0+threshold-0.5)" in \
        capsys.readouterr().err
