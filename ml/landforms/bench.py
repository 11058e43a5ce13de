"""Throughput of the pits detector on 512x512 tiles (goal: >= 1,000 tiles/min, 2 threads).

Why: HiRISE observations are ~20k x 50k px, i.e. thousands of tiles each; the detector
must keep up on a small CPU. ``run`` times the network plus box decoding on batches
of random tiles (content does not change the cost), the median of ``repeats``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch

THREADS = 2
TILE = 512
GOAL_TILES_PER_MIN = 1000.0


def run(repeats: int = 5, batch: int = 4, threads: int = THREADS,
        version: str | None = None) -> dict[str, Any]:
    """Median tiles/min over ``repeats`` batches (after a warm-up).

    On a shared machine 2 threads can be slower than 1 (the second core is busy):
    ``threads`` lets the caller measure both.
    """
    if repeats < 1 or batch < 1:
        raise ValueError("repeats and batch must be >= 1")
    if not 1 <= threads <= THREADS:
        raise ValueError(f"threads must be in 1..{THREADS}")
    from .detector import PitsDetector, decode
    from .inference import load_model

    try:
        model = load_model(version)
        module, name = model.module, f"pits {model.info.version}"
    except FileNotFoundError:  # no committed weights: same architecture, random weights
        module, name = PitsDetector().eval(), "pits (untrained)"
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.from_numpy(np.random.default_rng(0).normal(
            size=(batch, 1, TILE, TILE)).astype(np.float32))
        times = []
        with torch.inference_mode():
            decode(module(x), module.config.stride)
            for _ in range(repeats):
                t0 = time.perf_counter()
                decode(module(x), module.config.stride)
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(previous)
    per_tile = statistics.median(times) / batch
    rate = 60.0 / per_tile
    return {"model": name, "tile_px": TILE, "threads": threads, "batch": batch,
            "repeats": repeats, "seconds_per_tile": round(per_tile, 4),
            "tiles_per_min": round(rate, 1), "goal_tiles_per_min": GOAL_TILES_PER_MIN,
            "meets_goal": rate >= GOAL_TILES_PER_MIN}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=1))
