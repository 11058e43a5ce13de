"""Filter MASCS footprints, resample them to a common wavelength grid and grid them.

D'Amore et al. (DLR case, Zenodo 10.5281/zenodo.7778172): VIRS VIS spectra on a
1 deg x 1 deg grid within +-80 deg latitude, per-cell median spectra over
260-1052 nm, incidence or emission >= 80 deg dropped and outliers clipped.
Medians keep one bad footprint from dragging a cell; clipping is robust (MAD).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: the DLR grid: 260..1050 nm every 2 nm = 396 channels (their 55,399 x 396 matrix).
VIS_RANGE_NM = (260.0, 1050.0)
VIS_STEP_NM = 2.0


def common_wavelengths(lo: float = VIS_RANGE_NM[0], hi: float = VIS_RANGE_NM[1],
                       step: float = VIS_STEP_NM) -> np.ndarray:
    """Channel centres ``lo, lo+step, ... < hi + step/2`` (default 396 channels)."""
    if not (step > 0 and hi > lo):
        raise ValueError(f"bad wavelength grid {lo}..{hi} step {step}")
    return np.arange(lo, hi + step / 2, step)


def resample(wavelength_nm: np.ndarray, spectra: np.ndarray, target_nm: np.ndarray
             ) -> np.ndarray:
    """Linear interpolation of each spectrum onto ``target_nm`` (NaN outside its valid range).

    Gaps (NaN channels) are bridged only inside a spectrum's valid span; no
    extrapolation, so a NIR-only spectrum stays NaN over the VIS channels.
    """
    wl = np.asarray(wavelength_nm, dtype=np.float64)
    x = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    order = np.argsort(wl)
    wl, x = wl[order], x[:, order]
    out = np.full((x.shape[0], target_nm.size), np.nan)
    finite = np.isfinite(x)
    full = finite.all(axis=1)
    if full.any():  # the common case, vectorised
        idx = np.clip(np.searchsorted(wl, target_nm), 1, wl.size - 1)
        w = (target_nm - wl[idx - 1]) / (wl[idx] - wl[idx - 1])
        vals = x[full][:, idx - 1] * (1 - w) + x[full][:, idx] * w
        inside = (target_nm >= wl[0]) & (target_nm <= wl[-1])
        vals[:, ~inside] = np.nan
        out[full] = vals
    for i in np.flatnonzero(~full):
        ok = finite[i]
        if ok.sum() < 2:
            continue
        xs, ys = wl[ok], x[i, ok]
        row = np.interp(target_nm, xs, ys)
        row[(target_nm < xs[0]) | (target_nm > xs[-1])] = np.nan
        out[i] = row
    return out


def footprint_mask(meta: pd.DataFrame, max_incidence: float = 80.0, max_emission: float = 80.0,
                   max_abs_lat: float = 80.0) -> np.ndarray:
    """Footprints kept: geometry known, incidence and emission < limits, |lat| <= limit."""
    lat = meta["lat"].to_numpy(dtype=float)
    lon = meta["lon"].to_numpy(dtype=float)
    inc = meta["incidence"].to_numpy(dtype=float)
    emi = meta["emission"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        return (np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= max_abs_lat)
                & (inc < max_incidence) & (emi < max_emission))


def clip_outliers(spectra: np.ndarray, k: float = 5.0, max_bad_fraction: float = 0.2
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Robust per-channel clipping: values beyond median +- k * 1.4826 MAD become NaN.

    Spectra with more than ``max_bad_fraction`` of their valid channels clipped
    are dropped entirely (returned mask False): they are usually off-limb,
    shadowed or mis-calibrated footprints, not surface variability.
    """
    x = np.array(spectra, dtype=np.float64, copy=True)
    if x.shape[0] < 3:
        return x, np.asarray(np.isfinite(x).any(axis=1))
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(x, axis=0)
            mad = 1.4826 * np.nanmedian(np.abs(x - med), axis=0)
        mad = np.where(np.isfinite(mad) & (mad > 0), mad, np.inf)
        bad = np.abs(x - med) > k * mad
    valid = np.isfinite(x)
    nvalid = valid.sum(axis=1)
    frac = np.where(nvalid > 0, (bad & valid).sum(axis=1) / np.maximum(nvalid, 1), 1.0)
    x[bad] = np.nan
    keep = np.asarray((frac <= max_bad_fraction) & np.isfinite(x).any(axis=1))
    return x, keep


@dataclass
class Grid:
    """Per-cell median spectra on a regular lat/lon grid (only cells with data)."""

    step_deg: float
    max_abs_lat: float
    wavelength_nm: np.ndarray
    #: one row per occupied cell: row (lat index from south), col (lon index from 0 E),
    #: lat, lon (cell centre, east 0..360), count (footprints in the median).
    cells: pd.DataFrame
    #: (n_cells, n_channels) median I/F.
    spectra: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """(n_lat, n_lon) of the full grid."""
        return (int(round(2 * self.max_abs_lat / self.step_deg)),
                int(round(360.0 / self.step_deg)))


def cell_index(lat: np.ndarray, lon: np.ndarray, step_deg: float, max_abs_lat: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Integer (row, col) of each point; rows from ``-max_abs_lat``, cols from 0 deg E."""
    n_lat = int(round(2 * max_abs_lat / step_deg))
    n_lon = int(round(360.0 / step_deg))
    row = np.floor((np.asarray(lat) + max_abs_lat) / step_deg).astype(np.int64)
    col = np.floor(np.mod(np.asarray(lon), 360.0) / step_deg).astype(np.int64)
    return np.clip(row, 0, n_lat - 1), np.clip(col, 0, n_lon - 1)


def grid_spectra(lat: np.ndarray, lon: np.ndarray, spectra: np.ndarray,
                 wavelength_nm: np.ndarray, step_deg: float = 1.0, max_abs_lat: float = 80.0
                 ) -> Grid:
    """Median spectrum of every occupied cell (footprint centres; NaN-aware)."""
    if not 0 < step_deg <= 30 or abs(360.0 / step_deg - round(360.0 / step_deg)) > 1e-9:
        raise ValueError(f"step_deg must divide 360 and be in (0, 30], got {step_deg}")
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    ok = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= max_abs_lat) \
        & np.isfinite(spectra).any(axis=1)
    lat, lon, x = lat[ok], lon[ok], np.asarray(spectra, dtype=float)[ok]
    row, col = cell_index(lat, lon, step_deg, max_abs_lat)
    n_lon = int(round(360.0 / step_deg))
    key = row * n_lon + col
    order = np.argsort(key, kind="stable")
    key, x = key[order], x[order]
    uniq, starts, counts = np.unique(key, return_index=True, return_counts=True)
    med = np.empty((uniq.size, x.shape[1]))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        singles = counts == 1
        med[singles] = x[starts[singles]]
        for i in np.flatnonzero(~singles):
            med[i] = np.nanmedian(x[starts[i]: starts[i] + counts[i]], axis=0)
    rows, cols = uniq // n_lon, uniq % n_lon
    cells = pd.DataFrame({
        "row": rows, "col": cols,
        "lat": -max_abs_lat + (rows + 0.5) * step_deg,
        "lon": (cols + 0.5) * step_deg,
        "count": counts,
    })
    return Grid(step_deg, max_abs_lat, np.asarray(wavelength_nm, dtype=float), cells, med)


def prepare_matrix(spectra: np.ndarray, min_channel_coverage: float = 0.9
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows and channels usable by ICA: channels finite in >= coverage of rows, full rows.

    Returns (matrix, row_mask, channel_mask); the masks index the input.
    """
    x = np.asarray(spectra, dtype=float)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError("need a non-empty (n_rows, n_channels) matrix")
    chan = np.isfinite(x).mean(axis=0) >= min_channel_coverage
    rows = np.isfinite(x[:, chan]).all(axis=1)
    return x[np.ix_(rows, chan)], rows, chan
