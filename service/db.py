"""Database access: connections and the ordered ``sql/`` migrations."""

from __future__ import annotations

from pathlib import Path

import psycopg
from epnml.config import REPO_ROOT, Settings

MIGRATIONS_DIR = REPO_ROOT / "sql"


def connect(settings: Settings) -> psycopg.Connection:
    """Autocommit connection: each ``conn.transaction()`` block is then a real transaction
    (not a savepoint of an implicit one), which the one-transaction-per-granule rule needs."""
    if not settings.dsn:
        raise RuntimeError(f"no storage database: EPNML_DSN is not set and {settings.dsn_file} is "
                           "missing or unreadable (provision the stack: make run)")
    try:
        return psycopg.connect(settings.dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"cannot connect to the storage database ({settings.dsn.split('password')[0]}...): "
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
