"""Ice-patch chunk classifier (small Xception-style CNN) and the image-level rule.

Why this shape: Gergacz & Kereszturi classify 1024 x 1024 grayscale HiRISE chunks with an
Xception network (depthwise-separable convolutions, residual entry flow) and then grade
each image from its chunk probabilities. Here:

* a chunk of ``CHUNK`` = 1024 px is reduced by an 8 x 8 block mean to 128 x 128 (CPU
  budget; the smallest labelled patch, 800 px ~ 28 x 28 px, still covers ~3 x 3 cells);
* two input channels: the block mean minus the chunk median, divided by the image-wide
  1-99 % range (so a CO2-frost-brightened chunk is not just "bright"), and the fraction of
  SATURATED pixels in each block (DN at the format's maximum, e.g. 255 for 8-bit). The
  second channel answers the first pitfall the authors report (saturated pixels taken for
  ice) with information the block mean would otherwise blur away;
* ~70 k parameters: stem conv (stride 2) + 2x2 max-pool, three Xception entry blocks
  (separable conv x2 + max-pool, 1x1 strided residual), one middle block, separable
  exit conv, global average pooling, one logit (ice / no ice).

:func:`image_class` is the authors' image-level rule, a pure function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

CHUNK = 1024
DOWNSAMPLE = 8
INPUT_PX = CHUNK // DOWNSAMPLE
#: a chunk probability at or above this makes the chunk "icy" (the rule's 60 %).
ICY = 0.6
#: chunks at the right/bottom edge with less valid area than this are not classified.
MIN_VALID = 0.25
IMAGE_GOOD = "good"
IMAGE_HARD = "hard to identify"
IMAGE_BAD = "bad"


def image_class(probs: Sequence[float] | np.ndarray) -> str:
    """Image-level grade from chunk probabilities (Gergacz & Kereszturi's rule).

    Text: "good" when the mean chunk probability is above 60 % and more than half of the
    chunks are >= 60 %, or when fewer than half are icy and the mean is above 20 %; "hard
    to identify" for 40-60 % (and a lower band down to 1 % when only a few chunks are
    icy); "bad" otherwise.

    Our reading (n = number of chunks, k = chunks with p >= 0.6 = "icy", m = mean p):

    * majority branch, k >= n / 2:
      good if m > 0.6 and k > n / 2; hard if 0.4 <= m <= 0.6, or m > 0.6 with exactly
      half the chunks icy (the text leaves this case open; the mean is high, the
      majority test fails); bad if m < 0.4;
    * minority branch, k < n / 2:
      good if m > 0.2 (literal, even when k = 0); hard if 0.01 <= m <= 0.2 and k >= 1
      -- the "lower band" read as: only a few (at least one, fewer than half) chunks are
      icy; bad otherwise (in particular k = 0 and m <= 0.2).

    Bounds: "above" is strict, "40-60 %" and "down to 1 %" are inclusive (the mean is
    compared after rounding to 1e-9, so float sums do not move it across a bound). Probabilities
    must be in [0, 1]; an empty list is refused (no chunk, no grade).
    """
    p = np.asarray(list(probs), dtype=float)
    if p.size == 0:
        raise ValueError("image_class needs at least one chunk probability")
    if not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("chunk probabilities must be finite and within [0, 1]")
    # the mean is rounded to 1e-9 so that 0.2 + 0.2 + 0.2 over 3 sits ON the 20 % bound
    n, k, m = p.size, int((p >= ICY).sum()), round(float(p.mean()), 9)
    if 2 * k >= n:
        if m > 0.6 and 2 * k > n:
            return IMAGE_GOOD
        if m >= 0.4:
            return IMAGE_HARD
        return IMAGE_BAD
    if m > 0.2:
        return IMAGE_GOOD
    if m >= 0.01 and k >= 1:
        return IMAGE_HARD
    return IMAGE_BAD


def saturation_level(mode: str | None) -> float | None:
    """DN at which a pixel of this Pillow mode is saturated (None: unknown, e.g. float)."""
    if mode in ("L", "P", "LA", "PA", "RGB", "RGBA", "1"):
        return 255.0
    if mode is not None and mode.startswith("I;16"):
        return 65535.0
    return None


@dataclass(frozen=True)
class Chunk:
    """Where one chunk sits in the image (px) and how much of it holds data."""

    row: int
    col: int
    y0: int
    x0: int
    y1: int
    x1: int
    valid: float


def chunk_inputs(pixels: np.ndarray, saturation: float | None, chunk: int = CHUNK,
                 downsample: int = DOWNSAMPLE) -> tuple[np.ndarray, list[Chunk]]:
    """``(n, 2, chunk/downsample, chunk/downsample)`` float32 inputs and their chunks.

    Chunks tile the image from the top-left corner without overlap; partial chunks at
    the right/bottom edges are padded (with the chunk median) and kept when at least
    ``MIN_VALID`` of them is valid data. NaN pixels are no data.
    """
    img = np.asarray(pixels, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {img.shape}")
    if chunk % downsample:
        raise ValueError(f"chunk {chunk} is not a multiple of downsample {downsample}")
    finite = np.isfinite(img)
    if not finite.any():
        raise ValueError("image holds no valid pixel")
    sat_mask = finite & (img >= saturation) if saturation is not None else \
        np.zeros(img.shape, bool)
    good = img[finite & ~sat_mask]
    lo, hi = np.percentile(good, [1, 99]) if good.size else (0.0, 1.0)
    span = max(float(hi - lo), 1.0)
    h, w = img.shape
    side = chunk // downsample
    out: list[np.ndarray] = []
    where: list[Chunk] = []
    for r, y0 in enumerate(range(0, h, chunk)):
        for c, x0 in enumerate(range(0, w, chunk)):
            part = img[y0:y0 + chunk, x0:x0 + chunk]
            fin = finite[y0:y0 + chunk, x0:x0 + chunk]
            valid = float(fin.sum()) / (chunk * chunk)
            if valid < MIN_VALID:
                continue
            med = float(np.median(part[fin]))
            full = np.full((chunk, chunk), med, np.float32)
            full[:part.shape[0], :part.shape[1]] = np.where(fin, part, med)
            sat = np.zeros((chunk, chunk), np.float32)
            sat[:part.shape[0], :part.shape[1]] = sat_mask[y0:y0 + chunk, x0:x0 + chunk]
            mean = full.reshape(side, downsample, side, downsample).mean(axis=(1, 3))
            frac = sat.reshape(side, downsample, side, downsample).mean(axis=(1, 3))
            out.append(np.stack([(mean - med) / span * 4.0, frac]).astype(np.float32))
            where.append(Chunk(r, c, y0, x0, min(h, y0 + chunk), min(w, x0 + chunk), valid))
    if not out:
        return np.zeros((0, 2, side, side), np.float32), []
    return np.stack(out), where


@dataclass(frozen=True)
class IceNetConfig:
    in_channels: int = 2
    widths: tuple[int, ...] = (16, 32, 64, 96)
    exit_width: int = 128

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IceNetConfig:
        return cls(int(d.get("in_channels", 2)),
                   tuple(int(w) for w in d.get("widths", (16, 32, 64, 96))),
                   int(d.get("exit_width", 128)))


class _SepConv(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1, batch-normalised (Xception's building block)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


class _EntryBlock(nn.Module):
    """ReLU-Sep-ReLU-Sep-MaxPool(s2) with a strided 1x1 residual (Xception entry flow)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), _SepConv(cin, cout), nn.ReLU(),
                                  _SepConv(cout, cout), nn.MaxPool2d(3, 2, 1))
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False),
                                  nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x) + self.skip(x)
        return out


class _MiddleBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), _SepConv(c, c), nn.ReLU(), _SepConv(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.body(x)
        return out


class IceNet(nn.Module):
    """Chunk -> one logit (ice / no ice)."""

    def __init__(self, config: IceNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or IceNetConfig()
        w = cfg.widths
        # stride 2 then a 2x2 max-pool: 128 -> 32 px before the (slow on CPU) depthwise
        # blocks; max-pooling keeps small bright spots that averaging would dilute
        self.stem = nn.Sequential(nn.Conv2d(cfg.in_channels, w[0], 3, stride=2, padding=1,
                                            bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(),
                                  nn.MaxPool2d(2))
        self.entry = nn.Sequential(*[_EntryBlock(w[i], w[i + 1]) for i in range(len(w) - 1)])
        self.middle = _MiddleBlock(w[-1])
        self.exit = nn.Sequential(_SepConv(w[-1], cfg.exit_width), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                                  nn.Linear(cfg.exit_width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.exit(self.middle(self.entry(self.stem(x))))[:, 0]
        return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -60, 60))))


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
