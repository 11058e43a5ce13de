"""End to end: simulated raw files -> `epnml ingest icme` -> PostgreSQL -> DaCHS -> pyvo."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.epn import to_jd
from tests.conftest import ICME_BROKEN, ICME_GOOD, ICME_VERSION, Ingest

pyvo = pytest.importorskip("pyvo")

pytestmark = pytest.mark.stack
#: the rows of the simulated file (other tests may add icme granules of their own).
OBS = f"obs_id = '{Path(ICME_GOOD).stem}'"
#: rows the committed model (1.0.0) writes for it: one per simulated ICME (three) and one
#: false alarm (2021-03-24 12:40, score 0.90) that overlaps none of them.
N_ROWS = 4


def test_bad_granule_is_reported_and_the_batch_continues(ingested_icme: Ingest) -> None:
    result = ingested_icme.result
    assert result.returncode == 1, result.stderr  # one granule failed
    assert ICME_BROKEN in result.stderr
    assert "1 granule(s) ok, 1 failed" in result.stderr


def test_rows_are_served_with_types(ingested_icme: Ingest, tap: Any) -> None:
    rows = tap.search(f"SELECT * FROM epnml_events.epn_core WHERE {OBS}").to_table()
    assert len(ingested_icme.truth) == 3
    assert len(rows) == ingested_icme.n_rows() == N_ROWS
    assert rows["time_min"].dtype == np.float64
    for row in rows:
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
    broken = tap.search("SELECT COUNT(*) AS n FROM epnml_events.epn_core"
                        f" WHERE obs_id = '{Path(ICME_BROKEN).stem}'").to_table()
    assert int(broken["n"][0]) == 0


def test_time_overlap_query_matches_the_rows(ingested_icme: Ingest, tap: Any) -> None:
    rows = tap.search("SELECT granule_uid, time_min, time_max FROM epnml_events.epn_core"
                      f" WHERE {OBS}").to_table()
    assert len(rows) == N_ROWS
    found = []
    for start, end in ingested_icme.truth:
        lo, hi = to_jd(pd.Timestamp(start)), to_jd(pd.Timestamp(end))
        hits = tap.search(
            "SELECT granule_uid FROM epnml_events.epn_core "
            f"WHERE {OBS} AND time_min <= {hi!r} AND time_max >= {lo!r}").to_table()
        expected = {str(r["granule_uid"]) for r in rows
                    if r["time_min"] <= hi and r["time_max"] >= lo}
        assert {str(u) for u in hits["granule_uid"]} == expected
        found.append(len(expected))
    # the committed model finds each simulated ICME (not trained on them) as one row ...
    assert found == [1, 1, 1], f"rows per simulated ICME of {ingested_icme.truth}: {found}"
    # ... and the remaining row is its one false alarm
    alarms = [str(r["granule_uid"]) for r in rows
              if not any(r["time_min"] <= to_jd(pd.Timestamp(e))
                         and r["time_max"] >= to_jd(pd.Timestamp(s))
                         for s, e in ingested_icme.truth)]
    assert alarms == ["icme_wind_simulated_20210301_20210324t1240_v1.0.0"]


def test_target_class_query(ingested_icme: Ingest, tap: Any) -> None:
    hits = tap.search("SELECT granule_uid FROM epnml_events.epn_core WHERE "
                      "ivo_hashlist_has(target_class, 'interplanetary_medium') = 1"
                      f" AND {OBS}").to_table()
    assert len(hits) == N_ROWS
    none = tap.search("SELECT granule_uid FROM epnml_events.epn_core WHERE "
                      "ivo_hashlist_has(target_class, 'planet') = 1").to_table()
    assert len(none) == 0


def test_thumbnail_is_served(ingested_icme: Ingest, tap: Any) -> None:
    rows = tap.search(f"SELECT thumbnail_url FROM epnml_events.epn_core WHERE {OBS}"
                      ).to_table()
    assert len(rows) == N_ROWS
    for url in rows["thumbnail_url"]:
        with urllib.request.urlopen(str(url), timeout=30) as response:
            assert response.headers["Content-Type"] == "image/png"
            assert response.read(8) == b"\x89PNG\r\n\x1a\n"


def test_second_ingest_is_idempotent(ingested_icme: Ingest, tap: Any) -> None:
    query = f"SELECT granule_uid FROM epnml_events.epn_core WHERE {OBS}"
    before = sorted(str(u) for u in tap.search(query).to_table()["granule_uid"])
    assert len(before) == N_ROWS
    good = str(ingested_icme.files["good"])
    result = ingested_icme.stack.run(str(Path(sys.prefix) / "bin" / "epnml"), "ingest", "icme",
                                     "--no-progress", "--model-version", ICME_VERSION, good,
                                     check=False)
    assert result.returncode == 0, result.stderr
    after = sorted(str(u) for u in tap.search(query).to_table()["granule_uid"])
    assert after == before
