"""Chunk accuracy and image grades of the ice CNN on held-out SIMULATED scenes.

    python -m epnml.experiments.ice.evaluate --weights 1.0.0 [--update-card]

Two test sets, seeds disjoint from training (5000..) and validation (600000..):

* ``full_res``: 40 scenes of 2 x 2 chunks at 0.5 m (1024-px chunks), seeds 700000..,
  written to 8-bit arrays and classified through the stage's own path
  (:func:`epnml.ml.ice.model.classify_chunks`: 1024-px chunks, 8x block mean);
* ``coarse``: 200 scenes at 2 m (the training resolution), seeds 710000.. -- more
  images for the image-level table at low cost.

Chunk metrics at p >= 0.5 and p >= 0.6 (the rule's "icy"); pitfalls: false-positive
rate on ice-free chunks of scenes with each confounder (saturated pixels, sunlit bright
patches, CO2-frost-like brightening), and recall on icy chunks holding little ice (< 3x the
minimum, e.g. a patch cut by a chunk edge). Image level: the rule on predicted chunk
probabilities against "the scene has ice".
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from epnml.experiments.landforms.training import evaluate_cli
from epnml.ml.ice.model import MODEL_NAME as ICE
from epnml.ml.ice.model import WEIGHTS_DIR, classify_chunks, load_model

from .train import (
    TEST_SEED0,
    TRAIN_PIXEL_M,
    chunk_metrics,
    image_metrics,
    make_set,
    predict,
)

N_FULL, N_COARSE = 40, 200
COARSE_SEED0 = TEST_SEED0 + 10000


def pitfalls(p: np.ndarray, scenes: list[Any]) -> dict[str, Any]:
    from epnml.ingest.simulate.ice import MIN_ICE_PX

    out: dict[str, Any] = {}
    labels = np.concatenate([s.chunk_labels.ravel() for s in scenes])
    ice_px = np.concatenate([s.chunk_ice_px.ravel() * (s.pixel_m / 0.5) ** 2 for s in scenes])
    conf = [set(s.confounders) for s in scenes for _ in range(s.chunk_labels.size)]
    for name in ("saturated", "sunlit", "co2"):
        sel = np.array([name in c for c in conf]) & ~labels
        out[f"false_positive_rate_no_ice_with_{name}"] = {
            "n_chunks": int(sel.sum()),
            "rate@0.5": round(float((p[sel] >= 0.5).mean()) if sel.any() else 0.0, 4)}
    clean = np.array([not c for c in conf]) & ~labels
    out["false_positive_rate_no_ice_no_confounder"] = {
        "n_chunks": int(clean.sum()),
        "rate@0.5": round(float((p[clean] >= 0.5).mean()) if clean.any() else 0.0, 4)}
    small = labels & (ice_px < 3 * MIN_ICE_PX)
    big = labels & ~small
    out["recall_small_ice_lt_3x_min"] = {
        "n_chunks": int(small.sum()),
        "recall@0.5": round(float((p[small] >= 0.5).mean()) if small.any() else 0.0, 4)}
    out["recall_larger_ice"] = {
        "n_chunks": int(big.sum()),
        "recall@0.5": round(float((p[big] >= 0.5).mean()) if big.any() else 0.0, 4)}
    return out


def _block(p: np.ndarray, y: np.ndarray, scenes: list[Any]) -> dict[str, Any]:
    return {"n_chunks": len(y), "n_icy": int(y.sum()),
            "chunks@0.5": chunk_metrics(p, y, 0.5), "chunks@0.6": chunk_metrics(p, y, 0.6),
            "images": image_metrics(p, scenes), "pitfalls": pitfalls(p, scenes)}


def evaluate(version: str | None = None, n_full: int = N_FULL, n_coarse: int = N_COARSE
             ) -> dict[str, Any]:
    from epnml.ingest.simulate.ice import simulate_ice_scene

    model = load_model(version)
    t0 = time.time()
    probs, labels, scenes = [], [], []
    for i in range(n_full):
        s = simulate_ice_scene(TEST_SEED0 + i)
        p, chunks = classify_chunks(s.image.astype(np.float32), model.module, 255.0)
        probs.append(p)
        labels.append(np.array([s.chunk_labels[c.row, c.col] for c in chunks], float))
        s.image, s.ice = s.image[:0], s.ice[:0]
        scenes.append(s)
    full = _block(np.concatenate(probs), np.concatenate(labels), scenes)
    xc, yc, cscenes = make_set(COARSE_SEED0, n_coarse, TRAIN_PIXEL_M)
    pc = predict(model.module, xc)  # type: ignore[arg-type]
    coarse = _block(pc, yc, cscenes)
    return {"simulated": True,
            "full_res": {"pixel_m": 0.5, "seeds": [TEST_SEED0, TEST_SEED0 + n_full - 1],
                         **full},
            "coarse": {"pixel_m": TRAIN_PIXEL_M,
                       "seeds": [COARSE_SEED0, COARSE_SEED0 + n_coarse - 1], **coarse},
            "seconds": round(time.time() - t0, 1),
            "command": f"python -m epnml.experiments.ice.evaluate --weights {version}"}


def main(argv: list[str] | None = None) -> int:
    return evaluate_cli(evaluate, __doc__, {"--n-full": N_FULL, "--n-coarse": N_COARSE}, ICE,
                        Path(WEIGHTS_DIR), lambda: load_model().info.version, argv)


if __name__ == "__main__":
    raise SystemExit(main())
