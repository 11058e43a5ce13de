"""End to end: simulated EMUS-like FITS images and a PNG chip -> `epnml ingest aurora` ->
DaCHS -> pyvo: the aurora rows as served (body frame), beside the parametrised compliance
tests of tests/test_compliance.py (which cover ``epnml_aurora`` through ``ingested_all``).
This module needs only ``ingested_aurora``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pytest

from tests.conftest import Ingest

pyvo = pytest.importorskip("pyvo")

pytestmark = pytest.mark.stack

SCHEMA = "epnml_aurora"


def _predicted(ingested_aurora: Ingest) -> list[dict[str, Any]]:
    """The rows the stage makes of the same files in this process (same weights)."""
    from epnml.ingest.executor import get_stage
    from epnml.ingest.stage import RunContext

    stage = get_stage("aurora", None)
    ctx = RunContext("check", "http://example.org", datetime(2026, 1, 1), False)
    rows: list[dict[str, Any]] = []
    for granule in stage.granules(list(ingested_aurora.files.values())):
        rows += stage.process(granule, ctx).rows
    return rows


def test_ingest_succeeded(ingested_aurora: Ingest, tap: Any) -> None:
    result = ingested_aurora.result
    assert result.returncode == 0, result.stderr
    expected = _predicted(ingested_aurora)
    # discrete, diffuse, sinuous, the discrete image with NaN pixels, its PNG chip
    assert len(expected) == 5
    n = len(ingested_aurora.files)
    assert f"{n} granule(s) ok, 0 failed, {len(expected)} row(s)" in result.stderr
    served = tap.search(f"SELECT source_image, aurora_type FROM {SCHEMA}.epn_core").to_table()
    assert sorted(zip(map(str, served["source_image"]), map(str, served["aurora_type"]),
                      strict=True)) == sorted((r["source_image"], r["aurora_type"])
                                              for r in expected)


def test_rows_as_served(ingested_aurora: Ingest, tap: Any) -> None:
    rows = tap.search(f"SELECT * FROM {SCHEMA}.epn_core").to_table()
    assert len(rows) == 5
    for row in rows:
        assert row["target_name"] == "Mars" and row["spatial_frame_type"] == "body"
        assert str(row["processing_level_desc"]).startswith("SIMULATED input; ")
        assert str(row["aurora_type"]) in ("discrete", "diffuse", "sinuous")
        chip = str(row["source_image"]).endswith(".png")
        assert np.ma.is_masked(row["time_min"]) == chip
        assert np.ma.is_masked(row["aurora_lon"]) == chip


def test_point_in_the_footprint_finds_its_aurora(ingested_aurora: Ingest, tap: Any) -> None:
    """ADQL INTERSECTS on s_region: the aurora's centre finds its row."""
    rows = tap.search(f"SELECT granule_uid, aurora_lon, aurora_lat FROM {SCHEMA}.epn_core "
                      "WHERE s_region IS NOT NULL").to_table()
    assert len(rows) >= 1
    for row in rows:
        lon, lat = float(row["aurora_lon"]), float(row["aurora_lat"])
        found = tap.search(f"SELECT granule_uid FROM {SCHEMA}.epn_core WHERE "
                           f"1 = INTERSECTS(s_region, CIRCLE({lon}, {lat}, 0.01))").to_table()
        assert str(row["granule_uid"]) in {str(u) for u in found["granule_uid"]}
