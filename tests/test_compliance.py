"""Our own EPN-TAP 2.0 compliance test, run against the live test service.

The expectations below are written from the EPN-TAP 2.0 REC (and the project's
checklist), not from ``epnml.schemas``, so a wrong definition there fails here.
Debian's STILTS has no EPN stage; this covers what upstream's stage checks plus
granule_uid uniqueness and the registry record.
"""

from __future__ import annotations

import re
import urllib.request
from typing import Any

import numpy as np
import psycopg
import pytest

from epnml.config import datalink_url, load_settings
from tests.conftest import Ingest, Stack

pyvo = pytest.importorskip("pyvo")

pytestmark = pytest.mark.stack

SCHEMAS = {  # schema -> spatial_frame_type
    "epnml_events": "none",
    "epnml_crossings": "cartesian",
    "epnml_landforms": "body",
    "epnml_units": "body",
    "epnml_aurora": "body",
}

# name -> (datatype, unit, ucd) as the REC defines them
MANDATORY: dict[str, tuple[str, str, str]] = {
    "granule_uid": ("char", "", "meta.id"),
    "granule_gid": ("char", "", "meta.id"),
    "obs_id": ("char", "", "meta.id;obs"),
    "dataproduct_type": ("char", "", "meta.code.class"),
    "measurement_type": ("char", "", "meta.ucd"),
    "processing_level": ("int", "", "meta.calibLevel"),
    "target_name": ("char", "", "meta.id;src"),
    "target_class": ("char", "", "src.class"),
    "time_min": ("double", "d", "time.start;obs"),
    "time_max": ("double", "d", "time.end;obs"),
    "time_sampling_step_min": ("double", "s", "time.resolution;stat.min"),
    "time_sampling_step_max": ("double", "s", "time.resolution;stat.max"),
    "time_exp_min": ("double", "s", "time.duration;obs.exposure;stat.min"),
    "time_exp_max": ("double", "s", "time.duration;obs.exposure;stat.max"),
    "spectral_range_min": ("double", "Hz", "em.freq;stat.min"),
    "spectral_range_max": ("double", "Hz", "em.freq;stat.max"),
    "spectral_sampling_step_min": ("double", "Hz", "em.freq;spect.binSize;stat.min"),
    "spectral_sampling_step_max": ("double", "Hz", "em.freq;spect.binSize;stat.max"),
    "spectral_resolution_min": ("double", "", "spect.resolution;stat.min"),
    "spectral_resolution_max": ("double", "", "spect.resolution;stat.max"),
    "s_region": ("char", "", "pos.outline;obs.field"),
    "spatial_frame_type": ("char", "", "meta.code.class;pos.frame"),
    "incidence_min": ("double", "deg", "pos.incidenceAng;stat.min"),
    "incidence_max": ("double", "deg", "pos.incidenceAng;stat.max"),
    "emergence_min": ("double", "deg", "pos.emergenceAng;stat.min"),
    "emergence_max": ("double", "deg", "pos.emergenceAng;stat.max"),
    "phase_min": ("double", "deg", "pos.phaseAng;stat.min"),
    "phase_max": ("double", "deg", "pos.phaseAng;stat.max"),
    "instrument_host_name": ("char", "", "meta.id;instr.obsty"),
    "instrument_name": ("char", "", "meta.id;instr"),
    "service_title": ("char", "", "meta.title"),
    "creation_date": ("char", "", "time.creation"),
    "modification_date": ("char", "", "time.processing"),
    "release_date": ("char", "", "time.release"),
}
FRAMES = {
    "none": (("", "", ""), ("", "", "")),
    "cartesian": (("km", "km", "km"), ("pos.cartesian.x", "pos.cartesian.y", "pos.cartesian.z")),
    "body": (("deg", "deg", "km"), ("pos.bodyrc.lon", "pos.bodyrc.lat", "pos.bodyrc.alt")),
}
NOT_NULL = ["granule_uid", "granule_gid", "obs_id", "dataproduct_type", "target_class",
            "spatial_frame_type", "service_title", "creation_date", "modification_date",
            "release_date"]
DATAPRODUCT_TYPES = set("im ma sp ds sc pr pf vo mo cu ts ca ci sv ev".split())
TARGET_CLASSES = set("asteroid dwarf_planet planet satellite comet exoplanet "
                     "interplanetary_medium sample sky spacecraft spacejunk star "
                     "calibration".split())
PAIRS = ["time", "time_sampling_step", "time_exp", "spectral_range", "spectral_sampling_step",
         "spectral_resolution", "incidence", "emergence", "phase", "sun_distance",
         "local_time", "radial_distance"]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$")
UAT_TERMS = {"planetary-science", "solar-system-astronomy", "solar-physics",
             "exoplanet-astronomy"}


def _columns(tap: Any, schema: str) -> dict[str, dict[str, str]]:
    table = tap.search(
        "SELECT column_name, datatype, xtype, unit, ucd FROM TAP_SCHEMA.columns "
        f"WHERE table_name = '{schema}.epn_core'").to_table()
    return {str(r["column_name"]): {k: str(r[k] or "") for k in ("datatype", "xtype", "unit",
                                                                 "ucd")} for r in table}


@pytest.mark.parametrize("schema", sorted(SCHEMAS))
def test_table_metadata(ingested_all: dict[str, Ingest], tap: Any, schema: str) -> None:
    tables = tap.search("SELECT table_name, utype FROM TAP_SCHEMA.tables "
                        f"WHERE schema_name = '{schema}'").to_table()
    assert [str(t) for t in tables["table_name"]] == [f"{schema}.epn_core"]
    assert str(tables["utype"][0]).lower() == "ivo://ivoa.net/std/epntap#table-2.0"
    cols = _columns(tap, schema)
    for name, (datatype, unit, ucd) in MANDATORY.items():
        assert name in cols, f"{schema}: mandatory column {name} missing"
        got = cols[name]
        assert (got["datatype"], got["unit"], got["ucd"]) == (datatype, unit, ucd), name
    assert cols["s_region"]["xtype"].lower() == "adql:region"
    for name in ("creation_date", "modification_date", "release_date"):
        assert cols[name]["xtype"] == "timestamp"
    units, ucds = FRAMES[SCHEMAS[schema]]
    for i in range(3):
        for suffix, stat in (("min", "stat.min"), ("max", "stat.max")):
            got = cols[f"c{i + 1}{suffix}"]
            assert got["unit"] == units[i]
            assert got["ucd"] == (f"{ucds[i]};{stat}" if ucds[i] else "")
            assert f"c{i + 1}_resol_{suffix}" in cols
    # every column carries a UCD-shaped value and is not a DaCHS placeholder
    for name, got in cols.items():
        assert "__replace" not in got["ucd"] + got["unit"], name


def _rows(tap: Any, schema: str) -> Any:
    return tap.search(f"SELECT * FROM {schema}.epn_core", maxrec=100000).to_table()


def _store_uids(stack: Stack, schema: str, current: bool) -> set[str]:
    table = schema.removeprefix("epnml_")
    with psycopg.connect(stack.owner_dsn) as conn:
        return {str(u) for (u,) in conn.execute(
            f"SELECT granule_uid FROM epnml.{table} WHERE superseded_at IS"
            f" {'' if current else 'NOT '}NULL").fetchall()}


@pytest.mark.parametrize("schema", sorted(SCHEMAS))
def test_view_serves_exactly_the_current_rows(ingested_all: dict[str, Ingest], tap: Any,
                                              schema: str) -> None:
    """The RD's view, checked on rows: every current stored row, no superseded one."""
    stack = next(iter(ingested_all.values())).stack
    table = schema.removeprefix("epnml_")
    # a superseded copy of one current row (the owner may write; superseded rows are kept)
    with psycopg.connect(stack.owner_dsn) as conn:
        conn.execute(f"CREATE TEMP TABLE old AS SELECT * FROM epnml.{table}"
                     " WHERE superseded_at IS NULL ORDER BY granule_uid LIMIT 1")
        conn.execute("UPDATE old SET granule_uid = granule_uid || '_old', superseded_at = now()")
        conn.execute(f"INSERT INTO epnml.{table} SELECT * FROM old"
                     f" ON CONFLICT DO NOTHING")
    current = _store_uids(stack, schema, current=True)
    superseded = _store_uids(stack, schema, current=False)
    assert current and superseded, f"{schema}: the check needs current and superseded rows"
    served = {str(u) for u in _rows(tap, schema)["granule_uid"]}
    assert served == current
    assert not served & superseded


@pytest.mark.parametrize("schema", sorted(SCHEMAS))
def test_row_values(ingested_all: dict[str, Ingest], tap: Any, schema: str) -> None:
    rows = _rows(tap, schema)
    # every family holds ingested rows: the checks below must not run on an empty table
    assert len(rows) > 0, "the ingested rows must be served"
    names = rows.colnames
    for row in rows:
        for name in NOT_NULL:
            assert not np.ma.is_masked(row[name]) and str(row[name]).strip() != "", name
        assert row["service_title"] == schema
        assert row["spatial_frame_type"] == SCHEMAS[schema]
        assert set(str(row["dataproduct_type"]).split("#")) <= DATAPRODUCT_TYPES
        assert set(str(row["target_class"]).split("#")) <= TARGET_CLASSES
        assert 1 <= int(row["processing_level"]) <= 6
        uid = str(row["granule_uid"])
        assert "#" not in uid and uid == uid.strip()
        # every row links to its DataLink document (issue #6), on the configured service
        assert str(row["datalink_url"]) == datalink_url(load_settings(), uid)
        for name in ("creation_date", "modification_date", "release_date"):
            assert TIMESTAMP.match(str(row[name])), (name, row[name])
        for base in PAIRS:
            lo, hi = (f"{base}_min", f"{base}_max")
            if lo not in names:
                continue
            assert np.ma.is_masked(row[lo]) == np.ma.is_masked(row[hi]), f"{base}: half pair"
            if not np.ma.is_masked(row[lo]):
                assert row[lo] <= row[hi], f"{base}: min > max"
        for axis in ("c1", "c2", "c3"):
            lo, hi = f"{axis}min", f"{axis}max"
            if lo not in names:
                continue
            assert np.ma.is_masked(row[lo]) == np.ma.is_masked(row[hi]), f"{axis}: half pair"
            if np.ma.is_masked(row[lo]) or row[lo] <= row[hi]:
                continue
            # EPN-TAP 2.0: only a longitude range crossing 0 deg has c1min > c1max
            # (west bound, east bound), both in [0, 360] (docs/architecture.md)
            assert axis == "c1" and row["spatial_frame_type"] in ("body", "celestial"), \
                f"{axis}: min > max"
            assert 0 <= row[hi] < row[lo] <= 360, f"c1: {row[lo]} > {row[hi]} outside 0..360"
        if not np.ma.is_masked(row["time_min"]):
            assert 2086000 < row["time_min"] < 2817000, "time_min is not a plausible JD"
        if "local_time_min" in names and not np.ma.is_masked(row["local_time_min"]):
            assert 0 <= row["local_time_min"] <= 24 and 0 <= row["local_time_max"] <= 24
        for name in names:
            value = row[name]
            if isinstance(value, str):
                assert value == value.strip(), f"{name} has surrounding spaces"
    uids = [str(u) for u in rows["granule_uid"]]
    assert len(uids) == len(set(uids)), "granule_uid must be unique"


def test_time_columns_are_float64(ingested_icme: Ingest, tap: Any) -> None:
    rows = _rows(tap, "epnml_events")
    assert len(rows) > 0
    assert rows["time_min"].dtype == np.float64
    assert rows["time_max"].dtype == np.float64


@pytest.mark.parametrize("family", ["events", "crossings", "landforms", "units", "aurora"])
def test_registry_record(stack: Stack, family: str) -> None:
    identifier = f"ivo://epnml.example.org/{family}/q/epn_core"
    url = (f"{stack.server_url}/oai.xml?verb=GetRecord&metadataPrefix=ivo_vor"
           f"&identifier={identifier}")
    with urllib.request.urlopen(url, timeout=30) as response:
        record = response.read().decode()
    assert "<oai:error" not in record, record[:500]
    assert "vs:CatalogResource" in record
    assert "ivo://ivoa.net/std/epntap#table-2.0" in record
    subjects = set(re.findall(r"<subject>([^<]+)</subject>", record))
    assert subjects & UAT_TERMS, subjects
    assert f"epnml_{family}.epn_core" in record


@pytest.mark.parametrize("rd", ["events", "crossings", "landforms", "units", "aurora",
                                "models"])
def test_rd_regression_suite(ingested_all: dict[str, Ingest], rd: str) -> None:
    """The RD's own regSuite (``dachs test``) on the test instance: its tests read rows."""
    stack = ingested_all["icme"].stack
    proc = stack.run("dachs", "test", "-v", "-u", stack.server_url, f"{rd}/q", check=False)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert re.search(r"^0 of [1-9]\d* bad", report, re.M), report
