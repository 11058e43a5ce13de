"""End to end: simulated MESSENGER PDS3 products -> `epnml ingest crossings` -> DaCHS -> pyvo."""

from __future__ import annotations

import urllib.request
from typing import Any

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.epn import to_jd
from epnml.ingest.stages.crossings import local_time_h
from tests.conftest import CROSSINGS_ORBITS, Ingest

pyvo = pytest.importorskip("pyvo")

pytestmark = pytest.mark.stack


def test_ingest_succeeded(ingested_crossings: Ingest) -> None:
    result = ingested_crossings.result
    assert result.returncode == 0, result.stderr
    assert f"{len(CROSSINGS_ORBITS)} granule(s) ok, 0 failed" in result.stderr


def _edge_position(attrs: dict[str, Any], number: int) -> tuple[pd.Timestamp, float, float]:
    """Time, local time and radial distance of a simulated truth edge."""
    from epnml.ingest.simulate.messenger import simulate_orbit

    frame = simulate_orbit(int(attrs["orbit_number"]), _seed(attrs))
    t = pd.Timestamp(attrs["edges"][number - 1]).floor("s")
    x, y, z = frame.loc[t, ["x", "y", "z"]].to_numpy(float)
    return t, local_time_h(x, y), float(np.sqrt(x * x + y * y + z * z))


def _seed(attrs: dict[str, Any]) -> int:
    return dict(CROSSINGS_ORBITS)[int(attrs["orbit_number"])]


@pytest.mark.parametrize("number", [1, 8])
def test_bow_shock_by_local_time_finds_the_simulated_edge(ingested_crossings: Ingest, tap: Any,
                                                          number: int) -> None:
    """The issue's query shape: bow shock crossings in a time range and a local-time band."""
    attrs = ingested_crossings.truth[0]
    t, lt, _ = _edge_position(attrs, number)
    lo, hi = (lt - 0.5) % 24, (lt + 0.5) % 24
    band = (f"local_time_min BETWEEN {lo} AND {hi}" if lo < hi
            else f"(local_time_min >= {lo} OR local_time_min <= {hi})")
    day = to_jd(t.floor("D"))
    rows = tap.search(
        "SELECT granule_uid, time_min, local_time_min, crossing_direction, crossing_edge,"
        " orbit_number, ml_model_version FROM epnml_crossings.epn_core"
        f" WHERE feature_name = 'bow shock' AND {band}"
        f" AND time_min >= {day} AND time_max < {day + 1}").to_table()
    # one bow shock crossing lies in a 1 h local-time band on its day: its two edges
    assert sorted(rows["crossing_edge"]) == ["inner", "outer"], \
        f"bow shock rows near local time {lt:.2f} h: {len(rows)}"
    assert len(set(rows["crossing_direction"])) == 1
    row = rows[list(rows["crossing_edge"]).index("outer")]  # truth edges 1 and 8 are outer
    error = abs(float(row["time_min"]) - to_jd(t)) * 86400.0
    assert error <= 180, f"the outer bow shock row is {error:.0f} s from the truth"
    assert row["crossing_direction"] == ("inbound" if number == 1 else "outbound")
    assert row["crossing_edge"] == "outer"
    assert int(row["orbit_number"]) == int(attrs["orbit_number"])


def test_positions_are_mso_km(ingested_crossings: Ingest, tap: Any) -> None:
    rows = tap.search("SELECT c1min, c1max, c2min, c3min, radial_distance_min,"
                      " spatial_coordinate_description, spatial_origin, target_name"
                      " FROM epnml_crossings.epn_core").to_table()
    assert len(rows) == ingested_crossings.n_rows() == 8 * len(CROSSINGS_ORBITS)
    r = np.sqrt(rows["c1min"] ** 2 + rows["c2min"] ** 2 + rows["c3min"] ** 2)
    assert np.allclose(r, rows["radial_distance_min"], rtol=1e-6)
    assert (r > 2440).all() and (r < 20 * 2440).all(), "MSO positions must be in km"
    assert set(rows["spatial_coordinate_description"]) == {"MSO"}
    assert set(rows["spatial_origin"]) == {"Mercury"}
    assert set(rows["target_name"]) == {"Mercury"}


def test_eight_edges_per_orbit(ingested_crossings: Ingest, tap: Any) -> None:
    """Each simulated orbit has its eight boundary edges (two bow shock, two magnetopause
    crossings, each with an outer and an inner edge); the decoder returns at most eight."""
    rows = tap.search("SELECT orbit_number, COUNT(*) AS n FROM epnml_crossings.epn_core"
                      " GROUP BY orbit_number ORDER BY orbit_number").to_table()
    assert [(int(o), int(n)) for o, n in zip(rows["orbit_number"], rows["n"], strict=True)] \
        == [(orbit, 8) for orbit, _ in CROSSINGS_ORBITS]
    assert [len(a["edges"]) for a in ingested_crossings.truth] == [8, 8]


def test_orbit_quicklook_is_served(ingested_crossings: Ingest, tap: Any) -> None:
    rows = tap.search("SELECT DISTINCT thumbnail_url FROM epnml_crossings.epn_core"
                      " WHERE thumbnail_url IS NOT NULL").to_table()
    assert len(rows) == len(CROSSINGS_ORBITS)  # one quicklook per orbit
    for url in rows["thumbnail_url"]:
        with urllib.request.urlopen(str(url), timeout=30) as resp:
            assert resp.status == 200
            assert resp.read(8) == b"\x89PNG\r\n\x1a\n"
