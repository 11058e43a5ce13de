"""Connected regions of each spectral unit and their outlines as pgSphere polygons.

pgSphere ``spoly`` edges are great-circle arcs and a polygon must be simple and
smaller than a hemisphere, so outlines are built to be valid by construction:

* regions: connected cells of one unit (4- or 8-connectivity), joined across the
  0/360 deg seam;
* tiles: a region is cut at absolute 90 deg longitude boundaries (0, 90, 180,
  270), so no tile is wider than 90 deg (a quarter lune at most, far below a
  hemisphere) and none crosses 0 deg (``c1min < c1max`` always);
* inside a tile each 4-connected piece with a hole (a cell of another unit it
  encloses) is cut through the hole until none is left: its outline is then one
  simple rectilinear loop, traced with the interior on the left, i.e.
  counter-clockwise seen from outside the body (east right, north up);
* edges along parallels are densified (great circles bow poleward), vertices at
  the poles are collapsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

#: longest edge along a parallel before densification (deg of longitude).
DENSIFY_DEG = 2.0
#: longest meridian edge (deg of latitude); keeps every arc well below 180 deg.
MERIDIAN_DEG = 10.0
TILE_DEG = 90.0
#: enclosed holes up to this many cells are covered by the outline instead of cut out.
MAX_HOLE_CELLS = 9


@dataclass
class RegionTile:
    """One row of the units table: a simple polygon of one unit's region."""

    unit_id: int
    #: region number within its unit (0 = largest).
    region: int
    #: tile number within the region.
    tile: int
    cell_count: int
    #: total cells of the whole region (all its tiles).
    region_cells: int
    lon_min: float
    lon_max: float
    lat_min: float
    lat_max: float
    #: (lon east deg 0..360, lat deg), counter-clockwise, not closed (first != last).
    vertices: list[tuple[float, float]]
    #: (row, col) grid indices of the tile's cells.
    cells: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 2), int))


def label_regions(unit_grid: np.ndarray, unit: int, connectivity: int = 4,
                  wrap: bool = True) -> tuple[np.ndarray, int]:
    """Connected components of ``unit_grid == unit`` with the longitude seam joined."""
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    mask = unit_grid == unit
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    lab, n = ndimage.label(mask, structure=structure)
    if not wrap or n == 0:
        return lab, n
    parent = list(range(n + 1))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    last = lab.shape[1] - 1
    for r in range(lab.shape[0]):
        a = lab[r, last]
        if not a:
            continue
        neigh = [r] if connectivity == 4 else [r - 1, r, r + 1]
        for rr in neigh:
            if 0 <= rr < lab.shape[0] and lab[rr, 0]:
                ra, rb = find(int(a)), find(int(lab[rr, 0]))
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(n + 1)])
    uniq = np.unique(roots[1:])
    remap = np.zeros(n + 1, dtype=np.int64)
    remap[1:] = np.searchsorted(uniq, roots[1:]) + 1
    return remap[lab], int(uniq.size)


def _pieces(mask: np.ndarray, max_hole_cells: int = 0) -> list[np.ndarray]:
    """Hole-free 4-connected outline masks of ``mask``.

    Holes of at most ``max_hole_cells`` cells (no-data gaps, single-cell islands
    of another unit) are covered by the outline; larger ones are cut out by
    splitting the piece at the hole's first column, recursively.
    """
    lab, n = ndimage.label(mask)
    out: list[np.ndarray] = []
    for i in range(1, n + 1):
        piece = lab == i
        rows, cols = np.nonzero(piece)
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        sub = piece[r0:r1, c0:c1]
        holes = ndimage.binary_fill_holes(sub) & ~sub
        if not holes.any():
            out.append(piece)
            continue
        hl, nh = ndimage.label(holes)
        sizes = np.bincount(hl.ravel(), minlength=nh + 1)
        small = np.isin(hl, np.flatnonzero(sizes <= max_hole_cells)) & (hl > 0)
        if small.any():
            piece[r0:r1, c0:c1] |= small
            holes &= ~small
        if not holes.any():
            out.append(piece)
            continue
        cut = c0 + int(np.nonzero(holes)[1].min())
        left, right = piece.copy(), piece.copy()
        left[:, cut:] = False
        right[:, :cut] = False
        out += _pieces(left, max_hole_cells) + _pieces(right, max_hole_cells)
    return out


def _trace(piece: np.ndarray) -> list[tuple[int, int]] | None:
    """Corner-grid loop (x=col, y=row) around a hole-free piece, interior on the left.

    Returns None when the boundary is not a single simple loop (pinch points).
    """
    rows, cols = np.nonzero(piece)
    nxt: dict[tuple[int, int], tuple[int, int]] = {}
    occupied = set(zip(rows.tolist(), cols.tolist(), strict=True))
    for r, c in occupied:
        # counter-clockwise cell edges in (x=col, y=row): bottom, right, top, left
        edges = (((c, r), (c + 1, r), (r - 1, c)), ((c + 1, r), (c + 1, r + 1), (r, c + 1)),
                 ((c + 1, r + 1), (c, r + 1), (r + 1, c)), ((c, r + 1), (c, r), (r, c - 1)))
        for a, b, neighbour in edges:
            if neighbour in occupied:
                continue
            if a in nxt:
                return None  # two boundary edges leave one corner: pinch
            nxt[a] = b
    start = min(nxt)
    loop = [start]
    cur = nxt[start]
    while cur != start:
        loop.append(cur)
        cur = nxt[cur]
        if len(loop) > len(nxt):
            return None
    if len(loop) != len(nxt):
        return None
    # drop collinear corners
    out = []
    n = len(loop)
    for i in range(n):
        p, q, s = loop[i - 1], loop[i], loop[(i + 1) % n]
        if (q[0] - p[0]) * (s[1] - q[1]) - (q[1] - p[1]) * (s[0] - q[0]) != 0:
            out.append(q)
    return out


def _runs(piece: np.ndarray) -> list[np.ndarray]:
    """Fallback decomposition: one rectangle mask per horizontal run of cells."""
    out = []
    for r in np.unique(np.nonzero(piece)[0]):
        cols = np.nonzero(piece[r])[0]
        breaks = np.flatnonzero(np.diff(cols) > 1)
        for seg in np.split(cols, breaks + 1):
            m = np.zeros_like(piece)
            m[r, seg] = True
            out.append(m)
    return out


def densify(vertices: list[tuple[float, float]], max_lon_step: float = DENSIFY_DEG,
            max_lat_step: float = MERIDIAN_DEG) -> list[tuple[float, float]]:
    """Insert points along parallels (and long meridians); collapse duplicate pole vertices."""
    out: list[tuple[float, float]] = []
    n = len(vertices)
    for i in range(n):
        (x0, y0), (x1, y1) = vertices[i], vertices[(i + 1) % n]
        if y0 == y1:
            k = int(np.ceil(abs(x1 - x0) / max_lon_step)) if abs(y0) < 90 else 1
        else:
            k = int(np.ceil(abs(y1 - y0) / max_lat_step))
        for j in range(max(k, 1)):
            t = j / max(k, 1)
            out.append((x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
    clean: list[tuple[float, float]] = []
    for lon, lat in out:
        pt = (0.0, lat) if abs(lat) >= 90.0 else (lon, lat)
        if not clean or _key(clean[-1]) != _key(pt):
            clean.append(pt)
    while len(clean) > 1 and _key(clean[0]) == _key(clean[-1]):
        clean.pop()
    return clean


def _key(p: tuple[float, float]) -> tuple[float, float]:
    lon, lat = p
    return (0.0, round(lat, 9)) if abs(lat) >= 90.0 else (round(lon % 360.0, 9), round(lat, 9))


def signed_area(vertices: list[tuple[float, float]]) -> float:
    """Shoelace area in the (lon, lat) plane: > 0 means counter-clockwise."""
    x = np.array([v[0] for v in vertices])
    y = np.array([v[1] for v in vertices])
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def unit_regions(cells_row: np.ndarray, cells_col: np.ndarray, labels: np.ndarray,
                 step_deg: float, max_abs_lat: float, connectivity: int = 4,
                 tile_deg: float = TILE_DEG, min_cells: int = 1,
                 max_hole_cells: int = MAX_HOLE_CELLS) -> list[RegionTile]:
    """Regions and simple CCW polygon tiles of every unit on a lat/lon grid.

    ``cells_row``/``cells_col`` index the grid (row 0 at ``-max_abs_lat``, col 0
    at 0 deg E); ``labels`` are unit ids (negative = no unit).  Regions smaller
    than ``min_cells`` are dropped.  An outline may cover enclosed holes of at
    most ``max_hole_cells`` cells (their own units have their own rows);
    ``cell_count`` counts only the region's cells.
    """
    n_lat = int(round(2 * max_abs_lat / step_deg))
    n_lon = int(round(360.0 / step_deg))
    grid = np.full((n_lat, n_lon), -1, dtype=np.int64)
    grid[np.asarray(cells_row), np.asarray(cells_col)] = np.asarray(labels)
    per_tile = max(1, int(np.floor(tile_deg / step_deg + 1e-9)))
    tiles: list[RegionTile] = []
    for unit in sorted(int(u) for u in np.unique(labels) if u >= 0):
        lab, n = label_regions(grid, unit, connectivity)
        sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        order = sorted(range(n), key=lambda i: (-sizes[i], i))
        region_no = 0
        for idx in order:
            if sizes[idx] < min_cells:
                continue
            region = lab == idx + 1
            tile_no = 0
            for c0 in range(0, n_lon, per_tile):
                chunk = np.zeros_like(region)
                chunk[:, c0: c0 + per_tile] = region[:, c0: c0 + per_tile]
                if not chunk.any():
                    continue
                for piece in _pieces(chunk, max_hole_cells):
                    loop = _trace(piece)
                    parts = [(piece, loop)] if loop is not None else \
                        [(m, _trace(m)) for m in _runs(piece)]
                    for outline, corners in parts:
                        if corners is None:  # a single run is always a rectangle
                            raise RuntimeError("cannot trace a rectangle outline")
                        mask = outline & chunk
                        if not mask.any():
                            continue
                        verts = [(x * step_deg, -max_abs_lat + y * step_deg) for x, y in corners]
                        verts = densify(verts)
                        rr, cc = np.nonzero(outline)
                        tiles.append(RegionTile(
                            unit_id=unit, region=region_no, tile=tile_no,
                            cell_count=int(mask.sum()), region_cells=int(sizes[idx]),
                            lon_min=float(cc.min() * step_deg),
                            lon_max=float((cc.max() + 1) * step_deg),
                            lat_min=float(-max_abs_lat + rr.min() * step_deg),
                            lat_max=float(-max_abs_lat + (rr.max() + 1) * step_deg),
                            vertices=[(round(x % 360.0 if x != 360.0 else 360.0, 6),
                                       round(y, 6)) for x, y in verts],
                            cells=np.argwhere(mask)))
                        tile_no += 1
            region_no += 1
    return tiles


def spoly_literal(vertices: list[tuple[float, float]], digits: int = 4) -> str:
    """pgSphere text ``{(lon1d,lat1d),(lon2d,lat2d),...}`` (degrees, ``d`` suffix)."""
    if len(vertices) < 3:
        raise ValueError(f"a polygon needs at least 3 vertices, got {len(vertices)}")
    fmt = f"{{:.{digits}f}}"
    return "{" + ",".join(f"({fmt.format(lon)}d,{fmt.format(lat)}d)"
                          for lon, lat in vertices) + "}"
