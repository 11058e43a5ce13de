"""Measure the units pipeline: ICA error vs components, gap-chosen k, ARI stability.

``python -m epnml.experiments.units.evaluate --out ml/units_eval.json``

On the REAL MASCS DDRs of the shared data (footprint spectra after the
geometry filter and clipping: the 1,823 NIR spectra of 4 observations, 896-1491
nm, and the 113 VIS spectra of the single VIS observation, 260-1050 nm) and on a
SIMULATED grid with known units (ARI against the truth is then measurable).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from epnml.ml.units.grid import (
    clip_outliers,
    common_wavelengths,
    footprint_mask,
    prepare_matrix,
    resample,
)
from epnml.ml.units.pipeline import UnitsConfig, bootstrap_ari, fit_units, ica_error_curve


def _measure(x: np.ndarray, cfg: UnitsConfig, n_boot: int, max_rows: int) -> dict[str, Any]:
    t = time.perf_counter()
    res = fit_units(x, cfg)
    fit_s = time.perf_counter() - t
    return {
        "matrix": list(x.shape),
        "ica_error_vs_components": ica_error_curve(x, range(1, 9), cfg.seed),
        "ica_rmse_at_config": res.ica_rmse, "ica_mse_at_config": res.ica_mse,
        "k_by_gap": res.n_clusters, "gaps": {str(k): v for k, v in res.gaps.items()},
        "unit_sizes": np.bincount(res.labels).tolist(), "fit_seconds": round(fit_s, 1),
        "stability": bootstrap_ari(x, cfg, n_boot=n_boot, max_rows=max_rows, seed=cfg.seed),
        "_labels": res.labels,
    }


def real_mascs(root: Path, cfg: UnitsConfig, n_boot: int) -> dict[str, Any]:
    """Per detector, on footprint spectra (too few observations to fill a global grid)."""
    from epnml.ingest.readers.mascs import group_mascs_files, read_mascs_files
    from epnml.ingest.stages.units import NIR_GRID_NM

    labels = [p for _, fs in group_mascs_files([root]) for p in fs]
    obs = read_mascs_files(labels)
    out: dict[str, Any] = {"observations": {o.product_id: {"detector": o.detector,
                                                            "spectra": o.n_spectra,
                                                            "channels": int(o.iof.shape[1])}
                                            for o in obs}}
    for det, wl in (("NIR", common_wavelengths(*NIR_GRID_NM)), ("VIS", common_wavelengths())):
        used = [o for o in obs if o.detector == det]
        total = sum(o.n_spectra for o in used)
        rows = []
        for o in used:
            keep = footprint_mask(o.meta)
            clipped, ok = clip_outliers(o.iof)
            rows.append(resample(o.wavelength_nm, clipped[keep & ok], wl))
        x, _, chan = prepare_matrix(np.vstack(rows))
        res = _measure(x, cfg, n_boot, max_rows=3000)
        res.pop("_labels")
        out[det] = {"spectra_in_files": total, "spectra_used": int(x.shape[0]),
                    "wavelength_nm": [float(wl[chan].min()), float(wl[chan].max())], **res}
    return out


def simulated(cfg: UnitsConfig, n_boot: int, step_deg: float = 2.0) -> dict[str, Any]:
    from sklearn.metrics import adjusted_rand_score

    from epnml.ingest.simulate.units import simulate_cells

    sim = simulate_cells(step_deg=step_deg, seed=2026)
    res = _measure(sim.spectra, cfg, n_boot, max_rows=3000)
    labels = res.pop("_labels")
    return {"SIMULATED": True, "grid_step_deg": step_deg, "endmembers": sim.endmember_source,
            "true_units": int(np.unique(sim.truth).size),
            "ari_vs_truth": float(adjusted_rand_score(sim.truth, labels)), **res}


def main(argv: Sequence[str] | None = None) -> None:
    from epnml.config import load_settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("units_eval.json"))
    ap.add_argument("--boot", type=int, default=5)
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-simulated", action="store_true")
    args = ap.parse_args(argv)
    cfg = UnitsConfig()
    report: dict[str, Any] = {"config": cfg.to_dict()}
    root = load_settings().shared_data / "spectra" / "mascs_virs"
    if not args.skip_real:
        if root.is_dir():
            report["real_mascs"] = real_mascs(root, cfg, args.boot)
        else:
            report["real_mascs"] = f"skipped: {root} not found"
    if not args.skip_simulated:
        report["simulated_grid"] = simulated(cfg, args.boot)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
