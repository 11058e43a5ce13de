"""Benchmarks (``epnml bench ingest|query|icme|all``): numbers for the README, never tests.

Ingest and query benchmarks run on their own DaCHS instance and database
(``epnml_bench``, port 8097), provisioned by ``service/provision.sh``, and load
SIMULATED landform-like rows (small polygons on Mars) into the landforms table.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from epnml.config import REPO_ROOT

BENCH_ROOT = Path(os.environ.get("EPNML_BENCH_ROOT", "/var/tmp/epnml-bench"))
BENCH_DB = "epnml_bench"
BENCH_PORT = 8097
BENCH_DSN = f"host=localhost dbname={BENCH_DB} user=epnml password=epnml"
#: the figure issue #2 quotes for `dachs imp` of 200k epn_core rows with polygons;
#: `epnml bench ingest` re-measures it (rd/bench/q.rd) and reports both.
ISSUE_DACHS_IMP_ROWS_PER_S = 6400.0
DACHS_IMP_CSV = BENCH_ROOT / "dachs_imp_rows.csv"
BASELINE_COLUMNS = [
    "granule_uid", "granule_gid", "obs_id", "dataproduct_type", "target_name", "target_class",
    "time_min", "time_max", "c1min", "c1max", "c2min", "c2max", "s_region", "processing_level",
    "creation_date", "modification_date", "release_date",
]


def _bench_env() -> dict[str, str]:
    return dict(os.environ, EPNML_DACHS_ROOT=str(BENCH_ROOT / "gavo"), EPNML_DB=BENCH_DB,
                EPNML_PORT=str(BENCH_PORT), EPNML_VENV=sys.prefix,
                GAVOSETTINGS=str(BENCH_ROOT / "gavo" / "gavo.rc"))


def _provision() -> None:
    subprocess.run(["bash", str(REPO_ROOT / "service" / "provision.sh"), "stack"],
                   env=_bench_env(), check=True, capture_output=True)


def bench_ingest_breakdown(rows: int) -> dict[str, float]:
    """Where ingest time goes: COPY alone, the pgSphere GiST build, COPY with GiST kept."""
    import psycopg
    from epnml.ingest.writer import copy_rows
    from epnml.schemas import get_product

    product = get_product("landforms")
    batches = list(synthetic_landform_rows(rows, seed=3))
    out: dict[str, float] = {"rows": float(rows)}
    with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
        _reset(conn)
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'epnml'"
            " AND tablename = 'landforms' AND indexname <> 'landforms_pk'").fetchall()
        spatial = [d for n, d in indexes if n == "landforms_s_region_gist"][0]
        with conn.transaction(), conn.cursor() as cur:
            for name, _ in indexes:
                cur.execute(f"DROP INDEX epnml.{name}")
            t0 = time.perf_counter()
            for batch in batches:
                copy_rows(cur, product, batch)
            out["copy_only_rows_per_s"] = rows / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            cur.execute(spatial)
            out["spatial_gist_build_rows_per_s"] = rows / (time.perf_counter() - t0)
            cur.execute("TRUNCATE epnml.landforms")
            t0 = time.perf_counter()
            for batch in batches:
                copy_rows(cur, product, batch)
            out["copy_with_spatial_gist_rows_per_s"] = rows / (time.perf_counter() - t0)
            for name, definition in indexes:
                if name != "landforms_s_region_gist":
                    cur.execute(definition)
        _reset(conn)
    return out


def bench_dachs_imp(rows: int) -> float:
    """Baseline: rows/s of `dachs imp` loading the same rows from CSV (rd/bench/q.rd)."""
    import csv
    import re

    DACHS_IMP_CSV.parent.mkdir(parents=True, exist_ok=True)
    number = re.compile(r"[-0-9.]+(?=d)")
    with DACHS_IMP_CSV.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(BASELINE_COLUMNS)
        for batch in synthetic_landform_rows(rows, seed=2):
            for row in batch:
                row["s_region"] = " ".join(number.findall(row["s_region"]))
                writer.writerow([row[c].isoformat() if isinstance(row[c], datetime) else row[c]
                                 for c in BASELINE_COLUMNS])
    env = _bench_env()
    t0 = time.perf_counter()
    subprocess.run(["dachs", "imp", "bench/q"], env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - t0
    subprocess.run(["dachs", "drop", "bench/q"], env=env, check=True, capture_output=True)
    DACHS_IMP_CSV.unlink()
    return rows / seconds


def synthetic_landform_rows(n: int, seed: int = 0, run_id: str = "bench"
                            ) -> Iterator[list[dict[str, Any]]]:
    """SIMULATED landform rows in batches of 10,000: quadrilaterals of 0.01-0.5 deg on Mars."""
    rng = np.random.default_rng(seed)
    now = datetime(2026, 1, 1)
    batch = 10_000
    for offset in range(0, n, batch):
        m = min(batch, n - offset)
        lon = rng.uniform(0.5, 359.5, m)
        lat = np.degrees(np.arcsin(rng.uniform(-0.98, 0.98, m)))
        half = rng.uniform(0.005, 0.25, m)
        t0 = rng.uniform(2453000.5, 2461000.5, m)
        rows = []
        for i in range(m):
            x, y, h = lon[i], lat[i], half[i]
            poly = (f"{{({x - h:.5f}d,{y - h:.5f}d),({x + h:.5f}d,{y - h:.5f}d),"
                    f"({x + h:.5f}d,{y + h:.5f}d),({x - h:.5f}d,{y + h:.5f}d)}}")
            rows.append({
                "granule_uid": f"bench_{offset + i}", "granule_gid": "bench",
                "obs_id": f"bench_obs_{(offset + i) // 100}", "dataproduct_type": "ci",
                "target_name": "Mars", "target_class": "planet",
                "time_min": t0[i], "time_max": t0[i] + 0.001,
                "c1min": x - h, "c1max": x + h, "c2min": y - h, "c2max": y + h,
                "s_region": poly, "spatial_frame_type": "body", "processing_level": 5,
                "creation_date": now, "modification_date": now, "release_date": now,
                "service_title": "epnml_landforms", "ml_model_name": "bench",
                "ml_model_version": "0", "ml_weights_sha256": "0" * 64, "ml_run_id": run_id,
                "ml_score": 0.5, "landform_class": "simulated", "pipeline": "bench",
            })
        yield rows


def _reset(conn: Any) -> None:
    conn.execute("TRUNCATE epnml.landforms")


def bench_ingest(rows: int) -> dict[str, Any]:
    import psycopg
    from epnml.ingest.stage import Granule, ModelInfo, StageOutput
    from epnml.ingest.writer import bulk_load, write_granule
    from epnml.schemas import get_product

    _provision()
    product = get_product("landforms")
    model = ModelInfo("bench", "0", "0" * 64)
    results: dict[str, Any] = {"rows": rows, "data": "SIMULATED landform rows with polygons"}
    with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
        _reset(conn)
        t0 = time.perf_counter()
        n = bulk_load(conn, product, synthetic_landform_rows(rows))
        bulk_s = time.perf_counter() - t0
        results["bulk_rows_per_s"] = n / bulk_s
        _reset(conn)
        # per-granule transactions (the normal ingest path), every index maintained
        t0 = time.perf_counter()
        n = 0
        for k, batch in enumerate(synthetic_landform_rows(rows, seed=1)):
            for row in batch:
                row["obs_id"] = f"g{k}"
            out = StageOutput(Granule(f"g{k}", (Path("bench"),)), pd.DataFrame(), batch)
            n += write_granule(conn, product, "bench", out, model).n_rows
        granule_s = time.perf_counter() - t0
        results["per_granule_rows_per_s"] = n / granule_s
        _reset(conn)
    results["breakdown"] = bench_ingest_breakdown(min(rows, 100_000))
    baseline = bench_dachs_imp(rows)
    results["dachs_imp_rows_per_s"] = baseline
    results["issue_dachs_imp_rows_per_s"] = ISSUE_DACHS_IMP_ROWS_PER_S
    results["bulk_vs_dachs_imp"] = results["bulk_rows_per_s"] / baseline
    results["per_granule_vs_dachs_imp"] = results["per_granule_rows_per_s"] / baseline
    return results


def _tap_sync(query: str) -> float:
    url = f"http://localhost:{BENCH_PORT}/tap/sync"
    data = urllib.parse.urlencode({"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query,
                                   "MAXREC": "1000"}).encode()
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, data=data, timeout=600) as response:
        body = response.read()
    elapsed = time.perf_counter() - t0
    if b'value="ERROR"' in body:
        raise RuntimeError(f"TAP error for {query}: {body[:500]!r}")
    return elapsed


QUERIES = {
    "time_overlap": "SELECT granule_uid FROM epnml_landforms.epn_core "
                    "WHERE time_min <= 2457000.6 AND time_max >= 2457000.5",
    "intersects": "SELECT granule_uid FROM epnml_landforms.epn_core "
                  "WHERE 1 = INTERSECTS(s_region, CIRCLE(77.5, 18.4, 0.5))",
}


#: DaCHS' own floor: a trivial TAP_SCHEMA query through the same sync endpoint.
FLOOR_QUERY = "SELECT TOP 1 schema_name FROM tap_schema.schemas"


def _db_ms(conn: Any, query: str, repeats: int) -> float:
    """Median server-side execution time (EXPLAIN ANALYZE) of the ADQL's SQL twin."""
    where = query.split("WHERE", 1)[1]
    where = where.replace("1 = INTERSECTS(s_region, CIRCLE(77.5, 18.4, 0.5))",
                          "s_region && scircle(spoint(radians(77.5), radians(18.4)),"
                          " radians(0.5))")
    sql_text = ("EXPLAIN (ANALYZE, FORMAT JSON) SELECT granule_uid FROM epnml.landforms"
                f" WHERE {where}")
    times = []
    for _ in range(repeats):
        plan = conn.execute(sql_text).fetchone()[0]
        times.append(float(plan[0]["Execution Time"]))
    return statistics.median(times)


def _time_queries(repeats: int, conn: Any = None) -> dict[str, dict[str, float]]:
    out = {}
    _tap_sync(FLOOR_QUERY)
    floor = [_tap_sync(FLOOR_QUERY) for _ in range(repeats)]
    out["tap_floor"] = {"p50_ms": 1000 * statistics.median(floor), "max_ms": 1000 * max(floor)}
    for name, query in QUERIES.items():
        _tap_sync(query)  # warm the caches
        times = [_tap_sync(query) for _ in range(repeats)]
        out[name] = {"p50_ms": 1000 * statistics.median(times),
                     "max_ms": 1000 * max(times)}
        if conn is not None:
            out[name]["db_execution_ms"] = _db_ms(conn, query, repeats)
    return out


def bench_query(rows: int, repeats: int = 15) -> dict[str, Any]:
    import psycopg
    from epnml.ingest.writer import bulk_load
    from epnml.schemas import get_product

    _provision()
    product = get_product("landforms")
    results: dict[str, Any] = {"rows": rows, "data": "SIMULATED landform rows with polygons"}
    with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
        count = conn.execute("SELECT count(*) FROM epnml.landforms").fetchone()
        if not count or count[0] != rows:
            _reset(conn)
            bulk_load(conn, product, synthetic_landform_rows(rows))
        results["indexed"] = _time_queries(repeats, conn)
        with conn.transaction():
            indexes = conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'epnml'"
                " AND tablename = 'landforms' AND indexname <> 'landforms_pk'").fetchall()
            for name, _ in indexes:
                conn.execute(f"DROP INDEX epnml.{name}")
        try:
            results["sequential"] = _time_queries(max(3, repeats // 5), conn)
        finally:
            with conn.transaction():
                for _, definition in indexes:
                    conn.execute(definition)
        _reset(conn)
    results["speedup_tap_p50"] = {
        name: results["sequential"][name]["p50_ms"] / results["indexed"][name]["p50_ms"]
        for name in QUERIES
    }
    results["speedup_db"] = {
        name: results["sequential"][name]["db_execution_ms"]
        / results["indexed"][name]["db_execution_ms"]
        for name in QUERIES
    }
    return results


def bench_icme(days: int = 365) -> dict[str, Any]:
    import torch
    from epnml.ingest.simulate.solarwind import simulate_solar_wind
    from epnml.ml.icme.inference import load_model, predict_proba

    torch.set_num_threads(2)
    frame, _ = simulate_solar_wind("2020-01-01", days=days, seed=3)
    model = load_model()
    predict_proba(frame.iloc[:2048], model)  # warm-up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        predict_proba(frame, model)
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {"samples": len(frame), "data": "SIMULATED solar wind, 10-min cadence",
            "model_version": model.info.version, "threads": 2,
            "seconds": best, "samples_per_s": len(frame) / best}


#: orbits in the MESSENGER mission (Philpott 2020 lists 4,084): the ingest goal is < 1 h.
MISSION_ORBITS = 4084


def bench_crossings_ingest(n_orbits: int = 24, workers: int = 2) -> dict[str, Any]:
    """``epnml ingest crossings`` over SIMULATED 12-h orbits (PDS3) into the bench instance.

    Includes reading the PDS3 products, inference, decoding, quicklooks and the COPY
    into PostgreSQL; the mission figure is this rate extrapolated to 4,084 orbits.
    """
    import dataclasses

    from epnml.config import load_settings
    from epnml.ingest.runner import run_pipeline
    from epnml.ingest.simulate.messenger import simulate_orbit, write_pds3

    _provision()
    inputs = BENCH_ROOT / "crossings_inputs"
    if len(list(inputs.glob("*.LBL"))) != n_orbits:
        if inputs.exists():
            for old in inputs.iterdir():
                old.unlink()
        inputs.mkdir(parents=True, exist_ok=True)
        for i in range(n_orbits):  # synthetic orbits of the 12-h era (the longest granules)
            write_pds3(simulate_orbit(100 + i, 7000 + i), inputs)
    samples = sum(tab.read_bytes().count(b"\n") for tab in inputs.glob("*.TAB"))
    settings = dataclasses.replace(
        load_settings(), dsn=BENCH_DSN,
        data_dir=BENCH_ROOT / "gavo" / "web" / "nv_static" / "epnml")
    import psycopg

    with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
        conn.execute("TRUNCATE epnml.crossings")
    t0 = time.perf_counter()
    summary = run_pipeline("crossings", [inputs], mode="ingest", settings=settings,
                           workers=workers, progress=False)
    seconds = time.perf_counter() - t0
    if summary.n_failed:
        raise RuntimeError(summary.text())
    per_orbit = seconds / n_orbits
    return {
        "data": "SIMULATED MESSENGER MAG, synthetic 12-h orbits, PDS3 products",
        "orbits": n_orbits, "samples": samples, "rows": summary.n_rows, "workers": workers,
        "seconds": seconds, "seconds_per_orbit": per_orbit,
        "mission_orbits": MISSION_ORBITS,
        "mission_hours_extrapolated": per_orbit * MISSION_ORBITS / 3600.0,
    }


def bench_api() -> dict[str, Any]:
    """Preview latency and 20 concurrent clients against ``epnml serve`` on the bench
    instance (SIMULATED granules: a one-week solar-wind window, one MESSENGER orbit, one
    1024 x 1024 Mars tile)."""
    import dataclasses

    from epnml.api.bench import run as run_api
    from epnml.config import load_settings

    _provision()
    settings = dataclasses.replace(
        load_settings(), dsn=BENCH_DSN,
        data_dir=BENCH_ROOT / "gavo" / "web" / "nv_static" / "epnml")
    return run_api(settings, workdir=BENCH_ROOT / "api", env=_bench_env())


def run_bench(what: str, rows: int | None = None, output: Path | None = None) -> int:
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "date": datetime.now().isoformat(timespec="seconds"),
    }
    if what in ("ingest", "all"):
        results["ingest"] = bench_ingest(rows or 200_000)
    if what in ("query", "all"):
        results["query"] = bench_query(rows or 1_000_000)
    if what in ("icme", "all"):
        results["icme"] = bench_icme()
    if what in ("crossings", "all"):
        from epnml.ml.crossings.bench import run as bench_crossings

        # 1 thread = one orbit per core (how `epnml ingest` runs it); 2 = one orbit, 2 cores
        results["crossings"] = {f"threads_{n}": bench_crossings(threads=n) for n in (1, 2)}
        results["crossings_ingest"] = bench_crossings_ingest()
    if what in ("units", "all"):
        from epnml.ml.units.bench import run as bench_units

        results["units"] = bench_units()
    if what in ("landforms", "all"):
        from epnml.ml.landforms import bench as landforms

        # 1 thread = one tile stream per core (as `epnml ingest` runs it); 2 = one stream
        results["landforms"] = {
            name: {f"threads_{n}": fn(threads=n) for n in (1, 2)}
            for name, fn in (("pits", landforms.run), ("craters", landforms.run_craters),
                             ("mounds", landforms.run_mounds), ("ice", landforms.run_ice))}
    if what in ("api", "all"):
        results["api"] = bench_api()
    text = json.dumps(results, indent=2)
    print(text)
    if output is not None:
        output.write_text(text + "\n")
    return 0
