"""Seeded simulator of HiRISE-like images with residual water-ice patches -- SIMULATED data.

Why: the ice case of issue 4 (Gergacz & Kereszturi: residual water-ice patches at 40-60 deg
S after the seasonal cap retreat, HiRISE, 1024 x 1024 chunks) needs labelled images, and
no labelled HiRISE images are available offline. Every file written here says
"simulated" in its name and GeoTIFF citation.

What is physical (order of magnitude)
-------------------------------------
* Latitude -40..-60 deg, 0.5 m pixels (HiRISE binned 2x2), north up, 8-bit DN.
* Relief: smooth multi-scale terrain plus crater bowls (radius 75-250 m, depth/diameter
  0.1-0.2) -- the walls where residual ice survives.
* Sun from the north (southern spring/summer; azimuth -30..30 deg from north), incidence
  55-75 deg; Lambertian shading plus a 10 % diffuse sky term. Poleward (south-facing)
  slopes are therefore shaded.
* Ice patches (icy scenes): irregular blobs seeded on poleward-facing slopes steeper than
  8 deg and clipped to them (dilated by a few metres), 10-75 m across, albedo 0.55-0.8
  against 0.15-0.25 for the soil: bright spots on dark slopes.
* Confounders (each drawn independently in any scene, icy or not):
  - saturated pixels: blobs and streaks clipped at DN 255 on sunlit slopes;
  - sunlit bright patches: bright (albedo 0.35-0.55) soil on equator-facing slopes;
  - CO2-frost-like diffuse brightening: a large smooth region (hundreds of metres) with
    +0.08..0.2 albedo over all slopes and soft edges;
  - patches cut by chunk edges: 30 % of ice patches are centred within 40 px of a
    chunk border, so part of them falls in the neighbouring chunk.

What is made up
---------------
Shapes are thresholded smooth noise, no photometric function beyond Lambert, no
atmosphere, no MTF or CCD seams, no shadows cast by relief (only self-shading), ice
brightness is not tied to thickness or grain size, and the labels are exact.

Labels: a chunk is icy when it holds at least ``MIN_ICE_PX`` ice pixels (800 px = 200 m^2
at 0.5 m); an image "has ice" when any chunk is icy.

Seeds: :func:`simulate_ice_scene` is deterministic for a given seed; training uses seeds
``5000..``, held-out evaluation ``700000..`` (disjoint by construction).

Run ``python -m epnml.ingest.simulate.ice --out DIR --n 2 --seed 1``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .geotiff import MARS_R, write_mars_geotiff

CHUNK = 1024
PIXEL_M = 0.5
MIN_ICE_PX = 800


@dataclass
class IceScene:
    """A simulated 8-bit image, its ice mask and per-chunk labels."""

    image: np.ndarray
    ice: np.ndarray
    #: ``(rows, cols)`` ice pixel counts per chunk and icy labels (>= MIN_ICE_PX).
    chunk_ice_px: np.ndarray
    chunk_labels: np.ndarray
    confounders: dict[str, int] = field(default_factory=dict)
    seed: int = 0
    pixel_m: float = PIXEL_M
    chunk: int = CHUNK

    @property
    def has_ice(self) -> bool:
        return bool(self.chunk_labels.any())


def _smooth(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    from PIL import Image

    h, w = shape
    gh, gw = h // cells + 3, w // cells + 3
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    big = np.asarray(Image.fromarray(coarse, mode="F").resize(
        (gw * cells, gh * cells), Image.Resampling.BICUBIC), dtype=np.float32)
    oy, ox = int(rng.integers(0, cells)), int(rng.integers(0, cells))
    arr = big[oy:oy + h, ox:ox + w]
    return (arr - arr.mean()) / max(float(arr.std()), 1e-6)


def _blob(rng: np.random.Generator, radius: float) -> np.ndarray:
    """Irregular boolean blob in a ``(2r+1)^2`` window: an ellipse roughened by noise."""
    r = max(3, int(math.ceil(radius)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float32)
    q, th = rng.uniform(0.4, 1.0), rng.uniform(0, math.pi)
    u = (xx * math.cos(th) + yy * math.sin(th)) / radius
    v = (-xx * math.sin(th) + yy * math.cos(th)) / (radius * q)
    rough = _smooth(rng, (2 * r + 1, 2 * r + 1), max(2, r // 3)) * 0.25
    return np.asarray(np.hypot(u, v) + rough < 1.0)


def _stamp(target: np.ndarray, blob: np.ndarray, cy: int, cx: int) -> None:
    """OR ``blob`` (centred at cy, cx) into ``target``, clipped to its edges."""
    h, w = target.shape
    r = blob.shape[0] // 2
    y0, x0 = cy - r, cx - r
    a, b = max(0, y0), max(0, x0)
    c, d = min(h, y0 + blob.shape[0]), min(w, x0 + blob.shape[1])
    if a < c and b < d:
        target[a:c, b:d] |= blob[a - y0:c - y0, b - x0:d - x0]


def simulate_ice_scene(seed: int, chunks: tuple[int, int] = (2, 2), icy: bool | None = None,
                       pixel_m: float = PIXEL_M,
                       confounders: tuple[str, ...] | None = None) -> IceScene:
    """One image of ``chunks`` (rows, cols) chunks of 512 m (1024 px at 0.5 m).

    ``icy`` None = random (45 % icy); ``confounders`` None = each of ``saturated``,
    ``sunlit``, ``co2`` drawn with probability 0.35; edge-cut patches are always possible.
    Sizes are in metres, so a coarser ``pixel_m`` gives the same scene faster (training
    uses 2 m); pixel noise is scaled by ``0.5 / pixel_m`` so that block means at a common
    scale carry the same noise.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    k_px = PIXEL_M / pixel_m  # pixels per 0.5 m pixel

    def px(n: float) -> int:
        return max(1, int(round(n * k_px)))

    chunk = px(CHUNK)
    min_ice = MIN_ICE_PX * k_px * k_px
    h, w = chunks[0] * chunk, chunks[1] * chunk
    shape = (h, w)
    z = (rng.uniform(8, 25) * _smooth(rng, shape, px(384)) +
         rng.uniform(0.3, 1.0) * _smooth(rng, shape, px(96))).astype(np.float32)
    yy, xx = np.ogrid[0:h, 0:w]
    n_area = chunks[0] * chunks[1] / 4
    for _ in range(rng.poisson(3 * n_area) + 1):  # crater bowls: steep walls both ways
        rad = rng.uniform(150, 500) * k_px
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        y0, y1 = int(max(0, cy - 1.6 * rad)), int(min(h, cy + 1.6 * rad))
        x0, x1 = int(max(0, cx - 1.6 * rad)), int(min(w, cx + 1.6 * rad))
        if y0 >= y1 or x0 >= x1:
            continue
        rr = np.hypot(yy[y0:y1] - cy, xx[:, x0:x1] - cx) / rad
        depth = 2 * rad * pixel_m * rng.uniform(0.1, 0.2)
        z[y0:y1, x0:x1] += np.where(rr < 1, -depth * (1 - rr ** 2), 0.0).astype(np.float32) \
            + (0.08 * depth * np.exp(-((rr - 1) / 0.3) ** 2)).astype(np.float32)
    gy, gx = np.gradient(z, pixel_m)
    # unit normal (east = +x, north = -row), sun from the north at altitude alt
    inc = math.radians(rng.uniform(55, 75))
    az = math.radians(rng.uniform(-30, 30))
    sun = (math.sin(inc) * math.sin(az), math.sin(inc) * math.cos(az), math.cos(inc))
    dzdx, dzdn = gx, -gy  # slope towards east and towards north
    norm = np.sqrt(1 + dzdx ** 2 + dzdn ** 2)
    shading = np.clip((-dzdx * sun[0] - dzdn * sun[1] + sun[2]) / norm, 0, None)
    shading = (0.9 * shading / max(math.cos(inc), 0.2) + 0.1).astype(np.float32)
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    poleward = (dzdn > 0) & (slope > 8)  # ground rises to the north: faces south (pole)
    sunward = (dzdn < 0) & (slope > 6)
    albedo = (0.2 + 0.025 * _smooth(rng, shape, px(128))).astype(np.float32)
    used: dict[str, int] = {}
    wanted = confounders if confounders is not None else tuple(
        k for k in ("saturated", "sunlit", "co2") if rng.random() < 0.35)
    if "co2" in wanted:
        frost = _smooth(rng, shape, px(int(rng.integers(300, 700))))
        level = rng.uniform(0.6, 1.3)
        soft = np.clip((frost - level) / 0.6, 0, 1).astype(np.float32)
        albedo += rng.uniform(0.08, 0.2) * soft
        used["co2"] = int((soft > 0.5).sum())
    if "sunlit" in wanted:
        bright = np.zeros(shape, bool)
        seeds = np.flatnonzero(sunward.ravel())
        for _ in range(int(rng.integers(2, 10)) if seeds.size else 0):
            k = int(seeds[rng.integers(seeds.size)])
            _stamp(bright, _blob(rng, rng.uniform(20, 120) * k_px), k // w, k % w)
        bright &= ndimage.binary_dilation(sunward, iterations=px(6))
        albedo[bright] = rng.uniform(0.35, 0.55)
        used["sunlit"] = int(bright.sum())
    ice = np.zeros(shape, bool)
    is_icy = rng.random() < 0.45 if icy is None else icy
    if is_icy:
        seeds = np.flatnonzero(poleward.ravel())
        n_patches = int(rng.integers(1, 4 + int(6 * n_area)))
        pole_zone = ndimage.binary_dilation(poleward, iterations=px(8))
        for _ in range(n_patches if seeds.size else 0):
            k = int(seeds[rng.integers(seeds.size)])
            cy, cx = k // w, k % w
            if rng.random() < 0.3:  # near a chunk border: the patch is cut in two
                shift = int(round(rng.integers(-40, 41) * k_px))
                if rng.random() < 0.5 and chunks[1] > 1:
                    cx = chunk * int(rng.integers(1, chunks[1])) + shift
                elif chunks[0] > 1:
                    cy = chunk * int(rng.integers(1, chunks[0])) + shift
            patch = np.zeros(shape, bool)
            _stamp(patch, _blob(rng, rng.uniform(20, 75) / pixel_m / 2), cy, cx)
            ice |= patch & pole_zone
    radiance = albedo * shading
    if ice.any():
        ice_alb = rng.uniform(0.55, 0.8)
        radiance = np.where(ice, ice_alb * (0.35 + 0.65 * shading), radiance)
    gain = rng.uniform(90, 140) / 0.2  # DN of mean soil on flat ground
    noise = rng.uniform(1.5, 4.0) * min(1.0, k_px)
    dn = radiance * gain + (noise * rng.standard_normal(shape, dtype=np.float32))
    if "saturated" in wanted:
        sat = np.zeros(shape, bool)
        seeds = np.flatnonzero((sunward & (shading > np.percentile(shading, 80))).ravel())
        for _ in range(int(rng.integers(1, 6)) if seeds.size else 0):
            k = int(seeds[rng.integers(seeds.size)])
            blob = _blob(rng, rng.uniform(8, 60) * k_px)
            if rng.random() < 0.4:  # a streak along a row (detector bleeding)
                blob = np.zeros_like(blob)
                r = blob.shape[0] // 2
                blob[r - 1:r + 2, :] = True
            _stamp(sat, blob, k // w, k % w)
        dn[sat] = 255.0
        used["saturated"] = int(sat.sum())
    image = np.clip(np.round(dn), 0, 255).astype(np.uint8)
    counts = ice.reshape(chunks[0], chunk, chunks[1], chunk).sum(axis=(1, 3))
    return IceScene(image, ice, counts, counts >= min_ice, used, seed, pixel_m, chunk)


def write_ice_geotiff(path: Path, scene: IceScene, lon0: float, lat0: float) -> Path:
    """8-bit image as a Mars equirectangular GeoTIFF, top-left corner at lon0 / lat0.

    The standard parallel is the image's centre latitude, so its pixels are ``pixel_m``
    square on the ground (HiRISE RDRs do the same): with the parallel at 0 a 512 m chunk
    at 50 deg S spanned only 0.33 km east-west while the rows said 0.512 km."""
    height_m = scene.image.shape[0] * scene.pixel_m
    centre = lat0 - math.degrees(height_m / 2.0 / MARS_R)
    return write_mars_geotiff(path, scene.image, lon0, lat0, scene.pixel_m,
                              std_parallel=centre)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="write SIMULATED HiRISE-like ice-patch images")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lon", type=float, default=100.0)
    p.add_argument("--lat", type=float, default=-50.0)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.n):
        scene = simulate_ice_scene(args.seed + i)
        stem = f"simulated_ice_{args.seed + i}"
        write_ice_geotiff(args.out / f"{stem}.tif", scene, args.lon + 0.05 * i, args.lat)
        np.save(args.out / f"{stem}_chunks.npy", scene.chunk_labels)
        print(f"{stem}: icy chunks {scene.chunk_labels.astype(int).tolist()}, "
              f"confounders {scene.confounders}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
