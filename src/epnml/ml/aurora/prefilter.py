"""The cheap first stage (numpy/scipy): find the disk, mask its night side, binarise, crop.

Pacios et al.'s OpenCV preprocessing, in scipy: an image goes on to the detector when its
night side holds more than one close bright object (their test), or, here also, one large
one (``large_area_px``: a diffuse aurora is one broad patch, which their test misses; 0
switches the addition off). Steps:

1. disk and night side: from the geometry when the file has one (SZA > 100 deg); else
   from the image alone -- the disk is the largest region above the sky (box-smoothed
   brightness > ``sky_r``), its circle fitted (least squares) to the region's edge away
   from the image border (partial disks), and the night side is the disk minus the
   dayglow (smoothed brightness > ``day_r``; dayglow is kilorayleighs) grown by 12 px
   (the twilight);
2. clean: a 3 x 3 median removes hot pixels, cosmic-ray hits and bad columns' edges;
   the limb brightening of a thin layer is divided out (``mu`` from the disk circle) so
   nightglow does not ring the limb;
3. binarise: zenith brightness above ``threshold_r`` on the night side (eroded 2 px),
   connected components of at least ``min_area_px`` pixels are the bright objects;
4. candidate: at least ``min_objects`` objects within ``gap_px`` of one another, or one
   of ``large_area_px`` pixels or more;
5. crop: a square around the disk circle (8 % margin), the detector's input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from epnml.ml.aurora.geometry import DiskGeometry


@dataclass(frozen=True)
class PrefilterParams:
    threshold_r: float = 8.0
    min_area_px: int = 4
    gap_px: float = 30.0
    min_objects: int = 2
    large_area_px: int = 40
    sky_r: float = 0.6
    day_r: float = 80.0


@dataclass
class Prefiltered:
    candidate: bool
    #: disk circle (cx, cy, r) in pixels; None when no disk was found
    disk: tuple[float, float, float] | None
    #: the detector's crop: (x0, y0, size) in image pixels (may reach outside the image)
    crop: tuple[int, int, int] | None
    night: np.ndarray
    #: bright objects: (x, y, area px) of each component
    objects: list[tuple[float, float, int]] = field(default_factory=list)
    #: the largest number of objects within gap_px of one of them
    n_close: int = 0


def fit_circle(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float, float]:
    """Least-squares (Kasa) circle through edge points: (cx, cy, r)."""
    a = np.column_stack([xs, ys, np.ones_like(xs)])
    b = xs ** 2 + ys ** 2
    (p, q, c), *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = p / 2, q / 2
    return float(cx), float(cy), float(np.sqrt(max(c + cx ** 2 + cy ** 2, 0.0)))


def disk_from_image(b: np.ndarray, sky_r: float) -> tuple[float, float, float] | None:
    """The disk circle of an image without geometry (None: no disk)."""
    h, w = b.shape
    mask = ndimage.uniform_filter(b, 5) > sky_r
    mask = ndimage.binary_closing(mask, iterations=2)
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    region = ndimage.binary_fill_holes(labels == int(np.argmax(sizes)) + 1)
    if region.sum() < 200:
        return None
    edge = region & ~ndimage.binary_erosion(region)
    ys, xs = np.nonzero(edge)
    inner = (xs > 1) & (xs < w - 2) & (ys > 1) & (ys < h - 2)
    if inner.sum() < 20:
        return None
    cx, cy, r = fit_circle(xs[inner] + 0.5, ys[inner] + 0.5)
    # the limb glow lies outside the surface: the fitted circle is slightly large
    return cx, cy, r


def prefilter(b: np.ndarray, geometry: DiskGeometry | None,
              params: PrefilterParams | None = None) -> Prefiltered:
    p = params or PrefilterParams()
    h, w = b.shape
    rows, cols = np.mgrid[0:h, 0:w].astype(float) + 0.5
    if geometry is not None:
        disk_mask, night = geometry.night_mask(w, h)
        disk: tuple[float, float, float] | None = (geometry.cx, geometry.cy,
                                                   geometry.disk_radius_px)
    else:
        disk = disk_from_image(b, p.sky_r)
        if disk is None:
            return Prefiltered(False, None, None, np.zeros_like(b, bool))
        cx, cy, r = disk
        disk_mask = (cols - cx) ** 2 + (rows - cy) ** 2 < (r - 2.0) ** 2
        day = ndimage.binary_dilation(ndimage.gaussian_filter(b, 3) > p.day_r, iterations=12)
        night = disk_mask & ~day
    if disk is None:  # a geometry always gives one; for the type checker
        return Prefiltered(False, None, None, np.zeros_like(b, bool))
    cx, cy, r = disk
    clean = ndimage.median_filter(b, 3)
    d2 = ((cols - cx) ** 2 + (rows - cy) ** 2) / max(r * r, 1.0)
    mu = np.sqrt(np.clip(1.0 - d2, 0.0, 1.0))
    zen = ndimage.gaussian_filter(clean * np.maximum(mu, 1 / 6), 1.0)
    night = ndimage.binary_erosion(night, iterations=2)
    bright = (zen > p.threshold_r) & night
    labels, n = ndimage.label(bright)
    objects: list[tuple[float, float, int]] = []
    if n:
        areas = ndimage.sum(bright, labels, range(1, n + 1))
        centres = ndimage.center_of_mass(bright, labels, range(1, n + 1))
        objects = [(float(x) + 0.5, float(y) + 0.5, int(a))
                   for (y, x), a in zip(centres, areas, strict=True) if a >= p.min_area_px]
    n_close = 0
    if objects:
        xy = np.array([(x, y) for x, y, _ in objects])
        dist = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
        n_close = int((dist <= p.gap_px).sum(axis=1).max())
    large = p.large_area_px > 0 and any(a >= p.large_area_px for _, _, a in objects)
    half = int(np.ceil(r * 1.08))
    crop = (int(round(cx)) - half, int(round(cy)) - half, 2 * half)
    return Prefiltered(n_close >= p.min_objects or large, disk, crop, night, objects, n_close)


def crop_square(b: np.ndarray, crop: tuple[int, int, int], out: int) -> np.ndarray:
    """The crop (zero outside the image) resampled to ``out x out`` (bilinear)."""
    x0, y0, size = crop
    h, w = b.shape
    canvas = np.zeros((size, size), np.float32)
    ax, ay = max(0, x0), max(0, y0)
    bx, by = min(w, x0 + size), min(h, y0 + size)
    if bx > ax and by > ay:
        canvas[ay - y0:by - y0, ax - x0:bx - x0] = b[ay:by, ax:bx]
    return np.asarray(ndimage.zoom(canvas, out / size, order=1, grid_mode=True,
                                   mode="nearest"), np.float32)[:out, :out]
