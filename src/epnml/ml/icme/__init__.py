"""ICME detection in in-situ solar wind: a ResUNet++-style 1-D segmenter + event rules.

Typical use (what the ingest stage does)::

    from epnml.ml.icme import load_model, predict_proba, extract_events
    model = load_model()                       # newest committed, sha256-verified
    proba = predict_proba(frame, model)        # one probability per 10-min row
    events = extract_events(frame.index, proba, **model.postprocess())
"""

from __future__ import annotations

from .events import extract_events
from .features import FEATURES, frame_to_array
from .inference import LoadedModel, available_versions, load_model, predict_proba
from .model import ICMESegmenter, ModelConfig

__all__ = [
    "FEATURES",
    "ICMESegmenter",
    "LoadedModel",
    "ModelConfig",
    "available_versions",
    "extract_events",
    "frame_to_array",
    "load_model",
    "predict_proba",
]

