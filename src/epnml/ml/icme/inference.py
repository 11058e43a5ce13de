"""Load committed ICME weights (checksum-verified) and run sliding-window inference."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from epnml.config import models_dir
from epnml.ml.checkpoints import available_versions as _available_versions
from epnml.ml.checkpoints import cap_threads, read_checkpoint
from epnml.ml.checkpoints import save_checkpoint as save_model_checkpoint
from epnml.ml.model_info import ModelInfo

from .features import Scaler, frame_to_array
from .model import ICMEEnsemble, ICMESegmenter, build_module

MODEL_NAME = "icme"
#: committed weights live next to the package so they ship with it.
WEIGHTS_DIR = models_dir() / "weights"
#: samples per window (1024 x 10 min ~ 7.1 days, as Rüdisser et al. 2022).
WINDOW = 1024
MAX_THREADS = 2
_BATCH = 16
_FILE_RE = re.compile(rf"^{MODEL_NAME}-(?P<version>[0-9A-Za-z.+-]+)\.pt$")


@dataclass
class LoadedModel:
    """A ready-to-run model and everything needed to reproduce its output."""

    #: one network (1.x, 2.x) or the mean of K (3.x); same call either way.
    module: ICMESegmenter | ICMEEnsemble
    info: ModelInfo
    #: model architecture, window, post-processing (threshold, min_duration_h, merge_gap_h).
    config: dict[str, Any]
    scaler: Scaler

    @property
    def window(self) -> int:
        return int(self.config.get("window", WINDOW))

    def postprocess(self) -> dict[str, Any]:
        """Keyword arguments for ``extract_events`` chosen on validation for this model."""
        pp = self.config.get("postprocess", {})
        out: dict[str, Any] = {}
        if "threshold" in pp:
            out["threshold"] = float(pp["threshold"])
        if "min_duration_h" in pp:
            out["min_duration"] = pd.Timedelta(hours=float(pp["min_duration_h"]))
        if "merge_gap_h" in pp:
            out["merge_gap"] = pd.Timedelta(hours=float(pp["merge_gap_h"]))
        return out


def available_versions(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """Versions with both a weights file and its JSON card, oldest first."""
    return _available_versions(MODEL_NAME, weights_dir, _FILE_RE)


def load_model(version: str | None = None, path: Path | None = None) -> LoadedModel:
    """Load ``icme-<version>.pt`` (default: newest in ``ml/weights``) after checking its sha256.

    ``path`` may be a weights directory or a ``.pt`` file; the JSON card next to the
    weights must exist and carry the file's sha256, so a swapped or truncated file
    is refused rather than silently producing different catalogue rows.
    """
    ckpt = read_checkpoint(MODEL_NAME, version, path, build_module, WEIGHTS_DIR,
                           pattern=_FILE_RE, require=("scaler",))
    return LoadedModel(module=ckpt.module, info=ckpt.info, config=ckpt.config,
                       scaler=Scaler.from_dict(ckpt.extra["scaler"]))


def save_checkpoint(
    path: Path, module: ICMESegmenter | ICMEEnsemble, version: str, config: dict[str, Any],
    scaler: Scaler,
) -> str:
    """Write ``icme-<version>.pt`` (state_dict + config + scaler, full precision);
    returns its sha256."""
    return save_model_checkpoint(path, MODEL_NAME, version, module, config, half=False,
                                 extra={"scaler": scaler.to_dict()})


def window_starts(n: int, window: int) -> list[int]:
    """Start offsets of windows with 50 % overlap covering ``n`` (>= window) samples."""
    if n < window:
        raise ValueError(f"n={n} shorter than window={window}")
    step = window // 2
    starts = list(range(0, n - window + 1, step))
    if starts[-1] != n - window:
        starts.append(n - window)
    return starts


def predict_array(x: np.ndarray, module: ICMESegmenter | ICMEEnsemble, window: int = WINDOW
                  ) -> np.ndarray:
    """Probabilities for a scaled ``(C, n)`` array; windows averaged where they overlap."""
    if window % module.multiple:
        raise ValueError(f"window {window} not a multiple of {module.multiple}")
    n = x.shape[1]
    if n < 1:
        raise ValueError("need at least one sample")
    if n < window:
        # padded samples look like a data gap (all zeros, validity mask 0).
        x = np.concatenate([x, np.zeros((x.shape[0], window - n), dtype=x.dtype)], axis=1)
    total = x.shape[1]
    starts = window_starts(total, window)
    acc = np.zeros(total, dtype=np.float64)
    cnt = np.zeros(total, dtype=np.float64)
    cap_threads(MAX_THREADS)
    module.eval()
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with torch.inference_mode():
        for b in range(0, len(starts), _BATCH):
            batch_starts = starts[b : b + _BATCH]
            xb = torch.stack([xt[:, s : s + window] for s in batch_starts])
            pb = torch.sigmoid(module(xb)).squeeze(1).double().numpy()
            for s, pr in zip(batch_starts, pb, strict=True):
                acc[s : s + window] += pr
                cnt[s : s + window] += 1.0
    return np.clip(acc[:n] / cnt[:n], 0.0, 1.0)


def to_model_cadence(frame: pd.DataFrame, cadence: pd.Timedelta) -> pd.DataFrame:
    """The standard 10-min frame averaged to the model's cadence (bins labelled at their
    start; a bin is the mean of its valid 10-min values, NaN when it has none).  The one
    path from a frame to a coarser model's input, in training and inference alike."""
    if cadence <= pd.Timedelta(minutes=10):
        return frame
    return frame.resample(cadence, label="left", closed="left").mean()


def predict_proba(frame: pd.DataFrame, model: LoadedModel) -> np.ndarray:
    """One ICME probability per frame row (frame: standard 10-min solar-wind frame).

    A model whose config declares ``cadence_min`` > 10 (icme 2.x: 60) sees the frame
    averaged to that cadence; each 10-min row then takes the probability of its bin.
    """
    if len(frame) < 1:
        raise ValueError("frame is empty: need at least one row")
    cadence = pd.Timedelta(minutes=float(model.config.get("cadence_min", 10)))
    coarse = to_model_cadence(frame, cadence)
    x = frame_to_array(coarse, model.scaler)
    p = predict_array(x, model.module, model.window)
    if coarse is frame:
        return p
    rows = pd.DatetimeIndex(frame.index).floor(cadence)
    pos = pd.DatetimeIndex(coarse.index).get_indexer(rows)
    if (pos < 0).any():  # cannot happen: every row floors onto a bin of the resample
        raise ValueError("frame rows outside the model-cadence grid")
    return p[pos]
