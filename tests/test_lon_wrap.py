"""Footprints across 0 deg E (issue #18): tight c1min/c1max with the EPN-TAP 2.0 convention
(c1min > c1max across 0 deg), polygon vertices in one continuous range, and what pgSphere
stores and serves for them (a real PostgreSQL + pgSphere database)."""

from __future__ import annotations

import psycopg
import pytest

from epnml.ingest.epn import continuous_lons, lon_bounds, wrap_bounds
from epnml.ingest.stages.craters import circle_bounds, circle_outline
from epnml.ingest.stages.outlines import parse_spoly
from epnml.ingest.stages.pits import spoly_literal
from epnml.ml.units.regions import spoly_literal as units_spoly_literal
from tests.conftest import migrated_database

MARS_R_KM = 3389.5


def test_continuous_lons_across_zero() -> None:
    assert continuous_lons([359.5, 0.5, 0.5, 359.5]) == [359.5, 360.5, 360.5, 359.5]
    assert continuous_lons([-0.5, 0.5, 0.5, -0.5]) == [359.5, 360.5, 360.5, 359.5]
    assert continuous_lons([0.5, 359.5, 359.5]) == [360.5, 359.5, 359.5]
    assert continuous_lons([270.0, 0.0, 0.0, 270.0]) == [270.0, 360.0, 360.0, 270.0]
    assert continuous_lons([10.0, 20.0, 15.0]) == [10.0, 20.0, 15.0]
    # round a pole: no continuous range, kept in [0, 360)
    assert continuous_lons([0.0, 90.0, 180.0, 270.0, -0.0]) == [0.0, 90.0, 180.0, 270.0, 0.0]
    with pytest.raises(ValueError, match="a polygon needs vertices, got none"):
        continuous_lons([])


def test_lon_bounds_convention() -> None:
    assert lon_bounds([359.5, 0.5, 0.5, 359.5]) == (359.5, 0.5)  # west > east across 0
    assert lon_bounds([270.0, 0.0, 0.0, 270.0]) == (270.0, 360.0)  # ends on the seam
    assert lon_bounds([0.0, 10.0, 10.0, 0.0]) == (0.0, 10.0)  # starts on the seam
    assert lon_bounds([10.0, 20.0, 15.0]) == (10.0, 20.0)
    assert lon_bounds([0.0, 90.0, 180.0, 270.0]) == (0.0, 360.0)  # holds a pole
    assert wrap_bounds(-0.5, 0.5) == (359.5, 0.5)
    assert wrap_bounds(359.0, 361.0) == (359.0, 1.0)
    assert wrap_bounds(10.0, 380.0) == (0.0, 360.0)


def test_crater_across_zero_tight_bounds() -> None:
    lo, hi, c2min, c2max = circle_bounds(0.2, 0.0, 30.0, MARS_R_KM)
    half = 30.0 / MARS_R_KM * 180.0 / 3.141592653589793  # 0.5071 deg at the equator
    assert lo == pytest.approx(360.2 - half, abs=1e-6) and hi == pytest.approx(0.2 + half,
                                                                               abs=1e-6)
    assert (c2min, c2max) == (pytest.approx(-half, abs=1e-6), pytest.approx(half, abs=1e-6))
    lons = [v[0] for v in circle_outline(0.2, 0.0, 30.0, MARS_R_KM)]
    assert min(lons) == pytest.approx(lo, abs=1e-5)
    assert max(lons) == pytest.approx(360.0 + hi, abs=1e-5)
    # a crater at 359.8 E is the same circle shifted: same convention
    lo2, hi2, _, _ = circle_bounds(359.8, 10.0, 30.0, MARS_R_KM)
    assert 359.0 < lo2 < 359.8 and 0.0 < hi2 < 1.0


@pytest.fixture(scope="module")
def dsn() -> str:
    return migrated_database("lonwrap")


def _served(conn: psycopg.Connection, literal: str) -> list[tuple[float, float]]:
    conn.execute("SELECT set_sphere_output('DEG')")
    row = conn.execute("SELECT (%s::text)::spoly::text", (literal,)).fetchone()
    assert row is not None
    return [(float(a.strip().rstrip("d")), float(b.strip().rstrip("d")))
            for a, b in (p.split(",") for p in str(row[0])[2:-2].split("),("))]


def test_pgsphere_stores_crater_across_zero(dsn: str) -> None:
    """The continuous literal is a valid spoly that holds the centre and not the antipode;
    pgSphere itself folds vertex longitudes into [0, 360) (what DaCHS then serves)."""
    outline = circle_outline(0.2, 0.0, 30.0, MARS_R_KM)
    literal = spoly_literal(outline)
    assert max(lo for lo, _ in parse_spoly(literal)) > 360.0
    with psycopg.connect(dsn, autocommit=True) as conn:
        inside = conn.execute(
            "SELECT spoint '(0.2d,0d)' @ (%(p)s::text)::spoly,"
            " spoint '(359.9d,0.1d)' @ (%(p)s::text)::spoly,"
            " spoint '(180.2d,0d)' @ (%(p)s::text)::spoly,"
            " spoint '(1.0d,0d)' @ (%(p)s::text)::spoly", {"p": literal}).fetchone()
        assert inside == (True, True, False, False)
        served = _served(conn, literal)
    assert len(served) == len(outline)
    for (lo, la), (slo, sla) in zip(outline, served, strict=True):
        assert slo == pytest.approx(lo % 360.0, abs=1e-6) and 0.0 <= slo < 360.0
        assert sla == pytest.approx(la, abs=1e-6)


def test_pgsphere_units_seam_tile(dsn: str) -> None:
    """A units tile ending on the seam is written 270 .. 360; pgSphere serves the 360
    vertices as 0 (documented: clients unwrap), and the tile still holds its cells."""
    literal = units_spoly_literal([(270.0, -1.0), (360.0, -1.0), (360.0, 1.5), (270.0, 1.5)])
    with psycopg.connect(dsn, autocommit=True) as conn:
        inside = conn.execute(
            "SELECT spoint '(359.9d,0d)' @ (%(p)s::text)::spoly,"
            " spoint '(270.1d,0d)' @ (%(p)s::text)::spoly,"
            " spoint '(0.1d,0d)' @ (%(p)s::text)::spoly", {"p": literal}).fetchone()
        assert inside == (True, True, False)
        served = _served(conn, literal)
    assert [lo for lo, _ in served] == [270.0, 0.0, 0.0, 270.0]
    assert continuous_lons([lo for lo, _ in served]) == [270.0, 360.0, 360.0, 270.0]
