"""EPN-TAP value helpers shared by the stages (pure functions)."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pandas as pd

UNIX_EPOCH_JD = 2440587.5


def to_jd(t: pd.Timestamp | datetime) -> float:
    """UTC timestamp -> Julian Day as float64 (EPN-TAP time_min/time_max; never MJD)."""
    ts = pd.Timestamp(t)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return UNIX_EPOCH_JD + ts.value / 86_400e9


def iso_utc(t: pd.Timestamp) -> str:
    ts = pd.Timestamp(t)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def earth_sun_distance_au(t: pd.Timestamp) -> float:
    """Earth-Sun distance from the mean anomaly (Astronomical Almanac low-precision formula)."""
    days = to_jd(t) - 2451545.0
    g = math.radians((357.529 + 0.98560028 * days) % 360.0)
    return 1.00014 - 0.01671 * math.cos(g) - 0.00014 * math.cos(2 * g)


def finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None
