"""NASA OMNI2 hourly files (``omni2_YYYY.dat``) -> the standard solar-wind frame.

The format is fixed by the OMNI2 documentation (https://spdf.gsfc.nasa.gov/pub/data/omni/
low_res_omni/omni2.text): 55 words per line, FORTRAN format
``(2I4,I3,I5,2I3,2I4,14F6.1,F9.0,F6.1,F6.0,2F6.1,F6.3,F6.2,F9.0,F6.1,F6.0,2F6.1,F6.3,
2F7.2,F6.1,I3,I4,I6,I5,F10.2,5F9.2,I3,I4,F6.1,F6.1,2I6,F5.1)``, 327 characters; no
``.fmt`` is needed.  Fill values are all nines of each field's width (999.9, 9999.,
9999999., 99.99 ...), i.e. missing data, not counted.  One file or several (yearly
files given together, or years concatenated into one file) form one granule; times
must increase across them.

Words used (0-based): 0 year, 1 day of year, 2 hour, 8 mean |B| [nT], 12 Bx (GSE =
GSM), 15 By GSM, 16 Bz GSM [nT], 22 proton temperature [K], 23 proton density
[cm^-3], 24 flow speed [km/s].  OMNI's own beta (word 36) and flow pressure (word 28)
include alphas and electrons; like the OMNIWeb reader we recompute them from n, T, V,
B so every source gives the model the same quantities.  Each hour's value sits at the
hour's centre (hh:30) of the 10-min grid (see :func:`~.solarwind.read_omniweb`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from epnml.ingest.limits import ResourceLimits
from epnml.ingest.readers.solarwind import (
    SOLARWIND_LIMITS,
    _FmtItem,
    _limit,
    _require_file,
    omni_values_to_frame,
)
from epnml.ingest.stage import GranuleError

#: the OMNI2 record format, expanded to one (kind, width, decimals) per word.
OMNI2_FORMAT = ("2I4,I3,I5,2I3,2I4,14F6.1,F9.0,F6.1,F6.0,2F6.1,F6.3,F6.2,F9.0,F6.1,F6.0,"
                "2F6.1,F6.3,2F7.2,F6.1,I3,I4,I6,I5,F10.2,5F9.2,I3,I4,F6.1,F6.1,2I6,F5.1")
N_WORDS = 55
#: word number (0-based) of each quantity the frame needs.
OMNI2_ROLES: dict[str, int] = {
    "year": 0, "doy": 1, "hour": 2, "bt": 8, "bx": 12, "by": 15, "bz": 16,
    "tp": 22, "np": 23, "vt": 24,
}


def _expand(fmt: str) -> list[_FmtItem]:
    items: list[_FmtItem] = []
    for part in fmt.split(","):
        m = re.fullmatch(r"(\d*)([IF])(\d+)(?:\.(\d+))?", part)
        if m is None:  # the constant above is wrong, not user input
            raise ValueError(f"bad OMNI2 format item {part!r}")
        for _ in range(int(m.group(1) or 1)):
            items.append(_FmtItem(len(items) + 1, f"word {len(items)}", m.group(2),
                                  int(m.group(3)), int(m.group(4) or 0)))
    return items


OMNI2_ITEMS: list[_FmtItem] = _expand(OMNI2_FORMAT)
LINE_WIDTH = sum(it.width for it in OMNI2_ITEMS)  # 327
_EDGES = np.cumsum([0] + [it.width for it in OMNI2_ITEMS])
_YEAR_RE = re.compile(r"(?<!\d)(19[5-9]\d|20\d{2})(?!\d)")


def looks_like_omni2(head: str) -> bool:
    """True when the first non-blank line is an OMNI2 record (55 words, 327 columns or
    55 whitespace-separated numbers starting with a year, day and hour)."""
    lines = [ln for ln in head.splitlines() if ln.strip()]
    if not lines:
        return False
    first = lines[0].rstrip("\r")
    tokens = first.split()
    if len(tokens) != N_WORDS and len(first.rstrip()) != LINE_WIDTH:
        return False
    try:
        year, doy, hour = (int(first[_EDGES[k]:_EDGES[k + 1]]) for k in range(3))
    except ValueError:
        return False
    return 1950 <= year <= 2100 and 1 <= doy <= 366 and 0 <= hour <= 23


def _numbers(path: Path, lines: list[str], first_line: int) -> np.ndarray:
    """(n, 55) numbers: fixed-width fields (vectorised), whitespace tokens for lines that
    are not 327 characters wide but hold 55 numbers.  "nan" text becomes +inf so it is
    counted as not physical; blank fields are missing (NaN)."""
    out = np.empty((len(lines), N_WORDS))
    fixed = np.array([len(ln) == LINE_WIDTH for ln in lines])
    for i in np.flatnonzero(~fixed):
        tokens = lines[i].split()
        if len(tokens) != N_WORDS or len(lines[i]) > LINE_WIDTH:
            raise GranuleError(path, f"line {first_line + i + 1} has {len(lines[i])} characters "
                               f"and {len(tokens)} words: not an OMNI2 record ({LINE_WIDTH} "
                               f"characters, {N_WORDS} words)")
        try:
            out[i] = [float(t) for t in tokens]
        except ValueError as exc:
            raise GranuleError(path, f"line {first_line + i + 1}: a word is not a number") from exc
    rows = np.flatnonzero(fixed)
    if rows.size:
        buf = np.frombuffer("".join(lines[i] for i in rows).encode("ascii"), dtype="S1")
        chars = buf.reshape(len(rows), LINE_WIDTH)
        for k in range(N_WORDS):
            field = np.ascontiguousarray(chars[:, _EDGES[k]:_EDGES[k + 1]]).view(
                f"S{_EDGES[k + 1] - _EDGES[k]}").ravel()
            blank = np.char.strip(field) == b""
            try:
                values = np.where(blank, b"nan", field).astype("float64")
            except ValueError:
                bad = next(j for j, f in enumerate(field) if not _is_number(f))
                raise GranuleError(path, f"line {first_line + int(rows[bad]) + 1}, word {k + 1}: "
                                   "not a number") from None
            values[~blank & np.isnan(values)] = np.inf  # "nan" text: not physical
            out[rows, k] = values
    return out


def _is_number(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return not field.strip()
    return True


def read_omni2_values(path: Path, limits: ResourceLimits = SOLARWIND_LIMITS) -> np.ndarray:
    """The (n, 55) numbers of one OMNI2 file with fill values as NaN."""
    path = _require_file(Path(path))
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as exc:
        raise GranuleError(path, "not an OMNI2 file: not ASCII text") from exc
    except OSError as exc:  # the OS message would carry the server path
        raise GranuleError(path, f"unreadable file ({type(exc).__name__})") from exc
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise GranuleError(path, "no data lines")
    _limit(limits.max_samples, path, "samples in the file", len(lines))
    if not looks_like_omni2(lines[0]):
        raise GranuleError(path, f"not an OMNI2 hourly file (first line is not a {N_WORDS}-word "
                           "record starting with year, day of year, hour)")
    raw = _numbers(path, lines, 0)
    for k, it in enumerate(OMNI2_ITEMS):
        column = raw[:, k]
        fill = np.zeros(column.shape, dtype=bool)
        for value in it.fills:
            fill |= np.isclose(np.abs(column), value, rtol=0, atol=10.0 ** -it.decimals / 2)
        raw[fill, k] = np.nan
    return raw


def read_omni2(paths: Path | Sequence[Path],
               limits: ResourceLimits = SOLARWIND_LIMITS) -> pd.DataFrame:
    """Read one or several OMNI2 hourly files (one granule) into the standard frame.

    Several files are ordered by their first record's time; the times must then
    increase throughout (overlapping or repeated years are refused, not merged).
    ``frame.attrs["invalid_values"]`` counts the non-physical values made missing.
    """
    files = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not files:
        raise ValueError("read_omni2 needs at least one path")
    parts = [read_omni2_values(p, limits) for p in files]
    total = sum(len(p) for p in parts)
    _limit(limits.max_samples, files[0], "samples in the files", total)
    order = sorted(range(len(parts)), key=lambda i: tuple(parts[i][0, :3]))
    values = np.concatenate([parts[i] for i in order])
    source = files[order[0]] if len(files) == 1 else ", ".join(files[i].name for i in order)
    return omni_values_to_frame(source, values, OMNI2_ROLES, limits)


def omni2_granule_id(paths: Sequence[Path]) -> str:
    """``omni2_2015`` for one file (its stem), ``omni2_1998_2018`` for several (years
    from the file names, else the stem of the first)."""
    files = sorted(Path(p) for p in paths)
    if len(files) == 1:
        stem = files[0].stem
    else:
        years = sorted(int(y) for p in files for y in _YEAR_RE.findall(p.stem))
        stem = f"omni2_{years[0]}_{years[-1]}" if years else f"{files[0].stem}_{len(files)}files"
    s = re.sub(r"[^a-z0-9_.-]+", "_", stem.lower()).strip("_.-")
    return re.sub(r"_+", "_", s) or "omni2"
