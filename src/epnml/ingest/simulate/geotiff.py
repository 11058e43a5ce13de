"""Write Mars equirectangular GeoTIFFs that :mod:`epnml.ingest.readers.images` reads.

Why here: the landform simulators (mounds, ice) write their scenes as real-format inputs
without GDAL. The file carries ModelPixelScale, ModelTiepoint and a GeoKey directory
for an equirectangular projection of the IAU 2000 Mars sphere (centre longitude 0,
standard parallel 0 unless given, metres), the same tags the reader parses. A ``GDAL_NODATA``
tag is written when ``nodata`` is given.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

MARS_R = 3_396_190.0


def _ifd(tags: dict[int, tuple[int, object]]) -> object:
    from PIL import TiffImagePlugin

    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, (kind, value) in tags.items():
        ifd[tag] = value
        ifd.tagtype[tag] = kind
    return ifd


def write_mars_geotiff(path: Path, pixels: np.ndarray, lon0: float, lat0: float,
                       pixel_m: float, nodata: float | None = None,
                       std_parallel: float = 0.0) -> Path:
    """Write ``pixels`` (uint8 -> 8-bit, float -> 32-bit float) with its top-left corner at
    (``lon0`` east, ``lat0``) degrees and square ``pixel_m`` pixels (equirectangular).

    The pixels are square on the ground only at ``std_parallel`` (the projection's true
    scale); a scene meant to have square ground pixels away from the equator must give its
    own latitude (written as ProjStdParallel1GeoKey, which the reader honours)."""
    from PIL import Image, TiffTags

    if pixel_m <= 0:
        raise ValueError(f"pixel_m must be > 0, got {pixel_m}")
    arr = np.asarray(pixels)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {arr.shape}")
    img = (Image.fromarray(arr, mode="L") if arr.dtype == np.uint8
           else Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32), mode="F"))
    d, s, a = TiffTags.DOUBLE, TiffTags.SHORT, TiffTags.ASCII
    citation = "Equirectangular Mars (SIMULATED scene)|"
    if not -90.0 < std_parallel < 90.0:
        raise ValueError(f"std_parallel must be within (-90, 90), got {std_parallel}")
    keys = (1, 1, 0, 10, 1024, 0, 1, 1, 1025, 0, 1, 1, 1026, 34737, len(citation), 0,
            2048, 0, 1, 32767, 2057, 34736, 1, 0, 2058, 34736, 1, 0,
            3072, 0, 1, 32767, 3075, 0, 1, 17, 3078, 34736, 1, 2, 3088, 34736, 1, 1)
    # x of the corner relative to the centre longitude 0: keep it within (-180, 180]
    lon = ((lon0 + 180.0) % 360.0) - 180.0
    r_lon = MARS_R * math.cos(math.radians(std_parallel))
    tags: dict[int, tuple[int, object]] = {
        33550: (d, (pixel_m, pixel_m, 0.0)),
        33922: (d, (0, 0, 0, r_lon * math.radians(lon), MARS_R * math.radians(lat0), 0.0)),
        34735: (s, keys), 34736: (d, (MARS_R, 0.0, float(std_parallel))),
        34737: (a, citation)}
    if nodata is not None:
        tags[42113] = (a, f"{nodata:g}")
    img.save(path, format="TIFF", tiffinfo=_ifd(tags))
    return path
