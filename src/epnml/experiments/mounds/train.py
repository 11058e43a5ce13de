"""Train the mound U-Net on SIMULATED DTM scenes (CPU, fixed seeds).

    python -m epnml.experiments.mounds.train --version 1.0.0

Data: :func:`epnml.ingest.simulate.mounds.simulate_dtm`, 256 x 256 px scenes at 20 m:
training seeds 1000..1000+N-1, validation seeds 800000..800019 (threshold and checkpoint
choice), test seeds 900000.. used only by :mod:`.evaluate` -- all disjoint. Each
sample: a scene, a random flip / 90-degree rotation of the DTM (features are computed
after it, so slope aspect and hillshade stay physical), a random 96 px crop; a quarter of
the samples go in as a plain hillshade image
(:func:`epnml.ml.mounds.unet.image_features`) so the same weights serve PNG hillshades.
Loss: BCE (positive weight 2) + soft Dice. The threshold is the validation-best IoU one.
Writes ``ml/weights/mounds-<version>.pt`` and its card.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from epnml.experiments.landforms.training import simulated_cli, train_best
from epnml.ml.mounds.model import MODEL_NAME as MOUNDS
from epnml.ml.mounds.model import WEIGHTS_DIR, save_model, segment_mounds
from epnml.ml.mounds.unet import UNet, UNetConfig, dtm_features, image_features, n_parameters

SEED = 2024
TRAIN_SEED0, VAL_SEED0, TEST_SEED0 = 1000, 800000, 900000
N_TRAIN, N_VAL = 400, 20
SCENE = 256
CROP = 96
BATCH = 8
STEPS = 800
LR = 3e-3
IMAGE_FRACTION = 0.25
EVAL_EVERY = 200
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def scene_features(dtm: np.ndarray, pixel_m: float, as_image: bool) -> np.ndarray:
    """Model inputs of a DTM, or of its 8-bit hillshade when ``as_image``."""
    if as_image:
        from epnml.ml.mounds.shading import hillshade

        return image_features(np.round(hillshade(dtm, pixel_m) * 255))
    return dtm_features(dtm, pixel_m)


def iou(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(intersection, union) pixel counts of the mound class."""
    return float((pred & truth).sum()), float((pred | truth).sum())


def scores(probs: list[np.ndarray], masks: list[np.ndarray], thr: float) -> dict[str, float]:
    """IoU of the mound class and mean IoU over {background, mound}, pooled over scenes."""
    fi = fu = bi = bu = 0.0
    for p, m in zip(probs, masks, strict=True):
        pred = p >= thr
        i, u = iou(pred, m)
        fi, fu = fi + i, fu + u
        i, u = iou(~pred, ~m)
        bi, bu = bi + i, bu + u
    fg = fi / fu if fu else 1.0
    bg = bi / bu if bu else 1.0
    return {"iou_mound": round(fg, 4), "iou_background": round(bg, 4),
            "mean_iou": round((fg + bg) / 2, 4)}


def predict_scenes(module: UNet, scenes: list[Any], as_image: bool) -> list[np.ndarray]:
    return [segment_mounds(scene_features(s.dtm, s.pixel_m, as_image), module)
            for s in scenes]


def _batch(rng: np.random.Generator, dtms: list[np.ndarray], masks: list[np.ndarray],
           pixel_m: float) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for _ in range(BATCH):
        k = int(rng.integers(len(dtms)))
        d, m = dtms[k], masks[k]
        rot = int(rng.integers(4))
        d, m = np.rot90(d, rot), np.rot90(m, rot)
        if rng.random() < 0.5:
            d, m = d[:, ::-1], m[:, ::-1]
        feats = scene_features(np.ascontiguousarray(d), pixel_m, rng.random() < IMAGE_FRACTION)
        y0, x0 = (int(v) for v in rng.integers(0, SCENE - CROP + 1, 2))
        xs.append(feats[:, y0:y0 + CROP, x0:x0 + CROP])
        ys.append(m[y0:y0 + CROP, x0:x0 + CROP].astype(np.float32))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def train(version: str, out_dir: Path, steps: int = STEPS, n_train: int = N_TRAIN
          ) -> dict[str, Any]:
    from epnml.ingest.simulate.mounds import simulate_dtm

    torch.manual_seed(SEED)
    # one thread: on a shared 2-core machine a second thread mostly waits (7x slower
    # per step measured under load)
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    t0 = time.time()
    train_scenes = [simulate_dtm(TRAIN_SEED0 + i, SCENE) for i in range(n_train)]
    val_scenes = [simulate_dtm(VAL_SEED0 + i, SCENE) for i in range(N_VAL)]
    dtms = [s.dtm for s in train_scenes]
    masks = [s.mask for s in train_scenes]
    pixel_m = train_scenes[0].pixel_m
    module = UNet(UNetConfig())

    def batch_loss() -> torch.Tensor:
        x, y = _batch(rng, dtms, masks, pixel_m)
        logits = module(x)
        bce = F.binary_cross_entropy_with_logits(logits, y, pos_weight=torch.tensor(2.0))
        p = torch.sigmoid(logits)
        dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
        return bce + dice

    vmasks = [s.mask for s in val_scenes]
    history, best_step = train_best(
        module, steps, LR, batch_loss,
        lambda: scores(predict_scenes(module, val_scenes, False), vmasks, 0.5)["iou_mound"],
        "val_iou_mound@0.5", EVAL_EVERY, t0)
    module.eval()
    dtm_probs = predict_scenes(module, val_scenes, False)
    by_thr = {t: scores(dtm_probs, vmasks, t) for t in THRESHOLDS}
    thr = max(THRESHOLDS, key=lambda t: by_thr[t]["iou_mound"])
    img_probs = predict_scenes(module, val_scenes, True)
    config = {"threshold": thr, "tile": 256, "overlap": 64, "min_area_px": 4,
              "pixel_m_trained": pixel_m}
    out_dir.mkdir(parents=True, exist_ok=True)
    pt = out_dir / f"{MOUNDS}-{version}.pt"
    digest = save_model(pt, module, version, config)
    card: dict[str, Any] = {
        "name": MOUNDS, "version": version, "sha256": digest,
        "task": "semantic segmentation of mounds (pitted cones / domes) in Mars DTMs or images",
        "architecture": {"type": "U-Net, plain torch", "n_parameters": n_parameters(module),
                         **module.config.to_dict(),
                         "inputs": "relief, slope, sin/cos aspect, hillshade from the DTM "
                                   "(ml/mounds/unet.py); plain images in the hillshade "
                                   "channel only"},
        "inference": {**config, "note": "256 px tiles overlapping 64 px, tile centres kept; "
                                        "connected components of p >= threshold"},
        "data": {"source": "SIMULATED DTM scenes (epnml.ingest.simulate.mounds), 256 x 256 "
                           "px at 20 m", "simulated": True},
        "split": {"train_seeds": [TRAIN_SEED0, TRAIN_SEED0 + n_train - 1],
                  "validation_seeds": [VAL_SEED0, VAL_SEED0 + N_VAL - 1],
                  "test_seeds_from": TEST_SEED0, "seed": SEED},
        "training": {"steps": steps, "batch": BATCH, "crop_px": CROP, "lr": LR,
                     "optimizer": "AdamW + one-cycle", "loss": "BCE(pos_weight 2) + soft Dice",
                     "augmentations": "flips, 90-degree rotations (features recomputed), "
                                      f"{IMAGE_FRACTION:.0%} hillshade-only samples",
                     "best_step": best_step, "history": history,
                     "train_seconds": round(time.time() - t0, 1)},
        "metrics": {"validation": {
            "simulated": True, "threshold": thr,
            "dtm": by_thr[thr], "hillshade_image": scores(img_probs, vmasks, thr),
            "by_threshold_dtm": {str(t): v for t, v in by_thr.items()}}},
        "command": f"python -m epnml.experiments.mounds.train --version {version}",
        "torch": torch.__version__,
    }
    pt.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    return card


def main(argv: list[str] | None = None) -> int:
    return simulated_cli(train, __doc__, STEPS, N_TRAIN, WEIGHTS_DIR, argv)


if __name__ == "__main__":
    raise SystemExit(main())
