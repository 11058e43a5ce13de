"""Write Mars images and DTMs as PDS3 image products that
:mod:`epnml.ingest.readers.pds3_images` reads.

Why here: the mounds simulator writes its DTMs in the format HiRISE and HRSC DTMs are
archived in — an attached (or detached) PDS3 label with an ``IMAGE`` object and an
equirectangular ``IMAGE_MAP_PROJECTION`` on the IAU 2000 Mars sphere, PC_REAL samples
and the HiRISE DTM missing constant ``16#FF7FFFFB#`` — without PDS tools. Every label
written here says SIMULATED in its NOTE and PRODUCER_ID.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

MARS_R_KM = 3396.19
RECORD_BYTES = 1024
#: HiRISE DTM null (the float32 whose bits are 0xFF7FFFFB).
MISSING_BITS = 0xFF7FFFFB


def missing_value() -> np.float32:
    return np.frombuffer(MISSING_BITS.to_bytes(4, "little"), dtype="<f4")[0]


def _label(lines: int, samples: int, lon0: float, lat0: float, pixel_m: float,
           sample_type: str, bits: int, pointer: str, label_records: int,
           name: str) -> str:
    # x of the corner relative to CENTER_LONGITUDE 0, within (-180, 180]
    lon = ((lon0 + 180.0) % 360.0) - 180.0
    x_corner = MARS_R_KM * 1000.0 * math.radians(lon)
    y_corner = MARS_R_KM * 1000.0 * math.radians(lat0)
    sample_offset = -x_corner / pixel_m - 0.5
    line_offset = y_corner / pixel_m - 0.5
    elevation = ("  UNIT = METER\n  MISSING_CONSTANT = 16#FF7FFFFB#\n"
                 if sample_type == "PC_REAL" else "")
    return (
        "PDS_VERSION_ID = PDS3\n"
        "RECORD_TYPE = FIXED_LENGTH\n"
        f"RECORD_BYTES = {RECORD_BYTES}\n"
        f"FILE_RECORDS = {label_records + math.ceil(lines * samples * bits // 8 / RECORD_BYTES)}\n"
        f"LABEL_RECORDS = {label_records}\n"
        f"^IMAGE = {pointer}\n"
        f'PRODUCT_ID = "{name}"\n'
        'PRODUCER_ID = "EPNML_SIMULATOR"\n'
        'NOTE = "SIMULATED scene written by epnml.ingest.simulate (not spacecraft data)"\n'
        "TARGET_NAME = MARS\n"
        "OBJECT = IMAGE_MAP_PROJECTION\n"
        '  ^DATA_SET_MAP_PROJECTION = "DSMAP.CAT"\n'
        '  MAP_PROJECTION_TYPE = "EQUIRECTANGULAR"\n'
        "  PROJECTION_LATITUDE_TYPE = PLANETOCENTRIC\n"
        f"  A_AXIS_RADIUS = {MARS_R_KM} <KM>\n"
        f"  B_AXIS_RADIUS = {MARS_R_KM} <KM>\n"
        f"  C_AXIS_RADIUS = {MARS_R_KM} <KM>\n"
        '  COORDINATE_SYSTEM_NAME = "PLANETOCENTRIC"\n'
        '  POSITIVE_LONGITUDE_DIRECTION = "EAST"\n'
        "  CENTER_LATITUDE = 0.0 <DEG>\n"
        "  CENTER_LONGITUDE = 0.0 <DEG>\n"
        f"  LINE_PROJECTION_OFFSET = {line_offset:.6f} <PIXEL>\n"
        f"  SAMPLE_PROJECTION_OFFSET = {sample_offset:.6f} <PIXEL>\n"
        f"  MAP_SCALE = {pixel_m} <METERS/PIXEL>\n"
        "END_OBJECT = IMAGE_MAP_PROJECTION\n"
        "OBJECT = IMAGE\n"
        f"  LINES = {lines}\n"
        f"  LINE_SAMPLES = {samples}\n"
        "  BANDS = 1\n"
        f"  SAMPLE_TYPE = {sample_type}\n"
        f"  SAMPLE_BITS = {bits}\n"
        + elevation
        + "END_OBJECT = IMAGE\n"
        "END\n"
    )


def write_mars_pds3_image(path: Path, pixels: np.ndarray, lon0: float, lat0: float,
                          pixel_m: float, detached: bool = False) -> Path:
    """Write ``pixels`` (float -> PC_REAL elevations in m, NaN = missing; uint8 ->
    UNSIGNED_INTEGER) with its top-left corner at (``lon0`` east, ``lat0``) and square
    ``pixel_m`` pixels. ``detached``: ``path`` is the .LBL and the samples go to the .IMG
    of the same stem; otherwise one .IMG with an attached label. Returns ``path``."""
    if pixel_m <= 0:
        raise ValueError(f"pixel_m must be > 0, got {pixel_m}")
    arr = np.asarray(pixels)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        data, sample_type, bits = arr.tobytes(), "MSB_UNSIGNED_INTEGER", 8
    else:
        f = np.ascontiguousarray(arr, dtype="<f4").copy()
        f[~np.isfinite(f)] = missing_value()
        data, sample_type, bits = f.tobytes(), "PC_REAL", 32
    lines, samples = arr.shape
    name = path.stem.upper()
    if detached:
        data_path = path.with_suffix(".IMG")
        text = _label(lines, samples, lon0, lat0, pixel_m, sample_type, bits,
                      f'"{data_path.name}"', 0, name)
        path.write_text(text)
        data_path.write_bytes(data)
        return path
    records = 1
    while True:  # the label's own size decides LABEL_RECORDS (and the ^IMAGE record)
        text = _label(lines, samples, lon0, lat0, pixel_m, sample_type, bits,
                      str(records + 1), records, name)
        if len(text) <= records * RECORD_BYTES:
            break
        records += 1
    path.write_bytes(text.encode("ascii").ljust(records * RECORD_BYTES, b" ") + data)
    return path
