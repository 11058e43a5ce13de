"""Stack: REAL OMNI2 2015 -> `epnml ingest icme` with the real catalogues -> ADQL on the
cross-match columns (issue #13); the run records the catalogue files."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from epnml.ingest.registry import make_stage
from epnml.ingest.stage import RunContext
from tests.conftest import Stack

pyvo = pytest.importorskip("pyvo")

pytestmark = pytest.mark.stack
OBS = "obs_id = 'omni2_2015'"


def test_adql_finds_the_uncatalogued_detections(stack: Stack, tap: Any,
                                                shared_data: Path) -> None:
    omni = shared_data / "solarwind" / "omni2_hourly" / "omni2_2015.dat"
    env = {**stack.env, "EPNML_SHARED_DATA": str(shared_data)}
    result = subprocess.run([str(Path(sys.prefix) / "bin" / "epnml"), "ingest", "icme",
                             "--no-progress", "--workers", "1", str(omni)],
                            env=env, text=True, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "catalogues not available" not in result.stderr

    # what the stage itself says about the same file (the default model, as ingested)
    stage = make_stage("icme")
    (granule,) = stage.granules([omni])
    out = stage.process(granule, RunContext("x", "http://f", datetime(2026, 1, 1),
                                            make_quicklooks=False, reference_data=shared_data))
    uncatalogued = sorted(r["granule_uid"] for r in out.rows if r["icmecat_id"] is None)
    catalogued = {r["granule_uid"]: (r["icmecat_id"], r["icmecat_overlap"], r["nguyen_id"])
                  for r in out.rows if r["icmecat_id"] is not None}
    assert uncatalogued and catalogued  # 2015 has both (tests/test_icme_catalogue_match.py)

    hits = tap.search("SELECT granule_uid FROM epnml_events.epn_core "
                      f"WHERE {OBS} AND icmecat_id IS NULL").to_table()
    assert sorted(str(u) for u in hits["granule_uid"]) == uncatalogued
    rows = tap.search("SELECT granule_uid, icmecat_id, icmecat_overlap, nguyen_id "
                      f"FROM epnml_events.epn_core WHERE {OBS} AND icmecat_id IS NOT NULL"
                      ).to_table()
    served = {str(r["granule_uid"]): (str(r["icmecat_id"]), float(r["icmecat_overlap"]),
                                      None if np.ma.is_masked(r["nguyen_id"])
                                      else str(r["nguyen_id"])) for r in rows}
    assert served == catalogued

    import psycopg

    run_id = next(line.split()[1] for line in result.stderr.splitlines()
                  if line.startswith("run "))
    with psycopg.connect(stack.owner_dsn) as conn:
        (inputs,) = conn.execute("SELECT inputs FROM epnml.runs WHERE run_id = %s",
                                 (run_id,)).fetchone()  # type: ignore[misc]
    cat = shared_data / "catalogues"
    assert inputs == {"catalogues": [
        {"name": "helio4cast_icmecat_v23.csv", "events": 1976, "sha256": hashlib.sha256(
            (cat / "helio4cast_icmecat_v23.csv").read_bytes()).hexdigest()},
        {"name": "nguyen2019_wind_icmes.csv", "events": 653, "sha256": hashlib.sha256(
            (cat / "nguyen2019_wind_icmes.csv").read_bytes()).hexdigest()}]}
