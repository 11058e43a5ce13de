"""Seeded simulator of meteor records in the Armagh network's CSV -- SIMULATED data.

Why: the real records (``armagh_meteors_2011_2015.csv.gz``) carry no licence and may not
be copied onto a fresh machine, so the demo ingests records made here. Every file is
named ``simulated_*`` and every record's ``path`` column says ``SIMULATED``; the stage
writes "SIMULATED" into each row's processing_level_desc.

What is modelled (order of magnitude, not fitted to the real records)
----------------------------------------------------------------------
* Light curves of four shapes, in magnitudes at 50 fields/s, 8-60 fields: symmetric
  (Gaussian in time, peak at 0.45-0.55), early-peaked (fast rise, exponential decay,
  peak at 0.15-0.35), late-peaked (the classical ablation curve, peak at 0.65-0.9) and
  flaring (a symmetric curve with 1-2 short brightenings of 0.8-2 mag); peak magnitude
  -2..+3, the faint ends fading by 0.8-2 mag (the real curves are shallow), 0.1 mag Gaussian noise.
* Tracks: a great circle from a random start (RA 0-360, Dec 10-80 deg) in a random
  direction at 8-35 deg/s, positions with 0.02 deg noise and the two interlaced fields
  swapped (every pair of positions exchanged), as in the real records.
* Double-station pairs: a fraction of meteors is also recorded by a second camera,
  0-1 s later (whole-second times, as the CSV), seen 1-3 deg away (parallax), with its
  own frame count and noise.

What is made up: no radiants, showers, atmosphere, camera response, saturation or
star background; the ``io`` flag is always 3.

Run ``python -m epnml.ingest.simulate.meteors --out DIR --n 40 --seed 1``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from epnml.ingest.readers.meteors import CSV_COLUMNS, FIELD_RATE_HZ, write_meteors_csv

SHAPES = ("symmetric", "early-peaked", "late-peaked", "flaring")
CAMERAS = {"CAM1": "ARMAGH_BGA", "CAM2": "ARMAGH_NWA", "CAM3": "ARMAGH_SEA",
           "CAM4": "Ivyhill_WSA"}


def light_curve(shape: str, n: int, peak_mag: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitudes of one simulated light curve of ``shape`` over ``n`` fields."""
    t = np.linspace(0.0, 1.0, n)
    depth = rng.uniform(0.8, 2.0)
    if shape in ("symmetric", "flaring"):
        tp = rng.uniform(0.45, 0.55)
        flux = np.exp(-0.5 * ((t - tp) / rng.uniform(0.18, 0.25)) ** 2)
    elif shape == "early-peaked":
        tp = rng.uniform(0.15, 0.35)
        flux = np.where(t < tp, (t / tp) ** 2, np.exp(-(t - tp) / rng.uniform(0.15, 0.3)))
    elif shape == "late-peaked":
        tp = rng.uniform(0.65, 0.9)
        # the classical ablation curve, normalised to peak at tp
        x = np.clip(0.75 * t / tp, 0.0, 1.5)  # x^2 (3 - 2x)^2 peaks at x = 0.75
        flux = np.clip(x ** 2 * (3.0 - 2.0 * x) ** 2, 0.0, None)
    else:
        raise ValueError(f"unknown light-curve shape {shape!r}; known: {', '.join(SHAPES)}")
    flux = flux / flux.max()
    mag = peak_mag - 2.5 * np.log10(np.clip(flux, 10 ** (-0.4 * depth), None))
    if shape == "flaring":
        for _ in range(int(rng.integers(1, 3))):
            k = int(rng.integers(max(1, n // 5), max(2, n - n // 5)))
            mag[k] -= rng.uniform(0.8, 2.0)
            if k + 1 < n:
                mag[k + 1] -= rng.uniform(0.3, 0.8)
    return mag + rng.normal(0.0, 0.1, n)


def track(n: int, rng: np.random.Generator, start: tuple[float, float] | None = None,
          direction: float | None = None, speed: float | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec (deg) of ``n`` fields along a great circle, fields swapped in pairs."""
    ra0, dec0 = start if start is not None else (rng.uniform(0, 360), rng.uniform(10, 80))
    az = np.radians(direction if direction is not None else rng.uniform(0, 360))
    w = np.radians(speed if speed is not None else rng.uniform(8, 35)) / FIELD_RATE_HZ
    a, d = np.radians(ra0), np.radians(dec0)
    p0 = np.array([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])
    east = np.array([-np.sin(a), np.cos(a), 0.0])
    north = np.cross(p0, east)
    u = np.cos(az) * north + np.sin(az) * east
    s = np.arange(n) * w
    pts = np.outer(np.cos(s), p0) + np.outer(np.sin(s), u)
    ra = np.degrees(np.arctan2(pts[:, 1], pts[:, 0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(pts[:, 2], -1, 1)))
    ra = ra + rng.normal(0.0, 0.02, n) / np.cos(np.radians(dec))
    dec = dec + rng.normal(0.0, 0.02, n)
    order = np.arange(n)
    for i in range(0, n - 1, 2):  # interlaced fields in swapped order
        order[i], order[i + 1] = i + 1, i
    return ra[order] % 360.0, dec[order]


def _fmt(values: np.ndarray, digits: int, sign: bool) -> str:
    fmt = f"{{:+.{digits}f}}" if sign else f"{{:.{digits}f}}"
    return ";".join(fmt.format(v) for v in values)


def _record(cam: str, when: pd.Timestamp, mag: np.ndarray, ra: np.ndarray, dec: np.ndarray
            ) -> dict[str, object]:
    name = f"M{when:%Y%m%d_%H%M%S}_{CAMERAS[cam]}"
    return {
        "path": f"SIMULATED/epnml.ingest.simulate.meteors/{cam}",
        "fname": f"{name}.XML", "fname_bmp": f"{name[:-1]}P.bmp", "cam": cam,
        "year": float(when.year), "month": float(when.month), "day": float(when.day),
        "hour": float(when.hour), "minute": float(when.minute), "second": float(when.second),
        "sN": float(len(mag)), "mag": _fmt(mag, 2, True),
        "ra": " " + _fmt(ra, 7, False).replace(";", "; "),
        "dec": " " + _fmt(dec, 7, True).replace(";", "; "),
        "ra_start": ra[0], "ra_end": ra[-1], "dec_start": dec[0], "dec_end": dec[-1], "io": 3,
    }


def simulate_meteors(n: int, seed: int, start: str = "2024-08-12T21:00:00",
                     pair_fraction: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` meteors (plus their second-station records): the CSV records and the truth
    (meteor_id, shape, partner id or None)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    t = pd.Timestamp(start)
    rows: list[dict[str, object]] = []
    truth: list[dict[str, object]] = []
    cams = list(CAMERAS)
    for i in range(n):
        t = t + pd.Timedelta(seconds=int(rng.integers(20, 400)))
        shape = SHAPES[i % len(SHAPES)] if i < len(SHAPES) else SHAPES[
            int(rng.integers(0, len(SHAPES)))]
        cam = cams[int(rng.integers(0, len(cams)))]
        frames = int(rng.integers(8, 61))
        peak = float(rng.uniform(-2.0, 3.0))
        ra0, dec0 = rng.uniform(0, 360), rng.uniform(10, 80)
        az, speed = rng.uniform(0, 360), rng.uniform(8, 35)
        ra, dec = track(frames, rng, (ra0, dec0), az, speed)
        rec = _record(cam, t, light_curve(shape, frames, peak, rng), ra, dec)
        rows.append(rec)
        partner = None
        if rng.uniform() < pair_fraction:
            cam2 = cams[(cams.index(cam) + 1 + int(rng.integers(0, 3))) % len(cams)]
            frames2 = max(8, frames + int(rng.integers(-5, 6)))
            off = rng.uniform(1, 3)
            ra2, dec2 = track(frames2, rng, (ra0 + off, min(85.0, dec0 + off / 2)), az, speed)
            t2 = t + pd.Timedelta(seconds=int(rng.integers(0, 2)))
            rec2 = _record(cam2, t2, light_curve(shape, frames2, peak + rng.uniform(-0.5, 0.5),
                                                 rng), ra2, dec2)
            rows.append(rec2)
            partner = str(rec2["fname"])[:-4]
            truth.append({"meteor_id": partner, "shape": shape,
                          "partner": str(rec["fname"])[:-4]})
        truth.append({"meteor_id": str(rec["fname"])[:-4], "shape": shape, "partner": partner})
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS)), pd.DataFrame(truth)


def write_simulated(out: Path, n: int, seed: int, gz: bool = False) -> Path:
    """Write ``simulated_meteors_<seed>.csv[.gz]`` into ``out``; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    frame, _ = simulate_meteors(n, seed)
    path = out / f"simulated_meteors_{seed}.csv{'.gz' if gz else ''}"
    write_meteors_csv(frame, path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gz", action="store_true")
    args = ap.parse_args(argv)
    print(write_simulated(args.out, args.n, args.seed, args.gz))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
