"""`epnml predict minerals`: spectra in, phases and abundances out; never ingested."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epnml.cli import main
from epnml.schemas.products import MINERAL_PHASES


def _olivine_like(wl: np.ndarray) -> np.ndarray:
    """A smooth red-sloped spectrum with a broad 1050 nm band (olivine-like shape)."""
    return 0.25 + 0.0001 * (wl - 350) - 0.08 * np.exp(-0.5 * ((wl - 1050) / 150) ** 2)


def test_csv_and_json_spectra_give_abundances(tmp_path: Path) -> None:
    wl = np.arange(300.0, 1100.0, 5.0)
    pd.DataFrame({"wavelength_nm": wl, "iof_mean": _olivine_like(wl)}).to_csv(
        tmp_path / "unit_mean.csv", index=False)
    (tmp_path / "lab.json").write_text(json.dumps({"spectrum": {
        "wavelength": wl.tolist(), "reflectance": _olivine_like(wl).tolist()}}))
    out = tmp_path / "minerals.csv"
    assert main(["predict", "minerals", str(tmp_path / "unit_mean.csv"), str(tmp_path / "lab.json"),
                 "-o", str(out), "--workers", "1", "--no-progress"]) == 0
    table = pd.read_csv(out)
    assert len(table) == 2 and table["covered"].all()
    total = sum(table[f"abundance_{p}"] for p in MINERAL_PHASES)
    assert np.allclose(total, 100.0, atol=0.1)
    for p in MINERAL_PHASES:
        assert table[f"presence_prob_{p}"].between(0, 1).all()
        assert (table[f"abundance_sigma_{p}"] >= 0).all()
    # the same spectrum in two formats gives the same answer
    cols = [f"abundance_{p}" for p in MINERAL_PHASES]
    assert np.allclose(table.loc[0, cols].to_numpy(float), table.loc[1, cols].to_numpy(float))


def test_spectrum_outside_the_model_range_is_not_invented(tmp_path: Path) -> None:
    wl = np.arange(1500.0, 2500.0, 10.0)  # no overlap with 350-1050 nm
    pd.DataFrame({"wavelength_nm": wl, "reflectance": np.full(wl.size, 0.3)}).to_csv(
        tmp_path / "swir.csv", index=False)
    out = tmp_path / "m.csv"
    assert main(["predict", "minerals", str(tmp_path / "swir.csv"), "-o", str(out),
                 "--workers", "1", "--no-progress"]) == 0
    table = pd.read_csv(out)
    assert not table["covered"].any()
    assert table[f"abundance_{MINERAL_PHASES[0]}"].isna().all()


def test_bad_csv_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "wrong_columns.csv"
    bad.write_text("lambda,value\n400,0.2\n500,0.3\n")
    assert main(["predict", "minerals", str(bad), "-o", str(tmp_path / "m.csv"),
                 "--workers", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "wrong_columns.csv" in err and "wavelength_nm" in err


def test_ingest_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spectrum = tmp_path / "s.csv"
    spectrum.write_text("wavelength_nm,reflectance\n400,0.2\n500,0.3\n")
    assert main(["ingest", "minerals", str(spectrum), "--no-progress"]) == 2
    assert "predict-only" in capsys.readouterr().err


@pytest.mark.shared_data
def test_relab_spectra_with_known_abundances(shared_data: Path, tmp_path: Path) -> None:
    """On RELAB spectra of the labelled set the output is complete and normalised."""
    files = sorted((shared_data / "spectra" / "relab_minerals" / "learning").glob("*.json"))[:5]
    out = tmp_path / "m.csv"
    assert main(["predict", "minerals", *map(str, files), "-o", str(out), "--workers", "1",
                 "--no-progress"]) == 0
    table = pd.read_csv(out)
    assert len(table) == len(files)
    covered = table[table["covered"]]
    assert len(covered) == len(files) == 5  # labelled RELAB spectra: all in the model's range
    total = sum(covered[f"abundance_{p}"] for p in MINERAL_PHASES)
    assert np.allclose(total, 100.0, atol=0.1)
