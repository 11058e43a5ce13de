"""MESSENGER MAG readers on tiny SIMULATED fixtures in the real formats (PDS3, CSV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.readers.messenger import group_mag_files, parse_label, read_mag
from epnml.ingest.stage import GranuleError
from tests.fixtures.make_crossings_fixtures import (
    GAP_MINUTES,
    fixture_truth,
    make_crossings_fixtures,
)

COLS = ["x", "y", "z", "bx", "by", "bz"]


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_crossings_fixtures(tmp_path_factory.mktemp("crossings"))


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    return fixture_truth()


def _check_equal(got: pd.DataFrame, want: pd.DataFrame, tol: float) -> None:
    assert got.index.equals(want.index)
    assert list(got.columns) == [*COLS, "region"]
    np.testing.assert_allclose(got[COLS].to_numpy(), want[COLS].to_numpy(), atol=tol,
                               rtol=0, equal_nan=True)
    assert (got["region"].to_numpy() == want["region"].to_numpy()).all()
    assert got["region"].dtype == np.int8
    assert got.attrs["simulated"] is True and got.attrs["orbit_number"] == 123


def test_pds3_round_trip(fx: dict[str, Path], truth: pd.DataFrame) -> None:
    got = read_mag([fx["pds3_lbl"], fx["pds3_tab"]])
    kept = truth[truth[["bx", "by", "bz"]].notna().all(axis=1)]  # F format: gap rows dropped
    assert len(kept) < len(truth)
    _check_equal(got, kept, 6e-4)
    assert got.attrs["source"] == "pds3:SIMULATED_MAGMSOSCIAVG_ORBIT0123_01"
    assert read_mag([fx["pds3_tab"]]).index.equals(got.index)  # a table finds its label


def test_shuffled_columns_and_fill_values(fx: dict[str, Path], truth: pd.DataFrame) -> None:
    label = fx["pds3_shuffled_lbl"].read_text()
    assert label.index("NAME                     = BZ_MSO") < label.index("= YEAR")
    assert "MISSING_CONSTANT         = 1.0E+31" in label
    got = read_mag([fx["pds3_shuffled_lbl"]])
    _check_equal(got, truth, 1e-4)
    start = truth.index[0]
    gap = (got.index >= start + pd.Timedelta(minutes=GAP_MINUTES[0])) & (
        got.index < start + pd.Timedelta(minutes=GAP_MINUTES[1]))
    assert got.loc[gap, "bx"].isna().all() and got.loc[~gap, "bx"].notna().all()


def test_csv_round_trip(fx: dict[str, Path], truth: pd.DataFrame) -> None:
    assert fx["csv"].read_text().startswith("# SIMULATED")
    _check_equal(read_mag([fx["csv"]]), truth, 1e-4)


def test_csv_with_pds_column_names(tmp_path: Path, truth: pd.DataFrame) -> None:
    t = truth.index
    table = pd.DataFrame({"YEAR": t.year, "DAY_OF_YEAR": t.day_of_year, "HOUR": t.hour,
                          "MINUTE": t.minute, "SECOND": t.second,
                          "X_MSO": truth["x"], "Y_MSO": truth["y"], "Z_MSO": truth["z"],
                          "BX_MSO": truth["bx"], "BY_MSO": truth["by"],
                          "BZ_MSO": truth["bz"]})
    path = tmp_path / "simulated_pds_names.csv"
    table.to_csv(path, index=False)
    got = read_mag([path])
    assert got.index.equals(truth.index) and "region" not in got
    np.testing.assert_allclose(got[COLS].to_numpy(), truth[COLS].to_numpy(), equal_nan=True)


def test_overlapping_files_are_merged(fx: dict[str, Path], truth: pd.DataFrame) -> None:
    got = read_mag([fx["csv"], fx["pds3_lbl"]])
    assert got.index.is_monotonic_increasing and got.index.is_unique
    assert len(got) == len(truth)


@pytest.mark.parametrize("key, reason", [
    ("bad_label_without_table", "missing"),
    ("bad_truncated_lbl", "truncated"),
    ("bad_missing_column", "BZ_MSO"),
    ("bad_non_monotonic", "non-monotonic"),
    ("bad_unparsable_time", "unparsable"),
    ("bad_all_fill", "fill"),
    ("bad_unknown_type", "unknown file type"),
    ("bad_csv_missing_column", "by_mso_nt"),
    ("bad_table_without_label", "without its label"),
])
def test_bad_files(fx: dict[str, Path], key: str, reason: str) -> None:
    with pytest.raises(GranuleError) as err:
        read_mag([fx[key]])
    msg = str(err.value)
    assert reason in msg
    stem = fx[key].stem
    assert stem in msg or fx[key].with_suffix(".TAB").name in msg


def test_group_mag_files(fx: dict[str, Path]) -> None:
    groups = dict(group_mag_files([fx["pds3_lbl"].parent, fx["csv"]]))
    assert groups["SIMULATED_MAGMSOSCIAVG_ORBIT0123_01"] == [fx["pds3_lbl"], fx["pds3_tab"]]
    assert groups[fx["csv"].stem] == [fx["csv"]]
    assert dict(group_mag_files([fx["pds3_tab"]])) == {
        fx["pds3_tab"].with_suffix("").name: [fx["pds3_lbl"], fx["pds3_tab"]]}
    with pytest.raises(GranuleError, match="unknown file type"):
        group_mag_files([fx["bad_unknown_type"]])
    with pytest.raises(GranuleError, match="without its label"):
        group_mag_files([fx["bad_table_without_label"]])


def test_label_parser_odl_details() -> None:
    text = (
        'PDS_VERSION_ID = PDS3\r\n/* a comment */\r\nRECORD_BYTES = 10\r\n'
        '^TABLE = ("X.TAB", 3 <BYTES>)\r\nNOTE = "two\r\n   lines"\r\n'
        "OBJECT = TABLE\r\n  ROWS = 2\r\n  OBJECT = COLUMN\r\n    NAME = A\r\n"
        "    MISSING_CONSTANT = 1.0E+31\r\n  END_OBJECT = COLUMN\r\nEND_OBJECT = TABLE\r\nEND\r\n"
    )
    root = parse_label(text)
    assert root.get("^TABLE") == ["X.TAB", (3, "BYTES")]
    assert root.get("NOTE") == "two lines"
    (table,) = root.find("TABLE")
    assert table.get("ROWS") == 2
    assert table.find("COLUMN")[0].get("MISSING_CONSTANT") == 1e31
    with pytest.raises(ValueError, match="not closed"):
        parse_label("OBJECT = TABLE\r\nROWS = 1\r\nEND\r\n")
    with pytest.raises(ValueError, match="END"):
        parse_label("RECORD_BYTES = 10\r\n")
