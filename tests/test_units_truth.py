"""Units rows that tell the truth: mission-era times, a real membership score, abundances
withheld when their spread is as large as they are, no 1-cell regions (issue #18)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

import epnml.ingest.simulate.units as sim
from epnml.ingest.readers.mascs import read_mascs_files
from epnml.ingest.stage import GranuleError, RunContext
from epnml.ingest.stages.units import UnitsStage

FAST = {"embedding": "ica"}


def _ctx(**params: object) -> RunContext:
    return RunContext("test-run", "http://localhost/files", datetime(2026, 1, 2, tzinfo=UTC),
                      False, dict(params))


def _product(out: Path, **kw: object) -> list[Path]:
    paths = sim.write_simulated_mascs(out, lon_range=(10.0, 22.0), lat_range=(-6.0, 6.0),
                                      step_deg=1.0, n_units=3, seed=5, channels=120, **kw)
    return [paths["lbl"], paths["fmt"]]


def test_simulated_mascs_is_dated_in_the_orbital_phase(tmp_path: Path) -> None:
    files = _product(tmp_path)
    obs = read_mascs_files([files[0]])
    assert len(obs) == 1
    times = pd.to_datetime(obs[0].meta["time"])
    assert times.notna().all()
    assert times.min() >= pd.Timestamp("2011-03-18")
    assert times.max() <= pd.Timestamp("2015-04-30")


def test_stage_refuses_spectra_dated_after_the_mission(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim, "SIMULATED_EPOCH", pd.Timestamp("2026-01-01T00:00:00"))
    files = _product(tmp_path)
    stage = UnitsStage()
    granules = stage.granules(files)
    assert len(granules) == 1
    with pytest.raises(GranuleError) as err:
        stage.process(granules[0], _ctx(**FAST))
    assert re.fullmatch(r".*simulated_virsvd_sim_26001_000000\.lbl: spectrum time "
                        r"2026-01-01T00:00:0\d is outside the MESSENGER mission "
                        r"\(2004-08-03 \.\. 2015-04-30\): MASCS cannot have observed it",
                        str(err.value)), str(err.value)
    assert "simulated_virsvd_sim_26001_000000.lbl" in str(err.value)
