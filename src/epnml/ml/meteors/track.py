"""A meteor's sky track: great-circle fit, angular speed, and its outline as an ``spoly``.

The per-frame RA/Dec of the network's records zig-zag along the track (the two video
fields in swapped order), so positions are never differenced frame to frame: the track
is the great circle that best fits every position (plane through the origin, smallest
singular vector), and the position along it is fitted linearly in time. The fitted
first and last positions give the track length; the slope, the angular speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: the outline's half-width when every frame lies on the fitted circle (degrees).
MIN_HALF_WIDTH_DEG = 0.05
#: the outline is never wider than this (degrees): a wider scatter is clipped.
MAX_HALF_WIDTH_DEG = 2.0
#: tracks longer than this are not one meteor seen by one camera (degrees).
MAX_TRACK_DEG = 120.0


def unit_vectors(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def radec(v: np.ndarray) -> tuple[float, float]:
    """RA in [0, 360), Dec in degrees of a (not necessarily unit) vector."""
    x, y, z = (float(c) for c in v)
    ra = math.degrees(math.atan2(y, x)) % 360.0
    dec = math.degrees(math.atan2(z, math.hypot(x, y)))
    return ra, dec


@dataclass(frozen=True)
class Track:
    #: fitted first and last positions (unit vectors).
    start: np.ndarray
    end: np.ndarray
    #: pole of the fitted great circle (unit vector).
    pole: np.ndarray
    length_deg: float
    speed_deg_s: float
    #: largest distance of a frame position from the fitted circle (degrees).
    scatter_deg: float
    #: farthest a position lies beyond the fitted start or end, along the track (degrees).
    overshoot_deg: float = 0.0


def fit_track(ra_deg: np.ndarray, dec_deg: np.ndarray, t_s: np.ndarray) -> Track:
    """Great-circle fit of the positions and a linear fit of the angle along it in time."""
    p = unit_vectors(np.asarray(ra_deg, float), np.asarray(dec_deg, float))
    if len(p) < 2:
        raise ValueError("a track needs two positions")
    _, _, vt = np.linalg.svd(p, full_matrices=False)
    pole = vt[-1] / np.linalg.norm(vt[-1])
    # the reference direction: the first position projected onto the circle's plane
    ref = p[0] - pole * float(p[0] @ pole)
    norm = float(np.linalg.norm(ref))
    if norm < 1e-12:  # degenerate (the first point is the pole): use the mean position
        ref = p.mean(axis=0) - pole * float(p.mean(axis=0) @ pole)
        norm = float(np.linalg.norm(ref))
    ref /= norm
    ortho = np.cross(pole, ref)
    theta = np.arctan2(p @ ortho, p @ ref)
    theta = np.unwrap(theta)
    t = np.asarray(t_s, float)
    if np.ptp(t) > 0:
        slope, intercept = np.polyfit(t, theta, 1)
    else:
        slope, intercept = 0.0, float(theta.mean())
    th0, th1 = intercept + slope * t[0], intercept + slope * t[-1]
    start = math.cos(th0) * ref + math.sin(th0) * ortho
    end = math.cos(th1) * ref + math.sin(th1) * ortho
    scatter = float(np.degrees(np.abs(np.arcsin(np.clip(p @ pole, -1.0, 1.0)))).max())
    lo, hi = min(th0, th1), max(th0, th1)
    over = max(0.0, lo - float(theta.min()), float(theta.max()) - hi)
    return Track(start, end, pole, float(np.degrees(abs(th1 - th0))),
                 float(np.degrees(abs(slope))), scatter, float(np.degrees(over)))


def outline(track: Track) -> list[tuple[float, float]]:
    """The track as a quadrilateral (RA, Dec in degrees): the fitted start and end,
    lengthened by the half-width plus any overshoot of the positions, offset by the
    half-width on both sides of the circle.

    The half-width holds every frame position (its scatter), at least
    :data:`MIN_HALF_WIDTH_DEG`; edges are short great circles, the polygon far smaller
    than a hemisphere (tracks are shorter than :data:`MAX_TRACK_DEG`).
    """
    w = math.radians(min(MAX_HALF_WIDTH_DEG, max(MIN_HALF_WIDTH_DEG, 1.2 * track.scatter_deg)))
    a, b, n = track.start, track.end, track.pole
    if track.length_deg < 2 * math.degrees(w):  # a short track: a square around its middle
        mid = a + b
        mid = mid / np.linalg.norm(mid)
        along = np.cross(n, mid)
        a = math.cos(w) * mid - math.sin(w) * along
        b = math.cos(w) * mid + math.sin(w) * along
    # the direction of motion is a -> b; n is the pole with a x b along +n or -n
    if float(np.cross(a, b) @ n) < 0:
        n = -n
    # lengthen both ends (along the circle) so that positions beyond the fit are inside
    e = w + math.radians(track.overshoot_deg)
    along_a, along_b = np.cross(n, a), np.cross(n, b)
    a = math.cos(e) * a - math.sin(e) * along_a
    b = math.cos(e) * b + math.sin(e) * along_b
    corners = [math.cos(w) * a - math.sin(w) * n, math.cos(w) * b - math.sin(w) * n,
               math.cos(w) * b + math.sin(w) * n, math.cos(w) * a + math.sin(w) * n]
    return [radec(c) for c in corners]


def bounds(vertices: list[tuple[float, float]], samples: int = 16
           ) -> tuple[float, float, float, float]:
    """(ra_min, ra_max, dec_min, dec_max) of a polygon with great-circle edges: edges are
    sampled, so a bulge between vertices counts. A polygon across RA 0 gets 0..360 (the
    repository's rule for a wrap, as the landform rows); one around a pole, Dec to +-90."""
    v = unit_vectors(np.array([x for x, _ in vertices]), np.array([y for _, y in vertices]))
    pts = []
    for i in range(len(v)):
        p, q = v[i], v[(i + 1) % len(v)]
        for f in np.linspace(0.0, 1.0, samples):
            m = (1 - f) * p + f * q
            pts.append(radec(m / np.linalg.norm(m)))
    ras = np.array([r for r, _ in pts])
    decs = np.array([d for _, d in pts])
    dec_min, dec_max = float(decs.min()), float(decs.max())
    # a pole inside: the polygon's vertices turn once around it
    turn = np.unwrap(np.radians([r for r, _ in pts]))
    if abs(turn[-1] - turn[0]) > math.pi:
        return 0.0, 360.0, dec_min if dec_max > 0 else -90.0, 90.0 if dec_max > 0 else dec_max
    if np.ptp(ras) > 180.0:
        return 0.0, 360.0, dec_min, dec_max
    return float(ras.min()), float(ras.max()), dec_min, dec_max


def spoly_literal(vertices: list[tuple[float, float]], digits: int = 6) -> str:
    """pgSphere text ``{(ra1d,dec1d),...}`` in degrees."""
    fmt = f"{{:.{digits}f}}"
    return "{" + ",".join(f"({fmt.format(a)}d,{fmt.format(d)}d)" for a, d in vertices) + "}"
