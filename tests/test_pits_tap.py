"""End to end: synthetic Mars GeoTIFFs -> `epnml ingest pits` -> pgSphere -> DaCHS -> pyvo."""

from __future__ import annotations

from typing import Any

import pytest

pyvo = pytest.importorskip("pyvo")

pytestmark = pytest.mark.stack


def test_ingest_succeeded(ingested: Any) -> None:
    result = ingested.landforms_result
    assert result.returncode == 0, result.stderr
    assert "2 granule(s) ok, 0 failed" in result.stderr


def test_pits_within_two_degrees_of_a_point(tap: Any) -> None:
    """The issue's query: pits of a type within 2 deg of (lon, lat) on Mars."""
    near = tap.search(
        "SELECT granule_uid, landform_class, c1min, c1max, c2min, c2max, s_region"
        " FROM epnml_landforms.epn_core WHERE target_name = 'Mars'"
        " AND ml_model_name = 'pits'"
        " AND 1 = INTERSECTS(s_region, CIRCLE(135.05, -4.95, 2))").to_table()
    assert len(near) >= 1
    for row in near:  # only the image at 135 E, -4.9 N; the other lies at 350 E, 10 N
        assert 134 < row["c1min"] <= row["c1max"] < 136
        assert -6 < row["c2min"] <= row["c2max"] < -3.9
    far = tap.search("SELECT COUNT(*) AS n FROM epnml_landforms.epn_core"
                     " WHERE ml_model_name = 'pits'"
                     " AND 1 = INTERSECTS(s_region, CIRCLE(60, 40, 2))").to_table()
    assert int(far["n"][0]) == 0


def test_outline_contains_its_box_centre(tap: Any) -> None:
    rows = tap.search("SELECT granule_uid, c1min, c1max, c2min, c2max"
                      " FROM epnml_landforms.epn_core WHERE ml_model_name = 'pits'").to_table()
    assert len(rows) >= 1
    for row in rows:
        lon = (row["c1min"] + row["c1max"]) / 2
        lat = (row["c2min"] + row["c2max"]) / 2
        hit = tap.search(
            "SELECT granule_uid FROM epnml_landforms.epn_core"
            f" WHERE granule_uid = '{row['granule_uid']}'"
            f" AND 1 = CONTAINS(POINT({lon}, {lat}), s_region)").to_table()
        assert len(hit) == 1, f"{row['granule_uid']}: outline does not contain its centre"


def test_rows_carry_class_size_and_provenance(tap: Any) -> None:
    rows = tap.search("SELECT landform_class, landform_size, source_image, ml_model_name,"
                      " spatial_frame_type, target_class FROM epnml_landforms.epn_core"
                      " WHERE ml_model_name = 'pits'").to_table()
    assert len(rows) >= 1
    assert set(rows["spatial_frame_type"]) == {"body"}
    assert all(str(c).startswith("Type-") for c in rows["landform_class"])
    assert (rows["landform_size"] > 0).all()
