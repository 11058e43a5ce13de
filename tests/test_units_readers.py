"""MASCS PDS3, RELAB JSON and USGS ENVI readers: real files, tiny fixtures, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.readers.mascs import (
    group_mascs_files,
    parse_odl,
    read_mascs,
    read_mascs_files,
)
from epnml.ingest.readers.spectra import read_envi_sli, read_relab_dir, read_relab_json
from epnml.ingest.stage import GranuleError
from tests.fixtures.make_units_fixtures import make_units_fixtures

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return dict(make_units_fixtures(tmp_path_factory.mktemp("units")))


def test_odl_nesting_comments_and_multiline() -> None:
    lab = parse_odl('A = 1\r\n/* c = 2 */\r\nOBJECT = TABLE\r\n  ROWS = 3\r\n  D = "x\r\n  y"\r\n'
                    '  OBJECT = COLUMN\r\n    NAME = X\r\n  END_OBJECT = COLUMN\r\n'
                    'END_OBJECT = TABLE\r\nEND\r\n')
    assert lab.get("A") == 1 and "C" not in lab.keywords
    table = lab.children[0]
    assert table.kind == "TABLE" and table.get("ROWS") == 3 and table.get("D") == "x y"
    assert [c.get("NAME") for c in lab.find("COLUMN")] == ["X"]
    with pytest.raises(GranuleError, match="never closed"):
        parse_odl("OBJECT = TABLE\nROWS = 1\n")


def test_fixture_vis_round_trip(fx: dict[str, Path]) -> None:
    obs = read_mascs(fx["vis_lbl"])
    truth = pd.read_csv(fx["vis_truth"])
    assert obs.detector == "VIS" and obs.simulated
    assert obs.n_spectra == len(truth) == 2 * 16 * 10
    assert obs.iof.shape == (len(truth), 120)
    np.testing.assert_allclose(obs.meta["lat"], truth["lat"], atol=1e-9)
    np.testing.assert_allclose(obs.meta["lon"], truth["lon"], atol=1e-9)
    np.testing.assert_allclose(obs.meta["incidence"], truth["incidence"], atol=1e-9)
    assert obs.wavelength_nm[0] == pytest.approx(215.61, abs=0.01)
    # fill (1e32) became NaN, nothing huge survives; corners kept
    assert np.isnan(obs.iof).any() and np.nanmax(obs.iof) < 1.0
    assert {"lat_c1", "lon_c4", "phase", "time", "dq_index"} <= set(obs.meta.columns)
    assert obs.meta["time"].iloc[1] == pd.Timestamp("2012-06-15 00:00:01")
    # the .dat path reads the same product
    assert read_mascs(fx["vis_dat"]).n_spectra == obs.n_spectra


def test_fixture_grouping(fx: dict[str, Path]) -> None:
    vol = fx["vis_lbl"].parents[4]
    groups = group_mascs_files([vol])
    assert [k for k, _ in groups] == ["sim_26001_000000"]
    assert {p.name for p in groups[0][1]} == {fx["vis_lbl"].name, fx["nir_lbl"].name}
    nir = read_mascs_files(groups[0][1])
    assert sorted(o.detector for o in nir) == ["NIR", "VIS"]
    assert group_mascs_files([fx["vis_dat"]])[0][1] == [fx["vis_lbl"]]


@pytest.mark.parametrize("name,reason", [
    ("bad_missing_fmt", "MISSING.FMT not found"),
    ("bad_truncated", "truncated"),
    ("bad_no_table", "without table"),
    ("bad_all_fill", "all spectra are fill"),
    ("bad_no_data", "is missing"),
])
def test_bad_files_raise_granule_error(fx: dict[str, Path], name: str, reason: str) -> None:
    with pytest.raises(GranuleError, match=reason) as err:
        read_mascs(fx[name])
    assert fx[name].stem.split("_")[0] in err.value.path


def test_bad_suffix_and_missing_label(fx: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(GranuleError, match="notes.txt"):
        group_mascs_files([fx["bad_suffix"]])
    lone = tmp_path / "virsvd_x_11111_111111.dat"
    lone.write_bytes(b"\0" * 10)
    with pytest.raises(GranuleError, match="no detached .lbl"):
        group_mascs_files([lone])


def test_relab_bad_json(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"spectrum": {"wavelength": [1, 2]}}')
    with pytest.raises(GranuleError, match="x.json"):
        read_relab_json(bad)


@pytest.mark.shared_data
def test_real_mascs_ddrs(shared_data: Path) -> None:
    root = shared_data / "spectra" / "mascs_virs"
    groups = group_mascs_files([root])
    assert len(groups) == 4
    obs = read_mascs_files([p for _, fs in groups for p in fs])
    nir = [o for o in obs if o.detector == "NIR"]
    vis = [o for o in obs if o.detector == "VIS"]
    assert len(nir) == 4 and len(vis) == 1  # three VIS labels ship without data
    assert sum(o.n_spectra for o in nir) == 1823 and vis[0].n_spectra == 113
    assert all(o.iof.shape[1] == 256 for o in nir)
    assert vis[0].iof.shape[1] == 362  # of 512 items, channels 362..511 have fill wavelengths
    assert vis[0].wavelength_nm.min() == pytest.approx(215.6, abs=0.1)
    assert vis[0].wavelength_nm.max() == pytest.approx(1054.1, abs=0.1)
    assert nir[0].wavelength_nm.min() == pytest.approx(896.2, abs=0.1)
    for o in obs:
        assert np.nanmax(o.iof) < 10 and np.nanmin(o.iof) > 0
        lat, lon = o.meta["lat"].dropna(), o.meta["lon"].dropna()
        assert lat.between(-90, 90).all() and lon.between(0, 360).all()
        assert o.meta["time"].dt.year.between(2011, 2015).all()
        assert not o.simulated
    ob2 = next(o for o in nir if "OB2" in o.product_id)
    assert ob2.meta["lat"].isna().sum() == 22  # off-planet footprints: fill geometry


@pytest.mark.shared_data
def test_real_relab_and_usgs(shared_data: Path) -> None:
    spectra = read_relab_dir(shared_data / "spectra" / "relab_minerals")
    assert len(spectra) == 683
    assert sum(bool(s.abundances) for s in spectra) == 152
    s = next(s for s in spectra if s.spectrum_id == "c1ag14")
    assert s.abundances == {"Olivine": 70.0, "Orthopyroxene": 30.0}
    assert s.sample_group == "relab:ag14"
    lib = read_envi_sli(shared_data / "spectra" / "usgs_splib07" / "s07_AV95_envi.sli")
    assert lib.spectra.shape == (3139, 224) and len(lib.names) == 3139
    assert lib.wavelength_nm[0] == pytest.approx(383.15, abs=0.01)
    assert np.isnan(lib.spectra).any() and np.nanmin(lib.spectra) > -1e30
