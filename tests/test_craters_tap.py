"""End to end: synthetic crater GeoTIFFs -> `epnml ingest craters` -> pgSphere -> DaCHS -> pyvo."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pyvo = pytest.importorskip("pyvo")

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from make_craters_fixtures import MARS_CRATERS, make_craters_fixtures  # noqa: E402

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def craters_ingest(tap: Any, ingested: Any, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[subprocess.CompletedProcess[str]]:
    """Mars (135-140 E) and Moon (across 0 E) GeoTIFFs through the real CLI, threshold 0.2."""
    files = make_craters_fixtures(tmp_path_factory.mktemp("craters_inputs"))
    stack = ingested.stack
    result = stack.run(str(Path(sys.prefix) / "bin" / "epnml"), "ingest", "craters",
                       "--no-progress", "--workers", "1", "--threshold", "0.2",
                       str(files["mars"]), str(files["moon_0E"]), check=False)
    yield result


def test_ingest_succeeded(craters_ingest: subprocess.CompletedProcess[str]) -> None:
    assert craters_ingest.returncode == 0, craters_ingest.stderr
    assert "2 granule(s) ok, 0 failed" in craters_ingest.stderr


def test_craters_within_two_degrees_of_a_point(craters_ingest: Any, tap: Any) -> None:
    c = MARS_CRATERS[0]
    near = tap.search(
        "SELECT granule_uid, landform_size, c1min, c1max, c2min, c2max, target_class"
        " FROM epnml_landforms.epn_core WHERE target_name = 'Mars'"
        " AND landform_class = 'crater'"
        f" AND 1 = INTERSECTS(s_region, CIRCLE({c.lon}, {c.lat}, 2))").to_table()
    assert len(near) >= 1
    for row in near:
        assert 133 < row["c1min"] <= row["c1max"] < 142
        assert row["target_class"] == "planet" and row["landform_size"] > 0
    far = tap.search("SELECT COUNT(*) AS n FROM epnml_landforms.epn_core"
                     " WHERE landform_class = 'crater'"
                     " AND 1 = INTERSECTS(s_region, CIRCLE(60, 40, 2))").to_table()
    assert int(far["n"][0]) == 0


def test_outline_across_zero_contains_its_centre(craters_ingest: Any, tap: Any) -> None:
    """The Moon crater centred on 0 deg E: its outline straddles the meridian."""
    rows = tap.search(
        "SELECT granule_uid, c1min, c1max, target_class FROM epnml_landforms.epn_core"
        " WHERE target_name = 'Moon' AND landform_class = 'crater'"
        " AND 1 = CONTAINS(POINT(0.0, 1.0), s_region)").to_table()
    assert len(rows) >= 1, "no Moon crater outline contains (0 E, 1 N)"
    assert all(r["target_class"] == "satellite" for r in rows)
    assert any((r["c1min"], r["c1max"]) == (0.0, 360.0) for r in rows)
    west = tap.search(
        "SELECT COUNT(*) AS n FROM epnml_landforms.epn_core WHERE target_name = 'Moon'"
        " AND 1 = CONTAINS(POINT(359.88, 1.0), s_region)").to_table()
    east = tap.search(
        "SELECT COUNT(*) AS n FROM epnml_landforms.epn_core WHERE target_name = 'Moon'"
        " AND 1 = CONTAINS(POINT(0.12, 1.0), s_region)").to_table()
    assert int(west["n"][0]) >= 1 and int(east["n"][0]) >= 1
