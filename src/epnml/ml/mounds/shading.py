"""Hillshade of a DTM: a model input of the mounds U-Net (:mod:`.unet`) and what the
mounds simulator writes as a plain image; kept free of torch so simulators stay light."""

from __future__ import annotations

import math

import numpy as np


def hillshade(dtm: np.ndarray, pixel_m: float, azimuth_deg: float = 315.0,
              altitude_deg: float = 45.0) -> np.ndarray:
    """Lambertian hillshade in [0, 1] (sun from the north-west by default, GIS convention)."""
    gy, gx = np.gradient(np.asarray(dtm, dtype=np.float32), pixel_m)
    slope = np.arctan(np.hypot(gx, gy))
    aspect = np.arctan2(-gx, gy)  # downslope direction, clockwise from north (rows down)
    az, alt = math.radians(azimuth_deg), math.radians(altitude_deg)
    shade = (math.sin(alt) * np.cos(slope)
             + math.cos(alt) * np.sin(slope) * np.cos(az - aspect))
    return np.clip(shade, 0.0, 1.0).astype(np.float32)
