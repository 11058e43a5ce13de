"""Load committed crossings weights (checksum-verified) and label whole orbits in one pass."""

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

from .features import Scaler, frame_to_features
from .model import CrossingsTCN, ModelConfig
from .postprocess import PostprocessParams

MODEL_NAME = "crossings"
#: committed weights live next to the package so they ship with it.
WEIGHTS_DIR = models_dir() / "weights"
MAX_THREADS = 2
#: inputs longer than this many samples (~2.3 orbits) are run in overlapping chunks
#: so memory stays bounded; the overlap exceeds the receptive field, so chunk
#: borders do not change the output.
CHUNK = 100_000
_FILE_RE = re.compile(rf"^{MODEL_NAME}-(?P<version>\d[0-9A-Za-z.+-]*)\.pt$")


@dataclass
class LoadedModel:
    """A ready-to-run model and everything needed to reproduce its output."""

    module: CrossingsTCN
    info: ModelInfo
    #: model architecture, postprocess defaults, features.
    config: dict[str, Any]
    scaler: Scaler

    def postprocess(self) -> dict[str, Any]:
        """Keyword arguments for ``extract_crossings`` chosen on validation for this model."""
        return PostprocessParams.from_dict(self.config.get("postprocess", {})).to_dict()


def available_versions(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """Versions with both a weights file and its JSON card, oldest first.

    ``crossings-baseline-*`` (the sliding-window comparison) is not a version of this model.
    """
    return _available_versions(MODEL_NAME, weights_dir, _FILE_RE)


def load_model(version: str | None = None, path: Path | None = None) -> LoadedModel:
    """Load ``crossings-<version>.pt`` (default: newest in ``ml/weights``) after its sha256 check.

    ``path`` may be a weights directory or a ``.pt`` file; the JSON card next to the
    weights must exist and carry the file's sha256, so a swapped or truncated file
    is refused rather than silently producing different catalogue rows.
    """
    ckpt = read_checkpoint(MODEL_NAME, version, path,
                           lambda cfg: CrossingsTCN(ModelConfig.from_dict(cfg)), WEIGHTS_DIR,
                           pattern=_FILE_RE, require=("scaler",))
    return LoadedModel(module=ckpt.module, info=ckpt.info, config=ckpt.config,
                       scaler=Scaler.from_dict(ckpt.extra["scaler"]))


def save_checkpoint(
    path: Path, module: CrossingsTCN, version: str, config: dict[str, Any], scaler: Scaler
) -> str:
    """Write ``crossings-<version>.pt`` (state_dict + config + scaler, full precision);
    returns its sha256."""
    return save_model_checkpoint(path, MODEL_NAME, version, module, config, half=False,
                                 extra={"scaler": scaler.to_dict()})


def predict_array(x: np.ndarray, module: CrossingsTCN, chunk: int = CHUNK) -> np.ndarray:
    """Softmax probabilities ``(n, C)`` for scaled features ``x`` ``(n, F)``.

    One forward pass when ``n <= chunk``; otherwise overlapping chunks whose
    centres are kept (overlap = receptive field + margin on each side).
    """
    n = x.shape[0]
    if n < 1:
        raise ValueError("need at least one sample")
    cap_threads(MAX_THREADS)
    module.eval()
    margin = module.config.receptive_field_s + 64
    if chunk <= 2 * margin:
        raise ValueError(f"chunk {chunk} must exceed twice the context margin {margin}")
    xt = torch.from_numpy(np.ascontiguousarray(x.T, dtype=np.float32))
    out = np.empty((n, module.config.n_classes), dtype=np.float32)
    with torch.inference_mode():
        if n <= chunk:
            return torch.softmax(module(xt[None]), dim=1)[0].T.numpy().copy()
        step = chunk - 2 * margin
        for s in range(0, n, step):
            a, b = max(0, s - margin), min(n, s + step + margin)
            pr = torch.softmax(module(xt[None, :, a:b]), dim=1)[0].T.numpy()
            e = min(n, s + step)
            out[s:e] = pr[s - a : e - a]
    return out


def predict_proba(frame: pd.DataFrame, model: LoadedModel) -> np.ndarray:
    """Region probabilities ``(n, 5)`` (rows sum to 1) for a 1-s MAG frame, one pass."""
    if len(frame) < 1:
        raise ValueError("frame is empty: need at least one row")
    return predict_array(frame_to_features(frame, model.scaler), model.module)
