"""`epnml ingest landforms` routing: which landform model reads which file (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from epnml.ingest.routing import models_for, route_landforms
from epnml.ingest.stage import GranuleError
from tests.fixtures.make_craters_fixtures import make_craters_fixtures
from tests.fixtures.make_ice_fixtures import make_ice_fixtures
from tests.fixtures.make_mounds_fixtures import make_mounds_fixtures
from tests.fixtures.make_pits_fixtures import make_pits_fixtures


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("routing")
    craters = make_craters_fixtures(root / "craters")
    mounds = make_mounds_fixtures(root / "mounds")
    ice = make_ice_fixtures(root / "ice")
    pits = make_pits_fixtures(root / "pits")
    return {
        "mars_mosaic": craters["mars"], "moon": craters["moon_0E"],
        "venus": craters["venus"], "dtm": mounds["dtm"],
        "dtm_no_georef": mounds["tif_no_georef"], "hillshade_png": mounds["hillshade_png"],
        "ice_50S": ice["geotiff"], "pits_geotiff": pits["geotiff"], "chip": pits["chip_jpg"],
        "not_image": craters["not_image_tif"],
        "unknown_suffix": craters["unknown_suffix"],
    }


@pytest.mark.parametrize(("name", "expected"), [
    ("mars_mosaic", ["craters"]),       # 0.02 deg px = 1.2 km: a mosaic
    ("moon", ["craters"]),              # not Mars: only craters are trained for it
    ("dtm", ["mounds"]),                # float32 single band
    ("dtm_no_georef", ["mounds"]),      # a DTM even without georeference
    ("hillshade_png", ["pits"]),        # a plain chip
    ("ice_50S", ["pits", "ice"]),       # HiRISE-scale, 50 deg S: the ice band
    ("pits_geotiff", ["pits"]),         # HiRISE-scale near the equator
    ("chip", ["pits"]),
])
def test_each_file_goes_to_its_models(files: dict[str, Path], name: str,
                                      expected: list[str]) -> None:
    assert models_for(files[name]) == expected


@pytest.mark.parametrize(("name", "reason"), [
    ("venus", "is not the Moon, Mars or Mercury"), ("not_image", "not an image file"),
    ("unknown_suffix", "not an image for the landform pipelines"),
])
def test_bad_files_name_the_file_and_the_reason(files: dict[str, Path], name: str,
                                                reason: str) -> None:
    with pytest.raises(GranuleError) as err:
        route_landforms([files[name]])
    assert str(files[name]) in str(err.value)
    assert reason in str(err.value)


def test_route_groups_files_and_collects_errors(files: dict[str, Path]) -> None:
    errors: list[GranuleError] = []
    routes = route_landforms([files["dtm"], files["moon"], files["ice_50S"],
                              files["not_image"]], errors=errors)
    assert routes == {"pits": [files["ice_50S"]], "craters": [files["moon"]],
                      "mounds": [files["dtm"]], "ice": [files["ice_50S"]]}
    assert [e.path for e in errors] == [str(files["not_image"])]


def test_explicit_models_override_the_rule(files: dict[str, Path]) -> None:
    routes = route_landforms([files["chip"], files["moon"]], models=["craters"])
    assert routes == {"craters": [files["chip"], files["moon"]]}
    with pytest.raises(ValueError, match="unknown landform model"):
        route_landforms([files["chip"]], models=["volcanoes"])
