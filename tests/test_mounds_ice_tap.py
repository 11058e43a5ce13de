"""End to end: simulated Mars DTMs and HiRISE-like images -> `epnml ingest landforms` (each
file routed by its content: DTMs to mounds, 40-60 deg S HiRISE-scale images to pits and
ice) -> pgSphere -> DaCHS -> pyvo: mound outlines intersect a circle around each drawn
mound (one of them on 0 deg E) and every ice image has its image-level grade row."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import PITS_VERSION, Ingest
from tests.fixtures.make_ice_fixtures import CORNERS as ICE_CORNERS
from tests.fixtures.make_mounds_fixtures import MOUNDS, mound_lonlat

pyvo = pytest.importorskip("pyvo")

pytestmark = pytest.mark.stack
#: search radius (deg) around a drawn mound centre: ~300 m on Mars, mounds are 160-240 m.
RADIUS_DEG = 0.005


def test_ingest_succeeded(ingested_mounds_ice: Ingest) -> None:
    result = ingested_mounds_ice.result
    assert result.returncode == 0, result.stderr
    for routed in ("mounds <- 2 file(s)", "pits <- 2 file(s)", "ice <- 2 file(s)"):
        assert f"landforms: {routed}" in result.stderr
    for model, version in (("mounds", "1.0.0"), ("pits", PITS_VERSION), ("ice", "1.0.0")):
        assert f"({model}, ingest, model {version}): 2 granule(s) ok, 0 failed" in result.stderr


@pytest.mark.parametrize("name", ["dtm", "dtm_cross0"])
def test_mound_outlines_intersect_their_true_location(ingested_mounds_ice: Ingest, tap: Any,
                                                      name: str) -> None:
    source = ingested_mounds_ice.files[f"mounds_{name}"].name
    centres = mound_lonlat(name)
    assert len(centres) == len(MOUNDS)
    per_mound = []
    for lon, lat in centres:
        rows = tap.search(
            "SELECT granule_uid, landform_class, landform_size, source_image"
            " FROM epnml_landforms.epn_core WHERE ml_model_name = 'mounds'"
            f" AND 1 = INTERSECTS(s_region, CIRCLE({lon}, {lat}, {RADIUS_DEG}))").to_table()
        per_mound.append(len(rows))
        if len(rows):
            assert set(rows["landform_class"]) == {"mound"}
            assert set(rows["source_image"]) == {source}
            assert (rows["landform_size"] > 0).all() and (rows["landform_size"] < 2).all()
    # every drawn mound (the second of dtm_cross0 centred on 0 deg E) is one outline
    assert per_mound == [1, 1, 1], f"outlines per drawn mound in {name}: {per_mound}"
    total = tap.search("SELECT COUNT(*) AS n FROM epnml_landforms.epn_core"
                       f" WHERE ml_model_name = 'mounds' AND source_image = '{source}'"
                       ).to_table()
    assert int(total["n"][0]) == len(MOUNDS), "no outline away from the drawn mounds"
    far = tap.search("SELECT COUNT(*) AS n FROM epnml_landforms.epn_core"
                     " WHERE ml_model_name = 'mounds'"
                     " AND 1 = INTERSECTS(s_region, CIRCLE(60, -40, 2))").to_table()
    assert int(far["n"][0]) == 0


def test_ice_image_rows(ingested_mounds_ice: Ingest, tap: Any) -> None:
    rows = tap.search(
        "SELECT granule_uid, landform_class, ml_score, source_image, c1min, c1max"
        " FROM epnml_landforms.epn_core WHERE ml_model_name = 'ice'"
        " AND landform_class LIKE 'ice image:%'").to_table()
    files = {k[len("ice_"):]: p for k, p in ingested_mounds_ice.files.items()
             if k.startswith("ice_")}
    # one grade row per image; both simulated images are icy (chunk_labels: all True)
    assert sorted(zip(rows["source_image"], rows["landform_class"], strict=True)) == sorted(
        [(files["geotiff"].name, "ice image: good"),
         (files["geotiff_cross0"].name, "ice image: good")])
    lon, lat = ICE_CORNERS["geotiff"]
    here = tap.search(
        "SELECT source_image FROM epnml_landforms.epn_core WHERE ml_model_name = 'ice'"
        " AND landform_class LIKE 'ice image:%'"
        f" AND 1 = INTERSECTS(s_region, CIRCLE({lon + 0.005}, {lat - 0.004}, 0.002))"
    ).to_table()
    assert list(here["source_image"]) == [files["geotiff"].name]
    across = tap.search(
        "SELECT source_image, c1min, c1max FROM epnml_landforms.epn_core"
        " WHERE ml_model_name = 'ice' AND landform_class LIKE 'ice image:%'"
        " AND 1 = CONTAINS(POINT(0.0, -45.004), s_region)"
    ).to_table()
    assert list(across["source_image"]) == [files["geotiff_cross0"].name]
