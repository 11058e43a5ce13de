"""EPN-TAP values shared by the stages (pure functions): conversions and the core row."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from epnml.ingest.stage import Granule, RunContext
    from epnml.ml.model_info import ModelInfo
    from epnml.schemas.products import Product

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


#: what every row says about the service; per-row values come from the stage.
PUBLISHER = "epnml"
#: every product is a derived catalogue (EPN-TAP processing level 5: "derived data").
PROCESSING_LEVEL = 5


def core_row(product: Product, *, uid: str, gid: str, granule: Granule, info: ModelInfo,
             ctx: RunContext, dataproduct_type: str, target_name: str, target_class: str,
             thumb: str | None, bib_reference: str | None,
             time_scale: str | None = None) -> dict[str, Any]:
    """The EPN-TAP columns every product row repeats, and the model provenance.

    Stages add what differs (times, coordinates, descriptions, the product's own columns)
    with ``row | {...}`` or ``row.update``. ``thumb`` is the quicklook's path relative to
    ``ctx.files_base_url``; ``time_scale`` is left out for products without time.
    """
    now = ctx.started
    row: dict[str, Any] = {
        "granule_uid": uid,
        "granule_gid": gid,
        "obs_id": granule.granule_id,
        "dataproduct_type": dataproduct_type,
        "target_name": target_name,
        "target_class": target_class,
        "spatial_frame_type": product.spatial_frame_type,
        "processing_level": PROCESSING_LEVEL,
        "creation_date": now,
        "modification_date": now,
        "release_date": now,
        "service_title": product.schema,
        "thumbnail_url": f"{ctx.files_base_url}/{thumb}" if thumb else None,
        "publisher": PUBLISHER,
        "bib_reference": bib_reference,
        "ml_model_name": info.name,
        "ml_model_version": info.version,
        "ml_weights_sha256": info.sha256,
        "ml_run_id": ctx.run_id,
    }
    if time_scale is not None:
        row["time_scale"] = time_scale
    return row


# --- longitudes of footprints (docs/architecture.md, "Longitudes across 0 deg E") -------
def continuous_lons(lons: Any) -> list[float]:
    """Polygon vertex longitudes (deg) in one continuous range: each vertex within 180 deg
    of the previous one (pgSphere edges are short great circles), the whole shifted so the
    west-most vertex lies in [0, 360). A footprint across 0 deg E then reads 359.5 .. 360.5,
    one ending at the seam 270 .. 360, never 0 for 360. A polygon holding a pole (the walk
    comes back shifted by 360) keeps its longitudes in [0, 360)."""
    vals = [float(v) for v in np.asarray(lons, dtype=float).ravel()]
    if not vals:
        raise ValueError("a polygon needs vertices, got none")
    if _winds(vals):  # winds round a pole: no continuous range exists
        return [v % 360.0 for v in vals]
    out = [vals[0]]
    for v in vals[1:]:
        out.append(out[-1] + ((v - out[-1] + 180.0) % 360.0 - 180.0))
    shift = 360.0 * math.floor(min(out) / 360.0)
    return [v - shift for v in out]


def lon_bounds(lons: Any) -> tuple[float, float]:
    """Tight (c1min, c1max) of a polygon's vertex longitudes, EPN-TAP 2.0 convention:
    both in [0, 360]; c1min > c1max when the footprint crosses 0 deg E (west bound, east
    bound: 359.5, 0.5); 0, 360 for a footprint holding a pole."""
    if _winds(lons):
        return 0.0, 360.0
    cont = continuous_lons(lons)
    return wrap_bounds(min(cont), max(cont))


def wrap_bounds(west: float, east: float) -> tuple[float, float]:
    """(c1min, c1max) of the longitude interval ``west`` .. ``east`` (deg, ``east >= west``,
    any turn): 0, 360 when it spans all longitudes, else both folded into [0, 360] with
    c1min > c1max when the interval crosses 0 deg E. An east bound exactly on the seam
    stays 360 (the interval 270 .. 360 does not cross 0 deg E)."""
    if east - west >= 360.0:
        return 0.0, 360.0
    lo = west % 360.0
    hi = lo + (east - west)
    return lo, hi - 360.0 if hi > 360.0 else hi


def _winds(lons: Any) -> bool:
    """True when the closed vertex walk turns once round the pole (net 360 deg)."""
    vals = [float(v) for v in np.asarray(lons, dtype=float).ravel()]
    total = sum((b - a + 180.0) % 360.0 - 180.0 for a, b in zip(vals, vals[1:] + vals[:1],
                                                                     strict=True))
    return abs(total) > 180.0
