"""The crossings pipeline without a database: stage rows, `epnml predict crossings`, errors."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epnml.cli import main
from epnml.ingest.stage import Granule, RunContext

#: a synthetic orbit (no shared data needed) and its seed.
ORBIT, SEED = 901, 32
REQUIRED = {"time", "boundary", "direction", "edge", "score", "x_mso_km", "y_mso_km", "z_mso_km"}


@pytest.fixture(scope="module")
def orbit_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, list[Path]]:
    from epnml.ingest.simulate.messenger import simulate_orbit, write_pds3

    frame = simulate_orbit(ORBIT, SEED)
    out = tmp_path_factory.mktemp("orbit")
    return frame, list(write_pds3(frame, out))


@pytest.fixture(scope="module")
def stage() -> object:
    from epnml.ingest.registry import make_stage

    return make_stage("crossings")


def _ctx(**params: object) -> RunContext:
    return RunContext("test-run", "http://example.org/static", datetime(2026, 1, 1),
                      make_quicklooks=True, params=dict(params))


def test_local_time_convention() -> None:
    from epnml.ingest.stages.crossings import local_time_h

    assert local_time_h(1.0, 0.0) == pytest.approx(12.0)  # towards the Sun
    assert local_time_h(0.0, 1.0) == pytest.approx(18.0)  # dusk (+y MSO)
    assert local_time_h(0.0, -1.0) == pytest.approx(6.0)  # dawn
    assert local_time_h(-1.0, -1e-9) == pytest.approx(0.0, abs=1e-6) or \
        local_time_h(-1.0, -1e-9) == pytest.approx(24.0, abs=1e-6)


def test_predict_writes_crossings_csv(orbit_files: tuple[pd.DataFrame, list[Path]],
                                      tmp_path: Path) -> None:
    frame, files = orbit_files
    out = tmp_path / "crossings.csv"
    assert main(["predict", "crossings", *map(str, files), "-o", str(out), "--workers", "1",
                 "--no-progress"]) == 0
    table = pd.read_csv(out)
    assert REQUIRED <= set(table.columns)
    assert set(table["boundary"]) <= {"bow shock", "magnetopause"}
    assert set(table["direction"]) <= {"inbound", "outbound"}
    assert set(table["edge"]) <= {"outer", "inner"}
    assert table["score"].between(0, 1).all()
    assert table["time"].str.endswith("Z").all()
    # the simulated truth: Philpott edges 1..8 at these times
    truth = pd.DatetimeIndex(frame.attrs["edges"])
    found = 0
    for row in table.itertuples(index=False):
        t = pd.Timestamp(row.time).tz_localize(None)
        assert frame.index[0] <= t <= frame.index[-1]
        error_s = abs((t - truth[int(row.boundary_number) - 1]).total_seconds())
        found += error_s <= 180
        # the row's position is the spacecraft's at that time
        x = frame["x"].iloc[frame.index.get_indexer([t.floor("s")], method="nearest")[0]]
        assert row.x_mso_km == pytest.approx(x, abs=50)
    assert found >= 6, f"only {found} of 8 simulated edges within 3 min:\n{table}"


def test_stage_rows_follow_epntap(stage: object,
                                  orbit_files: tuple[pd.DataFrame, list[Path]]) -> None:
    frame, files = orbit_files
    granules = stage.granules(files)  # type: ignore[attr-defined]
    assert len(granules) == 1
    output = stage.process(granules[0], _ctx())  # type: ignore[attr-defined]
    assert output.rows, "no crossings found in a simulated orbit"
    png = [v for k, v in output.files.items() if k.startswith("crossings/")
           and k.endswith(".png")]
    assert png and all(v.startswith(b"\x89PNG") for v in png)
    for row in output.rows:
        assert row["spatial_frame_type"] == "cartesian"
        assert row["target_name"] == "Mercury" and row["target_class"] == "planet"
        assert row["instrument_host_name"] == "MESSENGER" and row["instrument_name"] == "MAG"
        assert row["measurement_type"] == "phys.magField" and row["dataproduct_type"] == "ci"
        assert row["spatial_coordinate_description"] == "MSO"
        assert row["spatial_origin"] == "Mercury"
        assert row["time_min"] == row["time_max"]
        xyz = np.array([row["c1min"], row["c2min"], row["c3min"]])
        assert (row["c1min"], row["c2min"], row["c3min"]) == \
            (row["c1max"], row["c2max"], row["c3max"])
        assert row["radial_distance_min"] == pytest.approx(np.linalg.norm(xyz))
        assert row["radial_distance_min"] > 2440.0  # outside the planet
        assert 0 <= row["local_time_min"] < 24
        assert row["feature_name"] in {"bow shock", "magnetopause"}
        assert row["orbit_number"] == ORBIT
        assert "SIMULATED" in row["processing_level_desc"]
        assert row["thumbnail_url"].startswith("http://example.org/static/crossings/")
        assert "#" not in row["granule_uid"] and " " not in row["granule_uid"]
    assert len({r["granule_uid"] for r in output.rows}) == len(output.rows)


def test_threshold_drops_low_scores(stage: object,
                                    orbit_files: tuple[pd.DataFrame, list[Path]]) -> None:
    _, files = orbit_files
    granule = stage.granules(files)[0]  # type: ignore[attr-defined]
    every = stage.process(granule, _ctx())  # type: ignore[attr-defined]
    cut = float(np.median([r["ml_score"] for r in every.rows]))
    fewer = stage.process(granule, _ctx(threshold=cut))  # type: ignore[attr-defined]
    assert all(r["ml_score"] >= cut for r in fewer.rows)
    assert len(fewer.rows) < len(every.rows) or len({r["ml_score"] for r in every.rows}) == 1
    with pytest.raises(ValueError, match="threshold"):
        stage.process(granule, _ctx(threshold=1.5))  # type: ignore[attr-defined]


def test_bad_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.fixtures.make_crossings_fixtures import make_crossings_fixtures

    files = make_crossings_fixtures(tmp_path)
    bad = files["bad_label_without_table"]
    assert main(["predict", "crossings", str(bad), "-o", str(tmp_path / "o.csv"),
                 "--workers", "1", "--no-progress"]) == 1
    assert bad.name in capsys.readouterr().err


def test_unknown_parameter_is_refused(orbit_files: tuple[pd.DataFrame, list[Path]],
                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, files = orbit_files
    code = main(["predict", "crossings", *map(str, files), "-o", str(tmp_path / "o.csv"),
                 "--workers", "1", "--no-progress", "--param", "no_such_knob=3"])
    assert code != 0
    assert "no_such_knob" in capsys.readouterr().err


def test_granule_of_unknown_file_is_refused(stage: object, tmp_path: Path) -> None:
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    with pytest.raises(ValueError, match="notes.txt"):
        granules = stage.granules([odd])  # type: ignore[attr-defined]
        stage.process(Granule("x", (odd,)), _ctx())  # type: ignore[attr-defined]
        del granules
