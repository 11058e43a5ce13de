"""`epnml ingest --executor dask --scheduler ADDRESS` against a real dask.distributed cluster.

The test starts its own LocalCluster (2 worker processes, 1 thread each) and runs the CLI in
a subprocess over 4 SIMULATED solar-wind granules (one of them broken) into a migrated
database of its own (``<EPNML_TEST_DB>_dask``); the same inputs through the local executor
give the reference rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from epnml.config import Settings
from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv
from tests.conftest import ICME_VERSION, STORE_TABLES, empty_store_settings, migrated_database

distributed = pytest.importorskip("distributed")

#: columns that differ between two runs of the same model on the same granule.
PER_RUN = {"ml_run_id", "creation_date", "modification_date", "release_date"}
GOOD = ("wind_simulated_20210301", "wind_simulated_20210401", "wind_simulated_20210501")
BAD = "wind_simulated_20210601"
BAD_ERROR = "no valid solar-wind samples (19 of 190 values were not physical)"


@dataclass(frozen=True)
class Inputs:
    settings: Settings
    folder: Path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    dsn = migrated_database("dask")
    tmp = tmp_path_factory.mktemp("dask")
    folder = tmp / "inputs"
    folder.mkdir()
    lines: list[str] = []
    for k, name in enumerate(GOOD):
        frame, _ = simulate_solar_wind(f"2021-0{3 + k}-01", days=8, seed=20 + k, n_icmes=2)
        write_csv(frame, folder / f"{name}.csv")
        lines = (folder / f"{name}.csv").read_text().splitlines()
    # a header and 19 samples whose bx is not a number: the stage refuses it on the worker
    broken = [lines[0]] + [",".join([r.split(",")[0], "abc", *r.split(",")[2:]])
                           for r in lines[1:20]]
    (folder / f"{BAD}.csv").write_text("\n".join(broken) + "\n")
    return Inputs(empty_store_settings(dsn, tmp, "http://localhost:8311"), folder)


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, EPNML_DSN=settings.dsn, EPNML_DATA_DIR=str(settings.data_dir),
               EPNML_API_URL=settings.api_url, EPNML_WORKERS="1",
               EPNML_CONFIG="/nonexistent/epnml.toml", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "epnml.cli", "ingest", "icme", "--keep-going",
                           "--no-progress", "--model-version", ICME_VERSION, *args],
                          env=env, capture_output=True, text=True, timeout=600)


def _query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.dsn) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def _rows(settings: Settings) -> list[dict[str, Any]]:
    with psycopg.connect(settings.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM epnml.events ORDER BY granule_uid")
        names = [d.name for d in cur.description or []]
        return [{k: v for k, v in zip(names, r, strict=True) if k not in PER_RUN}
                for r in cur.fetchall()]


def test_dask_workers_compute_and_write_their_granules(inputs: Inputs) -> None:
    settings = inputs.settings
    local = _cli(settings, "--executor", "local", str(inputs.folder))
    assert local.returncode == 1, local.stderr  # the broken granule
    reference = _rows(settings)
    assert len({r["obs_id"] for r in reference}) == len(GOOD)
    with psycopg.connect(settings.dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {STORE_TABLES}")

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        worker_pids = client.run(os.getpid)
        result = _cli(settings, "--executor", "dask", "--scheduler", cluster.scheduler_address,
                      str(inputs.folder))
        loads = client.run(lambda: __import__("epnml.ingest.executor",
                                              fromlist=["stage_loads"]).stage_loads())

    assert result.returncode == 1, result.stderr
    assert f"{BAD}.csv: {BAD_ERROR}" in result.stderr
    assert "3 granule(s) ok, 1 failed" in result.stderr
    assert settings.dsn.split("password=")[1] not in result.stdout + result.stderr
    # the same rows as the local executor's, but for the run stamps
    assert _rows(settings) == reference

    ((run_id, status, n_granules, n_failed, n_rows, run_pid),) = _query(
        settings, "SELECT run_id, status, n_granules, n_failed, n_rows, pid FROM epnml.runs")
    assert (status, n_granules, n_failed, n_rows) == ("finished", 4, 1, len(reference))
    records = _query(settings, "SELECT granule_id, status, error, pid, xmin::text"
                               " FROM epnml.granule_runs ORDER BY granule_id")
    assert [(g, s) for g, s, *_ in records] == [*((g, "ok") for g in GOOD), (BAD, "failed")]
    assert records[-1][2] == f"{inputs.folder / BAD}.csv: {BAD_ERROR}"
    # every granule recorded (the failed one too) by a worker process, both workers used
    writers = {pid for *_, pid, _ in records}
    assert writers == set(worker_pids.values())
    assert run_pid not in writers
    # each granule's rows commit in the transaction of its record, one per granule
    txids = {g: x for g, _, _, _, x in records}
    assert len(set(txids.values())) == 4
    events = _query(settings, "SELECT DISTINCT obs_id, xmin::text FROM epnml.events")
    assert sorted(events) == sorted((g, txids[g]) for g in GOOD)
    # the model was loaded once in each worker, whatever the number of granules it ran
    assert loads == {addr: {("icme", ICME_VERSION): 1} for addr in worker_pids}


def _granule(gid: str, *files: str) -> Any:
    from epnml.ingest.stage import Granule

    return Granule(gid, tuple(Path(f) for f in files))


def test_locality_plan_prefers_workers_holding_the_files_on_local_disk() -> None:
    from epnml.ingest.executor import plan_locality

    a1, a2, b1 = "tcp://hostA:1", "tcp://hostA:2", "tcp://hostB:1"
    probes = {
        # /nfs: every worker reads it, none locally; /a: host A's disk; /b: only host B
        a1: {"/nfs/x": (True, False, 10), "/a/y": (True, True, 500), "/b/z": (False, False, 0)},
        a2: {"/nfs/x": (True, False, 10), "/a/y": (True, True, 500), "/b/z": (False, False, 0)},
        b1: {"/nfs/x": (True, False, 10), "/a/y": (True, False, 500), "/b/z": (True, True, 7)},
    }
    plans = plan_locality([_granule("shared", "/nfs/x"), _granule("on_a", "/a/y"),
                           _granule("only_b", "/b/z"), _granule("mixed", "/a/y", "/b/z"),
                           _granule("nowhere", "/gone/w")], probes)
    assert (plans["shared"].workers, plans["shared"].allow_other_workers) == (None, True)
    assert (plans["on_a"].workers, plans["on_a"].allow_other_workers) == ([a1, a2], True)
    assert (plans["only_b"].workers, plans["only_b"].allow_other_workers) == ([b1], False)
    assert (plans["mixed"].workers, plans["mixed"].allow_other_workers) == ([b1], False)
    # larger granules first
    assert [plans[g].priority for g in ("shared", "on_a", "only_b")] == [10, 500, 7]
    assert plans["nowhere"].error == ("/gone/w: no Dask worker can read this file (missing, "
                                      "or not on the workers' filesystem)")
    assert all(plans[g].error is None for g in ("shared", "on_a", "only_b", "mixed"))


def test_dask_executor_fails_a_granule_no_worker_can_read(tmp_path: Path) -> None:
    """A real scheduler: the workers probe the inputs; the file they cannot read fails at
    once with its name, the other granule runs."""
    from epnml.ingest.executor import DaskExecutor, probe_inputs
    from epnml.ingest.stage import RunContext

    frame, _ = simulate_solar_wind("2021-03-01", days=4, seed=5, n_icmes=1)
    good = tmp_path / "wind_simulated_20210301.csv"
    write_csv(frame, good)
    missing = tmp_path / "not_on_the_workers.csv"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        executor = DaskExecutor(cluster.scheduler_address)
        try:
            probes = executor._client.run(probe_inputs, [str(good), str(missing)])
            results = list(executor.map_granules(
                "icme", ICME_VERSION,
                [_granule("gone", str(missing)), _granule("good", str(good))],
                RunContext(run_id="locality-test", files_base_url="http://localhost/files",
                           started=datetime.now(UTC), make_quicklooks=False)))
        finally:
            executor.close()
    assert len(probes) == 2
    assert all(p[str(good)][:2] == (True, True) and p[str(missing)] == (False, False, 0)
               for p in probes.values())
    by_id = {r.granule.granule_id: r for r in results}
    assert by_id["gone"].error == (f"{missing}: no Dask worker can read this file (missing, "
                                   "or not on the workers' filesystem)")
    assert by_id["gone"].kind == "input"
    assert by_id["good"].error is None and by_id["good"].output is not None
