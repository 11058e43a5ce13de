"""Seeded simulator of EMM/EMUS-like FUV disk images of Mars with aurora -- SIMULATED data.

Why: no EMUS image is available offline, so (as Pacios et al. did for their YOLO detector)
the aurora detector is trained and the demo is run on images made here. Every file is
named ``simulated_*``, every FITS header says ``SIMULATE = T`` and the stage writes
"SIMULATED" into each row's processing_level_desc.

What is modelled (order of magnitude, not fitted to EMUS data)
--------------------------------------------------------------
* Geometry: a pinhole camera 20,000-43,000 km from Mars' centre (EMM's orbit), north up,
  plate scale 1.3 mrad/px (disk radius about 50-110 px in a 256 x 256 image); the sub-solar
  point placed so the phase angle is 40-140 deg (a night side is in view); one image in
  four is a partial disk (the centre moved so the limb leaves the frame).
  (:mod:`epnml.ml.aurora.geometry`; the same code gives the stage its footprints.)
* One emission band, OI 130.4 nm (WAVEMIN/WAVEMAX 128-133 nm), brightness in rayleigh:
  dayglow 800-2000 R x cos(SZA)^0.7, fading over 5 deg past the terminator; limb
  brightening of an optically thin layer (1/mu, at most 6x); a limb glow above the disk
  (scale height 60 km); nightglow 1-3 R.
* Aurora on the night side (SZA > 105 deg at its centre), three shapes of Schneider et al.
  / Lillis et al. EMUS morphologies: ``discrete`` (2-5 compact patches of 1-2.5 deg, 20-80 R,
  2-12 deg from a common centre), ``diffuse`` (one broad glow, 20-40 deg wide, 10-25 R) and
  ``sinuous`` (a long thin wavy arc, 40-90 deg long, 1.5-3 deg wide, 15-50 R). Emission is
  zenith brightness times the same limb factor.
* Detector: shot noise (gain 2 counts/R), 1.5 R Gaussian read noise, a flat field of
  +-5 %, 0-6 hot pixels, one image in three with a bad column, one in four with a cosmic-ray
  streak and one in five with a scan seam (EMUS images are built from slit swaths).

Truth: each aurora's type and its box (x_min, y_min, x_max, y_max, px; the visible pixels
above a quarter of its peak). Images without aurora (``none``) keep every artefact.

What is made up: no spectra (one band), no real EMUS pointing, roll, swath timing or
calibration, no crustal-field control of where discrete aurora appear, no dust.

Run ``python -m epnml.ingest.simulate.aurora --out DIR --n 8 --seed 1 [--png]``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epnml.ingest.readers.aurora import BAND, png_stretch
from epnml.ml.aurora import AURORA_TYPES
from epnml.ml.aurora.geometry import DiskGeometry, unit

SIZE = 256
SCALE_RAD = 1.3e-3
#: what each image holds: no aurora or one of the three types (equal odds by default).
KINDS = ("none", *AURORA_TYPES)
GAIN = 2.0
READ_NOISE_R = 1.5


@dataclass
class SimulatedImage:
    brightness: np.ndarray  # (SIZE, SIZE) float32, rayleigh
    geometry: DiskGeometry
    start: pd.Timestamp
    exptime_s: float
    #: "none" or the aurora type
    kind: str
    #: the aurora's box in pixels (None: no aurora, or none visible)
    box: tuple[float, float, float, float] | None
    #: the aurora's centre (planetocentric lat, east lon) when there is one
    centre: tuple[float, float] | None


def _geometry(rng: np.random.Generator, size: int, partial: bool) -> DiskGeometry:
    dist = rng.uniform(20_000, 43_000)
    sc_lat, sc_lon = rng.uniform(-60, 60), rng.uniform(0, 360)
    # sub-solar point at phase angle 40-140 deg from the spacecraft direction
    phase = math.radians(rng.uniform(40, 140))
    u = unit(sc_lat, sc_lon)
    a = np.cross(u, rng.normal(size=3))
    a /= np.linalg.norm(a)
    s = math.cos(phase) * u + math.sin(phase) * a
    ss_lat = math.degrees(math.asin(np.clip(s[2], -1, 1)))
    ss_lat = float(np.clip(ss_lat, -25.2, 25.2))  # Mars' obliquity bounds it
    ss_lon = math.degrees(math.atan2(s[1], s[0])) % 360.0
    cx = cy = size / 2
    geo = DiskGeometry(sc_lat, sc_lon, dist, SCALE_RAD, cx, cy, ss_lat, ss_lon)
    if partial:
        r = geo.disk_radius_px
        ang = rng.uniform(0, 2 * math.pi)
        shift = rng.uniform(0.35, 0.7) * r + max(0.0, r - size / 2)
        geo = DiskGeometry(sc_lat, sc_lon, dist, SCALE_RAD, cx + shift * math.cos(ang),
                           cy + shift * math.sin(ang), ss_lat, ss_lon)
    return geo


def _gauss_on_sphere(n: np.ndarray, lat: float, lon: float, sigma_deg: float) -> np.ndarray:
    """exp(-angle^2 / 2 sigma^2) of the angular distance from (lat, lon) of unit vectors n."""
    cosang = np.clip(n @ unit(lat, lon), -1.0, 1.0)
    ang = np.degrees(np.arccos(cosang))
    return np.asarray(np.exp(-0.5 * (ang / sigma_deg) ** 2))


def _offset(lat: float, lon: float, dist_deg: float, bearing_deg: float) -> tuple[float, float]:
    """The point ``dist_deg`` away from (lat, lon) along ``bearing_deg`` (great circle)."""
    la, lo = math.radians(lat), math.radians(lon)
    d, b = math.radians(dist_deg), math.radians(bearing_deg)
    la2 = math.asin(math.sin(la) * math.cos(d) + math.cos(la) * math.sin(d) * math.cos(b))
    lo2 = lo + math.atan2(math.sin(b) * math.sin(d) * math.cos(la),
                          math.cos(d) - math.sin(la) * math.sin(la2))
    return math.degrees(la2), math.degrees(lo2) % 360.0


def _aurora(kind: str, n: np.ndarray, centre: tuple[float, float],
            rng: np.random.Generator) -> np.ndarray:
    """Zenith brightness (R) of one aurora of ``kind`` at surface unit vectors ``n``."""
    lat, lon = centre
    out = np.zeros(n.shape[:-1])
    if kind == "discrete":
        for _ in range(int(rng.integers(2, 6))):
            plat, plon = _offset(lat, lon, rng.uniform(2, 12), rng.uniform(0, 360))
            out += rng.uniform(20, 80) * _gauss_on_sphere(n, plat, plon, rng.uniform(1, 2.5))
    elif kind == "diffuse":
        out += rng.uniform(10, 25) * _gauss_on_sphere(n, lat, lon, rng.uniform(10, 20))
    elif kind == "sinuous":
        length, width = rng.uniform(40, 90), rng.uniform(1.5, 3.0)
        bearing = rng.uniform(0, 360)
        amp, waves = rng.uniform(2, 6), rng.uniform(0.5, 1.5)
        peak = rng.uniform(15, 50)
        for s in np.linspace(-length / 2, length / 2, int(length / (width * 0.7)) + 1):
            side = amp * math.sin(2 * math.pi * waves * s / length)
            a = _offset(lat, lon, abs(s), bearing if s >= 0 else bearing + 180)
            p = _offset(a[0], a[1], abs(side), bearing + (90 if side >= 0 else -90))
            out = np.maximum(out, peak * _gauss_on_sphere(n, p[0], p[1], width))
    else:
        raise ValueError(f"unknown aurora kind {kind!r}; known: {', '.join(AURORA_TYPES)}")
    return out


def simulate_image(rng: np.random.Generator, kind: str, size: int = SIZE,
                   start: pd.Timestamp | None = None) -> SimulatedImage:
    """One image holding an aurora of ``kind`` (or ``none``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    geo = _geometry(rng, size, partial=rng.random() < 0.25)
    rows, cols = np.mgrid[0:size, 0:size].astype(float) + 0.5
    hit, lat, lon, mu = geo.intersect(cols, rows)
    n = unit(np.nan_to_num(lat), np.nan_to_num(lon))
    s = unit(geo.ss_lat, geo.ss_lon)
    cos_sza = n @ s
    limb = np.minimum(1.0 / np.maximum(mu, 1e-3), 6.0)
    day = rng.uniform(800, 2000)
    sza = np.degrees(np.arccos(np.clip(cos_sza, -1, 1)))
    glow = day * np.clip(cos_sza, 0, 1) ** 0.7 + day * 0.02 * np.exp(-np.clip(sza - 90, 0, None)
                                                                       / 5.0) * (sza > 90)
    bright = np.where(hit, (glow + rng.uniform(1, 3)) * limb, 0.0)
    # limb glow above the disk (tangent rays through the dayglow layer)
    alt, tp = geo.tangent_altitude(cols, rows)
    tan_sza = np.clip(tp @ s, 0, 1) ** 0.7
    bright += np.where(~hit & (alt < 400), day * tan_sza * 6.0 * np.exp(-np.clip(alt, 0, None)
                                                                        / 60.0), 0.0)
    box = centre = None
    if kind != "none":
        em = np.zeros_like(bright)
        for _ in range(50):  # a centre on the visible night side
            clat, clon = rng.uniform(-75, 75), rng.uniform(0, 360)
            c, r, vis = geo.to_pixel(np.array(clat), np.array(clon))
            sza_c = float(geo.sza(np.array(clat), np.array(clon)))
            inside = 12 <= float(c) <= size - 12 and 12 <= float(r) <= size - 12
            if bool(vis) and sza_c > 105 and inside:
                em = np.where(hit, _aurora(kind, n, (clat, clon), rng) * limb, 0.0)
                break
        if em.max() > 0:
            m = em > 0.25 * em.max()
            ys, xs = np.nonzero(m)
            if len(xs) >= 4:
                box = (float(xs.min()), float(ys.min()), float(xs.max() + 1),
                       float(ys.max() + 1))
                centre = (clat, clon)
                bright = bright + em
    u, v = (cols / size - 0.5) * 2, (rows / size - 0.5) * 2  # a smooth flat field, +-5 %
    flat = 1.0 + 0.05 * np.tanh(np.tensordot(rng.normal(size=3), np.stack([u, v, u * v]), 1))
    img = rng.poisson(np.clip(bright * flat, 0, None) * GAIN) / GAIN
    img = img + rng.normal(0, READ_NOISE_R, img.shape)
    for _ in range(int(rng.integers(0, 7))):  # hot pixels
        img[rng.integers(size), rng.integers(size)] += rng.uniform(50, 400)
    if rng.random() < 1 / 3:  # a bad column
        img[:, rng.integers(size)] *= rng.uniform(0.0, 0.3)
    if rng.random() < 0.25:  # a cosmic-ray streak
        y0, x0 = rng.integers(size, size=2)
        ang, length = rng.uniform(0, math.pi), int(rng.integers(5, 25))
        for k in range(length):
            y, x = int(y0 + k * math.sin(ang)), int(x0 + k * math.cos(ang))
            if 0 <= y < size and 0 <= x < size:
                img[y, x] += rng.uniform(100, 300)
    if rng.random() < 0.2:  # a scan seam: swaths calibrated slightly differently
        img[int(rng.integers(size // 4, 3 * size // 4)):] *= rng.uniform(0.92, 1.08)
    when = start if start is not None else pd.Timestamp("2023-04-22T00:00:00") + \
        pd.Timedelta(minutes=float(rng.uniform(0, 60 * 24 * 365)))
    return SimulatedImage(img.astype(np.float32), geo, when.floor("s"),
                          float(rng.uniform(300, 900)), kind if box else "none", box, centre)


def fits_header(sim: SimulatedImage) -> dict[str, Any]:
    """The EMUS L2A-like keywords (epnml.ingest.readers.aurora reads them)."""
    g = sim.geometry
    end = sim.start + pd.Timedelta(seconds=sim.exptime_s)
    return {
        "TELESCOP": "EMM", "INSTRUME": "EMUS", "OBJECT": "MARS", "PROCLEVL": "L2A",
        "SIMULATE": True, "ORIGIN": "epnml.ingest.simulate.aurora",
        "DATE-OBS": sim.start.strftime("%Y-%m-%dT%H:%M:%S"),
        "DATE-END": end.strftime("%Y-%m-%dT%H:%M:%S"), "EXPTIME": round(sim.exptime_s, 3),
        "BUNIT": "R", "BANDNAME": BAND[0], "WAVEMIN": BAND[1], "WAVEMAX": BAND[2],
        "SC_LAT": round(g.sc_lat, 6), "SC_LON": round(g.sc_lon, 6),
        "SC_DIST": round(g.sc_dist_km, 3), "SS_LAT": round(g.ss_lat, 6),
        "SS_LON": round(g.ss_lon, 6), "PLATESCL": g.scale_rad,
        "MARS_CX": round(g.cx, 4), "MARS_CY": round(g.cy, 4),
    }


def write_fits(sim: SimulatedImage, path: Path) -> Path:
    from astropy.io import fits

    hdu = fits.PrimaryHDU(sim.brightness)
    for key, value in fits_header(sim).items():
        hdu.header[key] = value
    hdu.header["COMMENT"] = "SIMULATED EMUS-like disk image (epnml), not spacecraft data"
    hdu.header["COMMENT"] = "row 0 of the data array is the top (north) of the image"
    hdu.writeto(path, overwrite=True)
    return path


def write_png(sim: SimulatedImage, path: Path) -> Path:
    """An 8-bit PNG chip: the reader's documented log stretch, no geometry, no time."""
    from PIL import Image

    Image.fromarray(png_stretch(sim.brightness)).save(path, format="PNG")
    return path


def write_simulated(out: Path, n: int, seed: int, png: int = 0,
                    kinds: tuple[str, ...] = KINDS) -> list[tuple[Path, SimulatedImage]]:
    """``n`` FITS images (kinds in turn) and, of the first ``png`` of them, PNG chips too,
    named ``simulated_emus_<time>_<k>.fits|png``."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    made = []
    for k in range(n):
        sim = simulate_image(rng, kinds[k % len(kinds)])
        stem = f"simulated_emus_{sim.start:%Y%m%dT%H%M%S}_{seed}_{k:03d}"
        made.append((write_fits(sim, out / f"{stem}.fits"), sim))
        if k < png:
            made.append((write_png(sim, out / f"{stem}.png"), sim))
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--png", type=int, default=0, help="also write PNG chips of the first N")
    args = ap.parse_args(argv)
    for path, sim in write_simulated(args.out, args.n, args.seed, args.png):
        print(f"{path}\t{sim.kind}\t{sim.box}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
