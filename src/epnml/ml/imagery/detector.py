"""A small anchor-free (CenterNet-style) detector for grayscale tiles, in plain torch.

Why this shape: the labelled set is tiny (75 distinct HiRISE crops), so the network
must be small enough to train in minutes on 2 CPU cores and run >= 1,000 tiles/min,
yet see objects from ~10 px to ~350 px. A light residual backbone down to stride 32
(receptive field for large craters) is merged by a feature pyramid back to a stride-4
map, on which one heatmap per class marks object centres and two small heads regress
box size (log scale) and sub-cell offset. No anchors, no NMS inside the network.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

#: DeepLandforms classes, index 0..4 = Type-1..Type-5 (the YOLO label index).
CLASS_NAMES = (
    "Type-1 skylight",
    "Type-2 pit crater",
    "Type-3 elongated depression",
    "Type-4 shallow aligned depressions",
    "Type-5 impact crater",
)
#: EPN-TAP ``feature_name`` per class (same order).
FEATURE_NAMES = ("skylight", "pit crater", "elongated depression", "aligned depressions",
                 "impact crater")
N_CLASSES = len(CLASS_NAMES)


@dataclass(frozen=True)
class DetectorConfig:
    """Architecture hyper-parameters (stored in the checkpoint and the JSON card)."""

    widths: tuple[int, int, int, int, int] = (16, 24, 40, 80, 128)
    fpn: int = 48
    head: int = 32
    n_classes: int = N_CLASSES
    stride: int = 4

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectorConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "widths" in known:
            known["widths"] = tuple(int(w) for w in known["widths"])
        return cls(**known)


def _cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1, groups: int = 1
         ) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, groups=groups,
                  bias=False),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _sep(c: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise-separable 3x3 (cheap spatial context where maps are large)."""
    return nn.Sequential(
        nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation, groups=c, bias=False),
        nn.BatchNorm2d(c), nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c),
        nn.ReLU(inplace=True))


class _Res(nn.Module):
    """Residual block of two separable convs; dilation widens the context at stride 32."""

    def __init__(self, c: int, dilation: int = 1) -> None:
        super().__init__()
        self.a = _sep(c, dilation)
        self.b = _sep(c, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x))


class PitsDetector(nn.Module):
    """Input ``(B, 1, H, W)`` (H, W multiples of 32), output a dict of stride-4 maps.

    ``heatmap`` (B, C, H/4, W/4) logits, ``size`` (B, 2, ...) log(w, h / stride),
    ``offset`` (B, 2, ...) centre offset within the cell, in cells.
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DetectorConfig()
        w0, w1, w2, w3, w4 = cfg.widths
        self.stem = nn.Sequential(_cbr(1, w0, 2), _cbr(w0, w1, 2))              # /4
        self.s8 = nn.Sequential(_cbr(w1, w2, 2), _Res(w2))                      # /8
        self.s16 = nn.Sequential(_cbr(w2, w3, 2), _Res(w3), _Res(w3))           # /16
        self.s32 = nn.Sequential(_cbr(w3, w4, 2), _Res(w4), _Res(w4, 2), _Res(w4, 4))  # /32
        self.lat = nn.ModuleList(nn.Conv2d(c, o, 1) for c, o in
                                 ((w1, cfg.head), (w2, cfg.fpn), (w3, cfg.fpn), (w4, cfg.fpn)))
        self.smooth8 = _cbr(cfg.fpn, cfg.fpn)
        self.reduce4 = nn.Conv2d(cfg.fpn, cfg.head, 1)
        self.smooth4 = _sep(cfg.head)
        self.hm = nn.Conv2d(cfg.head, cfg.n_classes, 1)
        self.wh = nn.Conv2d(cfg.head, 2, 1)
        self.off = nn.Conv2d(cfg.head, 2, 1)
        if self.hm.bias is not None:  # focal-loss prior: start at p = 0.01 everywhere
            nn.init.constant_(self.hm.bias, -math.log((1 - 0.01) / 0.01))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        c4 = self.stem(x)
        c8 = self.s8(c4)
        c16 = self.s16(c8)
        c32 = self.s32(c16)
        p = self.lat[3](c32)
        p = self.lat[2](c16) + F.interpolate(p, size=c16.shape[-2:], mode="nearest")
        p = self.lat[1](c8) + F.interpolate(p, size=c8.shape[-2:], mode="nearest")
        p = self.reduce4(self.smooth8(p))
        p = self.smooth4(self.lat[0](c4) + F.interpolate(p, size=c4.shape[-2:], mode="nearest"))
        return {"heatmap": self.hm(p), "size": self.wh(p), "offset": self.off(p)}


class DetectorModule(Protocol):
    """What tiled inference needs of a detector: ``config.stride`` and stride-``stride``
    ``heatmap`` / ``size`` / ``offset`` maps (PitsDetector, craters.net.CraterNet)."""

    @property
    def config(self) -> Any: ...

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def eval(self) -> Any: ...


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def decode(out: dict[str, torch.Tensor], stride: int, threshold: float = 0.05,
           top_k: int = 100, log_size_range: tuple[float, float] = (-4.0, 6.0)
           ) -> list[np.ndarray]:
    """Per batch item an array ``(n, 6)``: x_min, y_min, x_max, y_max (px), class 0..4, score.

    Local maxima of the class heatmaps (3x3 max-pool, the CenterNet substitute for
    NMS within one tile) above ``threshold``, at most ``top_k`` per tile.
    """
    heat = torch.sigmoid(out["heatmap"])
    peaks = heat * (F.max_pool2d(heat, 3, 1, 1) == heat)
    b, c, h, w = heat.shape
    scores, idx = peaks.reshape(b, -1).topk(min(top_k, c * h * w))  # channels-last too
    result = []
    for i in range(b):
        keep = scores[i] >= threshold
        s, k = scores[i][keep], idx[i][keep]
        cls = k // (h * w)
        pos = k % (h * w)
        ys, xs = (pos // w).float(), (pos % w).float()
        off = out["offset"][i].view(2, -1)[:, pos]
        size = torch.exp(out["size"][i].view(2, -1)[:, pos].clamp(*log_size_range)) * stride
        cx, cy = (xs + off[0]) * stride, (ys + off[1]) * stride
        boxes = torch.stack([cx - size[0] / 2, cy - size[1] / 2, cx + size[0] / 2,
                             cy + size[1] / 2, cls.float(), s], dim=1)
        result.append(boxes.detach().cpu().numpy().astype(np.float64))
    return result


def normalize_image(image: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole image (NaN = no data -> 0 after scaling).

    Whole-image statistics, not per tile, so a tile of plain terrain keeps its contrast
    relative to the image it comes from (training normalises crops the same way).
    """
    arr = np.asarray(image, dtype=np.float32)
    finite = np.isfinite(arr)
    if not finite.any():
        return np.zeros_like(arr)
    vals = arr[finite]
    mean, std = float(vals.mean()), float(vals.std())
    out = (arr - mean) / max(std, 1e-6)
    out[~finite] = 0.0
    return out


def resize_image(image: np.ndarray, scale: float) -> np.ndarray:
    """Resample a float image by ``scale`` (Pillow, antialiased when shrinking)."""
    from PIL import Image

    if scale == 1.0:
        return np.asarray(image, dtype=np.float32)
    h, w = image.shape
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    img = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), mode="F")
    return np.asarray(img.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
