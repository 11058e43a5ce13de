"""PDS3 image products (an IMAGE object with an IMAGE_MAP_PROJECTION): DTMs and orthoimages.

The format of HiRISE and HRSC DTMs and of many archived mosaics: raw samples described
by the label (``LINES``, ``LINE_SAMPLES``, ``SAMPLE_TYPE``, ``SAMPLE_BITS``, line prefix
and suffix bytes, ``SCALING_FACTOR``/``OFFSET``, ``MISSING_CONSTANT`` including the
``16#FF7FFFFB#`` hexadecimal form of HiRISE DTMs) and a map projection. The label is
attached (``.IMG`` starting with ``PDS_VERSION_ID``) or detached (a ``.LBL`` whose
``^IMAGE`` names the data file). Only equirectangular / simple cylindrical projections
with east-positive longitudes are read (what the pipelines' outlines assume); other
projections fail with the reason, never with invented coordinates. Pixel (col, row) maps
to x = (col - SAMPLE_PROJECTION_OFFSET - 0.5) * MAP_SCALE and
y = (LINE_PROJECTION_OFFSET - row + 0.5) * MAP_SCALE (the PDS3 convention with 1-based
sample and line centres; (0, 0) is the top-left corner of the first pixel here).
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from epnml.ingest.readers.messenger import PdsObject, _LabelError, parse_label
from epnml.ingest.readers.paths import guard, resolve_pointer, shown
from epnml.ingest.stage import GranuleError

PDS3_IMAGE_SUFFIXES = (".img", ".lbl")
#: what a label's TARGET_NAME must say for each body the readers know.
_TARGETS = {"MARS": "Mars", "MOON": "Moon", "MERCURY": "Mercury"}
_PROJECTIONS = ("EQUIRECTANGULAR", "SIMPLE CYLINDRICAL", "SIMPLE_CYLINDRICAL")
_LABEL_END = re.compile(rb"^\s*END\s*$", re.M)


@dataclass(frozen=True)
class Pds3Image:
    """What the label says about the image (before reading any sample)."""

    label_path: Path
    data_path: Path
    offset: int
    lines: int
    samples: int
    dtype: np.dtype[Any]
    prefix: int
    suffix: int
    scale: float
    add: float
    missing: tuple[float, ...]
    label: PdsObject
    #: the sample type is floating point (a DTM in metres when the label says so).
    floating: bool


def _value(obj: PdsObject, key: str, path: Path, default: Any = None) -> Any:
    val = obj.get(key, default)
    if isinstance(val, tuple):  # (value, unit)
        val = val[0]
    if val is None:
        raise GranuleError(path, f"PDS3 label has no {key}")
    return val


def _number(obj: PdsObject, key: str, path: Path, default: Any = None) -> float:
    val = obj.get(key, default)
    unit = ""
    if isinstance(val, tuple):
        val, unit = val
    if val is None:
        raise GranuleError(path, f"PDS3 label has no {key}")
    try:
        number = float(val)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number):
        raise GranuleError(path, f"PDS3 keyword {key} is not a finite number")
    if unit.upper().startswith("KM"):  # KM or KM/PIXEL: the readers work in metres
        number *= 1000.0
    return number


def _missing(raw: Any, dtype: np.dtype[Any]) -> float:
    """MISSING_CONSTANT as a number; ``16#FF7FFFFB#`` is the bit pattern of the sample."""
    text = str(raw[0] if isinstance(raw, tuple) else raw).strip()
    m = re.fullmatch(r"16#([0-9A-Fa-f]{1,16})#", text)
    if m is None:
        return float(text)
    bits = int(m.group(1), 16)
    if dtype.kind == "f":
        fmt = {4: ">I", 8: ">Q"}[dtype.itemsize]
        return float(np.frombuffer(struct.pack(fmt, bits), dtype=dtype.newbyteorder(">"))[0])
    return float(bits)


def _dtype(sample_type: str, bits: int, path: Path) -> np.dtype[Any]:
    t = sample_type.upper().replace(" ", "_")
    if bits not in (8, 16, 32, 64):
        raise GranuleError(path, f"SAMPLE_BITS = {bits} not supported (8, 16, 32, 64)")
    size = bits // 8
    little = t.startswith(("PC_", "LSB_", "VAX_")) and t != "VAX_REAL"
    order = "<" if little else ">"
    if t.endswith("REAL"):
        if t.startswith("VAX"):
            raise GranuleError(path, "VAX_REAL samples are not supported")
        if size not in (4, 8):
            raise GranuleError(path, f"{bits}-bit REAL samples are not supported")
        return np.dtype(f"{order}f{size}")
    if "INTEGER" in t:
        kind = "u" if "UNSIGNED" in t else "i"
        return np.dtype(f"{order}{kind}{size}") if size > 1 else np.dtype(f"{kind}1")
    raise GranuleError(path, f"SAMPLE_TYPE {shown(sample_type, '(this one)')} not supported")


def _read_label(path: Path) -> tuple[PdsObject, bool]:
    """The parsed label and whether it is attached to the data (``.IMG``)."""
    if not path.is_file():
        raise GranuleError(path, "no such file")
    with path.open("rb") as f:
        head = f.read(1 << 20)
    if not head:
        raise GranuleError(path, "empty file")
    if not head.lstrip().upper().startswith(b"PDS_VERSION_ID"):
        raise GranuleError(path, "not a PDS3 product (no PDS_VERSION_ID at the start)")
    end = _LABEL_END.search(head)
    if end is None:
        raise GranuleError(path, "PDS3 label has no END line in its first MiB")
    try:
        text = head[:end.end()].decode("ascii")
        return parse_label(text), path.suffix.lower() != ".lbl"
    except UnicodeDecodeError:
        raise GranuleError(path, "PDS3 label is not ASCII") from None
    except _LabelError as exc:
        raise GranuleError(path, f"malformed PDS3 label: {exc}") from None
    except RecursionError:
        raise GranuleError(path, "malformed PDS3 label: nested too deeply") from None


def _image_location(label: PdsObject, path: Path, attached: bool) -> tuple[Path, int]:
    """(data file, byte offset) from the ``^IMAGE`` pointer."""
    pointer = label.get("^IMAGE")
    if pointer is None:
        raise GranuleError(path, "PDS3 label has no ^IMAGE pointer (not an image product)")
    record_bytes = label.get("RECORD_BYTES")
    file_name: object = None
    start: Any = 1
    if isinstance(pointer, list):
        if not pointer:
            raise GranuleError(path, "empty ^IMAGE pointer")
        file_name = pointer[0] if isinstance(pointer[0], str) else ""
        start = pointer[1] if len(pointer) > 1 else 1
    elif isinstance(pointer, str):
        file_name = pointer
    else:
        start = pointer
    try:
        if isinstance(start, tuple):  # (n, "BYTES"): a byte position, 1-based
            offset = int(start[0]) - 1
        else:
            if not isinstance(record_bytes, int) or record_bytes <= 0:
                raise GranuleError(path, "^IMAGE counts records but RECORD_BYTES is missing")
            offset = (int(start) - 1) * record_bytes
    except (TypeError, ValueError, OverflowError):
        raise GranuleError(path, "^IMAGE offset is not an integer") from None
    if offset < 0:
        raise GranuleError(path, "^IMAGE offset is before the start of the file")
    if file_name is not None:
        # a plain name in the label's folder only (never a path): one refusal otherwise
        return resolve_pointer(path, file_name, "^IMAGE"), offset
    if not attached:
        raise GranuleError(path, "detached PDS3 label whose ^IMAGE names no data file")
    return path, offset


def read_pds3_image_label(path: Path | str) -> Pds3Image:
    """Parse and check the label of a PDS3 image product; nothing of the samples is read."""
    path = Path(path)
    with guard(path, "PDS3 image label"):
        return _read_pds3_image_label(path)


def _read_pds3_image_label(path: Path) -> Pds3Image:
    label, attached = _read_label(path)
    images = label.find("IMAGE")
    if not images:
        raise GranuleError(path, "PDS3 label has no IMAGE object")
    image = images[0]
    bands = int(_number(image, "BANDS", path, 1))
    if bands != 1:
        raise GranuleError(path, f"{bands}-band PDS3 images are not supported (one band)")
    lines, samples = int(_number(image, "LINES", path)), int(_number(image, "LINE_SAMPLES", path))
    if lines < 8 or samples < 8:
        raise GranuleError(path, f"image too small ({samples}x{lines} px)")
    dtype = _dtype(str(_value(image, "SAMPLE_TYPE", path)),
                   int(_number(image, "SAMPLE_BITS", path)), path)
    data_path, offset = _image_location(label, path, attached)
    try:
        missing = tuple(_missing(image.get(k), dtype) for k in
                        ("MISSING_CONSTANT", "INVALID_CONSTANT", "CORE_NULL")
                        if image.get(k) is not None)
    except (TypeError, ValueError, OverflowError, struct.error):
        raise GranuleError(path, "MISSING_CONSTANT or INVALID_CONSTANT is not a number") \
            from None
    prefix = int(_number(image, "LINE_PREFIX_BYTES", path, 0))
    suffix = int(_number(image, "LINE_SUFFIX_BYTES", path, 0))
    if prefix < 0 or suffix < 0:
        raise GranuleError(path, "negative LINE_PREFIX_BYTES or LINE_SUFFIX_BYTES")
    return Pds3Image(
        path, data_path, offset, lines, samples, dtype, prefix, suffix,
        _number(image, "SCALING_FACTOR", path, 1.0), _number(image, "OFFSET", path, 0.0),
        missing, label, dtype.kind == "f")


#: label values that mean "not given" (PDS3 N/A, UNK, NULL constants).
_NOT_GIVEN = {"", "N/A", "UNK", "NULL", "UNKNOWN"}
#: short names of the hosts and instruments a label may spell out (as other rows say them).
_HOSTS = {"MARS RECONNAISSANCE ORBITER": "MRO", "MRO": "MRO", "MARS EXPRESS": "MEX",
          "MEX": "MEX", "LUNAR RECONNAISSANCE ORBITER": "LRO", "LRO": "LRO",
          "MESSENGER": "MESSENGER"}
_INSTRUMENTS = {"HIRISE": "HiRISE", "CTX": "CTX", "HRSC": "HRSC", "LROC": "LROC",
                "MDIS": "MDIS", "HIGH RESOLUTION IMAGING SCIENCE EXPERIMENT": "HiRISE",
                "CONTEXT CAMERA": "CTX", "HIGH RESOLUTION STEREO CAMERA": "HRSC"}


def observation_meta(info: Pds3Image) -> dict[str, Any]:
    """What the label says about the observation: ``start_time``/``stop_time``
    (pd.Timestamp, UTC) from START_TIME/STOP_TIME, ``instrument_host_name`` from
    INSTRUMENT_HOST_NAME/SPACECRAFT_NAME/INSTRUMENT_HOST_ID and ``instrument_name`` from
    INSTRUMENT_ID/INSTRUMENT_NAME (known missions by their short names). Keys the label
    does not give (or gives as N/A, UNK) are left out; a time that is not a date is a
    GranuleError."""
    import pandas as pd

    out: dict[str, Any] = {}

    def text(*keys: str) -> str | None:
        for key in keys:
            val = info.label.get(key)
            if isinstance(val, tuple):
                val = val[0]
            if val is not None and str(val).strip().strip('"').upper() not in _NOT_GIVEN:
                return str(val).strip().strip('"').strip()
        return None

    for key, name in (("START_TIME", "start_time"), ("STOP_TIME", "stop_time")):
        raw = text(key)
        if raw is None:
            continue
        try:
            t = pd.Timestamp(raw.rstrip("Z"))
        except (ValueError, TypeError, OverflowError):
            raise GranuleError(info.label_path, f"{key} is not a date") from None
        if t.tzinfo is not None:
            t = t.tz_convert("UTC").tz_localize(None)
        out[name] = t
    host = text("INSTRUMENT_HOST_NAME", "SPACECRAFT_NAME", "INSTRUMENT_HOST_ID")
    if host is not None:
        out["instrument_host_name"] = _HOSTS.get(host.upper(), host)
    instrument = text("INSTRUMENT_ID", "INSTRUMENT_NAME")
    if instrument is not None:
        out["instrument_name"] = _INSTRUMENTS.get(instrument.upper(), instrument)
    if "start_time" in out and "stop_time" in out and out["stop_time"] < out["start_time"]:
        raise GranuleError(info.label_path, "STOP_TIME is before START_TIME")
    return out


def read_pds3_samples(info: Pds3Image) -> np.ndarray:
    """The samples as float32 (NaN where missing), scaled by SCALING_FACTOR and OFFSET.
    Check the size against the stage's limits before (images.check_image_size)."""
    with guard(info.data_path, "PDS3 image data"):
        return _read_pds3_samples(info)


def _read_pds3_samples(info: Pds3Image) -> np.ndarray:
    row_bytes = info.prefix + info.samples * info.dtype.itemsize + info.suffix
    need = info.offset + info.lines * row_bytes
    size = info.data_path.stat().st_size
    if size < need:
        raise GranuleError(info.data_path, f"truncated PDS3 image: {size} bytes, the label "
                                           f"describes {need}")
    raw = np.fromfile(info.data_path, dtype=np.uint8, count=info.lines * row_bytes,
                      offset=info.offset).reshape(info.lines, row_bytes)
    body = raw[:, info.prefix:info.prefix + info.samples * info.dtype.itemsize]
    values = np.ascontiguousarray(body).view(info.dtype).reshape(info.lines, info.samples)
    out = values.astype(np.float32)
    bad = ~np.isfinite(out)
    for m in info.missing:
        bad |= values == np.asarray(m).astype(info.dtype)
    if info.floating:  # ISIS special pixels: the most negative float32 values
        bad |= out <= np.float32(-3.40282e38)
    out = out * np.float32(info.scale) + np.float32(info.add)
    out[bad] = np.nan
    return out


def pds3_georef(info: Pds3Image, bodies: tuple[str, ...]) -> Any:
    """The GeoRef of an equirectangular PDS3 image of one of ``bodies``; GranuleError when
    its footprint leaves the body (images.check_footprint)."""
    from epnml.ingest.readers.images import GeoRef, check_footprint

    path, label = info.label_path, info.label
    target = str(label.get("TARGET_NAME", "")).strip().upper()
    body = _TARGETS.get(target)
    if body is None or body not in bodies:
        raise GranuleError(path, f"TARGET_NAME {shown(target, '(none or unreadable)')} is not "
                                 f"one of {', '.join(bodies)}")
    projections = label.find("IMAGE_MAP_PROJECTION")
    if not projections:
        raise GranuleError(path, "PDS3 image without IMAGE_MAP_PROJECTION: no georeference")
    proj = projections[0]
    kind = str(_value(proj, "MAP_PROJECTION_TYPE", path)).upper()
    if kind not in _PROJECTIONS:
        raise GranuleError(path, f"map projection {shown(kind, '(this one)')} not supported "
                                 "(equirectangular or simple cylindrical only)")
    direction = str(proj.get("POSITIVE_LONGITUDE_DIRECTION", "EAST")).upper()
    if direction != "EAST":
        raise GranuleError(path, f"POSITIVE_LONGITUDE_DIRECTION = {shown(direction, '(this)')} "
                                 "not supported (east-positive longitudes only)")
    a = _number(proj, "A_AXIS_RADIUS", path)
    c = _number(proj, "C_AXIS_RADIUS", path, a)
    if a <= 0 or c <= 0:
        raise GranuleError(path, "A_AXIS_RADIUS and C_AXIS_RADIUS must be > 0")
    scale = _number(proj, "MAP_SCALE", path)
    if scale <= 0:
        raise GranuleError(path, f"MAP_SCALE = {scale:g} must be > 0")
    system = str(proj.get("COORDINATE_SYSTEM_NAME", "PLANETOCENTRIC")).upper()
    line0 = _number(proj, "LINE_PROJECTION_OFFSET", path)
    sample0 = _number(proj, "SAMPLE_PROJECTION_OFFSET", path)
    lat_ts = _number(proj, "CENTER_LATITUDE", path, 0.0) if kind == "EQUIRECTANGULAR" else 0.0
    if not -90.0 < lat_ts < 90.0:
        raise GranuleError(path, "CENTER_LATITUDE of an equirectangular projection must be "
                                 "between -90 and 90 (exclusive)")
    # GeoRef converts planetographic latitudes when the axes differ; planetocentric
    # labels must not be converted, so they get a sphere.
    semi_minor = c if system == "PLANETOGRAPHIC" else a
    georef = GeoRef("equirectangular", -(sample0 + 0.5) * scale, (line0 + 0.5) * scale,
                    scale, scale, a, semi_minor, _number(proj, "CENTER_LONGITUDE", path, 0.0),
                    lat_ts, 0.0, 0.0, f"PDS3 {kind} {body} ({system.lower()})", body)
    return check_footprint(path, georef, info.samples, info.lines)
