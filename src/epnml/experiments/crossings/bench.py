"""Speed of the crossings pipeline on one orbit vs the case's sliding-window baseline.

Why: the point of the fully convolutional model is labelling an orbit in one pass
instead of one 30-s window per second. ``run`` times features + network +
post-processing on one SIMULATED 12-h orbit of exactly ``N_SAMPLES`` 1-s samples
(synthetic trajectory, no shared data needed), and the baseline network over the
same orbit (features + 43,200 windows + the same post-processing), each the
median of ``repeats`` runs with 2 torch threads. Called by ``epnml bench crossings``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

N_SAMPLES = 43_200
THREADS = 2


def bench_orbit(seed: int = 2026) -> pd.DataFrame:
    """A SIMULATED 12-h orbit (synthetic, seeded) of exactly ``N_SAMPLES`` rows."""
    from epnml.ingest.simulate.messenger import simulate_orbit

    frame = simulate_orbit(100, seed)  # orbit number of the 12-h era, synthetic path
    if len(frame) < N_SAMPLES:  # pad by repeating the tail's last seconds of solar wind
        extra = N_SAMPLES - len(frame)
        tail = frame.iloc[-extra:].copy()
        tail.index = frame.index[-1] + pd.to_timedelta(np.arange(1, extra + 1), unit="s")
        frame = pd.concat([frame, tail])
    return frame.iloc[:N_SAMPLES]


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (allocations, lazy init)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(repeats: int = 5, threads: int = THREADS) -> dict[str, Any]:
    """Median seconds per orbit for the TCN pipeline and the baseline, and their ratio.

    On a shared machine 2 threads can be slower than 1 (the second core is busy):
    ``threads`` lets the caller measure both.
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    if not 1 <= threads <= THREADS:
        raise ValueError(f"threads must be in 1..{THREADS}")
    from epnml.ml.crossings.baseline import load_baseline
    from epnml.ml.crossings.baseline import predict_proba as baseline_proba
    from epnml.ml.crossings.features import frame_to_features
    from epnml.ml.crossings.inference import load_model, predict_array
    from epnml.ml.crossings.postprocess import extract_crossings

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        frame = bench_orbit()
        model = load_model()
        pp = model.postprocess()
        stage: dict[str, list[float]] = {"features": [], "network": [], "postprocess": []}

        def pipeline() -> None:
            t0 = time.perf_counter()
            x = frame_to_features(frame, model.scaler)
            t1 = time.perf_counter()
            proba = predict_array(x, model.module)
            t2 = time.perf_counter()
            extract_crossings(frame, proba, **pp)
            t3 = time.perf_counter()
            stage["features"].append(t1 - t0)
            stage["network"].append(t2 - t1)
            stage["postprocess"].append(t3 - t2)

        tcn = _median_time(pipeline, repeats)
        out: dict[str, Any] = {
            "data": "one SIMULATED 12-h MESSENGER orbit (synthetic trajectory, seed 2026)",
            "samples": len(frame),
            "threads": threads,
            "repeats": repeats,
            "model": f"{model.info.name} {model.info.version}",
            "tcn_pipeline_s": round(tcn, 4),
            "tcn_stages_s": {k: round(statistics.median(v), 4) for k, v in stage.items()},
        }
        try:
            base = load_baseline()
        except (FileNotFoundError, ValueError) as exc:
            out["baseline"] = f"not available: {exc}"
            return out
        sliding = _median_time(
            lambda: extract_crossings(frame, baseline_proba(frame, base), **pp), repeats)
        out["baseline_pipeline_s"] = round(sliding, 4)
        out["speedup"] = round(sliding / tcn, 1) if tcn > 0 else None
        return out
    finally:
        torch.set_num_threads(old)
