"""End to end: simulated meteor CSVs -> `epnml ingest meteors` -> DaCHS -> pyvo, with the
EPN-TAP compliance checks of tests/test_compliance.py applied to ``epnml_meteors``
(celestial frame). The ingest is this module's own, so the shared ``ingested`` fixture
is unchanged."""

from __future__ import annotations

import re
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pyvo = pytest.importorskip("pyvo")

pytestmark = pytest.mark.stack

SCHEMA = "epnml_meteors"
CELESTIAL = (("deg", "deg", "AU"), ("pos.eq.ra", "pos.eq.dec", "pos.distance"))


class Meteors:
    def __init__(self, stack: Any, fixture: Path, demo: Path, result: Any) -> None:
        self.stack, self.fixture, self.demo, self.result = stack, fixture, demo, result


@pytest.fixture(scope="module")
def meteors(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Meteors:
    import psycopg

    from epnml.ingest.simulate.meteors import write_simulated
    from tests.fixtures.make_meteors_fixtures import make_meteors_fixtures

    with psycopg.connect(stack.owner_dsn) as conn:  # this module's rows only
        conn.execute("TRUNCATE epnml.meteors")
    out = tmp_path_factory.mktemp("meteors_inputs")
    fixture = make_meteors_fixtures(out)["simulated_meteors_fixture.csv"]
    demo = write_simulated(out / "demo", 40, 2026)
    result = stack.run(str(Path(sys.prefix) / "bin" / "epnml"), "ingest", "meteors",
                       "--no-progress", "--workers", "1", str(fixture), str(demo),
                       check=False)
    return Meteors(stack, fixture, demo, result)


@pytest.fixture(scope="module")
def tap(meteors: Meteors) -> Any:
    return pyvo.dal.TAPService(meteors.stack.tap_url)


def _expected_rows(meteors: Meteors) -> int:
    from epnml.ingest.readers.meteors import read_meteors_csv

    return sum(len(read_meteors_csv(p).records) for p in (meteors.fixture, meteors.demo))


def test_ingest_succeeded(meteors: Meteors, tap: Any) -> None:
    assert meteors.result.returncode == 0, meteors.result.stderr
    n = _expected_rows(meteors)
    assert f"2 granule(s) ok, 0 failed, {n} row(s)" in meteors.result.stderr
    rows = tap.search(f"SELECT COUNT(*) AS n FROM {SCHEMA}.epn_core").to_table()
    assert int(rows["n"][0]) == n


def test_table_metadata(tap: Any) -> None:
    from tests.test_compliance import MANDATORY, _columns

    tables = tap.search("SELECT table_name, utype FROM TAP_SCHEMA.tables "
                        f"WHERE schema_name = '{SCHEMA}'").to_table()
    assert [str(t) for t in tables["table_name"]] == [f"{SCHEMA}.epn_core"]
    assert str(tables["utype"][0]).lower() == "ivo://ivoa.net/std/epntap#table-2.0"
    cols = _columns(tap, SCHEMA)
    for name, (datatype, unit, ucd) in MANDATORY.items():
        assert (cols[name]["datatype"], cols[name]["unit"], cols[name]["ucd"]) == (
            datatype, unit, ucd), name
    assert cols["s_region"]["xtype"].lower() == "adql:region"
    units, ucds = CELESTIAL
    for i in range(3):
        for suffix, stat in (("min", "stat.min"), ("max", "stat.max")):
            got = cols[f"c{i + 1}{suffix}"]
            assert (got["unit"], got["ucd"]) == (units[i], f"{ucds[i]};{stat}")
    assert cols["meteor_peak_mag"]["unit"] == "mag"
    assert cols["meteor_angular_speed"]["unit"] == "deg/s"


def test_row_values(tap: Any) -> None:
    from epnml.config import datalink_url, load_settings
    from tests.test_compliance import DATAPRODUCT_TYPES, NOT_NULL, PAIRS, TARGET_CLASSES, TIMESTAMP

    rows = tap.search(f"SELECT * FROM {SCHEMA}.epn_core", maxrec=100000).to_table()
    assert len(rows) > 0
    names = rows.colnames
    for row in rows:
        for name in NOT_NULL:
            assert not np.ma.is_masked(row[name]) and str(row[name]).strip() != "", name
        assert row["service_title"] == SCHEMA
        assert row["spatial_frame_type"] == "celestial"
        assert row["target_name"] == "Earth"
        assert set(str(row["dataproduct_type"]).split("#")) <= DATAPRODUCT_TYPES
        assert set(str(row["target_class"]).split("#")) <= TARGET_CLASSES
        assert str(row["datalink_url"]) == datalink_url(load_settings(), str(row["granule_uid"]))
        for name in ("creation_date", "modification_date", "release_date"):
            assert TIMESTAMP.match(str(row[name])), (name, row[name])
        for base in PAIRS:
            lo, hi = (f"{base}_min", f"{base}_max")
            if lo in names and not np.ma.is_masked(row[lo]):
                assert row[lo] <= row[hi], f"{base}: min > max"
        assert 2086000 < row["time_min"] < 2817000
        assert 0 <= row["c1min"] <= row["c1max"] <= 360
        assert -90 <= row["c2min"] <= row["c2max"] <= 90
        assert "SIMULATED" in str(row["processing_level_desc"])
    uids = [str(u) for u in rows["granule_uid"]]
    assert len(uids) == len(set(uids))


def test_frame_position_finds_its_meteor(meteors: Meteors, tap: Any) -> None:
    """ADQL INTERSECTS on s_region: a circle around a recorded position finds that meteor."""
    from epnml.ingest.readers.meteors import read_meteors_csv

    rec = read_meteors_csv(meteors.fixture).records[0]
    ra, dec = float(rec.ra[len(rec.ra) // 2]), float(rec.dec[len(rec.dec) // 2])
    rows = tap.search(f"SELECT meteor_id FROM {SCHEMA}.epn_core WHERE "
                      f"1 = INTERSECTS(s_region, CIRCLE({ra}, {dec}, 0.01))").to_table()
    assert rec.meteor_id in {str(m) for m in rows["meteor_id"]}


def test_double_stations_link_both_ways(tap: Any) -> None:
    rows = tap.search(f"SELECT meteor_id, meteor_linked_id FROM {SCHEMA}.epn_core "
                      "WHERE meteor_linked_id IS NOT NULL").to_table()
    links = {str(a): str(b) for a, b in zip(rows["meteor_id"], rows["meteor_linked_id"],
                                            strict=True)}
    assert links, "the simulated inputs hold double stations"
    assert all(links[b] == a for a, b in links.items())


def test_registry_record(meteors: Meteors) -> None:
    from tests.test_compliance import UAT_TERMS

    identifier = "ivo://epnml.example.org/meteors/q/epn_core"
    url = (f"{meteors.stack.server_url}/oai.xml?verb=GetRecord&metadataPrefix=ivo_vor"
           f"&identifier={identifier}")
    with urllib.request.urlopen(url, timeout=30) as response:
        record = response.read().decode()
    assert "<oai:error" not in record, record[:500]
    assert "ivo://ivoa.net/std/epntap#table-2.0" in record
    assert set(re.findall(r"<subject>([^<]+)</subject>", record)) & UAT_TERMS
    assert f"{SCHEMA}.epn_core" in record
