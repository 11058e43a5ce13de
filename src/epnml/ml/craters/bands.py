"""Resolution bands: one crater model version for CTX-scale tiles and global mosaics.

Why bands and not one resampling rule: a crater of 10 px looks much the same at 5 m/px
and at 50 m/px (the size-frequency law puts craters at every pixel size), so inside a band
the network runs at its own ``input_scale`` whatever the metres per pixel. What changes
between a CTX tile and a 20 km/px global mosaic is the IMAGE: photograph vs. shaded-relief
or albedo mosaic, simple bowls vs. basins. The CTX-trained 2.x network scores F1 0.12-0.17
on the mosaics' validation band where the mosaic-trained 1.0.0 network scores 0.35-0.40
(model card), so a banded checkpoint carries one network per band and picks it from the
image's ground pixel scale (georeference, or ``--param pixel_scale_m``). A scale outside
every band is refused with the bands in the message; nothing is run on an image no band
was made for.

A banded checkpoint is ONE file (one sha256, one version): the band networks are
submodules ``nets.<band>``; each band's ``origin`` says where its weights came from (for
the mosaic band of 2.1.0: the 1.0.0 weights, copied unchanged).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from epnml.ml.craters.recipe import Recipe

BANDED_ARCH = "craters-banded"


@dataclass(frozen=True)
class Band:
    """One resolution band: ground pixel scales ``[min_m, max_m)`` (metres per pixel) and
    the network and inference settings used there."""

    name: str
    min_m: float
    max_m: float
    input_scale: float
    threshold: float
    nms_iou: float
    #: the band network's own config (``CraterNetConfig`` / ``DetectorConfig`` dict)
    model: dict[str, Any]
    #: where the weights come from and what they were evaluated on (cards, row texts)
    origin: str = ""
    #: test-time recipe (``epnml.ml.craters.recipe.Recipe`` dict; None: one plain pass)
    recipe: dict[str, Any] | None = None

    def holds(self, pixel_scale_m: float) -> bool:
        return self.min_m <= pixel_scale_m < self.max_m

    def range_text(self) -> str:
        return f"{self.name} {_m(self.min_m)}-{_m(self.max_m)} m/px"


def _m(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:g}"


@dataclass(frozen=True)
class BandedConfig:
    arch: str = BANDED_ARCH
    #: the first band is the default for images of unknown scale (chips without georeference)
    bands: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "bands": [dict(b) for b in self.bands]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BandedConfig:
        return cls(arch=str(d.get("arch", BANDED_ARCH)),
                   bands=tuple(dict(b) for b in d.get("bands", [])))

    def band_list(self) -> list[Band]:
        return [Band(**b) for b in self.bands]


class BandedCraterNet(nn.Module):
    """The band networks as submodules ``nets.<band name>``; not callable itself (the
    inference picks a band's network first)."""

    def __init__(self, config: BandedConfig) -> None:
        from epnml.ml.craters.inference import build_network

        super().__init__()
        if config.arch != BANDED_ARCH:
            raise ValueError(f"unknown banded crater architecture {config.arch!r}")
        self.config = config
        bands = config.band_list()
        if not bands:
            raise ValueError("a banded crater model needs at least one band")
        names = [b.name for b in bands]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate band names {names}")
        for b in bands:
            if b.recipe is not None:
                Recipe.from_dict(b.recipe)  # a bad recipe fails at load, naming the setting
        ordered = sorted(bands, key=lambda b: b.min_m)
        for lo, hi in zip(ordered, ordered[1:], strict=False):
            if hi.min_m < lo.max_m:
                raise ValueError(f"bands {lo.name} and {hi.name} overlap")
        self.nets = nn.ModuleDict({b.name: build_network(b.model) for b in bands})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BandedCraterNet:
        return cls(BandedConfig.from_dict(d))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise TypeError("a banded crater model runs one band's network: choose_band first")


@dataclass(frozen=True)
class BandChoice:
    """The network and settings an image is run with (``band`` None: a one-network
    version without bands)."""

    module: nn.Module
    input_scale: float
    threshold: float
    nms_iou: float
    band: Band | None = None
    #: the band's test-time recipe (None: one plain pass)
    recipe: Recipe | None = None


def choose(module: nn.Module, config: dict[str, Any], pixel_scale_m: float | None,
           version: str) -> BandChoice:
    """The band of ``pixel_scale_m`` (None: the first band, the default for images of
    unknown scale). ValueError naming the scale and the bands when none holds it.

    One-network versions (1.0.0, 2.0.0) have no bands: they run as they always did,
    whatever the scale, so their rows stay reproducible."""
    if not isinstance(module, BandedCraterNet):
        return BandChoice(module, float(config.get("input_scale", 2.0)),
                          float(config.get("threshold", 0.3)), float(config.get("nms_iou", 0.5)))
    bands = module.config.band_list()
    if pixel_scale_m is None:
        band = bands[0]
    else:
        if not pixel_scale_m > 0:
            raise ValueError(f"pixel scale must be > 0 m/px, got {pixel_scale_m:g}")
        held = [b for b in bands if b.holds(pixel_scale_m)]
        if not held:
            raise ValueError(
                f"pixel scale {_m(pixel_scale_m)} m/px is outside the resolution bands of "
                f"craters {version} ({'; '.join(b.range_text() for b in bands)}); resample "
                "the image into a band")
        band = held[0]
    recipe = Recipe.from_dict(band.recipe) if band.recipe is not None else None
    return BandChoice(module.nets[band.name], band.input_scale, band.threshold, band.nms_iou,
                      band, recipe)


def band_dict(name: str, min_m: float, max_m: float, model: dict[str, Any],
              inference: dict[str, Any], origin: str) -> dict[str, Any]:
    """A band entry of a banded config from a one-network checkpoint's settings."""
    recipe = inference.get("recipe")
    return asdict(Band(name, float(min_m), float(max_m), float(inference["input_scale"]),
                       float(inference["threshold"]), float(inference.get("nms_iou", 0.5)),
                       dict(model), origin,
                       Recipe.from_dict(recipe).to_dict() if recipe is not None else None))
