"""Craters stage: granules, rows (circle outlines on the sphere), errors, parameters."""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.readers.images import read_image
from epnml.ingest.stage import GranuleError, RunContext
from epnml.ingest.stages.craters import CratersStage, circle_bounds, circle_outline
from epnml.ml.craters.inference import available_versions, circles, match
from epnml.schemas.products import get_product
from tests.conftest import CRATERS_VERSION
from tests.fixtures.make_craters_fixtures import (
    MARS_CRATERS,
    MARS_GRID,
    MARS_R,
    MOON_CRATERS,
    MOON_GRID,
    MOON_R,
    POLE_CRATERS,
    POLE_GRID,
    make_craters_fixtures,
)

pytestmark = pytest.mark.skipif(not available_versions(), reason="no committed craters weights")
PRODUCT = get_product("landforms")
CTX = RunContext("run-test", "http://files.example/static", datetime(2026, 1, 2, 3, 4, 5))
SPOLY = re.compile(r"\(([-0-9.]+)d,([-0-9.]+)d\)")


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_craters_fixtures(tmp_path_factory.mktemp("craters_stage"))


@pytest.fixture(scope="module")
def stage() -> CratersStage:
    """1.0.0: the rendered fixture craters and the expected false alarms are its own."""
    return CratersStage(CRATERS_VERSION)


def _box(grid: tuple[float, float, float, float, int, int], radius_m: float, lon: float,
         lat: float, d_km: float) -> tuple[float, float, float, float]:
    """Pixel box of a crater on a geographic grid (height = diameter, width stretched)."""
    lon_left, lat_top, sx, sy, _, _ = grid
    x = ((lon - lon_left) % 360.0) / sx
    y = (lat_top - lat) / sy
    h = d_km / (math.radians(sy) * radius_m / 1000.0)
    w = d_km / (math.radians(sx) * radius_m / 1000.0 * math.cos(math.radians(lat)))
    return x - w / 2, y - h / 2, x + w / 2, y + h / 2


def _fake(boxes: list[tuple[float, float, float, float]], scores: list[float]) -> Any:
    dets = np.array([[*b, 0.0, s] for b, s in zip(boxes, scores, strict=True)])

    def detect(image: np.ndarray, model: Any, threshold: float | None = None,
               wrap_px: int = 0, lat_of_row: Any = None, **band: Any) -> pd.DataFrame:
        return circles(dets, lat_of_row, float(image.shape[0]))
    return detect


def _vertices(spoly: str) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in SPOLY.findall(spoly)]


def _xyz(lon: float, lat: float) -> np.ndarray:
    lo, la = math.radians(lon), math.radians(lat)
    return np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])


def ccw_and_contains(verts: list[tuple[float, float]], lon: float, lat: float) -> bool:
    """Every edge (great circle, seen from outside) has the point on its left."""
    c = _xyz(lon, lat)
    pts = [_xyz(*v) for v in verts]
    return all(float(np.dot(np.cross(pts[i], pts[(i + 1) % len(pts)]), c)) > 0
               for i in range(len(pts)))


def _not_null(rows: list[dict[str, object]]) -> None:
    assert rows, "no rows to check"
    names = {c.name for c in PRODUCT.columns()}
    for row in rows:
        assert set(row) <= names, set(row) - names
        for col in PRODUCT.columns():
            if col.not_null and col.origin != "storage":
                assert row.get(col.name) is not None, col.name


def test_granules_one_per_image(stage: CratersStage, fx: dict[str, Path]) -> None:
    granules = stage.granules([fx["moon_0E"].parent])
    names = {g.paths[0].name for g in granules}
    assert {fx["moon_0E"].name, fx["mars"].name, fx["chip_png"].name} <= names
    with pytest.raises(GranuleError, match="not an image"):
        stage.granules([fx["unknown_suffix"]])


def test_reader_knows_the_body(fx: dict[str, Path]) -> None:
    bodies = ("Moon", "Mars", "Mercury")
    moon = read_image(fx["moon_0E"], bodies=bodies)
    assert moon.georef is not None and moon.georef.target == "Moon"
    lon, lat = moon.georef.pixel_to_lonlat([0.0, 125.0, 256.0], [0.0, 100.0, 256.0])
    assert np.allclose(lon, [355.0, 0.0, 5.24], atol=1e-6)
    assert np.allclose(lat, [5.0, 1.0, -5.24], atol=1e-6)
    mars = read_image(fx["mars"], bodies=bodies)
    assert mars.georef is not None and mars.georef.target == "Mars"
    with pytest.raises(GranuleError, match="not Mars"):  # pits accepts Mars only
        read_image(fx["moon_0E"])


def test_moon_rows_outline_across_zero_east(stage: CratersStage, fx: dict[str, Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import epnml.ml.craters.inference as craters

    boxes = [_box(MOON_GRID, MOON_R, c.lon, c.lat, c.diameter_km) for c in MOON_CRATERS]
    monkeypatch.setattr(craters, "detect", _fake(boxes, [0.9, 0.6]))
    (g,) = stage.granules([fx["moon_0E"]])
    out = stage.process(g, CTX)
    assert len(out.rows) == 2 and len(out.records) == 2
    _not_null(out.rows)
    for row, truth in zip(out.rows, MOON_CRATERS, strict=True):
        assert row["landform_class"] == "crater" and row["feature_name"] == "impact crater"
        assert row["target_name"] == "Moon" and row["target_class"] == "satellite"
        assert row["spatial_frame_type"] == "body" and row["granule_gid"] == "craters"
        assert row["landform_size"] == pytest.approx(truth.diameter_km, rel=0.02)
        assert row["thumbnail_url"].startswith("http://files.example/static/landforms/")
        verts = _vertices(row["s_region"])
        assert 16 <= len(verts) <= 24
        assert ccw_and_contains(verts, truth.lon, truth.lat)
        assert "Moon planetocentric" in row["spatial_coordinate_description"]
    # centred on 0 deg E: tight bounds, west > east (EPN-TAP 2.0), vertices in one
    # continuous range 359.x .. 360.x (no jump for plane plots)
    zero = out.rows[0]
    half = (zero["c2max"] - zero["c2min"]) / 2  # the circle's radius in deg at the equator
    assert zero["c1min"] == pytest.approx(360.0 - half, abs=0.02)
    assert zero["c1max"] == pytest.approx(half, abs=0.02)
    assert 359.0 < zero["c1min"] < 360.0 and 0.0 < zero["c1max"] < 1.0
    lons = [v[0] for v in _vertices(zero["s_region"])]
    assert min(lons) == pytest.approx(zero["c1min"], abs=1e-3)
    assert max(lons) == pytest.approx(360.0 + zero["c1max"], abs=1e-3)
    east = out.rows[1]
    assert 2.0 < east["c1min"] < 2.5 < east["c1max"] < 3.0
    assert east["c2min"] < -2.5 < east["c2max"]
    rec = out.records.iloc[0]
    assert rec["lon"] == pytest.approx(0.0, abs=0.05) or rec["lon"] == pytest.approx(360, abs=0.05)
    assert rec["diameter_km"] == pytest.approx(MOON_CRATERS[0].diameter_km, rel=0.02)
    assert set(out.files) == {r[c].split("static/")[1] for r in out.rows
                              for c in ("thumbnail_url", "access_url")}


def test_mars_near_pole_and_mid_latitude(stage: CratersStage, fx: dict[str, Path],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import epnml.ml.craters.inference as craters

    c = POLE_CRATERS[1]
    monkeypatch.setattr(craters, "detect", _fake(
        [_box(POLE_GRID, MARS_R, c.lon, c.lat, c.diameter_km)], [0.8]))
    (g,) = stage.granules([fx["mars_pole"]])
    (row,) = stage.process(g, CTX).rows
    assert row["target_name"] == "Mars" and row["target_class"] == "planet"
    assert row["landform_size"] == pytest.approx(c.diameter_km, rel=0.03)
    assert ccw_and_contains(_vertices(row["s_region"]), c.lon, c.lat)
    assert row["c2max"] < 90.0 and row["c1min"] < c.lon < row["c1max"]
    m = MARS_CRATERS[0]
    monkeypatch.setattr(craters, "detect", _fake(
        [_box(MARS_GRID, MARS_R, m.lon, m.lat, m.diameter_km)], [0.8]))
    (g,) = stage.granules([fx["mars"]])
    (row,) = stage.process(g, CTX).rows
    assert row["c1min"] < m.lon < row["c1max"] and row["c2min"] < m.lat < row["c2max"]
    assert row["landform_size"] == pytest.approx(m.diameter_km, rel=0.02)


def test_outline_holding_a_pole() -> None:
    """A circle around the north pole: valid CCW polygon, bounds 0..360 up to 90 N."""
    verts = circle_outline(40.0, 89.2, 80.0, MARS_R / 1000.0)
    assert ccw_and_contains(verts, 40.0, 89.2) and ccw_and_contains(verts, 0.0, 90.0)
    assert circle_bounds(40.0, 89.2, 80.0, MARS_R / 1000.0)[:2] == (0.0, 360.0)
    assert circle_bounds(40.0, 89.2, 80.0, MARS_R / 1000.0)[3] == 90.0
    south = circle_outline(300.0, -60.0, 100.0, MOON_R / 1000.0)
    assert ccw_and_contains(south, 300.0, -60.0)
    assert not ccw_and_contains(south, 120.0, 60.0)


def test_chip_without_georeference_has_null_geometry(stage: CratersStage, fx: dict[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import epnml.ml.craters.inference as craters

    monkeypatch.setattr(craters, "detect", _fake([(40.0, 40.0, 82.0, 82.0)], [0.7]))
    (g,) = stage.granules([fx["chip_png"]])
    with pytest.raises(GranuleError, match="no georeference and no target"):
        stage.process(g, CTX)
    ctx = RunContext("run-test", "http://f", CTX.started, params={"target": "mars"})
    out = stage.process(g, ctx)
    (row,) = out.rows
    _not_null(out.rows)
    for col in ("c1min", "c1max", "c2min", "c2max", "s_region", "landform_size"):
        assert row[col] is None, col
    assert row["target_name"] == "Mars" and "no georeference" in row["processing_level_desc"]
    assert out.records.iloc[0]["diameter_px"] == pytest.approx(42.0)
    assert pd.isna(out.records.iloc[0]["diameter_km"])


@pytest.mark.parametrize("name, reason", [
    ("truncated_tif", "cannot decode"),
    ("not_image_tif", "not an image"),
    ("venus", "is not the Moon, Mars or Mercury"),
])
def test_bad_files_name_the_file(stage: CratersStage, fx: dict[str, Path], name: str,
                                 reason: str) -> None:
    (g,) = stage.granules([fx[name]])
    with pytest.raises(GranuleError, match=reason) as err:
        stage.process(g, CTX)
    assert fx[name].name in str(err.value)


@pytest.mark.parametrize("params, message", [
    ({"min_size": 3}, "unknown parameter '"),
    ({"threshold": 1.5}, "threshold must be in"),
    ({"target": "Venus"}, "target must be one of"),
])
def test_bad_parameters(stage: CratersStage, fx: dict[str, Path], params: dict[str, object],
                        message: str) -> None:
    (g,) = stage.granules([fx["mars"]])
    ctx = RunContext("run-test", "http://f", CTX.started, params=params)
    with pytest.raises(ValueError, match=message):
        stage.process(g, ctx)


def test_target_parameter_must_agree_with_georeference(stage: CratersStage,
                                                       fx: dict[str, Path]) -> None:
    (g,) = stage.granules([fx["moon_0E"]])
    ctx = RunContext("run-test", "http://f", CTX.started, params={"target": "Mars"})
    with pytest.raises(GranuleError, match="georeference says Moon"):
        stage.process(g, ctx)


def test_real_model_finds_rendered_craters(stage: CratersStage, fx: dict[str, Path]) -> None:
    """The committed weights on the synthetic Mars tile (no fake): threshold 0.2."""
    (g,) = stage.granules([fx["mars"]])
    ctx = RunContext("run-test", "http://f", CTX.started, make_quicklooks=False,
                     params={"threshold": 0.2})
    out = stage.process(g, ctx)
    assert not out.files
    hits = match(out.records["lon"], out.records["lat"], out.records["diameter_km"],
                 out.records["score"], [c.lon for c in MARS_CRATERS],
                 [c.lat for c in MARS_CRATERS], [c.diameter_km for c in MARS_CRATERS],
                 MARS_R / 1000.0)
    # each rendered crater matched by exactly one detection (the others are false alarms)
    assert sorted(int(h) for h in hits if h >= 0) == list(range(len(MARS_CRATERS))), \
        out.records


def test_match_rule() -> None:
    idx = match([10.0, 10.0, 50.0], [0.0, 0.0, 0.0], [100.0, 30.0, 20.0], [0.9, 0.8, 0.7],
                [10.2, 50.0], [0.0, 0.0], [110.0, 50.0], 1737.4)
    # first matches the 110 km crater; second is too small (ratio > 1.5) for it and the
    # 50 km crater is far; third is 20 vs 50 km: ratio 2.5 -> no match
    assert idx.tolist() == [0, -1, -1]
