"""Mineral phases and abundances from a reflectance spectrum (INAF/RELAB case).

A small bootstrap ensemble of torch MLPs: each member sees shape features of a
spectrum (mean-normalised and convex-hull continuum-removed reflectance,
350-1050 nm every 10 nm) and outputs phase presence (sigmoid, multi-label)
and abundances (softmax x 100, so they always sum to 100 %).  The ensemble
spread is the predictive uncertainty.

Why 350-1050 nm: it is the overlap of the labelled RELAB/SLab spectra
(280/350-2500 nm) with the MASCS VIS grid of the units (260-1050 nm).  The
MASCS NIR channels (896-1491 nm) alone cover only 896-1050 nm of it, so
NIR-only units get no abundances.  Shapes, not albedo, are used because
Mercury I/F (~0.05) and lab reflectance are not on the same scale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from epnml.config import models_dir
from epnml.ml.checkpoints import available_versions as _available_versions
from epnml.ml.checkpoints import cap_threads, resolve_weights, sha256_file, verify_card
from epnml.ml.model_info import ModelInfo

MODEL_NAME = "minerals"
WEIGHTS_DIR = models_dir() / "weights"
#: phases modelled (column suffixes of ``abundance_<phase>``); Basalt and graphite
#: (9 of the 149 usable labelled spectra) are pooled in ``other``.
PHASES = ("olivine", "orthopyroxene", "clinopyroxene", "plagioclase", "glass", "other")
FEATURE_NM = np.arange(350.0, 1050.0 + 1e-9, 10.0)
#: fraction of FEATURE_NM a spectrum must cover to get a prediction.
MIN_COVERAGE = 0.95
MAX_THREADS = 2
_FILE_RE = re.compile(rf"^{MODEL_NAME}-(?P<version>[0-9A-Za-z.+-]+)\.pt$")


def phase_key(name: str) -> str:
    """RELAB phase name -> one of PHASES."""
    n = name.strip().lower()
    return n if n in PHASES[:-1] else "other"


def bin_spectrum(wavelength_nm: np.ndarray, reflectance: np.ndarray,
                 centres: np.ndarray = FEATURE_NM, half_width: float = 5.0) -> np.ndarray:
    """Mean reflectance in +-half_width bins around each centre (1-nm supersampling)."""
    wl = np.asarray(wavelength_nm, dtype=float)
    r = np.asarray(reflectance, dtype=float)
    ok = np.isfinite(wl) & np.isfinite(r)
    out = np.full(centres.size, np.nan)
    if ok.sum() < 2:
        return out
    wl, r = wl[ok], r[ok]
    order = np.argsort(wl)
    wl, r = wl[order], r[order]
    fine = np.arange(centres[0] - half_width, centres[-1] + half_width + 0.5, 1.0)
    vals = np.interp(fine, wl, r)
    vals[(fine < wl[0]) | (fine > wl[-1])] = np.nan
    for i, c in enumerate(centres):
        sel = vals[(fine >= c - half_width) & (fine <= c + half_width)]
        if np.isfinite(sel).mean() >= 0.5:
            out[i] = np.nanmean(sel)
    return out


def continuum_removed(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Divide by the upper convex hull (continuum) so band depths are comparable."""
    hull: list[int] = []
    for i in range(x.size):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a]) >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    cont = np.interp(x, x[hull], y[hull])
    return y / np.maximum(cont, 1e-12)


def features(wavelength_nm: np.ndarray, reflectance: np.ndarray) -> np.ndarray | None:
    """Feature vector (2 x len(FEATURE_NM)) or None if the spectrum covers too little."""
    b = bin_spectrum(wavelength_nm, reflectance)
    ok = np.isfinite(b) & (b > 0)
    if ok.mean() < MIN_COVERAGE:
        return None
    b = np.interp(FEATURE_NM, FEATURE_NM[ok], b[ok])
    norm = b / b.mean()
    return np.concatenate([norm, continuum_removed(FEATURE_NM, norm)]).astype(np.float32)


class MineralNet(nn.Module):
    """One ensemble member: shared trunk, presence logits and abundance logits."""

    def __init__(self, n_in: int, n_out: int = len(PHASES), hidden: int = 32,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout),
                                   nn.Linear(hidden, hidden), nn.GELU())
        self.presence = nn.Linear(hidden, n_out)
        self.abundance = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.presence(h), self.abundance(h)


@dataclass
class MineralModel:
    """The loaded ensemble with its input standardisation."""

    members: list[MineralNet]
    mean: np.ndarray
    std: np.ndarray
    info: ModelInfo
    threshold: float = 0.5

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """presence probability, abundance % (sum 100) and their ensemble std, per row."""
        cap_threads(MAX_THREADS)
        xt = torch.from_numpy(((x - self.mean) / self.std).astype(np.float32))
        probs, abund = [], []
        with torch.inference_mode():
            for m in self.members:
                m.eval()
                p, a = m(xt)
                probs.append(torch.sigmoid(p).numpy())
                abund.append(torch.softmax(a, dim=1).numpy() * 100.0)
        pa, aa = np.stack(probs), np.stack(abund)
        return {"presence": pa.mean(0), "presence_sigma": pa.std(0),
                "abundance": aa.mean(0), "abundance_sigma": aa.std(0)}


def save_model(path: Path, members: list[MineralNet], mean: np.ndarray, std: np.ndarray,
               version: str, config: dict[str, Any]) -> str:
    """Write ``minerals-<version>.pt`` (tensors and plain types only); returns sha256."""
    if path.name != f"{MODEL_NAME}-{version}.pt":
        raise ValueError(f"weights file must be named {MODEL_NAME}-{version}.pt")
    torch.save({"name": MODEL_NAME, "version": version, "config": config,
                "phases": list(PHASES), "feature_nm": FEATURE_NM.tolist(),
                "mean": torch.from_numpy(mean.astype(np.float32)),
                "std": torch.from_numpy(std.astype(np.float32)),
                "members": [m.state_dict() for m in members]}, path)
    return sha256_file(path)


def available_versions(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    return _available_versions(MODEL_NAME, weights_dir, _FILE_RE)


def load_model(version: str | None = None, weights_dir: Path = WEIGHTS_DIR) -> MineralModel:
    """Load committed weights after checking the sha256 recorded in their JSON card (an
    ensemble of networks: its own layout, checked like every model's by
    :func:`epnml.ml.checkpoints.verify_card`)."""
    pt = resolve_weights(MODEL_NAME, version, None, weights_dir, _FILE_RE)
    _card, digest = verify_card(pt)
    ckpt = torch.load(pt, map_location="cpu", weights_only=True)
    if list(ckpt.get("phases", [])) != list(PHASES):
        raise ValueError(f"{pt}: phases {ckpt.get('phases')} differ from {PHASES}")
    cfg = ckpt["config"]
    members = []
    for sd in ckpt["members"]:
        m = MineralNet(int(ckpt["mean"].numel()), len(PHASES), int(cfg["hidden"]),
                       float(cfg["dropout"]))
        m.load_state_dict(sd)
        m.eval()
        members.append(m)
    return MineralModel(members, ckpt["mean"].numpy(), ckpt["std"].numpy(),
                        ModelInfo(MODEL_NAME, str(ckpt["version"]), digest),
                        float(cfg.get("threshold", 0.5)))


def predict_spectra(model: MineralModel, wavelength_nm: np.ndarray, spectra: np.ndarray
                    ) -> list[dict[str, Any] | None]:
    """Per spectrum: presence/abundance dicts keyed by phase, or None (no overlap)."""
    rows = np.atleast_2d(spectra)
    feats = [features(wavelength_nm, r) for r in rows]
    ok = [i for i, f in enumerate(feats) if f is not None]
    out: list[dict[str, Any] | None] = [None] * len(feats)
    if not ok:
        return out
    pred = model.predict(np.stack([f for f in feats if f is not None]))
    for j, i in enumerate(ok):
        out[i] = {
            "presence": dict(zip(PHASES, pred["presence"][j].tolist(), strict=True)),
            "abundance": dict(zip(PHASES, pred["abundance"][j].tolist(), strict=True)),
            "abundance_sigma": dict(zip(PHASES, pred["abundance_sigma"][j].tolist(),
                                        strict=True)),
            "present": [p for p, v in zip(PHASES, pred["presence"][j], strict=True)
                        if v >= model.threshold],
        }
    return out
