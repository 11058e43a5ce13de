"""Bulk writer: stage rows into a product table with COPY, one transaction per granule.

Granule identity (decided by the ingest runner before processing, recorded here in
``epnml.granule_sources`` in the same transaction as the rows): a granule is its source
content (sha256 of its files) and where it was read from (absolute resolved paths). The
stage's ``obs_id`` (from the file names) is kept when it is new, when it already belongs
to the same content, or when the same paths were ingested under it before (a changed file
at the same path is a reprocessed product: the same granule, whose new rows supersede
the old ones). Otherwise -- the ``obs_id`` belongs to a different content at a different
path, e.g. ``A/wind.csv`` then ``B/wind.csv`` -- the new granule becomes
``<obs_id>-<first 8 hex of its sha256>`` (:func:`resolve_obs_id`), so two different files
never overwrite each other.

Version rule (per ``pipeline`` + ``obs_id``): the current rows are those of the newest
version, comparing the base semantic version of ``ml_model_version`` (before ``+``,
:func:`version_key`); among versions with the same base (a version and its derived
``+param`` versions) the latest committed wins. Writing a version that is not older than
every current one supersedes the current rows (``superseded_at``); writing an older one
stores its rows already superseded (kept, not served) unless ``make_current`` is asked.

Nothing superseded is ever deleted. The only DELETE is of CURRENT rows of the SAME model
version computed from the SAME source (an identical re-run replaces its own rows, keeping
their first ``creation_date``). When a new row needs a ``granule_uid`` that a superseded
row holds (the primary key is ``granule_uid`` alone), the stored row keeps everything but
its id, which becomes ``<uid>~s<superseded_at>`` (archived); a re-run of an older version
from the same source whose rows are already stored superseded writes nothing new.

A stage's input series (``StageOutput.series``: the icme stage's solar wind) is stored in
the same transaction, keyed by the source's sha256 (:func:`store_series`): identical
content is stored once, whatever the number of re-ingests; nothing of it is deleted.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from epnml.ingest.stage import (
    SERIES_COLUMNS,
    Granule,
    ModelInfo,
    SolarWindSeries,
    StageOutput,
    printable,
)
from epnml.schemas.products import Product


@dataclass(frozen=True)
class GranuleSource:
    """Where a granule's rows come from: its files' absolute paths, sizes and content."""

    #: absolute resolved paths, printable (non-UTF-8 bytes escaped), in granule order.
    paths: tuple[str, ...]
    sizes: tuple[int, ...]
    #: sha256 of the files' sha256 digests in granule order (the granule's content).
    sha256: str


def describe_source(granule: Granule, chunk: int = 1 << 20) -> GranuleSource:
    """Hash the granule's files (streamed: no file is read into memory whole)."""
    digests, sizes, paths = [], [], []
    for path in granule.paths:
        resolved = Path(path).resolve()
        h = hashlib.sha256()
        with open(resolved, "rb") as handle:
            while block := handle.read(chunk):
                h.update(block)
        digests.append(h.hexdigest())
        sizes.append(os.stat(resolved).st_size)
        paths.append(printable(resolved))
    total = hashlib.sha256("\n".join(digests).encode()).hexdigest()
    return GranuleSource(tuple(paths), tuple(sizes), total)


def resolve_obs_id(cur: psycopg.Cursor[Any], pipeline: str, obs_id: str,
                   source: GranuleSource, claimed: dict[str, str] | None = None) -> str:
    """The obs_id this source's rows get (the identity rule of the module docstring).

    ``claimed`` maps the obs_ids already given in this run to their sha256, so two files
    of one run with the same name are told apart before either is written.
    """
    claimed = claimed if claimed is not None else {}
    known = cur.execute(
        "SELECT obs_id FROM epnml.granule_sources WHERE pipeline = %s AND paths = %s"
        " AND (obs_id = %s OR obs_id LIKE %s) ORDER BY last_seen DESC LIMIT 1",
        (pipeline, list(source.paths), obs_id, obs_id.replace("_", r"\_") + "-%")).fetchone()
    if known is not None and claimed.get(known[0], source.sha256) == source.sha256:
        return str(known[0])
    for candidate in (obs_id, f"{obs_id}-{source.sha256[:8]}", f"{obs_id}-{source.sha256[:16]}"):
        if candidate in claimed:
            if claimed[candidate] == source.sha256:
                return candidate
            continue
        owners = cur.execute(
            "SELECT sha256, paths FROM epnml.granule_sources WHERE pipeline = %s AND obs_id = %s",
            (pipeline, candidate)).fetchall()
        if not owners or any(sha == source.sha256 or list(paths) == list(source.paths)
                             for sha, paths in owners):
            return candidate
    raise ValueError(f"{', '.join(source.paths)}: no free obs_id for {obs_id!r} "
                     f"(sha256 {source.sha256})")


_VERSION_PART = re.compile(r"[.\-_]")


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Order of base semantic versions: ``1.10.0`` > ``1.9.2`` > ``1.9`` (= ``1.9.0``).

    The part after ``+`` (derived versions, ``1.0.0+threshold-0.7``) is ignored: versions
    with the same base are ordered by commit time instead.
    """
    parts = [(0, int(p), "") if p.isdigit() else (1, 0, p)
             for p in _VERSION_PART.split(version.split("+", 1)[0]) if p]
    while parts and parts[-1] == (0, 0, ""):
        parts.pop()
    return tuple(parts)


def is_older(version: str, than: str) -> bool:
    """True when ``version``'s base is older than ``than``'s (never for the same base)."""
    return version_key(version) < version_key(than)


@dataclass(frozen=True)
class WriteResult:
    n_rows: int
    #: current rows of the same version and source replaced (deleted, re-written).
    n_replaced: int
    #: current rows of other versions (or another source) marked superseded.
    n_superseded: int
    #: False: the rows were stored already superseded (an older version, not asked).
    current: bool = True
    #: new rows not written because the same row (same version, same source) is stored.
    n_kept: int = 0
    #: superseded rows whose granule_uid was needed by a new row (renamed ``uid~s...``).
    n_archived: int = 0
    #: input-series samples written (0: none, or the same content's series was stored).
    n_samples: int = 0


#: called inside the granule's transaction after the rows (run bookkeeping).
Bookkeeping = Callable[[psycopg.Cursor[Any], "WriteResult"], None]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def copy_rows(
    cur: psycopg.Cursor, product: Product, rows: Sequence[dict[str, Any]],
    table: str | None = None,
) -> int:
    """COPY rows (dicts keyed by column name) into the product's storage table, or into
    ``table``, one of its partitions (:func:`leaf_groups`).

    Only the columns the rows carry are sent (the others default to NULL): rows
    fill about a third of the EPN-TAP columns, and COPY time scales with fields.
    """
    if not rows:
        return 0
    known = [c.name for c in product.columns()]
    present: set[str] = set().union(*(row.keys() for row in rows))
    unknown = present - set(known)
    if unknown:
        raise ValueError(f"{product.family}: rows carry unknown columns {sorted(unknown)}")
    names = [n for n in known if n in present]
    schema, name = (table or product.storage_table).split(".")
    stmt = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
        sql.Identifier(schema), sql.Identifier(name),
        sql.SQL(", ").join(sql.Identifier(n) for n in names),
    )
    with cur.copy(stmt) as copy:
        for row in rows:
            copy.write_row([row.get(n) for n in names])
    return len(rows)


def leaf_groups(cur: psycopg.Cursor[Any], product: Product, obs_id: str,
                rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A granule's rows grouped by the leaf partition each belongs to, so that each group
    is COPYed into its partition directly: PostgreSQL inserts a COPY into a partitioned
    table with transition-table triggers (the granule_uids registry) row by row, and into
    a partition in batches. The partitions carry the same granule_uids triggers
    (sql/0024), and PostgreSQL checks every row against its partition's bounds, so a row
    in the wrong group fails the granule instead of landing in the wrong place. Returns
    ``{storage_table: rows}`` (the parent routes) when the table is not partitioned or a
    computed partition does not exist in this database.
    """
    from epnml.schemas.partitions import leaf_of

    if product.partitioning is None or not rows:
        return {product.storage_table: list(rows)}
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(leaf_of(product, row.get("target_name") or "",
                                  row.get("time_min")), []).append(row)
    hash_parts = product.partitioning.hash_parts
    if not product.partitioning.years:
        # every row of a granule has its obs_id: one hash part per target
        found = {}
        for parent in groups:
            if parent.endswith("__default"):
                found[parent] = parent
                continue
            part = cur.execute(
                "SELECT k FROM generate_series(0, %s - 1) AS k"
                " WHERE satisfies_hash_partition(%s::regclass::oid, %s, k, %s::text)",
                (hash_parts, parent, hash_parts, obs_id)).fetchone()
            if part is None:
                return {product.storage_table: list(rows)}
            found[parent] = f"{parent}__h{part[0]}"
        groups = {found[parent]: group for parent, group in groups.items()}
    names = list(groups)
    existing = cur.execute(
        "SELECT count(*) FROM pg_class WHERE oid = ANY(SELECT to_regclass(n) FROM"
        " unnest(%s::text[]) AS n) AND relkind = 'r' AND relispartition", (names,)).fetchone()
    if existing is None or existing[0] != len(names):
        return {product.storage_table: list(rows)}
    return groups


def register_model(conn: psycopg.Connection, model: ModelInfo, card: dict[str, Any]) -> None:
    """Record the model version (idempotent); rows reference it by name and version."""
    conn.execute(
        "INSERT INTO epnml.model_versions (model_name, model_version, weights_sha256, card)"
        " VALUES (%s, %s, %s, %s::jsonb) ON CONFLICT (model_name, model_version) DO NOTHING",
        (model.name, model.version, model.sha256, Jsonb(card)),
    )


def write_files(data_dir: Path, files: dict[str, bytes]) -> None:
    """Write quicklooks atomically (temp file + rename) so a reader never sees half a PNG."""
    for rel, content in files.items():
        target = data_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)


def write_granule(
    conn: psycopg.Connection,
    product: Product,
    pipeline: str,
    output: StageOutput,
    model: ModelInfo,
    data_dir: Path | None = None,
    *,
    source: GranuleSource | None = None,
    run_id: str | None = None,
    make_current: bool = False,
    bookkeeping: Bookkeeping | None = None,
) -> WriteResult:
    """Write one granule's rows in a single transaction (all or nothing).

    The version and identity rules are in the module docstring. ``source`` (the files
    the rows were computed from) is recorded with the rows; without it the rows count
    as coming from the same source as the version's previous rows. ``bookkeeping`` runs
    in the same transaction, so run records and rows commit together.
    """
    obs_id = output.granule.granule_id
    for row in output.rows:
        if row.get("obs_id") != obs_id or row.get("ml_model_version") != model.version:
            raise ValueError(
                f"{output.granule.label}: row {row.get('granule_uid')} does not belong to "
                f"granule {obs_id} / model version {model.version}"
            )
        row["pipeline"] = pipeline
    table = sql.SQL(product.storage_table)
    key = (pipeline, obs_id)
    with conn.transaction(), conn.cursor() as cur:
        # Serialise writers of the same source granule (parallel ingests, re-inference).
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{pipeline}:{obs_id}",))
        now = _now()
        current_versions = [v for (v,) in cur.execute(
            sql.SQL("SELECT DISTINCT ml_model_version FROM {} WHERE pipeline = %s"
                    " AND obs_id = %s AND superseded_at IS NULL").format(table), key)]
        becomes_current = make_current or not any(
            is_older(model.version, v) for v in current_versions)
        previous = cur.execute(
            "SELECT sha256 FROM epnml.granule_versions WHERE pipeline = %s AND obs_id = %s"
            " AND model_version = %s", (*key, model.version)).fetchone()
        same_source = (source is None or previous is None or previous[0] is None
                       or previous[0] == source.sha256)
        first_seen: dict[str, datetime] = {}
        if same_source:
            # the one DELETE: this version's CURRENT rows from this same source
            cur.execute(
                sql.SQL("DELETE FROM {} WHERE pipeline = %s AND obs_id = %s"
                        " AND ml_model_version = %s AND superseded_at IS NULL"
                        " RETURNING granule_uid, creation_date").format(table),
                (*key, model.version))
            first_seen = dict(cur.fetchall())
        n_superseded = 0
        if becomes_current:
            cur.execute(
                sql.SQL("UPDATE {} SET superseded_at = %s WHERE pipeline = %s AND obs_id = %s"
                        " AND superseded_at IS NULL").format(table), (now, *key))
            n_superseded = cur.rowcount
        rows, n_kept, n_archived = _resolve_collisions(
            cur, product, output.rows, keep_stored=not becomes_current and same_source)
        for row in rows:
            if row["granule_uid"] in first_seen:
                row["creation_date"] = first_seen[row["granule_uid"]]
            row["superseded_at"] = None if becomes_current else now
        if data_dir is not None and output.files:
            write_files(data_dir, output.files)
        n_rows = sum(copy_rows(cur, product, group, table=leaf)
                     for leaf, group in leaf_groups(cur, product, obs_id, rows).items())
        cur.execute(
            "INSERT INTO epnml.granule_versions (pipeline, obs_id, model_version, sha256,"
            " run_id, committed_at, n_rows, made_current) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)"
            " ON CONFLICT (pipeline, obs_id, model_version) DO UPDATE SET"
            " sha256 = EXCLUDED.sha256, run_id = EXCLUDED.run_id,"
            " committed_at = EXCLUDED.committed_at, n_rows = EXCLUDED.n_rows,"
            " made_current = EXCLUDED.made_current",
            (*key, model.version, source.sha256 if source else None, run_id, now,
             n_rows + n_kept, becomes_current))
        if source is not None:
            cur.execute(
                "INSERT INTO epnml.granule_sources (pipeline, obs_id, sha256, paths, sizes,"
                " first_run_id, last_run_id, first_seen, last_seen)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                " ON CONFLICT (pipeline, obs_id, sha256, paths) DO UPDATE SET"
                " sizes = EXCLUDED.sizes, last_run_id = EXCLUDED.last_run_id,"
                " last_seen = EXCLUDED.last_seen",
                (*key, source.sha256, list(source.paths), list(source.sizes),
                 run_id or "", run_id or "", now, now))
        n_samples = 0
        if output.series is not None and source is not None:
            n_samples = store_series(cur, pipeline, obs_id, source.sha256, output.series,
                                     run_id or "", now, current=becomes_current)
        result = WriteResult(n_rows=n_rows, n_replaced=len(first_seen),
                             n_superseded=n_superseded, current=becomes_current,
                             n_kept=n_kept, n_archived=n_archived, n_samples=n_samples)
        if bookkeeping is not None:
            bookkeeping(cur, result)
    return result


def store_series(cur: psycopg.Cursor[Any], pipeline: str, obs_id: str, sha256: str,
                 series: SolarWindSeries, run_id: str, now: datetime, *,
                 current: bool = True) -> int:
    """Store a granule's input series (in the caller's transaction); samples written.

    Series are keyed by the content sha256 of the granule's files: a series already
    stored (an identical re-ingest, another model version, a copy of the file) writes no
    sample. The granule -> series link records which series is the granule's current one:
    a changed file of the same granule supersedes the previous series (never deleted),
    as its rows supersede the previous rows; ``current=False`` (rows stored already
    superseded) stores the series superseded too.
    """
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"solarwind:{sha256}",))
    if current:
        cur.execute("UPDATE epnml.solarwind_granules SET superseded_at = %s WHERE pipeline = %s"
                    " AND obs_id = %s AND sha256 <> %s AND superseded_at IS NULL",
                    (now, pipeline, obs_id, sha256))
    n = 0
    if cur.execute("SELECT 1 FROM epnml.solarwind_series WHERE sha256 = %s",
                   (sha256,)).fetchone() is None:
        frame = series.frame.loc[:, list(SERIES_COLUMNS)]
        times = pd.DatetimeIndex(frame.index)
        cur.execute(
            "INSERT INTO epnml.solarwind_series (sha256, spacecraft, cadence_s, simulated,"
            " n_samples, time_min, time_max, first_run_id, stored_at)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (sha256, series.spacecraft, series.cadence_s, series.simulated, len(frame),
             times.min().to_pydatetime() if len(times) else None,
             times.max().to_pydatetime() if len(times) else None, run_id, now))
        values = frame.to_numpy(dtype="float64")
        finite = np.isfinite(values)
        with cur.copy("COPY epnml.solarwind_samples (sha256, time, "
                      f"{', '.join(SERIES_COLUMNS)}) FROM STDIN") as copy:
            for when, row, ok in zip(times.to_pydatetime(), values.tolist(), finite,
                                     strict=True):
                copy.write_row([sha256, when, *(v if good else None
                                                for v, good in zip(row, ok, strict=True))])
        n = len(frame)
    cur.execute(
        "INSERT INTO epnml.solarwind_granules (pipeline, obs_id, sha256, first_run_id,"
        " last_run_id, first_seen, last_seen, superseded_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)"
        " ON CONFLICT (pipeline, obs_id, sha256) DO UPDATE SET last_run_id ="
        " EXCLUDED.last_run_id, last_seen = EXCLUDED.last_seen, superseded_at ="
        " CASE WHEN %s THEN NULL ELSE epnml.solarwind_granules.superseded_at END",
        (pipeline, obs_id, sha256, run_id, run_id, now, now, None if current else now,
         current))
    return n


def _resolve_collisions(cur: psycopg.Cursor[Any], product: Product,
                        rows: list[dict[str, Any]], keep_stored: bool
                        ) -> tuple[list[dict[str, Any]], int, int]:
    """New rows whose granule_uid a stored (superseded) row holds.

    ``keep_stored``: the new rows are an older version's re-run from the same source, so
    a stored row with the same id IS that row: the stored one stays, the new one is not
    written. Otherwise the stored row is archived under ``<uid>~s<superseded_at>``.
    A current row of another granule with the same id is an error (the stage's ids clash).
    """
    if not rows:
        return rows, 0, 0
    table = sql.SQL(product.storage_table)
    uids = [r["granule_uid"] for r in rows]
    if product.partitioning is not None:
        # the registry holds every stored uid of a partitioned table (its triggers): one
        # index probe per row instead of one per row and partition; a uid of another
        # family is left to the registry's triggers to refuse at the COPY
        uids = [uid for (uid,) in cur.execute(
            "SELECT granule_uid FROM epnml.granule_uids WHERE granule_uid = ANY(%s)"
            " AND family = %s", (uids, product.family))]
        if not uids:
            return rows, 0, 0
    stored = cur.execute(
        sql.SQL("SELECT granule_uid, superseded_at, datalink_url FROM {}"
                " WHERE granule_uid = ANY(%s)").format(table), (uids,)).fetchall()
    if not stored:
        return rows, 0, 0
    live = [uid for uid, superseded, _ in stored if superseded is None]
    if live:
        raise ValueError(f"granule_uid {live[0]} is already a current row of another granule")
    if keep_stored:
        taken = {uid for uid, _, _ in stored}
        return [r for r in rows if r["granule_uid"] not in taken], len(taken), 0
    for uid, superseded, link in stored:
        archived = f"{uid}~s{superseded:%Y%m%dT%H%M%S%f}"
        if link:
            link = link.replace(quote(uid, safe=""), quote(archived, safe=""))
        cur.execute(sql.SQL("UPDATE {} SET granule_uid = %s, datalink_url = %s"
                            " WHERE granule_uid = %s").format(table), (archived, link, uid))
    return rows, 0, len(stored)


def whole_index(definition: str) -> str:
    """An index definition of ``pg_indexes`` that builds on every partition: PostgreSQL
    writes a partitioned table's indexes as ``ON ONLY``, which would build none."""
    return definition.replace(" ON ONLY ", " ON ", 1)


def bulk_load(
    conn: psycopg.Connection, product: Product, batches: Iterable[Sequence[dict[str, Any]]]
) -> int:
    """Load many new rows fast: drop the secondary indexes, COPY, rebuild them, in one transaction.

    For initial loads and benchmarks only: it holds an exclusive lock on the table
    while it runs, and every index is back in place when it commits. It only adds rows:
    nothing is deleted or superseded (a row whose granule_uid exists fails the load).
    """
    schema, table = product.storage_table.split(".")
    n = 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s"
            " AND indexname <> %s",
            (schema, table, f"{product.family}_pk"),
        )
        indexes = cur.fetchall()
        for name, _ in indexes:
            cur.execute(sql.SQL("DROP INDEX {}.{}").format(sql.Identifier(schema),
                                                           sql.Identifier(name)))
        for batch in batches:
            n += copy_rows(cur, product, batch)
        for _, definition in indexes:
            cur.execute(whole_index(definition))
        cur.execute(sql.SQL("ANALYZE {}").format(sql.SQL(product.storage_table)))
    return n


def granules_of_files(conn: psycopg.Connection, pipeline: str, paths: Sequence[Path]
                      ) -> list[str]:
    """The obs_ids of ``pipeline`` whose recorded sources include one of ``paths``."""
    resolved = [printable(str(Path(p).resolve())) for p in paths]
    found = conn.execute(
        "SELECT DISTINCT obs_id FROM epnml.granule_sources WHERE pipeline = %s"
        " AND paths && %s::text[] ORDER BY obs_id", (pipeline, resolved)).fetchall()
    return [obs_id for (obs_id,) in found]


def retire_granules(conn: psycopg.Connection, product: Product, pipeline: str,
                    obs_ids: Sequence[str], reason: str) -> dict[str, int]:
    """Supersede the current rows of these granules without a newer version (kept,
    never deleted) and record why in ``epnml.retirements``; one transaction per granule.
    Returns the number of rows retired per obs_id (0: nothing current, nothing recorded)."""
    if not reason.strip():
        raise ValueError("a retirement needs a reason (--reason)")
    table = sql.SQL(product.storage_table)
    retired: dict[str, int] = {}
    for obs_id in obs_ids:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{pipeline}:{obs_id}",))
            now = _now()
            cur.execute(sql.SQL("UPDATE {} SET superseded_at = %s WHERE pipeline = %s"
                                " AND obs_id = %s AND superseded_at IS NULL").format(table),
                        (now, pipeline, obs_id))
            retired[obs_id] = cur.rowcount
            if cur.rowcount:
                cur.execute("INSERT INTO epnml.retirements (pipeline, obs_id, retired_at,"
                            " reason, n_rows) VALUES (%s, %s, %s, %s, %s)",
                            (pipeline, obs_id, now, reason.strip(), retired[obs_id]))
    return retired
