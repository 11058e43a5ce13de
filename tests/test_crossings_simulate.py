"""The MESSENGER MAG simulator and the boundary catalogues (SIMULATED field, REAL labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.simulate import messenger as sim
from epnml.ml.crossings import catalogue as cat
from epnml.ml.crossings.labels import (
    MAGNETOSHEATH,
    MAGNETOSPHERE,
    SOLAR_WIND,
    region_labels,
)


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    return sim.simulate_orbit(None, 11)


def _bmag(frame: pd.DataFrame) -> pd.Series:
    return np.sqrt(frame["bx"] ** 2 + frame["by"] ** 2 + frame["bz"] ** 2)


def test_frame_contract(synthetic: pd.DataFrame) -> None:
    f = synthetic
    assert isinstance(f.index, pd.DatetimeIndex) and f.index.tz is None
    assert f.index.name == "time"
    assert (np.diff(f.index.asi8) == 1_000_000_000).all()
    assert list(f.columns) == ["x", "y", "z", "bx", "by", "bz", "region"]
    assert all(f[c].dtype == np.float64 for c in ["x", "y", "z", "bx", "by", "bz"])
    assert f["region"].dtype == np.int8
    a = f.attrs
    assert a["simulated"] is True and "simulator" in a["source"]
    assert isinstance(a["orbit_number"], int) and len(a["edges"]) == 8
    assert 3 <= a["pdyn_npa"] <= 120 and 0 <= a["dist_index"] <= 97
    hours = (f.index[-1] - f.index[0]).total_seconds() / 3600
    assert 7.5 < hours < 12.5  # one full orbit, apoapsis to apoapsis
    assert not f[["bx", "by", "bz"]].isna().any().any()


def test_region_truth_follows_edges(synthetic: pd.DataFrame) -> None:
    # ns: labels.region_labels compares raw int64 (ISO strings parse to other units)
    edges = [pd.Timestamp(e).as_unit("ns") for e in synthetic.attrs["edges"]]
    assert (synthetic["region"].to_numpy() == region_labels(synthetic.index, edges)).all()
    assert set(np.unique(synthetic["region"])) == {0, 1, 2, 3, 4}
    # samples just outside edge 1 are solar wind, just after edge 4 magnetosphere
    t1, t4 = edges[0], edges[3]
    assert synthetic["region"].asof(t1 - pd.Timedelta(seconds=2)) == SOLAR_WIND
    assert synthetic["region"].asof(t4 + pd.Timedelta(seconds=2)) == MAGNETOSPHERE


def test_synthetic_edges_sit_on_model_surfaces() -> None:
    plan = sim.synthetic_orbit(5, 300)
    scale = cat.pressure_scale(plan.pdyn_npa)
    ab = sim.aberration_deg(plan.kepler.tp)
    for outer, inner, boundary in ((0, 1, "bow shock"), (2, 3, "magnetopause"),
                                   (4, 5, "magnetopause"), (6, 7, "bow shock")):
        mid = plan.edges[outer] + (plan.edges[inner] - plan.edges[outer]) / 2
        p = plan.kepler.positions_mso(pd.DatetimeIndex([mid]))[0]
        nd = cat.normalized_distance(p[0], p[1], p[2], boundary, scale=scale,
                                     aberration_deg=ab)
        assert abs(float(nd) - 1.0) < 0.05, (boundary, float(nd))
    alt = plan.kepler.rp_km - cat.R_MERCURY_KM
    assert 200 <= alt <= 500


def test_field_plausible_by_region(synthetic: pd.DataFrame) -> None:
    b = _bmag(synthetic)
    r = synthetic["region"]
    sw, sh, msp = b[r == SOLAR_WIND], b[r == MAGNETOSHEATH], b[r == MAGNETOSPHERE]
    assert 10 < sw.median() < 70  # IMF at Mercury
    assert 20 < msp.median() < 800  # KT17: tens to hundreds of nT
    assert sh.median() > 1.5 * sw.median()  # compressed
    # the sheath is far more variable than the solar wind at 1 s
    dsw = synthetic["bx"][r == SOLAR_WIND].diff().abs().median()
    dsh = synthetic["bx"][r == MAGNETOSHEATH].diff().abs().median()
    assert dsh > 4 * dsw


def test_seeds_reproducible() -> None:
    a = sim.simulate_orbit(200, 3)
    b = sim.simulate_orbit(200, 3)
    c = sim.simulate_orbit(200, 4)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs == b.attrs
    assert not np.allclose(a["bx"].to_numpy()[:1000], c["bx"].to_numpy()[:1000])


def test_gaps_are_nan_field_only() -> None:
    f = sim.simulate_orbit(210, 1, gaps=True)
    gap = f["bx"].isna()
    assert 30 <= gap.sum() < len(f) // 2
    assert not f[["x", "y", "z", "region"]].isna().any().any()


def test_a_12h_orbit_has_one_sample_per_second() -> None:
    # speed is measured by `epnml bench crossings`, never in a timed test
    f = sim.simulate_orbit(100, 0)  # 12-h era
    assert len(f) > 40_000


def test_kepler_fit_recovers_a_known_orbit() -> None:
    plan = sim.synthetic_orbit(9, 150)
    t = pd.DatetimeIndex(plan.edges)
    fit = sim.fit_kepler(list(t), plan.kepler.positions_mso(t), plan.kepler.period_s)
    assert fit.rms_km < 5.0
    assert abs(fit.orbit.rp_km - plan.kepler.rp_km) < 20


def test_normalized_distance_standoffs() -> None:
    dz = cat.DIPOLE_OFFSET_KM
    bs_nose = (cat.BS_X0_RM + cat.BS_P_RM * cat.BS_ECC / (1 + cat.BS_ECC)) * cat.R_MERCURY_KM
    assert float(cat.normalized_distance(bs_nose, 0, dz, "bow shock")) == pytest.approx(1.0)
    mp_nose = cat.MP_RSS_RM * cat.R_MERCURY_KM
    assert float(cat.normalized_distance(mp_nose, 0, dz, "magnetopause")) == pytest.approx(1.0)
    # the surface grows at low pressure, so the same point is further inside
    low = cat.pressure_scale(5.0)
    assert float(cat.normalized_distance(mp_nose, 0, dz, "magnetopause", scale=low)) < 1
    assert float(cat.normalized_distance(-5 * cat.R_MERCURY_KM, 0, dz, "bow shock")) < 1
    with pytest.raises(ValueError):
        cat.normalized_distance(0, 0, 0, "plasmapause")


def test_cli_synthetic_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sim.main([str(tmp_path), "--orbits", "30", "--synthetic", "--format", "csv"]) == 0
    (out,) = tmp_path.iterdir()
    assert "simulated" in out.name
    assert out.read_text().startswith("# SIMULATED")
    assert "SIMULATED" in capsys.readouterr().out


def test_missing_catalogue_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="philpott2020"):
        cat.load_boundaries(tmp_path)


# --- REAL catalogues (skip without the shared data) ----------------------------------


@pytest.mark.shared_data
def test_load_boundaries(shared_data: Path) -> None:
    b = cat.load_boundaries(shared_data)
    assert b["orbit"].is_unique and len(b) > 4000
    assert b["complete"].mean() > 0.95
    row = b[b["orbit"] == 12].iloc[0]
    assert row["t1"] == pd.Timestamp("2011-03-23 23:47:02.700")
    assert row["x1"] == pytest.approx(6275.334)
    assert b["t1"].dtype == "datetime64[ns]"
    assert (~b["complete"]).sum() == (b[[f"t{k}" for k in range(1, 9)]].isna().any(axis=1)
                                      | ~b["complete"]).sum()


@pytest.mark.shared_data
def test_other_catalogues(shared_data: Path) -> None:
    orbits = cat.load_orbits(shared_data)
    assert orbits["orbit"].is_unique and (orbits["hours"] > 0).all()
    bs = cat.load_winslow(shared_data, "bow shock")
    assert set(bs["direction"].dropna()) == {"inbound", "outbound"}
    manual = cat.load_manual(shared_data)
    assert manual.attrs["orbit_offset"] == 11  # SINP orbit 1 = Philpott orbit 12
    ref = cat.load_boundaries(shared_data).set_index("orbit")
    both = manual.dropna(subset=["t1"]).set_index("orbit")["t1"]
    dt = (both - ref.loc[both.index, "t1"]).abs()
    assert dt.median() < pd.Timedelta(minutes=2)


@pytest.mark.shared_data
@pytest.mark.parametrize("orbit", [12, 500, 1500, 3000])
def test_kepler_fit_on_real_orbits(shared_data: Path, orbit: int) -> None:
    plan = sim.catalogue_orbit(orbit, shared_data, seed=0)
    assert plan.fit_rms_km is not None and plan.fit_rms_km < 150.0  # km, over 8 edges
    assert 200 <= plan.kepler.rp_km - cat.R_MERCURY_KM <= 500
    row = cat.load_boundaries(shared_data).set_index("orbit").loc[orbit]
    assert list(plan.edges) == cat.edge_times(row)


@pytest.mark.shared_data
def test_catalogue_orbit_frame(shared_data: Path) -> None:
    f = sim.simulate_orbit(13, 2, shared=shared_data)
    assert f.attrs["trajectory"] == "catalogue" and f.attrs["orbit_number"] == 13
    edges = [pd.Timestamp(e).as_unit("ns") for e in f.attrs["edges"]]
    assert edges[0] == pd.Timestamp("2011-03-24 12:18:47")
    assert (f["region"].to_numpy() == region_labels(f.index, edges)).all()
    b = _bmag(f)
    assert 20 < b[f["region"] == MAGNETOSPHERE].median() < 800
    incomplete = cat.load_boundaries(shared_data).query("~complete")["orbit"].iloc[0]
    with pytest.raises(ValueError, match="missing"):
        sim.simulate_orbit(int(incomplete), 0, shared=shared_data)
