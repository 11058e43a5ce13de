"""Image and YOLO label readers on tiny SYNTHETIC fixtures in the real formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from epnml.ingest.readers.images import hirise_observation_id, read_image, read_yolo_labels
from epnml.ingest.stage import GranuleError
from tests.fixtures.make_pits_fixtures import (
    GEO_LAT0,
    GEO_LON0,
    GEO_PIXEL_M,
    GEOG_LAT0,
    GEOG_LON0,
    GEOG_PIXEL_DEG,
    PITS,
    SIZE,
    make_pits_fixtures,
)


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pits_fixtures(tmp_path_factory.mktemp("landforms"))


def test_chip_jpeg_is_grayscale_without_georeference(fx: dict[str, Path]) -> None:
    img = read_image(fx["chip_jpg"])
    assert img.pixels.shape == (SIZE, SIZE) and img.pixels.dtype == np.float32
    assert img.georef is None and not img.georeferenced
    assert img.observation_id == "ESP_000001_1800"
    cx, cy, r = PITS[0]
    assert img.pixels[int(cy), int(cx)] < img.pixels[5, 5] - 50  # the pit floor is dark


def test_png_equals_jpeg_content(fx: dict[str, Path]) -> None:
    png, jpg = read_image(fx["chip_png"]), read_image(fx["chip_jpg"])
    assert png.georef is None and png.observation_id is None
    assert np.abs(png.pixels - jpg.pixels).mean() < 3.0  # JPEG loss only


def test_equirectangular_geotiff_maps_pixels_to_planetocentric_lonlat(
        fx: dict[str, Path]) -> None:
    g = read_image(fx["geotiff"]).georef
    assert g is not None and g.kind == "equirectangular"
    lon, lat = g.pixel_to_lonlat([0.0, SIZE], [0.0, SIZE])
    deg_per_px = np.degrees(GEO_PIXEL_M / 3_396_190.0)
    assert lon[0] == pytest.approx(GEO_LON0, abs=1e-9)
    assert lat[0] == pytest.approx(GEO_LAT0, abs=1e-9)
    assert lon[1] == pytest.approx(GEO_LON0 + SIZE * deg_per_px, abs=1e-9)
    assert lat[1] == pytest.approx(GEO_LAT0 - SIZE * deg_per_px, abs=1e-9)
    assert g.pixel_size_km(10.0) == pytest.approx((0.025, 0.025))


def test_geographic_geotiff(fx: dict[str, Path]) -> None:
    g = read_image(fx["geotiff_geographic"]).georef
    assert g is not None and g.kind == "geographic"
    lon, lat = g.pixel_to_lonlat([0.0, 100.0], [0.0, 100.0])
    assert lon.tolist() == pytest.approx([GEOG_LON0, GEOG_LON0 + 100 * GEOG_PIXEL_DEG])
    assert lat.tolist() == pytest.approx([GEOG_LAT0, GEOG_LAT0 - 100 * GEOG_PIXEL_DEG])
    kx, ky = g.pixel_size_km(0.0)
    assert ky == pytest.approx(np.radians(GEOG_PIXEL_DEG) * 3396.19)
    assert kx == pytest.approx(ky * np.cos(np.radians(GEOG_LAT0)), rel=1e-6)


def test_east_longitude_wraps_into_0_360(fx: dict[str, Path]) -> None:
    g = read_image(fx["geotiff_geographic"]).georef
    assert g is not None
    lon, _ = g.pixel_to_lonlat([20_000.0], [0.0])  # 350 + 20 deg
    assert lon[0] == pytest.approx(10.0)


@pytest.mark.parametrize("name, reason", [
    ("truncated_jpg", "truncated"),
    ("not_image_jpg", "not an image"),
    ("tiff_no_georef", "without georeference"),
    ("geotiff_earth", "not Mars"),
    ("unknown_suffix", "unsupported image type"),
])
def test_bad_files_raise_granule_error_naming_the_file(fx: dict[str, Path], name: str,
                                                       reason: str) -> None:
    with pytest.raises(GranuleError) as err:
        read_image(fx[name])
    assert err.value.path == str(fx[name])
    assert reason in str(err.value) and fx[name].name in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GranuleError, match="no such file"):
        read_image(tmp_path / "absent.jpg")


def test_yolo_labels_to_pixel_boxes(fx: dict[str, Path]) -> None:
    lab = read_yolo_labels(fx["chip_label"], SIZE, SIZE)
    assert list(lab.columns) == ["class", "x_min", "y_min", "x_max", "y_max"]
    assert lab["class"].tolist() == [1, 1, 1]
    cx, cy, r = PITS[2]
    assert lab.iloc[2][["x_min", "y_min", "x_max", "y_max"]].tolist() == pytest.approx(
        [cx - r, cy - r, cx + r, cy + r], abs=1e-3)


def test_bad_yolo_label(fx: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(GranuleError, match="class 7 outside"):
        read_yolo_labels(fx["bad_label"], 100, 100)
    bad = tmp_path / "short.txt"
    bad.write_text("1 0.5 0.5\n")
    with pytest.raises(GranuleError, match="line 1"):
        read_yolo_labels(bad, 100, 100)


def test_hirise_observation_id() -> None:
    assert hirise_observation_id("ESP_016213_1720_RED_print_H1_V0__crop.jpg") == \
        "ESP_016213_1720"
    assert hirise_observation_id("PSP_003647_1745_RED.jpg") == "PSP_003647_1745"
    assert hirise_observation_id("ctx_mosaic.tif") is None
