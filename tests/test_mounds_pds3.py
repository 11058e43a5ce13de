"""Mounds on PDS3 image products (the archive format of HiRISE/HRSC DTMs): the reader,
the bad-label errors, and the same rows as from the same DTM written as a GeoTIFF."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from epnml.ingest.readers.images import image_files, read_image, read_image_header
from epnml.ingest.readers.pds3_images import read_pds3_image_label
from epnml.ingest.routing import models_for
from epnml.ingest.stage import GranuleError, RunContext
from epnml.ingest.stages.mounds import MoundsStage
from epnml.ingest.stages.outlines import parse_spoly
from tests.fixtures.make_mounds_fixtures import MOUNDS, make_mounds_fixtures

CTX = RunContext("pds3-test", "http://files.example/epnml", datetime(2026, 11, 28),
                 make_quicklooks=False)


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_mounds_fixtures(tmp_path_factory.mktemp("mounds_pds3"))


@pytest.mark.parametrize(("pds3", "geotiff"), [("pds3_dtm", "dtm"),
                                               ("pds3_dtm_cross0", "dtm_cross0")])
def test_pds3_reads_as_the_same_dtm(fx: dict[str, Path], pds3: str, geotiff: str) -> None:
    a, b = read_image(fx[pds3]), read_image(fx[geotiff])
    assert a.meta == {"format": "PDS3", "mode": "F"}
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert a.georef is not None and b.georef is not None
    cols, rows = np.array([0.0, 0.5, 96.0, 192.0]), np.array([0.0, 0.5, 50.0, 192.0])
    for got, want in zip(a.georef.pixel_to_lonlat(cols, rows),
                         b.georef.pixel_to_lonlat(cols, rows), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-9)
    assert a.georef.target == "Mars" and a.georef.pixel_size_km(96) == (0.02, 0.02)


def test_missing_constant_becomes_nan(fx: dict[str, Path], tmp_path: Path) -> None:
    from epnml.ingest.simulate.pds3_image import write_mars_pds3_image

    dtm = read_image(fx["dtm"]).pixels.copy()
    dtm[5, 7] = np.nan
    path = write_mars_pds3_image(tmp_path / "holes.IMG", dtm, 10.0, 10.0, 20.0)
    raw = path.read_bytes()
    assert b"MISSING_CONSTANT = 16#FF7FFFFB#" in raw and b"\xfb\xff\x7f\xff" in raw
    pixels = read_image(path).pixels
    assert np.isnan(pixels[5, 7]) and np.isfinite(pixels).sum() == dtm.size - 1


def test_header_and_folder_expansion(fx: dict[str, Path]) -> None:
    header = read_image_header(fx["pds3_dtm_cross0"])
    assert (header.mode, header.width, header.height) == ("F", 192, 192)
    info = read_pds3_image_label(fx["pds3_dtm_cross0"])
    assert info.data_path.name == "SIMULATED_MOUNDS_DTM_CROSS0.IMG" and info.offset == 0
    files = {p.name for p in image_files([fx["dtm"].parent], "test")}
    assert "SIMULATED_MOUNDS_DTM_CROSS0.LBL" in files
    assert "SIMULATED_MOUNDS_DTM_CROSS0.IMG" not in files  # given by its label only
    assert "SIMULATED_MOUNDS_DTM.IMG" in files  # attached label
    assert models_for(fx["pds3_dtm"]) == ["mounds"]
    assert models_for(fx["pds3_dtm_cross0"]) == ["mounds"]


@pytest.mark.parametrize(("name", "reason"), [
    ("pds3_polar", "map projection POLAR STEREOGRAPHIC not supported"),
    ("pds3_west", "POSITIVE_LONGITUDE_DIRECTION = WEST not supported"),
    ("pds3_no_pointer", "no ^IMAGE pointer"),
    ("pds3_truncated", "truncated PDS3 image"),
    ("pds3_no_label", "not a PDS3 product"),
])
def test_bad_pds3_products_name_the_file_and_the_reason(fx: dict[str, Path], name: str,
                                                        reason: str) -> None:
    stage = MoundsStage()
    (granule,) = stage.granules([fx[name]])
    with pytest.raises(GranuleError) as err:
        stage.process(granule, CTX)
    assert str(fx[name]) in str(err.value) and reason in str(err.value)


def test_mounds_rows_from_pds3_equal_those_from_geotiff(fx: dict[str, Path]) -> None:
    stage = MoundsStage()
    (g_pds3,) = stage.granules([fx["pds3_dtm_cross0"]])
    (g_tif,) = stage.granules([fx["dtm_cross0"]])
    a, b = stage.process(g_pds3, CTX), stage.process(g_tif, CTX)
    assert len(a.rows) == len(b.rows) == len(MOUNDS)  # each drawn mound, once
    for ra, rb in zip(a.rows, b.rows, strict=True):
        # the label's projection offsets are written with 6 decimals: 1e-9 deg apart
        for col in ("c1min", "c1max", "c2min", "c2max", "landform_size", "ml_score"):
            assert ra[col] == pytest.approx(rb[col], abs=1e-7), col
        assert ra["landform_class"] == rb["landform_class"]
        np.testing.assert_allclose(parse_spoly(str(ra["s_region"])),
                                   parse_spoly(str(rb["s_region"])), atol=1e-7)
        assert ra["source_image"] == fx["pds3_dtm_cross0"].name
        assert ra["processing_level_desc"].startswith("SIMULATED input")
    # across 0 E: tight bounds, west edge > east edge (docs/architecture.md)
    assert any(r["c1min"] > r["c1max"] for r in a.rows)
