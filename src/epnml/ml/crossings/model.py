"""Fully convolutional temporal-convolution segmenter for MESSENGER region labelling.

Why this shape: a whole orbit (~43,200 1-s samples) is labelled in one forward
pass instead of 43,200 overlapping 30-s windows. A strided stem downsamples by
``down`` (the boundaries move slowly compared to 1 s), stacks of dilated
residual 1-D convolutions give a receptive field of many minutes (enough to see
the sheath on both sides of a shock layer), and the coarse features are
upsampled and fused with a full-resolution branch so edges stay sharp to ~1 s.
Any input length works: the input is padded to a multiple of ``down`` and the
output cropped back, so output length == input length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from epnml.ml.checkpoints import ConfigDict

from .features import N_FEATURES
from .labels import N_REGIONS


@dataclass(frozen=True)
class ModelConfig(ConfigDict):
    """Architecture hyper-parameters (saved with the weights)."""

    INT_TUPLES = ("dilations",)

    in_channels: int = N_FEATURES
    n_classes: int = N_REGIONS
    width: int = 32
    #: full-resolution branch width (sharp edges).
    fine_width: int = 12
    kernel_size: int = 3
    #: dilations of one stack (at the downsampled rate); repeated ``stacks`` times.
    dilations: tuple[int, ...] = field(default=(1, 2, 4, 8, 16, 32))
    stacks: int = 2
    #: downsampling factor of the temporal-convolution path.
    down: int = 8
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if min(self.in_channels, self.n_classes, self.width, self.fine_width, self.stacks) < 1:
            raise ValueError("channels, classes, widths and stacks must be >= 1")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd and positive (keeps lengths aligned)")
        if not self.dilations or any(d < 1 for d in self.dilations):
            raise ValueError("dilations must be a non-empty sequence of positive ints")
        if self.down < 1:
            raise ValueError("down must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")

    @property
    def receptive_field_s(self) -> int:
        """Receptive field of the coarse path in input samples (seconds at 1 Hz)."""
        per_block = 2 * (self.kernel_size - 1)
        coarse = 1 + self.stacks * per_block * sum(self.dilations)
        return coarse * self.down + 2 * self.down



class DilatedBlock(nn.Module):
    """Residual block: two dilated convs (BN-GELU) with dropout; same length out."""

    def __init__(self, width: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        pad = dilation * (kernel // 2)
        self.body = nn.Sequential(
            nn.Conv1d(width, width, kernel, padding=pad, dilation=dilation),
            nn.BatchNorm1d(width),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Conv1d(width, width, kernel, padding=pad, dilation=dilation),
            nn.BatchNorm1d(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x + self.body(x))


class CrossingsTCN(nn.Module):
    """(B, C, T) scaled features -> (B, n_classes, T) region logits, any T >= 1."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = config or ModelConfig()
        self.config = cfg
        w, k = cfg.width, cfg.kernel_size
        self.fine = nn.Sequential(
            nn.Conv1d(cfg.in_channels, cfg.fine_width, 5, padding=2),
            nn.BatchNorm1d(cfg.fine_width),
            nn.GELU(),
        )
        self.stem = nn.Sequential(
            nn.Conv1d(cfg.in_channels, w, 2 * cfg.down + 1, stride=cfg.down, padding=cfg.down),
            nn.BatchNorm1d(w),
            nn.GELU(),
        )
        self.blocks = nn.Sequential(
            *(
                DilatedBlock(w, k, d, cfg.dropout)
                for _ in range(cfg.stacks)
                for d in cfg.dilations
            )
        )
        self.fuse = nn.Sequential(
            nn.Conv1d(w + cfg.fine_width, w, 3, padding=1),
            nn.BatchNorm1d(w),
            nn.GELU(),
            nn.Conv1d(w, cfg.n_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected input (B, {self.config.in_channels}, T), got {tuple(x.shape)}"
            )
        t = x.shape[-1]
        if t < 1:
            raise ValueError("need at least one time step")
        down = self.config.down
        pad = (-t) % down
        xp = F.pad(x, (0, pad), mode="replicate") if pad else x
        h = self.blocks(self.stem(xp))
        h = F.interpolate(h, size=xp.shape[-1], mode="linear", align_corners=False)
        out = self.fuse(torch.cat([h, self.fine(xp)], dim=1))
        return out[..., :t]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
