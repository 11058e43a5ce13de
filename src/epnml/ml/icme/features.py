"""Turn a standard solar-wind frame into the network's input array.

The scaler constants are FIXED (rounded from the 2019 Wind + STEREO-A training
data) rather than fitted per call, so a granule is scaled identically whatever
else is in it, and the same constants travel inside every weights file.
Quantities spanning decades (density, temperature, beta, pressure, |B|,
T/T_expected) are scaled in log10 so a factor of two means the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

#: columns of the standard input frame, in channel order.
FEATURES: list[str] = ["bx", "by", "bz", "bt", "vt", "np", "tp", "beta", "pdyn", "texrat"]
#: the extra channel: 1 where all features were measured (or interpolated), 0 where filled.
MASK_CHANNEL = "valid"
N_CHANNELS = len(FEATURES) + 1
#: gaps up to this many 10-min steps are interpolated linearly (1 h).
MAX_INTERP_STEPS = 6
#: scaled values are clipped to +-CLIP so a single spike cannot dominate a window.
CLIP = 6.0


@dataclass(frozen=True)
class Scaler:
    """Fixed per-feature transform: ``(f(x) - center) / scale`` with f = log10 or identity."""

    log: tuple[bool, ...]
    center: tuple[float, ...]
    scale: tuple[float, ...]
    features: tuple[str, ...] = tuple(FEATURES)
    max_interp_steps: int = MAX_INTERP_STEPS
    clip: float = CLIP

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (len(self.log) == len(self.center) == len(self.scale) == n):
            raise ValueError("scaler: log, center and scale must have one entry per feature")
        if any(s <= 0 for s in self.scale):
            raise ValueError("scaler: every scale must be > 0")

    def to_dict(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Scaler:
        try:
            return cls(
                log=tuple(bool(x) for x in d["log"]),  # type: ignore[attr-defined]
                center=tuple(float(x) for x in d["center"]),  # type: ignore[attr-defined]
                scale=tuple(float(x) for x in d["scale"]),  # type: ignore[attr-defined]
                features=tuple(str(x) for x in d["features"]),  # type: ignore[attr-defined]
                max_interp_steps=int(d["max_interp_steps"]),  # type: ignore[call-overload]
                clip=float(d["clip"]),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"invalid scaler description: {exc}") from exc


#: the constants used by every committed model (see module docstring).
DEFAULT_SCALER = Scaler(
    #          bx     by     bz     bt    vt     np    tp    beta  pdyn  texrat
    log=(False, False, False, True, False, True, True, True, True, True),
    center=(0.0, 0.0, 0.0, 0.62, 400.0, 0.75, 4.83, -0.10, -8.82, 0.12),
    scale=(5.0, 5.0, 5.0, 0.20, 100.0, 0.25, 0.32, 0.40, 0.20, 0.20),
)


def frame_to_array(frame: pd.DataFrame, scaler: Scaler = DEFAULT_SCALER) -> np.ndarray:
    """Scaled features plus a validity mask, shape ``(len(FEATURES) + 1, len(frame))``.

    Short gaps (<= ``max_interp_steps`` rows, in any column) are interpolated so
    that a single dropped spectrum does not punch a hole into an ICME; longer
    gaps are set to 0 (the scaled "typical" value) and flagged with mask 0 so the
    network can tell "typical" from "unknown". Non-positive values of log-scaled
    quantities are unphysical and treated as missing.
    """
    missing = [c for c in scaler.features if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks feature columns {missing}; expected {list(scaler.features)}")
    n = len(frame)
    out = np.zeros((len(scaler.features) + 1, n), dtype=np.float32)
    if n == 0:
        return out
    raw = frame[list(scaler.features)].to_numpy(dtype=np.float64, copy=True)
    raw[~np.isfinite(raw)] = np.nan
    logs = np.asarray(scaler.log)
    with np.errstate(invalid="ignore", divide="ignore"):
        sub = raw[:, logs]
        sub[sub <= 0] = np.nan
        raw[:, logs] = np.log10(sub)
    df = pd.DataFrame(raw)
    if scaler.max_interp_steps > 0:
        # limit_area="inside": never extrapolate at the edges of the granule.
        df = df.interpolate(method="linear", limit=scaler.max_interp_steps, limit_area="inside")
        # pandas fills the first `limit` steps of a long gap too; undo that so
        # only gaps no longer than the limit are bridged.
        gap_len = _run_lengths(np.isnan(raw))
        long_gap = gap_len > scaler.max_interp_steps
        vals = df.to_numpy(copy=True)
        vals[long_gap] = np.nan
    else:
        vals = df.to_numpy(copy=True)
    scaled = (vals - np.asarray(scaler.center)) / np.asarray(scaler.scale)
    valid = np.isfinite(scaled).all(axis=1)
    scaled = np.clip(np.nan_to_num(scaled, nan=0.0), -scaler.clip, scaler.clip)
    scaled[~valid] = 0.0
    out[:-1] = scaled.T.astype(np.float32)
    out[-1] = valid.astype(np.float32)
    return out


def _run_lengths(isnan: np.ndarray) -> np.ndarray:
    """For each NaN cell, the length of the NaN run it belongs to (0 elsewhere), per column."""
    out = np.zeros(isnan.shape, dtype=np.int64)
    for j in range(isnan.shape[1]):
        col = isnan[:, j]
        if not col.any():
            continue
        edges = np.diff(np.r_[0, col.astype(np.int8), 0])
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        for s, e in zip(starts, ends, strict=True):
            out[s:e, j] = e - s
    return out
