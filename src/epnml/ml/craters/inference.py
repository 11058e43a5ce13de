"""Crater detector: committed weights, detection as circles, matching to crater lists.

Why a separate module from ``inference`` (pits): another model name, one class, and
circle outputs. The network is the pits CenterNet-style detector with one heatmap
(``DetectorConfig(n_classes=1)``); its box is the crater's footprint in the image, so
on an equirectangular map a crater at latitude phi is ``1/cos(phi)`` wider than tall.
The diameter is therefore read from the box height (latitude pixels are undistorted),
or from the width times ``cos(phi)`` when the box is cut by the top or bottom edge of
the image; the width head (trained on stretched footprints) is unreliable otherwise.
Global mosaics (360 deg across) are padded with wrapped columns so a crater on the
map seam is seen whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epnml.config import models_dir
from epnml.ml.checkpoints import available_versions as _available_versions
from epnml.ml.checkpoints import load_checkpoint
from epnml.ml.checkpoints import save_checkpoint as _save
from epnml.ml.craters.bands import BANDED_ARCH, BandChoice, BandedCraterNet, choose
from epnml.ml.craters.net import ARCH, CraterNet, CraterNetConfig, runnable
from epnml.ml.craters.recipe import VIEW_MIN_SCORE, run_views
from epnml.ml.craters.recipe import apply as apply_recipe
from epnml.ml.imagery.detector import DetectorConfig, PitsDetector
from epnml.ml.imagery.tiling import nms
from epnml.ml.model_info import ModelInfo
from epnml.ml.pits.inference import BATCH, MIN_SCORE, OVERLAP, detect_array

MODEL_NAME = "craters"
WEIGHTS_DIR = models_dir() / "weights"
CLASS_NAMES = ("crater",)
#: matching rule (evaluation and IAU look-up): centre distance < MATCH_CENTRE x D of the
#: catalogue crater and diameter ratio within MATCH_RATIO.
MATCH_CENTRE = 0.5
MATCH_RATIO = 1.5
OUTPUT_COLUMNS = ["x_min", "y_min", "x_max", "y_max", "class", "score", "cx", "cy",
                  "diameter_px"]


@dataclass
class LoadedCraterModel:
    """A ready-to-run crater detector and the inference settings chosen with it."""

    module: PitsDetector | CraterNet | BandedCraterNet
    info: ModelInfo
    config: dict[str, Any]

    @property
    def threshold(self) -> float:
        """The default band's (or the one network's) validation-chosen threshold."""
        return self.choose(None).threshold

    @property
    def input_scale(self) -> float:
        return self.choose(None).input_scale

    @property
    def banded(self) -> bool:
        return isinstance(self.module, BandedCraterNet)

    def choose(self, pixel_scale_m: float | None) -> BandChoice:
        """The network and settings for an image of this ground pixel scale (m/px; None:
        unknown, the default band). ValueError outside every band (``bands.choose``)."""
        return choose(self.module, self.config, pixel_scale_m, self.info.version)


def available_versions(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """Versions with both a weights file and its JSON card, oldest first."""
    return _available_versions(MODEL_NAME, weights_dir)


def load_model(version: str | None = None, path: Path | None = None) -> LoadedCraterModel:
    """Load ``craters-<version>.pt`` (default newest) after its sha256 check."""
    module, info, config = load_checkpoint(MODEL_NAME, version, path, build_network,
                                           WEIGHTS_DIR)
    return LoadedCraterModel(module, info, config)


def load_spec(spec: str | None) -> LoadedCraterModel:
    """Weights as the experiment commands name them: a committed version (None: the
    newest) or the path of a scratch ``.pt`` with its card beside it."""
    if spec is not None and spec.endswith(".pt"):
        return load_model(None, Path(spec))
    return load_model(spec)


def build_network(cfg: dict[str, Any]) -> PitsDetector | CraterNet | BandedCraterNet:
    """The network a checkpoint's ``model`` config describes: 2.x name their architecture
    (the pretrained EfficientNet-Lite0 pyramid; weights come from the checkpoint, so no
    ImageNet file is read), 1.x are the pits network with one heatmap, and banded
    versions (2.1.0 on) hold one of those per resolution band (``bands``)."""
    if cfg.get("arch") == BANDED_ARCH:
        return BandedCraterNet.from_dict(cfg)
    if cfg.get("arch") == ARCH:
        return CraterNet(CraterNetConfig.from_dict(cfg))
    return PitsDetector(DetectorConfig.from_dict(cfg))


def save_checkpoint(path: Path, module: PitsDetector | CraterNet | BandedCraterNet, version: str,
                    config: dict[str, Any]) -> str:
    """Write ``craters-<version>.pt`` (weights_only-loadable, float16 to stay small)."""
    return _save(path, MODEL_NAME, version, module, config, half=True)

def detect_craters_array(image: np.ndarray, module: Any, *, scale: float,
                         wrap_px: int = 0, min_score: float = MIN_SCORE,
                         nms_iou: float = 0.5, batch: int = BATCH,
                         overlap: int = OVERLAP) -> np.ndarray:
    """``(n, 6)`` detections in input pixels; ``wrap_px`` > 0 pads a global map with that
    many wrapped columns each side and keeps detections centred inside the map (boxes
    may then extend past x = 0 or x = width: the crater crosses the seam)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {image.shape}")
    w = image.shape[1]
    pad = int(min(max(wrap_px, 0), w))
    if pad:
        image = np.concatenate([image[:, w - pad:], image, image[:, :pad]], axis=1)
    dets = detect_array(image, module, scale=scale, min_score=min_score, nms_iou=nms_iou,
                        batch=batch, overlap=overlap)
    if pad:
        dets = dets.copy()
        dets[:, [0, 2]] -= pad
        cx = (dets[:, 0] + dets[:, 2]) / 2
        dets = nms(dets[(cx >= 0) & (cx < w)], nms_iou)
    return dets


def detect_band(image: np.ndarray, use: BandChoice, *, min_score: float = MIN_SCORE,
                wrap_px: int = 0, fine_overlap: int = OVERLAP) -> np.ndarray:
    """``(n, 6)`` detections of a band (or one-network version) at score >= ``min_score``:
    its test-time recipe when it has one (``recipe``), else one plain pass.

    The pretrained 2.x network runs as its inference copy (``epnml.ml.fuse``: BatchNorm
    folded, channels-last; same outputs within float rounding), one tile per call (fastest
    on CPU); the 1.0.0 network runs unchanged."""
    module, batch = runnable(use.module, BATCH)
    floor = min_score if use.recipe is None else max(min_score, VIEW_MIN_SCORE)

    def run(img: np.ndarray, scale: float) -> np.ndarray:
        # ``fine_overlap`` (an experiment's setting; the versions use OVERLAP): tile overlap
        # of the passes at the band's scale; a recipe's coarse pass keeps OVERLAP
        overlap = fine_overlap if scale == use.input_scale else OVERLAP
        return detect_craters_array(img, module, scale=scale, wrap_px=wrap_px,
                                    min_score=floor, nms_iou=use.nms_iou, batch=batch,
                                    overlap=overlap)

    if use.recipe is None:
        return run(image, use.input_scale)
    views, coarse = run_views(image, run, use.input_scale, use.recipe)
    return apply_recipe(views, coarse, use.recipe, use.nms_iou)


def circles(dets: np.ndarray, lat_of_row: Any = None, height: float | None = None
            ) -> pd.DataFrame:
    """Detections -> OUTPUT_COLUMNS: circle footprint box, class (1), score, centre and
    diameter (px).

    The diameter is the box height (latitude pixels are not stretched; the width head
    learnt stretched footprints and is not used), or ``width * cos(lat)`` for a box cut
    by the top or bottom edge of an image ``height`` px high. ``lat_of_row(y)``
    (degrees) is given for equirectangular / geographic maps. The returned box is the
    circle's footprint: diameter high, diameter / cos(lat) wide (square without a map).
    """
    d = np.asarray(dets, dtype=float).reshape(-1, 6)
    cx, cy = (d[:, 0] + d[:, 2]) / 2, (d[:, 1] + d[:, 3]) / 2
    bw, bh = d[:, 2] - d[:, 0], d[:, 3] - d[:, 1]
    coslat = np.ones(len(d))
    if lat_of_row is not None and len(d):
        coslat = np.clip(np.cos(np.radians(np.asarray(lat_of_row(cy), dtype=float))), 1e-3, 1)
    cut = (d[:, 1] <= 0.5) | (d[:, 3] >= height - 0.5) if height is not None \
        else np.zeros(len(d), dtype=bool)
    diam = np.where(cut, bw * coslat, bh)
    half_w, half_h = diam / coslat / 2, diam / 2
    y0, y1 = cy - half_h, cy + half_h
    if height is not None:
        y0, y1 = np.clip(y0, 0.0, height), np.clip(y1, 0.0, height)
    frame = pd.DataFrame({"x_min": cx - half_w, "y_min": y0, "x_max": cx + half_w,
                          "y_max": y1, "class": np.ones(len(d), dtype=int),
                          "score": d[:, 5], "cx": cx, "cy": cy, "diameter_px": diam},
                         columns=OUTPUT_COLUMNS)
    return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def detect(image: np.ndarray, model: LoadedCraterModel, *, threshold: float | None = None,
           wrap_px: int = 0, lat_of_row: Any = None, pixel_scale_m: float | None = None,
           band: BandChoice | None = None) -> pd.DataFrame:
    """Craters in a grayscale image (OUTPUT_COLUMNS), best first. ``band`` (or else the
    band of ``pixel_scale_m``, m/px; ValueError outside every band) gives the network;
    ``threshold`` defaults to that band's validation-chosen one."""
    use = band if band is not None else model.choose(pixel_scale_m)
    thr = use.threshold if threshold is None else float(threshold)
    if not 0.0 < thr < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {thr}")
    dets = detect_band(image, use, min_score=min(thr, MIN_SCORE), wrap_px=wrap_px)
    return circles(dets[dets[:, 5] >= thr], lat_of_row, float(np.shape(image)[0]))


def angular_distance_deg(lon1: Any, lat1: Any, lon2: Any, lat2: Any) -> np.ndarray:
    """Great-circle distance (degrees), broadcasting (haversine)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl = np.radians(np.asarray(lon2, float) - np.asarray(lon1, float))
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def match(det_lon: Any, det_lat: Any, det_d_km: Any, det_score: Any, ref_lon: Any,
          ref_lat: Any, ref_d_km: Any, radius_km: float) -> np.ndarray:
    """Index of the matched reference crater per detection (-1: none), greedy by score.

    A detection matches an unused reference crater when their centres are closer than
    ``MATCH_CENTRE`` x the reference diameter and the diameters agree within a factor
    ``MATCH_RATIO``; among candidates the closest in log-diameter + distance wins.
    """
    dl, db, dd = (np.asarray(v, float).ravel() for v in (det_lon, det_lat, det_d_km))
    rl, rb, rd = (np.asarray(v, float).ravel() for v in (ref_lon, ref_lat, ref_d_km))
    out = np.full(len(dl), -1, dtype=int)
    if not len(dl) or not len(rl):
        return out
    dist_km = np.radians(angular_distance_deg(dl[:, None], db[:, None], rl[None, :],
                                              rb[None, :])) * radius_km
    ratio = np.abs(np.log(np.maximum(dd[:, None], 1e-9) / rd[None, :]))
    ok = (dist_km < MATCH_CENTRE * rd[None, :]) & (ratio <= math.log(MATCH_RATIO))
    cost = dist_km / rd[None, :] + ratio
    used = np.zeros(len(rl), dtype=bool)
    for i in np.argsort(-np.asarray(det_score, float).ravel(), kind="stable"):
        cand = np.flatnonzero(ok[i] & ~used)
        if cand.size:
            j = int(cand[np.argmin(cost[i, cand])])
            used[j] = True
            out[i] = j
    return out
