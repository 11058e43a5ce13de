"""The units stage on tiny SIMULATED PDS3 fixtures (and on the real DDRs when present)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.stage import GranuleError, RunContext, StageOutput
from epnml.ingest.stages.units import PHASES, PRODUCT, UNITS_EXTRA_COLUMNS, UnitsStage
from tests.fixtures.make_units_fixtures import make_units_fixtures

REPO = Path(__file__).resolve().parent.parent
FAST = {"embedding": "ica"}


def _ctx(**params: object) -> RunContext:
    return RunContext("test-run", "http://localhost/files", datetime(2026, 1, 2, tzinfo=UTC),
                      True, dict(params))


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return dict(make_units_fixtures(tmp_path_factory.mktemp("units_stage")))


@pytest.fixture(scope="module")
def stage() -> UnitsStage:
    return UnitsStage()


@pytest.fixture(scope="module")
def out(fx: dict[str, Path], stage: UnitsStage) -> StageOutput:
    granules = stage.granules([fx["vis_lbl"], fx["nir_lbl"], fx["vis_fmt"]])
    assert len(granules) == 1 and granules[0].granule_id == "mascs_sim_26001_000000"
    return stage.process(granules[0], _ctx(**FAST))


def test_rows_have_every_not_null_column(out: StageOutput) -> None:
    assert out.rows
    required = [c.name for c in PRODUCT.columns() if c.not_null and c.origin != "storage"]
    known = {c.name for c in PRODUCT.columns()} | {c.name for c in UNITS_EXTRA_COLUMNS}
    for row in out.rows:
        missing = [name for name in required if row.get(name) is None]
        assert not missing, missing
        assert set(row) <= known, set(row) - known
    row = out.rows[0]
    assert row["spatial_frame_type"] == "body" and row["target_class"] == "planet"
    assert row["target_name"] == "Mercury" and row["dataproduct_type"] == "ma"
    assert row["instrument_host_name"] == "MESSENGER" and row["instrument_name"] == "MASCS"
    assert row["processing_level"] == 5 and row["service_title"] == "epnml_units"
    assert "SIMULATED" in row["processing_level_desc"]
    assert len({r["granule_uid"] for r in out.rows}) == len(out.rows)


def test_coordinates_spectral_range_and_polygons(out: StageOutput) -> None:
    assert out.rows
    for row in out.rows:
        assert 0 <= row["c1min"] < row["c1max"] <= 360 and row["c1max"] - row["c1min"] <= 90
        assert -80 <= row["c2min"] < row["c2max"] <= 80
        assert row["s_region"].startswith("{(") and row["s_region"].endswith(")}")
        assert 0 < row["spectral_range_min"] < row["spectral_range_max"]
        # 260..1050 nm in Hz
        assert row["spectral_range_max"] == pytest.approx(299_792_458 / 260e-9, rel=1e-6)
        assert 0.0 <= row["ml_score"] <= 1.0
        assert row["incidence_max"] < 80 and row["emergence_max"] < 80
    # the fixture box 352..8 deg E crosses 0 deg: tiles on both sides
    assert any(r["c1max"] == 360.0 for r in out.rows) and any(r["c1min"] == 0.0
                                                               for r in out.rows)


def test_records_cells_and_abundances(out: StageOutput) -> None:
    rec = out.records
    assert rec["simulated"].all()
    assert rec["cell_count"].sum() == rec.drop_duplicates(["unit_id", "region"])[
        "region_cells"].sum()
    assert rec["n_units"].iloc[0] == 2  # make_units_fixtures draws two units
    assert len(rec)
    for _, r in rec.iterrows():
        assert all(r[f"abundance_sigma_{p}"] >= 0 for p in PHASES)
        # an abundance whose ensemble spread exceeds max_abundance_sigma (20 pp) is withheld
        assert [pd.isna(r[f"abundance_{p}"]) for p in PHASES] == \
            [r[f"abundance_sigma_{p}"] > 20.0 for p in PHASES]


def test_files_spectrum_and_thumbnail(out: StageOutput) -> None:
    row = out.rows[0]
    rel = row["access_url"].removeprefix("http://localhost/files/")
    assert row["access_format"] == "text/csv"
    text = out.files[rel].decode()
    assert text.startswith("# SIMULATED") and "wavelength_nm,iof_mean,iof_std" in text
    png = row["thumbnail_url"].removeprefix("http://localhost/files/")
    assert out.files[png][:8] == b"\x89PNG\r\n\x1a\n"


def test_reproducible_and_provenance(fx: dict[str, Path], stage: UnitsStage,
                                     out: StageOutput) -> None:
    again = stage.process(stage.granules([fx["vis_lbl"]])[0], _ctx(**FAST))
    assert [r["s_region"] for r in again.rows] == [r["s_region"] for r in out.rows]
    info = stage.model_info()
    assert len(info.sha256) == 64 and out.rows[0]["ml_weights_sha256"] == info.sha256
    assert stage.model_card()["config"]["n_components"] == 4


def test_bad_inputs(fx: dict[str, Path], stage: UnitsStage) -> None:
    with pytest.raises(GranuleError, match="notes.txt"):
        stage.granules([fx["bad_suffix"]])
    g = stage.granules([fx["bad_truncated"]])[0]
    with pytest.raises(GranuleError, match="truncated"):
        stage.process(g, _ctx(**FAST))
    g = stage.granules([fx["bad_no_data"]])[0]
    with pytest.raises(GranuleError, match="labels only"):
        stage.process(g, _ctx(**FAST))
    with pytest.raises(ValueError, match="unknown parameter '"):
        stage.process(g, _ctx(bogus=1))
    g = stage.granules([fx["nir_lbl"]])[0]  # 6 NIR footprints: too few cells
    with pytest.raises(GranuleError, match="grid cells"):
        stage.process(g, _ctx(**FAST))


@pytest.mark.shared_data
def test_real_mascs_vis_granule(shared_data: Path, stage: UnitsStage) -> None:
    g = stage.granules([shared_data / "spectra" / "mascs_virs"])[0]
    res = stage.process(g, _ctx(**FAST))
    assert res.rows and not res.records["simulated"].any()
    desc = res.rows[0]["processing_level_desc"]
    assert "MASCS VIRS VIS" in desc and "SIMULATED" not in desc
    assert all(np.isfinite(r["time_min"]) for r in res.rows)
