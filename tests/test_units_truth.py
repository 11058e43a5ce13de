"""Units rows that tell the truth: mission-era times, a real membership score, abundances
withheld when their spread is as large as they are, no 1-cell regions (issue #18)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
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


def test_membership_stability_is_a_graded_frequency() -> None:
    """Cells between two overlapping units lose their unit in some bootstraps; far ones never."""
    from epnml.ml.units.pipeline import membership_stability

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (200, 2)), rng.normal(2.5, 1, (200, 2))
    labels = np.r_[np.zeros(200, int), np.ones(200, int)]
    near = membership_stability(np.vstack([a, b]), labels)
    assert near is not None and near.shape == (400,)
    assert set(np.unique(near * 10).astype(int)) <= set(range(11))  # 10 bootstraps
    assert 0.0 <= near.min() < 0.5 and near.max() == 1.0
    middle = int(np.argmin(np.abs(np.vstack([a, b]).sum(axis=1) - 2.5)))
    assert near[middle] < 1.0
    far = membership_stability(np.vstack([a, b + 100.0]), labels)
    assert far is not None and far.min() == 1.0
    assert membership_stability(np.vstack([a, b]), np.zeros(400, int)) is None


def test_units_rows_score_is_the_stability_or_null(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import epnml.ml.units.pipeline as pipeline

    files = _product(tmp_path)
    stage = UnitsStage()
    granule = stage.granules(files)[0]
    rows = stage.process(granule, _ctx(**FAST)).rows
    assert rows
    for row in rows:
        assert row["ml_score"] is not None and 0.0 <= row["ml_score"] <= 1.0
    monkeypatch.setattr(pipeline, "membership_stability", lambda *a, **k: None)
    out = stage.process(granule, _ctx(**FAST))
    assert out.rows and [r["ml_score"] for r in out.rows] == [None] * len(out.rows)
    assert out.records["score"].isna().all()


def test_abundances_withheld_above_the_spread_limit(tmp_path: Path) -> None:
    """cpx 36.6 +- 37.4 % is not an estimate: NULL above max_abundance_sigma, spread kept."""
    from epnml.ingest.stages.units import PHASES

    files = _product(tmp_path)
    stage = UnitsStage()
    granule = stage.granules(files)[0]
    loose = stage.process(granule, _ctx(**FAST, max_abundance_sigma=100.0)).records
    assert len(loose)
    for _, r in loose.iterrows():
        assert sum(r[f"abundance_{p}"] for p in PHASES) == pytest.approx(100.0, abs=0.1)
    sigmas = loose[[f"abundance_sigma_{p}" for p in PHASES]].to_numpy().ravel()
    limit = float(np.median(sigmas))  # some estimates on each side of it
    assert (sigmas > limit).any() and (sigmas <= limit).any()
    strict = stage.process(granule, _ctx(**FAST, max_abundance_sigma=limit)).records
    assert len(strict) == len(loose)
    for (_, a), (_, b) in zip(loose.iterrows(), strict.iterrows(), strict=True):
        for p in PHASES:
            assert b[f"abundance_sigma_{p}"] == a[f"abundance_sigma_{p}"]
            if a[f"abundance_sigma_{p}"] > limit:
                assert pd.isna(b[f"abundance_{p}"])
            else:
                assert b[f"abundance_{p}"] == a[f"abundance_{p}"]


def test_regions_below_min_cells_are_not_rows(tmp_path: Path) -> None:
    files = _product(tmp_path)
    stage = UnitsStage()
    granule = stage.granules(files)[0]
    every = stage.process(granule, _ctx(**FAST, min_cells=1)).records
    default = stage.process(granule, _ctx(**FAST)).records
    small = every.drop_duplicates(["unit_id", "region"])
    assert (small["region_cells"] < 4).any()  # the fixture has specks
    assert len(default) and default["region_cells"].min() >= 4
    assert len(default) == int((every["region_cells"] >= 4).sum())
