"""Aurora stage: an FUV disk image of Mars -> one ``aurora`` row per detected aurora.

Science case: EMM/EMUS aurora (Pacios et al.'s serverless pipeline): the scipy prefilter
(epnml.ml.aurora.prefilter) passes images whose night side holds close bright objects,
the plain-torch detector (epnml.ml.aurora.model) finds and types the aurora. A granule is
one image: an EMUS L2A-like FITS (time, band and viewing geometry from its header) or a
PNG chip (no time, no geometry: those rows have NULL time, coordinates and s_region; the
geometry is never invented). With geometry, the box's outline (16 points) is projected
onto Mars: when every point lies on the disk it is the row's ``s_region`` (planetocentric,
east longitude, counter-clockwise), else the footprint is NULL and c1/c2 hold the centre.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from epnml.ingest.epn import continuous_lons, core_row, lon_bounds, to_jd
from epnml.ingest.limits import ResourceLimits
from epnml.ingest.readers.aurora import AURORA_LIMITS, SUFFIXES, AuroraImage
from epnml.ingest.stage import (
    CommittedModelStage,
    Granule,
    GranuleError,
    RunContext,
    StageOutput,
    invalid_note,
    one_granule_per_file,
    safe_name,
)
from epnml.ml.model_info import ModelInfo
from epnml.schemas.products import get_product

if TYPE_CHECKING:
    from epnml.ml.aurora.geometry import DiskGeometry
    from epnml.ml.aurora.model import Detection, LoadedAuroraModel
    from epnml.ml.aurora.prefilter import Prefiltered

PRODUCT = get_product("aurora")
BIB_REFERENCE = None
RECORD_COLUMNS = [
    "image", "aurora_type", "score", "x", "y", "x_min", "y_min", "x_max", "y_max",
    "lon", "lat", "lon_min", "lon_max", "lat_min", "lat_max", "time_start",
    "prefilter_objects", "granule_id", "granule_uid", "model", "model_version", "simulated",
]
SPEED_OF_LIGHT = 299_792_458.0
THUMB_PX = 160


def _safe(name: str) -> str:
    return safe_name(name) or "image"


def aurora_files(paths: Sequence[Path]) -> list[Path]:
    """FITS images and PNG chips of ``paths`` (folders expand, sorted); anything else is a
    GranuleError naming it."""
    files: list[Path] = []
    for p in (Path(x) for x in paths):
        if p.is_dir():
            files += sorted(q for q in p.rglob("*")
                            if q.is_file() and q.suffix.lower() in SUFFIXES)
        elif p.suffix.lower() in SUFFIXES:
            files.append(p)
        else:
            raise GranuleError(p, f"not an image for the aurora pipeline (expected "
                                  f"{', '.join(SUFFIXES)})")
    return files


class AuroraStage(CommittedModelStage):
    name = "aurora"
    product = "aurora"
    limits: ResourceLimits = AURORA_LIMITS
    model_module = "epnml.ml.aurora.model"
    _model: LoadedAuroraModel

    def granules(self, paths: Sequence[Path]) -> list[Granule]:
        """One granule per image; the id is the file name (its folder added on a clash)."""
        return one_granule_per_file(aurora_files(paths), lambda f: _safe(f.name),
                                    lambda f, _: _safe(f"{f.parent.name}_{f.name}"))

    def process(self, granule: Granule, ctx: RunContext) -> StageOutput:
        from epnml.ingest.readers.aurora import read_aurora_image
        from epnml.ingest.spec import resolve
        from epnml.ml.aurora.model import detect
        from epnml.ml.aurora.prefilter import PrefilterParams

        if len(granule.paths) != 1:
            raise GranuleError(granule.label, "an aurora granule is exactly one image")
        params = resolve("aurora", ctx.params, self._model.info.version)
        pre_params = PrefilterParams(threshold_r=float(params["prefilter_threshold_r"]),
                                     gap_px=float(params["prefilter_gap_px"]),
                                     large_area_px=int(params["prefilter_large_area_px"]))
        image = read_aurora_image(granule.paths[0], self.limits)
        pre, dets = detect(image.brightness, image.geometry, self._model,
                           threshold=params["threshold"], prefilter_params=pre_params,
                           use_prefilter=params["prefilter"] == "on")
        info = self.model_info()
        records: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        files: dict[str, bytes] = {}
        for i, det in enumerate(dets):
            x, y = det.centre
            geo = footprint(image.geometry, det.box) if image.geometry is not None else None
            uid = f"aurora_{granule.granule_id}_{i}_x{int(x)}_y{int(y)}_v{info.version}"
            thumb = None
            access: dict[str, Any] = {}
            if ctx.make_quicklooks:
                thumb = f"aurora/{_safe(uid)}.png"
                files[thumb] = aurora_quicklook_png(image, pre, det)
                access = aurora_access(ctx, uid, image, det, files)
            records.append({
                "image": image.path.name, "aurora_type": det.aurora_type,
                "score": round(det.score, 4), "x": round(x, 1), "y": round(y, 1),
                **{k: round(v, 1) for k, v in zip(("x_min", "y_min", "x_max", "y_max"),
                                                   det.box, strict=True)},
                **{k: (None if geo is None or geo[k] is None else round(geo[k], 4))
                   for k in ("lon", "lat")},
                **{k: (None if geo is None or geo[g] is None else round(geo[g], 4))
                   for k, g in (("lon_min", "c1min"), ("lon_max", "c1max"),
                                ("lat_min", "c2min"), ("lat_max", "c2max"))},
                "time_start": image.start.isoformat() if image.start is not None else None,
                "prefilter_objects": len(pre.objects), "granule_id": granule.granule_id,
                "granule_uid": uid, "model": info.name, "model_version": info.version,
                "simulated": image.simulated,
            })
            rows.append({**self._row(uid, granule, image, info, ctx, det, pre, geo, thumb),
                         **access})
        return StageOutput(granule, pd.DataFrame.from_records(records, columns=RECORD_COLUMNS),
                           rows, files, invalid_values=dict(image.invalid))

    def _row(self, uid: str, granule: Granule, image: AuroraImage, info: ModelInfo,
             ctx: RunContext, det: Detection, pre: Prefiltered, geo: dict[str, Any] | None,
             thumb: str | None) -> dict[str, Any]:
        x, y = det.centre
        source = ("SIMULATED EMUS-like image (not spacecraft data)" if image.simulated
                  else f"{image.file_format} image")
        if geo is None:
            where = "no viewing geometry: time, coordinates and footprint left NULL" \
                if image.geometry is None else "centre off the disk: no footprint"
        elif geo["s_region"] is None:
            where = "box partly off the disk: centre position only, no footprint"
        else:
            where = "footprint: the box projected onto Mars (planetocentric)"
        desc = (("SIMULATED input; " if image.simulated else "")
                + f"{det.aurora_type} aurora found by model {info.name} v{info.version} "
                f"(scipy prefilter: {len(pre.objects)} bright night-side object(s); "
                "CenterNet-style detector trained on SIMULATED images only) in "
                f"{source} {image.path.name}; box centre x {x:.0f}, y {y:.0f} px; {where}"
                + invalid_note(image.invalid))
        row = core_row(PRODUCT, uid=uid, gid="aurora", granule=granule, info=info, ctx=ctx,
                       dataproduct_type="ci", target_name="Mars", target_class="planet",
                       thumb=thumb, bib_reference=BIB_REFERENCE,
                       time_scale="UTC" if image.start is not None else None)
        wave = image.wave_nm
        row.update({
            "time_min": to_jd(image.start) if image.start is not None else None,
            "time_max": to_jd(image.end if image.end is not None else image.start)
            if image.start is not None else None,
            "time_exp_min": image.exptime_s, "time_exp_max": image.exptime_s,
            "spectral_range_min": SPEED_OF_LIGHT / (wave[1] * 1e-9) if wave else None,
            "spectral_range_max": SPEED_OF_LIGHT / (wave[0] * 1e-9) if wave else None,
            "c1min": None, "c1max": None, "c2min": None, "c2max": None,
            "c3min": None, "c3max": None, "s_region": None,
            "incidence_min": None, "incidence_max": None,
            "emergence_min": None, "emergence_max": None,
            "phase_min": None, "phase_max": None,
            "instrument_host_name": image.telescope,
            "instrument_name": image.instrument,
            "measurement_type": "phot.flux.density;em.UV.100-200nm",
            "processing_level_desc": desc,
            "time_refposition": None,
            "target_region": "atmosphere",
            "feature_name": f"{det.aurora_type} aurora",
            "spatial_coordinate_description": None,
            "ml_score": min(1.0, max(0.0, det.score)),
            "aurora_type": det.aurora_type,
            "aurora_x": x, "aurora_y": y,
            "aurora_width": det.box[2] - det.box[0], "aurora_height": det.box[3] - det.box[1],
            "aurora_lon": None, "aurora_lat": None,
            "aurora_band": image.band,
            "aurora_objects": len(pre.objects),
            "source_image": image.path.name,
        })
        if geo is not None:
            row.update({k: geo[k] for k in ("c1min", "c1max", "c2min", "c2max", "s_region")})
            row.update({f"{a}_{m}": geo[a] for a in ("incidence", "emergence", "phase")
                        for m in ("min", "max")})
            row["aurora_lon"], row["aurora_lat"] = geo["lon"], geo["lat"]
            row["spatial_coordinate_description"] = "Mars planetocentric, east longitude"
        return row


def footprint(g: DiskGeometry, box: tuple[float, float, float, float]) -> dict[str, Any] | None:
    """Centre (lon, lat, angles) and, when the whole outline lies on the disk, the bounds
    and counter-clockwise pgSphere polygon of a box; None when its centre is off the disk."""
    from epnml.ml.aurora.geometry import unit

    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hit, lat, lon, mu = g.intersect(np.array([cx]), np.array([cy]))
    if not hit[0]:
        return None
    clat, clon = float(lat[0]), float(lon[0])
    n = unit(clat, clon)
    sun = unit(g.ss_lat, g.ss_lon)
    sc = unit(g.sc_lat, g.sc_lon) * g.sc_dist_km - n * g.radius_km
    sc /= np.linalg.norm(sc)
    out: dict[str, Any] = {
        "lon": clon, "lat": clat,
        "incidence": float(np.degrees(np.arccos(np.clip(n @ sun, -1, 1)))),
        "emergence": float(np.degrees(np.arccos(np.clip(mu[0], -1, 1)))),
        "phase": float(np.degrees(np.arccos(np.clip(sun @ sc, -1, 1)))),
        "c1min": clon, "c1max": clon, "c2min": clat, "c2max": clat, "s_region": None,
    }
    t = np.linspace(0.0, 1.0, 4, endpoint=False)
    # outline clockwise in the image (y down) = counter-clockwise on the sky, as seen
    xs = np.concatenate([x0 + (x1 - x0) * t, np.full(4, x1), x1 - (x1 - x0) * t, np.full(4, x0)])
    ys = np.concatenate([np.full(4, y0), y0 + (y1 - y0) * t, np.full(4, y1), y1 - (y1 - y0) * t])
    hit, lat, lon, _ = g.intersect(xs, ys)
    if not hit.all():
        return out
    c1min, c1max = lon_bounds(lon)
    verts = list(zip(continuous_lons(lon), lat.tolist(), strict=True))
    if _signed_area(verts) < 0:
        verts = verts[::-1]
    out.update({"c1min": c1min, "c1max": c1max, "c2min": float(lat.min()),
                "c2max": float(lat.max()),
                "s_region": "{" + ",".join(f"({lo:.6f}d,{la:.6f}d)" for lo, la in verts) + "}"})
    return out


def _signed_area(verts: list[tuple[float, float]]) -> float:
    """Shoelace area in the (lon, lat) plane (lon east, lat north): > 0 counter-clockwise."""
    area = 0.0
    for i in range(len(verts)):
        (a, b), (c, d) = verts[i], verts[(i + 1) % len(verts)]
        area += a * d - c * b
    return 0.5 * area


def aurora_access(ctx: RunContext, uid: str, image: AuroraImage, det: Detection,
                  files: dict[str, bytes]) -> dict[str, Any]:
    """The row's ``access_url`` file, added to ``files``: the PNG cut-out of the image's
    brightness around the aurora's box (full resolution, values recoverable from its text
    chunks: :func:`epnml.ingest.access.cutout_png`); its access columns."""
    from epnml.ingest.access import PNG, cutout_png, publish_file

    rel = f"aurora/access/{_safe(uid)}.png"
    note = ("SIMULATED EMUS-like image, " if image.simulated else "") + \
        f"{image.path.name}, aurora {uid} (rayleigh)"
    return publish_file(ctx, files, rel, cutout_png(image.brightness, det.box, note), PNG)


def aurora_quicklook_png(image: AuroraImage, pre: Prefiltered, det: Detection) -> bytes:
    """The disk crop (log stretch) with the aurora's box, at most THUMB_PX a side (PIL)."""
    from PIL import Image, ImageDraw

    from epnml.ingest.readers.aurora import png_stretch

    b = image.brightness
    h, w = b.shape
    if pre.crop is not None:
        x0, y0, size = pre.crop
        a, c = max(0, x0), max(0, y0)
        part = b[c:min(h, y0 + size), a:min(w, x0 + size)]
    else:
        a = c = 0
        part = b
    img = Image.fromarray(png_stretch(part), mode="L").convert("RGB")
    f = THUMB_PX / max(img.width, img.height)
    img = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))),
                     Image.Resampling.BILINEAR)
    bx0, by0, bx1, by1 = det.box
    draw = ImageDraw.Draw(img)
    draw.rectangle([(bx0 - a) * f, (by0 - c) * f, max((bx0 - a) * f, (bx1 - a) * f - 1),
                    max((by0 - c) * f, (by1 - c) * f - 1)], outline=(255, 200, 0))
    label = det.aurora_type + (" SIM" if image.simulated else "")
    draw.text((2, 2), label, fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()

