"""Reader of meteor records in the Armagh/Bangor network's CSV (one meteor per row).

The layout is the one of ``armagh_meteors_2011_2015.csv.gz`` (the Europlanet AOP
meteor case, converted unchanged from an R data frame of the cameras' UFOAnalyzer
``*A.XML`` records): ``path, fname, fname_bmp, cam, year, month, day, hour, minute,
second, sN, mag, ra, dec, ra_start, ra_end, dec_start, dec_end, io``. Per-frame
lists (``mag``, ``ra``, ``dec``) are ``;``-separated; RA/Dec in degrees. The file may
be plain or gzip-compressed (decided by its first bytes, not its name).

Rules (the same as every reader):

* the file itself: missing, empty, not UTF-8, corrupt gzip, not CSV, missing required
  columns, no record, more records or frames than the limits -> :class:`GranuleError`
  naming the file and the reason, never its content;
* one record that is not a meteor (lists of different lengths, a declared ``sN`` that
  disagrees with them, fewer than :data:`MIN_FRAMES` frames, a value that is not a
  finite number or out of range, an impossible date) is left out and counted in
  ``invalid`` (``StageOutput.invalid_values``), so every row says what its granule lost;
  ``sN`` <= 0 (written by the network when it did not count) is accepted when the
  three lists agree. A record repeated under another folder (same ``fname``, same
  values) is kept once and counted as ``duplicate record``.

Frame timing: the CSV gives the record's UTC to the second and no frame rate. The
tracks alternate between two offsets along the track (the two fields of interlaced
PAL video in swapped order), so consecutive entries are video fields, 1/50 s apart:
``FIELD_RATE_HZ`` (a model parameter of the ``meteors`` pipeline, ``frame_rate_hz``).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from epnml.ingest.limits import ResourceLimits
from epnml.ingest.readers.paths import os_reason, require_file
from epnml.ingest.stage import GranuleError

REQUIRED = ("fname", "cam", "year", "month", "day", "hour", "minute", "second", "sN",
            "mag", "ra", "dec")
#: video fields per second (interlaced PAL): the time between two list entries.
FIELD_RATE_HZ = 50.0
#: shortest light curve with a peak, a rise and a decay.
MIN_FRAMES = 3
#: longest record accepted (frames): 100 s at 50 fields/s; a real meteor lasts < 5 s.
MAX_FRAMES = 5000
#: magnitudes outside this range are not a video meteor (fireballs reach about -15).
MAG_RANGE = (-20.0, 20.0)
#: records one granule may hold, and the decompressed size read at most (a gzip bomb
#: stops here): 200 000 meteors of 30 frames are about 300 MB of text.
METEORS_LIMITS = ResourceLimits(max_samples=200_000, max_memory_mb=600)
_GZIP_MAGIC = b"\x1f\x8b"
_FIRST_YEAR, _LAST_YEAR = 1900, 2200


@dataclass(frozen=True)
class MeteorRecord:
    """One meteor as recorded by one camera."""

    #: the record's file name without extension (``M20130403_003556_ARMAGH_BGA``).
    meteor_id: str
    camera: str
    #: UTC of the first frame (the CSV gives whole seconds).
    start: pd.Timestamp
    mag: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    #: the network's ``io`` flag (0-3, meaning undocumented), None when absent.
    io_flag: int | None
    #: 1-based data row in the file (for messages).
    row: int


@dataclass
class MeteorTable:
    path: Path
    records: list[MeteorRecord]
    #: reason -> count of records left out (see the module docstring).
    invalid: dict[str, int] = field(default_factory=dict)
    #: the ``path`` column of the first record (SIMULATED files say so there).
    source_path: str = ""


def _open_text(path: Path, limit_bytes: int) -> Iterator[str]:
    """The file's lines as text (gzip or plain), refusing more than ``limit_bytes``."""
    with path.open("rb") as raw:
        head = raw.read(2)
    opener = gzip.open if head == _GZIP_MAGIC else open
    read = 0
    with opener(path, "rb") as fh:
        for line in fh:
            read += len(line)
            if read > limit_bytes:
                raise GranuleError(path, f"decompressed text larger than "
                                         f"{limit_bytes // 2**20} MB (limit)")
            yield line.decode("utf-8")


def _numbers(text: str) -> np.ndarray:
    """``+2.99;+3.03`` or `` 249.19; 249.95`` -> float array (ValueError if not numbers)."""
    parts = text.split(";")
    if len(parts) > MAX_FRAMES:
        raise OverflowError(len(parts))
    return np.array([float(p) for p in parts], dtype="float64")


def _meteor_id(fname: str) -> str:
    name = fname.strip()
    stem = name[:-4] if name.lower().endswith(".xml") else name
    clean = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:80]
    return clean


def _record(row: dict[str, str], index: int) -> tuple[MeteorRecord | None, str]:
    """The record of one CSV row, or (None, reason it was left out)."""
    meteor_id = _meteor_id(row.get("fname") or "")
    if not meteor_id:
        return None, "record without fname"
    camera = (row.get("cam") or "").strip()
    if not camera or len(camera) > 40:
        return None, "record without camera"
    try:
        mag, ra, dec = (_numbers(row[k] or "") for k in ("mag", "ra", "dec"))
    except OverflowError:
        return None, f"record with more than {MAX_FRAMES} frames"
    except ValueError:
        return None, "record with a non-numeric frame value"
    if not (len(mag) == len(ra) == len(dec)):
        return None, "record whose mag/ra/dec lists differ in length"
    try:
        declared = float(row["sN"])
    except ValueError:
        return None, "record with a non-numeric sN"
    if declared > 0 and declared != len(mag):
        return None, "record whose sN disagrees with its lists"
    if len(mag) < MIN_FRAMES:
        return None, f"record with fewer than {MIN_FRAMES} frames"
    if not (np.isfinite(mag).all() and np.isfinite(ra).all() and np.isfinite(dec).all()):
        return None, "record with a non-finite frame value"
    if mag.min() < MAG_RANGE[0] or mag.max() > MAG_RANGE[1]:
        return None, "record with a magnitude out of range"
    if ra.min() < -360.0 or ra.max() > 720.0 or np.abs(dec).max() > 90.0:
        return None, "record with RA/Dec out of range"
    try:
        parts = [float(row[k]) for k in ("year", "month", "day", "hour", "minute", "second")]
        if not all(math.isfinite(p) for p in parts) or not (
                _FIRST_YEAR <= parts[0] <= _LAST_YEAR) or not 0 <= parts[5] < 61:
            raise ValueError("date")
        y, mo, d, h, mi = (int(p) for p in parts[:5])
        if any(p != int(p) for p in parts[:5]):
            raise ValueError("date")
        start = pd.Timestamp(year=y, month=mo, day=d, hour=h, minute=mi) + pd.Timedelta(
            seconds=parts[5])
    except ValueError:
        return None, "record with an impossible date"
    io_text = (row.get("io") or "").strip()
    try:
        io_flag = int(float(io_text)) if io_text else None
    except ValueError:
        io_flag = None
    return MeteorRecord(meteor_id, camera, start, mag, ra % 360.0, dec, io_flag, index), ""


def read_meteors_csv(path: Path | str, limits: ResourceLimits = METEORS_LIMITS
                     ) -> MeteorTable:
    """The valid meteor records of a network CSV (see the module docstring for the rules)."""
    path = require_file(path)
    max_bytes = int((limits.max_memory_mb or 600) * 2**20)
    table = MeteorTable(path, [])
    seen: dict[str, tuple[bytes, ...]] = {}
    csv.field_size_limit(MAX_FRAMES * 40)
    try:
        reader = csv.reader(_open_text(path, max_bytes))
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise GranuleError(path, "empty file") from None
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise GranuleError(path, "not a meteor CSV of the Armagh network: missing "
                                     f"required column(s): {', '.join(missing)}")
        for index, values in enumerate(reader, start=1):
            if not values:
                continue
            if len(values) != len(header):
                raise GranuleError(path, f"not a readable CSV: data row {index} has "
                                         f"{len(values)} fields, the header {len(header)}")
            if limits.max_samples is not None and index > limits.max_samples:
                from epnml.ingest.limits import LimitExceeded

                raise LimitExceeded(path, "meteor records", index, limits.max_samples)
            row = dict(zip(header, values, strict=True))
            if not table.source_path:
                table.source_path = (row.get("path") or "").strip()[:200]
            record, reason = _record(row, index)
            if record is None:
                table.invalid[reason] = table.invalid.get(reason, 0) + 1
                continue
            key = (record.mag.tobytes(), record.ra.tobytes(), record.dec.tobytes())
            if record.meteor_id in seen:
                reason = ("duplicate record" if seen[record.meteor_id] == key
                          else "record with a repeated fname and other values")
                table.invalid[reason] = table.invalid.get(reason, 0) + 1
                continue
            seen[record.meteor_id] = key
            table.records.append(record)
    except GranuleError:
        raise
    except UnicodeDecodeError:
        raise GranuleError(path, "not a readable CSV: not UTF-8 text") from None
    except (EOFError, zlib.error, gzip.BadGzipFile):
        raise GranuleError(path, "corrupt or truncated gzip data") from None
    except csv.Error:
        raise GranuleError(path, "not a readable CSV (a field is malformed or too long)") \
            from None
    except OSError as exc:
        raise GranuleError(path, f"cannot read: {os_reason(exc)}") from None
    if not table.records:
        total = sum(table.invalid.values())
        if not total:
            raise GranuleError(path, "no meteor records (header only)")
        raise GranuleError(path, f"no valid meteor record ({total} left out: "
                                 f"{_reasons(table.invalid)})")
    return table


def _reasons(invalid: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(invalid.items()))


def write_meteors_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write records in the network's layout (used by the simulator and fixtures):
    ``frame`` has the columns of :data:`CSV_COLUMNS`; gzip when the name ends in .gz."""
    text = io.StringIO()
    frame[list(CSV_COLUMNS)].to_csv(text, index=False)
    data = text.getvalue().encode("utf-8")
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


CSV_COLUMNS = ("path", "fname", "fname_bmp", "cam", "year", "month", "day", "hour", "minute",
               "second", "sN", "mag", "ra", "dec", "ra_start", "ra_end", "dec_start",
               "dec_end", "io")
