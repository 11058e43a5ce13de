"""Solar-wind readers: round trips of the simulator's files, real shared data, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epnml.config import load_settings
from epnml.ingest.readers.solarwind import (
    FRAME_COLUMNS,
    GranuleError,
    dynamic_pressure,
    expected_temperature,
    group_solarwind_files,
    proton_beta,
    read_cdaweb_wind,
    read_omniweb,
    read_solarwind,
    read_solarwind_csv,
    read_solarwind_csv_labels,
    temperature_from_thermal_speed,
)
from epnml.ingest.simulate.solarwind import icme_label
from tests.fixtures.make_icme_fixtures import (
    LONG_GAP,
    SHORT_GAP,
    fixture_truth,
    make_icme_fixtures,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = load_settings().shared_data
SOLARWIND = SHARED / "solarwind"
REAL_MFI = SOLARWIND / "wind_mfi_h0_20240510_20240512.cdf"
REAL_SWE = SOLARWIND / "wind_swe_h1_20240510_20240512.cdf"
REAL_CSV = SOLARWIND / "wind_2019_10min.csv"


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return dict(make_icme_fixtures(tmp_path_factory.mktemp("solarwind")))


@pytest.fixture(scope="module")
def truth() -> tuple[pd.DataFrame, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    return fixture_truth()


def _needs(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"shared data absent: {path} (set EPNML_SHARED_DATA to ../shared/data)")


def _check_standard(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == FRAME_COLUMNS
    assert all(frame.dtypes == np.float64)
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "time"
    assert frame.index.tz is None
    assert frame.index.is_monotonic_increasing
    steps = np.unique(np.diff(frame.index.as_unit("ns").asi8))
    assert steps.tolist() == [600 * 10**9], "index must be a regular 10-min grid"
    assert (frame.index.as_unit("ns").asi8 % (600 * 10**9) == 0).all(), "bins start on :x0"


def _valid_rows(truth_frame: pd.DataFrame) -> pd.Index:
    return truth_frame.index[truth_frame.notna().all(axis=1)]


def _in_gap(index: pd.DatetimeIndex, gap: tuple[pd.Timestamp, pd.Timestamp]) -> np.ndarray:
    return np.asarray((index >= gap[0]) & (index < gap[1]))


# --------------------------------------------------------------------------- round trips


def test_csv_round_trip(fx: dict[str, Path], truth: tuple) -> None:
    frame = read_solarwind_csv(fx["csv"])
    _check_standard(frame)
    expect = truth[0]
    assert frame.index[0] == expect.index[0] and frame.index[-1] == expect.index[-1]
    rows = _valid_rows(expect)
    np.testing.assert_allclose(frame.loc[rows].to_numpy(), expect.loc[rows].to_numpy(),
                               rtol=1e-5, atol=0)  # written with %.6g


def test_gaps_short_interpolated_long_left_nan(fx: dict[str, Path], truth: tuple) -> None:
    frame = read_solarwind_csv(fx["csv"])
    short, long_ = _in_gap(frame.index, SHORT_GAP), _in_gap(frame.index, LONG_GAP)
    assert short.sum() == 3 and long_.sum() == 18
    assert frame[short].notna().all().all(), "gaps <= 1 h are interpolated"
    assert frame[long_].isna().all().all(), "gaps > 1 h stay NaN"
    # linear between the neighbours
    i0 = int(np.flatnonzero(short)[0]) - 1
    before, after = frame["vt"].iloc[i0], frame["vt"].iloc[i0 + 4]
    np.testing.assert_allclose(frame["vt"].iloc[i0 + 2], before + (after - before) / 2, rtol=1e-9)


def test_csv_labels(fx: dict[str, Path], truth: tuple) -> None:
    labels = read_solarwind_csv_labels(fx["csv"])
    frame = read_solarwind_csv(fx["csv"])
    assert labels.index.equals(frame.index)
    assert set(np.unique(labels)) <= {0, 1}
    rows = _valid_rows(truth[0])
    expect = pd.Series(icme_label(truth[0].index, truth[1]), index=truth[0].index)
    assert (labels.loc[rows] == expect.loc[rows]).all()
    assert labels.sum() > 0


def test_labels_absent_is_an_error(fx: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "nolabels.csv"
    pd.read_csv(fx["csv"]).drop(columns=["icme"]).to_csv(path, index=False)
    read_solarwind_csv(path)  # fine as data
    with pytest.raises(GranuleError, match="nolabels.csv.*icme"):
        read_solarwind_csv_labels(path)


def test_cdf_pair_round_trip(fx: dict[str, Path], truth: tuple) -> None:
    frame = read_cdaweb_wind(fx["cdf_mfi"], fx["cdf_swe"])
    _check_standard(frame)
    rows = _valid_rows(truth[0])
    # CDF_FLOAT storage: ~1e-7 relative; T via the thermal speed round trip
    np.testing.assert_allclose(frame.loc[rows].to_numpy(), truth[0].loc[rows].to_numpy(),
                               rtol=2e-6, atol=1e-12)
    assert frame[_in_gap(frame.index, LONG_GAP)].isna().all().all()


def test_omni_5min_round_trip(fx: dict[str, Path], truth: tuple) -> None:
    frame = read_omniweb(fx["omni_lst"], fx["omni_fmt"])
    _check_standard(frame)
    expect = truth[0]
    rows = _valid_rows(expect)
    got, exp = frame.loc[rows], expect.loc[rows]
    # tolerances = half the last digit of the FORTRAN formats (F8.2, F8.1, F7.2, F9.0)
    for col, atol in {"bx": 0.006, "by": 0.006, "bz": 0.006, "bt": 0.006, "vt": 0.06,
                      "np": 0.006, "tp": 0.6}.items():
        np.testing.assert_allclose(got[col], exp[col], atol=atol, rtol=0, err_msg=col)
    for col in ("beta", "pdyn", "texrat"):
        np.testing.assert_allclose(got[col], exp[col], rtol=0.03, err_msg=col)
    assert frame[_in_gap(frame.index, LONG_GAP)].isna().all().all()


def test_omni_sibling_fmt_found(fx: dict[str, Path]) -> None:
    a = read_omniweb(fx["omni_lst"])
    b = read_omniweb(fx["omni_lst"], fx["omni_fmt"])
    pd.testing.assert_frame_equal(a, b)


def test_omni_hourly(fx: dict[str, Path], truth: tuple) -> None:
    frame = read_omniweb(fx["omni_hourly_lst"], fx["omni_hourly_fmt"])
    _check_standard(frame)
    hourly = truth[0].resample("1h").mean()
    # the hour's mean sits in the bin holding the hour's centre (hh:30)
    at_centres = frame.reindex(hourly.index + pd.Timedelta("30min"))
    ok = hourly["vt"].notna().to_numpy()
    np.testing.assert_allclose(at_centres["vt"].to_numpy()[ok], hourly["vt"].to_numpy()[ok],
                               atol=0.6)
    np.testing.assert_allclose(at_centres["bz"].to_numpy()[ok], hourly["bz"].to_numpy()[ok],
                               atol=0.06)
    # between centres: linear interpolation (gap of 5 bins <= 1 h)
    assert frame["vt"].loc["2024-03-01 01:00":"2024-03-01 02:00"].notna().all()


def test_dispatch_and_grouping(fx: dict[str, Path], truth: tuple) -> None:
    good = [fx[k] for k in ("csv", "cdf_mfi", "cdf_swe", "omni_lst", "omni_fmt",
                            "omni_hourly_lst", "omni_hourly_fmt")]
    groups = dict(group_solarwind_files(list(reversed(good))))
    assert set(groups) == {
        "simulated_wind_20240301_20240303_10min",
        "simulated_wind_mfi_swe_20240301_20240303",
        "simulated_omni_hro_5min_20240301_20240303",
        "simulated_omni2_hourly_20240301_20240303",
    }
    for gid, files in groups.items():
        assert gid == gid.lower() and " " not in gid and "#" not in gid
        frame = read_solarwind(list(files))
        _check_standard(frame)
        if "hourly" in gid:
            continue  # hourly means: checked in test_omni_hourly
        common = frame.index.intersection(_valid_rows(truth[0]))
        np.testing.assert_allclose(frame.loc[common, "vt"], truth[0].loc[common, "vt"],
                                   rtol=0.01, err_msg=gid)
    # pair order does not matter; a .lst alone finds its .fmt
    assert groups["simulated_wind_mfi_swe_20240301_20240303"][0] == fx["cdf_mfi"]
    read_solarwind([fx["cdf_swe"], fx["cdf_mfi"]])
    read_solarwind([fx["omni_lst"]])
    with pytest.raises(GranuleError, match="granules given"):
        read_solarwind([fx["csv"], fx["omni_lst"]])


# --------------------------------------------------------------------------- bad input

BAD_CASES = [
    ("missing file", lambda fx: read_solarwind_csv(fx["csv"].with_name("absent.csv")),
     "absent.csv", "not found"),
    ("truncated cdf", lambda fx: read_cdaweb_wind(fx["bad_truncated_cdf"], fx["cdf_swe"]),
     "simulated_wind_mfi_h0_truncated.cdf", "unreadable CDF"),
    ("not a cdf", lambda fx: read_solarwind([fx["bad_not_cdf"]]),
     "simulated_not_a_cdf.cdf", "not a CDF"),
    ("csv missing column", lambda fx: read_solarwind_csv(fx["bad_csv_missing_column"]),
     "simulated_wind_missing_np.csv", "missing required column.*np"),
    ("csv not monotonic", lambda fx: read_solarwind_csv(fx["bad_csv_unsorted"]),
     "simulated_wind_unsorted.csv", "non-increasing times"),
    ("lst without fmt", lambda fx: read_omniweb(fx["bad_lst_without_fmt"]),
     "simulated_omni_no_fmt.lst", "without its format file"),
    ("lst without fmt, grouping", lambda fx: group_solarwind_files([fx["bad_lst_without_fmt"]]),
     "simulated_omni_no_fmt.lst", "without its format file"),
    ("fmt without lst", lambda fx: group_solarwind_files([fx["omni_fmt"]]),
     "simulated_omni_hro_5min_20240301_20240303.fmt", "without its .lst"),
    ("omni gse only", lambda fx: read_omniweb(fx["bad_lst_gse_only"], fx["bad_fmt_gse_only"]),
     "simulated_omni_gse.fmt", "BY \\(GSM\\)"),
    ("all-fill mfi", lambda fx: read_cdaweb_wind(fx["bad_allfill_mfi"], fx["bad_allfill_swe"]),
     "simulated_wind_mfi_h0_allfill.cdf", "fill"),
    ("pair not overlapping", lambda fx: read_cdaweb_wind(fx["cdf_mfi"], fx["bad_swe_no_overlap"]),
     "simulated_wind_swe_h1_later.cdf", "does not overlap"),
    ("pair not overlapping, grouping",
     lambda fx: group_solarwind_files([fx["cdf_mfi"], fx["bad_swe_no_overlap"]]),
     "simulated_wind_mfi_h0_20240301_20240303.cdf", "without a matching SWE"),
    ("swapped pair", lambda fx: read_cdaweb_wind(fx["cdf_swe"], fx["cdf_mfi"]),
     "simulated_wind_swe_h1_20240301_20240303.cdf", "not a Wind MFI"),
    ("two mfi", lambda fx: read_solarwind([fx["cdf_mfi"], fx["bad_allfill_mfi"]]),
     "mfi", "without a matching SWE"),
    ("swe alone", lambda fx: group_solarwind_files([fx["cdf_swe"]]),
     "simulated_wind_swe_h1_20240301_20240303.cdf", "without a matching MFI"),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_raises_granule_error(fx: dict[str, Path], case: tuple) -> None:
    _, call, name, reason = case
    with pytest.raises(GranuleError) as err:
        call(fx)
    message = str(err.value)
    assert name in message, message
    assert err.value.reason and pd.Series([message]).str.contains(reason).all(), message


def test_bad_text_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(GranuleError, match="empty.csv: empty file"):
        read_solarwind_csv(empty)
    weird = tmp_path / "notes.txt"
    weird.write_text("hello world\n")
    with pytest.raises(GranuleError, match="notes.txt: unknown solar-wind file type"):
        read_solarwind([weird])
    badtime = tmp_path / "badtime.csv"
    badtime.write_text("time,bx,by,bz,vt,np,tp\nnot-a-time,1,2,3,400,5,1e5\n")
    with pytest.raises(GranuleError, match="badtime.csv: unparseable time"):
        read_solarwind_csv(badtime)


def test_csv_without_derived_columns_derives_them(tmp_path: Path) -> None:
    path = tmp_path / "minimal.csv"
    path.write_text("time,bx,by,bz,vt,np,tp\n"
                    "2024-01-01 00:00:00,3,4,0,400,5,100000\n"
                    "2024-01-01 00:10:00,3,4,0,600,5,100000\n")
    frame = read_solarwind_csv(path)
    _check_standard(frame)
    np.testing.assert_allclose(frame["bt"], 5.0)
    np.testing.assert_allclose(frame["pdyn"], 1.67262192369e-27 * 5e6 * np.array([4e5, 6e5]) ** 2)
    np.testing.assert_allclose(frame["texrat"],
                               1e5 / ((0.031 * np.array([400, 600]) - 5.1) ** 2 * 1e3))
    # beta: n k T / (B^2 / 2 mu0) = 5e6 * 1.380649e-23 * 1e5 / (25e-18 / (2 * 1.2566e-6))
    np.testing.assert_allclose(frame["beta"], 0.6940, rtol=1e-3)


def test_physics_helpers() -> None:
    np.testing.assert_allclose(expected_temperature(400.0), (12.4 - 5.1) ** 2 * 1e3)
    np.testing.assert_allclose(dynamic_pressure(1.0, 1.0), 1.67262192369e-15)  # 1 cm^-3, 1 km/s
    # W = 50 km/s -> T = m_p W^2 / 2k ~ 1.51e5 K
    np.testing.assert_allclose(temperature_from_thermal_speed(50.0), 151_438, rtol=1e-4)
    np.testing.assert_allclose(proton_beta(10.0, 1e5, 10.0), 0.3470, rtol=1e-3)


# --------------------------------------------------------------------------- real shared data


@pytest.mark.shared_data
def test_real_cdaweb_pair_gannon_storm() -> None:
    _needs(REAL_MFI)
    _needs(REAL_SWE)
    frame = read_cdaweb_wind(REAL_MFI, REAL_SWE)
    _check_standard(frame)
    assert frame.index[0] <= pd.Timestamp("2024-05-10 00:00")
    assert frame.index[-1] >= pd.Timestamp("2024-05-12 11:50")
    assert frame["bt"].max() > 40, "Gannon storm |B| exceeded 40 nT"
    assert frame["bz"].min() < -30
    assert frame["vt"].max() > 600
    assert frame["vt"].between(250, 1200).all()
    assert frame["np"].dropna().between(0.1, 200).all()
    assert frame["tp"].dropna().between(1e3, 1e7).all()
    b = frame.dropna(subset=["bx", "by", "bz", "bt"])
    assert (b["bt"] + 1e-6 >= np.sqrt(b.bx**2 + b.by**2 + b.bz**2)).all(), "bt = mean of |B|"

    assert frame.notna().mean().min() > 0.9
    groups = group_solarwind_files([REAL_SWE, REAL_MFI])
    assert groups == [("wind_mfi_swe_20240510_20240512", (REAL_MFI, REAL_SWE))]


@pytest.mark.shared_data
def test_real_wind_csv_equals_file() -> None:
    _needs(REAL_CSV)
    frame = read_solarwind_csv(REAL_CSV)
    _check_standard(frame)
    raw = pd.read_csv(REAL_CSV, parse_dates=["time"]).set_index("time")
    np.testing.assert_array_equal(frame.loc[raw.index, FRAME_COLUMNS].to_numpy(),
                                  raw[FRAME_COLUMNS].to_numpy())
    labels = read_solarwind_csv_labels(REAL_CSV)
    np.testing.assert_array_equal(labels.loc[raw.index].to_numpy(), raw["icme"].to_numpy())
    # our derived formulas reproduce the CSV's own columns (see reader docstring)
    derived_texrat = raw["tp"] / expected_temperature(raw["vt"])
    derived_beta = proton_beta(raw["np"], raw["tp"], raw["bt"])
    assert np.median(np.abs(derived_texrat / raw["texrat"] - 1)) < 1e-3
    assert np.median(np.abs(derived_beta / raw["beta"] - 1)) < 1e-2
    assert np.median(np.abs(dynamic_pressure(raw["np"], raw["vt"]) / raw["pdyn"] - 1)) < 1e-4


def test_omni_handwritten_fixed_width_and_fills(tmp_path: Path) -> None:
    """An hourly listing typed by hand (not by our writer): values touching each other,
    fill values of each FORTRAN width, columns in an unusual order."""
    fmt = tmp_path / "omni2_h0_mrg1hr_x.fmt"
    fmt.write_text(
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
        "10 Plasma beta                   F6.2      \n")
    lst = tmp_path / "omni2_h0_mrg1hr_x.lst"
    rows = [
        "2020   1  0  400.  -3.1   4.0-123.4   80000.   5.0  0.50",
        "2020   1  1  410. 999.9 999.9 999.9   81000.   5.5999.99",
        "2020   1  2 9999.  -3.3   4.2  -1.2 9999999. 999.9  0.52",
    ]
    lst.write_text("\n".join(rows) + "\n")
    frame = read_omniweb(lst)
    _check_standard(frame)
    at = frame.loc[pd.Timestamp("2020-01-01 00:30")]
    assert (at["vt"], at["bx"], at["bz"], at["tp"], at["np"]) == (400.0, -3.1, -123.4,
                                                                  80000.0, 5.0)
    assert at["beta"] != 0.5, "OMNI beta is recomputed, not copied"
    mid = frame.loc[pd.Timestamp("2020-01-01 01:30")]
    assert mid["vt"] == 410.0 and mid["tp"] == 81000.0
    # a filled hour leaves 2 h between hourly values: longer than 1 h, so not interpolated
    assert np.isnan(mid["bx"]) and np.isnan(mid["bz"])
    assert frame.loc[pd.Timestamp("2020-01-01 01:00"), "vt"] == pytest.approx(405.0)
    assert frame.index[0] == pd.Timestamp("2020-01-01 00:30")
    assert frame.index[-1] == pd.Timestamp("2020-01-01 02:30")
    assert np.isnan(frame.loc[pd.Timestamp("2020-01-01 02:30"), "vt"]), "edge fill stays NaN"


def test_cdf_pair_from_1min_frame(tmp_path: Path, truth: tuple) -> None:
    from epnml.ingest.simulate.solarwind import write_cdaweb_wind_pair

    day = truth[0].loc["2024-03-01 00:00":"2024-03-01 05:50"]
    one_min = day.resample("1min").interpolate().reindex(
        pd.date_range("2024-03-01 00:00", "2024-03-01 05:59", freq="1min")).ffill()
    mfi, swe = write_cdaweb_wind_pair(one_min, tmp_path / "simulated_wind_mfi_h0_x.cdf",
                                      tmp_path / "simulated_wind_swe_h1_x.cdf")
    frame = read_cdaweb_wind(mfi, swe)
    _check_standard(frame)
    expect = one_min.resample("10min").mean()
    assert frame.index.equals(expect.index)
    for col in ("bx", "bz", "vt", "np", "tp"):
        np.testing.assert_allclose(frame[col], expect[col], rtol=1e-5, err_msg=col)


def _as_omni_words(src: Path, dest: Path) -> pd.DataFrame:
    """The fixture CSV rewritten with OMNI word names and YEAR/DOY/HR/MN times (the
    header CDAWeb and the SYMHnet 1-min storm files use), derived columns dropped."""
    table = pd.read_csv(src, parse_dates=["time"])
    t = table["time"].dt
    omni = pd.DataFrame({
        "YEAR": t.year, "DOY": t.day_of_year, "HR": t.hour, "MN": t.minute,
        "Field_magnitude_average": table["bt"], "BX_GSE_GSM": table["bx"],
        "BY_GSE": table["by"] + 1.0, "BZ_GSE": table["bz"] - 1.0,  # GSE: not the model's
        "BY_GSM": table["by"], "BZ_GSM": table["bz"], "Speed": table["vt"],
        "Proton_Density": table["np"], "Proton_Temperature": table["tp"],
        "Flow_pressure": 1.0, "SYM_H": -20})
    omni.to_csv(dest, index=False)
    return table


def test_csv_with_omni_words_reads_as_the_shared_layout(fx: dict[str, Path],
                                                       tmp_path: Path) -> None:
    path = tmp_path / "storm01_1min.csv"
    _as_omni_words(fx["csv"], path)
    words = read_solarwind_csv(path)
    plain = read_solarwind_csv(fx["csv"])
    _check_standard(words)
    assert words.index.equals(plain.index)
    for column in ("bx", "by", "bz", "bt", "vt", "np", "tp"):  # GSM, not the GSE decoys
        np.testing.assert_allclose(words[column], plain[column], rtol=1e-9, equal_nan=True)
    # beta is derived from n, T, B (the OMNI words carry none)
    np.testing.assert_allclose(words["beta"], proton_beta(words["np"], words["tp"], words["bt"]),
                               rtol=1e-9, equal_nan=True)


def test_csv_with_omni_words_but_no_field_names_the_missing_word(fx: dict[str, Path],
                                                                tmp_path: Path) -> None:
    path = tmp_path / "storm02_1min.csv"
    _as_omni_words(fx["csv"], path)
    table = pd.read_csv(path).drop(columns=["BX_GSE_GSM"])
    table.to_csv(path, index=False)
    with pytest.raises(GranuleError, match=r"storm02_1min.csv: missing required column\(s\): bx$"):
        read_solarwind_csv(path)


def test_csv_with_omni_words_is_omni_not_wind(fx: dict[str, Path], tmp_path: Path) -> None:
    from epnml.ingest.stage import Granule
    from epnml.ingest.stages.icme import describe_source

    path = tmp_path / "storm03_1min.csv"
    _as_omni_words(fx["csv"], path)
    assert describe_source(Granule("storm03_1min", (path,))).host == "OMNI"
    assert describe_source(Granule("wind", (fx["csv"],))).host == "Wind"


def test_real_1min_omni_storm_matches_the_hourly_omni2_detection() -> None:
    """Cadence consistency on real data (validation year 2013, storm 40 of the SYMHnet
    list): the 1-min OMNI window and the hourly OMNI2 year find the same ICMECAT ICME."""
    storm = SOLARWIND / "omni_1min_storms" / "storm40_1min.csv"
    hourly = SOLARWIND / "omni2_hourly" / "omni2_2013.dat"
    _needs(storm)
    _needs(hourly)
    from datetime import datetime

    from epnml.ingest.registry import make_stage
    from epnml.ingest.stage import RunContext

    stage = make_stage("icme")
    ctx = RunContext(run_id="t-1min", files_base_url="http://example.org/static/epnml",
                     started=datetime(2026, 1, 2), make_quicklooks=False, params={},
                     reference_data=SHARED)

    def rows(path: Path) -> list[dict[str, object]]:
        (granule,) = stage.granules([path])
        return list(stage.process(granule, ctx).rows)

    minute_rows, hourly_rows = rows(storm), rows(hourly)
    matched = {r["icmecat_id"] for r in minute_rows if r["icmecat_id"]}
    assert matched == {"ICME_Wind_NASA_20130627_01"}
    assert matched <= {r["icmecat_id"] for r in hourly_rows}
    assert {r["instrument_host_name"] for r in minute_rows} == {"OMNI"}
