"""Ice stage: the image-level rule (table-tested), chunk rows and the image row, footprints
(counter-clockwise, across 0 deg E), NULL geometry without georeference, bad inputs, CLI."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.readers.images import read_image
from epnml.ingest.stage import GranuleError, RunContext
from epnml.ingest.stages.ice import IceStage
from epnml.ingest.stages.outlines import contains, parse_spoly, polygon_area
from epnml.ml.ice.icenet import (
    IMAGE_BAD,
    IMAGE_GOOD,
    IMAGE_HARD,
    chunk_inputs,
    image_class,
    saturation_level,
)
from epnml.ml.ice.model import available_versions
from epnml.schemas.products import get_product
from tests.fixtures.make_ice_fixtures import CORNERS, chunk_labels, make_ice_fixtures

PRODUCT = get_product("landforms")
CTX = RunContext("run-test", "http://files.example/static", datetime(2026, 1, 2, 3, 4, 5))
NO_QL = RunContext("run-test", "u", CTX.started, make_quicklooks=False)
needs_weights = pytest.mark.skipif(not available_versions(),
                                   reason="no committed ice weights")

# --- the image-level rule ------------------------------------------------------------------

RULE_TABLE = [
    # majority branch (icy chunks >= half)
    ([0.9, 0.8, 0.7], IMAGE_GOOD),            # mean 0.80, 3/3 icy
    ([0.9, 0.9, 0.1], IMAGE_GOOD),            # mean 0.633 > 0.6, 2/3 icy
    ([0.61, 0.61, 0.61], IMAGE_GOOD),         # mean 0.61
    ([0.6, 0.6, 0.6], IMAGE_HARD),            # mean exactly 0.6: not "above 60 %" -> 40-60 %
    ([0.65, 0.65, 0.0], IMAGE_HARD),          # mean 0.433, 2/3 icy -> 40-60 %
    ([0.6, 0.6, 0.0, 0.0], IMAGE_BAD),        # 2/4 icy (half), mean 0.3 < 0.4
    ([0.95, 0.95, 0.0, 0.0], IMAGE_HARD),     # exactly half icy, mean 0.475
    ([1.0, 1.0, 0.9, 0.0], IMAGE_GOOD),       # 3/4 icy, mean 0.725
    ([1.0, 1.0, 0.3, 0.3], IMAGE_HARD),       # exactly half icy, mean 0.65 > 0.6: open case
    ([0.6, 0.6, 0.1], IMAGE_HARD),            # 2/3 icy, mean 0.433
    ([0.6, 0.6, 0.0], IMAGE_HARD),            # 2/3 icy, mean exactly 0.4: band inclusive
    # minority branch (icy chunks < half)
    ([0.9, 0.1, 0.1, 0.1, 0.1], IMAGE_GOOD),  # 1/5 icy, mean 0.26 > 0.2
    ([0.5, 0.5, 0.5], IMAGE_GOOD),            # 0 icy, mean 0.5 > 0.2 (literal reading)
    ([0.21], IMAGE_GOOD),                     # one chunk, not icy, mean 0.21
    ([0.7, 0.0, 0.0, 0.0, 0.0], IMAGE_HARD),  # 1/5 icy, mean 0.14: lower band
    ([0.6, 0.0, 0.0, 0.0, 0.0, 0.0], IMAGE_HARD),  # 1/6 icy, mean exactly 0.1
    ([0.2, 0.2, 0.2], IMAGE_BAD),             # 0 icy, mean 0.2 (not above 20 %)
    ([0.05, 0.0, 0.0], IMAGE_BAD),            # 0 icy, low mean: no icy chunk -> bad
    ([0.6] + [0.0] * 60, IMAGE_BAD),          # 1/61 icy, mean 0.0098 < 1 %
    ([0.61] + [0.0] * 60, IMAGE_HARD),        # 1/61 icy, mean 0.0100 -> inclusive 1 %
    ([0.0], IMAGE_BAD),
    ([1.0], IMAGE_GOOD),
    ([0.6], IMAGE_HARD),                      # single chunk at exactly 60 %
]


@pytest.mark.parametrize(("probs", "expected"), RULE_TABLE)
def test_image_rule_table(probs: list[float], expected: str) -> None:
    assert image_class(probs) == expected


@pytest.mark.parametrize("bad", [[], [1.2], [-0.1, 0.5], [float("nan")]])
def test_image_rule_refuses_bad_input(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        image_class(bad)


def test_chunk_inputs_shapes_and_saturation() -> None:
    img = np.full((1500, 2100), 80.0, np.float32)
    img[100:200, 100:200] = 255.0
    x, chunks = chunk_inputs(img, saturation_level("L"))
    # 2 rows x 3 cols; the last column holds 52 px (5 % < 25 %): dropped
    assert x.shape == (4, 2, 128, 128) and [(c.row, c.col) for c in chunks] == \
        [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert x[0, 1].max() == pytest.approx(1.0) and x[1, 1].max() == 0.0
    assert saturation_level("F") is None and saturation_level("I;16") == 65535.0


# --- the stage -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_ice_fixtures(tmp_path_factory.mktemp("ice_stage"))


@pytest.fixture(scope="module")
def stage() -> IceStage:
    return IceStage()


@pytest.fixture
def fake_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic chunk probabilities 0.9, 0.3, 0.9, ... (the model is not tested)."""
    import epnml.ml.ice.model as seg

    def classify(pixels: np.ndarray, module: object, saturation: float | None
                 ) -> tuple[np.ndarray, list[object]]:
        _, chunks = chunk_inputs(pixels, saturation)
        return np.array([0.9 if i % 2 == 0 else 0.3 for i in range(len(chunks))]), \
            list(chunks)

    monkeypatch.setattr(seg, "classify_chunks", classify)


def _not_null(rows: list[dict[str, object]]) -> None:
    assert rows, "no rows to check"
    names = {c.name for c in PRODUCT.columns()}
    for row in rows:
        assert set(row) <= names, set(row) - names
        for col in PRODUCT.columns():
            if col.not_null and col.origin != "storage":
                assert row.get(col.name) is not None, col.name


def _check_outline(row: dict[str, object], lon: float, lat: float) -> None:
    verts = parse_spoly(str(row["s_region"]))
    ref = verts[0][0]
    poly = np.array([(ref + ((lo - ref + 180.0) % 360.0 - 180.0), la) for lo, la in verts])
    assert polygon_area(poly) > 0, "not counter-clockwise"
    assert contains(poly, ref + ((lon - ref + 180.0) % 360.0 - 180.0), lat)


@needs_weights
def test_rows_chunks_and_image_row(stage: IceStage, fx: dict[str, Path],
                                   fake_chunks: None) -> None:
    (g,) = stage.granules([fx["geotiff"]])
    out = stage.process(g, CTX)
    _not_null(out.rows)
    classes = [r["landform_class"] for r in out.rows]
    # chunks 0.9 and 0.3: mean 0.6, 1 of 2 icy (half) -> hard to identify
    assert classes == ["ice image: hard to identify", "ice patch"]
    image_row, patch = out.rows
    assert image_row["ml_score"] == pytest.approx(0.6) and patch["ml_score"] == pytest.approx(0.9)
    georef = read_image(fx["geotiff"]).georef
    assert georef is not None
    for row, rec in zip(out.rows, out.records.itertuples(index=False), strict=True):
        assert row["target_name"] == "Mars" and row["spatial_frame_type"] == "body"
        assert row["dataproduct_type"] == "ci" and row["c3min"] is None
        cx, cy = (rec.x_min + rec.x_max) / 2, (rec.y_min + rec.y_max) / 2
        lon, lat = (float(v) for v in georef.pixel_to_lonlat(cx, cy))
        _check_outline(row, lon, lat)
        assert -60 < row["c2min"] < row["c2max"] < -40
    lon0, lat0 = CORNERS["geotiff"]
    assert image_row["c1min"] == pytest.approx(lon0) and image_row["c2max"] == pytest.approx(lat0)
    assert patch["landform_size"] == pytest.approx(0.512, rel=1e-3)  # 1024 px at 0.5 m
    assert image_row["landform_size"] == pytest.approx(1.024, rel=1e-3)
    rec = out.records
    assert list(rec["class"]) == classes and rec.loc[0, "n_chunks"] == 2
    # a quicklook and an access_url cut-out per row
    assert len(out.files) == 4 and image_row["thumbnail_url"].startswith(CTX.files_base_url)


@needs_weights
def test_threshold_changes_chunk_rows_not_the_grade(stage: IceStage, fx: dict[str, Path],
                                                    fake_chunks: None) -> None:
    (g,) = stage.granules([fx["geotiff"]])
    ctx = RunContext("r", "u", CTX.started, make_quicklooks=False, params={"threshold": 0.2})
    out = stage.process(g, ctx)
    assert [r["landform_class"] for r in out.rows] == \
        ["ice image: hard to identify", "ice patch", "ice patch"]
    assert not out.files and all(r["thumbnail_url"] is None for r in out.rows)


@needs_weights
def test_footprint_across_zero_east(stage: IceStage, fx: dict[str, Path],
                                    fake_chunks: None) -> None:
    (g,) = stage.granules([fx["geotiff_cross0"]])
    rows = stage.process(g, NO_QL).rows
    assert [r["landform_class"] for r in rows] == ["ice image: good", "ice patch"]
    for row in rows:
        assert 359.99 < row["c1min"] < 360.0 and 0.0 < row["c1max"] < 0.01  # west > east
        lons = [lo for lo, _ in parse_spoly(str(row["s_region"]))]
        assert min(lons) == pytest.approx(row["c1min"])
        assert max(lons) == pytest.approx(360.0 + row["c1max"])
        _check_outline(row, 0.0, -45.004)


@needs_weights
def test_chip_without_georeference_has_null_geometry(stage: IceStage, fx: dict[str, Path],
                                                      fake_chunks: None) -> None:
    (g,) = stage.granules([fx["chip_png"]])
    out = stage.process(g, CTX)
    _not_null(out.rows)
    assert out.rows[0]["landform_class"].startswith("ice image: ")
    for row in out.rows:
        for col in ("c1min", "c1max", "c2min", "c2max", "s_region", "landform_size"):
            assert row.get(col) is None, col
    assert out.records["lon_min"].isna().all() and (out.records["size_px"] == 1024).all()


@needs_weights
def test_real_model_on_simulated_images(stage: IceStage, fx: dict[str, Path]) -> None:
    truth = chunk_labels()
    for name in ("geotiff", "chip_png"):
        (g,) = stage.granules([fx[name]])
        out = stage.process(g, NO_QL)
        image_rows = [r for r in out.rows if r["landform_class"].startswith("ice image: ")]
        assert len(image_rows) == 1 and 0.0 <= image_rows[0]["ml_score"] <= 1.0
        n = int(np.asarray(truth[name]).size)
        assert int(out.records.loc[0, "n_chunks"]) == n
        # one "ice patch" row per simulated icy chunk (the chip has none)
        n_icy = int(np.asarray(truth[name]).sum())
        assert [r["landform_class"] for r in out.rows[1:]] == ["ice patch"] * n_icy
        assert len(out.records) == 1 + n_icy and (out.records["score"].iloc[1:] >= 0.6).all()


@needs_weights
def test_bad_inputs_and_parameters(stage: IceStage, fx: dict[str, Path]) -> None:
    for name in ("truncated_tif", "not_image_png", "tif_no_georef"):
        (g,) = stage.granules([fx[name]])
        with pytest.raises(GranuleError) as err:
            stage.process(g, CTX)
        assert fx[name].name in str(err.value)
    with pytest.raises(GranuleError, match="not an image"):
        stage.granules([fx["unknown_suffix"]])
    (g,) = stage.granules([fx["chip_png"]])
    for bad in (0.0, 1.0, 2.0):
        with pytest.raises(ValueError, match="threshold"):
            stage.process(g, RunContext("r", "u", CTX.started,
                                        params={"threshold": bad}))
    with pytest.raises(ValueError, match="unknown parameter '"):
        stage.process(g, RunContext("r", "u", CTX.started,
                                    params={"chunk": 512}))


@needs_weights
def test_cli_predict_writes_csv(fx: dict[str, Path], tmp_path: Path) -> None:
    from epnml.cli import main

    out = tmp_path / "i.csv"
    assert main(["predict", "ice", str(fx["geotiff"]), str(fx["chip_png"]), "-o", str(out),
                 "--workers", "1", "--no-progress"]) == 0
    frame = pd.read_csv(out)
    assert {"image", "class", "score", "x_min", "y_min", "x_max", "y_max", "lon_min",
            "lon_max", "lat_min", "lat_max", "size_km", "size_px"} <= set(frame.columns)
    graded = frame[frame["class"].str.startswith("ice image: ")]
    assert sorted(graded["image"]) == sorted([fx["geotiff"].name, fx["chip_png"].name])
    geo = graded[graded["image"] == fx["geotiff"].name].iloc[0]
    assert geo["lon_min"] == pytest.approx(120.0) and geo["lat_max"] == pytest.approx(-50.0)
    assert graded[graded["image"] == fx["chip_png"].name]["lon_min"].isna().all()


def test_ice_simulator_labels_and_confounders() -> None:
    from epnml.ingest.simulate.ice import simulate_ice_scene

    a = simulate_ice_scene(31, pixel_m=2.0, icy=True, confounders=("saturated",))
    b = simulate_ice_scene(31, pixel_m=2.0, icy=True, confounders=("saturated",))
    assert np.array_equal(a.image, b.image) and a.image.dtype == np.uint8
    assert a.image.shape == (512, 512) and a.chunk == 256
    counts = a.ice.reshape(2, 256, 2, 256).sum(axis=(1, 3))
    assert np.array_equal(counts, a.chunk_ice_px)
    assert np.array_equal(a.chunk_labels, counts >= 800 / 16)
    assert a.confounders.get("saturated", 0) > 0 and (a.image == 255).any()
    dry = simulate_ice_scene(32, pixel_m=2.0, icy=False)
    assert not dry.has_ice and not dry.ice.any()


def test_icenet_forward_shape() -> None:
    import torch

    from epnml.ml.ice.icenet import IceNet

    with torch.inference_mode():
        assert IceNet().eval()(torch.zeros(3, 2, 128, 128)).shape == (3,)


def test_bench_ice_reports_chunks_per_minute() -> None:
    from epnml.experiments.landforms.bench import run_ice

    out = run_ice(repeats=1, batch=1, threads=1)
    assert out["chunk_px"] == 1024 and out["chunks_per_min"] > 0
