"""MESSENGER MASCS VIRS DDR reader (PDS3 binary tables with detached labels).

Everything is driven by the label and the ``^STRUCTURE`` format files it points
to (OBJECT nesting, COLUMN START_BYTE/BYTES/ITEMS/ITEM_BYTES/DATA_TYPE,
ROW_BYTES, ``^TABLE``): the VIS (512 channels) and NIR (256 channels) products
and our simulated products differ only in their ``.fmt``, never in this code.
Fill (``INVALID_CONSTANT`` / ``MISSING_CONSTANT``, 1e32 in VIRS) becomes NaN.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epnml.ingest.limits import DEFAULT_LIMITS, ResourceLimits
from epnml.ingest.readers.paths import (
    PointerRefused,
    _Escapes,
    describe_exception,
    find_in_folder,
    guard,
    plain_name,
    pointer_refused,
    read_head,
    resolve_pointer,
    shown,
    sibling,
)
from epnml.ingest.stage import GranuleError

#: I/F column used for units: photometrically normalised (standard geometry) first.
SPECTRUM_COLUMNS = ("PHOTOM_IOF_SPECTRUM_DATA", "IOF_SPECTRUM_DATA")
#: magnitudes at or above this are fill in VIRS products even when a label omits the constant.
FILL_ABS = 1e30
_GEOMETRY = {"INCIDENCE_ANGLE": "incidence", "EMISSION_ANGLE": "emission",
             "PHASE_ANGLE": "phase", "SOLAR_DISTANCE": "solar_distance_km",
             "ALONG_TRACK_FOOTPRINT_SIZE": "along_track_m",
             "ACROSS_TRACK_FOOTPRINT_SIZE": "across_track_m"}
_CORNERS = ("", "_c1", "_c2", "_c3", "_c4")
#: largest label or ``.fmt`` file we parse (real VIRS labels: 2-27 kB).
MAX_LABEL_BYTES = 1 << 20
#: ancestors of a label searched for a volume's ``LABEL`` folder (real VIRS DDRs: 7).
MAX_LABEL_LEVELS = 8
#: where a ``^STRUCTURE`` file may be.
STRUCTURE_PLACES = "the label's folder or a LABEL folder above it"


# --------------------------------------------------------------------------- PDS3 ODL parsing

@dataclass
class OdlObject:
    """One ODL ``OBJECT`` (or the label root): keywords plus nested objects, in file order."""

    kind: str
    keywords: dict[str, Any] = field(default_factory=dict)
    children: list[OdlObject] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return self.keywords.get(key.upper(), default)

    def find(self, kind: str) -> list[OdlObject]:
        """Direct and nested children of a kind (e.g. TABLE, COLUMN), depth first."""
        found: list[OdlObject] = []
        for child in self.children:
            if child.kind == kind.upper():
                found.append(child)
            found += child.find(kind)
        return found


_TOKEN = re.compile(r'\s*(?P<key>\^?[A-Za-z_][A-Za-z0-9_:]*)\s*=\s*', re.S)


def _strip_comments(text: str) -> str:
    """Drop ``/* ... */`` comments outside quoted strings."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = text.find('"', i + 1)
            j = n if j < 0 else j + 1
            out.append(text[i:j])
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))  # keep line numbers for messages
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _value(raw: str) -> Any:
    raw = raw.strip()
    if raw.startswith('"'):
        return " ".join(raw.strip('"').split())
    if raw.startswith("("):  # ("FILE", 12) pointer or a sequence
        return [_value(v) for v in raw.strip("()").split(",")]
    raw = re.sub(r"\s*<[^>]*>\s*$", "", raw)  # drop units like <BYTES>
    if raw.startswith("'"):
        return raw.strip("'")
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def parse_odl(text: str, source: Path | str = "<label>") -> OdlObject:
    """Parse PDS3 ODL text (label or ``.fmt`` fragment) into nested objects.

    Handles multi-line quoted values, comments and ``OBJECT``/``END_OBJECT``
    nesting; raises GranuleError on unbalanced objects so a damaged label is
    reported rather than half-read.
    """
    text = _strip_comments(text.replace("\r\n", "\n"))
    root = OdlObject("ROOT")
    stack = [root]
    pos, n = 0, len(text)
    while pos < n:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            break
        if re.match(r"END\s*$|END\s", text[pos:pos + 4]) and not text.startswith("END_", pos):
            break
        m = _TOKEN.match(text, pos)
        if not m:
            line_no = text.count("\n", 0, pos) + 1
            raise GranuleError(source, f"cannot parse label line {line_no}")
        key = m.group("key").upper()
        pos = m.end()
        if pos < n and text[pos] in "\"(":
            close = '"' if text[pos] == '"' else ")"
            j = text.find(close, pos + 1)
            if j < 0:
                line_no = text.count("\n", 0, pos) + 1
                raise GranuleError(source, f"unterminated value of "
                                           f"{shown(key.lstrip('^'), 'a keyword')} at line "
                                           f"{line_no}")
            raw = text[pos: j + 1]
            pos = j + 1
        else:
            line_end = text.find("\n", pos)
            line_end = n if line_end < 0 else line_end
            raw = text[pos:line_end]
            pos = line_end
        value = _value(raw)
        if key == "OBJECT":
            obj = OdlObject(str(value).upper())
            stack[-1].children.append(obj)
            stack.append(obj)
        elif key == "END_OBJECT":
            if len(stack) == 1:
                raise GranuleError(source, "END_OBJECT without OBJECT")
            stack.pop()
        else:
            stack[-1].keywords[key] = value
    if len(stack) != 1:
        raise GranuleError(source, f"OBJECT {shown(stack[-1].kind, '(unnamed)')} is never "
                                   "closed")
    return root


# --------------------------------------------------------------------------- columns

@dataclass(frozen=True)
class PdsColumn:
    name: str
    data_type: str
    #: 1-based, as in the label.
    start_byte: int
    bytes: int
    items: int = 1
    item_bytes: int = 0
    unit: str = ""
    fill: tuple[float, ...] = ()

    @property
    def dtype(self) -> np.dtype[Any]:
        size = self.item_bytes or self.bytes
        t = self.data_type.upper()
        if t == "CHARACTER" or t == "ASCII_CHARACTER":
            return np.dtype(f"S{size}")
        big = not (t.startswith("LSB") or t.startswith("PC_") or t.startswith("VAX"))
        order = ">" if big else "<"
        if "REAL" in t:
            return np.dtype(f"{order}f{size}")
        if "UNSIGNED" in t:
            return np.dtype(f"{order}u{size}")
        if "INTEGER" in t:
            return np.dtype(f"{order}i{size}")
        raise ValueError(f"unsupported DATA_TYPE {self.data_type}")


def _columns(obj: OdlObject, source: Path | str) -> list[PdsColumn]:
    cols = []
    for i, c in enumerate(obj.find("COLUMN"), 1):
        try:
            name = str(c.get("NAME"))
            nbytes = int(c.get("BYTES"))
            items = int(c.get("ITEMS", 1))
            fills = tuple(float(c.get(k)) for k in ("INVALID_CONSTANT", "MISSING_CONSTANT")
                          if c.get(k) is not None)
            col = PdsColumn(name, str(c.get("DATA_TYPE")), int(c.get("START_BYTE")), nbytes,
                            items, int(c.get("ITEM_BYTES", 0) or (nbytes // items)),
                            str(c.get("UNIT", "") or ""), fills)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
            raise GranuleError(source, f"bad COLUMN {shown(c.get('NAME'), f'#{i}')} "
                                       f"({describe_exception(exc)})") from None
        if min(col.bytes, col.items, col.item_bytes, col.start_byte) < 1:
            raise GranuleError(source, f"bad COLUMN {shown(col.name, f'#{i}')} (BYTES, ITEMS, "
                                       "ITEM_BYTES and START_BYTE must be >= 1)")
        try:
            col.dtype  # noqa: B018 - validates DATA_TYPE now, naming the column
        except (TypeError, ValueError):
            raise GranuleError(source, f"bad COLUMN {shown(col.name, f'#{i}')} (unsupported "
                                       "DATA_TYPE for its BYTES)") from None
        cols.append(col)
    return cols


def _label_folders(label_path: Path) -> list[Path]:
    """``LABEL`` folders of the label's ancestors (nearest first), each a real folder
    inside its parent: a symlinked LABEL folder leading elsewhere is not one."""
    out = []
    for parent in list(label_path.absolute().parents)[:MAX_LABEL_LEVELS]:
        for sub in ("label", "LABEL"):
            folder = parent / sub
            try:
                if folder.is_dir() and folder.resolve().parent == parent.resolve():
                    out.append(folder)
            except (OSError, RuntimeError):
                continue
    return out


def _follow_stub(path: Path, label_path: Path) -> Path:
    """Some archives store a symlink as a tiny text file holding the relative target
    (``../../label/virsvd.fmt``); followed only to a ``.fmt`` in the label's folder or
    a LABEL folder above it."""
    if path.stat().st_size >= 256:
        return path
    text = path.read_bytes().decode("latin-1").strip()
    if "=" in text or "\n" in text or not text.lower().endswith(".fmt"):
        return path
    if text.startswith(("/", "\\")) or "\0" in text:
        raise pointer_refused(label_path, "^STRUCTURE", STRUCTURE_PLACES)
    try:
        target = (path.parent / text).resolve()
        places = {p.resolve() for p in [label_path.parent, *_label_folders(label_path)]}
        ok = target.parent in places and target.is_file()
    except (OSError, RuntimeError, ValueError):
        ok = False
    if not ok:
        raise pointer_refused(label_path, "^STRUCTURE", STRUCTURE_PLACES)
    return target


def find_structure(label_path: Path, name: object) -> Path:
    """Locate a ``^STRUCTURE`` file: next to the label, else in a LABEL dir of an ancestor.

    PDS3 volumes keep shared ``.fmt`` files in ``<volume>/LABEL``; names are
    matched case-insensitively because volumes copied to Unix often lower-case them.
    Only a plain name is looked up, in the label's folder or (``.fmt`` names only) in
    the LABEL folder of one of the label's :data:`MAX_LABEL_LEVELS` nearest ancestors;
    the file found must really be there (no symlink out). Anything else gets one
    refusal that does not say whether the target exists.
    """
    plain = plain_name(name)
    if plain is None:
        raise pointer_refused(label_path, "^STRUCTURE", STRUCTURE_PLACES)
    try:
        here = find_in_folder(label_path.parent, plain)
        if here is not None:
            return _follow_stub(here, label_path)
        if plain.lower().endswith(".fmt"):
            for folder in _label_folders(label_path):
                hit = find_in_folder(folder, plain)
                if hit is not None:
                    return _follow_stub(hit, label_path)
    except _Escapes:
        raise pointer_refused(label_path, "^STRUCTURE", STRUCTURE_PLACES) from None
    raise GranuleError(label_path, f"^STRUCTURE file {plain} not found next to the label or in "
                                   "a LABEL directory above it")


def _read_odl(path: Path, source: Path | str, what: str = "label") -> OdlObject:
    """Parse a label or ``.fmt`` file of at most MAX_LABEL_BYTES; any byte is accepted
    (latin-1), damage is reported by line number, never by content."""
    return parse_odl(read_head(path, MAX_LABEL_BYTES, what, source).decode("latin-1"), source)


def _expand_structures(obj: OdlObject, label_path: Path, depth: int = 0) -> None:
    """Inline ``^STRUCTURE`` fragments into their objects (recursively)."""
    if depth > 8:
        raise GranuleError(label_path, "^STRUCTURE nesting deeper than 8 levels")
    for child in obj.children:
        _expand_structures(child, label_path, depth)
    ref = obj.keywords.pop("^STRUCTURE", None)
    if ref is not None:
        name = ref[0] if isinstance(ref, list) and ref else ref
        fmt = find_structure(label_path, name)
        # errors in a shared .fmt name the label (the user's file) and the .fmt's name only
        frag = _read_odl(fmt, f"{label_path} (^STRUCTURE {fmt.name})", "^STRUCTURE file")
        _expand_structures(frag, label_path, depth + 1)
        obj.children.extend(frag.children)


@dataclass
class PdsTable:
    """A PDS3 binary table decoded column by column (fill -> NaN for real columns)."""

    label_path: Path
    data_path: Path
    label: OdlObject
    table: OdlObject
    columns: dict[str, PdsColumn]
    data: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        return int(self.table.get("ROWS"))


def _pointer(label: OdlObject, label_path: Path) -> tuple[Path, int]:
    """(data file, byte offset) of ``^TABLE``: a plain name in the label's folder, or
    a record number in the label itself (attached table)."""
    ptr = label.get("^TABLE")
    if ptr is None:
        raise GranuleError(label_path, "label has no ^TABLE pointer (label without table)")
    offset_records: Any = 1
    name: object
    if isinstance(ptr, list):
        if not ptr:
            raise GranuleError(label_path, "empty ^TABLE pointer")
        name, offset_records = ptr[0], ptr[1] if len(ptr) > 1 else 1
    elif isinstance(ptr, int):
        name, offset_records = None, ptr  # attached table
    else:
        name = ptr
    try:
        record_bytes = int(label.get("RECORD_BYTES", 0) or 0)
        offset = (int(offset_records) - 1) * record_bytes
    except (TypeError, ValueError):
        raise GranuleError(label_path, "^TABLE offset or RECORD_BYTES is not an integer") \
            from None
    if offset < 0 or record_bytes < 0:
        raise GranuleError(label_path, "^TABLE offset or RECORD_BYTES is negative")
    if name is None:
        return label_path, offset
    return resolve_pointer(label_path, name, "^TABLE"), offset


def _table_memory_mb(rows: int, row_bytes: int, cols: Sequence[PdsColumn]) -> float:
    """Working memory of one decoded table: the raw rows, a column copy, float64 values
    with their fill mask, and the spectrum copy read_mascs keeps."""
    items = sum(c.items for c in cols)
    widest = max(c.items for c in cols)
    return rows * (2 * row_bytes + 9 * items + 8 * widest) / 2**20


def _read_label(label_path: Path) -> OdlObject:
    return _read_odl(label_path, label_path)


def read_pds3_table(label_path: Path | str,
                    limits: ResourceLimits = DEFAULT_LIMITS) -> PdsTable:
    """Decode the ``TABLE`` of a detached (or attached) PDS3 label.

    ROWS (``samples``), the widest column's ITEMS (``bands``) and the memory estimate
    are checked against ``limits`` from the label, before any data is read.
    """
    label_path = Path(label_path)
    with guard(label_path, "PDS3 table"):
        return _read_pds3_table(label_path, limits)


def _read_pds3_table(label_path: Path, limits: ResourceLimits) -> PdsTable:
    label = _read_label(label_path)
    tables = [t for t in label.children if t.kind.endswith("TABLE")]
    if not tables:
        raise GranuleError(label_path, "label has no TABLE object (label without table)")
    table = tables[0]
    _expand_structures(table, label_path)
    cols = _columns(table, label_path)
    if not cols:
        raise GranuleError(label_path, "TABLE has no COLUMN definitions")
    try:
        row_bytes = int(table.get("ROW_BYTES"))
        rows = int(table.get("ROWS"))
    except (TypeError, ValueError):
        raise GranuleError(label_path, "TABLE lacks ROW_BYTES or ROWS") from None
    if rows < 1 or row_bytes < 1:
        raise GranuleError(label_path, f"TABLE has ROWS = {rows} and ROW_BYTES = {row_bytes} "
                                       "(no data)")
    for i, col in enumerate(cols, 1):
        hi = col.start_byte - 1 + col.items * col.item_bytes
        if hi > row_bytes:
            raise GranuleError(label_path, f"COLUMN {shown(col.name, f'#{i}')} bytes "
                                           f"{col.start_byte}..{hi} outside ROW_BYTES "
                                           f"{row_bytes}")
    limits.check(label_path, "samples", rows)
    limits.check(label_path, "bands", max(c.items for c in cols))
    limits.check(label_path, "memory_mb", round(_table_memory_mb(rows, row_bytes, cols), 1))
    data_path, offset = _pointer(label, label_path)
    size = data_path.stat().st_size
    need = offset + rows * row_bytes
    if size < need:
        raise GranuleError(data_path, f"truncated: {size} bytes, label needs {need} "
                                      f"({rows} rows x {row_bytes} bytes)")
    raw = np.fromfile(data_path, dtype=np.uint8, count=rows * row_bytes, offset=offset)
    raw = raw.reshape(rows, row_bytes)
    out: dict[str, np.ndarray] = {}
    for col in cols:
        lo = col.start_byte - 1
        hi = lo + col.items * col.item_bytes
        arr = np.ascontiguousarray(raw[:, lo:hi]).view(col.dtype).reshape(rows, col.items)
        if arr.dtype.kind == "f":
            vals = arr.astype(np.float64)
            bad = ~np.isfinite(vals) | (np.abs(vals) >= FILL_ABS)
            for f in col.fill:
                bad |= np.isclose(vals, f, rtol=1e-6, atol=0.0)
            vals[bad] = np.nan
            out[col.name] = vals
        elif arr.dtype.kind == "S":
            out[col.name] = np.char.strip(np.char.decode(arr, "ascii", errors="replace"))
        else:
            out[col.name] = arr.astype(np.int64)
    return PdsTable(label_path, data_path, label, table, {c.name: c for c in cols}, out)


# --------------------------------------------------------------------------- MASCS VIRS

@dataclass
class MascsObservation:
    """One VIRS DDR product: per-spectrum metadata, spectra and channel wavelengths."""

    observation_id: str
    product_id: str
    detector: str
    label_path: Path
    #: one row per spectrum: time, lat/lon centre and corners, angles, quality flags.
    meta: pd.DataFrame
    #: (n_spectra, n_channels) I/F, NaN where fill, saturated or flagged.
    iof: np.ndarray
    wavelength_nm: np.ndarray
    simulated: bool = False

    @property
    def n_spectra(self) -> int:
        return int(self.iof.shape[0])


_OBS_RE = re.compile(r"virs[nv][dc]_(?P<obs>[a-z0-9]+_\d{5}_\d{6})", re.I)


def observation_key(path: Path) -> str:
    """``ob2_13051_143720`` from ``virsvd_ob2_13051_143720.lbl``; else the file stem."""
    m = _OBS_RE.search(path.name)
    return m.group("obs").lower() if m else path.stem.lower()


def _utc(values: np.ndarray) -> pd.DatetimeIndex:
    """VIRS ``YYDOYTHH:MM:SS.ff`` strings (e.g. ``13051T14:37:21``) -> timestamps (NaT if bad)."""
    iso = []
    for v in values:
        v = str(v).strip()
        iso.append(f"20{v[:2]}-{v[2:5]}{v[5:]}" if len(v) >= 14 else "")
    out = pd.to_datetime(iso, format="%Y-%jT%H:%M:%S.%f", errors="coerce")
    plain = pd.to_datetime(iso, format="%Y-%jT%H:%M:%S", errors="coerce")
    return pd.DatetimeIndex(np.where(out.isna(), plain, out))


def _quality(dqi: np.ndarray) -> pd.DataFrame:
    """The DATA_QUALITY_INDEX digits we act on (VIRS CDR/DDR SIS, ``ABCD-EFGH-IJKL-MNOP``)."""
    digits = [s.replace("-", "") for s in dqi]

    def digit(i: int) -> np.ndarray:
        return np.array([int(d[i]) if len(d) > i and d[i].isdigit() else -1 for d in digits])

    return pd.DataFrame({"dq_index": list(dqi), "dq_dark": digit(0) == 1,
                         "dq_saturated": digit(6) == 1, "dq_low_signal": digit(7) == 1,
                         "dq_spice": digit(12)})


def read_mascs(path: Path | str, photometric: bool = True,
               limits: ResourceLimits = DEFAULT_LIMITS) -> MascsObservation:
    """Read one VIRS DDR (``.lbl`` or its ``.dat``) into spectra + geometry.

    Quality flags honoured: dark-shutter spectra and spectra below the low-signal
    threshold are blanked (saturated pixels are already fill in the DDR); without
    SPICE (flag M = 0) the geometry is set to NaN.  Raises GranuleError when nothing valid
    remains, LimitExceeded when the label declares more than ``limits`` allow.
    """
    path = Path(path)
    label_path = path
    if path.suffix.lower() != ".lbl":
        hit = sibling(path, path.stem + ".lbl")
        if hit is None:
            raise GranuleError(path, "no detached .lbl label next to the data file")
        label_path = hit
    tab = read_pds3_table(label_path, limits)
    with guard(label_path, "MASCS VIRS product"):
        return _observation(tab, label_path, photometric)


def _observation(tab: PdsTable, label_path: Path, photometric: bool) -> MascsObservation:
    d = tab.data
    name = next((c for c in (SPECTRUM_COLUMNS if photometric else SPECTRUM_COLUMNS[::-1])
                 if c in d), None)
    if name is None:
        raise GranuleError(label_path, f"no spectrum column ({' or '.join(SPECTRUM_COLUMNS)})")
    if "CHANNEL_WAVELENGTHS" not in d:
        raise GranuleError(label_path, "no CHANNEL_WAVELENGTHS column")
    iof = d[name].copy()
    wl_rows = d["CHANNEL_WAVELENGTHS"]
    # OBSERVATION column: identical rows; the first finite value per channel
    first = np.argmax(np.isfinite(wl_rows), axis=0)
    wl = wl_rows[first, np.arange(wl_rows.shape[1])]
    unit = tab.columns["CHANNEL_WAVELENGTHS"].unit.lower()
    if unit in {"micrometer", "micron", "um"}:
        wl = wl * 1000.0
    keep = np.isfinite(wl)
    iof, wl = iof[:, keep], wl[keep]
    n = iof.shape[0]
    meta = pd.DataFrame(index=pd.RangeIndex(n))
    meta["spectrum_number"] = d["SPECTRUM_NUMBER"][:, 0] if "SPECTRUM_NUMBER" in d \
        else np.arange(n)
    meta["time"] = _utc(d["SPECTRUM_UTC_TIME"][:, 0]) if "SPECTRUM_UTC_TIME" in d \
        else pd.NaT
    for key, prefix in (("TARGET_LATITUDE_SET", "lat"), ("TARGET_LONGITUDE_SET", "lon")):
        vals = d.get(key, np.full((n, 1), np.nan))
        for i, suffix in enumerate(_CORNERS):
            meta[prefix + suffix] = vals[:, i] if vals.shape[1] > i else np.nan
    for col in ("lon", *(f"lon{s}" for s in _CORNERS[1:])):
        meta[col] = np.mod(meta[col], 360.0)
    for key, out in _GEOMETRY.items():
        meta[out] = d[key][:, 0] if key in d else np.nan
    if "DATA_QUALITY_INDEX" in d:
        q = _quality(d["DATA_QUALITY_INDEX"][:, 0])
        meta = pd.concat([meta, q], axis=1)
        # saturated pixels are already 1e32 in the DDR (flag G only says some exist)
        iof[(q["dq_dark"] | q["dq_low_signal"]).to_numpy()] = np.nan
        geo = ["lat", "lon", *(f"{p}{s}" for p in ("lat", "lon") for s in _CORNERS[1:]),
               "incidence", "emission", "phase"]
        meta.loc[(q["dq_spice"] == 0).to_numpy(), geo] = np.nan
    iof[iof <= 0] = np.nan  # negative / zero I/F is not a reflectance
    if not np.isfinite(iof).any():
        raise GranuleError(tab.data_path, "no valid data: all spectra are fill or flagged")
    detector = str(tab.label.get("STANDARD_DATA_PRODUCT_ID", ""))
    detector = "VIS" if "VIS" in detector.upper() or "virsv" in label_path.name.lower() \
        else "NIR"
    text = " ".join(str(v) for v in tab.label.keywords.values()).lower()
    return MascsObservation(
        observation_id=observation_key(label_path),
        product_id=str(tab.label.get("PRODUCT_ID", label_path.stem)),
        detector=detector, label_path=label_path, meta=meta, iof=iof,
        wavelength_nm=wl.astype(np.float64), simulated="simulated" in text)


def group_mascs_files(paths: Iterable[Path | str]) -> list[tuple[str, list[Path]]]:
    """Group labels and data files by observation (``ob2_13051_143720`` -> VIS+NIR files).

    Directories are searched recursively for ``.lbl``; ``.fmt`` files are ignored
    (labels find them); any other file is an error naming it.
    """
    groups: dict[str, list[Path]] = {}
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for q in sorted(p.rglob("*")):
                if q.is_file() and q.suffix.lower() == ".lbl":
                    groups.setdefault(observation_key(q), []).append(q)
            continue
        suffix = p.suffix.lower()
        if suffix == ".fmt":
            continue
        if suffix == ".dat":
            lbl = sibling(p, p.stem + ".lbl")
            if lbl is None:
                raise GranuleError(p, "no detached .lbl label next to the data file")
            p = lbl
        elif suffix != ".lbl":
            raise GranuleError(p, "not a MASCS PDS3 product (.lbl/.dat expected)")
        groups.setdefault(observation_key(p), [])
        if p not in groups[observation_key(p)]:
            groups[observation_key(p)].append(p)
    return [(key, sorted(files)) for key, files in sorted(groups.items())]


def has_table_data(label: Path) -> bool:
    """Whether the data file a label points to exists (some volumes ship labels only).

    A pointer leading out of the label's folder is refused (PointerRefused), never
    silently skipped; a label that cannot be read counts as one without data.
    """
    try:
        _pointer(_read_label(label), label)
    except PointerRefused:
        raise
    except GranuleError:  # MissingData, or a label that cannot be read
        return False
    return True


def read_mascs_files(labels: Sequence[Path], photometric: bool = True,
                     skip_missing_data: bool = True,
                     limits: ResourceLimits = DEFAULT_LIMITS) -> list[MascsObservation]:
    """Read several products; labels whose data file is absent are skipped when asked.
    ``limits`` bound each product and the spectra of all of them together."""
    out = []
    total = 0
    for lbl in labels:
        if skip_missing_data and not has_table_data(lbl):
            continue
        obs = read_mascs(lbl, photometric, limits)
        total += obs.n_spectra
        limits.check(lbl, "samples", total)
        out.append(obs)
    return out
