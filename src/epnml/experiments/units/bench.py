"""Wall time of ICA + UMAP + clustering on a SIMULATED matrix of the DLR size, 2 cores.

``python -m epnml.experiments.units.bench`` (goal: <= 5 min for 55,399 x 396).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "2")


def run(rows: int = 55_399, channels: int = 396, seed: int = 2026) -> dict[str, Any]:
    """Time each step; the matrix is SIMULATED (``simulate.simulate_matrix``)."""
    import numpy as np

    from epnml.ingest.simulate.units import simulate_matrix
    from epnml.ml.units.pipeline import UnitsConfig, cluster, embed, fit_ica

    cfg = UnitsConfig(seed=42)
    t0 = time.perf_counter()
    x = simulate_matrix(rows, channels, seed)
    t1 = time.perf_counter()
    sources, rmse, _ = fit_ica(x, cfg.n_components, cfg.seed, cfg.ica_max_iter)
    t2 = time.perf_counter()
    std = sources.std(axis=0)
    z = embed((sources - sources.mean(axis=0)) / np.where(std > 0, std, 1.0), cfg)
    t3 = time.perf_counter()
    labels, k, _, used = cluster(z, cfg)
    t4 = time.perf_counter()
    total = t4 - t1
    return {"SIMULATED": True, "rows": rows, "channels": channels,
            "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
            "cpu_count": os.cpu_count(), "simulate_s": round(t1 - t0, 1),
            "ica_s": round(t2 - t1, 1), "umap_s": round(t3 - t2, 1),
            "cluster_s": round(t4 - t3, 1), "total_s": round(total, 1),
            "goal_s": 300, "within_goal": total <= 300, "k": k, "linkage_rows": used,
            "ica_rmse": rmse, "unit_sizes": np.bincount(labels).tolist()}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=55_399)
    ap.add_argument("--channels", type=int, default=396)
    args = ap.parse_args(argv)
    print(json.dumps(run(args.rows, args.channels), indent=2))


if __name__ == "__main__":
    main()
