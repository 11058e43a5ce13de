"""Pits stage: Mars orbital images -> pits, skylights and craters -> ``landforms`` rows.

Science case: GMAP / DeepLandforms (Nodjoumi et al. 2023, doi:10.1029/2022EA002278),
five classes Type-1 skylight .. Type-5 impact crater. A granule is one image (JPEG/PNG
chip or Mars GeoTIFF). One row per detected landform. Chips carry no georeference:
their rows have NULL coordinates, s_region and landform_size (the geometry is never
invented); a GeoTIFF gives planetocentric east longitude / latitude bounds, a
counter-clockwise pgSphere polygon of the box and the size in km.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from epnml.ingest.epn import continuous_lons, core_row, lon_bounds, to_jd
from epnml.ingest.limits import DEFAULT_LIMITS, ResourceLimits
from epnml.ingest.readers.images import GeoRef, ImageData, image_files
from epnml.ingest.stage import (
    CommittedModelStage,
    Granule,
    GranuleError,
    RunContext,
    StageOutput,
    safe_name,
    safe_uid,
)
from epnml.ml.model_info import ModelInfo
from epnml.schemas.products import get_product

if TYPE_CHECKING:
    from epnml.ml.pits.inference import LoadedModel

PRODUCT = get_product("landforms")
BIB_REFERENCE = "10.1029/2022EA002278"
RECORD_COLUMNS = [
    "image", "class", "class_name", "score", "x_min", "y_min", "x_max", "y_max",
    "lon_min", "lon_max", "lat_min", "lat_max", "size_km", "observation_id", "granule_id",
    "granule_uid", "model", "model_version",
]
THUMB_PX = 128


def _class_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from epnml.ml.imagery.detector import CLASS_NAMES, FEATURE_NAMES

    return CLASS_NAMES, FEATURE_NAMES


class PitsStage(CommittedModelStage):
    name = "pits"
    product = "landforms"
    model_module = "epnml.ml.pits.inference"
    _model: LoadedModel
    #: one image: the real HiRISE crops are about 900 x 900 px, the bench tile 1024 x 1024;
    #: 25 Mpx (5000 x 5000) leaves room for whole CTX/HiRISE cut-outs.
    limits: ResourceLimits = replace(DEFAULT_LIMITS, max_pixels=25_000_000, max_memory_mb=2000)

    def granules(self, paths: Sequence[Path]) -> list[Granule]:
        """One granule per image; a folder expands to the images inside it."""
        return image_granules(paths, self.name)

    def _threshold(self, ctx: RunContext) -> float | None:
        """The spec's value (epnml.ingest.spec); None = the model's own."""
        from epnml.ingest.spec import resolve

        value: float | None = resolve("pits", ctx.params, self._model.info.version)["threshold"]
        return value

    def process(self, granule: Granule, ctx: RunContext) -> StageOutput:
        from epnml.ingest.readers.images import read_image
        from epnml.ml.pits.inference import detect

        threshold = self._threshold(ctx)
        if len(granule.paths) != 1:
            raise GranuleError(granule.label, "a pits granule is exactly one image")
        image = read_image(granule.paths[0], limits=self.limits)
        found = detect(image.pixels, self._model, threshold=threshold)
        info = self.model_info()
        class_names, feature_names = _class_names()
        records: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        files: dict[str, bytes] = {}
        det: Any  # itertuples rows: fields named by the detection table's columns
        for i, det in enumerate(found.itertuples(index=False)):
            k = int(det[4])
            box = (float(det.x_min), float(det.y_min), float(det.x_max), float(det.y_max))
            score = float(det.score)
            geo = _geometry(image.georef, box) if image.georef is not None else None
            uid = (f"pits_{granule.granule_id}_x{int(box[0])}_y{int(box[1])}_c{k}"
                   f"_v{info.version}")
            thumb = None
            if ctx.make_quicklooks:
                thumb = f"landforms/{granule.granule_id}_{i:03d}_v{info.version}.png"
                files[thumb] = chip_png(image.pixels, box)
            records.append({
                "image": image.path.name, "class": k, "class_name": class_names[k - 1],
                "score": round(score, 4),
                **{n: round(v, 1) for n, v in zip(("x_min", "y_min", "x_max", "y_max"), box,
                                                   strict=True)},
                "lon_min": geo["c1min"] if geo else None, "lon_max": geo["c1max"] if geo else None,
                "lat_min": geo["c2min"] if geo else None, "lat_max": geo["c2max"] if geo else None,
                "size_km": geo["size_km"] if geo else None,
                "observation_id": image.observation_id, "granule_id": granule.granule_id,
                "granule_uid": uid, "model": info.name, "model_version": info.version,
            })
            rows.append(self._row(uid, granule, image, info, k, box, score, geo, ctx, thumb,
                                  class_names[k - 1], feature_names[k - 1])
                        | landform_access(ctx, uid, image, box, files))
        return StageOutput(granule, pd.DataFrame.from_records(records, columns=RECORD_COLUMNS),
                           rows, files)

    def _row(self, uid: str, granule: Granule, image: ImageData, info: ModelInfo, k: int,
             box: tuple[float, float, float, float], score: float,
             geo: dict[str, Any] | None, ctx: RunContext, thumb: str | None,
             class_name: str, feature: str) -> dict[str, Any]:
        hirise = image.observation_id is not None
        source = f"HiRISE {image.observation_id} image {image.path.name}" if hirise \
            else f"image {image.path.name}"
        where = "georeferenced (Mars planetocentric)" if geo else \
            "no georeference: coordinates, footprint and size left NULL"
        desc = (f"{class_name} found by model {info.name} v{info.version} (CenterNet-style "
                f"detector trained on DeepLandforms HiRISE crops) in {source}; box "
                f"x {box[0]:.0f}-{box[2]:.0f}, y {box[1]:.0f}-{box[3]:.0f} px; {where}")
        return landform_row(uid, "pits", granule, image, info, score, geo, ctx, thumb,
                            class_name, feature, desc, "phys.reflectance",
                            bib_reference=BIB_REFERENCE)


def _geometry(georef: GeoRef, box: tuple[float, float, float, float]) -> dict[str, Any]:
    """Bounds, counter-clockwise spoly, pixel resolution (deg) and size (km) of a box."""
    x0, y0, x1, y1 = box
    # corners counter-clockwise on the map (north up, east right): NW, SW, SE, NE
    lon, lat = georef.pixel_to_lonlat([x0, x0, x1, x1], [y0, y1, y1, y0])
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    # tight bounds (c1min > c1max across 0 deg E) and vertices in one continuous range
    c1min, c1max = lon_bounds(lon)
    verts = list(zip(continuous_lons(lon), lat.tolist(), strict=True))
    if _signed_area(verts) < 0:  # a south-up image: keep pgSphere's counter-clockwise order
        verts = verts[::-1]
    cy = (y0 + y1) / 2
    kx, ky = georef.pixel_size_km(cy)
    plon, plat = georef.pixel_to_lonlat([0.0, 1.0, 0.0], [cy, cy, cy + 1.0])
    rx = abs(float((plon[1] - plon[0] + 180.0) % 360.0 - 180.0))
    ry = abs(float(plat[2] - plat[0]))
    return {
        "c1min": c1min, "c1max": c1max,
        "c2min": float(lat.min()), "c2max": float(lat.max()),
        "s_region": spoly_literal(verts),
        "c1_resol_min": rx, "c1_resol_max": rx, "c2_resol_min": ry, "c2_resol_max": ry,
        "size_km": round(max((x1 - x0) * kx, (y1 - y0) * ky), 4),
    }


def _signed_area(verts: list[tuple[float, float]]) -> float:
    """Shoelace area in the (lon, lat) plane, longitudes unwrapped around the first."""
    ref = verts[0][0]
    pts = [(((lo - ref + 180.0) % 360.0) - 180.0, la) for lo, la in verts]
    return 0.5 * sum(pts[i][0] * pts[(i + 1) % len(pts)][1] - pts[(i + 1) % len(pts)][0]
                     * pts[i][1] for i in range(len(pts)))


def spoly_literal(vertices: list[tuple[float, float]], digits: int = 6) -> str:
    """pgSphere text ``{(lon1d,lat1d),...}`` (degrees; 6 digits ~ 6 cm on Mars)."""
    fmt = f"{{:.{digits}f}}"
    return "{" + ",".join(f"({fmt.format(lo)}d,{fmt.format(la)}d)" for lo, la in vertices) + "}"


#: ``target_class`` of the bodies the landform pipelines map.
TARGET_CLASS = {"Moon": "satellite", "Mars": "planet", "Mercury": "planet"}


def landform_row(uid: str, gid: str, granule: Granule, image: ImageData, info: ModelInfo,
                 score: float, geo: dict[str, Any] | None, ctx: RunContext,
                 thumb: str | None, landform_class: str, feature: str, desc: str,
                 measurement_type: str, *, target: str = "Mars",
                 bib_reference: str | None = None, hirise: bool | None = None
                 ) -> dict[str, Any]:
    """A ``landforms`` row: the EPN-TAP columns, the model provenance and, with ``geo``,
    the geometry. ``desc`` says how the landform was found (a SIMULATED input is said
    first); ``hirise`` (default: the file name is a HiRISE observation id) names MRO /
    HiRISE as the instrument."""
    if hirise is None:
        hirise = image.observation_id is not None
    host, instrument = ("MRO", "HiRISE") if hirise else (None, None)
    # the source product's own label or metadata, when it says (PDS3 labels, CTX names)
    host = image.meta.get("instrument_host_name") or host
    instrument = image.meta.get("instrument_name") or instrument
    t0, t1 = image.meta.get("start_time"), image.meta.get("stop_time")
    row = core_row(
        PRODUCT, uid=uid, gid=gid, granule=granule, info=info, ctx=ctx,
        dataproduct_type="ci", target_name=target, target_class=TARGET_CLASS[target],
        thumb=thumb, bib_reference=bib_reference, time_scale="UTC" if t0 is not None else None,
    ) | {
        "time_min": to_jd(t0) if t0 is not None else None,
        "time_max": to_jd(t1 if t1 is not None else t0) if t0 is not None else None,
        "c1min": None, "c1max": None, "c2min": None, "c2max": None,
        "c3min": None, "c3max": None, "s_region": None,
        "instrument_host_name": host,
        "instrument_name": instrument,
        "measurement_type": measurement_type,
        "processing_level_desc": simulated_note(image.path) + desc,
        "feature_name": feature,
        "spatial_coordinate_description": None,
        "ml_score": min(1.0, max(0.0, score)),
        "landform_class": landform_class,
        "landform_size": None,
        "source_image": image.path.name,
    }
    if geo is not None:
        row.update({key: geo[key] for key in ("c1min", "c1max", "c2min", "c2max",
                                              "s_region", "c1_resol_min", "c1_resol_max",
                                              "c2_resol_min", "c2_resol_max")})
        row["landform_size"] = geo["size_km"]
        row["spatial_coordinate_description"] = f"{target} planetocentric, east longitude"
    return row


def landform_access(ctx: RunContext, uid: str, image: ImageData,
                    box: tuple[float, float, float, float],
                    files: dict[str, bytes]) -> dict[str, Any]:
    """The landform's ``access_url`` file, added to ``files``: the PNG cut-out of the source
    samples around its box (:func:`epnml.ingest.access.cutout_png`); its access columns.
    Nothing without quicklooks (predict: no file is published)."""
    from epnml.ingest.access import PNG, cutout_png, publish_file

    if not ctx.make_quicklooks:
        return {}
    rel = f"landforms/access/{safe_uid(uid)}.png"
    png = cutout_png(image.pixels, box, f"{simulated_note(image.path)}"
                                        f"{image.path.name}, landform {uid}")
    return publish_file(ctx, files, rel, png, PNG)


def image_granules(paths: Sequence[Path], pipeline: str) -> list[Granule]:
    """One granule per image file (folders expand to their images); the granule id is the
    file stem, prefixed by its folder when two files share a name."""
    out: list[Granule] = []
    seen: set[str] = set()
    for p in image_files(paths, f"the {pipeline} pipeline"):
        gid = safe_name(p.stem)
        if gid in seen:
            gid = safe_name(f"{p.parent.name}_{p.stem}")
        seen.add(gid)
        out.append(Granule(gid, (p,)))
    return out


def simulated_note(path: Path) -> str:
    """``"SIMULATED input; "`` when the file name says the image comes from a simulator
    (epnml's simulators name their files ``simulated_*``), else empty."""
    return "SIMULATED input; " if "simulated" in path.name.lower() else ""


def chip_png(pixels: np.ndarray, box: tuple[float, float, float, float],
             size: int = THUMB_PX) -> bytes:
    """PNG chip of a landform: the box plus half its size around, 1-99 % stretch, outline."""
    from PIL import Image, ImageDraw

    h, w = pixels.shape
    x0, y0, x1, y1 = box
    mx, my = max(8.0, (x1 - x0) / 2), max(8.0, (y1 - y0) / 2)
    a, b = int(max(0, x0 - mx)), int(max(0, y0 - my))
    c, d = int(min(w, x1 + mx + 1)), int(min(h, y1 + my + 1))
    part = np.asarray(pixels[b:d, a:c], dtype=np.float32)
    finite = part[np.isfinite(part)]
    lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
    scaled = np.clip((np.nan_to_num(part, nan=lo) - lo) / max(hi - lo, 1e-6), 0, 1)
    img = Image.fromarray((scaled * 255).astype(np.uint8), mode="L")
    f = size / max(img.width, img.height)
    img = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))),
                     Image.Resampling.BILINEAR).convert("RGB")
    ImageDraw.Draw(img).rectangle(
        [(x0 - a) * f, (y0 - b) * f, (x1 - a) * f - 1, (y1 - b) * f - 1], outline=(255, 200, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
