"""SIMULATED HiRISE-like image of Mars with skylights, pit craters and impact craters.

Why: the demo (``ingest/demo.sh``) runs on a machine without spacecraft data, and the pits
query of the documentation ("Type-1 skylights within 2 deg of 135.05 E, 4.95 S") needs a
pits granule to answer on. The real DeepLandforms crops (shared data) carry no
georeference and may not be copied into the project, so the demo ingests this simulated
scene instead: every row made from it says SIMULATED (``processing_level_desc`` of the
pits stage names the file, whose name starts with ``simulated_``).

The scene imitates a HiRISE RED print crop at the scale the pits model was trained on
(900 x 900 px, landforms 30-200 px across): dusty plains (multi-scale noise, gentle
shaded relief), collapse skylights (sharp-edged, almost black holes with a thin lit
far wall), pit craters (wide bowls, shadowed near wall, lit far wall, medium floor) and
small impact craters (raised, shaded rims). Sun from the left (west), as drawn shadows
fall inside the near (west) walls. Seeded; truth boxes are returned with the pixels.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .geotiff import MARS_R, write_mars_geotiff

SIZE = 900
#: ground size of a pixel (m): a HiRISE RDR at 1 m (binned); a skylight of ~50 px = 50 m.
PIXEL_M = 1.0
#: top-left corner: inside the circle of the documented query (135.05 E, 4.95 S, 2 deg).
LON0, LAT0 = 135.0, -4.9
#: DeepLandforms class index (0-based) of each drawn kind.
KINDS = {"skylight": 0, "pit crater": 1, "impact crater": 4}


@dataclass
class PitsScene:
    image: np.ndarray
    pixel_m: float
    #: (kind, class index 0..4, x_min, y_min, x_max, y_max) in pixels
    truth: list[tuple[str, int, float, float, float, float]] = field(default_factory=list)


def _smooth(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    from PIL import Image

    noise = rng.normal(0, 1, (cells, cells)).astype(np.float32)
    img = Image.fromarray(noise, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float64)


def simulate_pits_scene(seed: int, size: int = SIZE) -> PitsScene:
    """A seeded scene: 3 skylights, 2 pit craters, 4 impact craters, no overlaps."""
    rng = np.random.default_rng(seed)
    relief = 0.6 * _smooth(rng, size, 6) + 0.3 * _smooth(rng, size, 24)
    shade = np.gradient(relief, axis=1) * 40.0  # lit from the west
    img = 0.52 + 0.05 * relief + 0.04 * shade + 0.025 * _smooth(rng, size, 120)
    img += rng.normal(0, 0.012, img.shape)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    placed: list[tuple[float, float, float]] = []
    truth: list[tuple[str, int, float, float, float, float]] = []
    plan = [("pit crater", 60, 90)] * 2 + [("skylight", 18, 30)] * 3 + \
        [("impact crater", 14, 32)] * 4
    for kind, rmin, rmax in plan:
        for _ in range(500):
            r = float(rng.uniform(rmin, rmax))
            cx, cy = (float(v) for v in rng.uniform(r + 20, size - r - 20, 2))
            if all(math.hypot(cx - x, cy - y) > r + q + 25 for x, y, q in placed):
                break
        else:
            continue
        placed.append((cx, cy, r))
        d = np.hypot(xx - cx, yy - cy) / r
        u = (xx - cx) / r  # -1 west wall .. +1 east wall
        if kind == "skylight":
            hole = d < 1.0
            img[hole] = 0.03 + 0.02 * rng.random(int(hole.sum()))
            wall = (d >= 0.82) & (d < 1.0) & (u > 0.35)  # the lit far wall inside the hole
            img[wall] = 0.30
            half = r
        elif kind == "pit crater":
            bowl = d < 1.0
            img[bowl] = 0.40 + 0.32 * u[bowl] * (d[bowl] ** 1.5) + 0.01 * rng.normal(
                size=int(bowl.sum()))
            img[bowl & (u < -0.2) & (d > 0.55)] = 0.10  # the shadowed near wall
            half = r
        else:
            rim = (d >= 0.85) & (d < 1.25)
            img[rim] += 0.12 * u[rim]
            bowl = d < 0.85
            img[bowl] = 0.48 + 0.2 * u[bowl] * d[bowl]
            img[bowl & (u < -0.3) & (d > 0.5)] = 0.16
            half = 1.1 * r
        truth.append((kind, KINDS[kind], round(cx - half, 1), round(cy - half, 1),
                      round(cx + half, 1), round(cy + half, 1)))
    u8 = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return PitsScene(u8, PIXEL_M, truth)


def write_pits_geotiff(path: Path, scene: PitsScene, lon0: float = LON0,
                       lat0: float = LAT0) -> Path:
    """8-bit Mars equirectangular GeoTIFF, top-left at lon0 / lat0, square pixels at the
    image's centre latitude (as HiRISE RDRs)."""
    centre = lat0 - math.degrees(scene.image.shape[0] * scene.pixel_m / 2.0 / MARS_R)
    return write_mars_geotiff(path, scene.image, lon0, lat0, scene.pixel_m,
                              std_parallel=centre)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="write SIMULATED HiRISE-like pit images "
                                             "(Mars GeoTIFF) and their truth boxes (JSON)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.n):
        scene = simulate_pits_scene(args.seed + i)
        tif = write_pits_geotiff(args.out / f"simulated_hirise_pits_{args.seed + i}.tif", scene,
                                 LON0 + 0.02 * i, LAT0)
        tif.with_suffix(".truth.json").write_text(json.dumps(
            [dict(zip(("kind", "class", "x_min", "y_min", "x_max", "y_max"), t, strict=True))
             for t in scene.truth], indent=1) + "\n")
        print(tif)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
