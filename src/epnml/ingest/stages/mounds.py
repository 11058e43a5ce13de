"""Mounds stage: Mars DTMs (or plain images) -> segmented mounds -> ``landforms`` rows.

Science case: GMAP mound fields (issue 4), U-Net segmentation on DTM-derived slope /
aspect / hillshade. A granule is one file: a float32 GeoTIFF is a DTM in metres (Mars
georeference required by the reader); any other image (a hillshade PNG, an 8-bit
GeoTIFF) goes in as a plain image channel. DTMs whose pixel size differs from the
training 20 m by more than x1.5 are resampled to it and the probabilities mapped back.

One row per MOUND: a connected component (8-connectivity) of ``p >= threshold``;
mounds that touch merge into one row (the row then outlines the group). Outline = convex
hull of the component, <= 32 vertices, counter-clockwise (see ``outlines``); size =
equivalent diameter (diameter of the disc of the same area) in km. Without
georeference the coordinates, outline and size are NULL (never invented); the CSV
keeps the pixel box and the size in pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from epnml.ingest.limits import DEFAULT_LIMITS, ResourceLimits
from epnml.ingest.readers.images import ImageData
from epnml.ingest.stage import CommittedModelStage, Granule, GranuleError, RunContext, StageOutput
from epnml.ingest.stages.outlines import component_outline, outline_geometry
from epnml.ingest.stages.pits import (
    chip_png,
    image_granules,
    landform_access,
    landform_row,
)
from epnml.ml.model_info import ModelInfo
from epnml.schemas.products import get_product

if TYPE_CHECKING:
    from epnml.ml.mounds.model import LoadedNet

PRODUCT = get_product("landforms")
MODEL_NAME = "mounds"
RECORD_COLUMNS = [
    "image", "class", "score", "x_min", "y_min", "x_max", "y_max", "centroid_x",
    "centroid_y", "lon_min", "lon_max", "lat_min", "lat_max", "size_km", "size_px",
    "area_px", "input", "observation_id", "granule_id", "granule_uid", "model",
    "model_version",
]
LANDFORM_CLASS = "mound"
#: resample DTMs whose pixel size is off the training one by more than this factor.
RESAMPLE_FACTOR = 1.5
#: working memory of the U-Net path per pixel at the model's scale (features, tiles,
#: probabilities; measured: 227 B/px at 1 Mpx, 108 B/px at 4 Mpx).
UNET_BYTES_PER_PIXEL = 120


class MoundsStage(CommittedModelStage):
    name = "mounds"
    product = "landforms"
    model_module = "epnml.ml.mounds.model"
    _model: LoadedNet
    #: one DTM or image, and the same bound once resampled to the model's pixel size (a
    #: coarse DTM is upsampled: 400 m/px to 20 m/px multiplies its pixels by 400). The
    #: simulated DTMs are 192-512 px a side; 16 Mpx is a 4000 x 4000 px scene.
    limits: ResourceLimits = replace(DEFAULT_LIMITS, max_pixels=16_000_000, max_memory_mb=2000)

    def granules(self, paths: Sequence[Path]) -> list[Granule]:
        """One granule per DTM or image; a folder expands to the images inside it."""
        return image_granules(paths, self.name)

    def _params(self, ctx: RunContext) -> tuple[float, int]:
        """Threshold and smallest area as the spec resolves them, else the model's own."""
        from epnml.ingest.spec import resolve

        p = resolve(MODEL_NAME, ctx.params, self._model.info.version)
        thr = self._model.threshold if p["threshold"] is None else float(p["threshold"])
        min_area = p["min_area_px"]
        if min_area is None:
            min_area = self._model.config.get("min_area_px", 4)
        return thr, int(min_area)

    def _check_model_size(self, image: ImageData, height: int, width: int) -> None:
        """LimitExceeded before the U-Net runs on ``height x width`` px (after resampling)."""
        self.limits.check(image.path, "pixels", height * width)
        self.limits.check(image.path, "memory_mb",
                          round(height * width * UNET_BYTES_PER_PIXEL / 2**20, 1))

    def probabilities(self, image: ImageData) -> tuple[np.ndarray, str]:
        """Mound probability per input pixel (0 where there is no data), and which input
        path was taken."""
        prob, path_taken = self._probabilities(image)
        prob[~np.isfinite(image.pixels)] = 0.0
        return prob, path_taken

    def _probabilities(self, image: ImageData) -> tuple[np.ndarray, str]:
        from PIL import Image

        from epnml.ml.imagery.detector import resize_image
        from epnml.ml.mounds.model import segment_mounds
        from epnml.ml.mounds.unet import dtm_features, image_features

        pix = image.pixels
        georef = image.georef
        try:
            if image.meta.get("mode") != "F" or georef is None:
                self._check_model_size(image, *pix.shape)
                return segment_mounds(image_features(pix), self._model.module), "image"
            kx, ky = georef.pixel_size_km(pix.shape[0] / 2)
            pixel_m = float(np.sqrt(kx * ky)) * 1000.0
            if not np.isfinite(pixel_m) or pixel_m <= 0:
                raise GranuleError(image.path, "the georeference gives no finite pixel size")
            trained = float(self._model.config.get("pixel_m_trained", 20.0))
            scale = pixel_m / trained
            if 1 / RESAMPLE_FACTOR <= scale <= RESAMPLE_FACTOR:
                self._check_model_size(image, *pix.shape)
                return segment_mounds(dtm_features(pix, pixel_m), self._model.module), "dtm"
            self._check_model_size(image, int(round(pix.shape[0] * scale)),
                                   int(round(pix.shape[1] * scale)))
            small = resize_image(np.where(np.isfinite(pix), pix, np.nanmedian(pix)), scale)
            if min(small.shape) < 8:
                raise GranuleError(image.path, f"DTM too small at the model's {trained:g} m "
                                               f"scale ({small.shape[1]}x{small.shape[0]} px)")
            prob = segment_mounds(dtm_features(small, trained), self._model.module)
            back = np.array(Image.fromarray(prob, mode="F").resize(
                (pix.shape[1], pix.shape[0]), Image.Resampling.BILINEAR), dtype=np.float32)
            return back, f"dtm resampled x{scale:.3g}"
        except ValueError as exc:
            if isinstance(exc, GranuleError):
                raise
            raise GranuleError(image.path, str(exc)) from None

    def process(self, granule: Granule, ctx: RunContext) -> StageOutput:
        from scipy import ndimage

        from epnml.ingest.readers.images import read_image

        thr, min_area = self._params(ctx)
        if len(granule.paths) != 1:
            raise GranuleError(granule.label, "a mounds granule is exactly one DTM or image")
        image = read_image(granule.paths[0], limits=self.limits)
        prob, path_taken = self.probabilities(image)
        labels, n = ndimage.label(prob >= thr, structure=np.ones((3, 3), bool))
        info = self.model_info()
        records: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        files: dict[str, bytes] = {}
        objects = ndimage.find_objects(labels)
        for k in range(1, n + 1):
            sl = objects[k - 1]
            if sl is None:
                continue
            rr, cc = np.nonzero(labels[sl] == k)
            if rr.size < min_area:
                continue
            rr, cc = rr + sl[0].start, cc + sl[1].start
            score = float(prob[rr, cc].mean())
            box = (float(cc.min()), float(rr.min()), float(cc.max() + 1), float(rr.max() + 1))
            cx, cy = float(cc.mean()) + 0.5, float(rr.mean()) + 0.5
            size_px = float(2.0 * np.sqrt(rr.size / np.pi))
            geo = None
            if image.georef is not None:
                geo = outline_geometry(image.georef, component_outline(rr, cc), size_px, cy)
            # the component's first pixel in raster order: unique (components are disjoint,
            # while two of them, e.g. a ring and its core, may share a centroid)
            uid = f"mounds_{granule.granule_id}_x{int(cc[0])}_y{int(rr[0])}_v{info.version}"
            thumb = None
            if ctx.make_quicklooks:
                thumb = f"landforms/mounds_{granule.granule_id}_{len(rows):03d}_v{info.version}.png"
                files[thumb] = chip_png(image.pixels, box)
            records.append({
                "image": image.path.name, "class": LANDFORM_CLASS, "score": round(score, 4),
                **{c: round(v, 1) for c, v in zip(("x_min", "y_min", "x_max", "y_max"), box,
                                                   strict=True)},
                "centroid_x": round(cx, 2), "centroid_y": round(cy, 2),
                "lon_min": geo["c1min"] if geo else None, "lon_max": geo["c1max"] if geo else None,
                "lat_min": geo["c2min"] if geo else None, "lat_max": geo["c2max"] if geo else None,
                "size_km": geo["size_km"] if geo else None, "size_px": round(size_px, 2),
                "area_px": int(rr.size), "input": path_taken,
                "observation_id": image.observation_id, "granule_id": granule.granule_id,
                "granule_uid": uid, "model": info.name, "model_version": info.version,
            })
            rows.append(self._row(uid, granule, image, info, box, score, geo, ctx, thumb,
                                  path_taken)
                        | landform_access(ctx, uid, image, box, files))
        return StageOutput(granule, pd.DataFrame.from_records(records, columns=RECORD_COLUMNS),
                           rows, files)

    def _row(self, uid: str, granule: Granule, image: ImageData, info: ModelInfo,
             box: tuple[float, float, float, float], score: float,
             geo: dict[str, Any] | None, ctx: RunContext, thumb: str | None,
             path_taken: str) -> dict[str, Any]:
        where = "georeferenced (Mars planetocentric)" if geo else \
            "no georeference: coordinates, footprint and size left NULL"
        desc = (f"mound found by model {info.name} v{info.version} (U-Net trained on "
                f"SIMULATED DTM scenes) in {path_taken} input {image.path.name}; box x "
                f"{box[0]:.0f}-{box[2]:.0f}, y {box[1]:.0f}-{box[3]:.0f} px; {where}")
        return landform_row(uid, "mounds", granule, image, info, score, geo, ctx, thumb,
                            LANDFORM_CLASS, "mound", desc,
                            "phys.height" if path_taken.startswith("dtm") else
                            "phys.reflectance")




