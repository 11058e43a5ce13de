"""One builder for the EPN-TAP columns every product row repeats (issue #12).

``epnml.ingest.epn.core_row`` writes them; the stages add what differs. Derived model
versions (``+threshold-0.7``) reach model_info() and every row through the stage's
``version_suffix``, set by get_stage on a copy that shares the loaded model.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from epnml.ingest.epn import core_row
from epnml.ingest.executor import get_stage
from epnml.ingest.spec import validate_params
from epnml.ingest.stage import Granule, RunContext
from epnml.ml.model_info import ModelInfo
from epnml.schemas.products import get_product
from tests.fixtures.make_icme_fixtures import make_icme_fixtures

INFO = ModelInfo("icme", "1.0.0", "ab" * 32)
CTX = RunContext(run_id="run-1", files_base_url="http://host/files",
                 started=datetime(2026, 1, 2, 3, 4, 5))
GRANULE = Granule("wind_2019", (Path("wind_2019.csv"),))
CORE = ("granule_uid", "granule_gid", "obs_id", "dataproduct_type", "target_name",
        "target_class", "spatial_frame_type", "processing_level", "creation_date",
        "modification_date", "release_date", "service_title", "thumbnail_url", "publisher",
        "bib_reference", "ml_model_name", "ml_model_version", "ml_weights_sha256",
        "ml_run_id", "time_scale")


def test_core_row_columns() -> None:
    row = core_row(get_product("events"), uid="icme_wind_2019_0", gid="icme", granule=GRANULE,
                   info=INFO, ctx=CTX, dataproduct_type="ci", target_name="solar wind",
                   target_class="interplanetary_medium", thumb="q/a.png",
                   bib_reference="ref", time_scale="UTC")
    assert row == {
        "granule_uid": "icme_wind_2019_0", "granule_gid": "icme", "obs_id": "wind_2019",
        "dataproduct_type": "ci", "target_name": "solar wind",
        "target_class": "interplanetary_medium", "spatial_frame_type": "none",
        "processing_level": 5, "creation_date": CTX.started,
        "modification_date": CTX.started, "release_date": CTX.started,
        "service_title": "epnml_events", "thumbnail_url": "http://host/files/q/a.png",
        "publisher": "epnml", "bib_reference": "ref", "ml_model_name": "icme",
        "ml_model_version": "1.0.0", "ml_weights_sha256": "ab" * 32, "ml_run_id": "run-1",
        "time_scale": "UTC",
    }


def test_core_row_without_time_or_thumbnail() -> None:
    row = core_row(get_product("landforms"), uid="u", gid="pits", granule=GRANULE, info=INFO,
                   ctx=CTX, dataproduct_type="ci", target_name="Mars", target_class="planet",
                   thumb=None, bib_reference=None)
    assert "time_scale" not in row
    assert row["thumbnail_url"] is None and row["spatial_frame_type"] == "body"


@pytest.fixture(scope="module")
def wind(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_icme_fixtures(tmp_path_factory.mktemp("core_row"))["csv"]


def test_stage_rows_are_the_core_row_plus_their_own(wind: Path) -> None:
    stage = get_stage("icme", "1.0.0")
    (granule,) = stage.granules([wind])
    out = stage.process(granule, CTX)
    assert len(out.rows) == 2  # the two simulated ICMEs of the fixture
    for row in out.rows:
        expected = core_row(get_product("events"), uid=row["granule_uid"], gid="icme",
                            granule=granule, info=stage.model_info(), ctx=CTX,
                            dataproduct_type="ci", target_name="solar wind",
                            target_class="interplanetary_medium",
                            thumb=row["thumbnail_url"].removeprefix(CTX.files_base_url + "/"),
                            bib_reference=row["bib_reference"], time_scale="UTC")
        assert {k: row[k] for k in CORE} == expected


def test_derived_version_reaches_rows_without_touching_the_base_stage(wind: Path) -> None:
    base = get_stage("icme", "1.0.0")
    params = validate_params("icme", {"threshold": 0.45})[0]
    tagged = get_stage("icme", "1.0.0", params)
    version = base.model_info().version
    assert tagged.model_info() == ModelInfo("icme", version + "+threshold-0.45",
                                            base.model_info().sha256)
    assert base.model_info().version == version and base.version_suffix == ""
    assert tagged._model is base._model  # type: ignore[attr-defined]  # loaded once
    (granule,) = tagged.granules([wind])
    ctx = RunContext("run-2", CTX.files_base_url, CTX.started, params=params)
    rows = tagged.process(granule, ctx).rows
    assert len(rows) == 2  # threshold 0.45 keeps both simulated ICMEs
    assert {r["ml_model_version"] for r in rows} == {version + "+threshold-0.45"}
    assert {r["ml_model_version"] for r in base.process(granule, CTX).rows} == {version}
