"""Ice stage: HiRISE-like images -> icy 1024-px chunks + an image grade -> ``landforms`` rows.

Science case: residual water-ice patches at 40-60 deg S after the seasonal cap retreat
(Gergacz & Kereszturi; issue 4). A granule is one image (GeoTIFF or chip). It is cut
into 1024 x 1024 chunks (:func:`epnml.ml.ice.icenet.chunk_inputs`), each gets an
ice probability from the Xception-style CNN, and:

* one row per icy chunk (``p >= threshold``, default 0.6 = the authors' "icy"):
  landform_class ``ice patch``, score = p, outline = the chunk footprint (the model
  says a chunk holds ice, not where inside it), size = the chunk's side in km;
* one row for the whole image: landform_class ``ice image: good`` / ``ice image: hard
  to identify`` / ``ice image: bad`` from :func:`~epnml.ml.ice.icenet.image_class`
  over ALL chunk probabilities (the threshold parameter does not change it), score =
  the mean chunk probability, outline = the image footprint.

Without georeference the coordinates, outlines and sizes are NULL (never invented).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from epnml.ingest.limits import DEFAULT_LIMITS, ResourceLimits
from epnml.ingest.readers.images import ImageData
from epnml.ingest.stage import CommittedModelStage, Granule, GranuleError, RunContext, StageOutput
from epnml.ingest.stages.outlines import box_outline, outline_geometry
from epnml.ingest.stages.pits import (
    chip_png,
    image_granules,
    landform_access,
    landform_row,
)
from epnml.ml.model_info import ModelInfo

if TYPE_CHECKING:
    from epnml.ml.ice.model import LoadedNet

MODEL_NAME = "ice"
PATCH_CLASS = "ice patch"
IMAGE_CLASS_PREFIX = "ice image: "
RECORD_COLUMNS = [
    "image", "class", "score", "chunk_row", "chunk_col", "x_min", "y_min", "x_max", "y_max",
    "lon_min", "lon_max", "lat_min", "lat_max", "size_km", "size_px", "n_chunks", "n_icy",
    "observation_id", "granule_id", "granule_uid", "model", "model_version",
]


class IceStage(CommittedModelStage):
    name = "ice"
    product = "landforms"
    model_module = "epnml.ml.ice.model"
    _model: LoadedNet
    #: one image, classified chunk by chunk: the simulated HiRISE chunks are a few hundred
    #: px; 25 Mpx (5000 x 5000) admits a large HiRISE cut-out.
    limits: ResourceLimits = replace(DEFAULT_LIMITS, max_pixels=25_000_000, max_memory_mb=2000)

    def granules(self, paths: Sequence[Path]) -> list[Granule]:
        """One granule per image; a folder expands to the images inside it."""
        return image_granules(paths, self.name)

    def _threshold(self, ctx: RunContext) -> float:
        """The spec's value (epnml.ingest.spec), else the model's own."""
        from epnml.ingest.spec import resolve

        thr = resolve(MODEL_NAME, ctx.params, self._model.info.version)["threshold"]
        return self._model.threshold if thr is None else float(thr)

    def process(self, granule: Granule, ctx: RunContext) -> StageOutput:
        from epnml.ingest.readers.images import read_image
        from epnml.ml.ice.icenet import ICY, image_class, saturation_level
        from epnml.ml.ice.model import classify_chunks

        thr = self._threshold(ctx)
        if len(granule.paths) != 1:
            raise GranuleError(granule.label, "an ice granule is exactly one image")
        image = read_image(granule.paths[0], limits=self.limits)
        try:
            probs, chunks = classify_chunks(image.pixels, self._model.module,
                                            saturation_level(image.meta.get("mode")))
        except ValueError as exc:
            raise GranuleError(image.path, str(exc)) from None
        if not chunks:
            raise GranuleError(image.path, "no chunk with enough valid pixels to classify")
        info = self.model_info()
        n_icy = int((probs >= ICY).sum())
        records: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        files: dict[str, bytes] = {}
        h, w = image.pixels.shape
        grade = image_class(probs.tolist())
        items: list[tuple[str, float, tuple[float, float, float, float], str, int, int]] = [
            (IMAGE_CLASS_PREFIX + grade, float(probs.mean()), (0.0, 0.0, float(w), float(h)),
             f"ice_{granule.granule_id}_image_v{info.version}", -1, -1)]
        for p, chunk in zip(probs, chunks, strict=True):
            if p >= thr:
                items.append((PATCH_CLASS, float(p),
                              (float(chunk.x0), float(chunk.y0), float(chunk.x1),
                               float(chunk.y1)),
                              f"ice_{granule.granule_id}_r{chunk.row}_c{chunk.col}"
                              f"_v{info.version}", chunk.row, chunk.col))
        for cls, score, box, uid, r, c in items:
            size_px = float(max(box[2] - box[0], box[3] - box[1]))
            geo = None
            if image.georef is not None:
                geo = outline_geometry(image.georef, box_outline(*box), size_px,
                                       (box[1] + box[3]) / 2)
            thumb = None
            if ctx.make_quicklooks:
                thumb = f"landforms/{uid}.png"
                files[thumb] = chip_png(image.pixels, box)
            records.append({
                "image": image.path.name, "class": cls, "score": round(score, 4),
                "chunk_row": r if r >= 0 else None, "chunk_col": c if c >= 0 else None,
                **{n: round(v, 1) for n, v in zip(("x_min", "y_min", "x_max", "y_max"), box,
                                                   strict=True)},
                "lon_min": geo["c1min"] if geo else None, "lon_max": geo["c1max"] if geo else None,
                "lat_min": geo["c2min"] if geo else None, "lat_max": geo["c2max"] if geo else None,
                "size_km": geo["size_km"] if geo else None, "size_px": size_px,
                "n_chunks": len(chunks) if r < 0 else None, "n_icy": n_icy if r < 0 else None,
                "observation_id": image.observation_id, "granule_id": granule.granule_id,
                "granule_uid": uid, "model": info.name, "model_version": info.version,
            })
            rows.append(self._row(uid, granule, image, info, cls, box, score, geo, ctx, thumb,
                                  len(chunks), n_icy)
                        | landform_access(ctx, uid, image, box, files))
        return StageOutput(granule, pd.DataFrame.from_records(records, columns=RECORD_COLUMNS),
                           rows, files)

    def _row(self, uid: str, granule: Granule, image: ImageData, info: ModelInfo, cls: str,
             box: tuple[float, float, float, float], score: float,
             geo: dict[str, Any] | None, ctx: RunContext, thumb: str | None,
             n_chunks: int, n_icy: int) -> dict[str, Any]:
        where = "georeferenced (Mars planetocentric)" if geo else \
            "no georeference: coordinates, footprint and size left NULL"
        model = (f"model {info.name} v{info.version} (Xception-style CNN trained on SIMULATED "
                 f"HiRISE-like scenes)")
        if cls == PATCH_CLASS:
            desc = (f"1024-px chunk x {box[0]:.0f}-{box[2]:.0f}, y {box[1]:.0f}-{box[3]:.0f} "
                    f"px of {image.path.name} holds residual water ice (p = {score:.2f}) "
                    f"according to {model}; outline = the chunk; {where}")
            feature = "ice patch"
        else:
            desc = (f"image grade '{cls[len(IMAGE_CLASS_PREFIX):]}' of {image.path.name} from "
                    f"{n_chunks} chunk probabilities (mean {score:.2f}, {n_icy} >= 0.6) of "
                    f"{model}, Gergacz & Kereszturi rule; outline = the image; {where}")
            feature = "ice image grade"
        return landform_row(uid, "ice", granule, image, info, score, geo, ctx, thumb, cls,
                            feature, desc, "phys.reflectance")
