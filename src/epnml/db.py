"""Database access: connections, the ordered ``sql/`` migrations and the run sweeper."""

from __future__ import annotations

import os
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from epnml.config import Settings, project_dir, read_dsn_file

MIGRATIONS_DIR = project_dir("sql")


def connect(settings: Settings) -> psycopg.Connection:
    """Autocommit connection: each ``conn.transaction()`` block is then a real transaction
    (not a savepoint of an implicit one), which the one-transaction-per-granule rule needs."""
    # The secrets file is read again here when the settings were made before it existed
    # (a service started before provisioning, or a rotated password).
    dsn = settings.dsn or read_dsn_file(settings.dsn_file)
    if not dsn:
        raise RuntimeError(f"no storage database: EPNML_DSN is not set and {settings.dsn_file} is "
                           "missing or unreadable (provision the stack: make run)")
    try:
        return psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"cannot connect to the storage database ({dsn.split('password')[0]}...): "
            f"{exc}. Is the stack provisioned (make run)?"
        ) from exc


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    files = sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    if not files:
        raise RuntimeError(f"no migrations found in {directory}")
    return files


def migrate(settings: Settings, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; return their names."""
    applied: list[str] = []
    with connect(settings) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS epnml.schema_migrations ("
            " name text PRIMARY KEY,"
            " applied_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'))"
        )
        conn.commit()
        done = {r[0] for r in conn.execute("SELECT name FROM epnml.schema_migrations")}
        for path in migration_files(directory):
            if path.name in done:
                continue
            with conn.transaction():
                conn.execute(path.read_text())
                conn.execute("INSERT INTO epnml.schema_migrations (name) VALUES (%s)", (path.name,))
            applied.append(path.name)
    return applied


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_start(pid: int) -> int | None:
    """Start time of a process (clock ticks since boot), None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (2nd field) may hold spaces and parentheses: split after the last ')'
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_identity() -> tuple[str, str, int, int | None]:
    """(hostname, boot id, pid, start time) of this process, recorded with its runs."""
    pid = os.getpid()
    return socket.gethostname(), _boot_id(), pid, _proc_start(pid)


def _alive(hostname: str | None, boot_id: str | None, pid: int | None,
           proc_start: int | None) -> bool | None:
    """Whether the run's process still lives; None when this host cannot tell."""
    if hostname is None or pid is None or hostname != socket.gethostname():
        return None
    if boot_id and boot_id != _boot_id():
        return False  # the machine rebooted since
    start = _proc_start(pid) if sys.platform.startswith("linux") else None
    if sys.platform.startswith("linux"):
        return start is not None and (proc_start is None or start == proc_start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: runs this host cannot check (another host, or recorded before pids were) are closed
#: when their last heartbeat is older than this.
DEFAULT_STALE = timedelta(hours=24)


def sweep_runs(conn: psycopg.Connection, stale_after: timedelta = DEFAULT_STALE
               ) -> list[tuple[str, int, int, int]]:
    """Close unfinished runs whose process is gone as ``aborted``, with the committed counts.

    The counts come from ``epnml.granule_runs`` (committed with each granule's rows).
    Returns (run_id, n_granules, n_failed, n_rows) of each run closed.
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    candidates = conn.execute(
        "SELECT run_id, hostname, boot_id, pid, proc_start,"
        " COALESCE(heartbeat_at, started_at) FROM epnml.runs WHERE finished_at IS NULL"
    ).fetchall()
    closed: list[tuple[str, int, int, int]] = []
    for run_id, hostname, boot_id, pid, proc_start, heartbeat in candidates:
        alive = _alive(hostname, boot_id, pid, proc_start)
        if alive is None:
            alive = heartbeat >= now - stale_after
        if alive:
            continue
        with conn.transaction():
            row = conn.execute(
                "UPDATE epnml.runs r SET status = 'aborted', finished_at = %s,"
                " n_granules = g.n, n_failed = g.n_failed, n_rows = g.n_rows"
                " FROM (SELECT count(*) AS n,"
                "       count(*) FILTER (WHERE status = 'failed') AS n_failed,"
                "       COALESCE(sum(n_rows), 0) AS n_rows"
                "       FROM epnml.granule_runs WHERE run_id = %s) AS g"
                " WHERE r.run_id = %s AND r.finished_at IS NULL"
                " RETURNING r.n_granules, r.n_failed, r.n_rows",
                (now, run_id, run_id)).fetchone()
        if row is not None:
            closed.append((run_id, int(row[0]), int(row[1]), int(row[2])))
    return closed


def partition_rows(conn: psycopg.Connection) -> list[tuple[str, str, str, int, bool]]:
    """Every leaf partition of the product tables: (table, partition, bound, rows, is a
    DEFAULT partition). Rows are counted exactly (a count per partition, not estimates)."""
    from psycopg import sql

    from epnml.schemas.products import PRODUCTS

    out: list[tuple[str, str, str, int, bool]] = []
    for product in PRODUCTS.values():
        leaves = conn.execute(
            "SELECT t.relid::regclass::text, pg_get_expr(c.relpartbound, c.oid)"
            " FROM pg_partition_tree(%s::regclass) t JOIN pg_class c ON c.oid = t.relid"
            " WHERE t.isleaf ORDER BY t.relid::regclass::text",
            (product.storage_table,)).fetchall()
        for name, bound in leaves:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.SQL(name))).fetchone()
            bound = bound or ""  # an unpartitioned table is its own (only) leaf
            out.append((product.storage_table, name, bound, int(row[0]) if row else 0,
                        bound == "DEFAULT"))
    return out


def default_partition_warnings(rows: list[tuple[str, str, str, int, bool]]) -> list[str]:
    """Why a DEFAULT partition holding rows needs attention: its rows are outside the
    partitioning's targets or years (add partitions: Product.partitioning, a migration)."""
    return [f"{name} holds {n} rows: target_name or time_min outside the partitions of "
            f"{table} (queries on them scan the DEFAULT partition; see docs/scale.md)"
            for table, name, _, n, is_default in rows if is_default and n]
