"""Partitioned product tables (issue #17, sql/0023_partitions.sql, docs/scale.md) on real
PostgreSQL/pgSphere: routing to partitions, DEFAULT partitions, granule_uid unique across
partitions and families, superseded rows kept, the in-place conversion keeping rows and
views, `epnml db partitions`, and pruning through the DaCHS view of the test stack."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from epnml.db import MIGRATIONS_DIR, default_partition_warnings, partition_rows
from epnml.schemas import get_product
from epnml.schemas.partitions import year_start_jd
from tests.conftest import STORE_TABLES, TEST_DB, Stack, migrated_database

NOW = datetime(2026, 1, 1)
TARGET_CLASS = {"solar wind": "interplanetary_medium", "Mercury": "planet", "Mars": "planet",
                "Moon": "satellite", "Vesta": "asteroid", "Earth": "planet"}


def _row(family: str, uid: str, target: str, time_min: float | None,
         obs_id: str = "obs", superseded: datetime | None = None) -> dict[str, Any]:
    product = get_product(family)
    return {
        "granule_uid": uid, "granule_gid": "g", "obs_id": obs_id, "dataproduct_type": "ci",
        "target_name": target, "target_class": TARGET_CLASS[target], "time_min": time_min,
        "time_max": None if time_min is None else time_min + 0.5,
        "spatial_frame_type": product.spatial_frame_type, "processing_level": 5,
        "creation_date": NOW, "modification_date": NOW, "release_date": NOW,
        "service_title": product.schema, "ml_model_name": "test", "ml_model_version": "1",
        "ml_weights_sha256": "0" * 64, "ml_run_id": "r", "pipeline": "test",
        "superseded_at": superseded,
    }


def _insert(conn: psycopg.Connection, family: str, rows: list[dict[str, Any]]) -> None:
    cols = list(rows[0])
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.SQL(get_product(family).storage_table),
        sql.SQL(", ").join(map(sql.Identifier, cols)),
        sql.SQL(", ").join(sql.Placeholder() * len(cols)))
    with conn.cursor() as cur:
        cur.executemany(query, [tuple(r[c] for c in cols) for r in rows])


def _where(conn: psycopg.Connection, family: str) -> dict[str, str]:
    return dict(conn.execute(sql.SQL("SELECT granule_uid, tableoid::regclass::text FROM {}")
                             .format(sql.SQL(get_product(family).storage_table))).fetchall())


def test_year_bounds_are_julian_days() -> None:
    assert year_start_jd(1970) == 2440587.5
    assert year_start_jd(2000) == 2451544.5
    assert year_start_jd(2013) - year_start_jd(2012) == 366  # a leap year


@pytest.fixture(scope="module")
def store_dsn() -> str:
    return migrated_database("partitions")


@pytest.fixture()
def conn(store_dsn: str) -> Any:
    with psycopg.connect(store_dsn, autocommit=True) as c:
        c.execute(f"TRUNCATE {STORE_TABLES}")
        yield c


def test_rows_routed_to_their_partitions(conn: psycopg.Connection) -> None:
    jd_2012 = year_start_jd(2012) + 40
    _insert(conn, "crossings", [
        _row("crossings", "c2012", "Mercury", jd_2012),
        _row("crossings", "c2015", "Mercury", year_start_jd(2015) + 364.9),
        # DEFAULT partitions: a year outside the span, NULL time, an unknown target
        _row("crossings", "c2031", "Mercury", year_start_jd(2031)),
        _row("crossings", "cnull", "Mercury", None),
        _row("crossings", "cvesta", "Vesta", jd_2012),
    ])
    assert _where(conn, "crossings") == {
        "c2012": "epnml.crossings__mercury__2012", "c2015": "epnml.crossings__mercury__2015",
        "c2031": "epnml.crossings__mercury__default",
        "cnull": "epnml.crossings__mercury__default", "cvesta": "epnml.crossings__default"}
    _insert(conn, "landforms", [_row("landforms", f"l{k}", "Mars", jd_2012, obs_id=f"o{k}")
                                for k in range(40)] + [_row("landforms", "lv", "Vesta", None)])
    where = _where(conn, "landforms")
    assert where.pop("lv") == "epnml.landforms__default"
    # 40 granules spread over the 4 hash parts of Mars
    assert {w.rsplit("__", 1)[0] for w in where.values()} == {"epnml.landforms__mars"}
    assert len(set(where.values())) == 4
    # multi-word targets and the time series' parents hold no rows themselves
    _insert(conn, "events", [_row("events", "e1", "solar wind", year_start_jd(1999))])
    assert _where(conn, "events") == {"e1": "epnml.events__solar_wind__1999"}


def test_granule_uid_unique_across_partitions_and_families(conn: psycopg.Connection) -> None:
    _insert(conn, "crossings", [_row("crossings", "dup", "Mercury", year_start_jd(2012))])
    # another partition of the same table: its own unique key cannot see the first row
    with pytest.raises(psycopg.errors.UniqueViolation, match="unique across"):
        _insert(conn, "crossings", [_row("crossings", "dup", "Mercury", year_start_jd(2013))])
    with pytest.raises(psycopg.errors.UniqueViolation, match="unique across"):
        _insert(conn, "landforms", [_row("landforms", "dup", "Mars", None)])
    # the failed statements left nothing behind; the registry follows renames and deletes
    assert conn.execute("SELECT granule_uid, family FROM epnml.granule_uids").fetchall() == [
        ("dup", "crossings")]
    conn.execute("UPDATE epnml.crossings SET granule_uid = 'dup~s1' WHERE granule_uid = 'dup'")
    _insert(conn, "landforms", [_row("landforms", "dup", "Mars", None)])
    conn.execute("DELETE FROM epnml.landforms WHERE granule_uid = 'dup'")
    assert conn.execute("SELECT granule_uid, family FROM epnml.granule_uids").fetchall() == [
        ("dup~s1", "crossings")]


def test_superseded_rows_are_kept(conn: psycopg.Connection) -> None:
    _insert(conn, "meteors", [_row("meteors", "m_old", "Earth", year_start_jd(2012), "o",
                                   superseded=NOW),
                              _row("meteors", "m_cur", "Earth", year_start_jd(2012), "o")])
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="never deleted"):
        conn.execute("DELETE FROM epnml.meteors WHERE obs_id = 'o'")
    conn.execute("DELETE FROM epnml.meteors WHERE granule_uid = 'm_cur'")
    assert list(_where(conn, "meteors")) == ["m_old"]


def test_lean_index_set_still_serves_time_target_and_uid_lookups(
        conn: psycopg.Connection) -> None:
    """0025 leaves four indexes per family (the two GiSTs, the source btree, the unique
    key) and the target_name btree on the DEFAULT partition only; the conditions the
    dropped btrees served are still answered through an index on every leaf."""
    indexes = dict(conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'epnml'"
        " AND tablename = 'landforms'").fetchall())
    assert set(indexes) == {"landforms_pk", "landforms_s_region_gist", "landforms_time_gist",
                            "landforms_source"}
    assert conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'landforms__default'"
                        " AND indexdef LIKE '%(target_name)'").fetchone() is not None
    assert conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'landforms__mars__h0'"
                        " AND indexdef LIKE '%(target_name)'").fetchone() == (0,)
    jd = year_start_jd(2012)
    _insert(conn, "landforms", [_row("landforms", f"l{k}", "Mars", jd + k, obs_id=f"o{k % 7}")
                                for k in range(3000)])
    conn.execute("ANALYZE epnml.landforms")
    conn.execute("SET enable_seqscan = off")  # an index path must exist, whatever the costs
    for where, index in ((f"time_min <= {jd + 10.6} AND time_max >= {jd + 10.5}",
                          "time_min_time_max_idx"),
                         (f"time_min > {jd + 2990}", "time_min_time_max_idx"),
                         ("granule_uid = 'l17' AND superseded_at IS NULL", "granule_uid")):
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT granule_uid FROM epnml.landforms WHERE {where}").fetchall())
        assert "Seq Scan" not in plan and index in plan, (where, plan)
    conn.execute("RESET enable_seqscan")


def test_db_partitions_lists_rows_and_warns(conn: psycopg.Connection, store_dsn: str) -> None:
    _insert(conn, "aurora", [_row("aurora", "a1", "Mars", year_start_jd(2022) + 3),
                             _row("aurora", "a2", "Moon", year_start_jd(2022))])
    rows = partition_rows(conn)
    counts = {name: n for _, name, _, n, _ in rows}
    assert counts["epnml.aurora__mars__2022"] == 1 and counts["epnml.aurora__default"] == 1
    assert sum(counts.values()) == 2
    assert [w.split()[0] for w in default_partition_warnings(rows)] == ["epnml.aurora__default"]
    env = dict(os.environ, EPNML_DSN=store_dsn)
    proc = subprocess.run([sys.executable, "-m", "epnml.cli", "db", "partitions"], env=env,
                          text=True, capture_output=True, check=True)
    assert "epnml.aurora__mars__2022\tFOR VALUES FROM" in proc.stdout
    assert "\n".join(line for line in proc.stdout.splitlines() if "aurora__default" in line) \
        == "epnml.aurora\tepnml.aurora__default\tDEFAULT\t1"
    assert "warning: epnml.aurora__default holds 1 rows" in proc.stderr


def test_migration_keeps_rows_grants_and_views(tmp_path: Path) -> None:
    """An applied database (migrations up to 0022, rows, a view of another schema over a
    product table) converted by 0023: the same rows, routed; the views answer again."""
    from dataclasses import replace

    from epnml.config import load_settings
    from epnml.db import migrate

    before = tmp_path / "sql"
    before.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if path.name < "0023":
            shutil.copy(path, before / path.name)
    dsn = migrated_database("partitions_convert")  # fully migrated: start again below
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("DROP SCHEMA epnml CASCADE")
        c.execute("CREATE SCHEMA epnml")
    settings = replace(load_settings(), dsn=dsn)
    assert "0023_partitions.sql" not in migrate(settings, before)
    rows = [_row("events", f"e{k}", "solar wind", year_start_jd(1990 + k), superseded=(
        NOW if k % 3 == 0 else None)) for k in range(10)]
    rows.append(_row("events", "e_null", "solar wind", None))
    with psycopg.connect(dsn, autocommit=True) as c:
        _insert(c, "events", rows)
        _insert(c, "units", [_row("units", f"u{k}", "Mercury", None, obs_id=f"o{k}")
                             for k in range(5)])
        c.execute("CREATE SCHEMA served")
        c.execute("CREATE VIEW served.epn_core AS SELECT * FROM epnml.events"
                  " WHERE superseded_at IS NULL")
        c.execute("CREATE VIEW served.counted AS SELECT count(*) AS n FROM served.epn_core")
        stored = c.execute("SELECT md5(string_agg(e::text, ',' ORDER BY granule_uid))"
                           " FROM epnml.events e").fetchone()
        assert c.execute("SELECT relkind FROM pg_class WHERE oid = 'epnml.events'::regclass"
                         ).fetchone() == ("r",)
    assert migrate(settings) == ["0023_partitions.sql", "0024_leaf_uid_triggers.sql",
                                 "0025_lean_indexes.sql"]
    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.execute("SELECT relkind FROM pg_class WHERE oid = 'epnml.events'::regclass"
                         ).fetchone() == ("p",)
        assert c.execute("SELECT md5(string_agg(e::text, ',' ORDER BY granule_uid))"
                         " FROM epnml.events e").fetchone() == stored
        assert _where(c, "events")["e5"] == "epnml.events__solar_wind__1995"
        assert _where(c, "events")["e_null"] == "epnml.events__solar_wind__default"
        assert len(_where(c, "units")) == 5
        assert c.execute("SELECT n FROM served.counted").fetchone() == (7,)
        assert c.execute("SELECT count(*) FROM epnml.granule_uids").fetchone() == (16,)
        # the store's own views over every family, re-created
        assert c.execute("SELECT count(*) FROM epnml.prov_rows").fetchone() == (16,)
        assert c.execute("SELECT count(*) FROM pg_class WHERE relname LIKE '%unpartitioned%'"
                         ).fetchone() == (0,)


def _superuser_psql(query: str) -> str:
    return subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-Atq", "-d", TEST_DB,
                           "-c", query], text=True, capture_output=True, check=True).stdout


def test_pruning_through_the_dachs_view(stack: Stack) -> None:
    """A target + time window through DaCHS' epn_core view reads one partition; the view
    (re-imported over the partitioned table) answers over TAP."""
    import pyvo

    start = year_start_jd(2013) + 100
    with psycopg.connect(stack.owner_dsn, autocommit=True) as c:
        c.execute("DELETE FROM epnml.crossings WHERE pipeline = 'test_partitions'")
        rows = [_row("crossings", f"tp_{k}", "Mercury", start + 30 * k) for k in range(6)]
        for r in rows:
            r["pipeline"] = "test_partitions"
        _insert(c, "crossings", rows)
        c.execute("ANALYZE epnml.crossings")
    query = ("SELECT granule_uid FROM epnml_crossings.epn_core WHERE target_name = 'Mercury'"
             f" AND time_min BETWEEN {start} AND {start + 40}")
    plan = _superuser_psql(f"EXPLAIN {query}")
    scanned = sorted({w.split("__")[-1] for w in plan.split() if w.startswith("crossings__")})
    assert scanned == ["2013"], plan
    assert _superuser_psql("SHOW jit").strip() == "off"
    tap = pyvo.dal.TAPService(stack.tap_url)
    got = tap.search(query)
    assert sorted(str(u) for u in got["granule_uid"]) == ["tp_0", "tp_1"]
    with psycopg.connect(stack.owner_dsn, autocommit=True) as c:
        c.execute("DELETE FROM epnml.crossings WHERE pipeline = 'test_partitions'")


def _insert_into(conn: psycopg.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    cols = list(rows[0])
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.SQL(table), sql.SQL(", ").join(map(sql.Identifier, cols)),
        sql.SQL(", ").join(sql.Placeholder() * len(cols)))
    with conn.cursor() as cur:
        cur.executemany(query, [tuple(r[c] for c in cols) for r in rows])


def _uids(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT granule_uid, family FROM epnml.granule_uids"
                        " ORDER BY granule_uid").fetchall()


def test_uid_unique_whichever_table_a_row_is_written_through(
        conn: psycopg.Connection) -> None:
    """A statement fires only its own table's statement triggers: the partitions carry the
    registry's triggers too (sql/0024), so writing into a partition is checked as well."""
    jd = year_start_jd(2012) + 3
    _insert_into(conn, "epnml.crossings__mercury__2012", [_row("crossings", "dup", "Mercury", jd)])
    assert _uids(conn) == [("dup", "crossings")]
    for table, family, target, when in (
            ("epnml.crossings__mercury__2013", "crossings", "Mercury", year_start_jd(2013)),
            ("epnml.landforms__default", "landforms", "Vesta", None),
            ("epnml.landforms", "landforms", "Mars", None),
            ("epnml.landforms__mars", "landforms", "Mars", None),
            ("epnml.meteors__earth__2012", "meteors", "Earth", jd)):
        with pytest.raises(psycopg.errors.UniqueViolation, match="unique across"):
            _insert_into(conn, table, [_row(family, "dup", target, when)])
    _insert(conn, "landforms", [_row("landforms", "viaparent", "Mars", None)])
    leaf = _where(conn, "landforms")["viaparent"]
    with pytest.raises(psycopg.errors.UniqueViolation, match="unique across"):
        _insert_into(conn, "epnml.landforms__default",
                     [_row("landforms", "viaparent", "Vesta", None)])
    # renames and deletes through a partition follow in the registry
    conn.execute("UPDATE epnml.crossings__mercury__2012 SET granule_uid = 'dup~s1'")
    conn.execute(sql.SQL("DELETE FROM {} WHERE granule_uid = 'viaparent'").format(
        sql.SQL(leaf)))
    assert _uids(conn) == [("dup~s1", "crossings")]


def _granule(family: str, obs_id: str, version: str, rows: list[dict[str, Any]]) -> Any:
    from epnml.ingest.stage import Granule, StageOutput

    for row in rows:
        row.update(obs_id=obs_id, ml_model_version=version)
    return StageOutput(Granule(obs_id, (Path(f"/data/{obs_id}"),)), pd.DataFrame(), rows)


def test_writer_copies_into_partitions_and_keeps_every_guarantee(
        conn: psycopg.Connection) -> None:
    from epnml.ingest.stage import ModelInfo
    from epnml.ingest.writer import leaf_groups, write_granule

    landforms, crossings = get_product("landforms"), get_product("crossings")
    v1, v2 = ModelInfo("test", "1", "0" * 64), ModelInfo("test", "2", "0" * 64)
    # one granule of a map family: one hash part, as PostgreSQL itself routes it
    out = _granule("landforms", "g1", "1",
                   [_row("landforms", f"l{k}", "Mars", None) for k in range(3)])
    with conn.cursor() as cur:
        (leaf,) = leaf_groups(cur, landforms, "g1", out.rows)
    assert write_granule(conn, landforms, "test", out, v1).n_rows == 3
    _insert(conn, "landforms", [_row("landforms", "probe", "Mars", None, obs_id="g1")])
    assert set(_where(conn, "landforms").values()) == {leaf}
    # a time series granule over two years: two partitions, one transaction
    out = _granule("crossings", "orbit", "1", [
        _row("crossings", "c1", "Mercury", year_start_jd(2012) + 365.9),
        _row("crossings", "c2", "Mercury", year_start_jd(2013) + 0.1)])
    write_granule(conn, crossings, "test", out, v1)
    assert _where(conn, "crossings") == {"c1": "epnml.crossings__mercury__2012",
                                         "c2": "epnml.crossings__mercury__2013"}
    # a uid of another family: refused by the partition's triggers, the granule leaves
    # no row and no record
    bad = _granule("landforms", "g2", "1", [_row("landforms", "ok", "Mars", None),
                                             _row("landforms", "c1", "Mars", None)])
    with pytest.raises(psycopg.errors.UniqueViolation, match="unique across"):
        write_granule(conn, landforms, "test", bad, v1)
    assert conn.execute("SELECT count(*) FROM epnml.landforms WHERE obs_id = 'g2'"
                        ).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM epnml.granule_versions WHERE obs_id = 'g2'"
                        ).fetchone() == (0,)
    # a newer version re-using the uids: the superseded rows are kept, archived
    out = _granule("landforms", "g1", "2",
                   [_row("landforms", f"l{k}", "Mars", None) for k in range(3)])
    result = write_granule(conn, landforms, "test", out, v2)
    assert (result.n_superseded, result.n_archived) == (4, 3)
    stored = conn.execute("SELECT granule_uid, superseded_at IS NULL FROM epnml.landforms"
                          " ORDER BY granule_uid").fetchall()
    assert [cur for _, cur in stored].count(True) == 3 and len(stored) == 7
    assert sorted(u for u, f in _uids(conn) if f == "landforms") == sorted(
        u for u, _ in stored)
