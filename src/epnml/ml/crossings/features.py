"""Per-sample input channels of the crossings models from a 1-s MESSENGER MAG frame.

Input frame (``epnml.ingest.simulate.messenger`` or a real MAG reader): a 1-s
DatetimeIndex and float columns ``x, y, z`` (km, MSO) and ``bx, by, bz`` (nT, MSO);
NaN marks data gaps. Why these channels: the field level separates the
magnetosphere from the sheath and the solar wind, local fluctuation power at a
few time scales separates the turbulent magnetosheath (and the shock ramp) from
the quieter solar wind, and the spacecraft position tells where a boundary can
be at all. Gaps are filled with 0 after scaling and flagged by a validity
channel, so the network learns "no data" rather than "zero field".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Mercury radius (km): positions enter the network in R_M.
R_M_KM = 2440.0
#: columns the frame must have.
INPUT_COLUMNS: tuple[str, ...] = ("x", "y", "z", "bx", "by", "bz")
#: rolling windows (s) of the fluctuation channels (shock ramp / sheath turbulence / context).
FLUCT_WINDOWS_S: tuple[int, ...] = (10, 60, 300)
#: B components enter as asinh(b / B_SOFT_NT): linear in the solar wind, log in the field.
B_SOFT_NT = 20.0
#: scaled values are clipped so a spike cannot dominate a receptive field.
CLIP = 8.0

#: channel order of ``frame_to_features`` (the validity channel is last).
FEATURES: tuple[str, ...] = (
    "asinh_bx",
    "asinh_by",
    "asinh_bz",
    "bt",
    "log_bt",
    *(f"log_dbvec_{w}s" for w in FLUCT_WINDOWS_S),
    *(f"log_dbt_{w}s" for w in FLUCT_WINDOWS_S),
    "log_rel_fluct_60s",
    "x_rm",
    "y_rm",
    "z_rm",
    "r_rm",
    "rho_rm",
    "sin_lt",
    "cos_lt",
    "valid",
)
N_FEATURES = len(FEATURES)
#: channels derived from B (zeroed where B is missing).
_B_CHANNELS = tuple(i for i, f in enumerate(FEATURES) if f not in (
    "x_rm", "y_rm", "z_rm", "r_rm", "rho_rm", "sin_lt", "cos_lt", "valid"))
_EPS = 1e-3


def _rolling(series: pd.Series, window: int, how: str) -> np.ndarray:
    roll = series.rolling(window, center=True, min_periods=max(2, window // 4))
    out = roll.std() if how == "std" else roll.mean()
    return out.to_numpy(dtype=np.float64)


def raw_features(frame: pd.DataFrame) -> np.ndarray:
    """Unscaled ``(n, N_FEATURES)`` float64 channels; NaN where B is missing."""
    missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing} (need {list(INPUT_COLUMNS)})")
    n = len(frame)
    if n < 1:
        raise ValueError("frame is empty")
    b = frame[["bx", "by", "bz"]].to_numpy(dtype=np.float64)
    valid = np.isfinite(b).all(axis=1)
    b = np.where(valid[:, None], b, np.nan)
    bt = np.sqrt((b**2).sum(axis=1))
    comps = [pd.Series(b[:, i]) for i in range(3)]
    bts = pd.Series(bt)
    cols: list[np.ndarray] = [
        np.arcsinh(b[:, 0] / B_SOFT_NT),
        np.arcsinh(b[:, 1] / B_SOFT_NT),
        np.arcsinh(b[:, 2] / B_SOFT_NT),
        bt,
        np.log10(bt + _EPS),
    ]
    for w in FLUCT_WINDOWS_S:  # total vector fluctuation (transverse + compressive)
        var = sum(np.nan_to_num(_rolling(c, w, "std"), nan=0.0) ** 2 for c in comps)
        cols.append(np.log10(np.sqrt(np.asarray(var)) + _EPS))
    for w in FLUCT_WINDOWS_S:  # compressive fluctuation only
        cols.append(np.log10(np.nan_to_num(_rolling(bts, w, "std"), nan=0.0) + _EPS))
    mean60 = _rolling(bts, 60, "mean")
    cols.append(cols[FEATURES.index("log_dbvec_60s")] - np.log10(np.abs(mean60) + 1.0))
    pos = frame[["x", "y", "z"]].astype("float64")
    if pos.isna().to_numpy().any():  # ephemeris is smooth: interpolate, then hold the ends
        pos = pos.interpolate(limit_direction="both").fillna(0.0)
    p = pos.to_numpy() / R_M_KM
    r = np.sqrt((p**2).sum(axis=1))
    rho = np.sqrt(p[:, 1] ** 2 + p[:, 2] ** 2)
    lt = np.arctan2(p[:, 1], p[:, 0])
    cols += [p[:, 0], p[:, 1], p[:, 2], r, rho, np.sin(lt), np.cos(lt), valid.astype(np.float64)]
    out = np.stack(cols, axis=1)
    out[np.ix_(~valid, list(_B_CHANNELS))] = np.nan
    return out


@dataclass(frozen=True)
class Scaler:
    """``(f - mean) / std`` per channel, fitted on TRAINING orbits and stored in the card."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    features: tuple[str, ...] = FEATURES
    clip: float = CLIP

    def __post_init__(self) -> None:
        n = len(self.features)
        if len(self.mean) != n or len(self.std) != n:
            raise ValueError("scaler: mean and std need one entry per feature")
        if any(not s > 0 for s in self.std):
            raise ValueError("scaler: every std must be > 0")
        if tuple(self.features) != FEATURES:
            raise ValueError(f"scaler was fitted for features {self.features}, code has {FEATURES}")

    @classmethod
    def fit(cls, raws: Sequence[np.ndarray]) -> Scaler:
        """Mean/std over all valid samples of the given ``raw_features`` arrays."""
        if not raws:
            raise ValueError("scaler: nothing to fit on")
        stacked = np.concatenate(raws, axis=0)
        mean = np.nanmean(stacked, axis=0)
        std = np.nanstd(stacked, axis=0)
        v = FEATURES.index("valid")
        mean[v], std[v] = 0.0, 1.0  # the flag stays 0/1
        std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        return cls(mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Scaled float32 ``(n, F)``: NaN (gaps) -> 0, clipped to +-clip."""
        z = (raw - np.asarray(self.mean)) / np.asarray(self.std)
        z = np.clip(np.nan_to_num(z, nan=0.0, posinf=self.clip, neginf=-self.clip),
                    -self.clip, self.clip)
        return z.astype(np.float32)

    def to_dict(self) -> dict[str, object]:
        return {"mean": list(self.mean), "std": list(self.std),
                "features": list(self.features), "clip": self.clip}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Scaler:
        try:
            return cls(
                mean=tuple(float(x) for x in d["mean"]),  # type: ignore[attr-defined]
                std=tuple(float(x) for x in d["std"]),  # type: ignore[attr-defined]
                features=tuple(str(x) for x in d["features"]),  # type: ignore[attr-defined]
                clip=float(d["clip"]),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"invalid scaler: {exc}") from exc


def identity_scaler() -> Scaler:
    """No scaling (tests and fitting); real models carry a fitted one."""
    return Scaler(mean=(0.0,) * N_FEATURES, std=(1.0,) * N_FEATURES)


def frame_to_features(frame: pd.DataFrame, scaler: Scaler | None = None) -> np.ndarray:
    """Scaled float32 ``(n, N_FEATURES)`` network input (gaps 0, validity channel last)."""
    return (scaler or identity_scaler()).transform(raw_features(frame))
