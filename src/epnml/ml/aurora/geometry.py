"""Where a pixel of a Mars disk image lands on the planet (pinhole camera, spherical Mars).

The camera sits at ``sc_dist_km`` from Mars' centre above the sub-spacecraft point
(planetocentric ``sc_lat``, east ``sc_lon``) and looks at the centre; the image is
north-up (Mars' spin axis projects upwards) with east to the right, as seen from outside.
Pixel coordinates are continuous: (0, 0) is the top-left corner of the first pixel,
(col + 0.5, row + 0.5) its centre; ``cx, cy`` is where Mars' centre falls (it may lie
outside the image: partial disks). ``scale_rad`` is the plate scale, radians per pixel
at the image centre (gnomonic: offsets are ``tan`` of the angle).

Used by the simulator (drawing) and by the stage (night side, footprints): one geometry
for both, so a footprint is where the simulator put the emission.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: IAU mean radius of Mars (km).
MARS_RADIUS_KM = 3389.5
#: solar zenith angle (deg) beyond which the surface point is on the night side.
NIGHT_SZA_DEG = 100.0


def unit(lat_deg: float | np.ndarray, lon_deg: float | np.ndarray) -> np.ndarray:
    """Body-fixed unit vector(s) of planetocentric latitude / east longitude (..., 3)."""
    la, lo = np.radians(lat_deg), np.radians(lon_deg)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


@dataclass(frozen=True)
class DiskGeometry:
    sc_lat: float
    sc_lon: float
    sc_dist_km: float
    scale_rad: float
    cx: float
    cy: float
    ss_lat: float
    ss_lon: float
    radius_km: float = MARS_RADIUS_KM

    def __post_init__(self) -> None:
        if not (-90.0 <= self.sc_lat <= 90.0 and -90.0 <= self.ss_lat <= 90.0):
            raise ValueError("latitudes must lie in [-90, 90] deg")
        if not all(math.isfinite(v) for v in (self.sc_lon, self.ss_lon, self.cx, self.cy)):
            raise ValueError("longitudes and the disk centre must be finite")
        if not self.sc_dist_km > self.radius_km * 1.01:
            raise ValueError(f"spacecraft distance {self.sc_dist_km:g} km is not above Mars")
        if not 0.0 < self.scale_rad < 0.1:
            raise ValueError(f"plate scale {self.scale_rad:g} rad/px is not in (0, 0.1)")
        if abs(self.sc_lat) > 89.0:
            raise ValueError("sub-spacecraft latitude beyond 89 deg: north-up is undefined")

    # --- camera frame -----------------------------------------------------------------
    def _frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        u = unit(self.sc_lat, self.sc_lon)
        pos = u * self.sc_dist_km
        look = -u
        z = np.array([0.0, 0.0, 1.0])
        up = z - np.dot(z, u) * u
        up /= np.linalg.norm(up)
        right = np.cross(look, up)
        return pos, look, up, right

    @property
    def disk_radius_px(self) -> float:
        """Apparent radius of the disk (px): tan of the limb angle over the plate scale."""
        ang = math.asin(self.radius_km / self.sc_dist_km)
        return math.tan(ang) / self.scale_rad

    def rays(self, col: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Unit ray directions (..., 3) through continuous pixel positions."""
        _, look, up, right = self._frame()
        dx = (np.asarray(col, float) - self.cx) * self.scale_rad
        dy = (self.cy - np.asarray(row, float)) * self.scale_rad
        r = look + dx[..., None] * right + dy[..., None] * up
        return np.asarray(r / np.linalg.norm(r, axis=-1, keepdims=True))

    def intersect(self, col: np.ndarray, row: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(hit, lat, lon, mu)`` per pixel position: whether the ray meets Mars, the
        planetocentric latitude / east longitude [0, 360) of the nearest intersection
        (NaN off the disk) and ``mu`` = cos of the emission angle there (0 off the disk)."""
        pos, _, _, _ = self._frame()
        r = self.rays(col, row)
        b = r @ pos
        disc = b * b - (pos @ pos - self.radius_km ** 2)
        hit = disc > 0
        t = -b - np.sqrt(np.where(hit, disc, 0.0))
        x = pos + t[..., None] * r
        n = x / self.radius_km
        lat = np.where(hit, np.degrees(np.arcsin(np.clip(n[..., 2], -1, 1))), np.nan)
        lon = np.where(hit, np.degrees(np.arctan2(n[..., 1], n[..., 0])) % 360.0, np.nan)
        mu = np.where(hit, np.clip(-(n * r).sum(-1), 0.0, 1.0), 0.0)
        return hit, lat, lon, mu

    def tangent_altitude(self, col: np.ndarray, row: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Altitude (km) of the closest approach of each ray to the surface (negative on
        the disk) and the unit vector of that point (for the limb glow)."""
        pos, _, _, _ = self._frame()
        r = self.rays(col, row)
        t = -(r @ pos)
        p = pos + t[..., None] * r
        d = np.linalg.norm(p, axis=-1)
        return d - self.radius_km, p / np.maximum(d, 1e-9)[..., None]

    def sza(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Solar zenith angle (deg) of surface points."""
        s = unit(self.ss_lat, self.ss_lon)
        return np.asarray(np.degrees(np.arccos(np.clip(unit(lat, lon) @ s, -1.0, 1.0))))

    def pixel_grid(self, width: int, height: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`intersect` at every pixel centre of a ``height x width`` image."""
        rows, cols = np.mgrid[0:height, 0:width].astype(float) + 0.5
        return self.intersect(cols, rows)

    def night_mask(self, width: int, height: int, sza_min: float = NIGHT_SZA_DEG
                   ) -> tuple[np.ndarray, np.ndarray]:
        """(disk, night) boolean masks of the image: on Mars, and on Mars with SZA above
        ``sza_min``."""
        hit, lat, lon, _ = self.pixel_grid(width, height)
        sza = np.where(hit, self.sza(np.nan_to_num(lat), np.nan_to_num(lon)), 0.0)
        return hit, hit & (sza > sza_min)

    def to_pixel(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
        """(col, row, visible) of surface points: visible = facing the camera."""
        pos, look, up, right = self._frame()
        x = unit(lat, lon) * self.radius_km
        v = x - pos
        depth = v @ look
        col = self.cx + (v @ right) / depth / self.scale_rad
        row = self.cy - (v @ up) / depth / self.scale_rad
        visible = ((x * (pos - x)).sum(-1) > 0) & (depth > 0)
        return col, row, visible
