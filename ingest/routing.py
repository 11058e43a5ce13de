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
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from epnml.ingest.readers.images import (
    GEOTIFF_SUFFIXES,
    PDS3_SUFFIXES,
    image_files,
    read_image_header,
)
from epnml.ingest.stage import GranuleError

LANDFORM_MODELS = ("pits", "craters", "mounds", "ice")
#: pixel size (km) from which an image counts as a mosaic: craters, not pits.
COARSE_PIXEL_KM = 0.1
ICE_LAT_BAND = (-60.0, -40.0)


def models_for(path: Path) -> list[str]:
    """The landform models the rule above sends ``path`` to."""
    header = read_image_header(path, with_georef=False)
    if (path.suffix.lower() in GEOTIFF_SUFFIXES + PDS3_SUFFIXES and header.mode == "F"
            and header.bands == 1):
        return ["mounds"]
    header = read_image_header(path, ("Moon", "Mars", "Mercury"))
    georef = header.georef
    if georef is None:
        return ["pits"]
    if georef.target != "Mars":
        return ["craters"]
    kx, ky = georef.pixel_size_km(header.height / 2.0)
    if min(kx, ky) >= COARSE_PIXEL_KM:
        return ["craters"]
    _, lat = georef.pixel_to_lonlat(header.width / 2.0, header.height / 2.0)
    if ICE_LAT_BAND[0] <= float(lat) <= ICE_LAT_BAND[1]:
        return ["pits", "ice"]
    return ["pits"]


def route_landforms(paths: Sequence[Path], models: Sequence[str] | None = None,
                    errors: list[GranuleError] | None = None) -> dict[str, list[Path]]:
    """Model name -> its files, in ``LANDFORM_MODELS`` order; empty models are left out.

    A file that cannot be routed raises GranuleError, or is appended to ``errors`` (and
    left out) when that list is given.
    """
    if models is not None:
        unknown = sorted(set(models) - set(LANDFORM_MODELS))
        if unknown or not models:
            raise ValueError(f"unknown landform model(s) {unknown}; "
                             f"known: {', '.join(LANDFORM_MODELS)}")
    routes: dict[str, list[Path]] = {m: [] for m in LANDFORM_MODELS}
    for path in image_files(paths, "the landform pipelines"):
        try:
            chosen = list(models) if models is not None else models_for(path)
        except GranuleError as exc:
            if errors is None:
                raise
            errors.append(exc)
            continue
        for model in chosen:
            routes[model].append(path)
    return {m: files for m, files in routes.items() if files}
