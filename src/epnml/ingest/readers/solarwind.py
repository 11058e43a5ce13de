"""Solar-wind readers: every supported format becomes ONE standard frame.

The standard frame is what the ICME stage and the ML model consume, whatever the
source: a :class:`pandas.DataFrame` with

* a tz-naive UTC :class:`~pandas.DatetimeIndex` named ``time`` at a regular
  10-minute cadence (bin means, bins labelled at their start, missing bins kept
  as NaN rows so the index is regular);
* float64 columns :data:`FRAME_COLUMNS`, units: bx, by, bz [nT, GSM], bt [nT],
  vt [km/s], np [cm^-3], tp [K], beta [-], pdyn [Pa], texrat [-].

Gaps: after binning, runs of at most :data:`MAX_INTERP_BINS` missing bins
(i.e. gaps of at most one hour) that have data on both sides are linearly
interpolated; longer gaps and the edges stay NaN.  This keeps the model's
windows usable across telemetry drop-outs without inventing hours of data.

Derived quantities (computed from the 10-min means when a format lacks them):

* ``bt``: mean of |B| over the bin when vector samples are available (like the
  shared CSVs, where bt >= |<B>|), else |B| of the mean vector.
* ``beta`` = n k T / (B^2 / 2 mu0) with n [cm^-3 -> m^-3], T [K], B = bt [nT -> T]:
  the proton beta.  The shared 2019 CSVs agree with this to 0.3 % (median).
* ``pdyn`` = m_p n v^2 [Pa] (proton dynamic pressure; CSV agreement 1e-5).
* ``texrat`` = Tp / Texp with Texp = (0.031 v - 5.1)^2 * 1e3 K (Lopez & Freeman
  1986, low-speed branch) applied at ALL speeds.  We measured the shared CSVs
  (``wind_2019_10min.csv``, ``stereoa_2019_10min.csv``): their texrat follows this
  single branch to 0.1 % for v < 500 AND v >= 500 km/s (5,411 Wind rows above
  500 km/s; the two-branch form with (0.51 v - 142)^2 K above 500 km/s would
  differ by a factor ~8, which is also a discontinuity at 500 km/s).  Matching
  the CSVs keeps the model's inputs identical whatever the reader.

Values that are not physical become missing data BEFORE binning (so one 1e308
cannot turn a 10-min mean into 1e308), counted per quantity in
``frame.attrs["invalid_values"]``; see :data:`PHYSICAL_BOUNDS` and
:func:`_nonphysical`.  Declared fill values (a CDF's FILLVAL / VALIDMIN /
VALIDMAX, OMNI's all-nines of the declared field width) and empty CSV cells are
missing data, not counted.  A granule needs at least :data:`MIN_VALID_SAMPLES`
valid field and plasma samples, else GranuleError.

Work is bounded before it starts: the 10-min grid costs span / 10 min rows
whatever the file size, so every reader checks the time span, the sample counts
and a memory estimate against a :class:`~epnml.ingest.limits.ResourceLimits`
(default :data:`SOLARWIND_LIMITS`, declared by the icme stage) before resampling,
raising :class:`~epnml.ingest.limits.LimitExceeded`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epnml.ingest.limits import LimitExceeded, ResourceLimits
from epnml.ingest.stage import GranuleError

FRAME_COLUMNS: list[str] = ["bx", "by", "bz", "bt", "vt", "np", "tp", "beta", "pdyn", "texrat"]
#: the measured columns; the others are derived from them.
BASE_COLUMNS: list[str] = ["bx", "by", "bz", "bt", "vt", "np", "tp"]
DERIVED_COLUMNS: list[str] = ["beta", "pdyn", "texrat"]
UNITS: dict[str, str] = {
    "bx": "nT", "by": "nT", "bz": "nT", "bt": "nT", "vt": "km/s", "np": "cm^-3",
    "tp": "K", "beta": "1", "pdyn": "Pa", "texrat": "1",
}
CADENCE = pd.Timedelta("10min")
#: longest run of missing 10-min bins that is linearly interpolated (1 hour).
MAX_INTERP_BINS = 6

#: Per-granule limits of the solar-wind readers (declared as ``IcmeStage.limits``).
#: Chosen so that the real 21-year hourly OMNI2 run 1998-2018 as one listing (7,670
#: days, 1.1 M 10-min bins; measured 1.1 GB peak RSS through the icme stage, of which
#: ~0.35 GB is torch and the model) and two years of 1-min data (1.05 M samples;
#: 0.64 GB) pass as one granule, while three rows spanning a century (6.3 M bins,
#: 4.5 GB before this limit) are refused before resampling.  ``max_samples`` applies
#: both to the samples in the file(s) and to the 10-min bins after resampling.
SOLARWIND_LIMITS = ResourceLimits(
    max_span_days=22 * 366,
    max_samples=1_200_000,
    max_memory_mb=1000,
)
#: working-memory estimate, calibrated on the two runs above (measured ~400 B per
#: 10-min bin and ~25 B per parsed field of the file, rounded up).
_BYTES_PER_BIN = 500
_BYTES_PER_FIELD = 30
#: times a CSV may hold: what a nanosecond time index can represent.
_FIRST_TIME = pd.Timestamp("1678-01-01", tz="UTC")
_LAST_TIME = pd.Timestamp("2262-01-01", tz="UTC")
#: fewest valid field and plasma samples a granule must have.
MIN_VALID_SAMPLES = 2

#: Physical bounds of each quantity (low, high, low is allowed), generous for the
#: solar wind inside ~1.5 au: |B| 1e4 nT is ten times Helios' largest field at 0.3 au,
#: 5000 km/s well above the fastest CME measured in situ (~3000 km/s).
PHYSICAL_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "bx": (-1e4, 1e4, True), "by": (-1e4, 1e4, True), "bz": (-1e4, 1e4, True),
    "bt": (0.0, 1e4, True), "vt": (0.0, 5e3, False), "np": (0.0, 1e4, False),
    "tp": (0.0, 1e8, False), "beta": (0.0, 1e6, False), "pdyn": (0.0, 1e-5, False),
    "texrat": (0.0, 1e4, False),
}
#: Undeclared fill values: all-nines numbers (999.9, 9999.99, 99999.9, 9999999.) of at
#: least 3 nines, from this magnitude on (below it an all-nines value can be real:
#: 99.9 cm^-3, 999.9 km/s or 99999 K happen).  Values above the bound are out anyway.
NINES_FLOOR: dict[str, float] = {
    "bx": 999.0, "by": 999.0, "bz": 999.0, "bt": 999.0, "np": 999.0, "tp": 9_999_999.0,
    "beta": 999.0, "texrat": 999.0,
}
_NINES = np.array(sorted({(10.0**n - 1) / 10.0**d for n in range(3, 16) for d in range(0, 5)
                          if d < n}))

K_BOLTZMANN = 1.380649e-23  # J/K
M_PROTON = 1.67262192369e-27  # kg
MU0 = 1.25663706212e-6  # N/A^2

# ---------------------------------------------------------------------------
# physics helpers (shared with the simulator)


def expected_temperature(v: Any) -> Any:
    """Lopez & Freeman (1986) expected proton temperature [K] for speed v [km/s].

    Single low-speed branch at all speeds, because that is what the shared CSVs'
    ``texrat`` uses (see module docstring).
    """
    v = np.asarray(v, dtype=float)
    return (0.031 * v - 5.1) ** 2 * 1e3


def proton_beta(n: Any, t: Any, b: Any) -> Any:
    """Proton beta from n [cm^-3], T [K], |B| [nT]."""
    n, t, b = (np.asarray(x, dtype=float) for x in (n, t, b))
    with np.errstate(divide="ignore", invalid="ignore"):
        return n * 1e6 * K_BOLTZMANN * t / ((b * 1e-9) ** 2 / (2 * MU0))


def dynamic_pressure(n: Any, v: Any) -> Any:
    """Proton dynamic pressure m_p n v^2 [Pa] from n [cm^-3], v [km/s]."""
    n, v = np.asarray(n, dtype=float), np.asarray(v, dtype=float)
    return M_PROTON * n * 1e6 * (v * 1e3) ** 2


def temperature_from_thermal_speed(w: Any) -> Any:
    """T = m_p W^2 / (2 k) for the most-probable thermal speed W [km/s] (Wind SWE)."""
    w = np.asarray(w, dtype=float)
    return M_PROTON * (w * 1e3) ** 2 / (2 * K_BOLTZMANN)


def thermal_speed_from_temperature(t: Any) -> Any:
    """Inverse of :func:`temperature_from_thermal_speed`, W [km/s]."""
    t = np.asarray(t, dtype=float)
    return np.sqrt(2 * K_BOLTZMANN * t / M_PROTON) / 1e3


def derive_columns(frame: pd.DataFrame, overwrite: bool = True) -> pd.DataFrame:
    """Fill bt (if absent), beta, pdyn, texrat from the base columns, in place.

    ``overwrite=False`` only fills columns that are absent or NaN, so formats
    that carry their own derived values (the shared CSVs) keep them.
    """
    if "bt" not in frame or frame["bt"].isna().all():
        frame["bt"] = np.sqrt(frame["bx"] ** 2 + frame["by"] ** 2 + frame["bz"] ** 2)
    derived = {
        "beta": proton_beta(frame["np"], frame["tp"], frame["bt"]),
        "pdyn": dynamic_pressure(frame["np"], frame["vt"]),
        "texrat": frame["tp"].to_numpy(float) / expected_temperature(frame["vt"]),
    }
    for col, values in derived.items():
        if overwrite or col not in frame:
            frame[col] = values
        else:
            frame[col] = frame[col].where(frame[col].notna(), values)
    return frame


# ---------------------------------------------------------------------------
# non-physical values and resource limits


def _nonphysical(quantity: str, x: np.ndarray) -> np.ndarray:
    """True where a present (non-NaN) value of ``quantity`` cannot be physical.

    Rules: not finite (inf, -inf; NaN *text* arrives here as inf); outside
    :data:`PHYSICAL_BOUNDS` (this covers |x| >= 1e30 such as 1e308 or -1e31, negative
    or zero speeds, densities and temperatures, |B| > 1e4 nT); an all-nines value of at
    least :data:`NINES_FLOOR` (an undeclared fill value).
    """
    lo, hi, lo_ok = PHYSICAL_BOUNDS[quantity]
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(x) | (x > hi) | ((x < lo) if lo_ok else (x <= lo))
        floor = NINES_FLOOR.get(quantity)
        if floor is not None:
            big = ~bad & (np.abs(x) >= floor)
            if big.any():
                a = np.abs(x[big])
                j = np.searchsorted(_NINES, a)
                hit = np.zeros(a.shape, dtype=bool)
                for k in (j - 1, j):  # the two neighbouring all-nines numbers
                    cand = _NINES[np.clip(k, 0, len(_NINES) - 1)]
                    hit |= np.abs(a - cand) <= 2e-7 * cand  # float32 storage of 99999.9
                bad[big] = hit
    return bad & ~np.isnan(x)


class _Screen:
    """Turns non-physical values into NaN and counts them per quantity for one granule."""

    def __init__(self) -> None:
        self.invalid: dict[str, int] = {}
        #: values present (not empty or a declared fill value) that were checked.
        self.checked = 0

    @property
    def total_invalid(self) -> int:
        return sum(self.invalid.values())

    def __call__(self, quantity: str, values: Any, count_present: bool = True) -> np.ndarray:
        x = np.array(values, dtype="float64", copy=True)
        bad = _nonphysical(quantity, x)
        if count_present:
            self.checked += int((~np.isnan(x)).sum())
        n = int(bad.sum())
        if n:
            self.invalid[quantity] = self.invalid.get(quantity, 0) + n
            x[bad] = np.nan
        return x

    def frame(self, frame: pd.DataFrame, count_present: bool = True) -> pd.DataFrame:
        """Screen every known quantity column of ``frame`` in place."""
        for col in frame.columns:
            if col in PHYSICAL_BOUNDS:
                frame[col] = self(col, frame[col].to_numpy(), count_present)
        return frame

    def require_valid(self, source: Path | str, n_field: int, n_plasma: int,
                      no_physical_problem: str | None = None) -> None:
        """GranuleError unless there are MIN_VALID_SAMPLES field and plasma samples.

        ``no_physical_problem``: the reason to give when nothing was non-physical
        (e.g. "all values are fill values"), so that case keeps its own message.
        """
        n = min(n_field, n_plasma)
        if n >= MIN_VALID_SAMPLES:
            return
        if self.total_invalid == 0 and no_physical_problem:
            raise GranuleError(source, no_physical_problem)
        counts = (f"{self.total_invalid} of {self.checked} values were not physical"
                  if self.checked else "every value is missing")
        if n == 0:
            raise GranuleError(source, f"no valid solar-wind samples ({counts})")
        raise GranuleError(source, f"only {n} valid solar-wind sample(s) with both field and "
                           f"plasma, need {MIN_VALID_SAMPLES} ({counts})")


def _field_plasma_counts(data: pd.DataFrame) -> tuple[int, int]:
    """Samples with a complete field vector, and with a speed."""
    field = int(data[["bx", "by", "bz"]].notna().all(axis=1).sum()) if {
        "bx", "by", "bz"} <= set(data.columns) else 0
    plasma = int(data["vt"].notna().sum()) if "vt" in data.columns else 0
    return field, plasma


def _limit(maximum: float | None, source: Path | str, quantity: str, value: float,
           unit: str = "") -> None:
    if maximum is not None and value > maximum:
        raise LimitExceeded(source, quantity, value, maximum, unit)


def check_extent(source: Path | str, times: pd.DatetimeIndex, limits: ResourceLimits,
                 samples: int | None = None, fields_per_sample: int = 8) -> None:
    """Refuse, before resampling, a granule whose 10-min grid would be too large.

    The grid has span / 10 min rows whatever the file size (three rows 120 years
    apart are 6.3 M rows), so the span, the samples in the file, the bins after
    resampling and a memory estimate are checked against ``limits``.
    """
    samples = len(times) if samples is None else samples
    _limit(limits.max_samples, source, "samples in the file", samples)
    ns = pd.DatetimeIndex(times).dropna().as_unit("ns").asi8
    if len(ns) == 0:
        return
    span_ns = int(ns.max()) - int(ns.min())  # Python ints: 584 years do not overflow
    _limit(limits.max_span_days, source, "time span", round(span_ns / 86_400e9, 2), "days")
    bins = span_ns // int(CADENCE.value) + 1
    _limit(limits.max_samples, source, "10-min samples after resampling", bins)
    mb = (bins * _BYTES_PER_BIN + samples * fields_per_sample * _BYTES_PER_FIELD) / 2**20
    _limit(limits.max_memory_mb, source, "estimated working memory", round(mb, 1), "MB")


# ---------------------------------------------------------------------------
# regularisation


def _interpolate_short_gaps(frame: pd.DataFrame, max_bins: int = MAX_INTERP_BINS) -> pd.DataFrame:
    """Linearly interpolate interior NaN runs of <= max_bins; leave longer runs NaN."""
    out = frame.copy()
    for col in out.columns:
        s = out[col]
        isna = s.isna().to_numpy()
        if not isna.any() or isna.all():
            continue
        run_id = np.cumsum(~isna)  # NaN rows share the id of the preceding valid row
        run_len = pd.Series(isna.astype(int)).groupby(run_id).transform("sum").to_numpy()
        filled = s.interpolate(method="time", limit_area="inside")
        keep = isna & (run_len <= max_bins)
        out[col] = s.where(~keep, filled)
    return out


def regularize(samples: pd.DataFrame, source: Path | str) -> pd.DataFrame:
    """Bin samples (any cadence, DatetimeIndex) into the standard 10-min grid.

    Returns base/derived columns as present in ``samples``; missing bins are NaN
    and short gaps interpolated.  Raises GranuleError when nothing is left.
    """
    data = samples.dropna(how="all")
    if data.empty:
        raise GranuleError(source, "no valid (non-fill) samples")
    binned = data.resample(CADENCE, label="left", closed="left").mean()
    start = data.index.min().floor(CADENCE)
    end = data.index.max().floor(CADENCE)
    binned = binned.reindex(pd.date_range(start, end, freq=CADENCE, name="time"))
    binned = _interpolate_short_gaps(binned)
    return binned.astype("float64")


def _standardize(frame: pd.DataFrame, screen: _Screen) -> pd.DataFrame:
    """The standard frame; derived values that came out non-physical (e.g. texrat
    where Texp ~ 0 at 165 km/s) become NaN and are counted too, so no value of the
    frame is ever outside :data:`PHYSICAL_BOUNDS`."""
    out = frame.reindex(columns=FRAME_COLUMNS).astype("float64")
    if not isinstance(out.index, pd.DatetimeIndex):
        raise ValueError("frame index must be a DatetimeIndex")
    out.index = pd.DatetimeIndex(out.index.as_unit("ns"), name="time", freq="10min")
    screen.frame(out, count_present=False)
    out.attrs["invalid_values"] = dict(sorted(screen.invalid.items()))
    return out


def _check_monotonic(times: pd.Index | pd.Series, source: Path | str) -> None:
    """Reject (not sort) non-increasing times: they mean a corrupt or concatenated file."""
    t = pd.DatetimeIndex(times)
    if len(t) < 2:
        return
    ns = t.as_unit("ns").asi8
    bad = np.flatnonzero(ns[1:] <= ns[:-1])  # compared, not subtracted: no int64 overflow
    if bad.size:
        i = int(bad[0])
        kind = "duplicate" if ns[i + 1] == ns[i] else "non-increasing"
        raise GranuleError(
            source,
            f"{kind} times at record {i + 1}: {t[i + 1]} after {t[i]} "
            "(times must increase; rejected rather than sorted)",
        )


def _require_file(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise GranuleError(path, "file not found")
    if not path.is_file():
        raise GranuleError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise GranuleError(path, "empty file")
    return path


# ---------------------------------------------------------------------------
# CSV (the shared ../shared/data/solarwind/*.csv layout)

#: columns a CSV must have; bt, beta, pdyn, texrat are derived when absent, vt from
#: vx, vy, vz when the CSV has the components only.
CSV_REQUIRED = ["time", "bx", "by", "bz", "vt", "np", "tp"]


def _read_csv_table(path: Path, limits: ResourceLimits = SOLARWIND_LIMITS) -> pd.DataFrame:
    """The CSV's rows on a checked time index; cells kept as text where not numeric.

    Only empty cells become NaN here (missing data); "nan", "inf" or other text in a
    quantity column stays visible so that it can be counted as not physical.
    """
    path = _require_file(path)
    try:
        with warnings.catch_warnings():
            # more fields than the header: pandas would drop them with only a warning
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(path, comment="#", keep_default_na=False, na_values=[""],
                                index_col=False)
    except UnicodeDecodeError as exc:
        raise GranuleError(path, "not a readable CSV: not UTF-8 text") from exc
    except OSError as exc:  # the OS message would carry the server path
        raise GranuleError(path, f"unreadable file ({type(exc).__name__})") from exc
    except pd.errors.ParserWarning as exc:
        raise GranuleError(path, "not a readable CSV (rows with more fields than the "
                           "header)") from exc
    except (ValueError, OverflowError) as exc:  # ParserError, EmptyDataError, ...
        kind = "no header line" if isinstance(exc, pd.errors.EmptyDataError) else \
            "rows with a different number of fields" if isinstance(
                exc, pd.errors.ParserError) else type(exc).__name__
        raise GranuleError(path, f"not a readable CSV ({kind})") from exc
    table.columns = [str(c).strip().lower() for c in table.columns]
    if not {"time", "bx"} <= set(table.columns):
        table = _omni_named_csv(path, table)
    missing = [c for c in CSV_REQUIRED if c not in table.columns]
    if "vt" in missing and {"vx", "vy", "vz"} <= set(table.columns):
        missing.remove("vt")  # |V| is derived from the components
    elif "vt" in missing:
        missing[missing.index("vt")] = "vt (or all of vx, vy, vz)"
    if missing:
        raise GranuleError(path, f"missing required column(s): {', '.join(missing)}")
    if table.empty:
        raise GranuleError(path, "no data rows (header only)")
    if pd.api.types.is_numeric_dtype(table["time"]) or pd.api.types.is_bool_dtype(table["time"]):
        raise GranuleError(path, "the time column holds numbers, expected ISO 8601 times "
                           "(e.g. 2024-05-10 00:00:00)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": rows become NaT below
        times = pd.to_datetime(table["time"], errors="coerce", utc=True)
    bad = times.isna().to_numpy() | ~((times >= _FIRST_TIME) & (times < _LAST_TIME)).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise GranuleError(path, f"unparseable time (or none) at data row {row + 1} "
                           "(expected ISO 8601 in 1678-2261, e.g. 2024-05-10 00:00:00)")
    naive = times.dt.tz_convert("UTC").dt.tz_localize(None)
    table.index = pd.DatetimeIndex(naive, name="time").as_unit("ns")
    _check_monotonic(table.index, path)
    check_extent(path, table.index, limits, fields_per_sample=len(table.columns))
    return table


def _omni_named_csv(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    """A CSV whose header uses OMNIWeb word names (``YEAR,DOY,HR,MN,BX_GSE_GSM,BY_GSM,
    Speed,Proton_Density,...``, as CDAWeb and the SYMHnet storm files write them): columns
    renamed to the frame's roles by meaning (as OMNIWeb listings), the time built from
    year, day of year, hour and minute. Tables that are neither layout are left as they
    are (the caller names what is missing)."""
    roles: dict[str, str] = {}
    for column in table.columns:
        role = _omni_role(column.replace("_", " "))
        if role is not None and role not in roles.values():
            roles[column] = role
    if "time" in table.columns or not {"year", "doy", "hour"} <= set(roles.values()):
        return table
    renamed = table.rename(columns=roles)
    by_role = {role: i for i, role in enumerate(renamed.columns)}
    numbers = np.column_stack([pd.to_numeric(renamed[c], errors="coerce").to_numpy(float)
                               for c in renamed.columns])
    times = omni_times(path, numbers, by_role)
    renamed = renamed.drop(columns=[c for c in ("year", "doy", "hour", "minute")
                                    if c in renamed.columns])
    renamed.insert(0, "time", times.strftime("%Y-%m-%d %H:%M:%S"))
    return renamed


def csv_has_omni_words(path: Path) -> bool:
    """Whether a CSV's header names OMNI words (an OMNI listing saved as CSV), not the
    one-spacecraft layout; unreadable files are the reader's to report."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            header = next((line for line in handle if not line.startswith("#")), "")
    except OSError:
        return False
    words = {w.strip().lower() for w in header.split(",")}
    return "time" not in words and {"year", "doy"} <= words


def _csv_numbers(column: pd.Series) -> np.ndarray:
    """Numbers of a CSV column: empty cells NaN (missing); text that is not a number
    ("nan", "NaN", "n/a", "x") +inf, so it is counted as not physical."""
    numbers = np.array(pd.to_numeric(column, errors="coerce"), dtype="float64")
    text = column.notna().to_numpy() & np.isnan(numbers)
    numbers[text] = np.inf
    return numbers


def read_solarwind_csv(path: Path, limits: ResourceLimits = SOLARWIND_LIMITS) -> pd.DataFrame:
    """Read a CSV in the shared layout (``time,bx,...,texrat[,icme]``) into the standard frame.

    Extra columns (``icme``) are ignored; the CSV's own bt/beta/pdyn/texrat are
    kept (derived only where absent).  Already-10-min files come back unchanged
    apart from missing rows being added (and gaps of <= 1 h interpolated).
    The CSV layout declares no fill value: non-physical values are counted.
    """
    path = Path(path)
    table = _read_csv_table(path, limits)
    present = [c for c in FRAME_COLUMNS if c in table.columns]
    screen = _Screen()
    data = pd.DataFrame({c: screen(c, _csv_numbers(table[c])) for c in present},
                        index=table.index)
    if "vt" not in present:  # |V| from vx, vy, vz (checked by _read_csv_table)
        comps = np.stack([_csv_numbers(table[c]) for c in ("vx", "vy", "vz")])
        with np.errstate(over="ignore", invalid="ignore"):
            data["vt"] = screen("vt", np.sqrt(np.square(comps).sum(axis=0)))
        present.insert(present.index("np") if "np" in present else len(present), "vt")
    screen.require_valid(path, *_field_plasma_counts(data))
    base = [c for c in BASE_COLUMNS if c in present]
    empty = [c for c in base if data[c].isna().all()]
    if empty:
        bad = sum(screen.invalid.get(c, 0) for c in empty)
        raise GranuleError(path, f"column(s) without any valid value: {', '.join(empty)} "
                           f"({bad} value(s) not physical)")
    frame = regularize(data, path)
    frame = derive_columns(frame.reindex(columns=present), overwrite=False)
    return _standardize(frame, screen)


def read_solarwind_csv_labels(path: Path,
                              limits: ResourceLimits = SOLARWIND_LIMITS) -> pd.Series:
    """The CSV's ``icme`` 0/1 column on the index of :func:`read_solarwind_csv`.

    A 10-min bin is 1 when any sample in it is 1; bins without a sample take the
    previous label for up to an hour (like the interpolated data), else 0.
    Raises GranuleError when the file has no ``icme`` column.
    """
    path = Path(path)
    table = _read_csv_table(path, limits)
    if "icme" not in table.columns:
        raise GranuleError(path, "no 'icme' label column")
    lab = pd.to_numeric(table["icme"], errors="coerce")
    bad = lab.notna() & ~lab.isin([0, 1])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise GranuleError(path, f"'icme' must be 0/1 (data row {row + 1})")
    index = read_solarwind_csv(path, limits).index
    binned = lab.resample(CADENCE, label="left", closed="left").max().reindex(index)
    out = binned.ffill(limit=MAX_INTERP_BINS).fillna(0).astype("int8")
    out.name = "icme"
    return out


# ---------------------------------------------------------------------------
# OMNIWeb listings (.lst + .fmt)

_FMT_LINE = re.compile(r"^\s*(\d+)\s+(.+?)\s+([IiFfEe])(\d+)(?:\.(\d+))?\s*$")


@dataclass(frozen=True)
class _FmtItem:
    number: int
    name: str
    kind: str  # "I" or "F"/"E"
    width: int
    decimals: int

    @property
    def fills(self) -> tuple[float, ...]:
        """OMNI fill values: all nines in the field width minus one (F8.2 -> 9999.99),
        and in the full width (hourly 'Plasma beta' F6.2 -> 999.99)."""
        out = []
        for w in (self.width - 1, self.width):
            if self.kind == "I":
                out.append(float("9" * max(w, 1)))
            elif self.decimals == 0:
                out.append(float("9" * max(w - 1, 1)))
            else:
                digits = w - 1 - self.decimals
                if digits >= 1:
                    out.append(float("9" * digits + "." + "9" * self.decimals))
        return tuple(out)


def _parse_fmt(fmt: Path) -> list[_FmtItem]:
    fmt = _require_file(fmt)
    try:
        text = fmt.read_text(errors="strict")
    except UnicodeDecodeError as exc:
        raise GranuleError(fmt, "not a text OMNIWeb .fmt file") from exc
    except OSError as exc:
        raise GranuleError(fmt, f"unreadable file ({type(exc).__name__})") from exc
    items = []
    for line in text.splitlines():
        m = _FMT_LINE.match(line)
        if m:
            items.append(_FmtItem(int(m.group(1)), m.group(2).strip(), m.group(3).upper(),
                                  int(m.group(4)), int(m.group(5) or 0)))
    if not items:
        raise GranuleError(fmt, "no 'N NAME FORMAT' item lines: not an OMNIWeb .fmt file")
    numbers = [it.number for it in items]
    if numbers != list(range(1, len(items) + 1)):
        first = next(i for i, n in enumerate(numbers, start=1) if n != i)
        raise GranuleError(fmt, f"item numbers are not 1..{len(items)} (item {first} is "
                           f"numbered {numbers[first - 1]})")
    return items


def _omni_role(name: str) -> str | None:
    """Map an OMNIWeb item name to a frame role by meaning (case-insensitive)."""
    n = " ".join(name.lower().replace(",", " , ").split())
    first = n.split(" ")[0]
    if first == "year":
        return "year"
    if first in ("day", "doy") or n.startswith("day of year"):
        return "doy"
    if first in ("hour", "hr"):
        return "hour"
    if first in ("minute", "min", "mn"):
        return "minute"
    if "sigma" in n or "rms" in n or "std" in n:
        return None
    if first == "bx":
        return "bx"
    if first == "by":
        return "by" if "gsm" in n else "by_gse"
    if first == "bz":
        return "bz" if "gsm" in n else "bz_gse"
    if n.startswith(("field magnitude average", "scalar b", "|b|", "bt ")):
        return "bt"
    if n.startswith(("vector b magnitude", "magnitude of average field")):
        return "bvec"
    if first in ("vx", "vy", "vz") and "velocity" in n and "sigma" not in n:
        return first
    if "speed" in n and "alfven" not in n and "magnetosonic" not in n and "sound" not in n:
        if first not in ("vx", "vy", "vz") and "velocity" not in n.split(" , ")[0]:
            return "vt"
    if ("density" in n and ("proton" in n or "ion" in n or first == "density")) and (
        "alpha" not in n and "ratio" not in n and "na/np" not in n
    ):
        return "np"
    if "temperature" in n and "alpha" not in n and "ratio" not in n:
        return "tp"
    return None


def missing_omni_quantities(roles: dict[str, int]) -> list[str]:
    """What the model needs and cannot be derived from the columns present: |V| comes
    from Vx, Vy, Vz when there is no speed, |B| from the components, beta and dynamic
    pressure from n, T, V, B; the field components, density and temperature cannot."""
    need = {"bx": "BX", "by": "BY (GSM)", "bz": "BZ (GSM)",
            "np": "proton density", "tp": "temperature"}
    missing = [label for role, label in need.items() if role not in roles]
    if "vt" not in roles and not {"vx", "vy", "vz"} <= set(roles):
        have = [c.capitalize() for c in ("vx", "vy", "vz") if c in roles]
        missing.insert(3, "speed (or all of Vx, Vy, Vz velocity" +
                       (f"; has only {', '.join(have)})" if have else ")"))
    return missing


def _find_fmt(lst: Path) -> Path:
    for suffix in (".fmt", ".FMT"):
        cand = lst.with_suffix(suffix)
        if cand.exists():
            return cand
    raise GranuleError(lst, f"OMNIWeb listing without its format file (looked for {lst.stem}.fmt)")


def read_omniweb(lst: Path, fmt: Path | None = None,
                 limits: ResourceLimits = SOLARWIND_LIMITS) -> pd.DataFrame:
    """Read an OMNIWeb listing into the standard frame, driven by its ``.fmt`` file.

    Supports the HRO 1-/5-min listings (Year, Day, Hour, Minute) and the hourly
    OMNI2 listings (Year, DOY, Hour).  Columns are found by meaning (BX, BY/BZ in
    GSM, field magnitude average or scalar B, speed, proton density,
    temperature); OMNI's own beta / flow pressure are ignored and recomputed
    (OMNI's include electrons/alphas).  Fill values (all nines: 9999.99,
    99999.9, 999.99, 9999999., ...) of the declared field width become NaN; other
    non-physical values are counted.  Hourly values are the hour's mean and are
    placed in the 10-min bin holding the hour's centre (hh:30).
    """
    lst = _require_file(Path(lst))
    fmt = _find_fmt(lst) if fmt is None else _require_file(Path(fmt))
    items = _parse_fmt(fmt)
    roles: dict[str, int] = {}
    for k, it in enumerate(items):
        role = _omni_role(it.name)
        if role and role not in roles:
            roles[role] = k
    missing = [r for r in ("year", "doy", "hour") if r not in roles]
    missing += missing_omni_quantities(roles)
    if missing:
        hint = ""
        if "by" not in roles and "by_gse" in roles:
            hint = " (the listing has BY/BZ in GSE only; select the GSM components)"
        raise GranuleError(fmt, f"missing required OMNI item(s): {', '.join(missing)}{hint}")

    try:
        raw_lines = lst.read_text(errors="strict").splitlines()
    except UnicodeDecodeError as exc:
        raise GranuleError(lst, "not a text OMNIWeb listing") from exc
    except OSError as exc:
        raise GranuleError(lst, f"unreadable file ({type(exc).__name__})") from exc
    lines = [ln for ln in raw_lines if ln.strip()]
    if not lines:
        raise GranuleError(lst, "no data lines")
    _limit(limits.max_samples, lst, "samples in the file", len(lines))
    rows = _split_omni_lines(lst, lines, items)

    values = np.full(rows.shape, np.nan)
    for k, it in enumerate(items):
        column = rows[:, k]
        fill_mask = np.zeros(column.shape, dtype=bool)
        for fill in it.fills:
            fill_mask |= np.isclose(np.abs(column), fill, rtol=0, atol=10.0 ** -it.decimals / 2)
        values[:, k] = np.where(fill_mask, np.nan, column)
    return omni_values_to_frame(lst, values, roles, limits)


def omni_times(source: Path | str, values: np.ndarray, roles: dict[str, int]) -> pd.DatetimeIndex:
    """Times of OMNI rows from their year, day-of-year, hour (and minute) columns."""
    def col(role: str) -> np.ndarray:
        return values[:, roles[role]]

    year, doy, hour = col("year"), col("doy"), col("hour")
    minute = col("minute") if "minute" in roles else np.zeros(len(values))
    stamp = np.stack([year, doy, hour, minute])
    if not np.isfinite(stamp).all():
        raise GranuleError(source, "time columns contain fill values or text that is not a "
                           "number")
    if ((year < 1950) | (year > 2100) | (doy < 1) | (doy > 366) | (hour < 0) | (hour > 23)
            | (minute < 0) | (minute > 59)).any():
        raise GranuleError(source, "time columns out of range (year 1950-2100, DOY 1-366, "
                           "hour 0-23, minute 0-59)")
    years = year.astype("int64") - 1970
    times = (years.astype("datetime64[Y]").astype("datetime64[ns]")
             + ((doy - 1) * 86400 + hour * 3600 + minute * 60).astype("int64")
             .astype("timedelta64[s]"))
    return pd.DatetimeIndex(times, name="time")


def omni_values_to_frame(source: Path | str, values: np.ndarray, roles: dict[str, int],
                         limits: ResourceLimits = SOLARWIND_LIMITS) -> pd.DataFrame:
    """The standard frame from OMNI rows whose declared fill values are already NaN.

    ``roles`` maps year, doy, hour[, minute], bx, by, bz, vt or vx/vy/vz, np, tp[, bt]
    to column numbers of ``values``.  Derives |V| from the velocity components when
    there is no speed, |B| from the field components where there is no magnitude.
    """
    index = omni_times(source, values, roles)
    _check_monotonic(index, source)
    check_extent(source, index, limits, fields_per_sample=values.shape[1])

    screen = _Screen()
    data = pd.DataFrame(index=index)
    for role in ("bx", "by", "bz", "vt", "np", "tp", "bt"):
        if role in roles:
            data[role] = screen(role, values[:, roles[role]])
    if "vt" not in roles:  # |V| from the components (missing where one is missing)
        with np.errstate(over="ignore", invalid="ignore"):
            comps = np.stack([values[:, roles[c]] for c in ("vx", "vy", "vz")])
            data["vt"] = screen("vt", np.sqrt(np.square(comps).sum(axis=0)))
    screen.require_valid(source, *_field_plasma_counts(data),
                         no_physical_problem="all field or all plasma values are fill values")

    step: pd.Timedelta | None = None
    if len(index) > 1:
        step = pd.Timedelta(np.median(np.diff(index.as_unit("ns").asi8)), unit="ns")
        if step > CADENCE:
            data.index = data.index + step / 2  # interval mean -> centre of the interval
    frame = regularize(data, source)
    if "bt" not in frame:
        frame["bt"] = np.nan
    frame["bt"] = frame["bt"].where(
        frame["bt"].notna(), np.sqrt(frame["bx"] ** 2 + frame["by"] ** 2 + frame["bz"] ** 2))
    out = _standardize(derive_columns(frame), screen)
    out.attrs["source_cadence_s"] = float(step.total_seconds()) if step is not None else None
    return out


def _omni_number(text: str) -> float:
    """A listing field: blank -> NaN (missing); "nan" or "NaN" -> +inf (not physical)."""
    text = text.strip()
    if not text:
        return float("nan")
    value = float(text)
    return float("inf") if np.isnan(value) else value


def _split_omni_lines(lst: Path, lines: list[str], items: list[_FmtItem]) -> np.ndarray:
    """Numbers of each line: its whitespace tokens when there is one per item, else
    fixed-width FORTRAN fields (values may touch, e.g. ``-123.4-999.9``).

    Line by line into one preallocated array: a 21-year hourly OMNI2 listing has
    10 M fields, too many to hold as Python strings at once.
    """
    n = len(items)
    edges = np.cumsum([0] + [it.width for it in items])
    out = np.empty((len(lines), n))
    for i, ln in enumerate(lines):
        tokens = ln.split()
        if len(tokens) == n:
            try:
                out[i] = [_omni_number(x) for x in tokens]
                continue
            except ValueError:
                pass
        if len(ln.rstrip()) > edges[-1]:
            raise GranuleError(lst, f"line {i + 1} is longer than the .fmt's {edges[-1]} "
                               "characters: listing and format file do not match")
        try:
            out[i] = [_omni_number(ln[edges[k]:edges[k + 1]]) for k in range(n)]
        except ValueError as exc:
            raise GranuleError(lst, f"line {i + 1} does not match the .fmt ({n} items): "
                               "a field is not a number") from exc
    return out


# ---------------------------------------------------------------------------
# CDAWeb Wind MFI H0 + SWE H1 CDF pair

#: candidate variable sets, in order of preference.
_MFI_B_VARS = ("BGSM", "BGSMc", "B3GSM", "BGSMa")
_MFI_BMAG_VARS = ("BF1", "BF1c", "B3F1")
_SWE_SETS: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    # (label, velocity var(s) [components or a vector], thermal speed, density)
    ("nonlin", ("Proton_VX_nonlin", "Proton_VY_nonlin", "Proton_VZ_nonlin"),
     "Proton_W_nonlin", "Proton_Np_nonlin"),
    ("moment", ("Proton_VX_moment", "Proton_VY_moment", "Proton_VZ_moment"),
     "Proton_W_moment", "Proton_Np_moment"),
    ("k0", ("V_GSE",), "THERMAL_SPD", "Np"),
)

_CDF_MAGIC = (b"\xcd\xf3\x00\x01", b"\xcd\xf2\x60\x02", b"\x00\x00\xff\xff", b"\xcc\xcc\x00\x01")


def _is_cdf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in _CDF_MAGIC
    except OSError:
        return False


#: spacecraft epochs a CDF may hold (decoding garbage epochs gives any year).
_FIRST_CDF_TIME = np.datetime64("1950-01-01", "ns")
_LAST_CDF_TIME = np.datetime64("2100-01-01", "ns")


@dataclass
class _CdfFile:
    """An opened CDF with the facts needed to classify and pair it."""

    path: Path
    cdf: Any
    variables: list[str]
    globals: dict[str, Any]
    limits: ResourceLimits = SOLARWIND_LIMITS

    def gattr(self, name: str) -> str:
        for key, value in self.globals.items():
            if key.lower() == name.lower():
                if isinstance(value, list | tuple | np.ndarray):
                    return " ".join(str(v) for v in value)
                return str(value)
        return ""

    @property
    def kind(self) -> str | None:
        text = " ".join(self.gattr(k) for k in ("Descriptor", "Logical_source", "Data_type"))
        text = text.upper()
        if "MFI" in text or any(v in self.variables for v in _MFI_B_VARS):
            return "mfi"
        if "SWE" in text or any(s[3] in self.variables for s in _SWE_SETS):
            return "swe"
        return None

    @property
    def spacecraft(self) -> str:
        src = self.gattr("Source_name") or self.gattr("Logical_source")
        return re.split(r"[>_\s]", src.strip().lower())[0] if src.strip() else ""

    @property
    def simulated(self) -> bool:
        return "simulated" in (self.gattr("Simulated") + self.gattr("TEXT")).lower()


def _open_cdf(path: Path, limits: ResourceLimits = SOLARWIND_LIMITS) -> _CdfFile:
    import cdflib

    path = _require_file(Path(path))
    if not _is_cdf(path):
        raise GranuleError(path, "not a CDF file (bad magic number)")
    try:
        cdf = cdflib.CDF(str(path))
        info = cdf.cdf_info()
        variables = list(info.zVariables) + list(info.rVariables)
        gattrs = cdf.globalattsget()
    except Exception as exc:  # cdflib raises many types on corrupt/truncated files
        raise GranuleError(path, f"unreadable CDF ({type(exc).__name__})") from exc
    return _CdfFile(path, cdf, variables, dict(gattrs), limits)


def _cdf_attrs(f: _CdfFile, name: str) -> dict[str, Any]:
    try:
        return dict(f.cdf.varattsget(name))
    except Exception as exc:
        raise GranuleError(f.path, f"unreadable attributes of {name} "
                           f"({type(exc).__name__})") from exc


def _cdf_var(f: _CdfFile, name: str) -> tuple[np.ndarray, dict[str, Any]]:
    """A variable's values and attributes; its record count is checked against the
    limits BEFORE reading (a small compressed CDF can declare billions of records)."""
    try:
        inq = f.cdf.varinq(name)
        records = int(inq.Last_Rec) + 1 if inq.Rec_Vary else 1
        per_record = int(np.prod([int(d) for d in inq.Dim_Sizes])) if inq.Dim_Sizes else 1
    except Exception as exc:
        raise GranuleError(f.path, f"unreadable variable {name} ({type(exc).__name__})") from exc
    _limit(f.limits.max_samples, f.path, f"records of {name}", records)
    if per_record > 3:
        raise GranuleError(f.path, f"{name} has {per_record} values per record, expected 1 or 3")
    try:
        data = np.asarray(f.cdf.varget(name))
    except Exception as exc:
        raise GranuleError(f.path, f"unreadable variable {name} ({type(exc).__name__})") from exc
    if data.dtype.kind not in "iufc":
        raise GranuleError(f.path, f"variable {name} is not numeric")
    return data, _cdf_attrs(f, name)


def _attr_number(attrs: dict[str, Any], key: str) -> np.ndarray | None:
    """A numeric ISTP attribute (FILLVAL, VALIDMIN, VALIDMAX), or None if absent or not
    a number (then it declares nothing)."""
    value = attrs.get(key)
    if value is None:
        return None
    try:
        out = np.real(np.asarray(value)).astype("float64")
    except (TypeError, ValueError):
        return None
    return out if out.size in (1, 3) else None


def _mask_fill(values: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """NaN where FILLVAL or outside [VALIDMIN, VALIDMAX]: missing data the file
    declares, not counted.  (Non-finite values are left for the screen to count.)"""
    x = np.real(values).astype("float64")
    fill = _attr_number(attrs, "FILLVAL")
    vmin, vmax = _attr_number(attrs, "VALIDMIN"), _attr_number(attrs, "VALIDMAX")
    try:
        with np.errstate(invalid="ignore"):
            if fill is not None:
                x = np.where(np.isclose(x, fill, rtol=1e-6, atol=0.0), np.nan, x)
            if vmin is not None:
                x = np.where(x < vmin, np.nan, x)
            if vmax is not None:
                x = np.where(x > vmax, np.nan, x)
    except ValueError:  # attribute shape does not broadcast: it declares nothing usable
        return np.real(values).astype("float64")
    return x


def _cdf_times(f: _CdfFile, data_var: str) -> pd.DatetimeIndex:
    """Times of ``data_var``'s records via its DEPEND_0; fill epochs become NaT."""
    import cdflib

    attrs = _cdf_attrs(f, data_var)
    epoch_name = str(attrs.get("DEPEND_0") or "Epoch")
    if epoch_name not in f.variables:
        raise GranuleError(f.path, f"time variable {epoch_name} (DEPEND_0 of {data_var}) missing")
    raw, eattrs = _cdf_var(f, epoch_name)
    raw = np.atleast_1d(raw)
    if raw.size == 0:
        raise GranuleError(f.path, f"time variable {epoch_name} has no records")
    if raw.ndim != 1:
        raise GranuleError(f.path, f"time variable {epoch_name} has shape {raw.shape}")
    valid = np.ones(raw.shape[0], dtype=bool)
    fill = _attr_number(eattrs, "FILLVAL")
    if np.iscomplexobj(raw):  # CDF_EPOCH16
        valid &= np.isfinite(raw.real) & (raw.real > 0)
    elif raw.dtype.kind in "iu":  # CDF_TIME_TT2000: ns from J2000, negative before 2000
        valid &= raw != np.iinfo(np.int64).min
        if fill is not None and fill.size == 1 and np.isfinite(fill).all():
            valid &= raw.astype("float64") != float(fill.flat[0])
    else:  # CDF_EPOCH: ms from year 0
        values = raw.astype("float64")
        if fill is not None and fill.size == 1:
            valid &= ~np.isclose(values, float(fill.flat[0]), rtol=1e-9)
        valid &= np.isfinite(values) & (values > 0)
    times = np.full(raw.shape[0], np.datetime64("NaT"), dtype="datetime64[ns]")
    if valid.any():
        try:
            with np.errstate(all="ignore"):
                times[valid] = np.asarray(cdflib.cdfepoch.to_datetime(raw[valid]),
                                          dtype="datetime64[ns]")
        except Exception as exc:
            raise GranuleError(f.path, f"cannot decode {epoch_name} (not CDF epochs)") from exc
        decoded = times[valid]
        if ((decoded < _FIRST_CDF_TIME) | (decoded >= _LAST_CDF_TIME)).any():
            raise GranuleError(f.path, f"{epoch_name} has times outside 1950-2099: not the "
                               "epochs of spacecraft data")
    return pd.DatetimeIndex(times, name="time")


def _cdf_time_range(f: _CdfFile) -> tuple[pd.Timestamp, pd.Timestamp]:
    var = _mfi_vars(f)[0] if f.kind == "mfi" else _swe_vars(f)[1]
    t = _cdf_times(f, var).dropna()
    if t.empty:
        raise GranuleError(f.path, "no valid times")
    return t.min(), t.max()


def _mfi_vars(f: _CdfFile) -> tuple[str, str | None]:
    b = next((v for v in _MFI_B_VARS if v in f.variables), None)
    if b is None:
        raise GranuleError(f.path, "MFI CDF lacks a GSM field vector variable "
                           f"(one of {', '.join(_MFI_B_VARS)})")
    bmag = next((v for v in _MFI_BMAG_VARS if v in f.variables), None)
    return b, bmag


def _swe_vars(f: _CdfFile) -> tuple[tuple[str, ...], str, str]:
    for _label, vel, w, n in _SWE_SETS:
        if all(v in f.variables for v in (*vel, w, n)):
            return vel, w, n
    wanted = "; ".join(", ".join((*vel, w, n)) for _, vel, w, n in _SWE_SETS)
    have = ", ".join(f.variables[:20]) or "none"
    more = f" and {len(f.variables) - 20} more" if len(f.variables) > 20 else ""
    raise GranuleError(f.path, f"SWE CDF lacks proton variables: need one of [{wanted}] "
                       f"(file has: {have}{more})")


def _timed(f: _CdfFile, data: pd.DataFrame) -> pd.DataFrame:
    """Drop records without a valid time; times must increase; extent within limits."""
    data = data[data.index.notna()]
    _check_monotonic(data.index, f.path)
    check_extent(f.path, pd.DatetimeIndex(data.index), f.limits, fields_per_sample=5)
    return data


def _read_mfi(f: _CdfFile, screen: _Screen) -> pd.DataFrame:
    bname, bmag_name = _mfi_vars(f)
    raw, attrs = _cdf_var(f, bname)
    if raw.ndim != 2 or raw.shape[1] != 3:
        raise GranuleError(f.path, f"{bname} has shape {raw.shape}, expected (N, 3)")
    times = _cdf_times(f, bname)
    if len(times) != len(raw):
        raise GranuleError(f.path, f"{bname} has {len(raw)} records but its time has "
                           f"{len(times)}")
    declared = _mask_fill(raw, attrs)
    if np.isnan(declared).all():
        fill = _attr_number(attrs, "FILLVAL")
        shown = f"{float(fill.flat[0]):g}" if fill is not None else "none"
        raise GranuleError(f.path, f"all {bname} values are fill (FILLVAL {shown}) "
                           "or outside VALIDMIN/VALIDMAX")
    data = pd.DataFrame({c: screen(c, declared[:, k]) for k, c in enumerate(("bx", "by", "bz"))},
                        index=times)
    with np.errstate(over="ignore", invalid="ignore"):
        bt = np.sqrt(np.square(data[["bx", "by", "bz"]].to_numpy()).sum(axis=1))
    if bmag_name is not None:
        mraw, mattrs = _cdf_var(f, bmag_name)
        if mraw.shape == (len(raw),):
            mag = screen("bt", _mask_fill(mraw, mattrs))
            bt = np.where(np.isfinite(mag), mag, bt)
    data["bt"] = bt
    return _timed(f, data)


def _read_swe(f: _CdfFile, screen: _Screen) -> pd.DataFrame:
    vel, wname, nname = _swe_vars(f)
    times = _cdf_times(f, nname)
    if len(vel) == 3:
        comps = [_mask_fill(*_cdf_var(f, v)) for v in vel]
        if len({c.shape for c in comps}) != 1 or comps[0].ndim != 1:
            raise GranuleError(f.path, "SWE velocity components have different shapes")
        v = np.stack(comps, axis=1)
    else:
        raw, attrs = _cdf_var(f, vel[0])
        if raw.ndim != 2 or raw.shape[1] != 3:
            raise GranuleError(f.path, f"{vel[0]} has shape {raw.shape}, expected (N, 3)")
        v = _mask_fill(raw, attrs)
    w = _mask_fill(*_cdf_var(f, wname))
    dens = _mask_fill(*_cdf_var(f, nname))
    if not (len(v) == len(w) == len(dens) == len(times)) or w.ndim != 1 or dens.ndim != 1:
        raise GranuleError(f.path, "SWE variables have different record counts")
    if np.isnan(v).all() and np.isnan(w).all() and np.isnan(dens).all():
        raise GranuleError(f.path, f"all of {', '.join((*vel, wname, nname))} are fill values "
                           "or outside VALIDMIN/VALIDMAX")
    with np.errstate(over="ignore", invalid="ignore"):
        speed = np.sqrt((v**2).sum(axis=1))  # an inf component gives inf: counted
        # T from the thermal speed; W <= 0 is not physical, passed on as T = -1 to be counted
        tp = np.where(w > 0, temperature_from_thermal_speed(np.abs(w)), -1.0)
    tp[np.isnan(w)] = np.nan
    data = pd.DataFrame({"vt": screen("vt", speed), "np": screen("np", dens),
                         "tp": screen("tp", tp)}, index=times)
    return _timed(f, data)


def read_cdaweb_wind(mfi: Path, swe: Path,
                     limits: ResourceLimits = SOLARWIND_LIMITS) -> pd.DataFrame:
    """Read a CDAWeb Wind MFI H0 + SWE H1 CDF pair into the standard frame.

    Driven by variable names and ISTP attributes, not positions: B from
    ``BGSM`` (or BGSMc/B3GSM), bt from ``BF1`` when present else the mean of |B|
    over the bin; proton speed |V| from ``Proton_V{X,Y,Z}_nonlin`` or ``_moment``
    (or K0 ``V_GSE``), T = m_p W^2 / 2k from the thermal speed W, Np.  Values equal
    to FILLVAL or outside VALIDMIN/VALIDMAX are dropped before averaging; time
    from each variable's DEPEND_0 (CDF_EPOCH, EPOCH16 or TT2000).  Record counts
    and the pair's time span are checked against ``limits`` before resampling.
    """
    fm, fs = _open_cdf(Path(mfi), limits), _open_cdf(Path(swe), limits)
    if fm.kind != "mfi":
        raise GranuleError(fm.path, f"not a Wind MFI CDF (kind: {fm.kind or 'unknown'}; "
                           "expected Descriptor MFI or a BGSM variable)")
    if fs.kind != "swe":
        raise GranuleError(fs.path, f"not a Wind SWE CDF (kind: {fs.kind or 'unknown'}; "
                           "expected Descriptor SWE or Proton_* variables)")
    if fm.spacecraft and fs.spacecraft and fm.spacecraft != fs.spacecraft:
        raise GranuleError(fs.path, f"spacecraft {fs.spacecraft!r} does not match MFI file "
                           f"{fm.path.name} ({fm.spacecraft!r})")
    screen = _Screen()
    mag = _read_mfi(fm, screen)
    plasma = _read_swe(fs, screen)
    field_n = _field_plasma_counts(mag)[0]
    plasma_n = _field_plasma_counts(plasma)[1]
    screen.require_valid(f"{fm.path}, {fs.path}", field_n, plasma_n,
                         no_physical_problem="no record has both a valid time and valid "
                         "values (fill values or outside VALIDMIN/VALIDMAX)")
    if not _overlap(mag.index, plasma.index):
        raise GranuleError(fs.path, f"time range {plasma.index.min()} .. {plasma.index.max()} "
                           f"does not overlap MFI file {fm.path.name} "
                           f"({mag.index.min()} .. {mag.index.max()}): mismatched pair")
    both = mag.index.append(plasma.index)
    check_extent(fm.path, pd.DatetimeIndex(both), limits, fields_per_sample=5)
    b = regularize(mag, fm.path)
    p = regularize(plasma, fs.path)
    index = b.index.union(p.index)
    index = pd.date_range(index.min(), index.max(), freq=CADENCE, name="time")
    frame = pd.concat([b.reindex(index), p.reindex(index)], axis=1)
    return _standardize(derive_columns(frame), screen)


def _overlap(a: pd.Index, b: pd.Index) -> bool:
    return bool(a.min() <= b.max() and b.min() <= a.max())


# ---------------------------------------------------------------------------
# dispatch and granule grouping

_DATE_RE = re.compile(r"(?<!\d)((?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))(?!\d)")


def _slug(text: str) -> str:
    """Lower case, only [a-z0-9_.-]: safe as an obs_id and in URLs."""
    s = re.sub(r"[^a-z0-9_.-]+", "_", text.lower()).strip("_.-")
    return re.sub(r"_+", "_", s) or "granule"


def _sniff(path: Path) -> str:
    """Format of a file from its suffix, else its content: csv, lst, fmt, omni2 or cdf."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".lst", ".fmt", ".cdf"):
        return suffix[1:]
    if _is_cdf(path):
        return "cdf"
    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.read(4096)
    except UnicodeDecodeError as exc:
        raise GranuleError(path, "unknown solar-wind file type (binary, not a CDF)") from exc
    except OSError as exc:  # the OS message would carry the server path
        raise GranuleError(path, f"unreadable file ({type(exc).__name__})") from exc
    from epnml.ingest.readers.omni2 import looks_like_omni2

    if looks_like_omni2(head):
        return "omni2"
    first = head.lstrip().splitlines()[0].lower() if head.strip() else ""
    if first.startswith("time,") or ",time," in first:
        return "csv"
    if "format" in first and any(_FMT_LINE.match(ln) for ln in head.splitlines()):
        return "fmt"
    if first and all(re.fullmatch(r"[-+0-9.eE\s]+", ln) for ln in head.splitlines()[:5] if ln):
        return "lst"
    raise GranuleError(path, "unknown solar-wind file type (expected .csv, .lst+.fmt, "
                       "an OMNI2 hourly .dat or a Wind MFI/SWE .cdf)")


def _cdf_granule_id(mfi: _CdfFile, swe: _CdfFile) -> str:
    dates = _DATE_RE.findall(mfi.path.stem) or _DATE_RE.findall(swe.path.stem)
    if dates:
        span = f"{dates[0]}_{dates[-1]}" if len(dates) > 1 else dates[0]
    else:
        t0, t1 = _cdf_time_range(mfi)
        span = f"{t0:%Y%m%d}_{t1:%Y%m%d}"
    sim = "simulated_" if (mfi.simulated or "simulated" in mfi.path.name.lower()) else ""
    return _slug(f"{sim}{mfi.spacecraft or 'wind'}_mfi_swe_{span}")


def _pair_cdfs(cdfs: list[_CdfFile]) -> list[tuple[str, tuple[Path, ...]]]:
    mfis = [f for f in cdfs if f.kind == "mfi"]
    swes = [f for f in cdfs if f.kind == "swe"]
    for f in cdfs:
        if f.kind is None:
            raise GranuleError(f.path, "CDF is neither Wind MFI nor SWE (no MFI/SWE "
                               "Descriptor and none of their variables)")
    ranges = {f.path: _cdf_time_range(f) for f in mfis + swes}
    out: list[tuple[str, tuple[Path, ...]]] = []
    used: set[Path] = set()
    for m in sorted(mfis, key=lambda f: ranges[f.path][0]):
        m0, m1 = ranges[m.path]
        best, best_overlap = None, pd.Timedelta(0)
        for s in swes:
            if s.path in used:
                continue
            s0, s1 = ranges[s.path]
            ov = min(m1, s1) - max(m0, s0)
            if ov > best_overlap or (best is None and ov >= pd.Timedelta(0)):
                best, best_overlap = s, ov
        if best is None:
            m_dates = set(_DATE_RE.findall(m.path.stem))
            best = next((s for s in swes if s.path not in used
                         and m_dates & set(_DATE_RE.findall(s.path.stem))), None)
        if best is None:
            raise GranuleError(m.path, "MFI CDF without a matching SWE CDF (no overlapping "
                               "time range or file-name date)")
        used.add(best.path)
        out.append((_cdf_granule_id(m, best), (m.path, best.path)))
    for s in swes:
        if s.path not in used:
            raise GranuleError(s.path, "SWE CDF without a matching MFI CDF")
    return out


def group_solarwind_files(paths: Iterable[Path], limits: ResourceLimits = SOLARWIND_LIMITS
                          ) -> list[tuple[str, tuple[Path, ...]]]:
    """Group input files into granules ``(granule_id, files)``.

    Each CSV alone; each ``.lst`` with its ``.fmt`` (given or sibling); all OMNI2
    hourly ``.dat`` files together (one granule, ``omni2_<first>_<last year>``); Wind MFI and
    SWE CDFs paired by overlapping time range (else by a date in the file name).
    ``granule_id`` is lower case, without spaces or '#', derived from the file
    name(s) so re-ingesting the same files gives the same id.  Raises GranuleError
    on unknown, missing or unpairable files.  An empty (0-byte) file becomes a
    granule of its own whose reading fails, so one empty upload in a batch is one
    failed granule (``--keep-going``), not a failed grouping.
    """
    files = [Path(p) for p in paths]
    seen: set[Path] = set()
    unique = []
    for p in files:
        if not p.exists():
            raise GranuleError(p, "file not found")
        if not p.is_file():
            raise GranuleError(p, "not a regular file")
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    kinds = {p: "empty" if p.stat().st_size == 0 and p.suffix.lower() not in (
        ".csv", ".lst", ".fmt") else _sniff(p) for p in unique}
    fmts = {p.with_suffix("").resolve(): p for p, k in kinds.items() if k == "fmt"}
    out: list[tuple[str, tuple[Path, ...]]] = []
    used_fmt: set[Path] = set()
    cdfs: list[_CdfFile] = []
    omni2 = [p for p in unique if kinds[p] == "omni2"]
    if omni2:  # yearly OMNI2 files given together are one granule (years concatenated)
        from epnml.ingest.readers.omni2 import omni2_granule_id

        out.append((omni2_granule_id(omni2), tuple(sorted(omni2))))
    for p in unique:
        kind = kinds[p]
        if kind in ("csv", "empty"):
            out.append((_slug(p.stem), (p,)))
        elif kind == "lst":
            fmt = fmts.get(p.with_suffix("").resolve()) or _find_fmt(p)
            used_fmt.add(fmt.resolve())
            out.append((_slug(p.stem), (p, fmt)))
        elif kind == "cdf":
            cdfs.append(_open_cdf(p, limits))
    for p, kind in kinds.items():
        if kind == "fmt" and p.resolve() not in used_fmt:
            raise GranuleError(p, "OMNIWeb .fmt without its .lst listing")
    if cdfs:
        out.extend(_pair_cdfs(cdfs))
    # Two files of the same name (A/wind.csv, B/wind.csv) share an id here; at ingest the
    # runner tells them apart by content and provenance (epnml.ingest.writer.resolve_obs_id).
    return out


def read_granule(files: Sequence[Path],
                 limits: ResourceLimits = SOLARWIND_LIMITS) -> pd.DataFrame:
    """Read the files of ONE granule (as grouped by :func:`group_solarwind_files`).

    The frame's ``attrs["invalid_values"]`` holds the count of non-physical values
    per quantity that became missing data.
    """
    files = [Path(p) for p in files]
    kinds = [_sniff(_require_file(p)) for p in files]
    if kinds == ["csv"]:
        return read_solarwind_csv(files[0], limits)
    if kinds and set(kinds) == {"omni2"}:
        from epnml.ingest.readers.omni2 import read_omni2

        return read_omni2(files, limits)
    if sorted(kinds) == ["fmt", "lst"]:
        lst = files[kinds.index("lst")]
        return read_omniweb(lst, files[kinds.index("fmt")], limits)
    if kinds == ["lst"]:
        return read_omniweb(files[0], limits=limits)
    if kinds == ["cdf", "cdf"]:
        a, b = _open_cdf(files[0], limits), _open_cdf(files[1], limits)
        if a.kind == "swe" and b.kind == "mfi":
            a, b = b, a
        if (a.kind, b.kind) != ("mfi", "swe"):
            raise GranuleError(files[1], f"CDF pair is {a.kind}+{b.kind}, expected one MFI "
                               "and one SWE file")
        return read_cdaweb_wind(a.path, b.path, limits)
    raise GranuleError(files[0], f"not one solar-wind granule: {', '.join(kinds)}")


def read_solarwind(paths: Sequence[Path],
                   limits: ResourceLimits = SOLARWIND_LIMITS) -> pd.DataFrame:
    """Read one granule given as its file(s): a CSV, an OMNI .lst(+.fmt), OMNI2 hourly
    .dat file(s), or an MFI+SWE pair.

    Format from suffix or content; a single ``.lst`` finds its sibling ``.fmt``.
    Several granules are rejected (use :func:`group_solarwind_files` first).
    Raises GranuleError for bad input, LimitExceeded (a GranuleError) when the
    granule would cost more than ``limits``.
    """
    files = [Path(p) for p in paths]
    if not files:
        raise ValueError("read_solarwind needs at least one path")
    groups = group_solarwind_files(files, limits)
    if len(groups) != 1:
        raise GranuleError(files[0], f"{len(groups)} granules given "
                           f"({', '.join(g for g, _ in groups)}); read them one at a time")
    return read_granule(groups[0][1], limits)
