"""Load the committed pits weights (checksum-verified) and detect landforms in any image.

``detect`` handles images of any size: whole-image normalisation, resampling to the
scale the model was trained at, overlapping 512x512 tiles, box decoding, mapping back
to input pixels and class-aware NMS across tiles.

Two architectures load from a checkpoint's ``model`` config: 1.0.0 is the from-scratch
``PitsDetector``; 2.x name the ImageNet-pretrained EfficientNet-Lite0 pyramid of the
crater detector (``epnml.ml.craters.net.CraterNet`` with five heatmaps), which runs as
its BatchNorm-folded inference copy (``epnml.ml.fuse``), one tile per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from epnml.config import models_dir
from epnml.ml.checkpoints import available_versions as _available_versions
from epnml.ml.checkpoints import cap_threads, load_checkpoint
from epnml.ml.checkpoints import save_checkpoint as _save
from epnml.ml.craters.net import ARCH as PRETRAINED_ARCH
from epnml.ml.craters.net import CraterNet, CraterNetConfig, runnable
from epnml.ml.imagery.detector import (
    DetectorConfig,
    DetectorModule,
    PitsDetector,
    decode,
    normalize_image,
    resize_image,
)
from epnml.ml.imagery.tiling import iter_tiles, nms, to_image
from epnml.ml.model_info import ModelInfo

MODEL_NAME = "pits"
#: committed weights live next to the package so they ship with it.
WEIGHTS_DIR = models_dir() / "weights"
MAX_THREADS = 2
TILE = 512
#: overlap of neighbouring tiles (px at model scale): larger than most landforms.
OVERLAP = 128
#: detections below this score are never kept (mAP is computed from here up).
MIN_SCORE = 0.01
BATCH = 4
OUTPUT_COLUMNS = ["x_min", "y_min", "x_max", "y_max", "class", "score"]


@dataclass
class LoadedModel:
    """A ready-to-run detector and the inference settings chosen with it."""

    module: PitsDetector | CraterNet
    info: ModelInfo
    #: ``model`` (architecture), ``input_scale``, ``threshold``, ``nms_iou`` ...
    config: dict[str, Any]

    @property
    def threshold(self) -> float:
        """Score threshold chosen on validation (best F1 at IoU 0.5)."""
        return float(self.config.get("threshold", 0.3))

    @property
    def input_scale(self) -> float:
        """Factor images are resampled by before tiling (the training scale)."""
        return float(self.config.get("input_scale", 0.5))


def available_versions(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """Versions with both a weights file and its JSON card, oldest first."""
    return _available_versions(MODEL_NAME, weights_dir)


def load_model(version: str | None = None, path: Path | None = None) -> LoadedModel:
    """Load ``pits-<version>.pt`` (default: newest in ``ml/weights``) after its sha256 check.

    ``path`` may be a weights directory or a ``.pt`` file. The JSON card next to the
    weights must carry the file's sha256: a swapped or truncated file is refused
    rather than silently writing different catalogue rows.
    """
    module, info, config = load_checkpoint(MODEL_NAME, version, path, build_network,
                                           WEIGHTS_DIR)
    return LoadedModel(module, info, config)


def build_network(cfg: dict[str, Any]) -> PitsDetector | CraterNet:
    """The network a checkpoint's ``model`` config describes: 2.x name the pretrained
    architecture (its weights come from the checkpoint: no ImageNet file is read), 1.0.0
    is the from-scratch detector."""
    if cfg.get("arch") == PRETRAINED_ARCH:
        return CraterNet(CraterNetConfig.from_dict(cfg))
    return PitsDetector(DetectorConfig.from_dict(cfg))


def save_checkpoint(path: Path, module: PitsDetector | CraterNet, version: str,
                    config: dict[str, Any]) -> str:
    """Write ``pits-<version>.pt`` (state_dict + config, tensors and plain types only, so
    ``torch.load(weights_only=True)`` reads it); returns its sha256. The pretrained
    network is stored in float16 (:func:`stored_precision`) to stay under 3 MB."""
    return _save(path, MODEL_NAME, version, module, config, half=isinstance(module, CraterNet))


def stored_precision(module: PitsDetector | CraterNet) -> None:
    """Round ``module``'s floating weights as :func:`save_checkpoint` stores them, so the
    metrics measured before saving are those of the committed file."""
    if isinstance(module, CraterNet):
        with torch.no_grad():
            for t in module.state_dict().values():
                if t.is_floating_point():
                    t.copy_(t.half().float())

def detect_array(image: np.ndarray, module: DetectorModule, *, scale: float,
                 min_score: float = MIN_SCORE, nms_iou: float = 0.5, tile: int = TILE,
                 overlap: int = OVERLAP, batch: int = BATCH) -> np.ndarray:
    """``(n, 6)`` detections (x_min, y_min, x_max, y_max in input px, class 0..4, score);
    ``batch`` tiles per network call (1 is fastest for the crater backbone on CPU)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[..., :3].astype(np.float32).mean(axis=2)
    if image.ndim != 2 or min(image.shape) < 8:
        raise ValueError(f"expected a 2-D grayscale image of at least 8x8 px, got {image.shape}")
    cap_threads(MAX_THREADS)
    module.eval()
    small = resize_image(normalize_image(image), scale)
    stride = module.config.stride
    side = min(tile, 32 * int(np.ceil(max(small.shape) / 32)))  # small images: one tile
    tiles = list(iter_tiles(small, side, min(overlap, side // 2)))
    found = []
    with torch.inference_mode():
        for s in range(0, len(tiles), batch):
            chunk = tiles[s:s + batch]
            x = torch.from_numpy(np.stack([t for _, _, t in chunk])[:, None])
            for (y0, x0, _), dets in zip(chunk, decode(module(x), stride, min_score),
                                         strict=True):
                found.append(to_image(dets, x0, y0, scale, image.shape))
    dets = np.concatenate(found) if found else np.zeros((0, 6))
    keep = (dets[:, 2] - dets[:, 0] > 0) & (dets[:, 3] - dets[:, 1] > 0)
    return nms(dets[keep], nms_iou)


def detect(image: np.ndarray, model: LoadedModel, *, threshold: float | None = None
           ) -> pd.DataFrame:
    """Landforms in a grayscale image: columns x_min, y_min, x_max, y_max (input pixels),
    class (1..5 = Type-1..Type-5), score; best first. ``threshold`` defaults to the
    model's validation-chosen score threshold."""
    thr = model.threshold if threshold is None else float(threshold)
    if not 0.0 < thr < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {thr}")
    module, batch = runnable(model.module, BATCH)
    dets = detect_array(image, module, scale=model.input_scale,
                        min_score=min(thr, MIN_SCORE),
                        nms_iou=float(model.config.get("nms_iou", 0.5)), batch=batch)
    dets = dets[dets[:, 5] >= thr]
    frame = pd.DataFrame(dets, columns=OUTPUT_COLUMNS)
    frame["class"] = frame["class"].astype(int) + 1
    return frame.reset_index(drop=True)
