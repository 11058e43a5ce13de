"""OMNI2 hourly reader (NASA ``omni2_YYYY.dat``) and derived quantities in every reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.readers.omni2 import LINE_WIDTH, OMNI2_ITEMS, read_omni2
from epnml.ingest.readers.solarwind import (
    FRAME_COLUMNS,
    group_solarwind_files,
    read_omniweb,
    read_solarwind,
    read_solarwind_csv,
)
from epnml.ingest.stage import GranuleError
from tests.fixtures.make_omni2_fixtures import (
    EXPECTED_INVALID,
    FIRST_RECORD,
    make_omni2_fixtures,
)


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_omni2_fixtures(tmp_path_factory.mktemp("omni2"))


def test_format_is_the_documented_one() -> None:
    assert len(OMNI2_ITEMS) == 55
    assert LINE_WIDTH == 327


def test_single_file(fx: dict[str, Path]) -> None:
    frame = read_solarwind([fx["omni2_2015"]])
    assert list(frame.columns) == FRAME_COLUMNS
    # 72 hourly values at hh:30 -> 71 hours of 10-min bins + 1
    assert len(frame) == 427
    assert frame.index[0] == pd.Timestamp("2015-01-01 00:30")
    assert frame.index[-1] == pd.Timestamp("2015-01-03 23:30")
    first = frame.iloc[0]
    for key, value in FIRST_RECORD.items():
        assert first[key] == pytest.approx(value), key
    assert frame.attrs["invalid_values"] == EXPECTED_INVALID
    # declared fills are missing, not counted: speed at hour 5, density at hour 6, field at 7
    assert np.isnan(frame.loc[pd.Timestamp("2015-01-01 05:30"), "vt"])
    assert np.isnan(frame.loc[pd.Timestamp("2015-01-01 06:30"), "np"])
    assert np.isnan(frame.loc[pd.Timestamp("2015-01-01 07:30"), "bx"])
    # non-physical values are missing too (and counted above)
    assert np.isnan(frame.loc[pd.Timestamp("2015-01-01 10:30"), "np"])
    assert np.isnan(frame.loc[pd.Timestamp("2015-01-01 11:30"), "tp"])
    assert np.isnan(frame.loc[pd.Timestamp("2015-01-01 12:30"), "vt"])
    values = frame.to_numpy()
    assert np.nanmax(np.abs(values[:, :7])) < 1e6 + 1  # no fill value reached the frame


def test_two_yearly_files_are_one_granule(fx: dict[str, Path]) -> None:
    groups = group_solarwind_files([fx["omni2_2016"], fx["omni2_2015"]])
    assert [g for g, _ in groups] == ["omni2_2015_2016"]
    assert groups[0][1] == (fx["omni2_2015"], fx["omni2_2016"])
    frame = read_solarwind([fx["omni2_2016"], fx["omni2_2015"]])
    assert frame.index[0] == pd.Timestamp("2015-01-01 00:30")
    assert frame.index[-1] == pd.Timestamp("2016-01-02 23:30")
    assert frame.attrs["invalid_values"] == EXPECTED_INVALID


def test_concatenated_years_in_one_file(fx: dict[str, Path], tmp_path: Path) -> None:
    both = tmp_path / "omni2_all.dat"
    both.write_text(fx["omni2_2015"].read_text() + fx["omni2_2016"].read_text())
    frame = read_omni2(both)
    assert frame.index[-1] == pd.Timestamp("2016-01-02 23:30")
    twice = tmp_path / "omni2_twice.dat"
    twice.write_text(fx["omni2_2015"].read_text() * 2)
    with pytest.raises(GranuleError, match="non-increasing times at record 72"):
        read_omni2(twice)


@pytest.mark.parametrize("name, message", [
    ("bad_truncated", "line 3 has 200 characters and 36 words: not an OMNI2 record"),
    ("bad_word", "line 4, word 25: not a number"),
])
def test_bad_files(fx: dict[str, Path], name: str, message: str) -> None:
    with pytest.raises(GranuleError, match=message):
        read_solarwind([fx[name]])


def test_not_omni2_dat_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "notes.dat"
    bad.write_text("hello world\n")
    with pytest.raises(GranuleError, match="unknown solar-wind file type"):
        group_solarwind_files([bad])


def test_cli_predict_single_dat(fx: dict[str, Path], tmp_path: Path) -> None:
    from epnml.cli import main

    out = tmp_path / "events.csv"
    assert main(["predict", "icme", str(fx["omni2_2015"]), "-o", str(out), "--workers", "1",
                 "--no-progress"]) == 0
    events = pd.read_csv(out)
    assert {"start", "end", "score", "spacecraft"} <= set(events.columns)
    assert set(events["spacecraft"]) <= {"OMNI"}


def test_real_omni2_year(shared_data: Path) -> None:
    path = shared_data / "solarwind" / "omni2_hourly" / "omni2_2015.dat"
    if not path.exists():
        pytest.skip(f"{path.name} not in shared data")
    frame = read_solarwind([path])
    assert len(frame) == 8759 * 6 + 1
    first = frame.iloc[0]
    # the first record of the NASA file: |B| 6.1, Bx 5.1, By/Bz GSM -2.9/1.1, T 142461, n 3.2, V 566
    assert (first["bt"], first["bx"], first["by"], first["bz"]) == (6.1, 5.1, -2.9, 1.1)
    assert (first["tp"], first["np"], first["vt"]) == (142461.0, 3.2, 566.0)
    assert frame.attrs["invalid_values"] == {}
    assert frame["vt"].notna().mean() > 0.95


# ----------------------------------------------------------------------------- derivation
def _omniweb_1min(tmp_path: Path, names: list[str], rows: list[str]) -> Path:
    fmt = tmp_path / "omni_min.fmt"
    items = [("Year", "I4"), ("Day", "I4"), ("Hour", "I3"), ("Minute", "I3"),
             ("BX, nT (GSE, GSM)", "F8.2"), ("BY, nT (GSM)", "F8.2"), ("BZ, nT (GSM)", "F8.2")]
    items += [(n, "F8.1") for n in names]
    items += [("Proton Density, n/cc", "F7.2"), ("Temperature, K", "F9.0")]
    fmt.write_text("".join(f"{k + 1:2d} {n:<30s} {f}\n" for k, (n, f) in enumerate(items)))
    lst = tmp_path / "omni_min.lst"
    lst.write_text("\n".join(rows) + "\n")
    return lst


def test_omniweb_speed_from_velocity_components(tmp_path: Path) -> None:
    rows = [f"2024 100  0 {m:2d}    1.00    2.00   -2.00  -400.0    30.0     0.0   5.00   90000."
            for m in range(0, 30)]
    lst = _omniweb_1min(tmp_path, ["Vx Velocity, km/s", "Vy Velocity, km/s",
                                   "Vz Velocity, km/s"], rows)
    frame = read_omniweb(lst)
    assert frame["vt"].iloc[0] == pytest.approx(np.hypot(400.0, 30.0))
    assert frame["bt"].iloc[0] == pytest.approx(3.0)
    assert frame["beta"].notna().all() and frame["pdyn"].notna().all()


def test_omniweb_missing_velocity_component_is_named(tmp_path: Path) -> None:
    rows = [f"2024 100  0 {m:2d}    1.00    2.00   -2.00  -400.0    30.0   5.00   90000."
            for m in range(0, 30)]
    lst = _omniweb_1min(tmp_path, ["Vx Velocity, km/s", "Vy Velocity, km/s"], rows)
    with pytest.raises(GranuleError, match=r"missing required OMNI item\(s\): speed \(or all of "
                       r"Vx, Vy, Vz velocity; has only Vx, Vy\)$"):
        read_omniweb(lst)


def test_csv_speed_from_components(tmp_path: Path) -> None:
    csv = tmp_path / "components.csv"
    lines = ["time,bx,by,bz,vx,vy,vz,np,tp"]
    lines += [f"2024-01-01 00:{m:02d}:00,1,2,-2,-400,30,0,5,90000" for m in range(0, 60, 10)]
    csv.write_text("\n".join(lines) + "\n")
    frame = read_solarwind_csv(csv)
    assert frame["vt"].to_numpy() == pytest.approx([np.hypot(400.0, 30.0)] * 6)
    assert frame["bt"].to_numpy() == pytest.approx([3.0] * 6)


def test_csv_without_speed_names_it(tmp_path: Path) -> None:
    csv = tmp_path / "nospeed.csv"
    csv.write_text("time,bx,by,bz,vx,np,tp\n2024-01-01 00:00:00,1,2,-2,-400,5,90000\n")
    with pytest.raises(GranuleError, match=r"missing required column\(s\): vt \(or all of vx, "
                       r"vy, vz\)$"):
        read_solarwind_csv(csv)
