"""Small U-Net for mound segmentation, and the engineered DTM inputs it reads.

Why engineered inputs: the GMAP mound study found slope, aspect and hillshade derived
from the DTM helped the U-Net; computing them here (not learning them) keeps the
network small enough for CPU. Five channels:

0. elevation, detrended: minus a Gaussian-smoothed (sigma 16 px) copy, divided by a
   robust scale -- the local relief of a mound, not the absolute height of the plains;
1. slope (degrees / 30);
2. sin(aspect), 3. cos(aspect), weighted by ``min(1, slope / 5 deg)`` so flat noise
   carries no direction;
4. hillshade (sun azimuth 315 deg, altitude 45 deg), centred on its median.

A plain image (a hillshade PNG or an orthoimage, no elevation) goes in through
:func:`image_features`: the normalised image in channel 4 and zeros elsewhere. The
committed model is trained with a quarter of its samples in that form, so one set of
weights serves both inputs (image-only results are worse; see the model card).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .shading import hillshade

N_CHANNELS = 5
CHANNEL_NAMES = ("relief", "slope", "aspect_sin", "aspect_cos", "hillshade")


def dtm_features(dtm: np.ndarray, pixel_m: float) -> np.ndarray:
    """``(5, H, W)`` float32 inputs from a DTM in metres (NaN = no data -> 0)."""
    from scipy import ndimage

    if pixel_m <= 0 or not math.isfinite(pixel_m):
        raise ValueError(f"pixel size must be a positive number of metres, got {pixel_m}")
    z = np.asarray(dtm, dtype=np.float32)
    finite = np.isfinite(z)
    if not finite.any():
        raise ValueError("DTM holds no valid elevation")
    fill = float(np.median(z[finite]))
    z = np.where(finite, z, fill).astype(np.float32)
    relief = z - ndimage.gaussian_filter(z, 16.0, mode="reflect")
    scale = max(float(np.percentile(np.abs(relief), 99)), 1.0)
    gy, gx = np.gradient(z, pixel_m)
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    aspect = np.arctan2(-gx, gy)
    weight = np.clip(slope / 5.0, 0.0, 1.0)
    shade = hillshade(z, pixel_m)
    out = np.stack([relief / scale, slope / 30.0, np.sin(aspect) * weight,
                    np.cos(aspect) * weight, shade - np.median(shade)]).astype(np.float32)
    out[:, ~finite] = 0.0
    return out


def image_features(image: np.ndarray) -> np.ndarray:
    """``(5, H, W)`` inputs from a plain grayscale image: robust-normalised in channel 4."""
    img = np.asarray(image, dtype=np.float32)
    finite = np.isfinite(img)
    if not finite.any():
        raise ValueError("image holds no valid pixel")
    lo, med, hi = np.percentile(img[finite], [1, 50, 99])
    out = np.zeros((N_CHANNELS, *img.shape), np.float32)
    # a hillshade in [0, 1] spans ~0.5 between its 1st and 99th percentiles
    out[4] = np.where(finite, (img - med) / max(float(hi - lo), 1e-6) * 0.5, 0.0)
    return out


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = N_CHANNELS
    widths: tuple[int, ...] = (16, 32, 48, 64)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        return cls(int(d.get("in_channels", N_CHANNELS)),
                   tuple(int(w) for w in d.get("widths", (16, 32, 48, 64))))


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class UNet(nn.Module):
    """Encoder-decoder with skip connections; one logit per pixel (mound vs not).

    Input sides must be multiples of ``2 ** (len(widths) - 1)``.
    """

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        w = self.config.widths
        self.down = nn.ModuleList([_block(self.config.in_channels, w[0])] +
                                  [_block(w[i - 1], w[i]) for i in range(1, len(w))])
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[i], w[i - 1], 2, stride=2)
                                 for i in range(len(w) - 1, 0, -1)])
        self.dec = nn.ModuleList([_block(2 * w[i - 1], w[i - 1])
                                  for i in range(len(w) - 1, 0, -1)])
        self.head = nn.Conv2d(w[0], 1, 1)

    @property
    def multiple(self) -> int:
        return int(2 ** (len(self.config.widths) - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.up, self.dec, strict=True):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        out: torch.Tensor = self.head(x)[:, 0]
        return out


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
