"""IoU of the mound U-Net on held-out SIMULATED DTM scenes (seeds disjoint from training).

    python -m epnml.experiments.mounds.evaluate --weights 1.0.0 [--update-card]

Test scenes: 512 x 512 px at 20 m (twice the training scene side, so tiling and tile
seams are exercised), seeds 900000.. (training 1000.., validation 800000..). Each is
segmented through the stage's own path (features -> 256-px overlapping tiles) twice: from
the DTM and from its 8-bit hillshade alone. Pixel metrics pooled over scenes at the
card's threshold: IoU of the mound class and mean IoU over {background, mound}. Object
metrics: recall = share of drawn mounds whose centre lies in a predicted component of
>= min_area_px; precision = share of predicted components overlapping a true mound.
``--update-card`` writes the figures into the card's ``metrics.test``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from epnml.experiments.landforms.training import evaluate_cli
from epnml.ml.mounds.model import MODEL_NAME as MOUNDS
from epnml.ml.mounds.model import WEIGHTS_DIR, load_model

from .train import TEST_SEED0, predict_scenes, scores

N_TEST = 30
TEST_SIZE = 512


def object_scores(probs: list[np.ndarray], scenes: list[Any], thr: float,
                  min_area: int) -> dict[str, float]:
    from scipy import ndimage

    n_true = n_hit = n_pred = n_good = 0
    for p, s in zip(probs, scenes, strict=True):
        lab, n = ndimage.label(p >= thr, structure=np.ones((3, 3), bool))
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        keep = sizes >= min_area
        keep[0] = False
        h, w = p.shape
        for m in s.mounds:
            x, y = int(m.x), int(m.y)
            if 0 <= x < w and 0 <= y < h:
                n_true += 1
                n_hit += bool(keep[lab[y, x]])
        overl = np.bincount(lab[s.mask].ravel(), minlength=n + 1) > 0
        n_pred += int(keep.sum())
        n_good += int((keep & overl).sum())
    return {"object_recall": round(n_hit / max(1, n_true), 4),
            "object_precision": round(n_good / max(1, n_pred), 4),
            "n_true_mounds": n_true, "n_predicted": n_pred}


def evaluate(version: str | None = None, n: int = N_TEST) -> dict[str, Any]:
    from epnml.ingest.simulate.mounds import simulate_dtm

    model = load_model(version)
    thr = model.threshold
    min_area = int(model.config.get("min_area_px", 4))
    t0 = time.time()
    scenes = [simulate_dtm(TEST_SEED0 + i, TEST_SIZE) for i in range(n)]
    masks = [s.mask for s in scenes]
    out: dict[str, Any] = {"simulated": True, "n_scenes": n, "scene_px": TEST_SIZE,
                           "pixel_m": scenes[0].pixel_m,
                           "seeds": [TEST_SEED0, TEST_SEED0 + n - 1], "threshold": thr}
    for mode, as_image in (("dtm", False), ("hillshade_image", True)):
        probs = predict_scenes(model.module, scenes, as_image)  # type: ignore[arg-type]
        out[mode] = {**scores(probs, masks, thr),
                     **object_scores(probs, scenes, thr, min_area)}
    out["seconds"] = round(time.time() - t0, 1)
    out["command"] = f"python -m epnml.experiments.mounds.evaluate --weights {version}"
    return out


def main(argv: list[str] | None = None) -> int:
    return evaluate_cli(evaluate, __doc__, {"--n": N_TEST}, MOUNDS, Path(WEIGHTS_DIR),
                        lambda: load_model().info.version, argv)


if __name__ == "__main__":
    raise SystemExit(main())
