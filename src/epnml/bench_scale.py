"""The store at archive size (issue #17, docs/scale.md): ``epnml bench partitions|archive|scale``.

``partitions`` bulk-loads SIMULATED landform rows (generated in SQL: Mars, Moon and
Mercury footprints over 20 years) into the partitioned ``epnml.landforms`` of the bench
instance and measures TAP p50 through DaCHS against DaCHS' own floor, index sizes per row
and VACUUM times. ``archive`` measures indexed ingest: where a granule's time goes (COPY alone,
+ indexes, + the granule_uids registry, + the writer's bookkeeping) and the writer's normal
path (one transaction per granule) with 1 and 2 parallel writers into different
partitions, against the issue's baseline and the COPY-with-GiST ceiling. ``scale``
gathers the committed results (docs/bench/*.json) into one
JSON with the machine and date; a figure without a committed result is "not measured".
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from epnml.bench import (
    FLOOR_QUERY,
    _bench_dsn,
    _provision,
    _tap_sync,
    emit_results,
    relation_sizes,
    results_header,
    synthetic_landform_rows,
)
from epnml.config import REPO_ROOT

#: committed results of the benchmarks (``epnml bench <what> -o docs/bench/<what>.json``)
RESULTS_DIR = REPO_ROOT / "docs" / "bench"
#: issue #17's baseline: indexed ingest with polygons, one writer (rows/s)
ISSUE_INGEST_ROWS_PER_S = 8957.0
#: the simulated rows' targets and their shares (the landforms partitions' targets)
TARGETS = (("Mars", "planet", 0.6), ("Moon", "satellite", 0.25), ("Mercury", "planet", 0.15))
CHUNK = 500_000
T0_JD, SPAN_DAYS = 2453736.5, 7305.0  # 2006-01-01, 20 years

#: the ADQL queries timed through DaCHS (each selective: an indexed query)
SCALE_QUERIES = {
    "time": "SELECT granule_uid FROM epnml_landforms.epn_core "
            "WHERE time_min <= 2458000.6 AND time_max >= 2458000.5",
    "intersects": "SELECT granule_uid FROM epnml_landforms.epn_core "
                  "WHERE 1 = INTERSECTS(s_region, CIRCLE(77.5, 18.4, 0.5))",
    "target": "SELECT granule_uid FROM epnml_landforms.epn_core WHERE target_name = 'Mercury' "
              "AND time_min <= 2458010.6 AND time_max >= 2458010.5",
}
#: their SQL twins on the storage table (EXPLAIN ANALYZE: server time, partitions read)
SQL_TWINS = {
    "time": "time_min <= 2458000.6 AND time_max >= 2458000.5",
    "intersects": "s_region && scircle(spoint(radians(77.5), radians(18.4)), radians(0.5))",
    "target": "target_name = 'Mercury' AND time_min <= 2458010.6 AND time_max >= 2458010.5",
}


def _load() -> dict[str, Any]:
    return {"load_average": [round(x, 2) for x in os.getloadavg()],
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}


def _generate_sql(first: int, last: int) -> str:
    """INSERT of SIMULATED rows ``first``..``last``: quadrilaterals of 0.01-0.5 deg, 100 rows
    per granule (obs_id), times uniform over 2006-2026, targets by TARGETS' shares."""
    (t1, c1, s1), (t2, c2, s2), (t3, c3, _) = TARGETS
    return f"""
INSERT INTO epnml.landforms (granule_uid, granule_gid, obs_id, dataproduct_type, target_name,
    target_class, time_min, time_max, c1min, c1max, c2min, c2max, s_region,
    spatial_frame_type, processing_level, creation_date, modification_date, release_date,
    service_title, ml_model_name, ml_model_version, ml_weights_sha256, ml_run_id, ml_score,
    landform_class, pipeline)
SELECT 'scale_' || g, 'scale', 'scale_obs_' || (g / 100), 'ci',
    CASE WHEN u < {s1} THEN '{t1}' WHEN u < {s1 + s2} THEN '{t2}' ELSE '{t3}' END,
    CASE WHEN u < {s1} THEN '{c1}' WHEN u < {s1 + s2} THEN '{c2}' ELSE '{c3}' END,
    t0, t0 + 0.001, lon - h, lon + h, lat - h, lat + h,
    format('{{(%sd,%sd),(%sd,%sd),(%sd,%sd),(%sd,%sd)}}', round((lon - h)::numeric, 5),
           round((lat - h)::numeric, 5), round((lon + h)::numeric, 5),
           round((lat - h)::numeric, 5), round((lon + h)::numeric, 5),
           round((lat + h)::numeric, 5), round((lon - h)::numeric, 5),
           round((lat + h)::numeric, 5))::spoly,
    'body', 5, now(), now(), now(), 'epnml_landforms', 'bench', '0', repeat('0', 64),
    'scale', 0.5, 'simulated', 'bench'
FROM (SELECT g, random() AS u, 0.5 + 359 * random() AS lon,
             degrees(asin(-0.98 + 1.96 * random())) AS lat, 0.005 + 0.245 * random() AS h,
             {T0_JD} + {SPAN_DAYS} * random() AS t0
      FROM generate_series({first}, {last}) AS g) AS s
"""


def _explain(conn: Any, where: str) -> dict[str, Any]:
    plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) SELECT granule_uid FROM"
                        f" epnml.landforms WHERE superseded_at IS NULL AND {where}").fetchone()[0]
    scanned: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node:
            scanned.add(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return {"db_execution_ms": round(float(plan[0]["Execution Time"]), 2),
            "partitions_read": len(scanned)}


def bench_partitions(rows: int = 10_000_000, repeats: int = 25) -> dict[str, Any]:
    """Load ``rows`` SIMULATED rows (unless the bench table already holds exactly them) and
    time indexed TAP queries through DaCHS against DaCHS' floor; sizes and VACUUM."""
    import psycopg

    from epnml.ingest.writer import whole_index

    _provision()
    out: dict[str, Any] = {"rows": rows, "table": "epnml.landforms (partitioned)",
                           "data": "SIMULATED landform rows with polygons, generated in SQL "
                                   "(Mars 60 %, Moon 25 %, Mercury 15 %; 2006-2026)",
                           "load_before": _load()}
    with psycopg.connect(_bench_dsn(), autocommit=True) as conn:
        count = conn.execute("SELECT count(*) FROM epnml.landforms").fetchone()
        if not count or count[0] != rows:
            conn.execute("TRUNCATE epnml.landforms")
            indexes = conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'epnml'"
                " AND tablename = 'landforms' AND indexname <> 'landforms_pk'").fetchall()
            for name, _ in indexes:
                conn.execute(f"DROP INDEX epnml.{name}")
            conn.execute("SELECT setseed(0.17)")
            t0 = time.perf_counter()
            for first in range(1, rows + 1, CHUNK):
                conn.execute(_generate_sql(first, min(first + CHUNK - 1, rows)))
            out["load_s"] = round(time.perf_counter() - t0, 1)
            builds = {}
            for name, definition in indexes:
                t0 = time.perf_counter()
                conn.execute(whole_index(definition))
                builds[name] = round(time.perf_counter() - t0, 1)
            out["index_build_s"] = builds
            out["load_after_build"] = _load()
        t0 = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) epnml.landforms")
        out["vacuum_analyze_s"] = round(time.perf_counter() - t0, 1)
        out.update(relation_sizes(conn, rows))
        # interleaved (floor, then each query, in turn): the ratios compare requests made
        # under the same machine load, which drifts on a shared machine
        queries = {"floor": FLOOR_QUERY, **SCALE_QUERIES}
        for query in queries.values():
            _tap_sync(query)  # warm the caches
        times: dict[str, list[float]] = {name: [] for name in queries}
        for _ in range(repeats):
            for name, query in queries.items():
                times[name].append(1000 * _tap_sync(query))
        floor = statistics.median(times["floor"])
        tap: dict[str, Any] = {"floor": {"adql": FLOOR_QUERY, "p50_ms": round(floor, 1),
                                         "max_ms": round(max(times["floor"]), 1)}}
        for name, query in SCALE_QUERIES.items():
            p50 = statistics.median(times[name])
            tap[name] = {"adql": query, "p50_ms": round(p50, 1),
                         "max_ms": round(max(times[name]), 1),
                         "ratio_to_floor": round(p50 / floor, 2),
                         **_explain(conn, SQL_TWINS[name])}
        out["tap"] = tap
        out["goal"] = "TAP p50 within 1.5x DaCHS' floor (issue #17)"
        out["load_after"] = _load()
    return out


#: every measured run of ``archive`` lasts at least this long (s), repeated, median kept
MIN_SECONDS = 20.0
REPEATS = 3
GRANULE = 10_000
#: ``archive`` stages: what a granule's transaction does (docs/benchmarks.md, Scale)
STAGES = {
    "copy_only": "COPY into a table of the same columns without index, constraint or trigger",
    "copy_spatial_gist_ceiling": "COPY into an empty such table with only the spatial GiST "
                                 "(the issue's COPY-with-GiST ceiling)",
    "parent_indexes": "COPY through the partitioned table, every index, registry trigger off",
    "parent_indexes_uids": "COPY through the partitioned table, every index, granule_uids "
                           "trigger (the COPY of the writer before 0024)",
    "leaf_indexes": "COPY into the granule's leaf partition, every index, no registry trigger",
    "leaf_indexes_uids": "COPY into the leaf partition, every index, the leaf's granule_uids "
                         "trigger (0024; the COPY of the writer since)",
    "writer": "write_granule: the lock, version lookups, DELETE/UPDATE of the granule's "
              "current rows, the collision lookup, the COPY, granule_versions; committed",
}


def _pool(seed: int, target: str, target_class: str) -> list[list[dict[str, Any]]]:
    """4 granules of SIMULATED rows, re-labelled for each use (generation is not timed)."""
    batches = list(synthetic_landform_rows(4 * GRANULE, seed=seed))
    for batch in batches:
        for row in batch:
            row.update(target_name=target, target_class=target_class)
    return batches


def _label(batch: list[dict[str, Any]], obs_id: str) -> None:
    for i, row in enumerate(batch):
        row.update(obs_id=obs_id, granule_uid=f"{obs_id}_{i}", pipeline="bench")
        row.pop("superseded_at", None)


def _stage_granule(cur: Any, stage: str, batch: list[dict[str, Any]], obs_id: str) -> None:
    """One granule of a COPY stage, in a transaction that is rolled back (no row stays)."""
    from epnml.ingest.writer import copy_rows, leaf_groups
    from epnml.schemas import get_product

    product = get_product("landforms")
    with cur.connection.transaction(force_rollback=True):
        if stage == "copy_only":
            copy_rows(cur, product, batch, table="epnml.bench_copy_only")
        elif stage == "copy_spatial_gist_ceiling":
            copy_rows(cur, product, batch, table="epnml.bench_copy_gist")
        elif stage.startswith("parent"):
            if stage == "parent_indexes":
                cur.execute("ALTER TABLE epnml.landforms DISABLE TRIGGER landforms_uids_insert")
            copy_rows(cur, product, batch)
        else:
            (leaf,) = leaf_groups(cur, product, obs_id, batch)
            name = leaf.split(".", 1)[1]
            has_trigger = cur.execute("SELECT 1 FROM pg_trigger WHERE tgname = %s",
                                      (f"{name}_uids_insert",)).fetchone() is not None
            if stage == "leaf_indexes" and has_trigger:
                cur.execute(f"ALTER TABLE {leaf} DISABLE TRIGGER {name}_uids_insert")
            elif stage == "leaf_indexes_uids" and not has_trigger:
                raise ValueError("leaf_indexes_uids needs migration 0024 (leaf triggers)")
            copy_rows(cur, product, batch, table=leaf)


def _run(args: tuple[str, int, int, str, str, float, float]) -> tuple[int, float]:
    """One process: granules of ``stage`` from ``start_at`` (a wall-clock time shared by
    parallel processes) until ``seconds`` have passed; (rows, seconds)."""
    import pandas as pd
    import psycopg

    from epnml.ingest.stage import Granule, ModelInfo, StageOutput
    from epnml.ingest.writer import write_granule
    from epnml.schemas import get_product

    stage, writer, rep, target, target_class, start_at, seconds = args
    pool = _pool(100 + writer, target, target_class)
    product = get_product("landforms")
    model = ModelInfo("bench", "0", "0" * 64)
    n = k = 0
    with psycopg.connect(_bench_dsn(), autocommit=True) as conn, conn.cursor() as cur:
        time.sleep(max(0.0, start_at - time.time()))
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            batch = pool[k % len(pool)]
            obs_id = f"arch_{stage}_{rep}_{writer}_{k}"
            _label(batch, obs_id)
            if stage == "writer":
                out = StageOutput(Granule(obs_id, (Path("bench"),)), pd.DataFrame(), batch)
                n += write_granule(conn, product, "bench", out, model).n_rows
            else:
                _stage_granule(cur, stage, batch, obs_id)
                n += len(batch)
            k += 1
        return n, time.perf_counter() - t0


def _measure(ctx: Any, stage: str, n_writers: int, rep: int, seconds: float
             ) -> dict[str, Any]:
    plan = [(stage, w, rep, *(("Mars", "planet"), ("Moon", "satellite"))[w],
             time.time() + 6.0, seconds) for w in range(n_writers)]
    load = _load()
    with ctx.Pool(n_writers) as pool:
        done = pool.map(_run, plan)
    rows = sum(n for n, _ in done)
    wall = max(t for _, t in done)
    return {"rows": rows, "seconds": round(wall, 1), "rows_per_s": round(rows / wall),
            "load_before": load["load_average"], "load_after": _load()["load_average"]}


def bench_archive(min_seconds: float = MIN_SECONDS, repeats: int = REPEATS,
                  stages: tuple[str, ...] = tuple(STAGES)) -> dict[str, Any]:
    """Indexed ingest into the partitioned ``epnml.landforms`` of the bench instance: the
    breakdown (``STAGES``, one process; every stage but ``writer`` rolls its granules back)
    and ``write_granule`` by 1 writer, then 2 writers in parallel processes into different
    partitions (Mars, Moon); granules of 10,000 SIMULATED rows with polygons; each run at
    least ``min_seconds``, ``repeats`` rounds with the stages interleaved, medians."""
    import psycopg

    _provision()
    out: dict[str, Any] = {
        "data": "SIMULATED landform rows with polygons, granules of 10,000 (4 generated "
                "granules per process, re-labelled for each use)",
        "baseline_rows_per_s": ISSUE_INGEST_ROWS_PER_S,
        "baseline": "issue #17: indexed ingest with polygons, one writer",
        "min_seconds_per_run": min_seconds, "repeats": repeats, "stages": dict(STAGES)}
    with psycopg.connect(_bench_dsn(), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM epnml.landforms").fetchone()
        out["rows_in_table_before"] = int(row[0]) if row else 0
        migrations = conn.execute("SELECT max(name) FROM epnml.schema_migrations"
                                  ).fetchone()
        out["last_migration"] = migrations[0] if migrations else None
        for table in ("bench_copy_only", "bench_copy_gist"):
            conn.execute(f"DROP TABLE IF EXISTS epnml.{table}")
            conn.execute(f"CREATE TABLE epnml.{table} (LIKE epnml.landforms INCLUDING DEFAULTS)")
        conn.execute("CREATE INDEX ON epnml.bench_copy_gist USING gist (s_region)")
    ctx = multiprocessing.get_context("spawn")
    runs: dict[str, list[dict[str, Any]]] = {}
    cases = [(s, 1) for s in stages] + ([("writer", 2)] if "writer" in stages else [])
    try:
        for rep in range(repeats):
            for stage, n_writers in cases:
                key = stage if stage != "writer" else f"writers_{n_writers}"
                runs.setdefault(key, []).append(_measure(ctx, stage, n_writers, rep,
                                                         min_seconds))
    finally:
        with psycopg.connect(_bench_dsn(), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS epnml.bench_copy_only, epnml.bench_copy_gist")
            # the writer's rows go (bench rows are never served): the table keeps the
            # partitions benchmark's rows only. Owner's cleanup; no row is superseded here.
            conn.execute("DELETE FROM epnml.landforms WHERE ml_run_id <> 'scale'"
                         " AND pipeline = 'bench'")
    for key, measured in runs.items():
        median = statistics.median(r["rows_per_s"] for r in measured)
        out[key] = {"rows_per_s": round(median),
                    "ratio_to_baseline": round(median / ISSUE_INGEST_ROWS_PER_S, 2),
                    "runs": measured}
    if "writers_1" in out and "writers_2" in out:
        out["scaling_1_to_2"] = round(out["writers_2"]["rows_per_s"]
                                      / out["writers_1"]["rows_per_s"], 2)
    if "copy_spatial_gist_ceiling" in out and "writers_1" in out:
        out["writers_1_of_ceiling"] = round(out["writers_1"]["rows_per_s"]
                                            / out["copy_spatial_gist_ceiling"]["rows_per_s"], 2)
    out["goal"] = "indexed ingest >= 1.5x the baseline (issue #17)"
    return out


def _committed(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def bench_scale() -> dict[str, Any]:
    """The issue's figures from the committed results, beside its goals and baselines."""
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), **_load()},
        "date": datetime.now().isoformat(timespec="seconds"),
        "source": f"committed results in {RESULTS_DIR.relative_to(REPO_ROOT)}/ (each with "
                  "its own date and load); this command measures nothing itself",
    }
    figures: dict[str, Any] = {}
    parts = _committed("partitions")
    if parts is None:
        figures["store"] = "not measured"
    else:
        tap = parts["partitions"]["tap"] if "partitions" in parts else parts["tap"]
        info = parts.get("partitions", parts)
        figures["store"] = {
            "rows": info["rows"], "date": parts.get("date"),
            "tap_floor_p50_ms": tap["floor"]["p50_ms"],
            **{f"tap_{q}_ratio_to_floor": tap[q]["ratio_to_floor"] for q in SCALE_QUERIES},
            "total_bytes_per_row": info["total_bytes_per_row"],
            "granule_uids_bytes_per_row": info.get("granule_uids_bytes_per_row"),
            "vacuum_analyze_s": info["vacuum_analyze_s"],
            "goal": "each ratio <= 1.5"}
    arch = _committed("archive")
    if arch is None:
        figures["ingest"] = "not measured"
    else:
        info = arch.get("archive", arch)
        figures["ingest"] = {
            "date": arch.get("date"),
            "writers_1_rows_per_s": info["writers_1"]["rows_per_s"],
            "writers_2_rows_per_s": info["writers_2"]["rows_per_s"],
            "ratio_to_baseline": info["writers_2"]["ratio_to_baseline"],
            "baseline_rows_per_s": ISSUE_INGEST_ROWS_PER_S, "goal": "ratio >= 1.5"}
    for name, key, goal in (("previews", "previews", "p95 <= 1 s at 20 clients"),
                            ("mission", "mission", ">= 1.7x 1 -> 2 workers; < 30 min"),
                            # every catalogue orbit, 2 workers (`--rows 4080 --workers 2`)
                            ("mission-whole", "mission", "< 30 min")):
        data = _committed(name)
        # Earlier runs of these are in docs/benchmarks.md, but a figure is only taken
        # from a committed result file: none, none reported.
        figures[name] = (f"no committed result (docs/bench/{name}.json): see "
                        "docs/benchmarks.md for earlier runs") if data is None else {
            "date": data.get("date"), "results": data.get(key, data), "goal": goal}
    out["figures"] = figures
    return out


def run_scale_bench(what: str, rows: int | None = None, output: Path | None = None) -> int:
    """``epnml bench partitions|archive|scale``: the JSON with the machine and date."""
    results = results_header()
    if what == "partitions":
        results["partitions"] = bench_partitions(rows or 10_000_000)
    elif what == "archive":
        results["archive"] = bench_archive()
    elif what == "scale":
        results["scale"] = bench_scale()
    else:
        raise ValueError(f"unknown scale benchmark {what!r}: partitions, archive or scale")
    return emit_results(results, output)
