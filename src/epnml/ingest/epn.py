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
