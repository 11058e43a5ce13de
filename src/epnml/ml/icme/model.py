"""ResUNet++-style 1-D segmentation network for ICME detection.

Follows the building blocks of Rüdisser et al. 2022 (after Jha et al. 2019's
ResUNet++): residual conv blocks, squeeze-and-excitation (SE) between encoder
levels, an atrous spatial pyramid pooling (ASPP) bridge and output head, and
attention gates that weight each skip connection by the decoder's context before
concatenation. Everything is configurable so the tests can build a tiny one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from epnml.ml.checkpoints import ConfigDict

from .features import N_CHANNELS


@dataclass(frozen=True)
class ModelConfig(ConfigDict):
    """Architecture hyper-parameters (saved with the weights)."""

    INT_TUPLES = ("aspp_rates",)

    in_channels: int = N_CHANNELS
    #: channels at full resolution; level i has ``base * 2**i`` (capped by max_width).
    base_width: int = 12
    #: number of stride-2 encoder levels; input length must be a multiple of 2**depth.
    depth: int = 5
    max_width: int = 48
    kernel_size: int = 5
    se_reduction: int = 8
    aspp_rates: tuple[int, ...] = field(default=(1, 2, 4, 8))
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.in_channels < 1 or self.base_width < 1 or self.max_width < self.base_width:
            raise ValueError("in_channels, base_width >= 1 and max_width >= base_width required")
        if self.depth < 1:
            raise ValueError("depth must be >= 1")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd and positive (keeps lengths aligned)")
        if not self.aspp_rates or any(r < 1 for r in self.aspp_rates):
            raise ValueError("aspp_rates must be a non-empty sequence of positive ints")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")

    @property
    def widths(self) -> list[int]:
        return [min(self.base_width * 2**i, self.max_width) for i in range(self.depth + 1)]



class SqueezeExcite(nn.Module):
    """Channel re-weighting from global context (which physical signals matter here)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc(x.mean(dim=-1))
        return x * w.unsqueeze(-1)


class ResidualBlock(nn.Module):
    """Pre-activation residual block (BN-ReLU-Conv x2) with a projected shortcut."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.BatchNorm1d(c_in),
            nn.ReLU(inplace=True),
            nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=pad),
            nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv1d(c_out, c_out, kernel, padding=pad),
        )
        self.skip = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=stride), nn.BatchNorm1d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class Stem(nn.Module):
    """First block: no pre-activation on the raw (already scaled) input."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel, padding=pad),
            nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv1d(c_out, c_out, kernel, padding=pad),
        )
        self.skip = nn.Sequential(nn.Conv1d(c_in, c_out, 1), nn.BatchNorm1d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class ASPP(nn.Module):
    """Parallel dilated convolutions: context from hours to days at one level."""

    def __init__(self, c_in: int, c_out: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(c_in, c_out, 3, padding=r, dilation=r),
                nn.BatchNorm1d(c_out),
                nn.ReLU(inplace=True),
            )
            for r in rates
        )
        self.project = nn.Conv1d(c_out, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branches[0](x)
        for b in self.branches[1:]:
            y = y + b(x)
        return self.project(y)


class AttentionGate(nn.Module):
    """Weight skip features by what the coarser decoder state considers relevant."""

    def __init__(self, c_skip: int, c_gate: int, c_mid: int) -> None:
        super().__init__()
        self.theta = nn.Sequential(nn.Conv1d(c_skip, c_mid, 1), nn.BatchNorm1d(c_mid))
        self.phi = nn.Sequential(nn.Conv1d(c_gate, c_mid, 1), nn.BatchNorm1d(c_mid))
        self.psi = nn.Sequential(nn.ReLU(inplace=True), nn.Conv1d(c_mid, 1, 1), nn.Sigmoid())

    def forward(self, skip: torch.Tensor, gate_up: torch.Tensor) -> torch.Tensor:
        alpha = self.psi(self.theta(skip) + self.phi(gate_up))
        return skip * alpha


class ICMESegmenter(nn.Module):
    """(B, C, T) scaled features -> (B, 1, T) logits of "inside an ICME"."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = config or ModelConfig()
        self.config = cfg
        w = cfg.widths
        k = cfg.kernel_size
        self.stem = Stem(cfg.in_channels, w[0], k)
        self.enc_se = nn.ModuleList(SqueezeExcite(w[i], cfg.se_reduction) for i in range(cfg.depth))
        self.enc = nn.ModuleList(
            ResidualBlock(w[i], w[i + 1], k, stride=2) for i in range(cfg.depth)
        )
        self.bridge = ASPP(w[-1], w[-1], cfg.aspp_rates)
        self.drop = nn.Dropout(cfg.dropout)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.gates = nn.ModuleList(
            AttentionGate(w[i], w[i + 1], max(w[i] // 2, 4)) for i in range(cfg.depth)
        )
        self.dec = nn.ModuleList(ResidualBlock(w[i] + w[i + 1], w[i], k) for i in range(cfg.depth))
        self.head_aspp = ASPP(w[0], w[0], cfg.aspp_rates)
        self.head = nn.Conv1d(w[0], 1, 1)

    @property
    def multiple(self) -> int:
        """Input lengths must be a multiple of this."""
        return int(2**self.config.depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected input (B, {self.config.in_channels}, T), got {tuple(x.shape)}"
            )
        if x.shape[-1] % self.multiple:
            raise ValueError(f"T={x.shape[-1]} is not a multiple of 2**depth={self.multiple}")
        h = self.stem(x)
        skips = []
        for se, block in zip(self.enc_se, self.enc, strict=True):
            skips.append(h)
            h = block(se(h))
        h = self.drop(self.bridge(h))
        for i in reversed(range(self.config.depth)):
            up = self.up(h)
            gated = self.gates[i](skips[i], up)
            h = self.dec[i](torch.cat([up, gated], dim=1))
        return self.head(self.head_aspp(h))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class EnsembleConfig:
    """K networks of one architecture (icme 3.x: one per year fold), saved as one
    checkpoint: ``{"n_members": K, "member": ModelConfig}``."""

    n_members: int
    member: ModelConfig

    def __post_init__(self) -> None:
        if self.n_members < 1:
            raise ValueError("an ensemble needs at least one member")

    def to_dict(self) -> dict[str, Any]:
        return {"n_members": self.n_members, "member": self.member.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnsembleConfig:
        if set(d) != {"n_members", "member"}:
            raise ValueError(f"invalid ensemble config keys: {sorted(d)}")
        return cls(int(d["n_members"]), ModelConfig.from_dict(d["member"]))


class ICMEEnsemble(nn.Module):
    """Mean probability of K member networks, returned as a logit so every caller that
    applies a sigmoid to a segmenter's output (``predict_array``) gets the mean
    probability unchanged."""

    #: probabilities are clamped to [eps, 1 - eps] before the logit (float64).
    EPS = 1e-12

    def __init__(self, config: EnsembleConfig) -> None:
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(ICMESegmenter(config.member) for _ in range(config.n_members))

    @classmethod
    def from_members(cls, members: Sequence[ICMESegmenter]) -> ICMEEnsemble:
        """An ensemble holding copies of the given (same-architecture) networks' weights."""
        if not members:
            raise ValueError("an ensemble needs at least one member")
        cfg = members[0].config
        if any(m.config != cfg for m in members):
            raise ValueError("ensemble members must share one architecture")
        ens = cls(EnsembleConfig(len(members), cfg))
        for dst, src in zip(ens.members, members, strict=True):
            dst.load_state_dict(src.state_dict())
        return ens

    @property
    def multiple(self) -> int:
        return int(2**self.config.member.depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.stack([torch.sigmoid(m(x).double()) for m in self.members]).mean(dim=0)
        return torch.logit(p, eps=self.EPS).to(x.dtype)


def build_module(config: Mapping[str, Any]) -> ICMESegmenter | ICMEEnsemble:
    """The network a checkpoint's ``config["model"]`` describes: an ensemble when it
    names ``n_members`` (icme 3.x), else one segmenter (1.x, 2.x)."""
    if "n_members" in config:
        return ICMEEnsemble(EnsembleConfig.from_dict(config))
    return ICMESegmenter(ModelConfig.from_dict(config))
