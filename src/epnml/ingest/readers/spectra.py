"""Laboratory spectra readers: RELAB JSON (INAF science case) and USGS ENVI libraries.

Both return plain arrays with wavelengths in nm so the units pipeline can
resample them onto the MASCS grid; bad input raises GranuleError naming the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from epnml.ingest.limits import DEFAULT_LIMITS, ResourceLimits
from epnml.ingest.readers.paths import describe_exception, guard, read_head, require_file
from epnml.ingest.stage import GranuleError

#: ENVI ``data type`` codes we read.
_ENVI_DTYPES = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 12: "u2", 13: "u4", 14: "i8"}
#: largest RELAB JSON spectrum (real ones: a few hundred kB) and ENVI header we read.
MAX_JSON_BYTES = 32 << 20
MAX_HEADER_BYTES = 4 << 20


@dataclass
class LabSpectrum:
    """One laboratory reflectance spectrum (RELAB JSON)."""

    spectrum_id: str
    path: Path
    #: folder of the INAF set: ``learning``, ``test`` or ``slab``.
    subset: str
    wavelength_nm: np.ndarray
    reflectance: np.ndarray
    #: phase name -> percent (empty when the file carries none).
    abundances: dict[str, float] = field(default_factory=dict)
    grain_size_um: tuple[float | None, float | None] = (None, None)
    description: str = ""

    @property
    def sample_group(self) -> str:
        """Identifier shared by replicate measurements of one sample (for grouped CV).

        RELAB ids ``c1dl44a`` / ``c2dl44`` differ by instrument prefix (``c1``..)
        and replicate letter; SLab ids ``8pl32m1a``/``8pl32m1b`` by the last letter.
        """
        sid = self.spectrum_id.lower()
        m = re.fullmatch(r"c\d(?P<core>[a-z]+\d+)[a-z]?", sid)
        if m:
            return "relab:" + m.group("core")
        m = re.fullmatch(r"(?P<core>\d+pl\d+m\d+)[a-z]?", sid)
        if m:
            return "slab:" + m.group("core")
        return sid


def _keys_lower(d: dict[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in d.items()}


def read_relab_json(path: Path | str, limits: ResourceLimits = DEFAULT_LIMITS) -> LabSpectrum:
    """Read one RELAB/SLab JSON spectrum; fill (negative or non-finite) -> NaN.
    Its number of wavelengths is checked against ``limits`` (``bands``)."""
    path = Path(path)
    with guard(path, "JSON spectrum"):
        return _read_relab_json(path, limits)


def _read_relab_json(path: Path, limits: ResourceLimits) -> LabSpectrum:
    raw = read_head(require_file(path), MAX_JSON_BYTES, "JSON spectrum")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        reason = f"{exc.msg} at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) \
            else describe_exception(exc)
        raise GranuleError(path, f"not a readable JSON spectrum: {reason}") from None
    if not isinstance(doc, dict):
        raise GranuleError(path, "not a JSON spectrum (an object expected)")
    doc = _keys_lower(doc)
    spec = doc.get("spectrum")
    if not isinstance(spec, dict) or "wavelength" not in spec or "reflectance" not in spec:
        raise GranuleError(path, "no spectrum.wavelength / spectrum.reflectance arrays")
    if isinstance(spec["wavelength"], list):
        limits.check(path, "bands", len(spec["wavelength"]))
    try:
        wl = np.asarray(spec["wavelength"], dtype=np.float64)
        refl = np.asarray(spec["reflectance"], dtype=np.float64)
    except (TypeError, ValueError):
        raise GranuleError(path, "wavelength and reflectance must be arrays of numbers") \
            from None
    if wl.shape != refl.shape or wl.ndim != 1 or wl.size < 2:
        raise GranuleError(path, f"wavelength {wl.shape} and reflectance {refl.shape} differ")
    refl[~np.isfinite(refl) | (refl < 0)] = np.nan
    order = np.argsort(wl)
    wl, refl = wl[order], refl[order]
    if not np.isfinite(refl).any():
        raise GranuleError(path, "no valid data: all reflectance values are fill")
    abundances: dict[str, float] = {}
    for item in doc.get("abundances") or []:
        name = str(item.get("mineral_phase_name", "")).strip()
        if name:
            abundances[name] = abundances.get(name, 0.0) + float(item.get("percentage", 0.0))
    grain = doc.get("grain_size") or {}
    gmin, gmax = grain.get("min"), grain.get("max")
    return LabSpectrum(path.stem, path, path.parent.name, wl, refl, abundances,
                       (float(gmin) if gmin else None, float(gmax) if gmax else None),
                       str(doc.get("description", "")))


def read_relab_dir(root: Path | str, subsets: Iterable[str] = ("learning", "test", "slab")
                   ) -> list[LabSpectrum]:
    """All JSON spectra of ``root/<subset>/``, sorted by subset then id."""
    root = Path(root)
    out = []
    for sub in subsets:
        for p in sorted((root / sub).glob("*.json")):
            out.append(read_relab_json(p))
    if not out:
        raise GranuleError(root, f"no RELAB JSON spectra under {', '.join(subsets)}")
    return out


@dataclass
class EnviLibrary:
    """An ENVI spectral library: one spectrum per line (bad values -> NaN)."""

    names: list[str]
    wavelength_nm: np.ndarray
    #: (n_spectra, n_bands)
    spectra: np.ndarray


def _parse_envi_header(text: str, source: Path) -> dict[str, str]:
    if not text.lstrip().startswith("ENVI"):
        raise GranuleError(source, "not an ENVI header (no leading 'ENVI')")
    out: dict[str, str] = {}
    for m in re.finditer(r"^\s*([^=\n]+?)\s*=\s*(\{[^}]*\}|[^\n]*)", text, re.M):
        out[m.group(1).strip().lower()] = m.group(2).strip()
    return out


def _braced(value: str) -> list[str]:
    return [v.strip() for v in value.strip().strip("{}").split(",")]


def read_envi_sli(path: Path | str, limits: ResourceLimits = DEFAULT_LIMITS) -> EnviLibrary:
    """Read an ENVI spectral library (``.sli`` + ``.hdr``; header drives everything).
    ``lines`` (spectra: ``samples``), ``samples`` (``bands``) and the memory estimate are
    checked against ``limits`` from the header, before the library is read."""
    path = Path(path)
    with guard(path, "ENVI spectral library"):
        return _read_envi_sli(path, limits)


def _read_envi_sli(path: Path, limits: ResourceLimits) -> EnviLibrary:
    sli = path.with_suffix(".sli") if path.suffix.lower() == ".hdr" else path
    hdr = sli.with_suffix(".hdr")
    if not hdr.is_file():
        raise GranuleError(sli, "ENVI header (.hdr) missing")
    h = _parse_envi_header(read_head(hdr, MAX_HEADER_BYTES, "ENVI header").decode("latin-1"),
                           hdr)
    try:
        samples, lines = int(h["samples"]), int(h["lines"])
        dtype = np.dtype(_ENVI_DTYPES[int(h["data type"])])
        offset = int(h.get("header offset", "0"))
    except KeyError as exc:
        raise GranuleError(hdr, f"incomplete ENVI header: no {exc} or an unknown "
                                "data type") from None
    except ValueError:
        raise GranuleError(hdr, "incomplete ENVI header: samples, lines, data type or "
                                "header offset is not an integer") from None
    if samples < 1 or lines < 1 or offset < 0:
        raise GranuleError(hdr, "ENVI header: samples and lines must be >= 1, header "
                                "offset >= 0")
    limits.check(hdr, "samples", lines)
    limits.check(hdr, "bands", samples)
    limits.check(hdr, "memory_mb",
                 round(samples * lines * (dtype.itemsize + 8 + 1) / 2**20, 1))
    dtype = dtype.newbyteorder(">" if h.get("byte order", "0").strip() == "1" else "<")
    need = offset + samples * lines * dtype.itemsize
    if not sli.is_file() or sli.stat().st_size < need:
        raise GranuleError(sli, f"missing or truncated: needs {need} bytes")
    data = np.fromfile(sli, dtype=dtype, count=samples * lines, offset=offset)
    spectra = data.reshape(lines, samples).astype(np.float64)
    bad = ~np.isfinite(spectra) | (spectra < -1e30)
    if "data ignore value" in h:
        try:
            ignore = float(h["data ignore value"])
        except ValueError:
            raise GranuleError(hdr, "ENVI header: data ignore value is not a number") from None
        bad |= np.isclose(spectra, ignore, rtol=1e-5)
    spectra[bad] = np.nan
    names = _braced(h.get("spectra names", "")) if "spectra names" in h else []
    if len(names) != lines:
        names = [f"spectrum_{i}" for i in range(lines)]
    if "wavelength" not in h:
        raise GranuleError(hdr, "no wavelength list in the header")
    try:
        wl = np.array([float(v) for v in _braced(h["wavelength"]) if v], dtype=np.float64)
    except ValueError:
        raise GranuleError(hdr, "ENVI header: a wavelength is not a number") from None
    if wl.size != samples:
        raise GranuleError(hdr, f"{wl.size} wavelengths for {samples} bands")
    units = h.get("wavelength units", "").lower()
    if units.startswith("micro") or (not units and np.nanmax(wl) < 100):
        wl = wl * 1000.0
    return EnviLibrary(names, wl, spectra)
