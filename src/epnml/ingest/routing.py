"""Which landform model reads which file (``epnml ingest landforms FILES``).

The four landform pipelines all take images, so a file's content decides where it goes
(read from its header and GeoTIFF tags only, never its pixels):

* a single-band floating-point GeoTIFF or PDS3 image is a DTM (elevations) -> ``mounds``
  (the mounds stage reads only floating-point rasters as DTMs);
* a georeferenced image of the Moon or Mercury, or of Mars at >= ``COARSE_PIXEL_KM``
  per pixel (global mosaics, CTX-scale and coarser) -> ``craters``;
* any other Mars image (HiRISE-scale GeoTIFFs, JPEG/PNG chips without georeference)
  -> ``pits``, and also ``ice`` when it is georeferenced and its centre lies in the ice
  patches' latitude band ``ICE_LAT_BAND`` (40-60 deg S, the science case's).

``models`` given explicitly overrides the rule: every file goes to every listed model.

Each file's declared size (header only) is then checked against the ``limits`` of every
stage it goes to, so a 30000 x 30000 PNG or a DTM label declaring 200000 x 200000 samples
is refused here (LimitExceeded naming the file), before any database connection or model.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

from epnml.ingest.limits import ResourceLimits
from epnml.ingest.readers.images import (
    GEOTIFF_SUFFIXES,
    PDS3_SUFFIXES,
    ImageHeader,
    image_files,
    read_image_header,
)
from epnml.ingest.stage import GranuleError

LANDFORM_MODELS = ("pits", "craters", "mounds", "ice")
#: pixel size (km) from which an image counts as a mosaic: craters, not pits.
COARSE_PIXEL_KM = 0.1
ICE_LAT_BAND = (-60.0, -40.0)
#: model -> (module, class) of its stage; imported only when routing needs its limits.
_STAGE_CLASSES = {
    "pits": ("epnml.ingest.stages.pits", "PitsStage"),
    "craters": ("epnml.ingest.stages.craters", "CratersStage"),
    "mounds": ("epnml.ingest.stages.mounds", "MoundsStage"),
    "ice": ("epnml.ingest.stages.ice", "IceStage"),
}


def stage_limits(model: str) -> ResourceLimits:
    """The ``limits`` class attribute of ``model``'s stage (no stage or model is built)."""
    module, name = _STAGE_CLASSES[model]
    limits: ResourceLimits = getattr(importlib.import_module(module), name).limits
    return limits


def models_for(path: Path) -> list[str]:
    """The landform models the rule above sends ``path`` to (its size unchecked)."""
    return _route(path)[0]


def _route(path: Path) -> tuple[list[str], ImageHeader]:
    """The models for ``path`` and the header that decided it."""
    header = read_image_header(path, with_georef=False)
    if (path.suffix.lower() in GEOTIFF_SUFFIXES + PDS3_SUFFIXES and header.mode == "F"
            and header.bands == 1):
        return ["mounds"], header
    header = read_image_header(path, ("Moon", "Mars", "Mercury"))
    georef = header.georef
    if georef is None:
        return ["pits"], header
    if georef.target != "Mars":
        return ["craters"], header
    kx, ky = georef.pixel_size_km(header.height / 2.0)
    if min(kx, ky) >= COARSE_PIXEL_KM:
        return ["craters"], header
    _, lat = georef.pixel_to_lonlat(header.width / 2.0, header.height / 2.0)
    if ICE_LAT_BAND[0] <= float(lat) <= ICE_LAT_BAND[1]:
        return ["pits", "ice"], header
    return ["pits"], header


def _checked_models(path: Path, models: Sequence[str] | None) -> list[str]:
    """The models ``path`` goes to, after checking its declared size against each one's
    limits (LimitExceeded naming the file)."""
    if models is None:
        chosen, header = _route(path)
    else:
        chosen, header = list(models), read_image_header(path, with_georef=False)
    for model in chosen:
        header.check_size(stage_limits(model))
    return chosen


def route_landforms(paths: Sequence[Path], models: Sequence[str] | None = None,
                    errors: list[GranuleError] | None = None) -> dict[str, list[Path]]:
    """Model name -> its files, in ``LANDFORM_MODELS`` order; empty models are left out.

    A file that cannot be routed, or whose header declares more than a stage it goes to
    allows (LimitExceeded), raises GranuleError, or is appended to ``errors`` (and left
    out) when that list is given.
    """
    if models is not None:
        unknown = sorted(set(models) - set(LANDFORM_MODELS))
        if unknown or not models:
            raise ValueError(f"unknown landform model(s) {unknown}; "
                             f"known: {', '.join(LANDFORM_MODELS)}")
    routes: dict[str, list[Path]] = {m: [] for m in LANDFORM_MODELS}
    for path in image_files(paths, "the landform pipelines"):
        try:
            chosen = _checked_models(path, models)
        except GranuleError as exc:
            if errors is None:
                raise
            errors.append(exc)
            continue
        for model in chosen:
            routes[model].append(path)
    return {m: files for m, files in routes.items() if files}
