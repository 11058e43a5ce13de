"""SIMULATED MASCS-like Mercury spectra from endmember mixtures (demo, fixtures, benchmark).

No global MASCS grid is available offline, so this simulator makes one, and says
so everywhere: product ids, file names and labels contain ``SIMULATED``.

Model (deliberately simple, seeded):

* endmembers: USGS splib07 (AVIRIS-95 resampling) olivine, enstatite, augite and
  labradorite when the library is found, plus an analytic dark opaque component
  (Mercury's darkening agent has no USGS counterpart).  Without the library,
  analytic endmember-like spectra are used instead (smooth continua with
  Gaussian bands near 1050 nm olivine, 920 nm orthopyroxene, 1000 nm
  clinopyroxene, a flat bright plagioclase) and the output says so.  USGS starts
  at 383 nm: below it the first 30 nm are extended at constant slope.
* units: ``n_units`` contiguous regions from the nearest of seeded centres on the
  sphere, with low-frequency boundary noise; each unit has Dirichlet mixing
  fractions; cells vary around them.  Linear mixing, then Mercury-like darkening
  (I/F about 0.02-0.1) and a space-weathering red slope, plus 0.5 % noise.
* footprints (for PDS3 products): one or more per cell with incidence/emission
  up to 89 deg (some must be filtered), a few saturated channels (fill 1e32)
  and a few all-fill spectra, as in real VIRS DDRs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SIMULATED = "SIMULATED"
FILL = 1e32
#: The simulated observation's first spectrum: a day of MESSENGER's orbital phase
#: (2011-03-18 .. 2015-04-30), never the simulator's clock: rows made from it must carry
#: dates the instrument could have observed (the units stage refuses any other).
SIMULATED_EPOCH = pd.Timestamp("2012-06-15T00:00:00")
#: USGS names (prefix match) used as endmembers, in this order.
USGS_ENDMEMBERS = ("Olivine GDS70", "Enstatite", "Augite", "Labradorite")
ENDMEMBER_NAMES = ("olivine", "orthopyroxene", "clinopyroxene", "plagioclase", "dark_opaque")
#: VIRS VIS channel centres (215.6..1054.1 nm, 362 channels as in the real DDR).
VIS_WAVELENGTHS = np.linspace(215.61188, 1054.0928, 362)


def default_usgs_path() -> Path | None:
    """The USGS library under the shared data folder, if present."""
    try:
        from epnml.config import load_settings

        p = load_settings().shared_data / "spectra" / "usgs_splib07" / "s07_AV95_envi.sli"
    except Exception:  # settings unavailable: fall back to analytic spectra
        return None
    return p if p.is_file() else None


def _gauss(wl: np.ndarray, centre: float, width: float, depth: float) -> np.ndarray:
    return 1.0 - depth * np.exp(-0.5 * ((wl - centre) / width) ** 2)


def analytic_endmembers(wl: np.ndarray) -> np.ndarray:
    """Endmember-like reflectances (not measurements): continua with mafic bands."""
    x = (wl - 700.0) / 1000.0
    return np.vstack([
        (0.45 + 0.25 * x) * _gauss(wl, 1050.0, 180.0, 0.45),   # olivine-like
        (0.35 + 0.15 * x) * _gauss(wl, 920.0, 90.0, 0.40),     # orthopyroxene-like
        (0.30 + 0.10 * x) * _gauss(wl, 1000.0, 110.0, 0.35),   # clinopyroxene-like
        0.65 + 0.05 * x - 0.1 * np.exp(-(wl - 260.0) / 120.0),  # plagioclase-like
        0.06 + 0.02 * x,                                        # dark opaque
    ])


def _dark(wl: np.ndarray) -> np.ndarray:
    return 0.06 + 0.02 * (wl - 700.0) / 1000.0


def endmembers(wl: np.ndarray, usgs_path: Path | None = None
               ) -> tuple[tuple[str, ...], np.ndarray, str]:
    """Endmember spectra on ``wl`` (nm) and where they come from (``usgs`` or ``analytic``)."""
    path = usgs_path if usgs_path is not None else default_usgs_path()
    if path is None or not Path(path).is_file():
        return ENDMEMBER_NAMES, analytic_endmembers(wl), "analytic"
    from epnml.ingest.readers.spectra import read_envi_sli

    lib = read_envi_sli(path)
    rows = []
    for prefix in USGS_ENDMEMBERS:
        idx = next((i for i, n in enumerate(lib.names)
                    if n.startswith(prefix) and np.isfinite(lib.spectra[i]).mean() > 0.9), None)
        if idx is None:
            return ENDMEMBER_NAMES, analytic_endmembers(wl), "analytic"
        ok = np.isfinite(lib.spectra[idx])
        src_wl, src = lib.wavelength_nm[ok], lib.spectra[idx][ok]
        spec = np.interp(wl, src_wl, src)
        lo = wl < src_wl[0]
        if lo.any():  # extend below 383 nm at the slope of the first 30 nm
            m = src_wl < src_wl[0] + 30.0
            slope = np.polyfit(src_wl[m], src[m], 1)[0] if m.sum() > 1 else 0.0
            spec[lo] = src[0] + slope * (wl[lo] - src_wl[0])
        rows.append(np.clip(spec, 0.01, None))
    rows.append(_dark(wl))
    return ENDMEMBER_NAMES, np.vstack(rows), "usgs"


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def units_map(lat: np.ndarray, lon: np.ndarray, n_units: int, seed: int) -> np.ndarray:
    """Contiguous units: nearest seeded centre with wavy (low-frequency) boundaries."""
    rng = np.random.default_rng(seed)
    n_centres = max(n_units * 3, n_units)
    c_lat = np.degrees(np.arcsin(rng.uniform(-0.95, 0.95, n_centres)))
    c_lon = rng.uniform(0.0, 360.0, n_centres)
    owner = np.arange(n_centres) % n_units
    p = _unit_vectors(np.asarray(lat), np.asarray(lon))
    c = _unit_vectors(c_lat, c_lon)
    lon_r, lat_r = np.radians(np.asarray(lon)), np.radians(np.asarray(lat))
    wave = 0.15 * np.sin(3 * lon_r + np.radians(40)) * np.cos(2 * lat_r)
    score = p @ c.T + wave[:, None] * rng.normal(size=n_centres)[None, :]
    return owner[np.argmax(score, axis=1)].astype(np.int64)


@dataclass
class SimulatedCells:
    """A SIMULATED gridded data set (one spectrum per cell) with its truth."""

    lat: np.ndarray
    lon: np.ndarray
    wavelength_nm: np.ndarray
    spectra: np.ndarray
    truth: np.ndarray
    fractions: np.ndarray
    endmember_source: str


def mix(truth: np.ndarray, wl: np.ndarray, seed: int, n_units: int,
        usgs_path: Path | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Spectra for cells of known unit: Dirichlet fractions per unit + cell scatter."""
    rng = np.random.default_rng(seed + 1)
    _, em, source = endmembers(wl, usgs_path)
    base = rng.dirichlet(np.full(em.shape[0], 0.8), size=n_units)
    base[:, -1] += 0.8  # the dark component is >= 44 % of every unit (Mercury is dark)
    base /= base.sum(axis=1, keepdims=True)
    frac = base[truth] * rng.lognormal(0.0, 0.15, size=(truth.size, em.shape[0]))
    frac /= frac.sum(axis=1, keepdims=True)
    refl = frac @ em
    slope = (wl / 700.0) ** rng.normal(0.9, 0.05, size=(truth.size, 1))
    albedo = 0.35 * rng.lognormal(0.0, 0.05, size=(truth.size, 1))
    iof = refl * slope * albedo
    iof *= 1.0 + rng.normal(0.0, 0.005, size=iof.shape)
    return iof, frac, source


def simulate_cells(rows: int | None = None, wavelength_nm: np.ndarray | None = None,
                   step_deg: float = 1.0, max_abs_lat: float = 80.0, n_units: int = 3,
                   seed: int = 2026, usgs_path: Path | None = None) -> SimulatedCells:
    """A SIMULATED global grid: ``rows`` occupied cells (default: all) of a step_deg grid."""
    from epnml.ml.units.grid import common_wavelengths

    wl = common_wavelengths() if wavelength_nm is None else np.asarray(wavelength_nm, float)
    n_lat, n_lon = int(round(2 * max_abs_lat / step_deg)), int(round(360 / step_deg))
    total = n_lat * n_lon
    rng = np.random.default_rng(seed)
    if rows is None:
        idx = np.arange(total)
    elif rows > total:
        raise ValueError(f"{rows} rows > {total} cells of a {step_deg} deg grid")
    else:
        idx = np.sort(rng.choice(total, rows, replace=False))
    lat = -max_abs_lat + (idx // n_lon + 0.5) * step_deg
    lon = (idx % n_lon + 0.5) * step_deg
    truth = units_map(lat, lon, n_units, seed)
    iof, frac, source = mix(truth, wl, seed, n_units, usgs_path)
    return SimulatedCells(lat, lon, wl, iof, truth, frac, source)


def simulate_matrix(rows: int = 55_399, channels: int = 396, seed: int = 2026,
                    usgs_path: Path | None = None) -> np.ndarray:
    """The benchmark matrix: SIMULATED (rows x channels) I/F (DLR size 55,399 x 396)."""
    from epnml.ml.units.grid import VIS_RANGE_NM

    wl = np.linspace(VIS_RANGE_NM[0], VIS_RANGE_NM[1], channels)
    return simulate_cells(rows, wl, seed=seed, usgs_path=usgs_path).spectra


# --------------------------------------------------------------------------- PDS3 writer

@dataclass(frozen=True)
class ColumnSpec:
    name: str
    data_type: str
    item_bytes: int
    items: int = 1
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def dtype(self) -> str:
        t = self.data_type
        if t == "CHARACTER":
            return f"S{self.item_bytes}"
        kind = "f" if "REAL" in t else ("u" if "UNSIGNED" in t else "i")
        return f">{kind}{self.item_bytes}"


def virs_columns(channels: int) -> list[ColumnSpec]:
    """The VIRS DDR columns our reader uses, in the real order and types."""
    inv = (("INVALID_CONSTANT", "1.E32"),)
    geo = (("MISSING_CONSTANT", "-1.E32"), ("INVALID_CONSTANT", "1.E32"))
    return [
        ColumnSpec("SC_TIME", "MSB_UNSIGNED_INTEGER", 4),
        ColumnSpec("SPECTRUM_NUMBER", "MSB_UNSIGNED_INTEGER", 2),
        ColumnSpec("SPECTRUM_UTC_TIME", "CHARACTER", 17),
        ColumnSpec("PHOTOM_IOF_SPECTRUM_DATA", "IEEE_REAL", 4, channels, inv),
        ColumnSpec("CHANNEL_WAVELENGTHS", "IEEE_REAL", 4, channels,
                   (("UNIT", '"NANOMETER"'),)),
        ColumnSpec("DATA_QUALITY_INDEX", "CHARACTER", 19),
        ColumnSpec("TARGET_LATITUDE_SET", "IEEE_REAL", 8, 5, geo),
        ColumnSpec("TARGET_LONGITUDE_SET", "IEEE_REAL", 8, 5, geo),
        ColumnSpec("INCIDENCE_ANGLE", "IEEE_REAL", 8, 1, geo),
        ColumnSpec("EMISSION_ANGLE", "IEEE_REAL", 8, 1, geo),
        ColumnSpec("PHASE_ANGLE", "IEEE_REAL", 8, 1, geo),
    ]


def write_pds3_table(label_path: Path, columns: Sequence[ColumnSpec],
                     data: dict[str, np.ndarray], keywords: dict[str, str],
                     fmt_name: str, fmt_dir: Path | None = None,
                     description: str | None = None) -> dict[str, Path]:
    """Write a detached PDS3 label, its ``^STRUCTURE`` .fmt and the binary table
    (``description``: the TABLE's, for tables that are not simulated)."""
    rows = len(next(iter(data.values())))
    start = 1
    fmt_lines = ["/* SIMULATED product format (epnml.ingest.simulate.units) */" if description
                 is None else "/* product format (epnml) */", ""]
    dtype_fields = []
    for i, col in enumerate(columns, start=1):
        nbytes = col.item_bytes * col.items
        fmt_lines += ["OBJECT        = COLUMN", f"   NAME           = {col.name}",
                      f"   COLUMN_NUMBER  = {i}", f"   BYTES          = {nbytes}",
                      f"   DATA_TYPE      = {col.data_type}", f"   START_BYTE     = {start}"]
        if col.items > 1:
            fmt_lines += [f"   ITEMS          = {col.items}",
                          f"   ITEM_BYTES     = {col.item_bytes}"]
        fmt_lines += [f"   {k:<15}= {v}" for k, v in col.extra]
        fmt_lines += ["END_OBJECT    = COLUMN", ""]
        dtype_fields.append((col.name, col.dtype, (col.items,) if col.items > 1 else ()))
        start += nbytes
    row_bytes = start - 1
    rec = np.zeros(rows, dtype=np.dtype([(n, t, s) for n, t, s in dtype_fields]))
    for col in columns:
        vals = np.asarray(data[col.name])
        rec[col.name] = vals.astype(col.dtype) if col.data_type != "CHARACTER" else \
            np.char.encode(vals.astype(str), "ascii")
    fmt_dir = fmt_dir or label_path.parent
    fmt_dir.mkdir(parents=True, exist_ok=True)
    fmt_path = fmt_dir / fmt_name.lower()  # volumes copied to Unix: lower-case files
    fmt_path.write_text("\r\n".join(fmt_lines) + "\r\n")
    dat_path = label_path.with_suffix(".dat")
    dat_path.write_bytes(rec.tobytes())
    head = {"PDS_VERSION_ID": "PDS3", "RECORD_TYPE": "FIXED_LENGTH",
            "RECORD_BYTES": str(row_bytes), "FILE_RECORDS": str(rows), **keywords,
            "^TABLE": f'"{dat_path.name.upper()}"'}
    lab = [f"{k:<31}= {v}" for k, v in head.items()]
    lab += ["", "OBJECT                         = TABLE",
            f"   COLUMNS                        = {len(columns)}",
            "   INTERCHANGE_FORMAT             = BINARY",
            f"   ROW_BYTES                      = {row_bytes}",
            f"   ROWS                           = {rows}",
            f'   DESCRIPTION                    = "{SIMULATED} MASCS-like VIRS spectra,\r\n'
            '       made by epnml.ingest.simulate.units; not spacecraft data."' if description
            is None else f'   DESCRIPTION                    = "{description}"',
            f'   ^STRUCTURE = "{fmt_name.upper()}"',
            "END_OBJECT                     = TABLE", "END", ""]
    label_path.write_text("\r\n".join(lab))
    return {"lbl": label_path, "dat": dat_path, "fmt": fmt_path}


def simulate_footprints(lon_range: tuple[float, float] = (330.0, 30.0),
                        lat_range: tuple[float, float] = (-40.0, 40.0), step_deg: float = 1.0,
                        per_cell: int = 1, n_units: int = 3, seed: int = 2026,
                        channels: int = 362, usgs_path: Path | None = None
                        ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """SIMULATED footprints (metadata, I/F with fill, wavelengths) over a lon/lat box.

    ``lon_range`` may wrap through 0 deg (330 -> 30).  About 10 % of footprints
    have incidence or emission >= 80 deg, 2 % are all fill, 1 % of channels are
    saturated (fill); metadata carries the true unit of each footprint.
    """
    rng = np.random.default_rng(seed)
    lon0, lon1 = lon_range
    width = (lon1 - lon0) % 360.0 or 360.0
    n_lon = max(1, int(round(width / step_deg)))
    n_lat = max(1, int(round((lat_range[1] - lat_range[0]) / step_deg)))
    cells_lat = lat_range[0] + (np.arange(n_lat) + 0.5) * step_deg
    cells_lon = np.mod(lon0 + (np.arange(n_lon) + 0.5) * step_deg, 360.0)
    la, lo = np.meshgrid(cells_lat, cells_lon, indexing="ij")
    la = np.repeat(la.ravel(), per_cell)
    lo = np.repeat(lo.ravel(), per_cell)
    n = la.size
    la = la + rng.uniform(-0.45, 0.45, n) * step_deg
    lo = np.mod(lo + rng.uniform(-0.45, 0.45, n) * step_deg, 360.0)
    wl = np.linspace(VIS_WAVELENGTHS[0], VIS_WAVELENGTHS[-1], channels)
    truth = units_map(la, lo, n_units, seed)
    iof, _, source = mix(truth, wl, seed, n_units, usgs_path)
    inc = rng.uniform(5.0, 75.0, n)
    emi = rng.uniform(0.0, 70.0, n)
    high = rng.random(n) < 0.10
    inc[high] = rng.uniform(80.0, 89.0, high.sum())
    phase = np.clip(inc + emi * rng.uniform(-1, 1, n), 0, 180)
    iof[rng.random(iof.shape) < 0.01] = FILL
    iof[rng.random(n) < 0.02] = FILL
    half = 0.1 * step_deg
    meta = pd.DataFrame({
        "lat": la, "lon": lo, "incidence": inc, "emission": emi, "phase": phase,
        "truth": truth, "endmembers": source,
        **{f"lat_c{i}": la + d for i, d in zip(range(1, 5), (-half, half, 0, 0), strict=True)},
        **{f"lon_c{i}": np.mod(lo + d, 360) for i, d in zip(range(1, 5), (0, 0, -half, half),
                                                             strict=True)},
    })
    return meta, iof, wl


def write_simulated_mascs(out_dir: Path | str, obs_id: str = "sim_26001_000000",
                          **kwargs: Any) -> dict[str, Path]:
    """A SIMULATED VIRS-VIS-like DDR (label + .fmt + .dat) in our reader's format."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta, iof, wl = simulate_footprints(**kwargs)
    n = len(meta)
    t0 = SIMULATED_EPOCH
    times = [(t0 + pd.Timedelta(seconds=i)).strftime("%y%jT%H:%M:%S.00") for i in range(n)]
    data: dict[str, np.ndarray] = {
        "SC_TIME": np.arange(n, dtype=np.uint32) + 1,
        "SPECTRUM_NUMBER": np.arange(n) % 65536,
        "SPECTRUM_UTC_TIME": np.array(times),
        "PHOTOM_IOF_SPECTRUM_DATA": iof.astype(np.float32),
        "CHANNEL_WAVELENGTHS": np.tile(wl.astype(np.float32), (n, 1)),
        "DATA_QUALITY_INDEX": np.array(["0000-0000-0000-2000"] * n),
        "TARGET_LATITUDE_SET": meta[["lat", "lat_c1", "lat_c2", "lat_c3", "lat_c4"]].to_numpy(),
        "TARGET_LONGITUDE_SET": meta[["lon", "lon_c1", "lon_c2", "lon_c3", "lon_c4"]].to_numpy(),
        "INCIDENCE_ANGLE": meta["incidence"].to_numpy(),
        "EMISSION_ANGLE": meta["emission"].to_numpy(),
        "PHASE_ANGLE": meta["phase"].to_numpy(),
    }
    stamp = t0.strftime("%Y-%m-%dT%H:%M:%S")
    end = (t0 + pd.Timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S")
    keywords = {
        "PRODUCT_ID": f'"{SIMULATED}_VIRSVD_{obs_id.upper()}_DAT"',
        "PRODUCT_TYPE": '"DDR"', "INSTRUMENT_HOST_NAME": '"MESSENGER"',
        "INSTRUMENT_ID": '"MASCS"', "DETECTOR_ID": '"VIRS"',
        "STANDARD_DATA_PRODUCT_ID": '"VIRSDVIS"', "TARGET_NAME": '"MERCURY"',
        "DATA_SET_ID": f'"{SIMULATED} (epnml.ingest.simulate.units, endmembers: '
                       f'{meta["endmembers"].iloc[0]})"',
        "START_TIME": stamp, "STOP_TIME": end,
    }
    paths = write_pds3_table(out / f"simulated_virsvd_{obs_id}.lbl", virs_columns(len(wl)),
                             data, keywords, "SIMVIRSVD.FMT")
    # truth kept apart so ``epnml ingest units DIR/*`` sees only the product files
    (out / "truth").mkdir(exist_ok=True)
    truth = out / "truth" / f"simulated_virsvd_{obs_id}_truth.csv"
    meta[["lat", "lon", "truth"]].to_csv(truth, index=False, float_format="%.4f")
    return {**paths, "truth": truth}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write a SIMULATED MASCS-like VIRS VIS product.")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--lon", type=float, nargs=2, default=(330.0, 30.0),
                    help="east longitude range (may wrap through 0)")
    ap.add_argument("--lat", type=float, nargs=2, default=(-40.0, 40.0))
    ap.add_argument("--step", type=float, default=1.0)
    ap.add_argument("--per-cell", type=int, default=1)
    ap.add_argument("--units", type=int, default=3)
    ap.add_argument("--usgs", type=Path, default=None, help="USGS .sli (default: shared data)")
    args = ap.parse_args(argv)
    paths = write_simulated_mascs(args.out, lon_range=tuple(args.lon), lat_range=tuple(args.lat),
                                  step_deg=args.step, per_cell=args.per_cell,
                                  n_units=args.units, seed=args.seed, usgs_path=args.usgs)
    for k, p in paths.items():
        print(f"{k}: {p}")


if __name__ == "__main__":
    main()
