"""Crater detector 2.x: ImageNet-pretrained EfficientNet-Lite0 + a small feature pyramid +
CenterNet heads at stride 4.

Why: the 1.x network was trained from scratch on ~900 named craters of coarse mosaics and
finds almost nothing on real CTX tiles (F1 0.02). A pretrained backbone brings edge and
shading filters learnt from 1.3 M images; only the stride 4/8/16 stages are kept (the
deeper ones see 32 px cells, coarser than the craters of interest, 5-40 px), and the
stem and the first three blocks stay frozen (2-core CPU training). The pyramid merges
the stride-16 and -8 maps into the stride-4 map, where one heatmap marks crater centres
and two heads give log box size and the sub-cell offset: the same outputs as
``epnml.ml.imagery.detector.PitsDetector``, so ``decode`` and the tiled inference of
``epnml.ml.pits.inference.detect_array`` apply unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from epnml.ml.backbone import FEATURE_BLOCKS, EfficientNetLite0, load_pretrained
from epnml.ml.fuse import fast_module

ARCH = "efficientnet-lite0-fpn"


@dataclass(frozen=True)
class CraterNetConfig:
    """Architecture hyper-parameters (stored in the checkpoint and the JSON card)."""

    arch: str = ARCH
    fpn: int = 48
    head: int = 48
    n_classes: int = 1
    stride: int = 4
    #: backbone blocks kept (11 = up to the stride-16 output)
    n_blocks: int = 11
    #: stem + blocks 0..frozen_blocks-1 are not trained (blocks 0..2 = stride <= 4)
    frozen_blocks: int = 3
    #: the network's input is whole-image z-scores; times this ~ the ImageNet range -1..1
    input_gain: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CraterNetConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _sep(c: int) -> nn.Sequential:
    """Depthwise-separable 3x3 + BN + ReLU (spatial context, cheap on big maps)."""
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c),
                         nn.ReLU(inplace=True))


class CraterNet(nn.Module):
    """Input ``(B, 1, H, W)`` z-scored grayscale (H, W multiples of 16); output a dict of
    stride-4 maps: ``heatmap`` logits, ``size`` log(w, h / stride), ``offset`` (cells)."""

    def __init__(self, config: CraterNetConfig | None = None, pretrained: bool = False) -> None:
        super().__init__()
        self.config = cfg = config or CraterNetConfig()
        if cfg.arch != ARCH:
            raise ValueError(f"unknown crater network architecture {cfg.arch!r}")
        self.backbone = EfficientNetLite0(n_blocks=cfg.n_blocks)
        if pretrained:
            load_pretrained(self.backbone)
        c4, c8, c16 = (FEATURE_BLOCKS[s][1] for s in (4, 8, 16))
        self.lat16 = nn.Conv2d(c16, cfg.fpn, 1)
        self.lat8 = nn.Conv2d(c8, cfg.fpn, 1)
        self.lat4 = nn.Conv2d(c4, cfg.fpn, 1)
        self.smooth8 = _sep(cfg.fpn)
        self.smooth4 = nn.Sequential(_sep(cfg.fpn), _sep(cfg.fpn))
        self.hm = nn.Sequential(nn.Conv2d(cfg.fpn, cfg.head, 3, padding=1), nn.ReLU(inplace=True),
                                nn.Conv2d(cfg.head, cfg.n_classes, 1))
        self.wh = nn.Sequential(nn.Conv2d(cfg.fpn, cfg.head, 3, padding=1), nn.ReLU(inplace=True),
                                nn.Conv2d(cfg.head, 2, 1))
        self.off = nn.Sequential(nn.Conv2d(cfg.fpn, cfg.head, 3, padding=1),
                                 nn.ReLU(inplace=True), nn.Conv2d(cfg.head, 2, 1))
        last = self.hm[-1]
        if isinstance(last, nn.Conv2d) and last.bias is not None:  # focal prior p = 0.01
            nn.init.constant_(last.bias, -math.log((1 - 0.01) / 0.01))
        self.freeze()

    def frozen_modules(self) -> list[nn.Module]:
        b = self.backbone
        return [b._conv_stem, b._bn0, *list(b._blocks)[:self.config.frozen_blocks]]

    def freeze(self) -> None:
        for m in self.frozen_modules():
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> CraterNet:
        """Backbone BatchNorm stays in eval mode (ImageNet statistics; batches of 8 crops
        are too small to re-estimate them)."""
        super().train(mode)
        for m in self.backbone.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (x * self.config.input_gain).expand(-1, 3, -1, -1)
        return self.heads(self.backbone.features(x))

    def heads(self, f: dict[int, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Pyramid and heads on the backbone's stride 4/8/16 maps (the bench times this
        part alone to tell the backbone's cost)."""
        p = self.lat16(f[16])
        p = self.smooth8(self.lat8(f[8]) + F.interpolate(p, size=f[8].shape[-2:],
                                                         mode="nearest"))
        p = self.smooth4(self.lat4(f[4]) + F.interpolate(p, size=f[4].shape[-2:],
                                                         mode="bilinear", align_corners=False))
        return {"heatmap": self.hm(p), "size": self.wh(p), "offset": self.off(p)}


def runnable(module: Any, batch: int) -> tuple[Any, int]:
    """The module tiled inference runs and its tiles per call: a :class:`CraterNet` (craters
    2.x, pits 2.x) as its inference copy (``epnml.ml.fuse``: BatchNorm folded, channels-last;
    same outputs within float rounding) one tile at a time, the fastest on CPU; any other
    module as it is, ``batch`` tiles per call."""
    if isinstance(module, CraterNet):
        return fast_module(module), 1
    return module, batch
