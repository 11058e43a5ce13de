"""End to end: simulated Mars DTMs and HiRISE-like images -> `epnml ingest landforms` (each
file routed by its content: DTMs to mounds, 40-60 deg S HiRISE-scale images to pits and
ice) -> pgSphere -> DaCHS -> pyvo: mound outlines intersect a circle around each drawn
mound (one of them on 0 deg E) and every ice image has its image-level grade row."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pyvo = pytest.importorskip("pyvo")

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from make_ice_fixtures import CORNERS as ICE_CORNERS  # noqa: E402
from make_ice_fixtures import make_ice_fixtures  # noqa: E402
from make_mounds_fixtures import make_mounds_fixtures, mound_lonlat  # noqa: E402

pytestmark = pytest.mark.stack
#: search radius (deg) around a drawn mound centre: ~300 m on Mars, mounds are 160-240 m.
RADIUS_DEG = 0.005


@pytest.fixture(scope="module")
def mounds_ice(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Ingest the georeferenced mounds and ice fixtures in one routed CLI call."""
    epnml = str(Path(sys.prefix) / "bin" / "epnml")
    m = make_mounds_fixtures(tmp_path_factory.mktemp("mounds_tap"))
    i = make_ice_fixtures(tmp_path_factory.mktemp("ice_tap"))
    result = stack.run(epnml, "ingest", "landforms", "--no-progress", "--workers", "1",
                       str(m["dtm"]), str(m["dtm_cross0"]), str(i["geotiff"]),
                       str(i["geotiff_cross0"]), check=False)
    return {"result": result, "mound_files": m, "ice_files": i}


def test_ingest_succeeded(mounds_ice: dict[str, Any]) -> None:
    result = mounds_ice["result"]
    assert result.returncode == 0, result.stderr
    for routed in ("mounds <- 2 file(s)", "pits <- 2 file(s)", "ice <- 2 file(s)"):
        assert f"landforms: {routed}" in result.stderr
    for model in ("mounds", "pits", "ice"):
        assert f"({model}, ingest, model 1.0.0): 2 granule(s) ok, 0 failed" in result.stderr


@pytest.mark.parametrize("name", ["dtm", "dtm_cross0"])
def test_mound_outlines_intersect_their_true_location(mounds_ice: dict[str, Any], tap: Any,
                                                      name: str) -> None:
    found = 0
    for k, (lon, lat) in enumerate(mound_lonlat(name)):
        rows = tap.search(
            "SELECT granule_uid, landform_class, landform_size, source_image"
            " FROM epnml_landforms.epn_core WHERE ml_model_name = 'mounds'"
            f" AND 1 = INTERSECTS(s_region, CIRCLE({lon}, {lat}, {RADIUS_DEG}))").to_table()
        if len(rows):
            found += 1
            assert set(rows["landform_class"]) == {"mound"}
            assert set(rows["source_image"]) == {mounds_ice["mound_files"][name].name}
            assert (rows["landform_size"] > 0).all() and (rows["landform_size"] < 2).all()
        if name == "dtm_cross0" and k == 1:  # the mound centred on 0 deg E
            assert len(rows) >= 1, "the mound across 0 deg E was not found"
    assert found >= 2, f"only {found} of 3 drawn mounds found in {name}"
    far = tap.search("SELECT COUNT(*) AS n FROM epnml_landforms.epn_core"
                     " WHERE ml_model_name = 'mounds'"
                     " AND 1 = INTERSECTS(s_region, CIRCLE(60, -40, 2))").to_table()
    assert int(far["n"][0]) == 0


def test_ice_image_rows(mounds_ice: dict[str, Any], tap: Any) -> None:
    rows = tap.search(
        "SELECT granule_uid, landform_class, ml_score, source_image, c1min, c1max"
        " FROM epnml_landforms.epn_core WHERE ml_model_name = 'ice'"
        " AND landform_class LIKE 'ice image:%'").to_table()
    files = mounds_ice["ice_files"]
    assert sorted(rows["source_image"]) == sorted([files["geotiff"].name,
                                                   files["geotiff_cross0"].name])
    assert set(rows["landform_class"]) <= {"ice image: good", "ice image: hard to identify",
                                           "ice image: bad"}
    lon, lat = ICE_CORNERS["geotiff"]
    here = tap.search(
        "SELECT source_image FROM epnml_landforms.epn_core WHERE ml_model_name = 'ice'"
        " AND landform_class LIKE 'ice image:%'"
        f" AND 1 = INTERSECTS(s_region, CIRCLE({lon + 0.005}, {lat - 0.004}, 0.002))"
    ).to_table()
    assert list(here["source_image"]) == [files["geotiff"].name]
    across = tap.search(
        "SELECT source_image, c1min, c1max FROM epnml_landforms.epn_core"
        " WHERE ml_model_name = 'ice' AND 1 = CONTAINS(POINT(0.0, -45.004), s_region)"
    ).to_table()
    assert len(across) >= 1 and set(across["source_image"]) == {files["geotiff_cross0"].name}
