"""The Europlanet case's sliding-window CNN+LSTM (Julka et al. 2022), kept for comparison.

Why it is here: the reference result (macro-F1 ~ 0.80) comes from a classifier
that sees one 30-s window at a time (1-s hop) and labels its centre sample, so
labelling an orbit costs one forward pass per sample. We train a small version
on the same orbits, features and augmentations as the fully convolutional model
to compare both accuracy and cost. Weights are small (< 1 MB) and committed as
``ml/weights/crossings-baseline-<version>.pt`` with a JSON card (sha256 checked).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from epnml.ml.checkpoints import cap_threads, sha256_file, verify_card

from .features import N_FEATURES, Scaler, frame_to_features
from .inference import MAX_THREADS, WEIGHTS_DIR
from .labels import N_REGIONS

BASELINE_NAME = "crossings-baseline"
#: window length (s) of the case; the label is the centre sample.
WINDOW_S = 30
_BATCH = 8192


@dataclass(frozen=True)
class BaselineConfig:
    """Architecture of the sliding-window classifier (saved with the weights)."""

    in_channels: int = N_FEATURES
    n_classes: int = N_REGIONS
    window: int = WINDOW_S
    conv_width: int = 32
    hidden: int = 32

    def __post_init__(self) -> None:
        if min(self.in_channels, self.n_classes, self.window, self.conv_width, self.hidden) < 1:
            raise ValueError("all baseline sizes must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BaselineConfig:
        try:
            return cls(**dict(d))
        except TypeError as exc:
            raise ValueError(f"invalid baseline config: {exc}") from exc


class WindowCNNLSTM(nn.Module):
    """(N, C, window) -> (N, n_classes) logits of the window's centre sample."""

    def __init__(self, config: BaselineConfig | None = None) -> None:
        super().__init__()
        cfg = config or BaselineConfig()
        self.config = cfg
        w = cfg.conv_width
        self.conv = nn.Sequential(
            nn.Conv1d(cfg.in_channels, w, 3, padding=1),
            nn.BatchNorm1d(w),
            nn.ReLU(),
            nn.Conv1d(w, w, 3, padding=1),
            nn.BatchNorm1d(w),
            nn.ReLU(),
        )
        self.lstm = nn.LSTM(w, cfg.hidden, batch_first=True)
        self.head = nn.Linear(cfg.hidden, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected (N, {self.config.in_channels}, window), "
                             f"got {tuple(x.shape)}")
        h = self.conv(x).transpose(1, 2)  # (N, window, w)
        _, (hn, _) = self.lstm(h)
        return self.head(hn[-1])


def windows(xt: torch.Tensor, centres: torch.Tensor, window: int) -> torch.Tensor:
    """(len(centres), C, window) windows of ``xt`` (C, n) centred on ``centres`` (edge-padded)."""
    half = window // 2
    padded = torch.nn.functional.pad(xt[None], (half, window - 1 - half), mode="replicate")[0]
    idx = centres[:, None] + torch.arange(window)[None, :]  # (N, window) in padded coords
    return padded[:, idx].permute(1, 0, 2)


def predict_array(x: np.ndarray, module: WindowCNNLSTM) -> np.ndarray:
    """Softmax ``(n, C)`` for scaled features ``(n, F)``: one window per sample (1-s hop)."""
    n = x.shape[0]
    if n < 1:
        raise ValueError("need at least one sample")
    cap_threads(MAX_THREADS)
    module.eval()
    xt = torch.from_numpy(np.ascontiguousarray(x.T, dtype=np.float32))
    out = np.empty((n, module.config.n_classes), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, n, _BATCH):
            c = torch.arange(s, min(n, s + _BATCH))
            out[s : s + len(c)] = torch.softmax(
                module(windows(xt, c, module.config.window)), dim=1).numpy()
    return out


@dataclass
class LoadedBaseline:
    module: WindowCNNLSTM
    scaler: Scaler
    version: str
    sha256: str


def save_baseline(path: Path, module: WindowCNNLSTM, version: str, scaler: Scaler,
                  card: dict[str, Any]) -> str:
    """Write weights + JSON card (with sha256); returns the digest."""
    if path.name != f"{BASELINE_NAME}-{version}.pt":
        raise ValueError(f"baseline weights must be named {BASELINE_NAME}-{version}.pt")
    torch.save({"name": BASELINE_NAME, "version": version, "config": module.config.to_dict(),
                "scaler": scaler.to_dict(), "state_dict": module.state_dict()}, path)
    digest = sha256_file(path)
    full = {"name": BASELINE_NAME, "version": version, "sha256": digest,
            "weights_file": path.name, "size_bytes": path.stat().st_size, **card}
    path.with_suffix(".json").write_text(json.dumps(full, indent=2, default=str) + "\n")
    return digest


def load_baseline(version: str = "1.0.0", weights_dir: Path = WEIGHTS_DIR) -> LoadedBaseline:
    """Load the committed baseline after checking the sha256 in its card."""
    pt = Path(weights_dir) / f"{BASELINE_NAME}-{version}.pt"
    if not pt.is_file() or not pt.with_suffix(".json").is_file():
        raise FileNotFoundError(f"baseline {pt.name} or its card is missing in {weights_dir}")
    _card, digest = verify_card(pt)
    ckpt = torch.load(pt, map_location="cpu", weights_only=True)
    module = WindowCNNLSTM(BaselineConfig.from_dict(ckpt["config"]))
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    return LoadedBaseline(module, Scaler.from_dict(ckpt["scaler"]), version, digest)


def predict_proba(frame: pd.DataFrame, model: LoadedBaseline) -> np.ndarray:
    """Region probabilities ``(n, 5)`` for a 1-s MAG frame, one window per sample."""
    return predict_array(frame_to_features(frame, model.scaler), model.module)
