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
from epnml.ingest.stage import ModelInfo
from epnml.ml.checkpoints import available_versions as _available_versions
from epnml.ml.checkpoints import resolve_weights, sha256_file, verify_card

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
    pt = resolve_weights(MODEL_NAME, version, path, WEIGHTS_DIR, _FILE_RE)
    card, digest = verify_card(pt)
    ckpt = torch.load(pt, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or ckpt.get("name") != MODEL_NAME:
        raise ValueError(f"{pt}: not a {MODEL_NAME} checkpoint")
    cfg = ModelConfig.from_dict(ckpt["config"]["model"])
    module = CrossingsTCN(cfg)
    module.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()})
    module.eval()
    ver = str(ckpt.get("version", card.get("version")))
    if card.get("version") != ver:
        raise ValueError(f"{pt}: card version {card.get('version')} != weights version {ver}")
    return LoadedModel(
        module=module,
        info=ModelInfo(name=MODEL_NAME, version=ver, sha256=digest),
        config=dict(ckpt["config"]),
        scaler=Scaler.from_dict(ckpt["scaler"]),
    )


def save_checkpoint(
    path: Path, module: CrossingsTCN, version: str, config: dict[str, Any], scaler: Scaler
) -> str:
    """Write ``crossings-<version>.pt`` (state_dict + config + scaler); returns its sha256.

    Only tensors and plain Python types go in, so ``torch.load(weights_only=True)``
    can read it without unpickling code.
    """
    if path.name != f"{MODEL_NAME}-{version}.pt":
        raise ValueError(f"weights file must be named {MODEL_NAME}-{version}.pt, got {path.name}")
    cfg = dict(config)
    cfg["model"] = module.config.to_dict()
    torch.save(
        {
            "name": MODEL_NAME,
            "version": version,
            "config": cfg,
            "scaler": scaler.to_dict(),
            "state_dict": module.state_dict(),
        },
        path,
    )
    return sha256_file(path)


def predict_array(x: np.ndarray, module: CrossingsTCN, chunk: int = CHUNK) -> np.ndarray:
    """Softmax probabilities ``(n, C)`` for scaled features ``x`` ``(n, F)``.

    One forward pass when ``n <= chunk``; otherwise overlapping chunks whose
    centres are kept (overlap = receptive field + margin on each side).
    """
    n = x.shape[0]
    if n < 1:
        raise ValueError("need at least one sample")
    if torch.get_num_threads() > MAX_THREADS:
        torch.set_num_threads(MAX_THREADS)
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
