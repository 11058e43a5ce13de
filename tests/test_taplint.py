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
#: the most warnings taplint may report (13 before issue #18's examples fixes)
MAX_WARNINGS = 12
#: the warnings left, all from DaCHS 2.7 or Debian's STILTS 3.4.7 (docs/registry.md#taplint)
KNOWN_WARNINGS = {
    "W-CAP-CULF",  # DaCHS' custom ADQL feature type (extra-adql-keywords)
    "W-CAP-CPUL",  # DaCHS lists VOSI endpoints under /__system__/tap/run/
    "W-MDQ-CCAS",  # DaCHS' TAP_SCHEMA declares sourceRD, PostgreSQL answers sourcerd
    "W-UPL-YAR1",  # DaCHS writes arraysize="1" in upload results
    "W-EXA-EXVC",  # DaCHS' examples vocab, kept for TOPCAT 4.3-4.4
    "W-EXA-EXVL",  # STILTS 3.4.7 parses examples as ADQL 2.0: no UNION (ADQL 2.1)
}


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
    errors, warnings = parse_totals(report)
    error_lines = [line for line in report.splitlines() if line.startswith("E-")]
    assert errors == 0, "\n".join(error_lines)
    warning_lines = [line for line in report.splitlines() if line.startswith("W-")]
    assert len(warning_lines) == warnings
    assert warnings <= MAX_WARNINGS, "\n".join(warning_lines)
    unknown = [line for line in warning_lines if line[:10] not in KNOWN_WARNINGS]
    assert unknown == [], "\n".join(unknown)
