"""Pits stage: granules, records and ``landforms`` rows (NULL geometry for chips)."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.stage import GranuleError, RunContext
from epnml.ingest.stages.pits import PitsStage
from epnml.ml.pits.inference import available_versions
from epnml.schemas.products import get_product
from tests.fixtures.make_pits_fixtures import (
    GEO_LAT0,
    GEO_LON0,
    PITS,
    make_pits_fixtures,
)

pytestmark = pytest.mark.skipif(not available_versions(), reason="no committed pits weights")
PRODUCT = get_product("landforms")
CTX = RunContext("run-test", "http://files.example/static", datetime(2026, 1, 2, 3, 4, 5))
#: deterministic detections (input px, class 1..5, score) substituted for the model.
FAKE = pd.DataFrame({"x_min": [56.0, 118.0], "y_min": [66.0, 168.0], "x_max": [84.0, 162.0],
                     "y_max": [94.0, 212.0], "class": [2, 1], "score": [0.91, 0.42]})


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pits_fixtures(tmp_path_factory.mktemp("landforms_stage"))


@pytest.fixture(scope="module")
def stage() -> PitsStage:
    return PitsStage()


@pytest.fixture
def fake_detect(monkeypatch: pytest.MonkeyPatch) -> None:
    import epnml.ml.pits.inference as inference

    monkeypatch.setattr(inference, "detect", lambda image, model, threshold=None: FAKE.copy())


def _not_null(rows: list[dict[str, object]]) -> None:
    assert rows, "no rows to check"
    names = {c.name for c in PRODUCT.columns()}
    for row in rows:
        assert set(row) <= names, set(row) - names
        for col in PRODUCT.columns():
            if col.not_null and col.origin != "storage":
                assert row.get(col.name) is not None, col.name


def test_granules_one_per_image(stage: PitsStage, fx: dict[str, Path]) -> None:
    folder = fx["chip_jpg"].parent
    granules = stage.granules([folder])
    names = {g.paths[0].name for g in granules}
    assert fx["chip_jpg"].name in names and fx["geotiff"].name in names
    assert not any(n.endswith(".txt") for n in names)
    assert all(len(g.paths) == 1 for g in granules)
    with pytest.raises(GranuleError, match="not an image"):
        stage.granules([fx["chip_label"]])


def test_chip_rows_have_core_columns_and_null_geometry(stage: PitsStage, fx: dict[str, Path],
                                                       fake_detect: None) -> None:
    (g,) = stage.granules([fx["chip_jpg"]])
    out = stage.process(g, CTX)
    assert len(out.rows) == 2 and len(out.records) == 2
    _not_null(out.rows)
    for row in out.rows:
        for col in ("c1min", "c1max", "c2min", "c2max", "c3min", "c3max", "s_region",
                    "landform_size", "time_min", "time_max"):
            assert row[col] is None, col
        assert row["target_name"] == "Mars" and row["target_class"] == "planet"
        assert row["spatial_frame_type"] == "body" and row["dataproduct_type"] == "ci"
        assert row["instrument_host_name"] == "MRO" and row["instrument_name"] == "HiRISE"
        assert row["service_title"] == "epnml_landforms" and row["processing_level"] == 5
        assert row["source_image"] == fx["chip_jpg"].name
        assert row["ml_model_name"] == "pits" and len(row["ml_weights_sha256"]) == 64
    first = out.rows[0]
    assert first["landform_class"] == "Type-2 pit crater" and first["feature_name"] == \
        "pit crater"
    assert out.rows[1]["landform_class"] == "Type-1 skylight"
    assert first["ml_score"] == pytest.approx(0.91)
    assert len({r["granule_uid"] for r in out.rows}) == 2
    rec = out.records.iloc[0]
    assert (rec["image"], rec["class"], rec["x_min"], rec["y_max"]) == \
        (fx["chip_jpg"].name, 2, 56.0, 94.0)
    assert pd.isna(rec["lon_min"]) and pd.isna(rec["size_km"])
    # quicklook chips: PNG files under landforms/, named by the rows
    # quicklooks, and the cut-outs of access_url under landforms/access/
    quick = sorted(k for k in out.files if not k.startswith("landforms/access/"))
    assert len(quick) == 2 == len(out.files) - 2 and all(k.startswith("landforms/") for k in quick)
    assert first["thumbnail_url"] == f"{CTX.files_base_url}/{quick[0]}"
    from PIL import Image

    png = Image.open(io.BytesIO(out.files[quick[0]]))
    assert png.format == "PNG" and max(png.size) == 128


def test_geotiff_rows_have_bounds_ccw_polygon_and_size(stage: PitsStage, fx: dict[str, Path],
                                                       fake_detect: None) -> None:
    from epnml.ingest.stages.pits import _signed_area

    (g,) = stage.granules([fx["geotiff"]])
    out = stage.process(g, CTX)
    _not_null(out.rows)
    row = out.rows[0]
    deg = np.degrees(25.0 / 3_396_190.0)
    assert row["c1min"] == pytest.approx(GEO_LON0 + 56 * deg)
    assert row["c1max"] == pytest.approx(GEO_LON0 + 84 * deg)
    assert row["c2max"] == pytest.approx(GEO_LAT0 - 66 * deg)
    assert row["c2min"] == pytest.approx(GEO_LAT0 - 94 * deg)
    assert row["landform_size"] == pytest.approx(28 * 0.025)
    assert row["c1_resol_min"] == pytest.approx(deg)
    assert row["spatial_coordinate_description"].startswith("Mars planetocentric")
    poly = row["s_region"]
    assert poly.startswith("{(") and poly.endswith(")}") and poly.count("d,") == 4
    verts = [tuple(float(v.rstrip("d")) for v in p.strip("(){}").split(","))
             for p in poly[1:-1].split("),(")]
    assert _signed_area(verts) > 0  # counter-clockwise
    assert row["instrument_host_name"] is None  # not a HiRISE file name: unknown, not guessed


def test_bad_files_raise_granule_error(stage: PitsStage, fx: dict[str, Path]) -> None:
    for name in ("truncated_jpg", "not_image_jpg", "tiff_no_georef"):
        (g,) = stage.granules([fx[name]])
        with pytest.raises(GranuleError) as err:
            stage.process(g, CTX)
        assert fx[name].name in str(err.value)


def test_threshold_parameter(stage: PitsStage, fx: dict[str, Path]) -> None:
    (g,) = stage.granules([fx["chip_png"]])
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            stage.process(g, RunContext("r", "u", CTX.started, params={"threshold": bad}))
    with pytest.raises(ValueError, match="unknown parameter '"):
        stage.process(g, RunContext("r", "u", CTX.started, params={"speed": 1}))


def test_real_model_runs_on_the_synthetic_chip(stage: PitsStage, fx: dict[str, Path]) -> None:
    (g,) = stage.granules([fx["chip_png"]])
    out = stage.process(g, RunContext("r", "u", CTX.started, make_quicklooks=False,
                                      params={"threshold": 0.05}))
    assert list(out.records.columns)[:8] == ["image", "class", "class_name", "score",
                                             "x_min", "y_min", "x_max", "y_max"]
    rec = out.records
    # the default model (2.0.0) at threshold 0.05 on this chip: 28 boxes, and each drawn
    # pit lies inside one of the three best (scores 0.79, 0.68, 0.61; 1.0.0: 24 boxes,
    # 0.62, 0.44, 0.42)
    assert len(out.rows) == len(rec) == 28
    best = [float(rec[(rec.x_min <= x) & (x <= rec.x_max) & (rec.y_min <= y)
                      & (y <= rec.y_max)]["score"].max()) for x, y, _ in PITS]
    assert all(score > 0.55 for score in best), best
    assert (rec["score"] >= 0.05).all() and not out.files
    _not_null(out.rows)
    for row in out.rows:
        assert row["s_region"] is None and row["instrument_name"] is None
