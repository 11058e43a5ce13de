"""Load and save the committed mounds U-Net weights, and run it on a DTM of any size.

Same rules as every model (:mod:`epnml.ml.checkpoints`): ``ml/weights/mounds-<ver>.pt``
next to a JSON card holding its sha256; a file whose checksum disagrees is refused.
:func:`segment_mounds` gives the probability map of a DTM (or plain image) of any size,
by overlapping tiles (:mod:`epnml.ml.imagery.tiling`) whose borders are discarded (the
centre of each tile is kept where tiles overlap, since a pixel near a tile edge sees less
context).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from epnml.config import models_dir
from epnml.ml.checkpoints import LoadedNet, cap_threads, load_checkpoint, weights_pattern
from epnml.ml.checkpoints import available_versions as _available_versions
from epnml.ml.checkpoints import save_checkpoint as _save
from epnml.ml.imagery.tiling import tile_starts

from .unet import UNet, UNetConfig

WEIGHTS_DIR = models_dir() / "weights"
MAX_THREADS = 2
MODEL_NAME = "mounds"
#: U-Net tile and overlap (px); the overlap exceeds the largest mound (~30 px at 20 m).
TILE = 256
OVERLAP = 64
BATCH = 4


def available_versions(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    return _available_versions(MODEL_NAME, weights_dir, weights_pattern(MODEL_NAME))


def load_model(version: str | None = None, path: Path | None = None) -> LoadedNet:
    """Load ``mounds-<version>.pt`` (default newest) after its sha256 check."""
    module, info, config = load_checkpoint(
        MODEL_NAME, version, path, lambda cfg: UNet(UNetConfig.from_dict(cfg)), WEIGHTS_DIR)
    return LoadedNet(module, info, config)


def save_model(path: Path, module: UNet, version: str, config: dict[str, Any]) -> str:
    """Write ``mounds-<version>.pt`` (half-precision floats, plain types; loadable with
    ``weights_only=True``); returns its sha256."""
    return _save(path, MODEL_NAME, version, module, config, half=True)


def segment_mounds(features: np.ndarray, module: nn.Module, tile: int = TILE,
                   overlap: int = OVERLAP) -> np.ndarray:
    """Mound probability ``(H, W)`` from ``(C, H, W)`` features of any size >= 8 px."""
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim != 3 or min(feats.shape[1:]) < 8:
        raise ValueError(f"expected (C, H, W) features of at least 8 px, got {feats.shape}")
    cap_threads(MAX_THREADS)
    module.eval()
    _, h, w = feats.shape
    mult = int(getattr(module, "multiple", 8))
    side = min(tile, mult * int(np.ceil(max(h, w) / mult)))
    ov = min(overlap, side // 2)
    half = ov // 2
    prob = np.zeros((h, w), np.float32)
    ys, xs = tile_starts(h, side, ov), tile_starts(w, side, ov)
    jobs = [(y0, x0) for y0 in ys for x0 in xs]
    with torch.inference_mode():
        for s in range(0, len(jobs), BATCH):
            part = jobs[s:s + BATCH]
            batch = np.zeros((len(part), feats.shape[0], side, side), np.float32)
            for i, (y0, x0) in enumerate(part):
                crop = feats[:, y0:y0 + side, x0:x0 + side]
                batch[i, :, :crop.shape[1], :crop.shape[2]] = crop
            out = torch.sigmoid(module(torch.from_numpy(batch))).numpy()
            for i, (y0, x0) in enumerate(part):
                # keep the tile's centre: trim half the overlap except at image borders
                a = 0 if y0 == 0 else half
                b = 0 if x0 == 0 else half
                c = min(side, h - y0) if y0 + side >= h else side - half
                d = min(side, w - x0) if x0 + side >= w else side - half
                prob[y0 + a:y0 + c, x0 + b:x0 + d] = out[i, a:c, b:d]
    return prob
