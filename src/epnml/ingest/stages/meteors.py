"""Meteors stage: a network CSV of meteor records -> one ``meteors`` row per meteor.

Science case: Europlanet AOP, classification of meteor light curves (Armagh/Bangor
camera network). Pure: reads the file, computes the features
(epnml.ml.meteors.features), classifies (epnml.ml.meteors.model), links double-station
pairs (epnml.ml.meteors.pairing) and builds rows and quicklooks. A file is one granule.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from epnml.ingest.access import CSV, publish_file
from epnml.ingest.epn import iso_utc, to_jd
from epnml.ingest.limits import ResourceLimits
from epnml.ingest.readers.meteors import METEORS_LIMITS, MeteorRecord
from epnml.ingest.stage import (
    CommittedModelStage,
    Granule,
    GranuleError,
    ModelInfo,
    RunContext,
    StageOutput,
    invalid_note,
    one_granule_per_file,
    safe_name,
    safe_uid,
)
from epnml.schemas.products import get_product

if TYPE_CHECKING:
    from epnml.ml.meteors.model import LoadedMeteorModel
    from epnml.ml.meteors.track import Track

PRODUCT = get_product("meteors")
SUFFIXES = (".csv", ".gz")
RECORD_COLUMNS = [
    "meteor_id", "camera", "start", "end", "frames", "peak_mag", "mean_mag", "t_peak",
    "skewness", "rise_slope", "decay_slope", "flare_amp", "n_flares", "duration_s",
    "angular_speed", "track_length", "ra_min", "ra_max", "dec_min", "dec_max", "cluster",
    "meteor_class", "score", "linked_id", "granule_id", "granule_uid", "model",
    "model_version", "simulated",
]


def _granule_id(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".csv"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return safe_name(name) or "meteors"



class MeteorsStage(CommittedModelStage):
    name = "meteors"
    product = "meteors"
    limits: ResourceLimits = METEORS_LIMITS
    model_module = "epnml.ml.meteors.model"
    _model: LoadedMeteorModel

    def granules(self, paths: Sequence[Path]) -> list[Granule]:
        """One granule per CSV (``.csv`` or ``.csv.gz``); a folder gives its CSVs."""
        files: list[Path] = []
        for p in (Path(x) for x in paths):
            if p.is_dir():
                files += sorted(q for q in p.iterdir() if q.is_file() and (
                    q.name.lower().endswith(".csv") or q.name.lower().endswith(".csv.gz")))
            else:
                files.append(p)
        return one_granule_per_file(files, _granule_id,
                                    lambda f, gid: f"{gid}@{_granule_id(f.parent)}")

    def process(self, granule: Granule, ctx: RunContext) -> StageOutput:
        from epnml.ingest.readers.meteors import read_meteors_csv
        from epnml.ingest.spec import resolve
        from epnml.ml.meteors.features import features_frame
        from epnml.ml.meteors.model import classify
        from epnml.ml.meteors.pairing import pair_meteors
        from epnml.ml.meteors.track import bounds, fit_track, outline, spoly_literal

        if len(granule.paths) != 1:
            raise GranuleError(granule.label, "a meteors granule is one CSV file")
        params = resolve("meteors", ctx.params, self._model.info.version)
        fps, window = float(params["frame_rate_hz"]), float(params["pair_window_s"])
        table = read_meteors_csv(granule.paths[0], self.limits)
        simulated = ("simulated" in granule.paths[0].name.lower()
                     or table.source_path.upper().startswith("SIMULATED"))
        feats, dropped = features_frame(table.records, fps)
        invalid = {**table.invalid, **dropped}
        if feats.empty:
            raise GranuleError(granule.label, "no meteor record with a usable track")
        records = [table.records[i] for i in feats.index]
        feats = feats.reset_index(drop=True)
        classes = classify(feats, self._model)
        partner = pair_meteors([r.start for r in records], [r.camera for r in records],
                               window)
        info = self.model_info()
        out_records: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        files: dict[str, bytes] = {}
        for i, rec in enumerate(records):
            f = feats.iloc[i]
            t = np.arange(len(rec.mag)) / fps
            track = fit_track(rec.ra, rec.dec, t)
            verts = outline(track)
            ra0, ra1, de0, de1 = bounds(verts)
            start = rec.start
            end = start + pd.Timedelta(seconds=float(t[-1]))
            uid = f"meteors_{granule.granule_id}_{rec.meteor_id}_v{info.version}"
            j = partner[i]
            linked = records[j].meteor_id if j is not None else None
            cls = classes.iloc[i]
            thumb = f"meteors/{safe_uid(uid)}.png"
            if ctx.make_quicklooks:
                files[thumb] = meteor_quicklook_png(rec, verts, str(cls["meteor_class"]),
                                                    simulated)
            values = {k: float(f[k]) for k in f.index}
            out_records.append({
                "meteor_id": rec.meteor_id, "camera": rec.camera,
                "start": start.isoformat(), "end": end.isoformat(),
                "frames": len(rec.mag), **{k: round(v, 4) for k, v in values.items()},
                "ra_min": round(ra0, 5), "ra_max": round(ra1, 5),
                "dec_min": round(de0, 5), "dec_max": round(de1, 5),
                "cluster": int(cls["cluster"]), "meteor_class": cls["meteor_class"],
                "score": round(float(cls["score"]), 4), "linked_id": linked,
                "granule_id": granule.granule_id, "granule_uid": uid, "model": info.name,
                "model_version": info.version, "simulated": simulated,
            })
            row = self._row(
                uid, granule, rec, info, ctx, start, end, fps, values,
                (ra0, ra1, de0, de1), spoly_literal(verts), cls, linked,
                thumb if ctx.make_quicklooks else None, simulated, invalid)
            if ctx.make_quicklooks:  # files to publish (ingest), not for predict
                rel = f"meteors/{safe_uid(uid)}.csv"
                row |= publish_file(ctx, files, rel, meteor_csv(
                    rec, track, fps, uid, str(cls["meteor_class"]), simulated), CSV)
            rows.append(row)
        return StageOutput(granule, pd.DataFrame.from_records(out_records,
                                                              columns=RECORD_COLUMNS),
                           rows, files, invalid_values=invalid)

    def _row(self, uid: str, granule: Granule, rec: MeteorRecord, info: ModelInfo,
             ctx: RunContext, start: pd.Timestamp, end: pd.Timestamp, fps: float,
             f: dict[str, float], box: tuple[float, float, float, float], s_region: str,
             cls: pd.Series, linked: str | None, thumb: str | None, simulated: bool,
             invalid: dict[str, int]) -> dict[str, Any]:
        what = ("SIMULATED meteor records (demo inputs, not camera data)" if simulated
                else "Armagh/Bangor meteor network records")
        n_clusters = len(self._model.class_names)
        now = ctx.started
        return {
            "granule_uid": uid,
            "granule_gid": "meteors",
            "obs_id": granule.granule_id,
            "dataproduct_type": "ci",
            "target_name": "Earth",
            "target_class": "planet",
            "time_min": to_jd(start),
            "time_max": to_jd(end),
            "time_sampling_step_min": 1.0 / fps,
            "time_sampling_step_max": 1.0 / fps,
            "c1min": box[0], "c1max": box[1], "c2min": box[2], "c2max": box[3],
            "c3min": None, "c3max": None,
            "s_region": s_region,
            "spatial_frame_type": PRODUCT.spatial_frame_type,
            "instrument_host_name": "Armagh Observatory meteor network",
            "instrument_name": rec.camera,
            "measurement_type": "phot.mag#pos.eq",
            "processing_level": 5,
            "creation_date": now,
            "modification_date": now,
            "release_date": now,
            "service_title": PRODUCT.schema,
            "thumbnail_url": f"{ctx.files_base_url}/{thumb}" if thumb else None,
            "processing_level_desc": (
                f"Meteor light-curve class by model {info.name} v{info.version} (nearest "
                f"of {n_clusters} k-means centroids on shape features, fuzzy membership as "
                f"ml_score) in {what}" + invalid_note(invalid)),
            "publisher": "epnml",
            "bib_reference": None,
            "time_scale": "UTC",
            "time_refposition": "TOPOCENTER",
            "target_region": "atmosphere",
            "spatial_coordinate_description": "equatorial RA/Dec J2000 (camera astrometry)",
            "ml_model_name": info.name,
            "ml_model_version": info.version,
            "ml_weights_sha256": info.sha256,
            "ml_run_id": ctx.run_id,
            "ml_score": min(1.0, max(0.0, float(cls["score"]))),
            "meteor_id": rec.meteor_id,
            "meteor_camera": rec.camera,
            "meteor_peak_mag": f["peak_mag"],
            "meteor_mean_mag": f["mean_mag"],
            "meteor_class": str(cls["meteor_class"]),
            "meteor_cluster": int(cls["cluster"]),
            "meteor_linked_id": linked,
            "meteor_frames": len(rec.mag),
            "meteor_t_peak": f["t_peak"],
            "meteor_angular_speed": f["angular_speed"],
            "meteor_track_length": f["track_length"],
        }


def meteor_csv(rec: MeteorRecord, track: Track, fps: float, uid: str, meteor_class: str,
               simulated: bool) -> bytes:
    """The row's ``access_url`` file: the light curve and the sky track, one line per video
    field as recorded (``mag``, ``ra_deg``, ``dec_deg``), with the position on the fitted
    great-circle track at that time (``ra_fit_deg``, ``dec_fit_deg``)."""
    from epnml.ml.meteors.track import radec

    n = len(rec.mag)
    t = np.arange(n) / fps
    frac = t / t[-1] if n > 1 and t[-1] > 0 else np.zeros(n)
    omega = float(np.arccos(np.clip(track.start @ track.end, -1.0, 1.0)))
    fit = []
    for f in frac:  # constant angular speed along the circle: slerp start -> end
        v = track.start if omega < 1e-12 else (
            np.sin((1 - f) * omega) * track.start + np.sin(f * omega) * track.end
        ) / np.sin(omega)
        fit.append(radec(v))
    times = [iso_utc(rec.start + pd.Timedelta(seconds=float(s)))[:-1]
             + f".{int(round(s * 1000)) % 1000:03d}Z" for s in t]
    what = ("SIMULATED meteor record (not camera data)" if simulated
            else "Armagh/Bangor meteor network record")
    lines = [f"# epnml meteors: light curve and track of {uid}",
             f"# source: {what} {rec.meteor_id}, camera {rec.camera}; class {meteor_class}",
             f"# {n} video fields at {fps:g} per second from {iso_utc(rec.start)} (the record "
             "gives whole seconds); fitted track: great circle at constant angular speed, "
             f"{track.length_deg:.4f} deg, {track.speed_deg_s:.4f} deg/s, scatter "
             f"{track.scatter_deg:.4f} deg",
             "# units: time UTC; t_s s; mag mag; ra_deg, dec_deg, ra_fit_deg, dec_fit_deg deg "
             "(J2000)",
             "field,time,t_s,mag,ra_deg,dec_deg,ra_fit_deg,dec_fit_deg"]
    for i in range(n):
        lines.append(f"{i},{times[i]},{t[i]:.3f},{float(rec.mag[i]):.3f},"
                     f"{float(rec.ra[i]):.5f},{float(rec.dec[i]):.5f},"
                     f"{fit[i][0]:.5f},{fit[i][1]:.5f}")
    return ("\n".join(lines) + "\n").encode()


def meteor_quicklook_png(rec: MeteorRecord, outline_radec: list[tuple[float, float]],
                         meteor_class: str, simulated: bool, width: int = 240,
                         height: int = 120) -> bytes:
    """A small PNG: the light curve (left, brighter up) and the track in RA/Dec with its
    outline (right, RA increasing to the left as on the sky). Drawn with PIL: a real
    file holds ~12 000 meteors, and a matplotlib figure each would take minutes."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    half = width // 2
    pad = 10

    def scale(v: np.ndarray, lo: float, hi: float, a: float, b: float) -> np.ndarray:
        span = hi - lo if hi > lo else 1.0
        return a + (v - lo) / span * (b - a)

    m = rec.mag
    xs = scale(np.arange(len(m), dtype=float), 0, len(m) - 1, pad, half - pad)
    ys = scale(m, float(m.min()), float(m.max()), pad + 12, height - pad)
    draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=(200, 40, 40), width=1)
    draw.text((pad, 0), meteor_class + (" SIM" if simulated else ""), fill="black")
    ra = np.asarray(rec.ra, float)
    ref = float(ra[0])
    ra_u = (ra - ref + 180.0) % 360.0 - 180.0
    o_ra = np.array([(a - ref + 180.0) % 360.0 - 180.0 for a, _ in outline_radec])
    o_de = np.array([d for _, d in outline_radec])
    lo_r, hi_r = min(ra_u.min(), o_ra.min()), max(ra_u.max(), o_ra.max())
    lo_d, hi_d = min(rec.dec.min(), o_de.min()), max(rec.dec.max(), o_de.max())
    span = max(hi_r - lo_r, hi_d - lo_d, 1e-3)
    cr, cd = (lo_r + hi_r) / 2, (lo_d + hi_d) / 2
    box = (half + pad, pad + 12, width - pad, height - pad)

    def sky(r: np.ndarray, d: np.ndarray) -> list[tuple[float, float]]:
        x = scale(-(r - cr), -span / 2, span / 2, box[0], box[2])
        y = scale(-(d - cd), -span / 2, span / 2, box[1], box[3])
        return list(zip(x.tolist(), y.tolist(), strict=True))

    draw.polygon(sky(o_ra, o_de), outline=(120, 120, 220))
    for x, y in sky(ra_u, rec.dec):
        draw.point((x, y), fill=(0, 0, 0))
    draw.text((half + pad, 0), f"{rec.camera} {iso_utc(rec.start)[11:19]}", fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
