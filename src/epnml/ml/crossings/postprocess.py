"""From per-sample region probabilities to the (up to) eight boundary edges of each orbit.

Why a constrained decode instead of thresholding: a nominal MESSENGER orbit
meets the regions in one fixed order, SW -> BS -> MSh -> MP -> MSph -> MP -> MSh
-> BS -> SW. A left-to-right hidden-state machine with those nine states decoded
by Viterbi over the log-probabilities turns noisy per-sample outputs into at most
one edge of each Philpott kind (1..8), placed where the evidence changes most.

Decoding (per orbit, apoapsis to apoapsis, see ``segment_orbits``):

* states 0..8 map to regions (0, 1, 2, 3, 4, 3, 2, 1, 0); a move s -> s+1 is edge
  s+1 and costs ``switch_penalty`` (log units); staying is free;
* zero-cost "skips" 1 -> 7, 2 -> 6 and 3 -> 5 join equal regions, so an orbit that
  never reaches the magnetosphere (or the sheath) decodes with NO magnetopause
  (or bow-shock) edges instead of invented ones;
* the path may start in any state (cost ``switch_penalty`` unless solar wind) and
  end in any state, so a partial orbit yields only the edges it contains;
* solar wind, sheath and magnetosphere visits last at least ``min_region_s``
  seconds (layers may be as thin as 1 s, as in Philpott et al. 2020);
* samples in data gaps (any of bx, by, bz NaN) carry no evidence; an edge that
  the decode places inside a gap longer than ``max_gap_s`` (or within 1 s of
  one) is DROPPED, because its time would be invented by the state machine;
* every edge gets ``score`` in 0..1: the mean probability of the decoded region
  over up to ``score_window_s`` seconds on each side of it (averaged over the two
  sides); edges scoring below ``min_score`` are dropped.

The search is exact and vectorised: for left-to-right chains the best score of
staying in state s from tau to t is a difference of cumulative sums, so each
state needs one running maximum over time (O(9 T) numpy work, no Python loop
over samples).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import find_peaks

from .labels import (
    BOW_SHOCK,
    EDGES,
    MAGNETOPAUSE,
    MAGNETOSHEATH,
    MAGNETOSPHERE,
    N_REGIONS,
    SOLAR_WIND,
)

#: decoder state -> region class.
STATE_REGION = (SOLAR_WIND, BOW_SHOCK, MAGNETOSHEATH, MAGNETOPAUSE, MAGNETOSPHERE,
                MAGNETOPAUSE, MAGNETOSHEATH, BOW_SHOCK, SOLAR_WIND)
N_STATES = len(STATE_REGION)
#: zero-cost joins between equal regions (target state -> source state).
SKIPS = {7: 1, 6: 2, 5: 3}
#: states whose visits must last ``min_region_s`` (the thick regions).
_THICK = {0, 2, 4, 6, 8}
#: minimum time between apoapses when splitting orbits (MESSENGER: 8 h or 12 h).
MIN_ORBIT_S = 4 * 3600
COLUMNS = ["orbit_index", "boundary_number", "boundary", "direction", "edge", "time",
           "score", "x", "y", "z"]
_FLOOR = 1e-6


@dataclass(frozen=True)
class PostprocessParams:
    """Tunable decoding parameters (defaults chosen on validation live in the model card)."""

    switch_penalty: float = 8.0
    min_region_s: int = 30
    smooth_s: int = 5
    max_gap_s: int = 30
    score_window_s: int = 60
    min_score: float = 0.0

    def __post_init__(self) -> None:
        if not np.isfinite(self.switch_penalty) or self.switch_penalty < 0:
            raise ValueError(f"switch_penalty must be >= 0, got {self.switch_penalty}")
        for name in ("min_region_s", "smooth_s", "score_window_s"):
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not isinstance(self.max_gap_s, int | np.integer) or self.max_gap_s < 0:
            raise ValueError(f"max_gap_s must be an integer >= 0, got {self.max_gap_s!r}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PostprocessParams:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown postprocess parameters {sorted(unknown)}; known: "
                             f"{sorted(known)}")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def segment_orbits(frame: pd.DataFrame) -> list[slice]:
    """Row slices of the orbits in ``frame``, split at apoapsis (local maxima of r).

    Apoapsis lies in the solar wind, so each slice holds one pass through the
    magnetosphere. Cadence is taken from the index (1 s for MAG).
    """
    n = len(frame)
    if n == 0:
        return []
    for c in ("x", "y", "z"):
        if c not in frame.columns:
            raise ValueError(f"frame lacks position column {c!r}")
    pos = frame[["x", "y", "z"]].astype("float64").interpolate(limit_direction="both")
    r = np.sqrt((pos.to_numpy() ** 2).sum(axis=1))
    if not np.isfinite(r).all():
        raise ValueError("frame has no usable spacecraft position")
    step_s = _cadence_s(frame)
    peaks, _ = find_peaks(r, distance=max(1, int(MIN_ORBIT_S / step_s)))
    cuts = [0, *[int(p) for p in peaks if 0 < p < n - 1], n]
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def _cadence_s(frame: pd.DataFrame) -> float:
    idx = pd.DatetimeIndex(frame.index)
    if len(idx) < 2:
        return 1.0
    head = idx[: min(len(idx), 1000)]
    step = float(np.median((head[1:] - head[:-1]).total_seconds()))
    return step if step > 0 else 1.0


def _smooth(proba: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or len(proba) < 2:
        return proba
    kernel = np.ones(width) / width
    pad = width // 2
    padded = np.pad(proba, ((pad, width - 1 - pad), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, k], kernel, mode="valid")
                     for k in range(proba.shape[1])], axis=1)


def _prefix_argmax(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running max of ``g`` and the index where it was (last) attained."""
    run = np.maximum.accumulate(g)
    idx = np.where(g >= run, np.arange(len(g)), 0)
    return run, np.maximum.accumulate(idx)


def viterbi_states(logp: np.ndarray, switch_penalty: float, min_len: int) -> np.ndarray:
    """Best left-to-right state path (T,) for emission log-probs ``logp`` (T, 5).

    Exact: delta[s, t] = C_s(t) + max over entry times tau <= t - L_s + 1 of
    (entry score at tau - C_s(tau - 1)), C_s the cumulative emission of state s.
    """
    t_len = logp.shape[0]
    emis = logp[:, list(STATE_REGION)]  # (T, S)
    csum = np.cumsum(emis, axis=0)
    csum_prev = np.vstack([np.zeros((1, N_STATES)), csum[:-1]])  # C_s(tau - 1)
    neg = -np.inf
    delta = np.full((t_len, N_STATES), neg)
    best_entry = np.zeros((t_len, N_STATES), dtype=np.int64)  # entry time for (t, s)
    pred_at = np.full((t_len, N_STATES), -1, dtype=np.int64)  # predecessor entering at tau
    for s in range(N_STATES):
        # entry score at tau: from predecessor at tau-1 (or the start at tau == 0).
        enter = np.full(t_len, neg)
        src = np.full(t_len, -1, dtype=np.int64)
        if s > 0 and t_len > 1:
            enter[1:] = delta[:-1, s - 1] - switch_penalty
            src[1:] = s - 1
            if s in SKIPS:
                alt = delta[:-1, SKIPS[s]]
                better = alt > enter[1:]
                enter[1:] = np.where(better, alt, enter[1:])
                src[1:] = np.where(better, SKIPS[s], src[1:])
        enter[0] = 0.0 if s == 0 else -switch_penalty
        src[0] = -1
        pred_at[:, s] = src
        g = enter - csum_prev[:, s]
        run, arg = _prefix_argmax(g)
        lag = min_len - 1 if s in _THICK else 0
        if lag:
            # a visit entered after the start must last >= min_len samples.
            shifted = np.full(t_len, neg)
            shifted_arg = np.zeros(t_len, dtype=np.int64)
            shifted[lag:] = run[:-lag] if lag < t_len else shifted[lag:]
            shifted_arg[lag:] = arg[:-lag] if lag < t_len else shifted_arg[lag:]
            # starting in the state at tau = 0 is exempt (the orbit may begin mid-visit).
            start_ok = shifted < g[0]
            shifted = np.where(start_ok, g[0], shifted)
            shifted_arg = np.where(start_ok, 0, shifted_arg)
            run, arg = shifted, shifted_arg
        delta[:, s] = csum[:, s] + run
        best_entry[:, s] = arg
    # the last visit may be cut by the end of the orbit: no minimum there.
    final = np.full(N_STATES, neg)
    final_entry = np.zeros(N_STATES, dtype=np.int64)
    for s in range(N_STATES):
        enter_scores = np.full(t_len, neg)
        if s == 0:
            enter_scores[0] = 0.0
        else:
            enter_scores[0] = -switch_penalty
            if t_len > 1:
                e = delta[:-1, s - 1] - switch_penalty
                if s in SKIPS:
                    e = np.maximum(e, delta[:-1, SKIPS[s]])
                enter_scores[1:] = e
        g = enter_scores - csum_prev[:, s]
        k = int(np.argmax(g))
        final[s] = csum[-1, s] + g[k]
        final_entry[s] = k
    s = int(np.argmax(final))
    path = np.empty(t_len, dtype=np.int64)
    t_end = t_len - 1
    tau = int(final_entry[s])
    while True:
        path[tau : t_end + 1] = s
        if tau == 0:
            break
        prev = _entry_predecessor(delta, s, tau, switch_penalty)
        t_end = tau - 1
        s = prev
        tau = int(best_entry[t_end, s])
    return path


def _entry_predecessor(delta: np.ndarray, s: int, tau: int, switch_penalty: float) -> int:
    """Which state the path came from when entering ``s`` at ``tau`` (> 0)."""
    if s == 0:
        raise RuntimeError("state 0 cannot be entered after the start")  # pragma: no cover
    step = delta[tau - 1, s - 1] - switch_penalty
    if s in SKIPS and delta[tau - 1, SKIPS[s]] > step:
        return SKIPS[s]
    return s - 1


def _gap_runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index ranges of consecutive invalid samples."""
    edges = np.diff(np.r_[0, (~valid).astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(),
                    strict=True))


def _decode_orbit(proba: np.ndarray, valid: np.ndarray, p: PostprocessParams,
                  step_s: float) -> list[tuple[int, int, float]]:
    """(boundary_number, sample index, score) of one orbit's decoded edges."""
    n = len(proba)
    if n < 2 or not valid.any():
        return []
    sm = _smooth(proba, max(1, int(round(p.smooth_s / step_s))))
    logp = np.log(np.clip(sm, _FLOOR, 1.0))
    logp[~valid] = 0.0  # no evidence in gaps
    min_len = max(1, int(round(p.min_region_s / step_s)))
    path = viterbi_states(logp, p.switch_penalty, min_len)
    change = np.flatnonzero(np.diff(path) != 0) + 1
    long_gap = np.zeros(n, dtype=bool)
    max_gap = int(round(p.max_gap_s / step_s))
    for a, b in _gap_runs(valid):
        if b - a > max_gap:
            long_gap[max(0, a - 1) : min(n, b + 1)] = True
    win = max(1, int(round(p.score_window_s / step_s)))
    bounds = np.r_[0, change, n]
    out = []
    for j, i in enumerate(change.tolist()):
        s_new, s_old = int(path[i]), int(path[i - 1])
        if s_new != s_old + 1:  # a skip joins equal regions: no edge
            continue
        if long_gap[i] or long_gap[i - 1]:
            continue  # the decode had no data to place this edge
        lo = max(int(bounds[j]), i - win)
        hi = min(int(bounds[j + 2]), i + win)
        before = sm[lo:i, STATE_REGION[s_old]][valid[lo:i]]
        after = sm[i:hi, STATE_REGION[s_new]][valid[i:hi]]
        if not len(before) or not len(after):
            continue
        score = 0.5 * (float(before.mean()) + float(after.mean()))
        if score < p.min_score:
            continue
        out.append((s_new, i, score))
    return out


def extract_crossings(frame: pd.DataFrame, proba: np.ndarray, **params: Any) -> pd.DataFrame:
    """Per orbit, the decoded boundary edges (columns ``COLUMNS``, one row per edge).

    ``frame``: 1-s MAG frame (x, y, z, bx, by, bz; NaN = gap); ``proba``: (n, 5)
    region probabilities (rows of ``frame``). ``params``: ``PostprocessParams``
    fields; unknown names or invalid values raise ValueError.
    """
    p = PostprocessParams.from_dict(params)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape != (len(frame), N_REGIONS):
        raise ValueError(f"proba must have shape ({len(frame)}, {N_REGIONS}), "
                         f"got {proba.shape}")
    if not np.isfinite(proba).all():
        raise ValueError("proba contains NaN or inf")
    missing = [c for c in ("bx", "by", "bz", "x", "y", "z") if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing}")
    valid = np.isfinite(frame[["bx", "by", "bz"]].to_numpy(dtype=np.float64)).all(axis=1)
    step_s = _cadence_s(frame)
    index = pd.DatetimeIndex(frame.index)
    xyz = frame[["x", "y", "z"]].to_numpy(dtype=np.float64)
    rows = []
    for k, sl in enumerate(segment_orbits(frame)):
        for number, i, score in _decode_orbit(proba[sl], valid[sl], p, step_s):
            g = sl.start + i
            e = EDGES[number]
            rows.append({
                "orbit_index": k, "boundary_number": number, "boundary": e.boundary,
                "direction": e.direction, "edge": e.edge, "time": index[g],
                "score": round(score, 4), "x": xyz[g, 0], "y": xyz[g, 1], "z": xyz[g, 2],
            })
    out = pd.DataFrame(rows, columns=COLUMNS)
    return out.astype({"orbit_index": "int64", "boundary_number": "int64", "score": "float64"})
