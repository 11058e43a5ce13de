"""Seeded simulator of Mars DTM scenes with mound fields -- SIMULATED data.

Why: issue 4's mound case (GMAP: U-Net segmentation of mound fields from DTMs or
images) needs DTMs with pixel-exact mound masks, and no real labelled DTMs are
available offline. Every file written here says "simulated" in its name and the
GeoTIFF citation.

What is physical (order of magnitude, not fitted to a catalogue)
----------------------------------------------------------------
* Elevation in metres on a grid of ``pixel_m`` (default 20 m, HRSC/CTX-DTM-like).
* Background: multi-scale smooth terrain (sum of bicubically upsampled Gaussian noise at
  4 scales, 5-40 m amplitude) plus a regional tilt of up to 1 deg.
* Mounds (pitted cones / mud-volcano-like domes of Chryse, Acidalia, Utopia): cones
  ``h (1 - r/R)`` or domes ``h sqrt(1 - (r/R)^2)``, 40-80 % of them with a summit pit,
  basal radius 60-300 m, height/diameter 0.05-0.2, slightly elliptical (axis ratio
  0.7-1), grouped in 1-3 clustered fields of 4-25 mounds (Gaussian scatter around a
  field centre) -- the spatial clustering reported for such fields.
* Distractors a model must not call mounds: bowl-shaped impact craters with raised rims
  (depth/diameter 0.1-0.2, rim height 4 % of D), linear ridges (wrinkle-ridge/yardang-
  like, 2-8 km long), and 0.3-1 m DTM noise.

What is made up
---------------
Mound shapes are analytic, there is no erosion, no overlap physics (overlapping mounds
add heights), no stereo artefacts, no albedo. The mask is the inner footprint
r < 0.85 R (where a cone still stands >= 15 % of its height; the outermost flank
merges into the terrain noise and is left out of the label).

Seeds: :func:`simulate_dtm` is deterministic for a given ``seed``; training uses seeds
``1000..`` and held-out evaluation ``900000..`` (disjoint by construction).

Run ``python -m epnml.ingest.simulate.mounds --out DIR --n 3 --seed 1``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from epnml.ml.mounds.shading import hillshade

from .geotiff import write_mars_geotiff

#: default DTM pixel size (m).
PIXEL_M = 20.0
#: mask = mound footprint inside this fraction of the basal radius.
MASK_R = 0.85


@dataclass(frozen=True)
class Mound:
    """One simulated mound: centre (px), basal radius (px), height (m), shape."""

    x: float
    y: float
    radius_px: float
    height_m: float
    shape: str
    pitted: bool


@dataclass
class DtmScene:
    """A simulated DTM (metres), its mound mask and the mounds drawn."""

    dtm: np.ndarray
    mask: np.ndarray
    mounds: list[Mound]
    pixel_m: float
    seed: int


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Unit-variance smooth field: Gaussian noise on a coarse grid, bicubic upsampled."""
    from PIL import Image

    h, w = shape
    gh, gw = max(2, h // cells + 2), max(2, w // cells + 2)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    big = Image.fromarray(coarse, mode="F").resize((gw * cells, gh * cells),
                                                  Image.Resampling.BICUBIC)
    arr = np.asarray(big, dtype=np.float32)[:h, :w]
    return (arr - arr.mean()) / max(float(arr.std()), 1e-6)


def simulate_dtm(seed: int, size: int | tuple[int, int] = 256, pixel_m: float = PIXEL_M,
                 n_fields: int | None = None, distractors: bool = True) -> DtmScene:
    """A DTM scene with 0-3 mound fields (``n_fields`` None = random 1-3, 10 % none)."""
    rng = np.random.default_rng(seed)
    h, w = (size, size) if isinstance(size, int) else size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dtm = np.zeros((h, w), np.float32)
    for cells, amp in ((96, rng.uniform(10, 40)), (32, rng.uniform(4, 12)),
                       (12, rng.uniform(1, 4)), (4, rng.uniform(0.2, 1.0))):
        dtm += amp * _smooth_noise(rng, (h, w), cells)
    tilt = math.tan(math.radians(rng.uniform(0, 1.0))) * pixel_m
    ang = rng.uniform(0, 2 * math.pi)
    dtm += tilt * (xx * math.cos(ang) + yy * math.sin(ang))
    mound_layer = np.zeros((h, w), np.float32)
    mask = np.zeros((h, w), bool)
    mounds: list[Mound] = []
    if n_fields is None:
        n_fields = 0 if rng.random() < 0.1 else int(rng.integers(1, 4))
    for _ in range(n_fields):
        fx, fy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
        spread = rng.uniform(0.06, 0.2) * min(h, w)
        for _ in range(int(rng.integers(4, 26))):
            r_m = float(np.exp(rng.uniform(np.log(60), np.log(300))))
            rad = r_m / pixel_m
            cx = float(np.clip(fx + rng.normal(0, spread), -rad / 2, w + rad / 2))
            cy = float(np.clip(fy + rng.normal(0, spread), -rad / 2, h + rad / 2))
            height = 2 * r_m * rng.uniform(0.05, 0.2)
            shape = "cone" if rng.random() < 0.55 else "dome"
            pitted = bool(rng.random() < rng.uniform(0.4, 0.8))
            q, th = rng.uniform(0.7, 1.0), rng.uniform(0, math.pi)
            dx, dy = xx - cx, yy - cy
            u = (dx * math.cos(th) + dy * math.sin(th)) / q
            v = -dx * math.sin(th) + dy * math.cos(th)
            rr = np.sqrt(u * u + v * v) / rad
            inside = rr < 1.0
            if not inside.any():
                continue
            prof = (1.0 - rr) if shape == "cone" else np.sqrt(np.clip(1.0 - rr * rr, 0, 1))
            bump = np.where(inside, height * prof, 0.0).astype(np.float32)
            if pitted:
                pr = rng.uniform(0.15, 0.3)
                bump -= np.where(rr < pr, 0.3 * height * (1 - (rr / pr) ** 2), 0.0
                                 ).astype(np.float32)
            mound_layer += bump
            mask |= rr < MASK_R
            mounds.append(Mound(cx, cy, rad, height, shape, pitted))
    dtm += mound_layer
    if distractors:
        for _ in range(int(rng.integers(0, 6))):  # craters: bowl + raised rim
            d_m = float(np.exp(rng.uniform(np.log(150), np.log(1500))))
            rad = d_m / 2 / pixel_m
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            rr = np.hypot(xx - cx, yy - cy) / rad
            depth = d_m * rng.uniform(0.1, 0.2)
            rim = 0.04 * d_m
            bowl = np.where(rr < 1, -depth * (1 - rr ** 2) + rim, rim * np.exp(-((rr - 1) / 0.35)
                                                                               ** 2))
            dtm += bowl.astype(np.float32)
        for _ in range(int(rng.integers(0, 3))):  # ridges: long, narrow, smooth crests
            length = rng.uniform(2000, 8000) / pixel_m
            width = rng.uniform(100, 400) / pixel_m
            cx, cy, th = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, math.pi)
            along = (xx - cx) * math.cos(th) + (yy - cy) * math.sin(th)
            across = -(xx - cx) * math.sin(th) + (yy - cy) * math.cos(th)
            taper = np.clip(1 - (np.abs(along) / (length / 2)) ** 4, 0, 1)
            dtm += (rng.uniform(10, 60) * taper * np.exp(-(across / width) ** 2)
                    ).astype(np.float32)
    dtm += rng.normal(0, rng.uniform(0.3, 1.0), (h, w)).astype(np.float32)
    dtm += float(rng.uniform(-4000, 0))  # a plausible absolute elevation (northern plains)
    return DtmScene(dtm.astype(np.float32), mask, mounds, pixel_m, seed)


def add_mound(scene: DtmScene, x: float, y: float, radius_px: float, height_m: float,
              shape: str = "cone") -> DtmScene:
    """Draw one circular mound (no pit) at a chosen place, updating the DTM and the mask
    (fixtures that need known positions)."""
    h, w = scene.dtm.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rr = np.hypot(xx - x, yy - y) / radius_px
    prof = (1.0 - rr) if shape == "cone" else np.sqrt(np.clip(1.0 - rr * rr, 0, 1))
    scene.dtm += np.where(rr < 1.0, height_m * prof, 0.0).astype(np.float32)
    scene.mask |= rr < MASK_R
    scene.mounds.append(Mound(x, y, radius_px, height_m, shape, False))
    return scene


def write_dtm_geotiff(path: Path, scene: DtmScene, lon0: float, lat0: float) -> Path:
    """Float32 DTM (m) as a Mars equirectangular GeoTIFF, top-left corner at lon0/lat0."""
    return write_mars_geotiff(path, scene.dtm, lon0, lat0, scene.pixel_m)


def write_hillshade_png(path: Path, scene: DtmScene) -> Path:
    """8-bit hillshade PNG WITHOUT georeference (its rows get NULL geometry)."""
    from PIL import Image

    shade = hillshade(scene.dtm, scene.pixel_m)
    Image.fromarray((shade * 255).round().astype(np.uint8), mode="L").save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="write SIMULATED Mars DTM scenes with mounds")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--lon", type=float, default=20.0, help="east longitude of the first scene")
    p.add_argument("--lat", type=float, default=35.0, help="latitude of its top edge")
    p.add_argument("--pds3", action="store_true",
                   help="write PDS3 image products (.IMG, attached label) instead of GeoTIFFs")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.n):
        scene = simulate_dtm(args.seed + i, args.size)
        lon = (args.lon + i * args.size * scene.pixel_m / MARS_KM_PER_DEG / 1000.0) % 360.0
        stem = f"simulated_mounds_dtm_{args.seed + i}"
        if args.pds3:
            from .pds3_image import write_mars_pds3_image

            write_mars_pds3_image(args.out / f"{stem.upper()}.IMG", scene.dtm, lon, args.lat,
                                  scene.pixel_m)
        else:
            write_dtm_geotiff(args.out / f"{stem}.tif", scene, lon, args.lat)
        write_hillshade_png(args.out / f"{stem}_hillshade.png", scene)
        np.save(args.out / f"{stem}_mask.npy", scene.mask)
        print(f"{stem}: {len(scene.mounds)} mounds")
    return 0


#: km per degree on the IAU 2000 Mars sphere.
MARS_KM_PER_DEG = 2 * math.pi * 3396.19 / 360.0

if __name__ == "__main__":
    raise SystemExit(main())
