"""The meteor light-curve classifier: feature scaling + k centroids (plain torch).

Classification is nearest centroid in the standardised shape space
(:data:`epnml.ml.meteors.features.SHAPE_FEATURES`, slopes and flare amplitude
log-compressed); the score is the fuzzy c-means membership (fuzzifier 2) of the chosen
cluster, ``1 / sum_j (d_k / d_j)^2``: 1 at its centroid, ``1/k`` half-way between all.
Each cluster carries a physical class name (``symmetric``, ``early-peaked``,
``late-peaked``, ``flaring``) given by the rule in :func:`physical_class` from its
centroid; several clusters may share one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from epnml.config import models_dir
from epnml.ml.checkpoints import available_versions as _available_versions
from epnml.ml.checkpoints import load_checkpoint
from epnml.ml.checkpoints import save_checkpoint as _save
from epnml.ml.model_info import ModelInfo

from .features import SHAPE_FEATURES

MODEL_NAME = "meteors"
WEIGHTS_DIR = models_dir() / "weights"
#: a cluster whose centroid brightens this much (mag) above the trend is "flaring".
FLARING_MAG = 0.3
#: relative peak times bounding "symmetric" (an earlier peak is early-peaked...).
EARLY_T, LATE_T = 0.4, 0.6
SKEW_CLIP = 3.0


def transform(features: pd.DataFrame) -> np.ndarray:
    """Shape features -> the classifier's space (before scaling): skewness clipped to
    +-3, slopes ``sign * log1p|x|`` and flare amplitude ``log1p`` (heavy tails)."""
    f = features

    def slog(x: pd.Series) -> np.ndarray:
        v = x.to_numpy(dtype="float64")
        return np.sign(v) * np.log1p(np.abs(v))

    return np.column_stack([
        f["t_peak"].to_numpy(dtype="float64"),
        np.clip(f["skewness"].to_numpy(dtype="float64"), -SKEW_CLIP, SKEW_CLIP),
        slog(f["rise_slope"]), slog(f["decay_slope"]),
        np.log1p(np.clip(f["flare_amp"].to_numpy(dtype="float64"), 0.0, None)),
    ])


def untransform_centroid(c: np.ndarray) -> dict[str, float]:
    """A centroid in feature units (slopes in mag per relative time, flare in mag)."""
    def unlog(x: float) -> float:
        return float(np.sign(x) * np.expm1(abs(x)))
    return {"t_peak": float(c[0]), "skewness": float(c[1]), "rise_slope": unlog(c[2]),
            "decay_slope": unlog(c[3]), "flare_amp": float(np.expm1(c[4]))}


def physical_class(centroid: dict[str, float]) -> str:
    """The rule naming a cluster from its centroid (feature units)."""
    if centroid["flare_amp"] >= FLARING_MAG:
        return "flaring"
    if centroid["t_peak"] < EARLY_T:
        return "early-peaked"
    if centroid["t_peak"] > LATE_T:
        return "late-peaked"
    return "symmetric"


@dataclass
class ClassifierConfig:
    n_clusters: int
    features: list[str] = field(default_factory=lambda: list(SHAPE_FEATURES))
    class_names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifierConfig:
        return cls(int(d["n_clusters"]), list(d["features"]), list(d["class_names"]))


class MeteorClassifier(nn.Module):
    """Scaler (mean, scale) and centroids in the scaled space, as buffers."""

    mean: torch.Tensor
    scale: torch.Tensor
    centroids: torch.Tensor

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        d = len(config.features)
        self.register_buffer("mean", torch.zeros(d, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(d, dtype=torch.float64))
        self.register_buffer("centroids", torch.zeros(config.n_clusters, d,
                                                      dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cluster, membership) of transformed features ``x`` (n, d)."""
        z = (x.double() - self.mean) / self.scale
        d2 = torch.cdist(z, self.centroids).pow(2).clamp_min(1e-12)
        inv = 1.0 / d2
        member = inv / inv.sum(dim=1, keepdim=True)
        score, cluster = member.max(dim=1)
        return cluster, score


@dataclass
class LoadedMeteorModel:
    module: MeteorClassifier
    info: ModelInfo
    config: dict[str, Any]

    @property
    def class_names(self) -> list[str]:
        return list(self.module.config.class_names)


def available_versions(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    return _available_versions(MODEL_NAME, weights_dir)


def load_model(version: str | None = None, path: Path | None = None) -> LoadedMeteorModel:
    """Load ``meteors-<version>.pt`` (default newest) after its sha256 check."""
    module, info, config = load_checkpoint(
        MODEL_NAME, version, path,
        lambda cfg: MeteorClassifier(ClassifierConfig.from_dict(cfg)), WEIGHTS_DIR)
    return LoadedMeteorModel(module, info, config)


def save_checkpoint(path: Path, module: MeteorClassifier, version: str,
                    config: dict[str, Any]) -> str:
    """Write ``meteors-<version>.pt`` (float64 buffers: a few hundred bytes)."""
    return _save(path, MODEL_NAME, version, module, config, half=False)


def classify(features: pd.DataFrame, model: LoadedMeteorModel) -> pd.DataFrame:
    """``cluster``, ``meteor_class`` and ``score`` per row of ``features``."""
    if features.empty:
        return pd.DataFrame({"cluster": pd.Series(dtype="int64"),
                             "meteor_class": pd.Series(dtype="object"),
                             "score": pd.Series(dtype="float64")}, index=features.index)
    with torch.no_grad():
        cluster, score = model.module(torch.from_numpy(transform(features)))
    names = model.class_names
    c = cluster.numpy().astype("int64")
    return pd.DataFrame({"cluster": c, "meteor_class": [names[i] for i in c],
                         "score": score.numpy().astype("float64")}, index=features.index)
