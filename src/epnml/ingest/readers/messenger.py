"""MESSENGER MAG 1-s readers (PDS3 MAGMSOSCIAVG-like tables and CSV) -> one standard frame.

Why: the crossings stage must read what users download (PDS3 ASCII tables with detached
labels) and the project's simulated products alike, so everything here is driven by the
label -- column names, START_BYTE/BYTES, MISSING_CONSTANT, the ^TABLE pointer -- never by
hard-coded byte offsets.

Standard frame: tz-naive UTC DatetimeIndex ``time`` (strictly increasing within a file;
overlapping files are merged keeping the first file's sample), float64 ``x, y, z`` [km MSO],
``bx, by, bz`` [nT MSO], optional int8 ``region`` when the file carries the simulated truth
(``REGION_TRUTH`` / ``region_truth``), and ``attrs`` ``simulated``, ``orbit_number``,
``source``, ``invalid_values``.  Bad input raises GranuleError naming the file.

Declared fill values (a column's MISSING_CONSTANT, empty CSV cells) are missing data.  Any
other value outside :data:`PHYSICAL_BOUNDS` (inf, NaN text, 1e308, undeclared 1e31 ...)
is non-physical: it becomes missing data too, but is counted per quantity in
``attrs["invalid_values"]`` so the stage can report it.  A file without one sample with a
complete field vector and position is refused ("no valid magnetometer samples").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epnml.ingest.limits import DEFAULT_LIMITS, ResourceLimits
from epnml.ingest.readers.paths import (
    describe_exception,
    guard,
    os_reason,
    read_head,
    require_file,
    resolve_pointer,
    shown,
)
from epnml.ingest.stage import GranuleError

FRAME_COLUMNS = ["x", "y", "z", "bx", "by", "bz"]
#: PDS column name -> frame column (first match wins); aliases cover MSO variants.
PDS_COLUMNS: dict[str, tuple[str, ...]] = {
    "x": ("X_MSO", "MSO_X", "X"), "y": ("Y_MSO", "MSO_Y", "Y"), "z": ("Z_MSO", "MSO_Z", "Z"),
    "bx": ("BX_MSO", "MSO_BX", "BX"), "by": ("BY_MSO", "MSO_BY", "BY"),
    "bz": ("BZ_MSO", "MSO_BZ", "BZ"),
}
TIME_COLUMNS = ("YEAR", "DAY_OF_YEAR", "HOUR", "MINUTE", "SECOND")
CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "x": ("x_mso_km", "x_mso", "x"), "y": ("y_mso_km", "y_mso", "y"),
    "z": ("z_mso_km", "z_mso", "z"), "bx": ("bx_mso_nt", "bx_mso", "bx"),
    "by": ("by_mso_nt", "by_mso", "by"), "bz": ("bz_mso_nt", "bz_mso", "bz"),
}
#: any |value| at or above this is a fill in the time, region and orbit columns.
FILL_THRESHOLD = 1e30
#: largest physical |value| of each frame quantity: 1e5 nT is 100 times Mercury's surface
#: field (and ten times the MAG range); 1e7 km is 4,000 Mercury radii, beyond any orbit.
PHYSICAL_BOUNDS: dict[str, float] = {
    "bx": 1e5, "by": 1e5, "bz": 1e5, "x": 1e7, "y": 1e7, "z": 1e7,
}
#: DATA_TYPEs of an ASCII table column read as numbers (PDS3 standard + common legacy).
NUMERIC_TYPES = frozenset({
    "ASCII_REAL", "ASCII_INTEGER", "ASCII_UNSIGNED_INTEGER", "REAL", "INTEGER",
    "UNSIGNED_INTEGER", "FLOAT", "DOUBLE",
})
#: other DATA_TYPEs an ASCII table may hold in columns this reader does not use.
OTHER_ASCII_TYPES = frozenset({
    "CHARACTER", "TIME", "DATE", "BOOLEAN", "ASCII_COMPLEX", "ASCII_NUMERIC_BASE2",
    "ASCII_NUMERIC_BASE8", "ASCII_NUMERIC_BASE16", "N/A",
})
LABEL_SUFFIXES = (".lbl",)
TABLE_SUFFIXES = (".tab", ".dat")
#: largest detached label we parse (MAG labels are a few kB).
MAX_LABEL_BYTES = 1 << 20
#: working bytes per sample beyond the file itself: float64 columns, the frame, features.
BYTES_PER_SAMPLE = 600


# ---------------------------------------------------------------------------
# PDS3 label parsing (ODL subset: nested OBJECT/GROUP, quoted multi-line strings,
# sequences, sets, units, comments)


@dataclass
class PdsObject:
    """One ODL block: its keywords and nested OBJECT/GROUP blocks, in file order."""

    kind: str  # "ROOT", "OBJECT" or "GROUP"
    name: str
    keywords: dict[str, Any] = field(default_factory=dict)
    children: list[PdsObject] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return self.keywords.get(key.upper(), default)

    def find(self, name: str) -> list[PdsObject]:
        """Direct children named ``name`` (e.g. ``COLUMN``), case-insensitive."""
        return [c for c in self.children if c.name.upper() == name.upper()]

    def find_suffix(self, suffix: str) -> list[PdsObject]:
        """Direct children whose name ends with ``suffix`` (``TABLE``, ``SCI_TABLE`` ...)."""
        return [c for c in self.children if c.name.upper().endswith(suffix.upper())]


_TOKEN_KEY = re.compile(r"\^?[A-Za-z_][A-Za-z0-9_:]*")


class _LabelError(ValueError):
    pass


def parse_label(text: str) -> PdsObject:
    """Parse PDS3 ODL text into a :class:`PdsObject` tree (raises ValueError with a reason)."""
    pos, n = 0, len(text)
    root = PdsObject("ROOT", "ROOT")
    stack = [root]

    def line() -> int:
        return text.count("\n", 0, pos) + 1

    def skip() -> None:
        nonlocal pos
        while pos < n:
            if text[pos].isspace():
                pos += 1
            elif text.startswith("/*", pos):
                end = text.find("*/", pos + 2)
                if end < 0:
                    raise _LabelError("unterminated /* comment")
                pos = end + 2
            else:
                return

    def value() -> str:
        """Raw text of one value (balanced brackets, quotes kept)."""
        nonlocal pos
        start, depth = pos, 0
        while pos < n:
            ch = text[pos]
            if ch == '"':
                end = text.find('"', pos + 1)
                if end < 0:
                    raise _LabelError("unterminated quoted string")
                pos = end + 1
                if depth == 0:
                    break
                continue
            if ch == "'":
                end = text.find("'", pos + 1)
                pos = (end + 1) if end >= 0 else n
                continue
            if ch in "({":
                depth += 1
            elif ch in ")}":
                depth -= 1
                if depth < 0:
                    raise _LabelError("unbalanced ')' or '}'")
                if depth == 0:
                    pos += 1
                    break
            elif ch in "\r\n" and depth == 0:
                break
            elif text.startswith("/*", pos) and depth == 0:
                break
            pos += 1
        if depth > 0:
            raise _LabelError("unterminated sequence or set")
        raw = text[start:pos].strip()
        # a trailing unit after a quoted/bracketed value: 12 <BYTES> is read in one go above
        rest = re.match(r"[ \t]*<[^>\r\n]*>", text[pos:])
        if rest:
            raw += " " + rest.group(0).strip()
            pos += rest.end()
        return raw

    ended = False
    while True:
        skip()
        if pos >= n:
            break
        m = _TOKEN_KEY.match(text, pos)
        if not m:
            raise _LabelError(f"unexpected text at line {line()}")
        key = m.group(0).upper()
        pos = m.end()
        if key == "END":
            ended = True
            break
        skip()
        if pos >= n or text[pos] != "=":
            raise _LabelError(f"keyword without '=' at line {line()}")
        pos += 1
        while pos < n and text[pos] in " \t":
            pos += 1
        raw = value()
        if key in ("OBJECT", "GROUP"):
            child = PdsObject(key, _scalar(raw))
            stack[-1].children.append(child)
            stack.append(child)
        elif key in ("END_OBJECT", "END_GROUP"):
            if len(stack) == 1 or stack[-1].kind != key[4:]:
                raise _LabelError(f"{key} without matching {key[4:]}")
            if raw and _scalar(raw).upper() != stack[-1].name.upper():
                raise _LabelError(f"{key} at line {line()} closes another {stack[-1].kind}")
            stack.pop()
        else:
            stack[-1].keywords[key] = _convert(raw)
    if len(stack) != 1:
        raise _LabelError(f"{stack[-1].kind} {shown(stack[-1].name, '(unnamed)')} is not closed")
    if not ended:
        raise _LabelError("no END statement (truncated label?)")
    return root


def _scalar(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return " ".join(raw[1:-1].split())
    return raw


def _convert(raw: str) -> Any:
    """ODL value -> str / int / float / list; units ``<...>`` become a (value, unit) tuple."""
    raw = raw.strip()
    if raw.startswith(("(", "{")) and raw.endswith((")", "}")):
        return [_convert(p) for p in _split_top(raw[1:-1])]
    unit = None
    m = re.match(r"^(.*?)\s*<([^>]*)>$", raw, re.S)
    if m and not raw.startswith('"'):
        raw, unit = m.group(1).strip(), m.group(2).strip().upper()
    if raw.startswith('"') or raw.startswith("'"):
        val: Any = _scalar(raw)
    else:
        try:
            val = int(raw)
        except ValueError:
            try:
                val = float(raw)
            except ValueError:
                val = raw
    return (val, unit) if unit else val


def _split_top(inner: str) -> list[str]:
    parts, depth, cur, quote = [], 0, "", ""
    for ch in inner:
        if quote:
            cur += ch
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def read_label(path: Path) -> PdsObject:
    """Parse a PDS3 label file; GranuleError naming the file on failure."""
    path = _require_file(path)
    try:
        text = read_head(path, MAX_LABEL_BYTES, "PDS3 label").decode("ascii")
    except UnicodeDecodeError:
        raise GranuleError(path, "not an ASCII PDS3 label") from None
    if "PDS_VERSION_ID" not in text[:2000].upper():
        raise GranuleError(path, "not a PDS3 label (no PDS_VERSION_ID)")
    try:
        return parse_label(text)
    except _LabelError as exc:
        raise GranuleError(path, f"malformed PDS3 label: {exc}") from None
    except RecursionError:
        raise GranuleError(path, "malformed PDS3 label: nested too deeply") from None


# ---------------------------------------------------------------------------
# PDS3 table


def _require_file(path: Path | str) -> Path:
    return require_file(path)


def _int_kw(obj: PdsObject, key: str, path: Path, where: str) -> int:
    val = obj.get(key)
    if isinstance(val, tuple):
        val = val[0]
    if not isinstance(val, int) or isinstance(val, bool):
        raise GranuleError(path, f"{where}: {key} missing or not an integer")
    return val


def _float_or_none(val: Any) -> float | None:
    if isinstance(val, tuple):
        val = val[0]
    if isinstance(val, int | float) and not isinstance(val, bool):
        return float(val)
    if isinstance(val, str):
        try:
            return float(val)
        except ValueError:
            return None
    return None


def _table_location(label: PdsObject, lbl: Path) -> tuple[Path, int, PdsObject]:
    """(table file, byte offset, TABLE object) from the ^...TABLE pointer."""
    pointers = {k: v for k, v in label.keywords.items() if k.startswith("^")
                and k.endswith("TABLE")}
    if not pointers:
        raise GranuleError(lbl, "label has no ^TABLE pointer")
    key, ptr = next(iter(pointers.items()))
    tables = label.find(key[1:]) or label.find_suffix("TABLE")
    if not tables:
        raise GranuleError(lbl, f"label has {key} but no OBJECT = {key[1:]}")
    table = tables[0]
    record_bytes = label.get("RECORD_BYTES")
    fname: object = None
    offset_val: Any = 1
    if isinstance(ptr, list):
        if not ptr:
            raise GranuleError(lbl, f"empty {key} pointer")
        fname = ptr[0] if isinstance(ptr[0], str) else ""
        offset_val = ptr[1] if len(ptr) > 1 else 1
    elif isinstance(ptr, str):
        fname = ptr
    else:
        offset_val = ptr  # attached label: record/byte offset into the label file itself
    if isinstance(offset_val, tuple):
        value, unit = offset_val
        if unit != "BYTES" or not isinstance(value, int):
            raise GranuleError(lbl, f"unsupported {key} offset (an integer or "
                                    "<BYTES> expected)")
        offset = value - 1
    elif isinstance(offset_val, int):
        if offset_val > 1 and not isinstance(record_bytes, int):
            raise GranuleError(lbl, f"{key} record offset needs RECORD_BYTES")
        offset = (offset_val - 1) * (record_bytes if isinstance(record_bytes, int) else 0)
    else:
        raise GranuleError(lbl, f"unreadable {key} pointer")
    if offset < 0:
        raise GranuleError(lbl, f"{key} offset is before the start of the file")
    if fname is None:
        return lbl, offset, table
    return resolve_pointer(lbl, fname, key), offset, table


@dataclass(frozen=True)
class _ColumnSpec:
    name: str
    start: int  # 0-based
    width: int
    data_type: str
    missing: tuple[float, ...]


def _columns(table: PdsObject, lbl: Path, row_bytes: int) -> dict[str, _ColumnSpec]:
    cols: dict[str, _ColumnSpec] = {}
    for i, c in enumerate(table.find("COLUMN"), 1):
        name = str(c.get("NAME", "")).upper()
        if not name:
            raise GranuleError(lbl, "a COLUMN object has no NAME")
        where = f"column {shown(name, f'#{i}')}"
        start = _int_kw(c, "START_BYTE", lbl, where)
        width = _int_kw(c, "BYTES", lbl, where)
        if start < 1 or width < 1 or start - 1 + width > row_bytes:
            raise GranuleError(lbl, f"{where} (bytes {start}..{start + width - 1}) "
                               f"lies outside ROW_BYTES = {row_bytes}")
        missing = tuple(v for v in (_float_or_none(c.get(k)) for k in
                                    ("MISSING_CONSTANT", "INVALID_CONSTANT", "NULL_CONSTANT"))
                        if v is not None)
        cols[name] = _ColumnSpec(name, start - 1, width, str(c.get("DATA_TYPE", "")), missing)
    if not cols:
        raise GranuleError(lbl, "TABLE object has no COLUMN objects")
    return cols


def _pick(cols: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for n in names:
        if n in cols:
            return n
    return None


class _Screen:
    """Turns non-physical values into NaN and counts them per quantity for one file."""

    def __init__(self) -> None:
        self.invalid: dict[str, int] = {}
        #: values present (not a declared fill or an empty cell) that were checked.
        self.checked = 0

    def __call__(self, quantity: str, values: np.ndarray) -> np.ndarray:
        """``values`` with NaN for missing data; +-inf, NaN text (passed as inf) and
        anything beyond the quantity's bound are counted and become NaN."""
        x = np.array(values, dtype="float64", copy=True)
        present = ~np.isnan(x)
        with np.errstate(invalid="ignore"):
            bad = present & ~(np.abs(x) <= PHYSICAL_BOUNDS[quantity])
        self.checked += int(present.sum())
        n = int(bad.sum())
        if n:
            self.invalid[quantity] = self.invalid.get(quantity, 0) + n
            x[bad] = np.nan
        return x

    def no_valid_reason(self) -> str:
        total = sum(self.invalid.values())
        if total == 0:
            return ("no valid magnetometer samples (no sample has a complete field vector "
                    "and position; all other values are fill values)")
        parts = ", ".join(f"{q} {n}" for q, n in sorted(self.invalid.items()))
        return (f"no valid magnetometer samples ({total} of {self.checked} values were not "
                f"physical: {parts})")


def read_pds3(lbl: Path, limits: ResourceLimits = DEFAULT_LIMITS) -> pd.DataFrame:
    """Read one PDS3 MAG table through its detached (or attached) label.

    ROWS (``samples``) and the memory estimate are checked against ``limits`` from the
    label, before the table is read.
    """
    lbl = Path(lbl)
    with guard(lbl, "PDS3 MAG product"):
        return _read_pds3(lbl, limits)


def _read_pds3(lbl: Path, limits: ResourceLimits) -> pd.DataFrame:
    label = read_label(lbl)
    tab, offset, table = _table_location(label, lbl)
    tab = _require_file(tab)
    rows = _int_kw(table, "ROWS", lbl, "TABLE")
    row_bytes = _int_kw(table, "ROW_BYTES", lbl, "TABLE")
    if str(table.get("INTERCHANGE_FORMAT", "ASCII")).upper() != "ASCII":
        raise GranuleError(lbl, "only ASCII tables are supported")
    if rows < 1 or row_bytes < 1:
        raise GranuleError(tab, "table has no rows")
    cols = _columns(table, lbl, row_bytes)
    missing = [c for c in TIME_COLUMNS if c not in cols]
    picks = {k: _pick(cols, v) for k, v in PDS_COLUMNS.items()}
    missing += [PDS_COLUMNS[k][0] for k, v in picks.items() if v is None]
    if missing:
        raise GranuleError(lbl, f"required column(s) missing from the label: "
                           f"{', '.join(missing)}")
    used = {*TIME_COLUMNS, *(v for v in picks.values() if v is not None), "REGION_TRUTH",
            "ORBIT_NUMBER"}
    _check_types(cols, used, lbl)
    limits.check(lbl, "samples", rows)
    limits.check(lbl, "memory_mb", round(rows * (row_bytes + BYTES_PER_SAMPLE) / 2**20, 1))
    need = offset + rows * row_bytes
    size = tab.stat().st_size
    if size < need:
        have = max(0, size - offset) // row_bytes
        raise GranuleError(tab, f"truncated table: label says {rows} rows of {row_bytes} bytes "
                           f"from byte {offset + 1} ({need} bytes), file has {size} bytes "
                           f"({have} complete rows)")
    try:
        with tab.open("rb") as fh:
            fh.seek(offset)
            data = fh.read(rows * row_bytes)
    except OSError as exc:
        raise GranuleError(tab, f"cannot read table: {os_reason(exc)}") from None
    grid = np.frombuffer(data, dtype=np.uint8, count=rows * row_bytes).reshape(rows, row_bytes)

    def column(name: str) -> np.ndarray:
        spec = cols[name]
        raw = np.ascontiguousarray(grid[:, spec.start:spec.start + spec.width])
        text = raw.view(f"S{spec.width}").ravel()
        try:
            vals = np.char.strip(text).astype(np.float64)
        except (ValueError, UnicodeDecodeError):
            bad = next((i for i, t in enumerate(text) if not _is_number(t)), 0)
            raise GranuleError(tab, f"unparsable value in column {shown(name, 'of the label')} "
                               f"at row {bad + 1}") from None
        for m in spec.missing:  # declared fills: missing data, not counted
            vals = np.where(np.isclose(vals, m, rtol=1e-6, atol=0), np.nan, vals)
        return vals

    def fill_column(name: str) -> np.ndarray:
        vals = column(name)
        with np.errstate(invalid="ignore"):
            return np.where(~(np.abs(vals) < FILL_THRESHOLD), np.nan, vals)

    tparts = {c: fill_column(c) for c in TIME_COLUMNS}
    times = _pds_times(tparts, tab)
    screen = _Screen()
    frame = pd.DataFrame({k: screen(k, column(v)) for k, v in picks.items() if v is not None},
                         index=times)
    if "REGION_TRUTH" in cols:
        frame["region"] = fill_column("REGION_TRUTH")
    orbit = label.get("ORBIT_NUMBER")
    if not isinstance(orbit, int) and "ORBIT_NUMBER" in cols:
        o = fill_column("ORBIT_NUMBER")
        orbit = int(pd.Series(o).mode().iloc[0]) if np.isfinite(o).any() else None
    text = " ".join(str(label.get(k, "")) for k in ("PRODUCT_ID", "PRODUCT_TYPE", "NOTE",
                                                     "SIMULATED", "DATA_SET_ID"))
    simulated = "SIMULATED" in text.upper() or "simulated" in lbl.name.lower()
    pid = str(label.get("PRODUCT_ID") or lbl.stem)
    return _finish(frame, tab, simulated, orbit if isinstance(orbit, int) else None,
                   f"pds3:{pid}", screen)


def _check_types(cols: dict[str, _ColumnSpec], used: set[str], lbl: Path) -> None:
    """Columns read as numbers need a numeric DATA_TYPE; the others a known ASCII one."""
    for name, spec in cols.items():
        dtype = spec.data_type.strip().upper()
        known = NUMERIC_TYPES if name in used else NUMERIC_TYPES | OTHER_ASCII_TYPES
        if dtype not in known:
            what = f"DATA_TYPE {shown(dtype, '(unreadable)')}" if dtype else "no DATA_TYPE"
            need = ("an ASCII numeric type expected" if name in used
                    else "not a PDS3 ASCII table type")
            raise GranuleError(lbl, f"unsupported DATA_TYPE of column "
                               f"{shown(name, '(unnamed)')} ({what}; {need})")


def _is_number(token: bytes) -> bool:
    try:
        float(token)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _pds_times(parts: dict[str, np.ndarray], path: Path) -> pd.DatetimeIndex:
    year, doy, hour, minute, sec = (parts[c] for c in TIME_COLUMNS)
    stack = np.stack([year, doy, hour, minute, sec])
    if not np.isfinite(stack).all():
        row = int(np.flatnonzero(~np.isfinite(stack).all(axis=0))[0])
        raise GranuleError(path, f"time columns contain fill values at row {row + 1}")
    bad = ((year < 1900) | (year > 2100) | (doy < 1) | (doy > 366) | (hour < 0) | (hour > 23)
           | (minute < 0) | (minute > 59) | (sec < 0) | (sec >= 61))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise GranuleError(path, f"unparsable time at row {row + 1} (year 1900..2100, day "
                           "1..366, hour, minute and second in range expected)")
    base = pd.to_datetime(year.astype(int).astype(str), format="%Y")
    ns = np.round(((doy - 1) * 86400 + hour * 3600 + minute * 60 + sec) * 1e9).astype(np.int64)
    return pd.DatetimeIndex(base + pd.to_timedelta(ns, unit="ns"), name="time")


def _finish(frame: pd.DataFrame, path: Path, simulated: bool, orbit: int | None,
            source: str, screen: _Screen) -> pd.DataFrame:
    """Checks shared by the formats: time order, valid samples, dtypes, attrs."""
    index = pd.DatetimeIndex(frame.index).as_unit("ns")
    d = np.diff(index.asi8)
    if (d <= 0).any():  # a repeated time is two samples claiming one instant: refused too
        i = int(np.flatnonzero(d <= 0)[0])
        what = "duplicate time" if d[i] == 0 else "non-monotonic times"
        relation = "same as" if d[i] == 0 else "earlier than"
        raise GranuleError(path, f"{what} at data row {i + 2} ({relation} data row {i + 1})")
    frame.index = pd.DatetimeIndex(index, name="time")
    if not frame[FRAME_COLUMNS].notna().all(axis=1).any():
        raise GranuleError(path, screen.no_valid_reason())
    out = frame[FRAME_COLUMNS].astype("float64")
    if "region" in frame:
        reg = frame["region"]
        if reg.isna().any() or not reg.isin(range(5)).all():
            raise GranuleError(path, "region truth must be an integer 0..4")
        out["region"] = reg.astype("int8")
    out.attrs = {"simulated": bool(simulated), "orbit_number": orbit, "source": source,
                 "invalid_values": dict(sorted(screen.invalid.items()))}
    return out


# ---------------------------------------------------------------------------
# CSV


def _count_lines(path: Path) -> int:
    """Lines of a text file, counted in 1 MiB blocks (nothing else is kept)."""
    n = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\n")
    return n


def read_csv(path: Path, limits: ResourceLimits = DEFAULT_LIMITS) -> pd.DataFrame:
    """Read the simulator's CSV layout, also accepting the PDS column names.

    Its lines (``samples``) and the memory estimate are checked against ``limits``
    before pandas parses it."""
    path = _require_file(path)
    with guard(path, "MAG CSV"):
        lines = _count_lines(path)
        limits.check(path, "samples", lines)
        limits.check(path, "memory_mb",
                     round((path.stat().st_size * 4 + lines * BYTES_PER_SAMPLE) / 2**20, 1))
        return _read_csv(path)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        with open(path, encoding="ascii") as fh:
            first = fh.readline()
        # only empty cells are missing data: "nan" text stays visible and is counted
        table = pd.read_csv(path, comment="#", keep_default_na=False, na_values=[""])
    except UnicodeDecodeError as exc:
        raise GranuleError(path, f"not a readable CSV: {describe_exception(exc)}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise GranuleError(path, f"not a readable CSV: {reason}") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    picks = {k: _pick({c: c for c in table.columns}, v) for k, v in CSV_COLUMNS.items()}
    missing = [CSV_COLUMNS[k][0] for k, v in picks.items() if v is None]
    has_time = "time" in table.columns or all(c.lower() in table.columns for c in TIME_COLUMNS)
    if not has_time:
        missing.insert(0, "time")
    if missing:
        raise GranuleError(path, f"missing required column(s): {', '.join(missing)}")
    if table.empty:
        raise GranuleError(path, "no data rows")
    if "time" in table.columns:
        times = pd.to_datetime(table["time"], errors="coerce", utc=True, format="ISO8601")
        if times.isna().any():
            row = int(np.flatnonzero(times.isna().to_numpy())[0])
            raise GranuleError(path, f"unparsable time at row {row + 2}")
        index = pd.DatetimeIndex(times.dt.tz_convert("UTC").dt.tz_localize(None), name="time")
    else:
        parts = {c: pd.to_numeric(table[c.lower()], errors="coerce").to_numpy(float)
                 for c in TIME_COLUMNS}
        index = _pds_times(parts, path)
    data = pd.DataFrame(index=index)
    screen = _Screen()
    for k, col in picks.items():
        if col is not None:
            data[k] = screen(k, _csv_numbers(table[col]))
    reg_col = _pick({c: c for c in table.columns}, ("region_truth", "region"))
    if reg_col is not None:
        data["region"] = pd.to_numeric(table[reg_col], errors="coerce").to_numpy()
    orbit = None
    m = re.search(r"orbit_number=(\d+)", first)
    if m:
        orbit = int(m.group(1))
    elif "orbit_number" in table.columns:
        modes = pd.to_numeric(table["orbit_number"], errors="coerce").mode()
        orbit = int(modes.iloc[0]) if len(modes) else None
    simulated = "simulated" in (first.lower() + path.name.lower())
    return _finish(data, path, simulated, orbit, f"csv:{path.name}", screen)


def _csv_numbers(column: pd.Series) -> np.ndarray:
    """Numbers of a CSV column: empty cells NaN (missing); text that is not a number
    ("nan", "n/a", "x") +inf, so that it is counted as not physical."""
    numbers = np.array(pd.to_numeric(column, errors="coerce"), dtype="float64")
    numbers[column.notna().to_numpy() & np.isnan(numbers)] = np.inf
    return numbers


# ---------------------------------------------------------------------------
# entry points


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in LABEL_SUFFIXES:
        return "label"
    if suffix in TABLE_SUFFIXES:
        return "table"
    if suffix == ".csv":
        return "csv"
    raise GranuleError(path, f"unknown file type {path.suffix or '(no suffix)'!r}: expected a "
                       "PDS3 .LBL/.TAB pair or a .csv")


def _label_for(tab: Path) -> Path:
    for suffix in (".LBL", ".lbl"):
        cand = tab.with_suffix(suffix)
        if cand.is_file():
            return cand
    raise GranuleError(tab, "PDS3 table without its label (looked for "
                       f"{tab.with_suffix('.LBL').name})")


def read_mag(paths: Sequence[Path], limits: ResourceLimits = DEFAULT_LIMITS) -> pd.DataFrame:
    """Read MAG files (PDS3 label/table pairs, CSVs) into one sorted standard frame.

    A table given without its label is read through the sibling ``.LBL``.  Overlapping
    files are merged: sorted by time, duplicate times keep the first file's sample.
    Each file is checked against ``limits`` before it is read, the merged frame's samples
    and time span after (LimitExceeded).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise GranuleError("(no files)", "no input files")
    labels: list[Path] = []
    csvs: list[Path] = []
    for p in paths:
        kind = _kind(p)
        if kind == "label":
            labels.append(p)
        elif kind == "table":
            lbl = _label_for(_require_file(p))
            if lbl not in labels and not any(q.resolve() == lbl.resolve() for q in paths):
                labels.append(lbl)
        else:
            csvs.append(p)
    frames = [read_pds3(p, limits) for p in labels] + [read_csv(p, limits) for p in csvs]
    first = labels[0] if labels else csvs[0]
    _check_frames(frames, first, limits)
    if len(frames) == 1:
        return frames[0]
    merged = pd.concat(frames).sort_index(kind="stable")
    merged = merged[~merged.index.duplicated(keep="first")]
    if "region" in merged:
        if merged["region"].isna().any():
            merged = merged.drop(columns="region")
        else:
            merged["region"] = merged["region"].astype("int8")
    orbits = {f.attrs.get("orbit_number") for f in frames}
    invalid: dict[str, int] = {}
    for f in frames:
        for q, n in f.attrs.get("invalid_values", {}).items():
            invalid[q] = invalid.get(q, 0) + int(n)
    merged.attrs = {
        "simulated": any(f.attrs.get("simulated") for f in frames),
        "orbit_number": orbits.pop() if len(orbits) == 1 else None,
        "source": "; ".join(str(f.attrs.get("source")) for f in frames),
        "invalid_values": dict(sorted(invalid.items())),
    }
    return merged


def _check_frames(frames: Sequence[pd.DataFrame], path: Path, limits: ResourceLimits) -> None:
    """Samples and time span of a granule's frames together (LimitExceeded)."""
    limits.check(path, "samples", sum(len(f) for f in frames))
    starts = [f.index[0] for f in frames if len(f)]
    ends = [f.index[-1] for f in frames if len(f)]
    if starts:
        span = (max(ends) - min(starts)) / pd.Timedelta(days=1)
        limits.check(path, "span_days", round(float(span), 3))


def group_mag_files(paths: Sequence[Path]) -> list[tuple[str, list[Path]]]:
    """Granules: (product id, files).  A label pairs with the table its pointer names, a
    table with its sibling label; a folder expands to the MAG files inside it."""
    files: list[Path] = []
    for p in (Path(x) for x in paths):
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*") if q.is_file()
                                and q.suffix.lower() in (*LABEL_SUFFIXES, *TABLE_SUFFIXES,
                                                         ".csv")))
        else:
            files.append(p)
    out: dict[str, list[Path]] = {}
    used: set[Path] = set()
    for p in files:
        if _kind(p) == "label":
            try:
                label = read_label(p)
                gid = str(label.get("PRODUCT_ID") or p.stem)
                tab, _, _ = _table_location(label, p)
            except GranuleError:
                gid, tab = p.stem, None  # read_mag reports the reason
            group = [p] + ([tab] if tab is not None and tab != p else [])
            if gid in out:  # same product id twice (e.g. copies in two folders)
                gid = f"{gid}@{p.parent.name}/{p.stem}"
            out[gid] = group
            used.update(q.resolve() for q in group)
    for p in files:
        kind = _kind(p)
        if p.resolve() in used:
            continue
        if kind == "table":
            lbl = _label_for(p)  # GranuleError: a table without its label
            out.setdefault(lbl.stem, [lbl, p])
        elif kind == "csv":
            out[p.stem] = [p]
    return sorted(out.items())
