"""End to end: synthetic crater GeoTIFFs -> `epnml ingest craters` -> pgSphere -> DaCHS -> pyvo."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Ingest
from tests.fixtures.make_craters_fixtures import MARS_CRATERS, MOON_CRATERS

pyvo = pytest.importorskip("pyvo")

pytestmark = pytest.mark.stack


def _mine(ingested: Ingest) -> str:
    names = ", ".join(f"'{p.name}'" for p in ingested.files.values())
    return f"ml_model_name = 'craters' AND source_image IN ({names})"


def test_ingest_succeeded(ingested_craters: Ingest) -> None:
    result = ingested_craters.result
    assert result.returncode == 0, result.stderr
    assert "2 granule(s) ok, 0 failed" in result.stderr


#: rows the committed model (1.0.0) writes per image at threshold 0.2: the two drawn
#: craters and the false alarms it gives on this synthetic terrain at that low threshold.
ROWS = {"mars": 5, "moon_0E": 7}


def test_rows_per_image(ingested_craters: Ingest, tap: Any) -> None:
    rows = tap.search("SELECT source_image, target_name, landform_class"
                      f" FROM epnml_landforms.epn_core WHERE {_mine(ingested_craters)}"
                      ).to_table()
    assert len(rows) == ingested_craters.n_rows() == sum(ROWS.values())
    files = ingested_craters.files
    assert sorted(zip(rows["source_image"], rows["target_name"], strict=True)) == sorted(
        [(files["mars"].name, "Mars")] * ROWS["mars"]
        + [(files["moon_0E"].name, "Moon")] * ROWS["moon_0E"])
    assert set(rows["landform_class"]) == {"crater"}


@pytest.mark.parametrize("target, craters", [("Mars", MARS_CRATERS), ("Moon", MOON_CRATERS)])
def test_every_drawn_crater_is_one_outline(ingested_craters: Ingest, tap: Any, target: str,
                                           craters: Any) -> None:
    found = []
    for c in craters:
        rows = tap.search(
            "SELECT granule_uid FROM epnml_landforms.epn_core WHERE"
            f" target_name = '{target}' AND {_mine(ingested_craters)}"
            f" AND 1 = CONTAINS(POINT({c.lon}, {c.lat}), s_region)").to_table()
        found.append(len(rows))
    assert found == [1] * len(craters)


def test_craters_within_two_degrees_of_a_point(ingested_craters: Ingest, tap: Any) -> None:
    c = MARS_CRATERS[0]
    near = tap.search(
        "SELECT granule_uid, landform_size, c1min, c1max, c2min, c2max, target_class"
        " FROM epnml_landforms.epn_core WHERE target_name = 'Mars'"
        f" AND landform_class = 'crater' AND {_mine(ingested_craters)}"
        f" AND 1 = INTERSECTS(s_region, CIRCLE({c.lon}, {c.lat}, 2))").to_table()
    # the first drawn crater only: the second lies ~3 deg away
    assert len(near) == 1
    row = near[0]
    assert row["c1min"] < c.lon < row["c1max"] and row["c2min"] < c.lat < row["c2max"]
    assert row["target_class"] == "planet" and row["landform_size"] > 0
    far = tap.search("SELECT COUNT(*) AS n FROM epnml_landforms.epn_core"
                     " WHERE landform_class = 'crater'"
                     " AND 1 = INTERSECTS(s_region, CIRCLE(60, 40, 2))").to_table()
    assert int(far["n"][0]) == 0


def test_outline_across_zero_contains_its_centre(ingested_craters: Ingest, tap: Any) -> None:
    """The Moon crater centred on 0 deg E: its outline straddles the meridian."""
    rows = tap.search(
        "SELECT granule_uid, c1min, c1max, target_class FROM epnml_landforms.epn_core"
        f" WHERE target_name = 'Moon' AND {_mine(ingested_craters)}"
        " AND 1 = CONTAINS(POINT(0.0, 1.0), s_region)").to_table()
    assert len(rows) == 1, f"{len(rows)} Moon crater outlines contain (0 E, 1 N)"
    assert rows[0]["target_class"] == "satellite"
    # tight bounds, west > east across 0 deg E (EPN-TAP 2.0; docs/architecture.md)
    assert 359.0 < rows[0]["c1min"] < 360.0 and 0.0 < rows[0]["c1max"] < 1.0
    for lon in (359.88, 0.12):  # just west and just east of the meridian: the same row
        side = tap.search(
            "SELECT granule_uid FROM epnml_landforms.epn_core WHERE target_name = 'Moon'"
            f" AND {_mine(ingested_craters)}"
            f" AND 1 = CONTAINS(POINT({lon}, 1.0), s_region)").to_table()
        assert [str(u) for u in side["granule_uid"]] == [str(rows[0]["granule_uid"])], lon
