"""The icme stage and runner without a database: rows, records, executors."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from epnml.config import Settings
from epnml.ingest.registry import make_stage
from epnml.ingest.runner import run_pipeline
from epnml.ingest.stage import Granule, RunContext
from epnml.schemas import get_product


@pytest.fixture(scope="module")
def simulated_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv

    frame, _ = simulate_solar_wind("2023-02-01", days=21, seed=5, n_icmes=3)
    path = tmp_path_factory.mktemp("icme") / "wind_simulated_20230201.csv"
    write_csv(frame, path)
    return path


def _ctx(**params: float) -> RunContext:
    return RunContext(run_id="t-run", files_base_url="http://example.org/static/epnml",
                      started=datetime(2026, 1, 2, 3, 4, 5), params=dict(params))


def test_rows_are_epn_tap_rows(simulated_csv: Path) -> None:
    stage = make_stage("icme")
    (granule,) = stage.granules([simulated_csv])
    # a low threshold makes sure there is something to check
    out = stage.process(granule, _ctx(threshold=0.2))
    assert len(out.rows) == len(out.records) > 0
    columns = {c.name for c in get_product("events").columns()}
    for row in out.rows:
        assert set(row) <= columns
        assert row["obs_id"] == granule.granule_id
        assert "#" not in row["granule_uid"] and row["granule_uid"] == row["granule_uid"].lower()
        assert 2086000 < row["time_min"] < row["time_max"] < 2817000
        assert row["service_title"] == "epnml_events"
        assert row["target_class"] == "interplanetary_medium"
        assert "SIMULATED" in row["processing_level_desc"]
        assert row["thumbnail_url"].startswith("http://example.org/static/epnml/events/")
    # quicklooks (PNG) and the rows' data extracts (CSV, access_url)
    assert all(f.startswith("events/") and (c[:4] == b"\x89PNG" if f.endswith(".png")
                                            else f.endswith(".csv")) for f, c in out.files.items())
    assert sum(f.endswith(".csv") for f in out.files) == len(out.rows)
    start = pd.Timestamp(out.records["start"].iloc[0])
    assert abs(start.tz_convert(None).to_julian_date() - out.rows[0]["time_min"]) < 1e-6


def test_threshold_changes_the_result(simulated_csv: Path) -> None:
    stage = make_stage("icme")
    (granule,) = stage.granules([simulated_csv])
    low = stage.process(granule, _ctx(threshold=0.05))
    high = stage.process(granule, _ctx(threshold=0.95))

    def covered_hours(records: pd.DataFrame) -> float:
        return float(sum((pd.Timestamp(e) - pd.Timestamp(s)).total_seconds() / 3600
                         for s, e in zip(records["start"], records["end"], strict=True)))

    assert covered_hours(low.records) > covered_hours(high.records)


def test_unknown_parameter_is_rejected(simulated_csv: Path) -> None:
    stage = make_stage("icme")
    (granule,) = stage.granules([simulated_csv])
    with pytest.raises(ValueError, match="unknown parameter '"):
        stage.process(granule, _ctx(temperature=3.0))


def test_granule_error_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "wind_bad_20200101.csv"
    bad.write_text("time,bx\n2020-01-01 00:00:00,1\n")
    stage = make_stage("icme")
    with pytest.raises(ValueError, match="wind_bad_20200101.csv"):
        for granule in stage.granules([bad]):
            stage.process(granule, _ctx())


def test_dask_executor_gives_the_same_records(simulated_csv: Path) -> None:
    distributed = pytest.importorskip("distributed")
    settings = Settings()
    inline = run_pipeline("icme", [simulated_csv], mode="predict", settings=settings,
                          workers=1, progress=False, params={"threshold": 0.2})
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        remote = run_pipeline("icme", [simulated_csv], mode="predict", settings=settings,
                              executor="dask", scheduler=cluster.scheduler_address,
                              progress=False, params={"threshold": 0.2})
    cols = ["start", "end", "score"]
    pd.testing.assert_frame_equal(inline.records[cols], remote.records[cols])


def test_local_worker_processes(simulated_csv: Path, tmp_path: Path) -> None:
    from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv

    frame, _ = simulate_solar_wind("2023-06-01", days=7, seed=9, n_icmes=1)
    second = tmp_path / "wind_simulated_20230601.csv"
    write_csv(frame, second)
    summary = run_pipeline("icme", [simulated_csv, second], mode="predict",
                           settings=Settings(), workers=2, progress=False)
    assert [g.status for g in summary.granules] == ["ok", "ok"]
    assert "2 granule(s) ok, 0 failed" in summary.text()


def test_granules_group_a_cdf_pair(tmp_path: Path) -> None:
    from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_cdaweb_wind_pair

    frame, _ = simulate_solar_wind("2023-06-01", days=3, seed=9, n_icmes=0)
    mfi, swe = tmp_path / "simulated_wind_mfi_h0_x.cdf", tmp_path / "simulated_wind_swe_h1_x.cdf"
    write_cdaweb_wind_pair(frame, mfi, swe)
    granules = make_stage("icme").granules([tmp_path])
    assert len(granules) == 1 and isinstance(granules[0], Granule)
    assert set(granules[0].paths) == {mfi, swe}


def test_parameters_make_a_derived_model_version(simulated_csv: Path) -> None:
    """Another threshold is another version: its rows supersede, never replace, the default's."""
    from epnml.ingest.executor import params_version_suffix

    assert params_version_suffix({}) == ""
    assert params_version_suffix({"threshold": 0.7}) == "+threshold-0.7"
    assert params_version_suffix({"threshold": 0.7, "min_region_s": 30.0}) == \
        "+min_region_s-30_threshold-0.7"
    odd = params_version_suffix({"threshold": "0.7; DROP TABLE x"})
    assert odd.startswith("+p") and ";" not in odd and " " not in odd
    settings = Settings()
    default = run_pipeline("icme", [simulated_csv], mode="predict", settings=settings,
                           workers=1, progress=False, keep_rows=True)
    tuned = run_pipeline("icme", [simulated_csv], mode="predict", settings=settings,
                         workers=1, progress=False, keep_rows=True, params={"threshold": 0.2})
    assert tuned.model_version == default.model_version + "+threshold-0.2"
    assert tuned.rows and all(r["ml_model_version"] == tuned.model_version for r in tuned.rows)
    assert all(r["granule_uid"].endswith(tuned.model_version) for r in tuned.rows)
    assert set(tuned.records["model_version"]) == {tuned.model_version}
    assert not {r["granule_uid"] for r in tuned.rows} & {r["granule_uid"] for r in default.rows}


def test_a_rerun_keeps_the_stored_granule_id(simulated_csv: Path, tmp_path: Path) -> None:
    """A re-run of a granule ingest renamed (another source held the stage's id) gives
    its rows the stored obs_id, so they carry the ids of the rows they re-compute."""
    summary = run_pipeline("icme", [simulated_csv], mode="predict", settings=Settings(),
                           workers=1, progress=False, keep_rows=True, params={"threshold": 0.2},
                           granule_id="wind_sim-0123abcd")
    assert summary.rows, "the fixture has ICMEs at threshold 0.2"
    assert {r["obs_id"] for r in summary.rows} == {"wind_sim-0123abcd"}
    assert all("wind_sim-0123abcd" in r["granule_uid"] for r in summary.rows)
    with pytest.raises(ValueError, match="names one granule; the files make 2"):
        second = tmp_path / "wind_simulated_20230601.csv"
        second.write_bytes(simulated_csv.read_bytes().replace(b"2024-", b"2023-"))
        run_pipeline("icme", [simulated_csv, second], mode="predict", settings=Settings(),
                     progress=False, granule_id="x")
