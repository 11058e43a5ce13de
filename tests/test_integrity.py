"""Store integrity (issue #11) against a real PostgreSQL database (no DaCHS needed).

Granule identity (same-stem files, a changed file), the version rule (older versions never
supersede newer ones unless asked), superseded rows surviving every write path, crash
bookkeeping after kill -9 (all-or-nothing granules, workers gone, the sweeper), and the
batch edges (--keep-going for every failure, non-UTF-8 names, relative paths).

The database is ``<EPNML_TEST_DB>_integrity`` (created and migrated here, emptied before
each test), never the stack's own database.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest

from epnml.config import Settings
from epnml.db import sweep_runs
from epnml.ingest.runner import RunFailed, run_pipeline
from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv
from epnml.ingest.stage import Granule, GranuleError, ModelInfo, StageOutput
from epnml.ingest.writer import (
    GranuleSource,
    bulk_load,
    is_older,
    version_key,
    write_granule,
)
from epnml.schemas import get_product
from tests.conftest import ICME_VERSION, empty_store_settings, migrated_database

EVENTS = get_product("events")


@pytest.fixture(scope="session")
def store_dsn() -> str:
    """A migrated database of its own (conftest.migrated_database)."""
    return migrated_database("integrity")


@pytest.fixture()
def settings(store_dsn: str, tmp_path: Path) -> Settings:
    return empty_store_settings(store_dsn, tmp_path, "http://localhost:8131")


@pytest.fixture()
def conn(settings: Settings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(settings.dsn, autocommit=True) as c:
        yield c


def _wind(path: Path, seed: int, start: str = "2021-03-01", days: float = 10) -> Path:
    """A seeded simulated solar-wind CSV with ICMEs (the icme pipeline's input)."""
    frame, _ = simulate_solar_wind(start, days=days, seed=seed, n_icmes=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_csv(frame, path)


def _ingest(settings: Settings, *paths: Path, **kw: Any) -> Any:
    kw.setdefault("model_version", ICME_VERSION)  # rows of the simulated wind: 1.0.0's
    return run_pipeline("icme", list(paths), mode="ingest", settings=settings,
                        progress=False, **kw)


def _count(conn: psycopg.Connection, where: str = "true", *args: Any) -> int:
    row = conn.execute(f"SELECT count(*) FROM epnml.events WHERE {where}", args).fetchone()
    assert row is not None
    return int(row[0])


def _tally(conn: psycopg.Connection) -> tuple[int, int]:
    """(all rows, superseded rows) of the events table."""
    return _count(conn), _count(conn, "superseded_at IS NOT NULL")


# --- granule identity ----------------------------------------------------------------


def test_same_stem_in_two_folders_both_keep_their_rows(settings: Settings, tmp_path: Path,
                                                       conn: psycopg.Connection) -> None:
    a = _wind(tmp_path / "A" / "simulated_wind.csv", seed=7)
    b = _wind(tmp_path / "B" / "simulated_wind.csv", seed=8, start="2021-05-01")
    first = _ingest(settings, a)
    n_a = first.n_rows
    assert n_a > 0
    second = _ingest(settings, b)
    n_b = second.n_rows
    assert n_b > 0
    sha_b = conn.execute("SELECT sha256 FROM epnml.granule_sources WHERE paths = %s",
                         ([str(b.resolve())],)).fetchone()
    assert sha_b is not None
    b_id = f"simulated_wind-{sha_b[0][:8]}"
    assert [g.granule_id for g in second.granules] == [b_id]
    assert f"obs_id simulated_wind belongs to other source data; stored as {b_id}" \
        in second.text()
    assert sum(g.n_superseded for g in second.granules) == 0
    assert _count(conn, "obs_id = 'simulated_wind' AND superseded_at IS NULL") == n_a
    assert _count(conn, "obs_id = %s AND superseded_at IS NULL", b_id) == n_b
    assert _tally(conn) == (n_a + n_b, 0)
    sources = conn.execute("SELECT obs_id, paths, sizes FROM epnml.granule_sources"
                           " ORDER BY obs_id").fetchall()
    assert sources == [("simulated_wind", [str(a.resolve())], [a.stat().st_size]),
                       (b_id, [str(b.resolve())], [b.stat().st_size])]

    # the same B file again: its own obs_id, its own rows replaced, A untouched
    again = _ingest(settings, b)
    assert [g.granule_id for g in again.granules] == [b_id]
    assert "NEW ID" not in again.text()
    assert _tally(conn) == (n_a + n_b, 0)

    # A's content copied elsewhere is A's granule (same content): its own rows replaced
    c = tmp_path / "C" / "simulated_wind.csv"
    c.parent.mkdir()
    shutil.copyfile(a, c)
    copied = _ingest(settings, c)
    assert [(g.granule_id, g.n_rows, g.n_superseded) for g in copied.granules] == \
        [("simulated_wind", n_a, 0)]
    assert _tally(conn) == (n_a + n_b, 0)
    # in one run, a copy of a file already in the run is written once (kept going)
    both = _ingest(settings, a, c, keep_going=True)
    assert [(g.granule_id, g.status) for g in both.granules] == [
        ("simulated_wind.csv", "failed"), ("simulated_wind", "ok")]
    assert both.granules[0].error == f"{c}: same content as {a}, already in this run"
    assert _tally(conn) == (n_a + n_b, 0)
    # two different files of the same name in one run: both kept, under two ids
    d = tmp_path / "D" / "simulated_wind.csv"
    d.parent.mkdir()
    _wind(d, seed=11, start="2021-09-01")
    pair = _ingest(settings, a, d)
    assert [g.status for g in pair.granules] == ["ok", "ok"]
    ids = {g.granule_id for g in pair.granules}
    assert len(ids) == 2 and "simulated_wind" in ids
    n_d = _count(conn, "obs_id = %s AND superseded_at IS NULL", (ids - {"simulated_wind"}).pop())
    assert n_d == [g.n_rows for g in pair.granules if g.granule_id != "simulated_wind"][0]
    assert _tally(conn) == (n_a + n_b + n_d, 0)

    # a changed file at A's path is the same granule, reprocessed: new rows supersede
    _wind(a, seed=9, start="2021-07-01")
    changed = _ingest(settings, a)
    assert [g.granule_id for g in changed.granules] == ["simulated_wind"]
    assert [g.n_superseded for g in changed.granules] == [n_a]
    assert _count(conn, "obs_id = 'simulated_wind' AND superseded_at IS NOT NULL") == n_a
    assert _count(conn, "obs_id = 'simulated_wind' AND superseded_at IS NULL") == \
        changed.n_rows
    assert _tally(conn) == (n_a + n_b + n_d + changed.n_rows, n_a)


# --- versions (direct writer calls) ---------------------------------------------------


def _row(uid: str, obs_id: str, version: str) -> dict[str, Any]:
    now = datetime(2026, 1, 1, 12, 0, 0)
    return {
        "granule_uid": uid, "granule_gid": "icme", "obs_id": obs_id, "dataproduct_type": "ci",
        "target_name": "solar wind", "target_class": "interplanetary_medium",
        "time_min": 2459000.5, "time_max": 2459001.5, "spatial_frame_type": "none",
        "processing_level": 5, "creation_date": now, "modification_date": now,
        "release_date": now, "service_title": "epnml_events", "ml_model_name": "icme",
        "ml_model_version": version, "ml_weights_sha256": "0" * 64, "ml_run_id": "test",
        "ml_score": 0.9, "datalink_url": f"http://localhost:8131/datalink?ID={uid}",
    }


def _write(conn: psycopg.Connection, obs_id: str, version: str, uids: list[str],
           content: str = "a", **kw: Any) -> Any:
    granule = Granule(obs_id, (Path(f"/data/{obs_id}.csv"),))
    out = StageOutput(granule, pd.DataFrame(),
                      [_row(f"{obs_id}_{u}_v{version}", obs_id, version) for u in uids])
    source = GranuleSource((f"/data/{obs_id}.csv",), (1,), content * 64)
    return write_granule(conn, EVENTS, "icme", out, ModelInfo("icme", version, "0" * 64),
                         source=source, **kw)


def _current(conn: psycopg.Connection, obs_id: str) -> dict[str, int]:
    rows = conn.execute("SELECT ml_model_version, count(*) FROM epnml.events WHERE obs_id = %s"
                        " AND superseded_at IS NULL GROUP BY 1", (obs_id,)).fetchall()
    return dict(rows)


def test_version_order() -> None:
    assert version_key("1.10.0") > version_key("1.9.2") > version_key("1.9")
    assert version_key("1.9") == version_key("1.9.0") == version_key("1.9.0+threshold-0.7")
    assert is_older("1.0.0", "2") and not is_older("2", "1.0.0")
    assert not is_older("1.0.0+threshold-0.7", "1.0.0")
    assert not is_older("1.0.0", "1.0.0+threshold-0.7")


def test_same_file_twice_replaces_only_its_own_version(conn: psycopg.Connection) -> None:
    _write(conn, "g1", "1.0.0", ["u1", "u2"])
    _write(conn, "g1", "2.0.0", ["u1", "u2", "u3"])
    _write(conn, "g2", "2.0.0", ["u1"])
    assert _tally(conn) == (6, 2)
    result = _write(conn, "g1", "2.0.0", ["u1", "u2", "u3"])
    assert (result.n_rows, result.n_replaced, result.n_superseded) == (3, 3, 0)
    assert _current(conn, "g1") == {"2.0.0": 3}
    assert _current(conn, "g2") == {"2.0.0": 1}
    assert _tally(conn) == (6, 2)


def test_older_version_never_supersedes_a_newer_one(conn: psycopg.Connection) -> None:
    _write(conn, "g", "1.0.0", ["u1", "u2"])
    second = _write(conn, "g", "2.0.0", ["u1", "u2", "u3"])
    assert second.n_superseded == 2
    assert _current(conn, "g") == {"2.0.0": 3}

    # v1 again, same source: v2 stays current, the stored v1 rows are kept as they are
    again = _write(conn, "g", "1.0.0", ["u1", "u2"])
    assert (again.current, again.n_rows, again.n_kept, again.n_superseded) == \
        (False, 0, 2, 0)
    assert _current(conn, "g") == {"2.0.0": 3}
    assert _count(conn, "obs_id = 'g' AND ml_model_version = '1.0.0'"
                        " AND superseded_at IS NOT NULL") == 2
    assert _tally(conn) == (5, 2)

    # v1 from a changed source: stored already superseded, the old v1 rows kept (archived id)
    changed = _write(conn, "g", "1.0.0", ["u1", "u9"], content="b")
    assert (changed.current, changed.n_rows, changed.n_archived) == (False, 2, 1)
    assert _current(conn, "g") == {"2.0.0": 3}
    assert _tally(conn) == (7, 4)
    archived = conn.execute("SELECT granule_uid, datalink_url FROM epnml.events"
                            " WHERE granule_uid LIKE 'g\\_u1\\_v1.0.0~s%'").fetchall()
    assert len(archived) == 1
    assert archived[0][1] == f"http://localhost:8131/datalink?ID={archived[0][0]}"

    # asked: v1 becomes current, v2 superseded, nothing deleted
    forced = _write(conn, "g", "1.0.0", ["u1", "u9"], content="b", make_current=True)
    assert (forced.current, forced.n_superseded, forced.n_rows) == (True, 3, 2)
    assert _current(conn, "g") == {"1.0.0": 2}
    assert _tally(conn) == (9, 7)

    # same base: the latest committed wins (a derived version, then the base again)
    derived = _write(conn, "g", "2.0.0+threshold-0.7", ["u1"])
    assert derived.current and _current(conn, "g") == {"2.0.0+threshold-0.7": 1}
    base = _write(conn, "g", "2.0.0", ["u1", "u2", "u3"])
    assert base.current and _current(conn, "g") == {"2.0.0": 3}
    assert _tally(conn) == (13, 10)


def test_v1_v2_v1_through_the_runner(settings: Settings, tmp_path: Path,
                                     conn: psycopg.Connection,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's sequence through run_pipeline: the stage's version faked to 0.9.0."""
    from epnml.ingest import executor

    f = _wind(tmp_path / "simulated_v.csv", seed=3)
    v2 = _ingest(settings, f)
    n2 = v2.n_rows
    assert n2 > 0 and v2.model_version == "1.0.0"
    stage = executor.get_stage("icme", ICME_VERSION)
    old = ModelInfo(stage.model_info().name, "0.9.0", stage.model_info().sha256)
    monkeypatch.setattr(stage, "model_info", lambda: old)
    v1 = _ingest(settings, f)
    assert v1.model_version == "0.9.0" and v1.n_rows == n2
    assert [g.current for g in v1.granules] == [False]
    assert "NOT CURRENT simulated_v" in v1.text()
    assert _current(conn, "simulated_v") == {"1.0.0": n2}
    assert _tally(conn) == (2 * n2, n2)
    forced = _ingest(settings, f, make_current=True)
    assert [g.n_superseded for g in forced.granules] == [n2]
    assert _current(conn, "simulated_v") == {"0.9.0": n2}
    assert _tally(conn) == (3 * n2, 2 * n2)


def test_every_write_path_keeps_superseded_rows(settings: Settings, tmp_path: Path,
                                                conn: psycopg.Connection,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from epnml.ingest import executor
    from epnml.rerun import run_inline as run_one

    f = _wind(tmp_path / "simulated_paths.csv", seed=5)
    seen: list[tuple[str, int, int]] = []

    def step(name: str) -> None:
        total, superseded = _tally(conn)
        if seen:
            _, last_total, last_superseded = seen[-1]
            assert total >= last_total, f"{name}: rows went from {last_total} to {total}"
            assert superseded >= last_superseded, \
                f"{name}: superseded rows went from {last_superseded} to {superseded}"
        seen.append((name, total, superseded))

    _ingest(settings, f)
    step("ingest")
    _ingest(settings, f)
    step("ingest, same version")
    _ingest(settings, f, params={"threshold": 0.3})
    step("ingest, derived version")
    stage = executor.get_stage("icme", ICME_VERSION)
    real = stage.model_info()
    with monkeypatch.context() as m:
        m.setattr(stage, "model_info", lambda: ModelInfo(real.name, "0.9.0", real.sha256))
        _ingest(settings, f)
        step("ingest, older version")
        _ingest(settings, f, make_current=True)
        step("ingest, older version made current")
    summary = run_one(settings, "icme", [f], mode="ingest", model_version=None)
    assert summary.n_failed == 0
    step("commit helper (API re-inference)")
    summary = run_one(settings, "icme", [f], mode="ingest", model_version=None,
                      params={"threshold": 0.3})
    step("commit helper, derived version")
    bulk_load(conn, EVENTS, [[_row("bulk1", "bulk", "1.0.0") | {"pipeline": "icme"}]])
    step("bulk_load")
    with pytest.raises(psycopg.errors.UniqueViolation):
        bulk_load(conn, EVENTS, [[_row("bulk1", "bulk", "1.0.0") | {"pipeline": "icme"}]])
    step("bulk_load of an existing id (refused)")
    _wind(f, seed=6, start="2021-09-01")
    _ingest(settings, f)
    step("ingest, changed file")
    names = [name for name, _, _ in seen]
    assert len(names) == 10, names
    print(seen)
    assert seen[-1][2] > seen[0][2]  # the sequence did supersede rows


# --- crash bookkeeping ------------------------------------------------------------------


def _children(pid: int) -> set[int]:
    """All descendants of ``pid`` (from /proc, no psutil)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - out
        out |= frontier
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_kill_9_all_or_nothing_workers_gone_run_swept(settings: Settings, tmp_path: Path,
                                                       conn: psycopg.Connection) -> None:
    inputs = tmp_path / "inputs"
    for k in range(10):
        _wind(inputs / f"simulated_wind_{k:02d}.csv", seed=100 + k, days=14)
    env = dict(os.environ, EPNML_DSN=settings.dsn, EPNML_DATA_DIR=str(settings.data_dir),
               EPNML_API_URL=settings.api_url, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([str(Path(sys.prefix) / "bin" / "epnml"), "ingest", "icme",
                             "--no-progress", "--workers", "2", str(inputs)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: set[int] = set()
    run_id = None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        workers |= _children(proc.pid)
        found = conn.execute("SELECT run_id FROM epnml.granule_runs LIMIT 1").fetchone()
        if found is not None:
            run_id = found[0]
            break
        time.sleep(0.02)
    workers |= _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run_id is not None, "the ingest ended before a granule was committed"
    assert len(workers) >= 3  # the fork server, two workers (and the resource tracker)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert [p for p in workers if _alive(p)] == []

    granule_runs = conn.execute("SELECT granule_id, status, n_rows FROM epnml.granule_runs"
                                " WHERE run_id = %s", (run_id,)).fetchall()
    assert 1 <= len(granule_runs) < 10, "kill -9 came after the last granule"
    committed = {gid: n for gid, status, n in granule_runs if status == "ok"}
    assert len(committed) == len(granule_runs)
    per_granule: dict[str, int] = dict(conn.execute("SELECT obs_id, count(*) FROM epnml.events"
                                    " WHERE ml_run_id = %s GROUP BY 1", (run_id,)).fetchall())
    # all or nothing: rows exist exactly for the recorded granules, in the recorded numbers
    assert per_granule == {g: n for g, n in committed.items() if n}
    run = conn.execute("SELECT status, finished_at, n_granules, n_failed, n_rows"
                       " FROM epnml.runs WHERE run_id = %s", (run_id,)).fetchone()
    n_rows = sum(committed.values())
    assert run == ("running", None, len(granule_runs), 0, n_rows)

    closed = sweep_runs(conn)
    assert closed == [(run_id, len(granule_runs), 0, n_rows)]
    run = conn.execute("SELECT status, finished_at IS NOT NULL, n_granules, n_rows"
                       " FROM epnml.runs WHERE run_id = %s", (run_id,)).fetchone()
    assert run == ("aborted", True, len(granule_runs), n_rows)
    assert sweep_runs(conn) == []


def test_db_sweep_cli_closes_runs_of_dead_processes(settings: Settings,
                                                    conn: psycopg.Connection,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from epnml.cli import main
    from epnml.db import process_identity

    dead = subprocess.Popen(["true"])
    dead.wait()
    host, boot, pid, start = process_identity()
    for run_id, run_pid, run_start in (("dead-run", dead.pid, 1), ("live-run", pid, start)):
        conn.execute("INSERT INTO epnml.runs (run_id, pipeline, model_name, model_version,"
                     " started_at, status, hostname, boot_id, pid, proc_start, n_granules)"
                     " VALUES (%s, 'icme', 'icme', '1.0.0', now(), 'running', %s, %s, %s, %s,"
                     " 0)", (run_id, host, boot, run_pid, run_start))
    conn.execute("INSERT INTO epnml.granule_runs (run_id, granule_id, files, status, n_rows)"
                 " VALUES ('dead-run', 'a', '/x/a.csv', 'ok', 4),"
                 " ('dead-run', 'b', '/x/b.csv', 'failed', 0)")
    monkeypatch.setenv("EPNML_DSN", settings.dsn)
    assert main(["db", "sweep"]) == 0
    assert "aborted dead-run: 2 granule(s) committed (1 failed), 4 row(s)" in \
        capsys.readouterr().err
    states: dict[str, str] = dict(conn.execute("SELECT run_id, status FROM epnml.runs").fetchall())
    assert states == {"dead-run": "aborted", "live-run": "running"}


# --- batch edges ------------------------------------------------------------------------


def test_keep_going_past_a_zero_byte_file(settings: Settings, tmp_path: Path,
                                          conn: psycopg.Connection) -> None:
    inputs = tmp_path / "batch"
    _wind(inputs / "simulated_a.csv", seed=11)
    (inputs / "simulated_b.csv").write_bytes(b"")
    _wind(inputs / "simulated_c.csv", seed=12, start="2021-06-01")
    # an empty file is a granule of its own that fails (not a failed grouping)
    with pytest.raises(RunFailed, match=r"simulated_b.csv: empty file"):
        _ingest(settings, inputs)
    summary = _ingest(settings, inputs, keep_going=True)
    status = {g.granule_id: (g.status, g.error) for g in summary.granules}
    assert status == {
        "simulated_a": ("ok", None), "simulated_c": ("ok", None),
        "simulated_b": ("failed", f"{inputs / 'simulated_b.csv'}: empty file")}
    recorded = conn.execute("SELECT granule_id, status, files FROM epnml.granule_runs"
                            " WHERE run_id = %s ORDER BY granule_id",
                            (summary.run_id,)).fetchall()
    assert recorded == [("simulated_a", "ok", str(inputs / "simulated_a.csv")),
                        ("simulated_b", "failed", str(inputs / "simulated_b.csv")),
                        ("simulated_c", "ok", str(inputs / "simulated_c.csv"))]
    assert _count(conn) == summary.n_rows > 0
    run = conn.execute("SELECT status, n_granules, n_failed, n_rows FROM epnml.runs"
                       ).fetchall()
    assert run[-1] == ("finished", 3, 1, summary.n_rows)


def test_keep_going_past_unexpected_exceptions(settings: Settings, tmp_path: Path,
                                               conn: psycopg.Connection,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from epnml.ingest.readers import solarwind

    good = _wind(tmp_path / "simulated_good.csv", seed=21)
    bad = _wind(tmp_path / "simulated_bad.csv", seed=22)
    real = solarwind.read_solarwind

    def reader(files: list[Path], *args: Any, **kwargs: Any) -> Any:
        if files[0].name == bad.name:
            raise TypeError("GeoKey index past the parameters")
        return real(files, *args, **kwargs)

    monkeypatch.setattr(solarwind, "read_solarwind", reader)
    with pytest.raises(RunFailed, match="unexpected TypeError: GeoKey index"):
        _ingest(settings, bad, good)
    summary = _ingest(settings, bad, good, keep_going=True)
    assert [(g.granule_id, g.status) for g in summary.granules] == \
        [("simulated_bad", "failed"), ("simulated_good", "ok")]
    assert summary.granules[0].error == \
        f"{bad}: unexpected TypeError: GeoKey index past the parameters"
    assert _count(conn, "obs_id = 'simulated_bad'") == 0

    # a grouping bug fails the inputs, not the run
    monkeypatch.setattr(solarwind, "group_solarwind_files",
                        lambda paths, *a, **k: (_ for _ in ()).throw(KeyError("boom")))
    summary = _ingest(settings, good, keep_going=True)
    assert [(g.status, g.error) for g in summary.granules] == \
        [("failed", f"{good}: unexpected KeyError: 'boom'")]
    with pytest.raises(GranuleError, match="cannot group the files: unexpected KeyError"):
        _ingest(settings, good)


def test_non_utf8_file_name_gets_its_granule_runs_row(settings: Settings, tmp_path: Path,
                                                      conn: psycopg.Connection) -> None:
    made = _wind(tmp_path / "simulated_plain.csv", seed=31)
    raw = os.fsencode(tmp_path) + b"/simulated_caf\xe9.csv"
    os.rename(os.fsencode(made), raw)
    summary = _ingest(settings, Path(os.fsdecode(raw)))
    assert summary.n_failed == 0 and summary.n_rows > 0
    recorded = conn.execute("SELECT granule_id, files, status, n_rows FROM epnml.granule_runs"
                            ).fetchall()
    assert recorded == [("simulated_caf", f"{tmp_path}/simulated_caf\\xe9.csv", "ok",
                         summary.n_rows)]
    assert _count(conn, "obs_id = 'simulated_caf'") == summary.n_rows


def test_relative_paths_are_stored_absolute(settings: Settings, tmp_path: Path,
                                            conn: psycopg.Connection,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _wind(tmp_path / "rel" / "simulated_rel.csv", seed=41)
    monkeypatch.chdir(tmp_path)
    summary = _ingest(settings, Path("rel/simulated_rel.csv"))
    assert summary.n_failed == 0
    absolute = str(tmp_path / "rel" / "simulated_rel.csv")
    assert conn.execute("SELECT files FROM epnml.granule_runs").fetchall() == [(absolute,)]
    assert conn.execute("SELECT paths FROM epnml.granule_sources").fetchall() == \
        [([str(Path(absolute).resolve())],)]


def test_a_copy_within_one_run_is_written_once(settings: Settings, tmp_path: Path,
                                               conn: psycopg.Connection) -> None:
    """Two granules of one run with the same id and content (a stage that allows it)."""
    from epnml.ingest.runner import _identify

    a = _wind(tmp_path / "A" / "simulated_twin.csv", seed=51)
    c = tmp_path / "C" / "simulated_twin.csv"
    c.parent.mkdir()
    shutil.copyfile(a, c)
    sources: dict[str, Any] = {}
    granules, failures = _identify(conn, "icme", [Granule("simulated_twin", (a,)),
                                                  Granule("simulated_twin", (c,))],
                                   sources, {})
    assert granules == [Granule("simulated_twin", (a,))]
    assert failures == [(str(c), f"{c}: same content as {a}, already in this run")]
    assert list(sources) == ["simulated_twin"]
