"""Load and save the committed ice-patch CNN weights, and run it on 1024-px chunks.

Same rules as every model (:mod:`epnml.ml.checkpoints`): ``ml/weights/ice-<ver>.pt`` next
to a JSON card holding its sha256; a file whose checksum disagrees is refused.
:func:`classify_chunks` gives the ice probability of each chunk of an image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from epnml.config import models_dir
from epnml.ml.checkpoints import LoadedNet, cap_threads, load_checkpoint, weights_pattern
from epnml.ml.checkpoints import available_versions as _available_versions
from epnml.ml.checkpoints import save_checkpoint as _save

from .icenet import Chunk, IceNet, IceNetConfig, chunk_inputs

WEIGHTS_DIR = models_dir() / "weights"
MAX_THREADS = 2
MODEL_NAME = "ice"


def available_versions(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    return _available_versions(MODEL_NAME, weights_dir, weights_pattern(MODEL_NAME))


def load_model(version: str | None = None, path: Path | None = None) -> LoadedNet:
    """Load ``ice-<version>.pt`` (default newest) after its sha256 check."""
    module, info, config = load_checkpoint(
        MODEL_NAME, version, path, lambda cfg: IceNet(IceNetConfig.from_dict(cfg)), WEIGHTS_DIR)
    return LoadedNet(module, info, config)


def save_model(path: Path, module: IceNet, version: str, config: dict[str, Any]) -> str:
    """Write ``ice-<version>.pt`` (half-precision floats, plain types; loadable with
    ``weights_only=True``); returns its sha256."""
    return _save(path, MODEL_NAME, version, module, config, half=True)


def classify_chunks(pixels: np.ndarray, module: nn.Module, saturation: float | None
                    ) -> tuple[np.ndarray, list[Chunk]]:
    """Ice probability of each chunk of an image, and the chunks."""
    inputs, chunks = chunk_inputs(pixels, saturation)
    if not chunks:
        return np.zeros(0), chunks
    cap_threads(MAX_THREADS)
    module.eval()
    with torch.inference_mode():
        logits = torch.cat([module(torch.from_numpy(inputs[s:s + 16]))
                            for s in range(0, len(inputs), 16)])
    return torch.sigmoid(logits).numpy().astype(float), chunks
