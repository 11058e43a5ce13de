"""Loaders of the REAL MESSENGER boundary catalogues and the Winslow et al. 2013 model shapes.

Why: the crossings case learns from real labels (Philpott et al. 2020) on simulated
magnetometer data; the simulator, the trainer and the evaluation must all read the
catalogues the same way.  The files live in the shared reference folder
(``load_settings().shared_data / "catalogues"``) and are never copied into the repository.

Frames and units: Philpott positions are MSO km; the pymess (Winslow 2013 + extension)
positions are Mercury radii in aberrated MSO.  The Winslow model surfaces are defined in
aberrated MSM: z_MSM = z_MSO - 479 km (northward dipole offset), R_M = 2440 km.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

R_MERCURY_KM = 2440.0
#: northward offset of the dipole centre from the planet centre (Anderson et al. 2011).
DIPOLE_OFFSET_KM = 479.0
#: Winslow et al. 2013 average bow shock: conic with focus at X0, semi-latus rectum p, eccentricity.
BS_X0_RM, BS_P_RM, BS_ECC = 0.5, 2.75, 1.04
#: Winslow et al. 2013 average magnetopause (Shue et al. 1997 form).
MP_RSS_RM, MP_ALPHA = 1.45, 0.5
#: mean solar-wind dynamic pressure behind the Winslow average shapes (nPa, their Table/ENLIL).
REFERENCE_PDYN_NPA = 14.3
BOUNDARIES = ("bow shock", "magnetopause")

PHILPOTT_FILE = "philpott2020_messenger_boundaries.csv"
ORBITS_FILE = "pymess_Orbits.dat"
WINSLOW_FILES = {"bow shock": "pymess_MessBS.dat", "magnetopause": "pymess_MessMP.dat"}
MANUAL_FILE = "sinp_messenger_orbits_0000_0200_manual.csv"
_EDGE_NUMBERS = tuple(range(1, 9))


def _catalogue_path(shared: Path, name: str) -> Path:
    """The catalogue file, accepting either the shared root or its ``catalogues`` folder."""
    shared = Path(shared)
    for cand in (shared / "catalogues" / name, shared / name):
        if cand.is_file():
            return cand
    raise ValueError(f"catalogue {name} not found under {shared} (looked in catalogues/)")


def _mtime_key(path: Path) -> tuple[str, float]:
    return str(path.resolve()), path.stat().st_mtime


# ---------------------------------------------------------------------------
# Philpott et al. 2020 boundary list


def load_boundaries(shared: Path) -> pd.DataFrame:
    """One row per orbit of the Philpott et al. 2020 list (REAL labels).

    Columns: ``orbit`` (int), ``t1..t8`` (Timestamps, NaT when absent), ``x1..x8``,
    ``y1..y8``, ``z1..z8`` (MSO km), ``complete`` (all eight present and in order).
    Orbits with missing edges are kept (flagged) so coverage statistics stay honest.
    A (rare) repeated boundary number in one orbit keeps its first occurrence.
    """
    path = _catalogue_path(shared, PHILPOTT_FILE)
    return _load_boundaries_cached(*_mtime_key(path)).copy()


@functools.lru_cache(maxsize=4)
def _load_boundaries_cached(path_str: str, mtime: float) -> pd.DataFrame:
    path = Path(path_str)
    try:
        raw = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV: {exc}") from exc
    cols = {c.strip().lower(): c for c in raw.columns}

    def find(*keys: str) -> str:
        for low, orig in cols.items():
            if all(k in low for k in keys):
                return orig
        raise ValueError(f"{path}: no column matching {' '.join(keys)!r} "
                         f"(columns: {list(raw.columns)})")

    c_time, c_num, c_orb = find("timestamp"), find("boundary"), find("orbit")
    c_x, c_y, c_z = find("x_mso"), find("y_mso"), find("z_mso")
    table = pd.DataFrame({
        "time": pd.to_datetime(raw[c_time], errors="coerce", format="ISO8601"),
        "number": pd.to_numeric(raw[c_num], errors="coerce"),
        "orbit": pd.to_numeric(raw[c_orb], errors="coerce"),
        "x": pd.to_numeric(raw[c_x], errors="coerce"),
        "y": pd.to_numeric(raw[c_y], errors="coerce"),
        "z": pd.to_numeric(raw[c_z], errors="coerce"),
    }).dropna(subset=["time", "number", "orbit"])
    if table.empty:
        raise ValueError(f"{path}: no parseable boundary rows")
    table = table[table["number"].isin(_EDGE_NUMBERS)]
    table = table.astype({"number": int, "orbit": int})
    table = table.drop_duplicates(subset=["orbit", "number"], keep="first")
    wide = table.pivot(index="orbit", columns="number")
    out = pd.DataFrame(index=pd.Index(sorted(table["orbit"].unique()), name="orbit"))
    for k in _EDGE_NUMBERS:
        out[f"t{k}"] = wide["time"][k] if k in wide["time"] else pd.NaT
    for axis in "xyz":
        for k in _EDGE_NUMBERS:
            out[f"{axis}{k}"] = (wide[axis][k] if k in wide[axis] else np.nan)
    times = out[[f"t{k}" for k in _EDGE_NUMBERS]]
    present = times.notna().all(axis=1)
    ordered = times.apply(lambda r: pd.DatetimeIndex(r).is_monotonic_increasing, axis=1)
    out["complete"] = present & ordered.astype(bool)
    out = out.reset_index()
    for k in _EDGE_NUMBERS:  # ns everywhere: labels.region_labels compares raw integers
        out[f"t{k}"] = pd.to_datetime(out[f"t{k}"]).astype("datetime64[ns]")
    return out


def edge_times(row: pd.Series | dict[str, Any]) -> list[pd.Timestamp]:
    """The eight edge times of one :func:`load_boundaries` row, in order."""
    return [pd.Timestamp(row[f"t{k}"]).as_unit("ns") for k in _EDGE_NUMBERS]


def edge_positions(row: pd.Series | dict[str, Any]) -> np.ndarray:
    """(8, 3) MSO km positions of one :func:`load_boundaries` row (NaN when absent)."""
    return np.array([[float(row[f"{a}{k}"]) for a in "xyz"] for k in _EDGE_NUMBERS])


# ---------------------------------------------------------------------------
# pymess orbit list and Winslow crossing intervals


def _date_hour(date: pd.Series, hour: pd.Series, path: Path) -> pd.Series:
    """``YYYYMMDD`` + decimal hour -> Timestamp (the pymess convention)."""
    day = pd.to_datetime(date.astype("Int64").astype(str), format="%Y%m%d", errors="coerce")
    out = day + pd.to_timedelta(pd.to_numeric(hour, errors="coerce") * 3600.0, unit="s")
    if out.isna().any():
        raise ValueError(f"{path}: unparseable date/hour at row {int(out.isna().argmax()) + 1}")
    return out.dt.round("ms").astype("datetime64[ns]")


def load_orbits(shared: Path) -> pd.DataFrame:
    """pymess orbit list: ``orbit`` (int), ``start``, ``end`` (apoapsis to apoapsis), ``hours``."""
    path = _catalogue_path(shared, ORBITS_FILE)
    return _load_orbits_cached(*_mtime_key(path)).copy()


@functools.lru_cache(maxsize=4)
def _load_orbits_cached(path_str: str, mtime: float) -> pd.DataFrame:
    path = Path(path_str)
    try:
        raw = pd.read_csv(path, sep=r"\s+", header=None, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable orbit list: {exc}") from exc
    if raw.shape[1] != 5:
        raise ValueError(f"{path}: expected 5 columns (orbit date0 hour0 date1 hour1), "
                         f"found {raw.shape[1]}")
    out = pd.DataFrame({
        "orbit": pd.to_numeric(raw[0], errors="raise").astype(int),
        "start": _date_hour(raw[1], raw[2], path),
        "end": _date_hour(raw[3], raw[4], path),
    })
    out["hours"] = (out["end"] - out["start"]).dt.total_seconds() / 3600.0
    return out.sort_values("orbit").reset_index(drop=True)


def load_winslow(shared: Path, boundary: str) -> pd.DataFrame:
    """Winslow et al. 2013 (+ extension) crossing intervals of one boundary (REAL).

    Columns: ``start``, ``end``, ``mid`` (Timestamps), ``direction`` ("inbound"/"outbound"),
    ``x, y, z`` (mid), ``xo, yo, zo`` (outer), ``xi, yi, zi`` (inner) in Mercury radii
    (aberrated MSO), ``source`` ("w" Winslow 2013, "j" extension).
    """
    if boundary not in WINSLOW_FILES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    path = _catalogue_path(shared, WINSLOW_FILES[boundary])
    try:
        raw = pd.read_csv(path, sep=r"\s+")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable crossing list: {exc}") from exc
    need = ["Date0", "ut0", "Date1", "ut1", "DateMid", "utMid", "ctype", "x", "y", "z",
            "xo", "yo", "zo", "xi", "yi", "zi", "source"]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    out = pd.DataFrame({
        "start": _date_hour(raw["Date0"], raw["ut0"], path),
        "end": _date_hour(raw["Date1"], raw["ut1"], path),
        "mid": _date_hour(raw["DateMid"], raw["utMid"], path),
        "direction": raw["ctype"].map({"i": "inbound", "o": "outbound"}),
    })
    for c in ("x", "y", "z", "xo", "yo", "zo", "xi", "yi", "zi"):
        out[c] = pd.to_numeric(raw[c], errors="coerce").astype("float64")
    out["source"] = raw["source"].astype(str)
    return out


def load_manual(shared: Path) -> pd.DataFrame:
    """The second annotator's (SINP/MSU) eight times per orbit, renumbered to Philpott orbits.

    The SINP file numbers its orbits 1..N from its own origin; its orbit 1 is Philpott orbit
    12.  The offset is not assumed: it is measured by matching each SINP orbit's first edge to
    the nearest Philpott edge-1 time, and must be one constant.  Columns: ``orbit``
    (Philpott numbering), ``sinp_orbit``, ``t1..t8``.
    """
    path = _catalogue_path(shared, MANUAL_FILE)
    try:
        raw = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV: {exc}") from exc
    if raw.shape[1] < 9:
        raise ValueError(f"{path}: expected an orbit column and eight time columns")
    out = pd.DataFrame({"sinp_orbit": pd.to_numeric(raw.iloc[:, 0], errors="raise")})
    for k in _EDGE_NUMBERS:
        out[f"t{k}"] = pd.to_datetime(raw.iloc[:, k], errors="coerce",
                                      format="ISO8601").astype("datetime64[ns]")
    ref = load_boundaries(shared)[["orbit", "t1"]].dropna().sort_values("t1")
    probe = out[["sinp_orbit", "t1"]].dropna().sort_values("t1")
    matched = pd.merge_asof(probe, ref.rename(columns={"t1": "ref_t1"}), left_on="t1",
                            right_on="ref_t1", direction="nearest",
                            tolerance=pd.Timedelta("2h"))
    offsets = (matched["orbit"] - matched["sinp_orbit"]).dropna().astype(int)
    if offsets.empty:
        raise ValueError(f"{path}: no orbit matches the Philpott list within 2 h")
    offset = int(offsets.mode().iloc[0])
    agree = float((offsets == offset).mean())
    if agree < 0.9:
        raise ValueError(f"{path}: orbit numbering offset not constant ({agree:.0%} agree)")
    out.insert(0, "orbit", (out["sinp_orbit"] + offset).astype(int))
    out["sinp_orbit"] = out["sinp_orbit"].astype(int)
    out.attrs["orbit_offset"] = offset
    return out


# ---------------------------------------------------------------------------
# Winslow et al. 2013 model surfaces


def pressure_scale(pdyn_npa: float) -> float:
    """Linear size factor of both surfaces for a dynamic pressure: (p / p_ref)^(-1/6).

    Pressure balance against a dipole (Chapman-Ferraro) gives the -1/6 power law.
    """
    if not pdyn_npa > 0:
        raise ValueError(f"dynamic pressure must be positive, got {pdyn_npa}")
    return float((pdyn_npa / REFERENCE_PDYN_NPA) ** (-1.0 / 6.0))


def bow_shock_distance(theta: Any, scale: float = 1.0) -> np.ndarray:
    """Distance [R_M] from the conic's focus (X0, 0, 0) to the bow shock at angle theta [rad]
    from +x; inf where the direction never meets the (hyperbolic) surface."""
    cos = np.cos(np.asarray(theta, dtype=float))
    den = 1.0 + BS_ECC * cos
    with np.errstate(divide="ignore"):
        r = np.where(den > 0, scale * BS_P_RM * BS_ECC / np.where(den > 0, den, 1.0), np.inf)
    return np.asarray(r, dtype=float)


def magnetopause_distance(theta: Any, scale: float = 1.0) -> np.ndarray:
    """Distance [R_M] from the dipole centre to the magnetopause at angle theta [rad] from +x."""
    cos = np.cos(np.asarray(theta, dtype=float))
    with np.errstate(divide="ignore"):
        base = np.where(1.0 + cos > 0, 2.0 / np.maximum(1.0 + cos, 1e-300), np.inf)
    return np.asarray(scale * MP_RSS_RM * base ** MP_ALPHA, dtype=float)


def mso_to_msm_rm(x_km: Any, y_km: Any, z_km: Any,
                  aberration_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MSO km -> (aberrated) MSM in Mercury radii; aberration rotates about z (hermpy sign)."""
    x = np.asarray(x_km, dtype=float) / R_MERCURY_KM
    y = np.asarray(y_km, dtype=float) / R_MERCURY_KM
    z = (np.asarray(z_km, dtype=float) - DIPOLE_OFFSET_KM) / R_MERCURY_KM
    if aberration_deg:
        a = np.radians(aberration_deg)
        x, y = x * np.cos(a) - y * np.sin(a), x * np.sin(a) + y * np.cos(a)
    return x, y, z


def normalized_distance(x_km: Any, y_km: Any, z_km: Any, boundary: str, *,
                        scale: float = 1.0, aberration_deg: float = 0.0) -> np.ndarray:
    """r / r_model of MSO positions for the Winslow surface: < 1 inside, 1 on it, > 1 outside.

    ``scale`` is the linear size factor (:func:`pressure_scale`).  Written in closed form so
    it is finite everywhere (downtail of the bow-shock asymptotes the ratio is <= 0: inside).
    """
    x, y, z = mso_to_msm_rm(x_km, y_km, z_km, aberration_deg)
    if boundary == "bow shock":
        dx = x - BS_X0_RM
        d = np.sqrt(dx ** 2 + y ** 2 + z ** 2)
        return np.asarray((d + BS_ECC * dx) / (scale * BS_P_RM * BS_ECC), dtype=float)
    if boundary == "magnetopause":
        r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.where(r > 0, x / np.where(r > 0, r, 1.0), 1.0)
        return np.asarray(r * (np.clip(1.0 + cos, 0.0, 2.0) / 2.0) ** MP_ALPHA
                          / (scale * MP_RSS_RM), dtype=float)
    raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
