"""Light-curve and track features of one meteor, independent of frame count and camera.

Time is relative (0 at the first frame, 1 at the last), so two cameras that record the
same meteor with different frame counts see the same shape; brightness is the flux
relative to the peak, so a camera's zero point cancels out of the shape features.

=================  ==========================================================================
``peak_mag``        brightest magnitude of the 3-frame running median (one noisy field does
                    not make the peak)
``mean_mag``        magnitude of the mean flux over the recorded frames
``t_peak``          relative time of the peak (0..1)
``skewness``        third standardised moment of relative time weighted by flux: > 0 when the
                    light is early and the tail late (an early peak), < 0 the other way
``rise_slope``      brightening from the first field to the peak field, magnitudes per unit
                    of relative time (log-compressed in the classifier)
``decay_slope``     fading from the peak to the last frame, likewise
``flare_amp``       largest brightening above the curve's trend (running median over about a
                    third of the curve), magnitudes; 0 for curves too short to tell (< 7)
``n_flares``        brightenings of at least :data:`FLARE_MAG` above the trend
``duration_s``      (frames - 1) / frame rate
``angular_speed``   deg/s along the fitted great circle (epnml.ml.meteors.track)
``track_length``    deg between the fitted first and last positions
=================  ==========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .track import MAX_TRACK_DEG, fit_track

FEATURES = ("peak_mag", "mean_mag", "t_peak", "skewness", "rise_slope", "decay_slope",
            "flare_amp", "n_flares", "duration_s", "angular_speed", "track_length")
#: the light-curve SHAPE features the classes are made of (brightness, duration and
#: speed are properties of the meteoroid and the geometry, reported but not clustered).
SHAPE_FEATURES = ("t_peak", "skewness", "rise_slope", "decay_slope", "flare_amp")
#: a brightening above the trend of at least this (mag) counts as a flare.
FLARE_MAG = 0.5
#: shortest curve on which a flare can be told from the trend (frames).
MIN_FLARE_FRAMES = 7


def _running_median(x: np.ndarray, width: int) -> np.ndarray:
    """Centred running median, the window shrinking at the ends (odd ``width``)."""
    half = width // 2
    return np.array([np.median(x[max(0, i - half): i + half + 1]) for i in range(len(x))])


def light_curve_features(mag: np.ndarray) -> dict[str, float]:
    """The light-curve features of one meteor (see the module docstring)."""
    m = np.asarray(mag, dtype="float64")
    n = len(m)
    if n < 3 or not np.isfinite(m).all():
        raise ValueError("a light curve needs 3 finite magnitudes")
    smooth = _running_median(m, 3)
    # the running median flattens a peak: among its tied fields, the brightest raw one
    tied = np.flatnonzero(smooth == smooth.min())
    p = int(tied[np.argmin(m[tied])])
    t = np.linspace(0.0, 1.0, n)
    step = 1.0 / (n - 1)
    flux = 10.0 ** (-0.4 * (m - m.min()))
    w = flux / flux.sum()
    mu = float(w @ t)
    var = float(w @ (t - mu) ** 2)
    skew = float(w @ (t - mu) ** 3) / var ** 1.5 if var > 1e-12 else 0.0
    t_peak = p * step
    # slopes between fields at fixed relative times (first, peak, last): no smoothing
    # window whose width in relative time would depend on the frame count
    rise = (m[0] - m[p]) / max(t_peak, step)
    decay = (m[-1] - m[p]) / max(1.0 - t_peak, step)
    flare_amp, n_flares = 0.0, 0
    if n >= MIN_FLARE_FRAMES:
        width = max(5, (n // 3) | 1)
        excess = _running_median(smooth, width) - smooth  # > 0: brighter than the trend
        flare_amp = max(0.0, float(excess.max()))
        above = excess >= FLARE_MAG
        n_flares = int(np.count_nonzero(above[1:] & ~above[:-1]) + int(above[0]))
    return {
        "peak_mag": float(smooth[p]),
        "mean_mag": float(m.min() - 2.5 * math.log10(flux.mean())),
        "t_peak": float(t_peak),
        "skewness": skew,
        "rise_slope": float(rise),
        "decay_slope": float(decay),
        "flare_amp": flare_amp,
        "n_flares": float(n_flares),
    }


def meteor_features(mag: np.ndarray, ra: np.ndarray, dec: np.ndarray,
                    frame_rate_hz: float) -> dict[str, float]:
    """Every feature of one meteor; ValueError when it is not one meteor's track."""
    if not frame_rate_hz > 0:
        raise ValueError(f"frame rate must be > 0, got {frame_rate_hz}")
    out = light_curve_features(mag)
    t = np.arange(len(mag)) / frame_rate_hz
    track = fit_track(ra, dec, t)
    if track.length_deg > MAX_TRACK_DEG:
        raise ValueError(f"track of {track.length_deg:.0f} deg")
    out["duration_s"] = float(t[-1])
    out["angular_speed"] = track.speed_deg_s
    out["track_length"] = track.length_deg
    return out


def features_frame(records: Sequence[Any], frame_rate_hz: float
                   ) -> tuple[pd.DataFrame, dict[str, int]]:
    """Features of records with ``mag``, ``ra``, ``dec`` (one row per usable record,
    index = position in ``records``) and the count of records left out, by reason."""
    rows: dict[int, dict[str, float]] = {}
    invalid: dict[str, int] = {}
    for i, rec in enumerate(records):
        try:
            rows[i] = meteor_features(rec.mag, rec.ra, rec.dec, frame_rate_hz)
        except ValueError:
            key = f"record with a track longer than {MAX_TRACK_DEG:g} deg"
            invalid[key] = invalid.get(key, 0) + 1
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(FEATURES))
    return frame, invalid
