"""Train the ice-patch chunk classifier on SIMULATED HiRISE-like scenes (CPU, fixed seeds).

    python -m epnml.experiments.ice.train --version 1.0.0

Data: :func:`epnml.ingest.simulate.ice.simulate_ice_scene`, 2 x 2 chunks of 512 m.
Training and validation scenes are simulated at 2 m pixels (16x fewer pixels than
0.5 m; 512-px chunks reduced 2x2 -> the same 128 x 128 model input) because simulating
1 m^2-resolution scenes costs minutes on this CPU; :mod:`.evaluate` tests on 0.5 m
scenes through the stage's real 1024-px / 8x path. Seeds: training 5000.., validation
600000.., test 700000.. (disjoint). Augmentation: east-west flips only (a north-south flip
would put ice on sunlit slopes and break the physics the model should learn). Loss: BCE
with positive weight = negatives / positives. The checkpoint with the best validation
accuracy at p >= 0.5 is kept. Writes ``ml/weights/ice-<version>.pt`` and its card.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from epnml.experiments.landforms.training import simulated_cli, train_best
from epnml.ml.ice.icenet import ICY, IceNet, IceNetConfig, chunk_inputs, image_class
from epnml.ml.ice.model import MODEL_NAME as ICE
from epnml.ml.ice.model import WEIGHTS_DIR, save_model
from epnml.ml.imagery.detector import n_parameters

SEED = 2025
TRAIN_SEED0, VAL_SEED0, TEST_SEED0 = 5000, 600000, 700000
N_TRAIN, N_VAL = 500, 60
TRAIN_PIXEL_M = 2.0
BATCH = 32
STEPS = 600
LR = 3e-3
EVAL_EVERY = 100


def scene_chunks(scene: Any) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs and labels of every chunk of a simulated scene (any pixel size)."""
    down = scene.chunk // 128
    inputs, chunks = chunk_inputs(scene.image.astype(np.float32), 255.0, scene.chunk, down)
    labels = np.array([scene.chunk_labels[c.row, c.col] for c in chunks], dtype=np.float32)
    return inputs, labels


def make_set(seed0: int, n: int, pixel_m: float) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    from epnml.ingest.simulate.ice import simulate_ice_scene

    xs, ys, scenes = [], [], []
    for i in range(n):
        scene = simulate_ice_scene(seed0 + i, pixel_m=pixel_m)
        x, y = scene_chunks(scene)
        xs.append(x)
        ys.append(y)
        scene.image = scene.image[:0]  # keep labels only (memory)
        scene.ice = scene.ice[:0]
        scenes.append(scene)
    return np.concatenate(xs), np.concatenate(ys), scenes


def predict(module: IceNet, x: np.ndarray) -> np.ndarray:
    module.eval()
    with torch.inference_mode():
        out = torch.cat([module(torch.from_numpy(x[s:s + 64])) for s in range(0, len(x), 64)])
    return torch.sigmoid(out).numpy().astype(float)


def chunk_metrics(p: np.ndarray, y: np.ndarray, thr: float) -> dict[str, float]:
    pred = p >= thr
    truth = y > 0.5
    tp, fp = int((pred & truth).sum()), int((pred & ~truth).sum())
    fn, tn = int((~pred & truth).sum()), int((~pred & ~truth).sum())
    return {"accuracy": round((tp + tn) / max(1, len(y)), 4),
            "precision": round(tp / max(1, tp + fp), 4), "recall": round(tp / max(1, tp + fn), 4),
            "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def image_metrics(p: np.ndarray, scenes: list[Any]) -> dict[str, Any]:
    """Image grade (the rule on predicted chunk probabilities) against "has ice"."""
    table: dict[str, dict[str, int]] = {"ice": {}, "no ice": {}}
    i = 0
    for scene in scenes:
        n = int(scene.chunk_labels.size)
        grade = image_class(p[i:i + n])
        i += n
        row = table["ice" if scene.has_ice else "no ice"]
        row[grade] = row.get(grade, 0) + 1
    n_ice, n_dry = sum(table["ice"].values()), sum(table["no ice"].values())
    return {"n_images": n_ice + n_dry, "confusion": table,
            "ice_graded_good_or_hard": round((n_ice - table["ice"].get("bad", 0)) /
                                             max(1, n_ice), 4),
            "no_ice_graded_bad": round(table["no ice"].get("bad", 0) / max(1, n_dry), 4)}


def train(version: str, out_dir: Path, steps: int = STEPS, n_train: int = N_TRAIN
          ) -> dict[str, Any]:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # see train_mounds: a 2nd thread mostly waits on a busy box
    rng = np.random.default_rng(SEED)
    t0 = time.time()
    x, y, _ = make_set(TRAIN_SEED0, n_train, TRAIN_PIXEL_M)
    xv, yv, vscenes = make_set(VAL_SEED0, N_VAL, TRAIN_PIXEL_M)
    print(f"data: {len(y)} train chunks ({int(y.sum())} icy), {len(yv)} validation "
          f"({int(yv.sum())} icy), {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    pos_weight = torch.tensor(float((y < 0.5).sum()) / max(1.0, float(y.sum())))
    module = IceNet(IceNetConfig())

    def batch_loss() -> torch.Tensor:
        idx = rng.integers(0, len(y), BATCH)
        xb = x[idx].copy()
        flip = rng.random(BATCH) < 0.5
        xb[flip] = xb[flip][..., ::-1]
        logits = module(torch.from_numpy(np.ascontiguousarray(xb)))
        return F.binary_cross_entropy_with_logits(logits, torch.from_numpy(y[idx]),
                                                  pos_weight=pos_weight)

    history, best_step = train_best(
        module, steps, LR, batch_loss,
        lambda: chunk_metrics(predict(module, xv), yv, 0.5)["accuracy"],
        "val_accuracy@0.5", EVAL_EVERY, t0)
    pv = predict(module, xv)
    config = {"threshold": ICY, "chunk": 1024, "downsample": 8}
    out_dir.mkdir(parents=True, exist_ok=True)
    pt = out_dir / f"{ICE}-{version}.pt"
    digest = save_model(pt, module, version, config)
    card: dict[str, Any] = {
        "name": ICE, "version": version, "sha256": digest,
        "task": "residual water-ice patches in HiRISE-like chunks (ice / no ice) and the "
                "image-level grade good / hard to identify / bad",
        "architecture": {"type": "Xception-style depthwise-separable CNN, plain torch",
                         "n_parameters": n_parameters(module), **module.config.to_dict(),
                         "inputs": "1024 px chunk -> 8x8 block mean (128 x 128), minus the "
                                   "chunk median over the image 1-99 % range; fraction of "
                                   "saturated pixels per block"},
        "inference": {**config, "note": "non-overlapping 1024 px chunks from the top-left; "
                                        "edge chunks padded, kept when >= 25 % valid; chunk "
                                        "icy when p >= 0.6 (the rule's threshold)"},
        "data": {"source": "SIMULATED HiRISE-like scenes (epnml.ingest.simulate.ice), 2 x 2 "
                           f"chunks; training/validation at {TRAIN_PIXEL_M} m pixels",
                 "simulated": True},
        "split": {"train_seeds": [TRAIN_SEED0, TRAIN_SEED0 + n_train - 1],
                  "validation_seeds": [VAL_SEED0, VAL_SEED0 + N_VAL - 1],
                  "test_seeds_from": TEST_SEED0, "seed": SEED,
                  "train_chunks": int(len(y)), "train_icy": int(y.sum())},
        "training": {"steps": steps, "batch": BATCH, "lr": LR,
                     "optimizer": "AdamW + one-cycle",
                     "loss": f"BCE, pos_weight {float(pos_weight):.2f}",
                     "augmentations": "east-west flips", "best_step": best_step,
                     "history": history, "train_seconds": round(time.time() - t0, 1)},
        "metrics": {"validation": {
            "simulated": True, "pixel_m": TRAIN_PIXEL_M,
            "chunks@0.5": chunk_metrics(pv, yv, 0.5), "chunks@0.6": chunk_metrics(pv, yv, ICY),
            "images": image_metrics(pv, vscenes)}},
        "command": f"python -m epnml.experiments.ice.train --version {version}",
        "torch": torch.__version__,
    }
    pt.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    return card


def main(argv: list[str] | None = None) -> int:
    return simulated_cli(train, __doc__, STEPS, N_TRAIN, WEIGHTS_DIR, argv)


if __name__ == "__main__":
    raise SystemExit(main())
