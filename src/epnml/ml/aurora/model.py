"""The second stage: a small anchor-free aurora detector in plain torch (no torchvision).

Input: the prefilter's square crop around the disk, resampled to 128 x 128, brightness
as ``log1p(B / 10 R) / log1p(2000)`` (kilorayleigh dayglow and 10 R aurora both within
0..1.5). Three stride-2 stages with a dilated residual block (receptive field for diffuse
glows a third of the disk wide), back up to stride 4 with a skip: one heatmap per auroral
type marks the centres, two small heads give the box size (log) and the sub-cell offset
(CenterNet's decoding: 3 x 3 local maxima, no anchors). About 60 k parameters: it trains
in minutes on one core. Detections whose centre lies off the night side are dropped,
then boxes overlapping another of a higher score (IoU > 0.3, any type) are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from epnml.config import models_dir
from epnml.ml.aurora import AURORA_TYPES
from epnml.ml.aurora.geometry import DiskGeometry
from epnml.ml.aurora.prefilter import Prefiltered, PrefilterParams, crop_square, prefilter
from epnml.ml.checkpoints import available_versions as _available_versions
from epnml.ml.checkpoints import read_checkpoint
from epnml.ml.checkpoints import save_checkpoint as _save
from epnml.ml.model_info import ModelInfo

MODEL_NAME = "aurora"
WEIGHTS_DIR = models_dir() / "weights"
INPUT_PX = 128
STRIDE = 4
_B0, _LOGMAX = 10.0, math.log1p(2000.0)


def normalise(brightness: np.ndarray) -> np.ndarray:
    return np.asarray(np.log1p(np.clip(brightness, 0, None) / _B0) / _LOGMAX, np.float32)


@dataclass(frozen=True)
class DetectorConfig:
    widths: tuple[int, int, int] = (12, 24, 32)
    n_classes: int = len(AURORA_TYPES)

    def to_dict(self) -> dict[str, Any]:
        return {"widths": list(self.widths), "n_classes": self.n_classes}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectorConfig:
        return cls(tuple(int(w) for w in d["widths"]), int(d["n_classes"]))  # type: ignore[arg-type]


def _cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation,
                                   bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Res(nn.Module):
    def __init__(self, c: int, dilation: int) -> None:
        super().__init__()
        self.a, self.b = _cbr(c, c, dilation=dilation), _cbr(c, c, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x))


class AuroraDetector(nn.Module):
    """``(B, 1, 128, 128)`` -> dict of stride-4 maps: ``heatmap`` (B, C, 32, 32) logits,
    ``size`` (B, 2, ...) log(w, h / stride), ``offset`` (B, 2, ...) in cells."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DetectorConfig()
        w0, w1, w2 = cfg.widths
        self.s2 = _cbr(1, w0, 2)
        self.s4 = nn.Sequential(_cbr(w0, w1, 2), _Res(w1, 1))
        self.s8 = nn.Sequential(_cbr(w1, w2, 2), _Res(w2, 2), _Res(w2, 4))
        self.up = nn.Conv2d(w2, w1, 1)
        self.merge = _cbr(w1, w1)
        self.hm = nn.Conv2d(w1, cfg.n_classes, 1)
        self.wh = nn.Conv2d(w1, 2, 1)
        self.off = nn.Conv2d(w1, 2, 1)
        if self.hm.bias is not None:  # focal-loss prior p = 0.01
            nn.init.constant_(self.hm.bias, -math.log(99.0))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        c4 = self.s4(self.s2(x))
        c8 = self.s8(c4)
        p = self.merge(c4 + F.interpolate(self.up(c8), size=c4.shape[-2:], mode="nearest"))
        return {"heatmap": self.hm(p), "size": self.wh(p), "offset": self.off(p)}


def decode(out: dict[str, torch.Tensor], threshold: float, top_k: int = 10
           ) -> list[np.ndarray]:
    """Per batch item ``(n, 6)``: x0, y0, x1, y1 (input px), class index, score: the
    landform detectors' CenterNet decoding, with this head's size range."""
    from epnml.ml.imagery.detector import decode as decode_centres

    return decode_centres(out, STRIDE, threshold, top_k, log_size_range=(-3.0, 4.0))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class LoadedAuroraModel:
    module: AuroraDetector
    info: ModelInfo
    config: dict[str, Any]

    @property
    def threshold(self) -> float:
        return float(self.config.get("threshold", 0.3))


@dataclass
class Detection:
    aurora_type: str
    score: float
    #: box in image pixels (x0, y0, x1, y1; continuous coordinates)
    box: tuple[float, float, float, float]

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


def available_versions(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    return _available_versions(MODEL_NAME, weights_dir)


def load_model(version: str | None = None, path: Path | None = None) -> LoadedAuroraModel:
    """Load ``aurora-<version>.pt`` (default newest) after its sha256 check."""
    ckpt = read_checkpoint(MODEL_NAME, version, path,
                           lambda cfg: AuroraDetector(DetectorConfig.from_dict(cfg)),
                           WEIGHTS_DIR)
    return LoadedAuroraModel(ckpt.module, ckpt.info, ckpt.config)


def save_checkpoint(path: Path, module: AuroraDetector, version: str,
                    config: dict[str, Any]) -> str:
    return _save(path, MODEL_NAME, version, module, config, half=True)


def model_input(brightness: np.ndarray, pre: Prefiltered) -> np.ndarray:
    """The detector's input of a prefiltered image: the normalised crop (128 x 128)."""
    if pre.crop is None:
        raise ValueError("no disk: nothing to crop")
    return normalise(crop_square(brightness, pre.crop, INPUT_PX))


def to_image(box: np.ndarray, crop: tuple[int, int, int]) -> tuple[float, float, float, float]:
    """A box of the detector's input -> image pixels."""
    x0, y0, size = crop
    f = size / INPUT_PX
    return (float(x0 + box[0] * f), float(y0 + box[1] * f), float(x0 + box[2] * f),
            float(y0 + box[3] * f))


def detect(brightness: np.ndarray, geometry: DiskGeometry | None, model: LoadedAuroraModel,
           threshold: float | None = None, prefilter_params: PrefilterParams | None = None,
           use_prefilter: bool = True) -> tuple[Prefiltered, list[Detection]]:
    """Both stages on one image: the prefilter, then (on candidates) the detector."""
    pre = prefilter(brightness, geometry, prefilter_params)
    if pre.crop is None or (use_prefilter and not pre.candidate):
        return pre, []
    thr = model.threshold if threshold is None else threshold
    x = torch.from_numpy(model_input(brightness, pre))[None, None]
    with torch.no_grad():
        (found,) = decode(model.module(x), thr)
    h, w = brightness.shape
    dets: list[Detection] = []
    for row in sorted(found.tolist(), key=lambda r: -r[5]):
        box = to_image(np.asarray(row), pre.crop)
        cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
        if not (0 <= cx < w and 0 <= cy < h and pre.night[cy, cx]):
            continue  # an aurora is seen on the night side only
        box = (max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]),
               min(float(h), box[3]))
        if any(iou(np.asarray(box), np.asarray(d.box)) > 0.3 for d in dets):
            continue
        dets.append(Detection(AURORA_TYPES[int(row[4])], float(row[5]), box))
    return pre, dets
