"""Solar-wind simulator (determinism, realism, ICME signatures), writers, quicklook."""

from __future__ import annotations

import io
from pathlib import Path

import cdflib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from epnml.config import load_settings
from epnml.ingest.quicklook import solarwind_quicklook_png
from epnml.ingest.readers.solarwind import (
    FRAME_COLUMNS,
    expected_temperature,
    group_solarwind_files,
    read_solarwind,
    read_solarwind_csv_labels,
)
from epnml.ingest.simulate import solarwind as sim
from epnml.ingest.simulate.solarwind import (
    ICMEParams,
    icme_label,
    inject_icme,
    simulate_solar_wind,
)

SHARED = load_settings().shared_data
ICMECAT = SHARED / "catalogues" / "helio4cast_icmecat_v23.csv"


@pytest.fixture(scope="module")
def month() -> tuple[pd.DataFrame, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    return simulate_solar_wind("2024-01-01", 28, seed=1)


def _quiet(days: float = 6, seed: int = 3) -> pd.DataFrame:
    frame, intervals = simulate_solar_wind("2024-02-01", days, seed=seed, n_icmes=0)
    assert intervals == []
    return frame


def _params(**over: float) -> ICMEParams:
    base = dict(sheath_hours=8.0, mo_hours=20.0, b_sheath=14.0, b_mo=15.0, v_leading=520.0,
                v_trailing=440.0, n_sheath=15.0, n_mo=4.0,
                t_mo=0.3 * float(expected_temperature(480.0)),
                axis_lat=10.0, axis_lon=80.0, impact=0.2)
    base.update(over)
    return ICMEParams(**base)


# --------------------------------------------------------------------------- frame


def test_deterministic_for_a_seed(month: tuple) -> None:
    again = simulate_solar_wind("2024-01-01", 28, seed=1)
    pd.testing.assert_frame_equal(month[0], again[0])
    assert month[1] == again[1]
    other = simulate_solar_wind("2024-01-01", 28, seed=2)
    assert not np.allclose(month[0]["vt"], other[0]["vt"])


def test_standard_frame_and_realistic_quiet_wind(month: tuple) -> None:
    frame, intervals = month
    assert list(frame.columns) == FRAME_COLUMNS
    assert all(frame.dtypes == np.float64)
    assert frame.index.name == "time" and frame.index.tz is None
    assert len(frame) == 28 * 144
    assert (np.diff(frame.index.as_unit("ns").asi8) == 600 * 10**9).all()
    assert frame.notna().all().all()
    quiet = frame[icme_label(frame.index, intervals) == 0]
    assert 3.5 < quiet["bt"].median() < 8
    assert 300 < quiet["vt"].quantile(0.05) and quiet["vt"].quantile(0.95) < 760
    assert quiet["vt"].max() - quiet["vt"].min() > 150, "slow and fast streams"
    assert 2.5 < quiet["np"].median() < 10
    assert 4e4 < quiet["tp"].median() < 2.5e5
    assert 0.9 < quiet["texrat"].median() < 1.6
    # stream interaction regions: compressions (|B| > 10 nT) outside ICMEs exist
    assert (quiet["bt"] > 10).sum() > 6
    # self-consistent derived columns
    np.testing.assert_allclose(frame["bt"], np.sqrt(frame.bx**2 + frame.by**2 + frame.bz**2))
    np.testing.assert_allclose(frame["texrat"], frame["tp"] / expected_temperature(frame["vt"]))


def test_icmes_placed_without_overlap() -> None:
    frame, intervals = simulate_solar_wind("2024-05-01", 40, seed=7, n_icmes=5)
    assert len(intervals) == 5
    for (_, a1), (b0, _) in zip(intervals, intervals[1:], strict=False):
        assert a1 < b0
    assert intervals[0][0] >= frame.index[0] and intervals[-1][1] <= frame.index[-1]
    _, default = simulate_solar_wind("2024-05-01", 70, seed=7)
    assert 3 <= len(default) <= 30, "~1.5 per week"
    with pytest.raises(ValueError):
        simulate_solar_wind("2024-05-01", 0, seed=1)


def test_icme_signatures_statistically() -> None:
    frame, intervals = simulate_solar_wind("2024-01-01", 120, seed=11)
    inside = icme_label(frame.index, intervals) == 1
    assert inside.any()
    assert frame["bt"][inside].median() > 1.3 * frame["bt"][~inside].median()
    assert frame["beta"][inside].median() < 0.5 * frame["beta"][~inside].median()
    assert frame["texrat"][inside].median() < frame["texrat"][~inside].median()


# --------------------------------------------------------------------------- inject_icme


def test_inject_icme_profile() -> None:
    quiet = _quiet()
    before = quiet.copy()
    p = _params()
    start = pd.Timestamp("2024-02-02 12:00")
    out = inject_icme(quiet, start, p, np.random.default_rng(0))
    pd.testing.assert_frame_equal(quiet, before)  # input untouched
    mo_start = start + pd.Timedelta(hours=8)
    mo_end = mo_start + pd.Timedelta(hours=20)
    sheath = out[(out.index >= start) & (out.index < mo_start)]
    mo = out[(out.index >= mo_start) & (out.index < mo_end)]
    up = out[(out.index >= start - pd.Timedelta(hours=6)) & (out.index < start)]

    assert sheath["vt"].iloc[0] > up["vt"].mean() + 20, "shock jump in speed"
    assert sheath["np"].mean() > up["np"].mean() and sheath["tp"].mean() > mo["tp"].mean()
    assert sheath["texrat"].median() > 1
    # magnetic obstacle: enhanced smooth B, low beta, low texrat, expanding
    assert abs(mo["bt"].mean() / p.b_mo - 1) < 0.15
    assert mo["texrat"].median() < 0.5
    assert mo["beta"].median() < 0.2
    assert mo["vt"].iloc[:6].mean() > mo["vt"].iloc[-6:].mean() + 40
    assert mo["np"].median() < sheath["np"].median()
    # smooth rotation: large total rotation, small step-to-step changes
    unit = mo[["bx", "by", "bz"]].to_numpy() / mo["bt"].to_numpy()[:, None]
    total = np.degrees(np.arccos(np.clip(unit[0] @ unit[-1], -1, 1)))
    steps = np.degrees(np.arccos(np.clip((unit[1:] * unit[:-1]).sum(axis=1), -1, 1)))
    sunit = sheath[["bx", "by", "bz"]].to_numpy() / sheath["bt"].to_numpy()[:, None]
    ssteps = np.degrees(np.arccos(np.clip((sunit[1:] * sunit[:-1]).sum(axis=1), -1, 1)))
    assert total > 60
    assert np.median(steps) < 10 < np.median(ssteps)
    # rows outside ICME + recovery untouched
    far = (out.index < start) | (out.index >= mo_end + pd.Timedelta(hours=24))
    pd.testing.assert_frame_equal(out[far], quiet[far])


def test_inject_icme_keeps_gaps_and_checks_input() -> None:
    quiet = _quiet()
    gap = (quiet.index >= "2024-02-02 20:00") & (quiet.index < "2024-02-02 23:00")
    quiet.loc[gap, :] = np.nan
    out = inject_icme(quiet, pd.Timestamp("2024-02-02 12:00"), _params(),
                      np.random.default_rng(0))
    assert out[gap].isna().all().all()
    with pytest.raises(ValueError, match="does not overlap"):
        inject_icme(quiet, pd.Timestamp("2030-01-01"), _params(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="lacks standard columns"):
        inject_icme(quiet.drop(columns=["tp"]), quiet.index[10], _params(),
                    np.random.default_rng(0))
    with pytest.raises(ValueError, match="mo_hours"):
        _params(mo_hours=-1)


def test_params_draw_builtin_matches_icmecat_statistics() -> None:
    rng = np.random.default_rng(5)
    draws = [ICMEParams.draw(rng) for _ in range(400)]
    med = {k: np.median([getattr(d, k) for d in draws]) for k in ("mo_hours", "b_mo", "n_mo")}
    assert 14 < med["mo_hours"] < 24 and 8 < med["b_mo"] < 12 and 4.5 < med["n_mo"] < 8.5
    assert 0.2 < np.mean([d.sheath_hours == 0 for d in draws]) < 0.45
    texrat = [d.t_mo / expected_temperature(0.5 * (d.v_leading + d.v_trailing)) for d in draws]
    assert np.median(texrat) < 0.5


@pytest.mark.shared_data
def test_params_draw_from_catalogue() -> None:
    if not ICMECAT.exists():
        pytest.skip(f"shared data absent: {ICMECAT} (set EPNML_SHARED_DATA)")
    cat = pd.read_csv(ICMECAT)
    rng = np.random.default_rng(1)
    draws = [ICMEParams.draw(rng, catalogue=cat) for _ in range(50)]
    assert all(4 <= d.mo_hours <= 60 and 250 <= d.v_trailing for d in draws)
    durations = set(np.round([d.mo_hours for d in draws], 2))
    assert durations <= set(np.round(cat["mo_duration"].clip(4, 60), 2))
    with pytest.raises(ValueError, match="mo_bmean"):
        ICMEParams.draw(rng, catalogue=cat.drop(columns=["mo_bmean"]))


def test_icme_label() -> None:
    idx = pd.date_range("2024-01-01", periods=6, freq="10min")
    lab = icme_label(idx, [(idx[1], idx[3])])
    assert lab.tolist() == [0, 1, 1, 0, 0, 0]
    assert icme_label(idx, []).sum() == 0


# --------------------------------------------------------------------------- writers / demo


def test_demo_main_writes_simulated_set(tmp_path: Path) -> None:
    assert sim.main(["--out", str(tmp_path), "--days", "7", "--seed", "4",
                     "--n-icmes", "2"]) == 0
    files = sorted(p for p in tmp_path.iterdir() if p.name != "truth.csv")
    assert len(files) == 5 and all("simulated" in p.name for p in files)
    truth = pd.read_csv(tmp_path / "truth.csv", parse_dates=["icme_start_time", "mo_end_time"])
    groups = dict(group_solarwind_files(files))
    assert len(groups) == 3 and all(g.startswith("simulated_") for g in groups)
    for files_of in groups.values():
        frame = read_solarwind(list(files_of))
        assert len(frame) >= 7 * 144 - 1
    csv = next(p for p in files if p.suffix == ".csv")
    labels = read_solarwind_csv_labels(csv)
    # the CSV's labels are exactly the bins inside the truth intervals [start, end)
    assert len(truth) == 2
    inside = np.zeros(len(labels), bool)
    for start, end in zip(truth["icme_start_time"], truth["mo_end_time"], strict=True):
        inside |= (labels.index >= start) & (labels.index < end)
    assert inside.any() and (labels.to_numpy(bool) == inside).all()
    mfi = next(p for p in files if "mfi" in p.name)
    assert cdflib.CDF(str(mfi)).globalattsget()["Simulated"] == ["yes"]
    assert "SIMULATED" in next(p for p in files if p.suffix == ".fmt").read_text()
    # the written files contain gaps / fill values
    raw = cdflib.CDF(str(mfi)).varget("BGSM")
    assert (raw < -1e30).any()


# --------------------------------------------------------------------------- quicklook


def test_quicklook_png(month: tuple) -> None:
    frame, intervals = month
    start, end = intervals[0]
    # speed belongs to benchmarks (it is part of `epnml bench crossings` ingest), not here
    png = solarwind_quicklook_png(frame, start, end, "simulated ICME")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(png)) as img:
        assert abs(img.size[0] - 200) <= 4 and abs(img.size[1] - 200) <= 4
    with pytest.raises(ValueError):
        solarwind_quicklook_png(frame, end, start, "reversed")
