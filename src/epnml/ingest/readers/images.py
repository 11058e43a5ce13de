"""Orbital image readers for the landforms pipelines: JPEG/PNG chips and planetary GeoTIFFs.

Chips (JPEG/PNG, e.g. the HiRISE RED crops of DeepLandforms) carry no georeference, so
``georef`` is None and the rows built from them get NULL geometry: it is never
invented. A GeoTIFF must carry ModelPixelScale + ModelTiepoint tags and a GeoKey
directory describing a geographic CRS or an equirectangular projection of a body
(what MOLA/CTX/HiRISE/LROC/MDIS mosaics use); pixels then map to planetocentric east
longitude / latitude. The body is recognised from the CRS axes (and its citation):
Mars by default (pits), Mars, the Moon or Mercury when the caller allows them
(craters); no pyproj needed. Pillow reads both (no GDAL). PDS3 image products
(.img/.lbl) go through :mod:`epnml.ingest.readers.pds3_images`. Bad input raises GranuleError
naming the file and the reason. YOLO label files are read here too.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epnml.ingest.limits import DEFAULT_LIMITS, LimitExceeded, ResourceLimits
from epnml.ingest.readers.paths import describe_exception, guard, os_reason
from epnml.ingest.stage import GranuleError

CHIP_SUFFIXES = (".jpg", ".jpeg", ".png")
GEOTIFF_SUFFIXES = (".tif", ".tiff")
#: PDS3 image products: an attached label (.img) or a detached one (.lbl) naming its data.
PDS3_SUFFIXES = (".img", ".lbl")
IMAGE_SUFFIXES = CHIP_SUFFIXES + GEOTIFF_SUFFIXES + PDS3_SUFFIXES
#: IAU Mars 2000 sphere radius (m): the default when a GeoTIFF gives none.
MARS_RADIUS_M = 3_396_190.0
#: a CRS whose semi-major axis is outside this range (m) is not Mars.
_MARS_AXIS_RANGE_M = (3_370_000.0, 3_400_000.0)
#: bodies a GeoTIFF may describe: name -> (IAU mean radius m, accepted semi-major axis
#: range m). The ranges do not overlap, so the axis alone names the body.
BODY_AXES: dict[str, tuple[float, tuple[float, float]]] = {
    "Mars": (MARS_RADIUS_M, _MARS_AXIS_RANGE_M),
    "Moon": (1_737_400.0, (1_735_000.0, 1_740_000.0)),
    "Mercury": (2_439_400.0, (2_438_000.0, 2_442_000.0)),
}
#: Pillow's own decompression-bomb threshold (pixels), a backstop only: the stage's
#: ResourceLimits are checked from the header before any pixel is decoded.
MAX_PIXELS = 40_000 * 40_000
#: float32 copies of an image a stage works on (reader output, mask, normalised input,
#: features) besides the decoded samples: the memory estimate's multiplier.
FLOAT_COPIES = 4
#: bytes per pixel of Pillow's decoded modes (others: 4).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "RGBA": 4,
               "CMYK": 4, "I": 4, "F": 4, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
_COLOUR_MODES = ("RGB", "RGBA", "CMYK", "YCbCr")
#: rounding slack (deg) when checking that a footprint stays on the body.
FOOTPRINT_TOLERANCE_DEG = 1e-6

# GeoTIFF tags and GeoKeys (GeoTIFF 1.1, OGC 19-008r4).
TAG_PIXEL_SCALE = 33550
TAG_TIEPOINT = 33922
TAG_TRANSFORMATION = 34264
TAG_GEOKEYS = 34735
TAG_GEO_DOUBLES = 34736
TAG_GEO_ASCII = 34737
KEY_MODEL_TYPE = 1024  # 1 projected, 2 geographic
KEY_RASTER_TYPE = 1025  # 1 PixelIsArea, 2 PixelIsPoint
KEY_GEOGRAPHIC_TYPE = 2048
KEY_GEOG_CITATION = 2049
KEY_SEMI_MAJOR = 2057
KEY_SEMI_MINOR = 2058
KEY_INV_FLATTENING = 2059
KEY_GT_CITATION = 1026
KEY_PROJ_CITATION = 3073
KEY_COORD_TRANS = 3075  # 17 = equirectangular
KEY_STD_PARALLEL1 = 3078
KEY_NAT_ORIGIN_LONG = 3080
KEY_FALSE_EASTING = 3082
KEY_FALSE_NORTHING = 3083
KEY_CENTER_LONG = 3088
CT_EQUIRECTANGULAR = 17
USER_DEFINED = 32767

_HIRISE_RE = re.compile(r"^(?P<obs>(?:ESP|PSP|AEB)_\d{6}_\d{4})")


@dataclass(frozen=True)
class GeoRef:
    """Affine pixel -> map transform plus the Mars CRS it is expressed in.

    Pixel coordinates are continuous: (0, 0) is the top-left corner of the first pixel,
    (col + 0.5, row + 0.5) its centre (the detector's box convention).
    """

    #: ``geographic`` (degrees) or ``equirectangular`` (metres).
    kind: str
    #: map coordinates of the top-left corner of pixel (0, 0).
    x0: float
    y0: float
    #: map units per pixel (x to the right, y downwards as a positive number).
    sx: float
    sy: float
    semi_major_m: float = MARS_RADIUS_M
    semi_minor_m: float = MARS_RADIUS_M
    lon0_deg: float = 0.0
    lat_ts_deg: float = 0.0
    false_easting: float = 0.0
    false_northing: float = 0.0
    crs_description: str = ""
    #: the body the CRS describes (``Mars``, ``Moon`` or ``Mercury``).
    target: str = "Mars"

    def pixel_to_lonlat(self, col: Any, row: Any) -> tuple[np.ndarray, np.ndarray]:
        """Planetocentric east longitude [0, 360) and latitude (degrees) of pixel points."""
        x = self.x0 + np.asarray(col, dtype=float) * self.sx
        y = self.y0 - np.asarray(row, dtype=float) * self.sy
        if self.kind == "geographic":
            lon, lat = x, y
        else:
            r = self.semi_major_m
            lat = np.degrees((y - self.false_northing) / r)
            lon = self.lon0_deg + np.degrees(
                (x - self.false_easting) / (r * math.cos(math.radians(self.lat_ts_deg))))
        lat = np.clip(lat, -90.0, 90.0)
        if self.semi_minor_m != self.semi_major_m:  # planetographic -> planetocentric
            ratio = (self.semi_minor_m / self.semi_major_m) ** 2
            lat = np.degrees(np.arctan(ratio * np.tan(np.radians(lat))))
        return np.mod(lon, 360.0), lat

    def footprint_deg(self, width: int, height: int) -> tuple[float, float, float, float]:
        """(west, east, south, north) of a ``width`` x ``height`` image in degrees, neither
        wrapped nor clipped (so a broken georeference shows), before any planetographic
        conversion. Plain floats: an overflow gives inf, never an exception."""
        lons = [self.x0, self.x0 + width * self.sx]
        lats = [self.y0 - height * self.sy, self.y0]
        if self.kind != "geographic":
            r = self.semi_major_m
            r_lon = r * math.cos(math.radians(self.lat_ts_deg))
            lats = [math.degrees((y - self.false_northing) / r) for y in lats]
            lons = [self.lon0_deg + math.degrees((x - self.false_easting) / r_lon)
                    for x in lons]
        return min(lons), max(lons), min(lats), max(lats)

    def pixel_size_km(self, row: float) -> tuple[float, float]:
        """Ground size (km) of one pixel along x and y at image row ``row``."""
        if self.kind == "geographic":
            _, lat = self.pixel_to_lonlat(0.0, row)
            r_km = self.semi_major_m / 1000.0
            ky = math.radians(self.sy) * r_km
            return math.radians(self.sx) * r_km * math.cos(math.radians(float(lat))), ky
        return self.sx / 1000.0, self.sy / 1000.0


@dataclass
class ImageData:
    """A grayscale image as float32 (NaN = no data) and where it is on Mars, if known."""

    path: Path
    pixels: np.ndarray
    georef: GeoRef | None
    #: HiRISE observation id when the file name starts with one (ESP_016213_1720).
    observation_id: str | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def georeferenced(self) -> bool:
        return self.georef is not None


def check_footprint(path: Path, georef: GeoRef, width: int, height: int) -> GeoRef:
    """``georef`` when the image it places lies on its body: corner latitudes within
    [-90, 90], a longitude extent of at most 360 deg, all finite. Otherwise GranuleError
    (a huge pixel scale or projection offset would give rows outside the body, which
    pixel_to_lonlat would silently clip to the poles)."""
    west, east, south, north = georef.footprint_deg(width, height)
    tol = FOOTPRINT_TOLERANCE_DEG
    where = "georeference puts the image outside the body"
    if not all(math.isfinite(v) for v in (west, east, south, north)):
        raise GranuleError(path, f"{where} (its corner coordinates are not finite)")
    if south < -90.0 - tol or north > 90.0 + tol:
        raise GranuleError(path, f"{where} (latitude {south:.6g} to {north:.6g} deg, "
                                 "beyond -90..90)")
    if east - west > 360.0 + tol:
        raise GranuleError(path, f"{where} (longitude extent {east - west:.6g} deg, "
                                 "more than 360)")
    return georef


def hirise_observation_id(name: str) -> str | None:
    """``ESP_016213_1720`` from ``ESP_016213_1720_RED_print....jpg``; None otherwise."""
    m = _HIRISE_RE.match(Path(name).name)
    return m.group("obs") if m else None


def image_memory_mb(pixels: int, source_bytes: int, colour: bool = False) -> float:
    """Estimated working memory (MB) of one image: the decoded samples (and their copy
    while converting), the float32 copies a stage makes, float32 RGB when averaging
    colour channels."""
    per_pixel = 2 * source_bytes + 4 * FLOAT_COPIES + (12 if colour else 0)
    return pixels * per_pixel / 2**20


def check_image_size(path: Path, width: int, height: int, source_bytes: int,
                     limits: ResourceLimits, colour: bool = False) -> None:
    """LimitExceeded when an image's header declares more pixels or memory than
    ``limits`` allow: called before any pixel is decoded."""
    limits.check(path, "pixels", width * height)
    limits.check(path, "memory_mb",
                 round(image_memory_mb(width * height, source_bytes, colour), 1))


def read_image(path: Path | str, bodies: tuple[str, ...] = ("Mars",),
               limits: ResourceLimits = DEFAULT_LIMITS) -> ImageData:
    """Read a JPEG/PNG chip (no georeference) or a GeoTIFF (with georeference) of one of
    ``bodies`` (default Mars only: the pits rows say Mars). The header's size is checked
    against ``limits`` before decoding (LimitExceeded); an image without one valid pixel
    is a GranuleError ("no valid data")."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise GranuleError(path, f"unsupported image type {suffix or '(none)'}; "
                                 f"expected one of {', '.join(IMAGE_SUFFIXES)}")
    if suffix in PDS3_SUFFIXES:
        return _read_pds3(path, bodies, limits)
    img = _open(path, limits)
    georef = None
    meta: dict[str, Any] = {**product_id_meta(path.name), "format": img.format,
                            "mode": img.mode}
    if suffix in GEOTIFF_SUFFIXES:
        georef = parse_geotiff_tags(path, _tiff_tags(img), bodies, (img.width, img.height))
    with guard(path, "image"):
        pixels = _to_gray(path, img)
        if suffix in GEOTIFF_SUFFIXES:
            pixels = _mask_nodata(img, pixels)
    if not np.isfinite(pixels).any():
        raise GranuleError(path, "no valid data: the image holds no valid pixel")
    return ImageData(path, pixels, georef, hirise_observation_id(path.name), meta)


def _pds3_header(path: Path, bodies: tuple[str, ...], with_georef: bool = True,
                 limits: ResourceLimits = DEFAULT_LIMITS) -> tuple[Any, GeoRef | None, str]:
    """Label, GeoRef (None without a map projection) and the Pillow-like mode of a PDS3
    image product; its LINES x LINE_SAMPLES checked against ``limits``."""
    from epnml.ingest.readers.pds3_images import pds3_georef, read_pds3_image_label

    info = read_pds3_image_label(path)
    check_image_size(path, info.samples, info.lines, info.dtype.itemsize, limits)
    with guard(path, "PDS3 map projection"):
        georef = (pds3_georef(info, bodies) if with_georef
                  and info.label.find("IMAGE_MAP_PROJECTION") else None)
    mode = "F" if info.floating else ("L" if info.dtype.itemsize == 1 else "I")
    return info, georef, mode


def _read_pds3(path: Path, bodies: tuple[str, ...], limits: ResourceLimits) -> ImageData:
    from epnml.ingest.readers.pds3_images import observation_meta, read_pds3_samples

    info, georef, mode = _pds3_header(path, bodies, limits=limits)
    observed = observation_meta(info)
    pixels = read_pds3_samples(info)
    if not np.isfinite(pixels).any():
        raise GranuleError(path, "no valid data: the image holds no valid pixel")
    name = info.data_path.name
    return ImageData(path, pixels, georef, hirise_observation_id(name),
                     {**product_id_meta(name), "format": "PDS3", "mode": mode, **observed})


#: CTX (``P01_001472_1747_XI_05S146W``) and HRSC (``h0905_0000``) product ids that start
#: a file name: the instrument is known, the time is not (the id holds no date).
_PRODUCT_IDS = (
    (re.compile(r"^[A-Z]\d{2}_\d{6}_\d{4}_X[IN]_\d{2}[NS]\d{3}W", re.I), "MRO", "CTX"),
    (re.compile(r"^h\d{4}_\d{4}", re.I), "MEX", "HRSC"),
)


def product_id_meta(name: str) -> dict[str, Any]:
    """``instrument_host_name``/``instrument_name`` when a file name starts with a CTX or
    HRSC product id (HiRISE ids: :func:`hirise_observation_id`), else nothing."""
    for pattern, host, instrument in _PRODUCT_IDS:
        if pattern.match(Path(name).name):
            return {"instrument_host_name": host, "instrument_name": instrument}
    return {}


def image_files(paths: Sequence[Path | str], what: str) -> list[Path]:
    """The image files of ``paths``; folders expand to the images inside them (sorted;
    a PDS3 data file with a detached label next to it is given by its label only).
    Any other file is a GranuleError naming it (``what`` says which pipeline refuses it)."""
    files: list[Path] = []
    for p in (Path(x) for x in paths):
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*")
                                if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES))
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            files.append(p)
        else:
            raise GranuleError(p, f"not an image for {what} (expected "
                                  f"{', '.join(IMAGE_SUFFIXES)})")
    labels = {(f.parent, f.stem.lower()) for f in files if f.suffix.lower() == ".lbl"}
    return [f for f in files
            if not (f.suffix.lower() == ".img" and (f.parent, f.stem.lower()) in labels)]


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, without decoding its pixels."""

    path: Path
    mode: str
    bands: int
    width: int
    height: int
    georef: GeoRef | None
    #: bytes per decoded sample (what the readers' memory estimate uses).
    sample_bytes: int = 4

    def check_size(self, limits: ResourceLimits) -> None:
        """LimitExceeded when the reader would refuse this image under ``limits`` (the
        same pixel and memory estimate as :func:`read_image`)."""
        check_image_size(self.path, self.width, self.height, self.sample_bytes, limits,
                         self.mode in _COLOUR_MODES)


def read_image_header(path: Path | str, bodies: tuple[str, ...] = ("Mars",),
                      with_georef: bool = True) -> ImageHeader:
    """Mode, size and (``with_georef``) georeference from the GeoTIFF tags or PDS3 label
    of an image; GranuleError naming the file when it is not a readable image (or its
    georeference leaves the body). No pixel is decoded, so no size limit applies here:
    callers check :meth:`ImageHeader.check_size` against their stage's limits; an image
    past Pillow's own bomb threshold is LimitExceeded."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise GranuleError(path, f"unsupported image type {path.suffix or '(none)'}; "
                                 f"expected one of {', '.join(IMAGE_SUFFIXES)}")
    if not path.is_file():
        raise GranuleError(path, "no such file")
    if path.suffix.lower() in PDS3_SUFFIXES:
        info, georef, mode = _pds3_header(path, bodies, with_georef,
                                          ResourceLimits())  # header only: no limit here
        return ImageHeader(path, mode, 1, info.samples, info.lines, georef,
                           info.dtype.itemsize)
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # header only
            with Image.open(path) as img:
                georef = (parse_geotiff_tags(path, _tiff_tags(img), bodies,
                                             (img.width, img.height))
                          if with_georef and path.suffix.lower() in GEOTIFF_SUFFIXES else None)
                return ImageHeader(path, img.mode, len(img.getbands()), img.width,
                                   img.height, georef, _MODE_BYTES.get(img.mode, 4))
    except UnidentifiedImageError:
        raise GranuleError(path, "not an image file (unrecognised content)") from None
    except GranuleError:
        raise
    except Image.DecompressionBombError as exc:
        raise _bomb(path, exc, MAX_PIXELS) from None
    except _PIL_ERRORS as exc:
        raise GranuleError(path, f"cannot read image header: {_pil_reason(exc)}") from None


def _bomb(path: Path, exc: BaseException, maximum: float) -> LimitExceeded:
    """Pillow's decompression-bomb refusal as a LimitExceeded on pixels."""
    m = re.search(r"\((\d+) pixels\)", str(exc))
    return LimitExceeded(path, "pixels", float(m.group(1)) if m else 2.0 * MAX_PIXELS,
                         float(maximum))


#: what Pillow raises on damaged files.
_PIL_ERRORS: tuple[type[BaseException], ...] = (
    OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError, OverflowError,
    ZeroDivisionError, EOFError, MemoryError)


def _pil_reason(exc: BaseException) -> str:
    """Pillow's complaint without content or server paths."""
    text = str(exc)
    if "truncated" in text.lower():
        return "truncated image data"
    if isinstance(exc, OSError) and exc.strerror:
        return os_reason(exc)
    if isinstance(exc, (OSError, SyntaxError)):
        return "damaged image data"
    return describe_exception(exc)


def _open(path: Path, limits: ResourceLimits = DEFAULT_LIMITS) -> Any:
    """Open an image, check its header size against ``limits`` (LimitExceeded) and
    only then decode it (truncation is reported here)."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise GranuleError(path, "no such file")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            if img.width < 8 or img.height < 8:
                raise GranuleError(path, f"image too small ({img.width}x{img.height} px)")
            check_image_size(path, img.width, img.height, _MODE_BYTES.get(img.mode, 4),
                             limits, img.mode in _COLOUR_MODES)
            img.load()  # decode now so truncation is reported here
    except UnidentifiedImageError:
        raise GranuleError(path, "not an image file (unrecognised content)") from None
    except GranuleError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb(path, exc, min(MAX_PIXELS, limits.max_pixels or MAX_PIXELS)) from None
    except _PIL_ERRORS as exc:
        raise GranuleError(path, f"cannot decode image: {_pil_reason(exc)}") from None
    return img


def _to_gray(path: Path, img: Any) -> np.ndarray:
    """Float32 grayscale; colour images are averaged over their channels (HiRISE RED
    print JPEGs are stored as three equal channels)."""
    mode = img.mode
    if mode in ("1", "L", "P", "LA", "PA"):
        arr = np.asarray(img.convert("L"), dtype=np.float32)
    elif mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
        arr = np.asarray(img.convert("RGB"), dtype=np.float32).mean(axis=2)
    elif mode in ("I", "F") or mode.startswith("I;16"):
        arr = np.asarray(img, dtype=np.float32)
    else:
        raise GranuleError(path, f"unsupported pixel mode {mode}")
    if arr.ndim != 2:
        raise GranuleError(path, f"expected one band, got array shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _mask_nodata(img: Any, pixels: np.ndarray) -> np.ndarray:
    """GDAL_NODATA (tag 42113) -> NaN."""
    nodata = _tiff_tags(img).get(42113)
    if nodata is None:
        return pixels
    try:
        value = float(str(nodata).strip("\x00 "))
    except ValueError:
        return pixels
    out = pixels.copy()
    out[pixels == value] = np.nan
    return out


def _tiff_tags(img: Any) -> dict[int, Any]:
    tags = getattr(img, "tag_v2", None)
    if tags is None:
        return {}
    with guard(getattr(img, "filename", "") or "image", "TIFF tags"):
        return dict(tags)


def _as_floats(value: Any) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)]
    return [float(v) for v in value]


class GeoKeyError(ValueError):
    """The GeoKey directory is inconsistent (a count or index past its data)."""


def parse_geokeys(tags: dict[int, Any]) -> dict[int, Any]:
    """GeoKey id -> value (short, double(s) or ASCII text) from the three GeoTIFF tags.

    Raises GeoKeyError when an entry points past GeoDoubleParams or GeoAsciiParams or
    the directory is shorter than its declared number of keys."""
    raw = tags.get(TAG_GEOKEYS)
    if raw is None:
        return {}
    directory = [int(v) for v in (raw if not isinstance(raw, int) else [raw])]
    doubles = _as_floats(tags.get(TAG_GEO_DOUBLES, ()))
    ascii_ = str(tags.get(TAG_GEO_ASCII, ""))
    keys: dict[int, Any] = {}
    n = directory[3] if len(directory) >= 4 else 0
    if len(directory) < 4 + 4 * n:
        raise GeoKeyError(f"the GeoKey directory declares {n} keys but holds "
                          f"{max(0, len(directory) - 4) // 4}")
    for i in range(n):
        key, loc, count, value = directory[4 + 4 * i: 8 + 4 * i]
        if loc == 0:
            keys[key] = value
        elif loc == TAG_GEO_DOUBLES:
            if count < 1 or value < 0 or value + count > len(doubles):
                raise GeoKeyError(f"GeoKey {key} points past GeoDoubleParams "
                                  f"({len(doubles)} values)")
            vals = doubles[value: value + count]
            keys[key] = vals[0] if count == 1 else vals
        elif loc == TAG_GEO_ASCII:
            if count < 0 or value < 0 or value + count > len(ascii_):
                raise GeoKeyError(f"GeoKey {key} points past GeoAsciiParams")
            keys[key] = ascii_[value: value + count].rstrip("|\x00")
    return keys


def _finite_number(keys: dict[int, Any], key: int, default: float) -> float:
    """A GeoKey that must be one finite number (GeoKeyError otherwise)."""
    value = keys.get(key, default)
    if isinstance(value, list) or not math.isfinite(float(value)):
        raise GeoKeyError(f"GeoKey {key} is not one finite number")
    return float(value)


def parse_geotiff_tags(path: Path, tags: dict[int, Any], bodies: tuple[str, ...],
                       size: tuple[int, int]) -> GeoRef:
    """GeoRef from ModelPixelScale + ModelTiepoint + GeoKeys of a ``size`` = (width,
    height) image; GranuleError when the CRS is not one of ``bodies``, the tags are
    inconsistent (NaN/zero/inf pixel scale, a GeoKey pointing past its data...) or the
    footprint leaves the body (:func:`check_footprint`)."""
    try:
        return check_footprint(path, _parse_geotiff_tags(path, tags, bodies), *size)
    except GeoKeyError as exc:
        raise GranuleError(path, f"invalid GeoTIFF GeoKeys: {exc}") from None
    except GranuleError:
        raise
    except (TypeError, ValueError, IndexError, KeyError, OverflowError,
            ZeroDivisionError) as exc:
        raise GranuleError(path, f"malformed GeoTIFF georeference tags "
                                 f"({describe_exception(exc)})") from None


def _parse_geotiff_tags(path: Path, tags: dict[int, Any], bodies: tuple[str, ...]) -> GeoRef:
    if TAG_TRANSFORMATION in tags and TAG_PIXEL_SCALE not in tags:
        m = _as_floats(tags[TAG_TRANSFORMATION])
        if len(m) < 8 or m[1] != 0.0 or m[4] != 0.0:
            raise GranuleError(path, "rotated GeoTIFF (ModelTransformation with shear) "
                                     "is not supported")
        scale, tie = [m[0], -m[5], 0.0], [0.0, 0.0, 0.0, m[3], m[7], 0.0]
    elif TAG_PIXEL_SCALE in tags and TAG_TIEPOINT in tags:
        scale, tie = _as_floats(tags[TAG_PIXEL_SCALE]), _as_floats(tags[TAG_TIEPOINT])
    else:
        raise GranuleError(path, "GeoTIFF without georeference (no ModelPixelScale and "
                                 "ModelTiepoint tags); give chips as JPEG/PNG instead")
    if len(scale) < 2 or len(tie) < 6:
        raise GranuleError(path, "invalid GeoTIFF georeference: ModelPixelScale needs 2 "
                                 "values and ModelTiepoint 6")
    if not all(math.isfinite(v) and v > 0 for v in scale[:2]):
        raise GranuleError(path, "invalid GeoTIFF pixel scale: it must be finite and > 0 "
                                 "(NaN, zero or infinite given)")
    if not all(math.isfinite(v) for v in tie[:6]):
        raise GranuleError(path, "invalid GeoTIFF tiepoint: not finite")
    keys = parse_geokeys(tags)
    if not keys:
        raise GranuleError(path, "GeoTIFF without GeoKey directory: the CRS is unknown")
    sx, sy = scale[0], scale[1]
    # PixelIsPoint: the tiepoint refers to the pixel centre, not its corner.
    shift = 0.5 if keys.get(KEY_RASTER_TYPE) == 2 else 0.0
    i, j, x, y = tie[0], tie[1], tie[3], tie[4]
    x0 = x - (i + shift) * sx
    y0 = y + (j + shift) * sy
    a, b, body = _axes(path, keys, bodies)
    text = " ".join(str(keys.get(k, "")) for k in
                    (KEY_GT_CITATION, KEY_GEOG_CITATION, KEY_PROJ_CITATION)).strip()
    model = keys.get(KEY_MODEL_TYPE)
    if model == 2:
        return GeoRef("geographic", x0, y0, sx, sy, a, b, crs_description=text, target=body)
    if model == 1:
        trans = keys.get(KEY_COORD_TRANS)
        if trans != CT_EQUIRECTANGULAR:
            raise GranuleError(path, f"projection (ProjCoordTransGeoKey={trans}) not supported; "
                                     "only geographic or equirectangular Mars CRS")
        lon0 = _finite_number(keys, KEY_CENTER_LONG,
                              _finite_number(keys, KEY_NAT_ORIGIN_LONG, 0.0))
        lat_ts = _finite_number(keys, KEY_STD_PARALLEL1, 0.0)
        if not -90.0 < lat_ts < 90.0:
            raise GeoKeyError("the standard parallel must be between -90 and 90")
        return GeoRef("equirectangular", x0, y0, sx, sy, a, b, lon0, lat_ts,
                      _finite_number(keys, KEY_FALSE_EASTING, 0.0),
                      _finite_number(keys, KEY_FALSE_NORTHING, 0.0), text, body)
    raise GranuleError(path, f"GeoTIFF model type {model} not supported (need 1 or 2)")


def _axes(path: Path, keys: dict[int, Any], bodies: tuple[str, ...] = ("Mars",)
          ) -> tuple[float, float, str]:
    """Semi-major and semi-minor axes (m) and the body; refuses Earth or other bodies."""
    gtype = keys.get(KEY_GEOGRAPHIC_TYPE)
    text = " ".join(str(keys.get(k, "")) for k in
                    (KEY_GT_CITATION, KEY_GEOG_CITATION, KEY_PROJ_CITATION)).lower()
    allowed = _allowed_text(bodies)
    if isinstance(gtype, int) and 4000 <= gtype < 5000:
        raise GranuleError(path, f"CRS is the terrestrial EPSG:{gtype}, not {allowed}")
    a = keys.get(KEY_SEMI_MAJOR)
    if a is None:
        named = [n for n in bodies if n.lower() in text]
        if not named:
            raise GranuleError(path, f"GeoTIFF CRS gives neither a datum of {allowed} nor axes")
        radius = BODY_AXES[named[0]][0]
        return radius, radius, named[0]
    a = _finite_number(keys, KEY_SEMI_MAJOR, math.nan)
    body = next((n for n in bodies if BODY_AXES[n][1][0] <= a <= BODY_AXES[n][1][1]), None)
    if body is None:
        raise GranuleError(path, f"semi-major axis {a:.0f} m is not {allowed}")
    b = _finite_number(keys, KEY_SEMI_MINOR, math.nan) if KEY_SEMI_MINOR in keys else None
    if b is None and keys.get(KEY_INV_FLATTENING):
        b = a * (1.0 - 1.0 / _finite_number(keys, KEY_INV_FLATTENING, math.nan))
    if b is not None and not 0.0 < b <= a:
        raise GeoKeyError("the semi-minor axis must be > 0 and at most the semi-major one")
    return a, b if b is not None else a, body


def _allowed_text(bodies: tuple[str, ...]) -> str:
    unknown = [n for n in bodies if n not in BODY_AXES]
    if unknown or not bodies:
        raise ValueError(f"unknown bodies {unknown}; known: {sorted(BODY_AXES)}")
    names = ["the Moon" if n == "Moon" else n for n in bodies]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def read_yolo_labels(path: Path | str, width: int, height: int,
                     n_classes: int = 5) -> pd.DataFrame:
    """YOLO ``class cx cy w h`` (normalised) -> pixel boxes ``class, x_min .. y_max``.

    ``class`` stays 0-based (index 0 = Type-1). Degenerate (zero-size) boxes are kept:
    the caller decides (training drops them).
    """
    path = Path(path)
    cols = ["class", "x_min", "y_min", "x_max", "y_max"]
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GranuleError(path, f"cannot read label file: {describe_exception(exc)}") \
            from None
    out = []
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise GranuleError(path, f"line {n}: expected 'class cx cy w h', got "
                                     f"{len(parts)} fields")
        try:
            k = int(parts[0])
            cx, cy, w, h = (float(p) for p in parts[1:])
        except ValueError:
            raise GranuleError(path, f"line {n}: not numbers") from None
        if not 0 <= k < n_classes:
            raise GranuleError(path, f"line {n}: class {k} outside 0..{n_classes - 1}")
        if not all(-0.01 <= v <= 1.01 for v in (cx, cy, w, h)):
            raise GranuleError(path, f"line {n}: coordinates not normalised to 0..1")
        out.append((k, (cx - w / 2) * width, (cy - h / 2) * height,
                    (cx + w / 2) * width, (cy + h / 2) * height))
    frame = pd.DataFrame(out, columns=cols)
    frame["class"] = frame["class"].astype(int)
    return frame
