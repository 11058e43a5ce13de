"""``epnml bench aurora``: images per minute of the two-stage aurora pipeline on this host.

SIMULATED EMUS-like FITS images (epnml.ingest.simulate.aurora, seed 7) through
``run_pipeline(mode="predict")``: inline (one process, one torch thread) and through the
Dask executor on a LocalCluster of 1 and 2 worker processes (1 thread each), models
loaded and a warm-up image run before the clock starts. Reported beside the seed's
figure, about 1,000 images per minute on cloud functions (Pacios et al.). The prefilter
alone is timed too: it decides how much the detector costs (it runs on candidates only).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Pacios et al.'s throughput on cloud functions (images per minute).
SEED_IMAGES_PER_MIN = 1000.0


def _images(folder: Path, n: int, seed: int) -> list[Path]:
    from epnml.ingest.simulate.aurora import write_simulated

    return [p for p, _ in write_simulated(folder, n, seed)]


def run(n_images: int = 120, worker_counts: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    from epnml.config import load_settings
    from epnml.ingest.readers.aurora import read_aurora_image
    from epnml.ingest.runner import run_pipeline
    from epnml.ml.aurora.prefilter import prefilter

    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the Dask worker processes
    import torch

    torch.set_num_threads(1)
    out: dict[str, Any] = {
        "data": f"SIMULATED EMUS-like FITS images, {n_images} of 256 x 256 px (seed 7)",
        "mode": "predict (no database)", "seed_images_per_min": SEED_IMAGES_PER_MIN,
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="epnml-bench-aurora-") as scratch:
        root = Path(scratch)
        paths = _images(root / "images", n_images, 7)
        _images(root / "warm", 2, 8)
        settings = dataclasses.replace(load_settings(), data_dir=root / "static")
        images = [read_aurora_image(p) for p in paths]
        t0 = time.perf_counter()
        passed = sum(prefilter(im.brightness, im.geometry).candidate for im in images)
        pre_s = time.perf_counter() - t0
        out["prefilter"] = {"images_per_min": 60 * n_images / pre_s,
                            "candidates": int(passed)}
        run_pipeline("aurora", [root / "warm"], mode="predict", settings=settings,
                     workers=1, progress=False)
        t0 = time.perf_counter()
        summary = run_pipeline("aurora", [root / "images"], mode="predict",
                               settings=settings, workers=1, progress=False)
        seconds = time.perf_counter() - t0
        if summary.n_failed:
            raise RuntimeError(summary.text())
        out["inline"] = {"seconds": seconds, "images_per_min": 60 * n_images / seconds,
                         "rows": summary.n_rows,
                         "vs_seed": 60 * n_images / seconds / SEED_IMAGES_PER_MIN}
        out["dask"] = _dask(root, settings, n_images, worker_counts)
    return out


def _dask(root: Path, settings: Any, n_images: int, worker_counts: tuple[int, ...]
          ) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    from epnml.ingest.executor import get_stage
    from epnml.ingest.runner import run_pipeline

    res: dict[str, Any] = {"threads_per_worker": 1}
    for n in worker_counts:
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(get_stage, "aurora", None)
            run_pipeline("aurora", [root / "warm"], mode="predict", settings=settings,
                         executor="dask", scheduler=cluster.scheduler_address, progress=False)
            t0 = time.perf_counter()
            summary = run_pipeline("aurora", [root / "images"], mode="predict",
                                   settings=settings, executor="dask",
                                   scheduler=cluster.scheduler_address, progress=False)
            seconds = time.perf_counter() - t0
        if summary.n_failed:
            raise RuntimeError(summary.text())
        busy = [g.seconds for g in summary.granules]
        res[f"workers_{n}"] = {"seconds": seconds, "images_per_min": 60 * n_images / seconds,
                               "vs_seed": 60 * n_images / seconds / SEED_IMAGES_PER_MIN,
                               "worker_busy_s_per_image": float(np.mean(busy)) if busy
                               else None}
    return res
