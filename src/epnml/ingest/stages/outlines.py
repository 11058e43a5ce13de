"""Pixel outlines of landforms -> valid pgSphere polygons on Mars (mounds, ice stages).

Why convex hulls: pgSphere needs simple (non self-intersecting) polygons; the convex hull
of a component's pixel corners is simple by construction, contains every pixel of the
component (hence its centroid) and is easily reduced to <= ``MAX_VERTICES`` vertices by
dropping the vertex that loses the least area (the result stays convex; a reduction that
would leave the centroid outside is not made). Corners are mapped to planetocentric
east longitude / latitude with the image's GeoRef, ordered counter-clockwise seen from
outside Mars (east right, north up) even for south-up images, and longitudes are
written in one continuous range (359.5 .. 360.5 across 0 deg E) so the outline keeps its
true shape; its bounds are tight, c1min > c1max across 0 deg E (EPN-TAP 2.0,
``epnml.ingest.epn.lon_bounds``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from epnml.ingest.epn import continuous_lons, lon_bounds
from epnml.ingest.readers.images import GeoRef
from epnml.ingest.stages.pits import _signed_area, spoly_literal

MAX_VERTICES = 32


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise (in x-right, y-up terms) hull of ``(n, 2)`` points; monotone chain."""
    pts = np.unique(np.asarray(points, dtype=float).reshape(-1, 2), axis=0)
    if len(pts) < 3:
        return pts

    def cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))

    lower: list[np.ndarray] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[np.ndarray] = []
    for p in pts[::-1]:
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


def polygon_area(verts: np.ndarray) -> float:
    """Signed shoelace area (positive = counter-clockwise with y up)."""
    x, y = verts[:, 0], verts[:, 1]
    return float(0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def contains(verts: np.ndarray, x: float, y: float) -> bool:
    """Point in polygon (even-odd rule); points on an edge count as inside."""
    inside = False
    n = len(verts)
    for i in range(n):
        x1, y1 = verts[i]
        x2, y2 = verts[(i + 1) % n]
        if min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2):
            if abs((x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)) < 1e-9:
                return True
        if (y1 > y) != (y2 > y):
            xi = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < xi:
                inside = not inside
    return inside


def reduce_convex(hull: np.ndarray, max_vertices: int = MAX_VERTICES,
                  keep_inside: tuple[float, float] | None = None) -> np.ndarray:
    """Drop least-area vertices of a convex polygon until ``max_vertices`` remain,
    never leaving ``keep_inside`` outside."""
    verts = [tuple(v) for v in hull]
    while len(verts) > max(3, max_vertices):
        n = len(verts)
        costs = []
        for i in range(n):
            a, b, c = verts[i - 1], verts[i], verts[(i + 1) % n]
            costs.append(abs((b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])))
        for i in np.argsort(costs):
            trial = verts[:int(i)] + verts[int(i) + 1:]
            if keep_inside is None or contains(np.array(trial), *keep_inside):
                verts = trial
                break
        else:
            break
    return np.array(verts, dtype=float)


def component_outline(rows: np.ndarray, cols: np.ndarray,
                      max_vertices: int = MAX_VERTICES) -> np.ndarray:
    """Pixel-corner outline ``(k, 2)`` (x, y in px, y down) of a component's pixels,
    counter-clockwise on a north-up map, <= ``max_vertices``."""
    rows = np.asarray(rows, dtype=float)
    cols = np.asarray(cols, dtype=float)
    corners = np.concatenate([np.stack([cols + dx, rows + dy], axis=1)
                              for dx in (0.0, 1.0) for dy in (0.0, 1.0)])
    # hull in (x, -y) so "counter-clockwise" means on the map (north up), then back
    flip = corners * np.array([1.0, -1.0])
    hull = convex_hull(flip)
    cx, cy = float(cols.mean()) + 0.5, -(float(rows.mean()) + 0.5)
    hull = reduce_convex(hull, max_vertices, (cx, cy))
    return hull * np.array([1.0, -1.0])


def box_outline(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """A box as a pixel outline, counter-clockwise on a north-up map: NW, SW, SE, NE."""
    return np.array([[x0, y0], [x0, y1], [x1, y1], [x1, y0]], dtype=float)


def outline_geometry(georef: GeoRef, outline_px: np.ndarray, size_px: float,
                     row: float) -> dict[str, Any]:
    """Bounds, counter-clockwise spoly, resolution (deg/px) and size (km) of an outline.

    ``size_px`` is converted with the pixel size at image row ``row``.
    """
    lon, lat = georef.pixel_to_lonlat(outline_px[:, 0], outline_px[:, 1])
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    c1min, c1max = lon_bounds(lon)
    verts = list(zip(continuous_lons(lon), lat.tolist(), strict=True))
    if _signed_area(verts) < 0:  # a south-up or mirrored image
        verts = verts[::-1]
    kx, ky = georef.pixel_size_km(row)
    plon, plat = georef.pixel_to_lonlat([0.0, 1.0, 0.0], [row, row, row + 1.0])
    rx = abs(float((plon[1] - plon[0] + 180.0) % 360.0 - 180.0))
    ry = abs(float(plat[2] - plat[0]))
    return {
        "c1min": c1min, "c1max": c1max,
        "c2min": float(lat.min()), "c2max": float(lat.max()),
        "s_region": spoly_literal(verts), "vertices": verts,
        "c1_resol_min": rx, "c1_resol_max": rx, "c2_resol_min": ry, "c2_resol_max": ry,
        "size_km": round(size_px * float(np.sqrt(kx * ky)), 4),
    }


def parse_spoly(text: str) -> list[tuple[float, float]]:
    """``{(lon1d,lat1d),...}`` -> vertices (degrees); for tests and checks."""
    return [tuple(float(v.rstrip("d")) for v in p.strip("(){}").split(","))  # type: ignore[misc]
            for p in text[1:-1].split("),(")]
