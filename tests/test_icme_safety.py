"""Solar-wind readers and the icme stage on hostile input (issue #11).

Non-physical values become missing data and are counted exactly; a granule without
valid data fails; a tiny file declaring a century is refused before resampling;
bad files give one-line GranuleErrors that name the file and never echo content.
Inputs are tiny, built here (seeded simulator or by hand).
"""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.limits import LimitExceeded, ResourceLimits
from epnml.ingest.readers.solarwind import (
    FRAME_COLUMNS,
    PHYSICAL_BOUNDS,
    SOLARWIND_LIMITS,
    GranuleError,
    check_extent,
    read_cdaweb_wind,
    read_omniweb,
    read_solarwind,
    read_solarwind_csv,
    read_solarwind_csv_labels,
)
from epnml.ingest.simulate.solarwind import (
    simulate_solar_wind,
    write_cdaweb_wind_pair,
    write_csv,
)
from epnml.ingest.stage import RunContext

HEADER = "time,bx,by,bz,vt,np,tp"
GOOD = "3,4,0,400,5,100000"  # bx,by,bz,vt,np,tp
MB = 2**20


def _ctx(**params: float) -> RunContext:
    return RunContext(run_id="t-safety", files_base_url="http://example.org/static/epnml",
                      started=datetime(2026, 1, 2, 3, 4, 5), make_quicklooks=False,
                      params=dict(params))


def _csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


def _times(n: int, start: str = "2024-01-01 00:00", freq: str = "10min") -> list[str]:
    return [f"{t:%Y-%m-%d %H:%M:%S}" for t in pd.date_range(start, periods=n, freq=freq)]


def _assert_frame_physical(frame: pd.DataFrame) -> None:
    """Every value of the standard frame is NaN or finite and inside its bounds."""
    assert list(frame.columns) == FRAME_COLUMNS
    assert frame.notna().any().all(), "every column keeps some data"
    for col in FRAME_COLUMNS:
        x = frame[col].dropna().to_numpy()
        lo, hi, lo_ok = PHYSICAL_BOUNDS[col]
        assert np.isfinite(x).all(), col
        assert (x <= hi).all() and ((x >= lo) if lo_ok else (x > lo)).all(), col


def _peak_mb(call: Callable[[], Any]) -> tuple[BaseException, float]:
    tracemalloc.start()
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - returned to the test to assert on
        error = exc
    else:
        raise AssertionError("expected an exception")
    finally:
        peak = tracemalloc.get_traced_memory()[1] / MB
        tracemalloc.stop()
    return error, peak


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def week() -> pd.DataFrame:
    frame, _ = simulate_solar_wind("2023-02-01", days=7, seed=11, n_icmes=2)
    return frame


@pytest.fixture(scope="module")
def stage() -> Any:
    from epnml.ingest.registry import make_stage

    return make_stage("icme")


@pytest.fixture(scope="module")
def inf_csv(week: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's CSV: inf / 1e308 in every other row (bt 1e308, vt inf, bz -inf)."""
    path = write_csv(week, tmp_path_factory.mktemp("sw") / "wind_simulated_inf.csv")
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    ibt, ivt, ibz = header.index("bt"), header.index("vt"), header.index("bz")
    out = [lines[0]]
    for i, line in enumerate(lines[1:]):
        cells = line.split(",")
        if i % 2 == 1:
            cells[ibt], cells[ivt] = "1e308", "inf"
            if i % 4 == 1:
                cells[ibz] = "-inf"
        out.append(",".join(cells))
    path.write_text("\n".join(out) + "\n")
    return path


# --------------------------------------------------------------------------- non-physical values


def test_inf_and_1e308_every_other_row_are_counted_and_dropped(inf_csv: Path,
                                                               week: pd.DataFrame) -> None:
    n = len(week)  # every row written (the simulator leaves no gaps)
    assert n == 1008
    frame = read_solarwind_csv(inf_csv)
    assert frame.attrs["invalid_values"] == {"bt": n // 2, "bz": n // 4, "vt": n // 2}
    _assert_frame_physical(frame)
    assert frame["bt"].max() < 100 and frame["vt"].max() < 2000


def test_stage_rows_from_the_inf_csv_are_finite_and_bounded(stage: Any, inf_csv: Path) -> None:
    (granule,) = stage.granules([inf_csv])
    out = stage.process(granule, _ctx(threshold=0.05))
    assert out.invalid_values == {"bt": 504, "bz": 252, "vt": 504}
    assert len(out.rows) == len(out.records) > 0
    for row in out.rows:
        numbers = {k: v for k, v in row.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)}
        assert {"event_b_max", "event_b_mean", "event_v_mean", "time_min"} <= set(numbers)
        assert all(math.isfinite(v) for v in numbers.values()), numbers
        assert 0 < row["event_b_mean"] <= row["event_b_max"] <= PHYSICAL_BOUNDS["bt"][1]
        assert 0 < row["event_v_mean"] <= PHYSICAL_BOUNDS["vt"][1]
        assert row["processing_level_desc"].endswith(
            "; 1260 non-physical input value(s) treated as missing (bt 504, bz 252, vt 504)")
    for col in ("b_max", "b_mean", "v_mean", "score", "duration_h"):
        values = out.records[col].to_numpy(dtype=float)
        assert np.isfinite(values).all(), col
    assert out.records["b_max"].max() <= 1e4


def test_nan_text_negative_and_zero_values(tmp_path: Path) -> None:
    t = _times(8)
    rows = [
        f"{t[0]},{GOOD}",
        f"{t[1]},nan,4,0,400,5,100000",        # bx: NaN text
        f"{t[2]},3,NaN,0,400,-5,100000",       # by: NaN text, np negative
        f"{t[3]},3,4,0,-400,0,100000",         # vt negative, np zero
        f"{t[4]},3,4,0,400,5,-1",              # tp negative
        f"{t[5]},3,4,,400,,0",                 # empty cells are missing, not counted; tp zero
        f"{t[6]},3,4,0,400,5,n/a",             # tp: other text
        f"{t[7]},3,4,0.5,450,6,120000",
    ]
    frame = read_solarwind_csv(_csv(tmp_path / "mixed.csv", rows))
    assert frame.attrs["invalid_values"] == {"bx": 1, "by": 1, "np": 2, "tp": 3, "vt": 1}
    _assert_frame_physical(frame)
    assert frame["np"].min() == 5.0 and frame["tp"].min() == 100000.0


def test_undeclared_fill_values_and_absurd_magnitudes(tmp_path: Path) -> None:
    t = _times(9)
    rows = [
        f"{t[0]},{GOOD}",
        f"{t[1]},-1e31,4,0,400,5,100000",        # ISTP fill in a CSV
        f"{t[2]},3,9999.99,0,400,5,100000",      # OMNI HRO B fill
        f"{t[3]},3,4,999.9,99999.9,5,100000",    # OMNI hourly B fill, SWE speed fill
        f"{t[4]},3,4,0,400,999.99,9999999",      # OMNI density / temperature fills
        f"{t[5]},3,4,20000,400,5,100000",        # |B| component above 1e4 nT
        f"{t[6]},1e308,4,0,400,5,1e308",
        # physical values that merely look like nines are kept
        f"{t[7]},3,4,0,999.9,99.9,99999",
        f"{t[8]},3,4,0.5,450,6,120000",
    ]
    frame = read_solarwind_csv(_csv(tmp_path / "fills.csv", rows))
    assert frame.attrs["invalid_values"] == {"bx": 2, "by": 1, "bz": 2, "np": 1, "tp": 2,
                                             "vt": 1}
    _assert_frame_physical(frame)
    row = frame.loc[pd.Timestamp(t[7])]
    assert (row["vt"], row["np"], row["tp"]) == (999.9, 99.9, 99999.0)


def test_clean_file_reports_no_invalid_values(tmp_path: Path, week: pd.DataFrame) -> None:
    frame = read_solarwind_csv(write_csv(week, tmp_path / "simulated_clean.csv"))
    assert frame.attrs["invalid_values"] == {}
    _assert_frame_physical(frame)


# --------------------------------------------------------------------------- no valid data


def test_all_inf_csv_fails(tmp_path: Path) -> None:
    path = _csv(tmp_path / "allinf.csv", [f"{t},inf,inf,-inf,inf,inf,inf" for t in _times(3)])
    with pytest.raises(GranuleError) as err:
        read_solarwind_csv(path)
    assert str(err.value) == f"{path}: no valid solar-wind samples (18 of 18 values were not " \
                             "physical)"


def test_all_inf_csv_fails_in_the_stage(stage: Any, tmp_path: Path) -> None:
    path = _csv(tmp_path / "allinf.csv", [f"{t},inf,inf,-inf,inf,inf,inf" for t in _times(3)])
    (granule,) = stage.granules([path])
    with pytest.raises(GranuleError, match=r"allinf.csv: no valid solar-wind samples "
                                           r"\(18 of 18 values were not physical\)$"):
        stage.process(granule, _ctx())


def test_all_fill_values_fail(tmp_path: Path) -> None:
    rows = [f"{t},9999.99,9999.99,9999.99,99999.9,999.99,9999999" for t in _times(4)]
    path = _csv(tmp_path / "allfill.csv", rows)
    with pytest.raises(GranuleError) as err:
        read_solarwind_csv(path)
    assert str(err.value) == f"{path}: no valid solar-wind samples (24 of 24 values were not " \
                             "physical)"


def test_one_valid_sample_is_not_enough(tmp_path: Path) -> None:
    t = _times(3)
    rows = [f"{t[0]},inf,inf,inf,inf,inf,inf", f"{t[1]},{GOOD}", f"{t[2]},1e308,1,1,1e308,1,1"]
    path = _csv(tmp_path / "onevalid.csv", rows)
    with pytest.raises(GranuleError) as err:
        read_solarwind_csv(path)
    assert str(err.value) == (f"{path}: only 1 valid solar-wind sample(s) with both field and "
                              "plasma, need 2 (8 of 18 values were not physical)")


def test_a_column_without_any_valid_value_fails(tmp_path: Path) -> None:
    rows = [f"{t},3,4,0,400,-1,100000" for t in _times(3)]
    with pytest.raises(GranuleError, match=r"negnp.csv: column\(s\) without any valid value: "
                                           r"np \(3 value\(s\) not physical\)$"):
        read_solarwind_csv(_csv(tmp_path / "negnp.csv", rows))


# --------------------------------------------------------------------------- bounded work


def test_limits_declared_by_the_stage(stage: Any) -> None:
    assert type(stage).limits is SOLARWIND_LIMITS
    assert SOLARWIND_LIMITS == ResourceLimits(max_span_days=8052, max_samples=1_200_000,
                                              max_memory_mb=1000)
    # what must pass: two years of 1-min data, 21 years (1998-2018) of hourly OMNI2
    one_min = pd.date_range("2019-01-01", "2020-12-31 23:59", freq="1min")
    assert len(one_min) == 1_052_640
    check_extent("two_years_1min.csv", one_min, SOLARWIND_LIMITS, fields_per_sample=12)
    hourly = pd.date_range("1998-01-01", "2018-12-31 23:00", freq="1h")
    check_extent("omni2_1998_2018.lst", hourly, SOLARWIND_LIMITS, fields_per_sample=55)
    with pytest.raises(LimitExceeded, match="time span 8401 days exceeds"):
        check_extent("omni2_1995_2017.lst", pd.date_range("1995-01-01", "2018-01-01",
                                                          freq="1h"), SOLARWIND_LIMITS)


def test_century_csv_is_refused_before_resampling(tmp_path: Path) -> None:
    rows = [f"1900-01-01 00:00:00,{GOOD}", f"1960-01-01 00:00:00,{GOOD}",
            f"2020-01-01 00:00:00,{GOOD}"]
    path = _csv(tmp_path / "century.csv", rows)
    assert path.stat().st_size < 300
    error, peak = _peak_mb(lambda: read_solarwind_csv(path))
    assert isinstance(error, LimitExceeded)
    assert str(error) == f"{path}: time span 43829 days exceeds the limit of 8052 days"
    assert peak < 50, f"peak {peak:.1f} MB"
    error, peak = _peak_mb(lambda: read_solarwind_csv_labels(path))
    assert isinstance(error, LimitExceeded) and peak < 50


def test_five_centuries_do_not_overflow(tmp_path: Path) -> None:
    """1700..2200 is more than a 64-bit nanosecond Timedelta holds (292 years)."""
    path = _csv(tmp_path / "wide.csv", [f"1700-01-01 00:00:00,{GOOD}",
                                        f"2200-01-01 00:00:00,{GOOD}"])
    with pytest.raises(LimitExceeded, match=r"wide.csv: time span 182621 days exceeds"):
        read_solarwind([path])


def test_century_csv_is_refused_by_the_stage(stage: Any, tmp_path: Path) -> None:
    rows = [f"1900-01-01 00:00:00,{GOOD}", f"2020-01-01 00:00:00,{GOOD}"]
    (granule,) = stage.granules([_csv(tmp_path / "century.csv", rows)])
    error, peak = _peak_mb(lambda: stage.process(granule, _ctx()))
    assert isinstance(error, LimitExceeded) and error.quantity == "time span"
    assert peak < 50, f"peak {peak:.1f} MB"


def test_tighter_limits_samples_and_memory(tmp_path: Path) -> None:
    rows = [f"2024-01-01 00:00:00,{GOOD}", f"2024-01-31 00:00:00,{GOOD}"]
    path = _csv(tmp_path / "month.csv", rows)
    with pytest.raises(LimitExceeded, match=r"month.csv: 10-min samples after resampling "
                                            r"4321 exceeds the limit of 1000$"):
        read_solarwind_csv(path, ResourceLimits(max_span_days=100, max_samples=1000))
    with pytest.raises(LimitExceeded, match=r"month.csv: samples in the file 2 exceeds the "
                                            r"limit of 1$"):
        read_solarwind_csv(path, ResourceLimits(max_samples=1))
    with pytest.raises(LimitExceeded, match=r"month.csv: estimated working memory 2.1 MB "
                                            r"exceeds the limit of 1 MB$"):
        read_solarwind_csv(path, ResourceLimits(max_memory_mb=1))
    assert len(read_solarwind_csv(path, ResourceLimits(max_span_days=31))) == 4321


# --------------------------------------------------------------------------- bad files


def test_bad_files_give_one_line_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    header_only = _csv(tmp_path / "header.csv", [])
    missing = _csv(tmp_path / "nonp.csv", [f"{t},3,4,0,400,100000" for t in _times(3)],
                   header="time,bx,by,bz,vt,tp")
    secret = "s3cr3t-t0ken-value"
    badtime = _csv(tmp_path / "badtime.csv", [f"{_times(1)[0]},{GOOD}", f"{secret},{GOOD}"])
    t = _times(2)
    dup = _csv(tmp_path / "dup.csv", [f"{t[0]},{GOOD}", f"{t[1]},{GOOD}", f"{t[1]},{GOOD}"])
    back = _csv(tmp_path / "back.csv", [f"{t[1]},{GOOD}", f"{t[0]},{GOOD}"])
    year1000 = _csv(tmp_path / "year1000.csv", [f"1000-01-01,{GOOD}", f"{t[0]},{GOOD}"])
    numeric = _csv(tmp_path / "numeric.csv", [f"1,{GOOD}", f"2,{GOOD}"])
    extra = _csv(tmp_path / "extra.csv", [f"{t[0]},{GOOD},{secret}", f"{t[1]},{GOOD}"])
    ragged = _csv(tmp_path / "ragged.csv", [f"{t[0]},{GOOD}", f"{t[1]},{GOOD},{secret}"])
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"time,bx\n\xff\xfe\x00\x81" + secret.encode() + b"\n")
    comments = tmp_path / "comments.csv"
    comments.write_text(f"# {secret}\n")
    cases = [
        (empty, "empty file"),
        (header_only, "no data rows (header only)"),
        (missing, "missing required column(s): np"),
        (badtime, "unparseable time (or none) at data row 2 (expected ISO 8601 in 1678-2261, "
                  "e.g. 2024-05-10 00:00:00)"),
        (year1000, "unparseable time (or none) at data row 1 (expected ISO 8601 in 1678-2261, "
                   "e.g. 2024-05-10 00:00:00)"),
        (numeric, "the time column holds numbers, expected ISO 8601 times (e.g. 2024-05-10 "
                  "00:00:00)"),
        (extra, "not a readable CSV (rows with more fields than the header)"),
        (ragged, "not a readable CSV (rows with a different number of fields)"),
        (dup, "duplicate times at record 2: 2024-01-01 00:10:00 after 2024-01-01 00:10:00 "
              "(times must increase; rejected rather than sorted)"),
        (back, "non-increasing times at record 1: 2024-01-01 00:00:00 after "
               "2024-01-01 00:10:00 (times must increase; rejected rather than sorted)"),
        (binary, "not a readable CSV: not UTF-8 text"),
        (comments, "not a readable CSV (no header line)"),
    ]
    for path, reason in cases:
        with pytest.raises(GranuleError) as err:
            read_solarwind([path])
        assert str(err.value) == f"{path}: {reason}"
        assert "\n" not in str(err.value) and secret not in str(err.value)


def test_an_empty_file_is_one_failed_granule_not_a_failed_batch(stage: Any,
                                                                 tmp_path: Path) -> None:
    good = _csv(tmp_path / "good.csv", [f"{t},{GOOD}" for t in _times(3)])
    empties = [tmp_path / name for name in ("zero.csv", "zero_mfi.cdf", "blank.dat")]
    for path in empties:
        path.write_bytes(b"")
    granules = stage.granules([good, *empties])
    assert [g.granule_id for g in granules] == ["good", "zero", "zero_mfi", "blank"]
    assert [g.paths for g in granules] == [(good,), *[(p,) for p in empties]]
    for granule, path in zip(granules[1:], empties, strict=True):
        with pytest.raises(GranuleError) as err:
            stage.process(granule, _ctx())
        assert str(err.value) == f"{path}: empty file"


# --------------------------------------------------------------------------- CDF pairs


def _day(start: str = "2024-03-01", days: float = 1) -> pd.DataFrame:
    frame, _ = simulate_solar_wind(start, days=days, seed=3, n_icmes=0)
    return frame


def test_cdf_pair_counts_values_inside_validmin_validmax(tmp_path: Path) -> None:
    frame = _day()
    frame.iloc[10:15, frame.columns.get_loc("bx")] = 20000.0   # within VALIDMAX 65534
    frame.iloc[20:23, frame.columns.get_loc("np")] = 9999.0    # all nines, VALIDMAX 9999.99
    frame.iloc[30, frame.columns.get_loc("vt")] = 6000.0       # > 5000 km/s
    frame.iloc[40:42, frame.columns.get_loc("tp")] = 5e8       # W ~ 2900 km/s: T > 1e8 K
    frame.iloc[50:52, frame.columns.get_loc("np")] = np.nan    # declared fill: not counted
    mfi, swe = write_cdaweb_wind_pair(frame, tmp_path / "simulated_wind_mfi_h0_a.cdf",
                                      tmp_path / "simulated_wind_swe_h1_a.cdf")
    out = read_cdaweb_wind(mfi, swe)
    assert out.attrs["invalid_values"] == {"bx": 5, "np": 3, "tp": 2, "vt": 1}
    _assert_frame_physical(out)
    assert read_solarwind([swe, mfi]).attrs["invalid_values"] == out.attrs["invalid_values"]


def test_cdf_pair_without_physical_field_fails(tmp_path: Path) -> None:
    frame = _day(days=0.25)  # 36 records
    frame[["bx", "by", "bz"]] = 20000.0
    frame["bt"] = 20000.0
    mfi, swe = write_cdaweb_wind_pair(frame, tmp_path / "simulated_wind_mfi_h0_b.cdf",
                                      tmp_path / "simulated_wind_swe_h1_b.cdf")
    with pytest.raises(GranuleError) as err:
        read_cdaweb_wind(mfi, swe)
    assert str(err.value) == (f"{mfi}, {swe}: no valid solar-wind samples "
                              "(144 of 252 values were not physical)")


def test_cdf_pair_spanning_a_century_is_refused(tmp_path: Path) -> None:
    frame = _day(days=1)[:4].copy()
    # three 10-min records and one 120 years later (the writer's cadence is the median step)
    frame.index = pd.DatetimeIndex(["1951-01-01 00:00", "1951-01-01 00:10", "1951-01-01 00:20",
                                    "2071-01-01 00:00"], name="time")
    mfi, swe = write_cdaweb_wind_pair(frame, tmp_path / "simulated_wind_mfi_h0_c.cdf",
                                      tmp_path / "simulated_wind_swe_h1_c.cdf")
    error, peak = _peak_mb(lambda: read_cdaweb_wind(mfi, swe))
    assert isinstance(error, LimitExceeded) and error.quantity == "time span"
    assert str(error) == f"{mfi}: time span 43830 days exceeds the limit of 8052 days"
    assert peak < 50, f"peak {peak:.1f} MB"
    # epochs no spacecraft can have (decoded garbage gives any year) are refused outright
    frame.index = pd.DatetimeIndex(["1901-01-01 00:00", "1901-01-01 00:10", "1901-01-01 00:20",
                                    "2021-01-01 00:00"], name="time")
    mfi, swe = write_cdaweb_wind_pair(frame, tmp_path / "simulated_wind_mfi_h0_e.cdf",
                                      tmp_path / "simulated_wind_swe_h1_e.cdf")
    with pytest.raises(GranuleError) as err:
        read_cdaweb_wind(mfi, swe)
    assert str(err.value) == f"{mfi}: Epoch has times outside 1950-2099: not the epochs of " \
                             "spacecraft data"


def test_cdf_record_count_checked_before_reading(tmp_path: Path) -> None:
    mfi, swe = write_cdaweb_wind_pair(_day(days=0.25), tmp_path / "simulated_wind_mfi_h0_d.cdf",
                                      tmp_path / "simulated_wind_swe_h1_d.cdf")
    with pytest.raises(LimitExceeded, match=r"simulated_wind_mfi_h0_d.cdf: records of Epoch 36 "
                                            r"exceeds the limit of 10$"):
        read_solarwind([mfi, swe], ResourceLimits(max_samples=10))


# --------------------------------------------------------------------------- OMNIWeb listings

OMNI_FMT = (
    " FORMAT OF THE SUBSETTED FILE\n    \n ITEMS                      FORMAT   \n     \n"
    " 1 YEAR                          I4        \n"
    " 2 DOY                           I4        \n"
    " 3 Hour                          I3        \n"
    " 4 SW Plasma Speed, km/s         F6.0      \n"
    " 5 BX, nT (GSE, GSM)             F6.1      \n"
    " 6 BY, nT (GSM)                  F6.1      \n"
    " 7 BZ, nT (GSM)                  F6.1      \n"
    " 8 SW Plasma Temperature, K      F9.0      \n"
    " 9 SW Proton Density, N/cm^3     F6.1      \n"
    "10 Plasma beta                   F6.2      \n"
)


def _omni(tmp_path: Path, name: str, lines: list[str]) -> Path:
    (tmp_path / f"{name}.fmt").write_text(OMNI_FMT)
    lst = tmp_path / f"{name}.lst"
    lst.write_text("\n".join(lines) + "\n")
    return lst


def test_omni_listing_counts_non_physical_values(tmp_path: Path) -> None:
    lst = _omni(tmp_path, "omni2_bad", [
        "2020 1 0 400. -3.1 4.0 -1.2 80000. 5.0 0.50",
        "2020 1 1 nan -3.2 4.1 -1.3 81000. 5.1 0.51",      # NaN text speed
        "2020 1 2 410. 1e308 4.2 -1.4 82000. 5.2 0.52",    # absurd BX
        "2020 1 3 420. -3.3 4.3 -1.5 83000. -2.0 0.53",    # negative density
        "2020 1 4 430. -3.4 4.4 9999.99 84000. 5.3 0.54",  # fill of another width
        "2020 1 5 440. -3.5 4.5 999.9 9999999. 999.9 9.99",  # declared fills: not counted
        "2020 1 6 450. -3.6 4.6 -1.6 85000. 5.4 0.55",
    ])
    frame = read_omniweb(lst)
    assert frame.attrs["invalid_values"] == {"bx": 1, "bz": 1, "np": 1, "vt": 1}
    _assert_frame_physical(frame)


def test_omni_listing_all_inf_fails(tmp_path: Path) -> None:
    lst = _omni(tmp_path, "omni2_inf", [f"2020 1 {h} inf inf inf -inf inf inf inf"
                                        for h in range(3)])
    with pytest.raises(GranuleError) as err:
        read_omniweb(lst)
    assert str(err.value) == f"{lst}: no valid solar-wind samples (18 of 18 values were not " \
                             "physical)"


def test_omni_listing_spanning_a_century_is_refused(tmp_path: Path) -> None:
    lst = _omni(tmp_path, "omni2_century", ["1950 1 0 400. -3.1 4.0 -1.2 80000. 5.0 0.50",
                                            "2070 1 0 400. -3.1 4.0 -1.2 80000. 5.0 0.50"])
    error, peak = _peak_mb(lambda: read_solarwind([lst]))
    assert isinstance(error, LimitExceeded)
    assert str(error) == f"{lst}: time span 43830 days exceeds the limit of 8052 days"
    assert peak < 50, f"peak {peak:.1f} MB"


def test_omni_listing_bad_field_and_bad_year(tmp_path: Path) -> None:
    secret = "s3cr3t"
    lst = _omni(tmp_path, "omni2_text", [f"2020   1  0  400.  -3.1   4.0{secret}   80000."
                                         "   5.0  0.50"])
    with pytest.raises(GranuleError) as err:
        read_omniweb(lst)
    assert str(err.value) == f"{lst}: line 1 does not match the .fmt (10 items): a field is " \
                             "not a number"
    lst = _omni(tmp_path, "omni2_year", ["99999 1 0 400. -3.1 4.0 -1.2 80000. 5.0 0.50",
                                         "2020 1 1 400. -3.1 4.0 -1.2 80000. 5.0 0.50"])
    with pytest.raises(GranuleError, match=r"omni2_year.lst: time columns out of range "
                                           r"\(year 1950-2100, DOY 1-366"):
        read_omniweb(lst)


# --------------------------------------------------------------------------- real data

#: the NASA OMNI2 hourly record (README of the shared data): 55 words.
OMNI2_FORMAT = ("2I4,I3,I5,2I3,2I4,14F6.1,F9.0,F6.1,F6.0,2F6.1,F6.3,F6.2,F9.0,F6.1,F6.0,2F6.1,"
                "F6.3,2F7.2,F6.1,I3,I4,I6,I5,F10.2,5F9.2,I3,I4,F6.1,F6.1,2I6,F5.1")
OMNI2_NAMES = {0: "YEAR", 1: "DOY", 2: "Hour", 8: "Scalar B, nT", 12: "BX, nT (GSE, GSM)",
               13: "BY, nT (GSE)", 14: "BZ, nT (GSE)", 15: "BY, nT (GSM)", 16: "BZ, nT (GSM)",
               22: "SW Plasma Temperature, K", 23: "SW Proton Density, N/cm^3",
               24: "SW Plasma Speed, km/s"}


@pytest.mark.shared_data
def test_real_data_have_no_non_physical_values(shared_data: Path, tmp_path: Path) -> None:
    sw = shared_data / "solarwind"
    words: list[str] = []
    for token in OMNI2_FORMAT.split(","):
        count = token[:-len(token.lstrip("0123456789"))] or "1"
        words += [token.lstrip("0123456789")] * int(count)
    assert len(words) == 55
    lst = tmp_path / "omni2_2003.lst"
    lst.write_bytes((sw / "omni2_hourly" / "omni2_2003.dat").read_bytes())
    lst.with_suffix(".fmt").write_text("".join(
        f"{k + 1:2d} {OMNI2_NAMES.get(k, f'Word {k}'):<30s}{w}\n" for k, w in enumerate(words)))
    omni = read_omniweb(lst)
    assert omni.attrs["invalid_values"] == {}
    assert len(omni) == 52555 and omni["bt"].notna().mean() > 0.99
    _assert_frame_physical(omni)
    csv = read_solarwind_csv(sw / "wind_2019_10min.csv")
    assert csv.attrs["invalid_values"] == {}
    pair = read_cdaweb_wind(sw / "wind_mfi_h0_20240510_20240512.cdf",
                            sw / "wind_swe_h1_20240510_20240512.cdf")
    assert pair.attrs["invalid_values"] == {}
    _assert_frame_physical(pair)
