"""Bulk writer: stage rows into a product table with COPY, one transaction per granule.

Versioning rule (per source granule = ``obs_id`` and pipeline):
re-running with the same model version replaces that version's rows (keeping
their original ``creation_date``); a different version marks the current rows
``superseded_at`` — they stay in the store and leave the ``epn_core`` view.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from epnml.ingest.stage import ModelInfo, StageOutput
from epnml.schemas.products import Product
from psycopg import sql
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class WriteResult:
    n_rows: int
    n_replaced: int
    n_superseded: int


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def copy_rows(
    cur: psycopg.Cursor, product: Product, rows: Sequence[dict[str, Any]]
) -> int:
    """COPY rows (dicts keyed by column name) into the product's storage table.

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
    schema, table = product.storage_table.split(".")
    stmt = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
        sql.Identifier(schema), sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(n) for n in names),
    )
    with cur.copy(stmt) as copy:
        for row in rows:
            copy.write_row([row.get(n) for n in names])
    return len(rows)


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
) -> WriteResult:
    """Write one granule's rows in a single transaction (all or nothing)."""
    obs_id = output.granule.granule_id
    for row in output.rows:
        if row.get("obs_id") != obs_id or row.get("ml_model_version") != model.version:
            raise ValueError(
                f"{output.granule.label}: row {row.get('granule_uid')} does not belong to "
                f"granule {obs_id} / model version {model.version}"
            )
        row["pipeline"] = pipeline
    table = sql.SQL(product.storage_table)
    with conn.transaction(), conn.cursor() as cur:
        # Serialise writers of the same source granule (parallel ingests, re-inference).
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{pipeline}:{obs_id}",))
        cur.execute(
            sql.SQL(
                "DELETE FROM {} WHERE pipeline = %s AND obs_id = %s AND ml_model_version = %s"
                " RETURNING granule_uid, creation_date"
            ).format(table),
            (pipeline, obs_id, model.version),
        )
        first_seen: dict[str, datetime] = dict(cur.fetchall())
        now = _now()
        cur.execute(
            sql.SQL(
                "UPDATE {} SET superseded_at = %s WHERE pipeline = %s AND obs_id = %s"
                " AND ml_model_version <> %s AND superseded_at IS NULL"
            ).format(table),
            (now, pipeline, obs_id, model.version),
        )
        n_superseded = cur.rowcount
        for row in output.rows:
            if row["granule_uid"] in first_seen:
                row["creation_date"] = first_seen[row["granule_uid"]]
        if data_dir is not None and output.files:
            write_files(data_dir, output.files)
        n_rows = copy_rows(cur, product, output.rows)
    return WriteResult(n_rows=n_rows, n_replaced=len(first_seen), n_superseded=n_superseded)


def bulk_load(
    conn: psycopg.Connection, product: Product, batches: Iterable[Sequence[dict[str, Any]]]
) -> int:
    """Load many new rows fast: drop the secondary indexes, COPY, rebuild them, in one transaction.

    For initial loads and benchmarks only: it holds an exclusive lock on the table
    while it runs, and every index is back in place when it commits.
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
            cur.execute(definition)
        cur.execute(sql.SQL("ANALYZE {}").format(sql.SQL(product.storage_table)))
    return n
