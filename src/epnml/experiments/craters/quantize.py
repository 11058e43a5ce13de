"""Int8 trial of a craters 2.x CTX network: post-training static quantization, scored on
the validation tiles and timed beside the float inference copy (issue #14, speed).

Why: the CTX band reads ~200 input tiles/min on 2 cores against a 1,000 goal, and the
backbone is ~80 % of a pass; int8 was the untried lever the card named. The network's
``forward`` cannot be traced by ``torch.fx`` as it is (``SameConv2d`` pads from the input's
shape, the pyramid resizes to a map's shape), so :func:`traceable_copy` rebuilds the
BatchNorm-folded copy with constant paddings and ×2 resizes. Both equal the float
network's for tiles whose sides are multiples of 32 (the only tiles inference feeds it:
every stride-2 input is then even, so TensorFlow "same" padding is fixed; tested).

What it records (``--out`` JSON): validation F1 at the version's threshold and at the
best threshold on the same tiles, for float and int8, and tiles/min of both timed in
the same minute on 1 and 2 threads. The test tiles are never read. Calibration uses
every ``--every``-th network tile of the TRAINING tiles only.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from epnml.ml.backbone import FEATURE_BLOCKS, SameConv2d, same_padding
from epnml.ml.craters.net import CraterNet
from epnml.ml.fuse import inference_copy

#: spatial sizes the traced graph is valid for (see the module docstring)
SIDE_MULTIPLE = 32
ENGINES = ("onednn", "x86", "fbgemm")
OUTPUTS = ("heatmap", "size", "offset")


class FixedPadConv(nn.Module):
    """A ``SameConv2d`` whose padding was computed once for inputs of even size."""

    def __init__(self, conv: SameConv2d) -> None:
        super().__init__()
        # any even size gives the same "same" padding
        even = (2 * SIDE_MULTIPLE,) * 2
        (top, bottom), (left, right) = same_padding(even, conv.kernel_size, conv.stride)
        self.pad: nn.Module = (nn.ZeroPad2d((left, right, top, bottom))
                               if top or bottom or left or right else nn.Identity())
        plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]
                          conv.stride, 0, conv.dilation, conv.groups,  # type: ignore[arg-type]
                          bias=conv.bias is not None)
        plain.weight, plain.bias = conv.weight, conv.bias
        self.conv = plain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class TraceableCraterNet(nn.Module):
    """The folded network with a shape-free forward; returns (heatmap, size, offset)."""

    def __init__(self, net: CraterNet) -> None:
        super().__init__()
        self.net: Any = inference_copy(net)  # a CraterNet (folded copy)
        for sub in list(self.net.modules()):
            for name, child in list(sub.named_children()):
                if isinstance(child, SameConv2d):
                    setattr(sub, name, FixedPadConv(child))
        self.taps = {FEATURE_BLOCKS[s][0]: s for s in (4, 8, 16)}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.net
        b = n.backbone
        x = F.relu6(b._conv_stem(x.expand(-1, 3, -1, -1) * n.config.input_gain))
        f: dict[int, torch.Tensor] = {}
        for i, block in enumerate(b._blocks):
            y = F.relu6(block._expand_conv(x)) if block.expand else x
            y = block._project_conv(F.relu6(block._depthwise_conv(y)))
            x = x + y if block.skip else y
            if i in self.taps:
                f[self.taps[i]] = x
        p = n.lat16(f[16])
        p = n.smooth8(n.lat8(f[8]) + F.interpolate(p, scale_factor=2.0, mode="nearest"))
        p = n.smooth4(n.lat4(f[4]) + F.interpolate(p, scale_factor=2.0, mode="bilinear",
                                                   align_corners=False))
        return n.hm(p), n.wh(p), n.off(p)


def traceable_copy(net: CraterNet) -> TraceableCraterNet:
    return TraceableCraterNet(net).eval()


class DictOutput(nn.Module):
    """Runs a (traced) network on channels-last input and returns the detector's dict,
    with the ``config`` tiled inference reads; refuses tiles the graph is not valid for."""

    def __init__(self, graph: nn.Module, net: CraterNet) -> None:
        super().__init__()
        self.graph = graph
        self.config = net.config

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        if h % SIDE_MULTIPLE or w % SIDE_MULTIPLE:
            raise ValueError(f"tile sides must be multiples of {SIDE_MULTIPLE}, got {h}x{w}")
        out = self.graph(x.contiguous(memory_format=torch.channels_last))
        return {k: v.float() for k, v in zip(OUTPUTS, out, strict=True)}


def quantize(net: CraterNet, calibration: Sequence[np.ndarray], engine: str = "onednn",
             keep_float: Sequence[str] = ()) -> DictOutput:
    """Static int8 (per-channel weights, the engine's default observers) of ``net``;
    ``keep_float`` names submodules of ``net`` left in float (e.g. ``hm``)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if engine not in ENGINES or engine not in torch.backends.quantized.supported_engines:
        raise ValueError(f"quantized engine {engine!r} is not available here "
                         f"(have: {', '.join(torch.backends.quantized.supported_engines)})")
    if not calibration:
        raise ValueError("int8 calibration needs at least one tile")
    torch.backends.quantized.engine = engine
    mapping = get_default_qconfig_mapping(engine)
    for name in keep_float:
        mapping = mapping.set_module_name(f"net.{name}", None)
    example = torch.from_numpy(np.asarray(calibration[0], dtype=np.float32)[None, None])
    prepared = prepare_fx(traceable_copy(net), mapping, example_inputs=(example,))
    with torch.inference_mode():
        for tile in calibration:
            prepared(torch.from_numpy(np.asarray(tile, dtype=np.float32)[None, None]))
    return DictOutput(convert_fx(prepared), net).eval()


def calibration_tiles(names: Sequence[str], scale: float, every: int,
                      root: Path | None = None) -> list[np.ndarray]:
    """Every ``every``-th network tile of these CTX tiles, prepared as inference does."""
    from epnml.experiments.craters.evaluate import load_tile
    from epnml.ml.imagery.detector import normalize_image, resize_image
    from epnml.ml.imagery.tiling import iter_tiles
    from epnml.ml.pits.inference import OVERLAP, TILE

    if every < 1:
        raise ValueError(f"--every must be >= 1, got {every}")
    out = []
    for name in names:
        img = resize_image(normalize_image(load_tile(name, root).pixels), scale)
        out += [t.copy() for i, (_, _, t) in enumerate(iter_tiles(img, TILE, OVERLAP))
                if i % every == 0]
    return out


def run(version: str, engine: str, keep_float: Sequence[str], every: int,
        repeats: int) -> dict[str, Any]:
    from epnml.experiments.craters.evaluate import PIXEL_M, TRAIN_TILES, validation_scores
    from epnml.experiments.landforms.bench import measure
    from epnml.ml.craters.inference import load_model

    model = load_model(version)
    use = model.choose(PIXEL_M)
    if not isinstance(use.module, CraterNet):
        raise ValueError(f"craters {version}'s CTX network is not a 2.x CraterNet")
    started = time.time()
    tiles = calibration_tiles(TRAIN_TILES, use.input_scale, every)
    int8 = quantize(use.module, tiles, engine, keep_float)
    fp32 = inference_copy(use.module)
    speed = {f"threads_{t}": {name: measure(m, name, repeats, 1, t)["tiles_per_min"]
                              for name, m in (("float", fp32), ("int8", int8))}
             for t in (1, 2)}
    return {
        "version": model.info.version, "engine": engine, "keep_float": list(keep_float),
        "calibration": {"tiles": list(TRAIN_TILES), "every": every, "network_tiles": len(tiles)},
        "validation": {"float": validation_scores(model),
                       "int8": validation_scores(model, int8)},
        "network_tiles_per_min": speed,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "load_average_at_start": list(os.getloadavg()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m epnml.experiments.craters.quantize",
                                description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--version", default="2.3.0")
    p.add_argument("--engine", default="onednn", choices=ENGINES)
    p.add_argument("--keep-float", nargs="*", default=[], metavar="MODULE",
                   help="CraterNet submodules left in float (e.g. hm wh off)")
    p.add_argument("--every", type=int, default=3, help="calibrate on every N-th tile")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    record = run(a.version, a.engine, a.keep_float, a.every, a.repeats)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("validation", "network_tiles_per_min")})[:2000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
