"""Mounds stage: rows, outlines (counter-clockwise, containing their centroid, across 0 deg E
and near the pole), NULL geometry without georeference, bad inputs, parameters, CLI."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.readers.images import ImageData, read_image
from epnml.ingest.stage import GranuleError, RunContext
from epnml.ingest.stages.mounds import MoundsStage
from epnml.ingest.stages.outlines import contains, parse_spoly, polygon_area
from epnml.ml.mounds.model import available_versions
from epnml.schemas.products import get_product
from tests.fixtures.make_mounds_fixtures import (
    MOUNDS,
    PIXEL_M,
    cross0_mounds,
    make_mounds_fixtures,
    mound_lonlat,
)

pytestmark = pytest.mark.skipif(not available_versions(),
                                reason="no committed mounds weights")
PRODUCT = get_product("landforms")
CTX = RunContext("run-test", "http://files.example/static", datetime(2026, 1, 2, 3, 4, 5))
NO_QL = RunContext("run-test", "u", CTX.started, make_quicklooks=False)


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_mounds_fixtures(tmp_path_factory.mktemp("mounds_stage"))


@pytest.fixture(scope="module")
def stage() -> MoundsStage:
    return MoundsStage()


def _discs(shape: tuple[int, ...], mounds: tuple[tuple[float, float, float, float], ...]
           ) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    prob = np.zeros(shape[:2], np.float32)
    for x, y, r, _ in mounds:
        prob[np.hypot(xx + 0.5 - x, yy + 0.5 - y) < 0.85 * r] = 0.9
    return prob


@pytest.fixture
def fake_probs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic probability maps: discs at the drawn mounds (the model is not tested)."""
    def probs(self: MoundsStage, image: ImageData) -> tuple[np.ndarray, str]:
        name = image.path.name
        return _discs(image.pixels.shape, cross0_mounds() if "cross0" in name else MOUNDS), \
            "dtm"

    monkeypatch.setattr(MoundsStage, "probabilities", probs)


def _not_null(rows: list[dict[str, object]]) -> None:
    assert rows, "no rows to check"
    names = {c.name for c in PRODUCT.columns()}
    for row in rows:
        assert set(row) <= names, set(row) - names
        for col in PRODUCT.columns():
            if col.not_null and col.origin != "storage":
                assert row.get(col.name) is not None, col.name


def _unwrapped(verts: list[tuple[float, float]]) -> np.ndarray:
    ref = verts[0][0]
    return np.array([(ref + ((lo - ref + 180.0) % 360.0 - 180.0), la) for lo, la in verts])


def check_outline(row: dict[str, object], lon: float, lat: float) -> None:
    """Counter-clockwise (east right, north up) and containing (lon, lat), in Python."""
    verts = parse_spoly(str(row["s_region"]))
    assert 3 <= len(verts) <= 32
    poly = _unwrapped(verts)
    assert polygon_area(poly) > 0, "outline is not counter-clockwise"
    ref = poly[0, 0]
    assert contains(poly, ref + ((lon - ref + 180.0) % 360.0 - 180.0), lat)


def test_granules_one_per_file(stage: MoundsStage, fx: dict[str, Path]) -> None:
    granules = stage.granules([fx["dtm"].parent])
    names = {g.paths[0].name for g in granules}
    assert fx["dtm"].name in names and fx["hillshade_png"].name in names
    assert fx["unknown_suffix"].name not in names
    with pytest.raises(GranuleError, match="not an image"):
        stage.granules([fx["unknown_suffix"]])


@pytest.mark.parametrize("name", ["dtm", "dtm_cross0", "dtm_polar"])
def test_rows_have_ccw_outlines_containing_their_centroid(stage: MoundsStage, fx: dict[str, Path],
                                                         fake_probs: None, name: str) -> None:
    (g,) = stage.granules([fx[name]])
    out = stage.process(g, CTX)
    assert len(out.rows) == 3 and len(out.records) == 3
    assert len({r["granule_uid"] for r in out.rows}) == 3
    _not_null(out.rows)
    georef = read_image(fx[name]).georef
    assert georef is not None
    for row, rec in zip(out.rows, out.records.itertuples(index=False), strict=True):
        assert row["landform_class"] == "mound" and row["target_name"] == "Mars"
        assert row["target_class"] == "planet" and row["dataproduct_type"] == "ci"
        assert row["spatial_frame_type"] == "body" and row["c3min"] is None
        assert row["ml_model_name"] == "mounds" and row["ml_score"] == pytest.approx(0.9)
        assert row["measurement_type"] == "phys.height"
        lon, lat = (float(v) for v in georef.pixel_to_lonlat(rec.centroid_x, rec.centroid_y))
        check_outline(row, lon, lat)
        assert row["c2min"] <= lat <= row["c2max"]
        # size: equivalent diameter of the component, in km
        assert row["landform_size"] == pytest.approx(
            2 * np.sqrt(rec.area_px / np.pi) * PIXEL_M / 1000, rel=0.02)
    truth = mound_lonlat(name)
    found = [(float(r.centroid_x), float(r.centroid_y)) for r in out.records.itertuples()]
    for (x, y, _, _), _ in zip(cross0_mounds() if name == "dtm_cross0" else MOUNDS, truth,
                               strict=True):
        assert min(np.hypot(x - fx_, y - fy_) for fx_, fy_ in found) < 1.5
    # a quicklook and an access_url cut-out per mound
    assert len(out.files) == 6 and all(k.startswith("landforms/") for k in out.files)
    assert sum(k.startswith("landforms/access/") for k in out.files) == 3
    assert out.rows[0]["thumbnail_url"].startswith(CTX.files_base_url)


def test_outline_across_zero_east(stage: MoundsStage, fx: dict[str, Path],
                                  fake_probs: None) -> None:
    (g,) = stage.granules([fx["dtm_cross0"]])
    rows = stage.process(g, NO_QL).rows
    crossing = [r for r in rows if r["c1min"] > r["c1max"]]  # EPN-TAP 2.0: west > east
    assert len(crossing) == 1
    lons = [lo for lo, _ in parse_spoly(str(crossing[0]["s_region"]))]
    # one continuous range across 0 deg E, its ends the tight bounds
    assert min(lons) == pytest.approx(crossing[0]["c1min"]) and 359.9 < min(lons) < 360.0
    assert max(lons) == pytest.approx(360.0 + crossing[0]["c1max"]) and 360.0 < max(lons) < 360.1
    for row in rows:
        assert row["thumbnail_url"] is None
        if row is not crossing[0]:
            assert 0.0 <= row["c1min"] <= row["c1max"] < 360.0
            assert row["c1max"] - row["c1min"] < 0.05


def test_hillshade_png_has_null_geometry(stage: MoundsStage, fx: dict[str, Path],
                                         fake_probs: None) -> None:
    (g,) = stage.granules([fx["hillshade_png"]])
    out = stage.process(g, CTX)
    assert len(out.rows) == 3
    _not_null(out.rows)
    for row in out.rows:
        for col in ("c1min", "c1max", "c2min", "c2max", "c3min", "c3max", "s_region",
                    "landform_size", "c1_resol_min"):
            assert row.get(col) is None, col
    assert out.records["size_km"].isna().all() and (out.records["size_px"] > 5).all()


def test_real_model_finds_the_drawn_cones(stage: MoundsStage, fx: dict[str, Path]) -> None:
    (g,) = stage.granules([fx["dtm"]])
    out = stage.process(g, NO_QL)
    rec = out.records
    assert list(rec.columns)[:7] == ["image", "class", "score", "x_min", "y_min", "x_max",
                                     "y_max"]
    per_mound = [int(((rec.x_min <= x) & (x <= rec.x_max) & (rec.y_min <= y)
                      & (y <= rec.y_max)).sum()) for x, y, _, _ in MOUNDS]
    assert per_mound == [1, 1, 1] and len(rec) == len(MOUNDS), rec  # each once, nothing else
    assert (rec["input"] == "dtm").all() and not out.files


def test_bad_files_raise_granule_error(stage: MoundsStage, fx: dict[str, Path]) -> None:
    for name in ("truncated_tif", "not_image_tif", "tif_no_georef"):
        (g,) = stage.granules([fx[name]])
        with pytest.raises(GranuleError) as err:
            stage.process(g, CTX)
        assert fx[name].name in str(err.value)


def test_parameters_are_validated(stage: MoundsStage, fx: dict[str, Path]) -> None:
    (g,) = stage.granules([fx["hillshade_png"]])
    for bad in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="threshold"):
            stage.process(g, RunContext("r", "u", CTX.started,
                                        params={"threshold": bad}))
    with pytest.raises(ValueError, match="min_area_px"):
        stage.process(g, RunContext("r", "u", CTX.started,
                                    params={"min_area_px": 0.5}))
    with pytest.raises(ValueError, match="unknown parameter '"):
        stage.process(g, RunContext("r", "u", CTX.started,
                                    params={"speed": 1}))


def test_cli_predict_writes_csv(fx: dict[str, Path], tmp_path: Path) -> None:
    from epnml.cli import main

    out = tmp_path / "m.csv"
    assert main(["predict", "mounds", str(fx["dtm"]), str(fx["hillshade_png"]), "-o",
                 str(out), "--workers", "1", "--no-progress", "--threshold", "0.5"]) == 0
    frame = pd.read_csv(out)
    assert {"image", "class", "score", "x_min", "y_min", "x_max", "y_max", "lon_min",
            "lon_max", "lat_min", "lat_max", "size_km", "size_px"} <= set(frame.columns)
    geo = frame[frame["image"] == fx["dtm"].name]
    assert len(geo) == len(MOUNDS) and geo["lon_min"].between(135.0, 135.1).all()
    png = frame[frame["image"] == fx["hillshade_png"].name]
    assert len(png) > 0, "the hillshade chip's rows are what this checks"
    assert png["lon_min"].isna().all() and png["size_km"].isna().all()


def test_simulator_is_seeded_and_labels_mounds() -> None:
    from epnml.ingest.simulate.mounds import hillshade, simulate_dtm

    a, b = simulate_dtm(1234, 128), simulate_dtm(1234, 128)
    assert np.array_equal(a.dtm, b.dtm) and np.array_equal(a.mask, b.mask)
    assert a.dtm.dtype == np.float32 and a.mask.shape == (128, 128)
    assert not np.array_equal(a.dtm, simulate_dtm(1235, 128).dtm)
    with_fields = simulate_dtm(77, 192, n_fields=2)
    assert with_fields.mounds and with_fields.mask.any()
    for m in with_fields.mounds:  # a mound centre inside the image is labelled
        x, y = int(m.x), int(m.y)
        if 0 <= x < 192 and 0 <= y < 192:
            assert with_fields.mask[y, x]
    shade = hillshade(with_fields.dtm, 20.0)
    assert 0.0 <= shade.min() and shade.max() <= 1.0


def test_unet_and_features_shapes() -> None:
    import torch

    from epnml.ml.mounds.unet import UNet, dtm_features, image_features

    dtm = simulate_scene_dtm()
    feats = dtm_features(dtm, 20.0)
    assert feats.shape == (5, 64, 96) and np.isfinite(feats).all()
    assert np.abs(feats[2:4]).max() <= 1.0
    img = image_features(np.arange(64 * 96, dtype=np.float32).reshape(64, 96))
    assert img.shape == (5, 64, 96) and not img[:4].any()
    with torch.inference_mode():
        assert UNet().eval()(torch.from_numpy(feats[None])).shape == (1, 64, 96)
    with pytest.raises(ValueError, match="pixel size"):
        dtm_features(dtm, 0.0)


def simulate_scene_dtm() -> np.ndarray:
    from epnml.ingest.simulate.mounds import simulate_dtm

    return simulate_dtm(5, (64, 96)).dtm


def test_outline_of_a_large_irregular_component_is_reduced_and_valid() -> None:
    from epnml.ingest.stages.outlines import component_outline

    yy, xx = np.mgrid[0:120, 0:160]
    blob = (np.hypot(xx - 60, yy - 60) < 40) | (np.hypot(xx - 110, yy - 70) < 25)
    rr, cc = np.nonzero(blob)
    poly = component_outline(rr, cc)
    assert 3 <= len(poly) <= 32
    map_xy = poly * np.array([1.0, -1.0])  # north up
    assert polygon_area(map_xy) > 0
    assert contains(map_xy, cc.mean() + 0.5, -(rr.mean() + 0.5))


def test_bench_mounds_reports_tiles_per_minute() -> None:
    from epnml.experiments.landforms.bench import run_mounds

    out = run_mounds(repeats=1, batch=1, threads=1)
    assert out["tile_px"] == 256 and out["tiles_per_min"] > 0
    with pytest.raises(ValueError):
        run_mounds(threads=3)


def test_finer_dtm_is_resampled_to_the_training_scale(stage: MoundsStage,
                                                      tmp_path: Path) -> None:
    from PIL import Image

    from epnml.ingest.simulate.geotiff import write_mars_geotiff
    from tests.fixtures.make_mounds_fixtures import scene

    coarse = scene().dtm
    fine = np.asarray(Image.fromarray(coarse, mode="F").resize(
        (coarse.shape[1] * 4, coarse.shape[0] * 4), Image.Resampling.BILINEAR), np.float32)
    path = write_mars_geotiff(tmp_path / "simulated_fine_dtm.tif", fine, 135.0, 30.0, 5.0)
    (g,) = stage.granules([path])
    rec = stage.process(g, NO_QL).records
    assert set(rec["input"]) == {"dtm resampled x0.25"}
    per_mound = [int(((rec.x_min <= 4 * x) & (4 * x <= rec.x_max) & (rec.y_min <= 4 * y)
                      & (4 * y <= rec.y_max)).sum()) for x, y, _, _ in MOUNDS]
    assert per_mound == [1, 1, 1] and len(rec) == len(MOUNDS), rec
    assert (rec["size_km"] > 0.1).all() and (rec["size_km"] < 1.0).all()
