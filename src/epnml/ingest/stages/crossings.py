"""Crossings stage: MESSENGER MAG (MSO, 1 s) -> bow shock / magnetopause edges -> rows.

Science case: Europlanet Mercury boundaries (Julka et al. 2022), boundary edges
numbered as in Philpott et al. 2020 (doi:10.1029/2019JA027544).  One row per
boundary edge; pure: reads the granule's files, runs the model, builds rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from epnml.ingest.access import CSV, publish_file, series_csv
from epnml.ingest.epn import core_row, iso_utc, to_jd
from epnml.ingest.limits import DEFAULT_LIMITS, ResourceLimits
from epnml.ingest.stage import (
    CommittedModelStage,
    Granule,
    GranuleError,
    ModelInfo,
    RunContext,
    StageOutput,
    invalid_note,
    safe_name,
)
from epnml.schemas.products import get_product

if TYPE_CHECKING:
    from epnml.ml.crossings.inference import LoadedModel

PRODUCT = get_product("crossings")
BIB_REFERENCE = "10.1029/2019JA027544"
CADENCE_S = 1.0
#: mean Mercury radius (km), for positions in planetary radii in the records.
MERCURY_RADIUS_KM = 2440.0

RECORD_COLUMNS = [
    "time", "boundary", "direction", "edge", "boundary_number", "score",
    "x_mso_km", "y_mso_km", "z_mso_km", "local_time_h", "r_km", "orbit_number",
    "granule_id", "granule_uid", "model", "model_version", "simulated",
]
#: spec parameters the stage itself handles; the others go to extract_crossings.
_STAGE_PARAMS = {"threshold"}


def local_time_h(x: float, y: float) -> float:
    """MSO local time: 12 h towards the Sun (+x), 18 h towards dusk (+y)."""
    return (12.0 + math.degrees(math.atan2(y, x)) / 15.0) % 24.0


class CrossingsStage(CommittedModelStage):
    name = "crossings"
    product = "crossings"
    model_module = "epnml.ml.crossings.inference"
    _model: LoadedModel
    #: 1-s MAG samples of one granule: an orbit is 8-12 h (43,200 rows), a PDS daily
    #: product 86,400; 2 M samples is 23 days at 1 s. A granule spans at most two months
    #: (the simulated products: one orbit each).
    limits: ResourceLimits = replace(DEFAULT_LIMITS, max_samples=2_000_000, max_span_days=62,
                     max_memory_mb=2000)

    def granules(self, paths: Sequence[Path]) -> list[Granule]:
        from epnml.ingest.readers.messenger import group_mag_files

        return [Granule(gid, tuple(files)) for gid, files in group_mag_files(list(paths))]

    def _params(self, ctx: RunContext) -> tuple[float, dict[str, Any]]:
        """Score threshold and extract_crossings arguments as the spec resolves them
        (epnml.ingest.spec; a None decoding parameter = the model's own)."""
        from epnml.ingest.spec import resolve

        p = resolve("crossings", ctx.params, self._model.info.version)
        extra = {k: v for k, v in p.items() if k not in _STAGE_PARAMS and v is not None}
        return float(p["threshold"]), extra

    def process(self, granule: Granule, ctx: RunContext) -> StageOutput:
        from epnml.ingest.readers.messenger import read_mag
        from epnml.ml.crossings.inference import predict_proba
        from epnml.ml.crossings.postprocess import extract_crossings

        threshold, extra = self._params(ctx)
        frame = read_mag(list(granule.paths), self.limits)
        valid = frame[["bx", "by", "bz", "x", "y", "z"]].notna().all(axis=1)
        if len(frame) == 0 or not valid.any():
            raise GranuleError(granule.label, "no valid magnetometer samples (none with a "
                               "complete field vector and position)")
        invalid: dict[str, int] = dict(frame.attrs.get("invalid_values", {}))
        note = invalid_note(invalid)
        proba = predict_proba(frame, self._model)
        edges = extract_crossings(frame, proba, **{**self._model.postprocess(), **extra})
        if threshold > 0.0 and len(edges):
            edges = edges[edges["score"] >= threshold]
        simulated = bool(frame.attrs.get("simulated", False)) or "simulated" in granule.label
        orbit = frame.attrs.get("orbit_number")
        info = self.model_info()
        records: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        files: dict[str, bytes] = {}
        thumbs: dict[int, str] = {}
        if ctx.make_quicklooks and len(edges):
            from epnml.ingest.quicklook import mag_orbit_quicklook_png
            from epnml.ml.crossings.postprocess import segment_orbits

            segments = segment_orbits(frame)
            for index in sorted(set(int(i) for i in edges["orbit_index"])):
                seg = frame.iloc[segments[index]]
                orbit_edges = edges[edges["orbit_index"] == index]
                label = f"{seg.index[0]:%Y-%m-%d}" + (f" orbit {orbit}" if orbit is not None
                                                      else f" {seg.index[0]:%H:%M}")
                title = f"MESSENGER MAG {label}" + (" (simulated)" if simulated else "")
                name = f"crossings/{safe_name(granule.granule_id)}_{index:03d}_v{info.version}.png"
                files[name] = mag_orbit_quicklook_png(seg, orbit_edges, title)
                thumbs[index] = name
        edge: Any  # itertuples rows: fields named by the edge table's columns
        for edge in edges.itertuples(index=False):
            t = pd.Timestamp(edge.time)
            x, y, z = float(edge.x), float(edge.y), float(edge.z)
            if not all(np.isfinite([x, y, z])):
                continue  # no position, no row: the geometry is never invented
            r = math.sqrt(x * x + y * y + z * z)
            lt = local_time_h(x, y)
            number = int(edge.boundary_number)
            uid = f"mess_mag_{t:%Y%m%dT%H%M%S}_b{number}_v{info.version}"
            records.append({
                "time": iso_utc(t), "boundary": edge.boundary, "direction": edge.direction,
                "edge": edge.edge, "boundary_number": number,
                "score": round(float(edge.score), 4),
                "x_mso_km": round(x, 1), "y_mso_km": round(y, 1), "z_mso_km": round(z, 1),
                "local_time_h": round(lt, 3), "r_km": round(r, 1),
                "orbit_number": orbit, "granule_id": granule.granule_id, "granule_uid": uid,
                "model": info.name, "model_version": info.version, "simulated": simulated,
            })
            thumb = thumbs.get(int(edge.orbit_index))
            row = self._row(uid, granule, info, edge, t, (x, y, z), r, lt, orbit,
                            simulated, ctx, thumb, note)
            if ctx.make_quicklooks:  # files to publish (ingest), not for predict
                rel = f"crossings/{safe_name(uid)}.csv"
                row |= publish_file(ctx, files, rel, crossing_extract_csv(
                    frame, t, uid, edge, simulated, granule), CSV)
            rows.append(row)
        return StageOutput(granule, pd.DataFrame.from_records(records, columns=RECORD_COLUMNS),
                           rows, files, invalid_values=invalid)

    def _row(self, uid: str, granule: Granule, info: ModelInfo, edge: Any, t: pd.Timestamp,
             xyz: tuple[float, float, float], r: float, lt: float, orbit: int | None,
             simulated: bool, ctx: RunContext, thumb: str | None,
             note: str = "") -> dict[str, Any]:
        what = "SIMULATED MESSENGER MAG data (catalogue-timed simulation, not spacecraft " \
            "data)" if simulated else "MESSENGER MAG 1-s MSO data"
        jd = to_jd(t)
        x, y, z = xyz
        return core_row(
            PRODUCT, uid=uid, gid="crossings", granule=granule, info=info, ctx=ctx,
            dataproduct_type="ci", target_name="Mercury", target_class="planet", thumb=thumb,
            bib_reference=BIB_REFERENCE, time_scale="UTC",
        ) | {
            "time_min": jd,
            "time_max": jd,
            "time_sampling_step_min": CADENCE_S,
            "time_sampling_step_max": CADENCE_S,
            "c1min": x, "c1max": x, "c2min": y, "c2max": y, "c3min": z, "c3max": z,
            "instrument_host_name": "MESSENGER",
            "instrument_name": "MAG",
            "measurement_type": "phys.magField",
            "processing_level_desc": (
                f"{edge.boundary} {edge.direction} {edge.edge} edge (Philpott boundary "
                f"{int(edge.boundary_number)}) found by model {info.name} v{info.version} "
                f"(temporal-convolution region segmenter + ordered decoding) in {what}"
                f"{note}"
            ),
            "time_refposition": "MESSENGER",
            "feature_name": edge.boundary,
            "spatial_coordinate_description": "MSO",
            "spatial_origin": "Mercury",
            "local_time_min": lt,
            "local_time_max": lt,
            "radial_distance_min": r,
            "radial_distance_max": r,
            "ml_score": min(1.0, max(0.0, float(edge.score))),
            "crossing_direction": edge.direction,
            "crossing_edge": edge.edge,
            "orbit_number": orbit,
        }



#: half-width of a crossing's data extract: the boundary edge +- 5 min of 1-s samples.
EXTRACT_HALF_WIDTH = pd.Timedelta(minutes=5)
#: units of the MAG frame columns (epnml.ingest.readers.messenger.FRAME_COLUMNS).
MAG_UNITS = {"x": "km", "y": "km", "z": "km", "bx": "nT", "by": "nT", "bz": "nT"}


def crossing_extract_csv(frame: pd.DataFrame, t: pd.Timestamp, uid: str, edge: Any,
                         simulated: bool, granule: Granule) -> bytes:
    """The row's ``access_url`` file: the granule's MAG samples (MSO position and field,
    as read) within :data:`EXTRACT_HALF_WIDTH` of the edge."""
    from epnml.ingest.readers.messenger import FRAME_COLUMNS

    what = "SIMULATED MESSENGER MAG data (not spacecraft data)" if simulated else \
        "MESSENGER MAG MSO data"
    header = [f"epnml crossings: data extract of {uid}",
              f"{edge.boundary} {edge.direction} {edge.edge} edge at {iso_utc(t)}; "
              f"window = edge +- {EXTRACT_HALF_WIDTH.total_seconds() / 60:g} min",
              f"source: {what}, granule {granule.granule_id}; positions MSO"]
    return series_csv(frame, t - EXTRACT_HALF_WIDTH, t + EXTRACT_HALF_WIDTH, FRAME_COLUMNS,
                      MAG_UNITS, header, digits=7)
