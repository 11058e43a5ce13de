"""Compare the product rows of two demo databases made by demo_rows.sh, column by column.

    python tests/tools/demo_rows_compare.py OLD NEW

Prints, per product table, the row count and every column whose values differ. Only the
columns a run stamps (creation/modification/release date, ml_run_id) may differ between
two ingests of the same inputs; exit status 1 when any other column differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg

RUN_STAMPED = {"creation_date", "modification_date", "release_date", "ml_run_id"}


def _rows(name: str, table: str) -> tuple[list[str], list[tuple[object, ...]]]:
    dsn = Path(f"/var/tmp/demo-rows-dsn-{name}").read_text().strip()
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(f"SELECT * FROM epnml.{table} ORDER BY granule_uid")
        return [d.name for d in cur.description or []], cur.fetchall()


def main(old: str, new: str) -> int:
    bad = False
    for table in ("events", "crossings", "units", "landforms"):
        names_old, rows_old = _rows(old, table)
        names_new, rows_new = _rows(new, table)
        if names_old != names_new or len(rows_old) != len(rows_new):
            print(f"{table}: columns or row counts differ ({len(rows_old)} vs {len(rows_new)})")
            bad = True
            continue
        differing: dict[str, int] = {}
        for row_old, row_new in zip(rows_old, rows_new, strict=True):
            for name, a, b in zip(names_old, row_old, row_new, strict=True):
                if a != b:
                    differing[name] = differing.get(name, 0) + 1
        print(f"{table}: {len(rows_old)} rows; columns differing: {differing or 'none'}")
        bad |= bool(set(differing) - RUN_STAMPED)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
