"""Inference copies of convolutional networks: BatchNorm folded into the preceding
convolution, channels-last memory format.

Why: at inference a BatchNorm is a fixed per-channel affine map, so it can be folded into
the convolution's weights and bias (one pass over the feature map instead of two); the
depthwise convolutions of EfficientNet-Lite0 run markedly faster on CPU in channels-last
layout. The outputs equal the unfused network's within float rounding (tested); the
original module is left untouched (training, ``state_dict`` and checkpoints keep their
BatchNorm layers).

Which convolution a BatchNorm follows is declared, not guessed: consecutive
``(Conv2d, BatchNorm2d)`` children of an ``nn.Sequential``, and the attribute pairs of
:data:`ATTRIBUTE_PAIRS` (modules whose ``forward`` calls ``bn(conv(x))`` by name).
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

import torch
from torch import nn


def _attribute_pairs() -> dict[type[nn.Module], tuple[tuple[str, str], ...]]:
    """Per module class, the (convolution, BatchNorm) attributes its forward chains."""
    from epnml.ml.backbone import EfficientNetLite0, MBConv

    return {
        MBConv: (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"),
                 ("_project_conv", "_bn2")),
        EfficientNetLite0: (("_conv_stem", "_bn0"), ("_conv_head", "_bn1")),
    }


#: memo of inference copies: one per source module, dropped with it
_FAST: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A copy of ``conv`` (same class: ``SameConv2d`` keeps its padding) computing
    ``bn(conv(x))`` with BatchNorm's running statistics (eval mode)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics")
    if conv.out_channels != bn.num_features:
        raise ValueError(f"conv has {conv.out_channels} outputs, BatchNorm "
                         f"{bn.num_features} features")
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        std = torch.sqrt(bn.running_var.float() + bn.eps)
        gamma = bn.weight.float() if bn.weight is not None else torch.ones_like(std)
        beta = bn.bias.float() if bn.bias is not None else torch.zeros_like(std)
        factor = gamma / std
        weight = conv.weight.float() * factor.reshape(-1, 1, 1, 1)
        bias = conv.bias.float() if conv.bias is not None else torch.zeros_like(std)
        bias = (bias - bn.running_mean.float()) * factor + beta
    fused.weight = nn.Parameter(weight, requires_grad=False)
    fused.bias = nn.Parameter(bias, requires_grad=False)
    return fused


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every declared (conv, BatchNorm) pair of ``module`` IN PLACE (the BatchNorm
    becomes ``nn.Identity``); returns how many were folded."""
    pairs = _attribute_pairs()
    n = 0
    for sub in list(module.modules()):
        for conv_name, bn_name in pairs.get(type(sub), ()):
            conv, bn = getattr(sub, conv_name, None), getattr(sub, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(sub, conv_name, fold_conv_bn(conv, bn))
                setattr(sub, bn_name, nn.Identity())
                n += 1
        if isinstance(sub, nn.Sequential):
            children = list(sub)
            for i in range(len(children) - 1):
                conv, bn = children[i], children[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    sub[i] = fold_conv_bn(conv, bn)
                    sub[i + 1] = nn.Identity()
                    n += 1
    return n


def inference_copy(module: nn.Module) -> nn.Module:
    """An eval-mode copy of ``module`` with BatchNorm folded and channels-last weights."""
    fast = copy.deepcopy(module).eval()
    fold_batchnorm(fast)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def fast_module(module: Any) -> Any:
    """The memoised :func:`inference_copy` of ``module`` (built on first use). The copy
    is of the module's weights at that moment: for committed, loaded checkpoints only."""
    fast = _FAST.get(module)
    if fast is None:
        fast = inference_copy(module)
        _FAST[module] = fast
    return fast
