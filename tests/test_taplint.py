"""STILTS taplint against the local test service: any error fails.

taplint exits 0 even when it reports errors, so its totals line is parsed.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import Ingest

pytestmark = pytest.mark.stack

TOTALS = re.compile(r"Totals:\s+Errors:\s*(\d+);\s*Warnings:\s*(\d+)")


def parse_totals(report: str) -> tuple[int, int]:
    match = TOTALS.search(report)
    if match is None:
        raise ValueError("no 'Totals: Errors: N; Warnings: M' line in taplint output")
    return int(match.group(1)), int(match.group(2))


def test_parse_totals() -> None:
    assert parse_totals("x\nTotals: Errors: 3; Warnings: 10; Infos: 1\n") == (3, 10)
    with pytest.raises(ValueError):
        parse_totals("taplint crashed")


def test_taplint_has_no_errors(ingested_all: dict[str, Ingest]) -> None:
    if shutil.which("stilts") is None:
        pytest.fail("stilts is not installed (service/provision.sh install installs it)")
    proc = subprocess.run(
        ["stilts", "taplint", f"tapurl={ingested_all['icme'].stack.tap_url}", "maxtable=20"],
        capture_output=True, text=True, timeout=600,
    )
    report = proc.stdout + proc.stderr
    errors, _ = parse_totals(report)
    error_lines = [line for line in report.splitlines() if line.startswith("E-")]
    assert errors == 0, "\n".join(error_lines)
