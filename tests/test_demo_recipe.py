"""ingest/demo.sh: what each `epnml ingest` call of the demo gets (no database, no simulator).

A fake virtualenv records the calls: its ``epnml`` logs its arguments, its ``python``
prints a stand-in mosaic path. The simulators are skipped by their ``.generated`` markers,
so the demo's inputs are empty files named as the simulators name them.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _fake_venv(tmp: Path) -> tuple[Path, Path]:
    venv = tmp / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp / "calls.log"
    epnml = venv / "bin" / "epnml"
    epnml.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\n')
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "{tmp}/mosaic.tif"\n')
    epnml.chmod(0o755)
    python.chmod(0o755)
    return venv, log


def _demo_inputs(root: Path) -> None:
    sw = root / "epnml-demo"
    sw.mkdir(parents=True)
    for name in ("simulated_wind_20260101_20260225_10min.csv",
                 "simulated_wind_mfi_h0_20260101_20260225.cdf",
                 "simulated_wind_swe_h1_20260101_20260225.cdf",
                 "simulated_omni_hro_5min_20260101_20260225.lst",
                 "simulated_omni_hro_5min_20260101_20260225.fmt", "truth.csv", ".generated"):
        (sw / name).touch()
    for sub in ("epnml-demo-messenger", "epnml-demo-mascs", "epnml-demo-meteors",
                "epnml-demo-aurora"):
        (root / sub).mkdir()
        (root / sub / ".generated").touch()
    (root / "epnml-demo-mascs" / ".generated-2").touch()
    (root / "epnml-demo-mascs" / "simulated_mascs_grid.csv").touch()
    (root / "epnml-demo-meteors" / "simulated_meteors_1.csv").touch()
    for name in ("simulated_emus_20230601T000000_2026_000.fits",
                 "simulated_emus_20230601T000000_2026_000.png",
                 "simulated_emus_20230701T000000_2026_001.fits"):
        (root / "epnml-demo-aurora" / name).touch()
    lf = root / "epnml-demo-landforms"
    for sub in ("dtm", "ice"):
        (lf / sub).mkdir(parents=True)
    (lf / ".generated-3").touch()
    (lf / "dtm" / "a.tif").touch()
    (lf / "dtm" / "b.IMG").touch()
    (lf / "ice" / "c.tif").touch()


def test_demo_ingests_the_simulated_wind_once(tmp_path: Path) -> None:
    """One simulated wind, one granule: the CDF pair only (not also the CSV and OMNI copies)."""
    venv, log = _fake_venv(tmp_path)
    root = tmp_path / "dachs"
    _demo_inputs(root)
    env = {**os.environ, "EPNML_VENV": str(venv)}
    done = subprocess.run(["bash", str(REPO / "ingest" / "demo.sh"), str(root)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    icme = [c for c in calls if c.startswith("ingest icme ")]
    assert len(icme) == 1
    files = sorted(Path(a).name for a in icme[0].split()[3:])
    assert icme[0].split()[2] == "--no-progress"
    assert files == ["simulated_wind_mfi_h0_20260101_20260225.cdf",
                     "simulated_wind_swe_h1_20260101_20260225.cdf"]


def test_demo_ingests_the_simulated_aurora_images(tmp_path: Path) -> None:
    """The aurora step: every simulated FITS image and PNG chip, in one call."""
    venv, log = _fake_venv(tmp_path)
    root = tmp_path / "dachs"
    _demo_inputs(root)
    env = {**os.environ, "EPNML_VENV": str(venv)}
    done = subprocess.run(["bash", str(REPO / "ingest" / "demo.sh"), str(root)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = [c for c in log.read_text().splitlines() if c.startswith("ingest aurora ")]
    assert len(calls) == 1
    assert calls[0].split()[2] == "--no-progress"
    assert sorted(Path(a).name for a in calls[0].split()[3:]) == [
        "simulated_emus_20230601T000000_2026_000.fits",
        "simulated_emus_20230601T000000_2026_000.png",
        "simulated_emus_20230701T000000_2026_001.fits"]
