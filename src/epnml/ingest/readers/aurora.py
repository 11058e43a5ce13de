"""Reader of EMUS L2A-like FUV disk images of Mars (FITS) and of PNG chips.

FITS (``.fits``, ``.fit``, ``.fts``; astropy): the primary HDU (or the first image
extension) holds one 2-D image of brightness in rayleigh (``BUNIT = 'R'``) in one emission
band, row 0 at the top (north up). Keywords:

* time: ``DATE-OBS`` (required, ISO UTC), ``DATE-END`` or ``EXPTIME`` (s);
* band: ``BANDNAME``, ``WAVEMIN`` / ``WAVEMAX`` (nm; optional together);
* geometry (all or none): ``SC_LAT``, ``SC_LON`` (sub-spacecraft planetocentric latitude,
  east longitude, deg), ``SC_DIST`` (km from Mars' centre), ``SS_LAT``, ``SS_LON``
  (sub-solar point), ``PLATESCL`` (rad/px), ``MARS_CX``, ``MARS_CY`` (pixel position of
  Mars' centre, continuous, (0, 0) the top-left corner of the first pixel);
* ``TELESCOP``, ``INSTRUME``; ``SIMULATE = T`` marks epnml's simulated images.

This is the layout epnml's simulator writes (:mod:`epnml.ingest.simulate.aurora`). Real
EMUS L2A products are per-swath spectral cubes with their own keyword set: no such file
was available to establish the mapping, so they are not read (docs/pipelines/aurora.md).

PNG chips (8-bit grey) carry no geometry and no time: the brightness is recovered from the
documented log stretch :func:`png_stretch` (the simulator's quicklook convention); their
rows have NULL time and footprint.

Rules (as every reader): a missing, empty or unreadable file, a file that is not FITS, no
2-D image, more pixels than the limits, a missing or malformed required keyword, an
incomplete or impossible geometry -> :class:`GranuleError` naming the file and the reason,
never its content. Non-finite pixels become 0 R and are counted (``invalid``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epnml.ingest.limits import ResourceLimits
from epnml.ingest.readers.paths import guard, require_file
from epnml.ingest.stage import GranuleError
from epnml.ml.aurora.geometry import DiskGeometry

FITS_SUFFIXES = (".fits", ".fit", ".fts")
PNG_SUFFIXES = (".png",)
SUFFIXES = FITS_SUFFIXES + PNG_SUFFIXES
#: the band of the simulated images: name, min and max wavelength (nm).
BAND = ("OI 130.4 nm", 128.0, 133.0)
#: the PNG chips' 8-bit log stretch: v = 255 log1p(B / B0) / log1p(BMAX / B0).
PNG_B0_R, PNG_BMAX_R = 10.0, 20_000.0
#: one image: 4096 x 4096 px at most (EMUS disk images are a few hundred px a side).
AURORA_LIMITS = ResourceLimits(max_pixels=4096 * 4096, max_memory_mb=1000)
GEOMETRY_KEYS = ("SC_LAT", "SC_LON", "SC_DIST", "SS_LAT", "SS_LON", "PLATESCL", "MARS_CX",
                 "MARS_CY")
_FITS_MAGIC = b"SIMPLE  ="


def png_stretch(brightness: np.ndarray) -> np.ndarray:
    """Brightness (R) -> the PNG chip's 8-bit values."""
    b = np.clip(np.nan_to_num(np.asarray(brightness, float)), 0.0, None)
    v = np.log1p(b / PNG_B0_R) / math.log1p(PNG_BMAX_R / PNG_B0_R)
    return np.asarray(np.clip(np.round(v * 255.0), 0, 255), dtype=np.uint8)


def png_unstretch(values: np.ndarray) -> np.ndarray:
    """8-bit values of a PNG chip -> brightness (R), the inverse of :func:`png_stretch`."""
    v = np.asarray(values, float) / 255.0
    return np.asarray(PNG_B0_R * np.expm1(v * math.log1p(PNG_BMAX_R / PNG_B0_R)), np.float32)


@dataclass
class AuroraImage:
    path: Path
    #: brightness (R), (rows, cols) float32, row 0 at the top
    brightness: np.ndarray
    geometry: DiskGeometry | None
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    exptime_s: float | None
    band: str | None
    #: wavelength range (nm) of the band
    wave_nm: tuple[float, float] | None
    telescope: str | None
    instrument: str | None
    simulated: bool
    file_format: str
    invalid: dict[str, int] = field(default_factory=dict)


def read_aurora_image(path: Path | str, limits: ResourceLimits = AURORA_LIMITS) -> AuroraImage:
    """Read a FITS image or a PNG chip (decided by the suffix; FITS also by its first bytes)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise GranuleError(path, f"unsupported file type {suffix or '(none)'}; expected "
                                 f"one of {', '.join(SUFFIXES)}")
    require_file(path)
    if suffix in PNG_SUFFIXES:
        return _read_png(path, limits)
    return _read_fits(path, limits)


def _read_png(path: Path, limits: ResourceLimits) -> AuroraImage:
    from epnml.ingest.readers.images import read_image

    image = read_image(path, limits=limits)
    pixels = image.pixels
    if np.nanmax(pixels) > 255:
        raise GranuleError(path, "not an 8-bit chip (values above 255)")
    invalid = int((~np.isfinite(pixels)).sum())
    return AuroraImage(path, png_unstretch(np.nan_to_num(pixels)), None, None, None, None,
                       None, None, None, None, "simulated" in path.name.lower(), "PNG",
                       {"brightness": invalid} if invalid else {})


def _card(header: Any, key: str, path: Path, *, number: bool) -> Any:
    value = header.get(key)
    if value is None:
        return None
    if number:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(float(value)):
            raise GranuleError(path, f"keyword {key} is not a finite number")
        return float(value)
    if not isinstance(value, str):
        raise GranuleError(path, f"keyword {key} is not text")
    return value.strip()


def _time(header: Any, key: str, path: Path) -> pd.Timestamp | None:
    text = _card(header, key, path, number=False)
    if text is None:
        return None
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        raise GranuleError(path, f"keyword {key} is not an ISO date") from None
    if ts is pd.NaT or not 1950 <= ts.year <= 2200:
        raise GranuleError(path, f"keyword {key} is not a date of a Mars mission")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _read_fits(path: Path, limits: ResourceLimits) -> AuroraImage:
    from astropy.io import fits

    with guard(path, "FITS file"), path.open("rb") as fh:
        if fh.read(len(_FITS_MAGIC)) != _FITS_MAGIC:
            raise GranuleError(path, "not a FITS file (no SIMPLE card)")
    with guard(path, "FITS file"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's header fix-ups: values are checked below
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            hdu = next((h for h in hdul if h.is_image and h.header.get("NAXIS", 0) >= 2),
                       None)
            if hdu is None:
                raise GranuleError(path, "no image in the FITS file")
            header = hdul[0].header.copy()
            header.update({k: v for k, v in hdu.header.items()
                           if k not in header and k not in ("COMMENT", "HISTORY", "")})
            shape = tuple(int(hdu.header.get(f"NAXIS{i}", 0))
                          for i in range(int(hdu.header["NAXIS"]), 0, -1))
            squeezed = tuple(n for n in shape if n != 1)
            if len(squeezed) != 2:
                raise GranuleError(path, f"the image has {len(squeezed)} axes, expected 2")
            limits.check(path, "pixels", squeezed[0] * squeezed[1])
            limits.check(path, "memory_mb", squeezed[0] * squeezed[1] * 4 * 4 / 1e6)
            data = np.asarray(hdu.data, dtype=np.float32).reshape(squeezed)
    bad = ~np.isfinite(data)
    n_bad = int(bad.sum())
    if n_bad == data.size:
        raise GranuleError(path, "no valid data: the image holds no finite pixel")
    data = np.where(bad, 0.0, data).astype(np.float32)
    unit = _card(header, "BUNIT", path, number=False)
    if unit is not None and unit.upper() not in ("R", "RAYLEIGH", "RAYLEIGHS"):
        raise GranuleError(path, "BUNIT is not rayleigh (R)")
    start = _time(header, "DATE-OBS", path)
    if start is None:
        raise GranuleError(path, "missing keyword DATE-OBS")
    end = _time(header, "DATE-END", path)
    exptime = _card(header, "EXPTIME", path, number=True)
    if exptime is not None and not 0 <= exptime <= 86_400:
        raise GranuleError(path, "EXPTIME is not in [0, 86400] s")
    if end is None and exptime is not None:
        end = start + pd.Timedelta(seconds=exptime)
    if end is not None and end < start:
        raise GranuleError(path, "DATE-END is before DATE-OBS")
    if exptime is None and end is not None:
        exptime = (end - start).total_seconds()
    wmin = _card(header, "WAVEMIN", path, number=True)
    wmax = _card(header, "WAVEMAX", path, number=True)
    wave = None
    if (wmin is None) != (wmax is None):
        raise GranuleError(path, "WAVEMIN and WAVEMAX go together")
    if wmin is not None and wmax is not None:
        if not 0 < wmin <= wmax < 1e5:
            raise GranuleError(path, "WAVEMIN/WAVEMAX are not a wavelength range in nm")
        wave = (wmin, wmax)
    return AuroraImage(
        path, data, _geometry(header, path), start, end, exptime,
        _card(header, "BANDNAME", path, number=False), wave,
        _card(header, "TELESCOP", path, number=False),
        _card(header, "INSTRUME", path, number=False),
        bool(header.get("SIMULATE", False)) or "simulated" in path.name.lower(), "FITS",
        {"brightness": n_bad} if n_bad else {})


def _geometry(header: Any, path: Path) -> DiskGeometry | None:
    values = {k: _card(header, k, path, number=True) for k in GEOMETRY_KEYS}
    missing = [k for k, v in values.items() if v is None]
    if len(missing) == len(GEOMETRY_KEYS):
        return None
    if missing:
        raise GranuleError(path, f"incomplete geometry: missing {', '.join(missing)}")
    v = values
    try:
        return DiskGeometry(v["SC_LAT"], v["SC_LON"] % 360.0, v["SC_DIST"], v["PLATESCL"],
                            v["MARS_CX"], v["MARS_CY"], v["SS_LAT"], v["SS_LON"] % 360.0)
    except ValueError as exc:
        raise GranuleError(path, f"impossible geometry: {exc}") from None
