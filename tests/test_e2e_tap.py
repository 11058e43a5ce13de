"""End to end: simulated raw files -> `epnml ingest icme` -> PostgreSQL -> DaCHS -> pyvo."""

from __future__ import annotations

import urllib.request
from typing import Any

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.epn import to_jd

pyvo = pytest.importorskip("pyvo")

pytestmark = pytest.mark.stack


def test_bad_granule_is_reported_and_the_batch_continues(ingested: Any) -> None:
    result = ingested.result
    assert result.returncode == 1, result.stderr  # one granule failed
    assert "wind_broken_20210401.csv" in result.stderr
    assert "1 granule(s) ok, 1 failed" in result.stderr


def test_rows_are_served_with_types(tap: Any) -> None:
    rows = tap.search("SELECT * FROM epnml_events.epn_core").to_table()
    assert len(rows) >= 1
    assert rows["time_min"].dtype == np.float64
    row = rows[0]
    assert row["target_class"] == "interplanetary_medium"
    assert row["target_region"] == "solar-wind"
    assert row["dataproduct_type"] == "ci"
    assert row["processing_level"] == 5
    assert row["instrument_host_name"] == "Wind"
    assert "SIMULATED" in row["processing_level_desc"]
    assert 0.0 <= row["ml_score"] <= 1.0
    assert row["ml_model_name"] == "icme" and len(row["ml_weights_sha256"]) == 64
    assert row["time_min"] < row["time_max"]
    assert 0.97 < row["sun_distance_min"] < 1.01
    assert not any("broken" in str(o) for o in rows["obs_id"])


def test_time_overlap_query_matches_the_rows(ingested: Any, tap: Any) -> None:
    rows = tap.search("SELECT granule_uid, time_min, time_max FROM epnml_events.epn_core"
                      ).to_table()
    found = 0
    for start, end in ingested.truth:
        lo, hi = to_jd(pd.Timestamp(start)), to_jd(pd.Timestamp(end))
        hits = tap.search(
            "SELECT granule_uid FROM epnml_events.epn_core "
            f"WHERE time_min <= {hi!r} AND time_max >= {lo!r}").to_table()
        expected = {str(r["granule_uid"]) for r in rows
                    if r["time_min"] <= hi and r["time_max"] >= lo}
        assert {str(u) for u in hits["granule_uid"]} == expected
        found += bool(expected)
    # the committed model must find simulated ICMEs it was not trained on
    assert found >= 1, f"no simulated ICME of {ingested.truth} was detected"


def test_target_class_query(tap: Any) -> None:
    n_all = len(tap.search("SELECT granule_uid FROM epnml_events.epn_core").to_table())
    hits = tap.search("SELECT granule_uid FROM epnml_events.epn_core WHERE "
                      "ivo_hashlist_has(target_class, 'interplanetary_medium') = 1").to_table()
    assert len(hits) == n_all > 0
    none = tap.search("SELECT granule_uid FROM epnml_events.epn_core WHERE "
                      "ivo_hashlist_has(target_class, 'planet') = 1").to_table()
    assert len(none) == 0


def test_thumbnail_is_served(tap: Any) -> None:
    url = str(tap.search("SELECT TOP 1 thumbnail_url FROM epnml_events.epn_core"
                         ).to_table()[0]["thumbnail_url"])
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.headers["Content-Type"] == "image/png"
        assert response.read(8) == b"\x89PNG\r\n\x1a\n"


def test_second_ingest_is_idempotent(ingested: Any, tap: Any) -> None:
    before = sorted(str(u) for u in tap.search(
        "SELECT granule_uid FROM epnml_events.epn_core").to_table()["granule_uid"])
    good = str(ingested.inputs / "wind_simulated_20210301.csv")
    result = ingested.stack.run(*_epnml(), "ingest", "icme", "--no-progress", good, check=False)
    assert result.returncode == 0, result.stderr
    after = sorted(str(u) for u in tap.search(
        "SELECT granule_uid FROM epnml_events.epn_core").to_table()["granule_uid"])
    assert after == before


def _epnml() -> list[str]:
    import sys
    from pathlib import Path

    return [str(Path(sys.prefix) / "bin" / "epnml")]
