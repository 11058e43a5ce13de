"""The Open Inference Protocol (KServe v2, REST): ``/v2``, ``/v2/health/{live,ready}``,
``/v2/models/{name}[/versions/{v}]`` metadata and ``.../ready`` and ``.../infer``.

A model is a pipeline, its versions the pipeline's committed versions (``/pipelines``), one
to one. An inference runs what ``/preview/{pipeline}`` runs: the request's tensors are
written to a temporary file in the real format the pipeline's readers take (ICME: the
shared solar-wind CSV; crossings: the MAG CSV; units: a VIRS DDR PDS3 table; minerals:
spectrum CSVs; meteors: the network CSV; image models: an 8-bit PNG chip), then one
predict-mode ``run_pipeline`` in the preview worker pool (deadline, memory cap, queue), with
the same upload size limit and the parameters checked by the spec. So the answer is the
stage's own ``epnml predict`` records on that file, as output tensors. Writing a file
rather than calling the model functions keeps the readers' checks (non-physical values,
gaps, image size limits) and the stage's post-processing (event extraction, thresholds,
derived versions) in one place.

Every model of the registry has a mapping (a test walks ``MODEL_VERSIONS``); a pipeline
added without one answers 400 on ``infer`` (its metadata says so).
Errors: ``{"error": ..., "detail": ...}`` (the protocol's key and this service's), status
400 for a bad tensor or parameter, 404 unknown model or version, 413 too large, 503 busy,
504 past the deadline.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import psycopg
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from epnml.api.auth import client_id
from epnml.api.deps import NAME, VERSION, get_pool, get_settings, service_version
from epnml.api.errors import ERRORS, http_status
from epnml.api.requestlog import log_request
from epnml.api.workers import WorkerPool
from epnml.config import Settings
from epnml.db import connect
from epnml.ingest.limits import LimitExceeded
from epnml.ingest.readers.solarwind import FRAME_COLUMNS
from epnml.ingest.runner import RunFailed, run_pipeline
from epnml.rerun import (
    Busy,
    InputError,
    Internal,
    NotFound,
    Timeout,
    allowed_versions,
    check_params,
    classify,
    pipelines,
    preview_output,
    stage_problem,
)
from epnml.safety import clean_message

router = APIRouter(prefix="/v2", tags=["open inference protocol"], responses=ERRORS)

SERVER_NAME = "epnml"
PLATFORM = "pytorch"
#: the solar-wind frame columns, in the order of the icme input tensor's second axis.
SOLAR_WIND_COLUMNS = tuple(FRAME_COLUMNS)
#: numpy types of the protocol's datatypes this service accepts.
_NUMPY: dict[str, Any] = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64,
                          "UINT8": np.uint8}


class TensorError(InputError):
    """A request tensor that does not fit the model's input (HTTP 400)."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatypes: tuple[str, ...]
    shape: tuple[int, ...]  # -1: any length
    description: str

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatypes[0], "shape": list(self.shape),
                "parameters": {"datatypes": list(self.datatypes),
                               "description": self.description}}


@dataclass(frozen=True)
class Mapping:
    """How a pipeline's model is called over the protocol."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    #: the checked tensors -> the input file(s) written into the directory.
    write: Callable[[dict[str, np.ndarray], Path], list[Path]]
    #: the stage's ``predict`` records -> the output tensors.
    answer: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def _time_text(name: str, times: np.ndarray, tensor: str = "time") -> list[str]:
    """A time tensor as the text a reader parses: INT64 seconds since 1970 (UTC) or ISO
    8601 strings (passed on; the reader judges them, without separators a CSV cell would
    split on)."""
    if times.dtype.kind in "iu":
        import pandas as pd

        try:
            stamps = pd.to_datetime(times, unit="s", utc=True)
        except (ValueError, OverflowError) as exc:
            raise TensorError(f"{name}: {tensor} (INT64) must be seconds since 1970-01-01 "
                              "UTC within 1678-2261") from exc
        return [t.strftime("%Y-%m-%d %H:%M:%S") for t in stamps]
    text = [str(t) for t in times.tolist()]
    bad = next((i for i, t in enumerate(text) if not t or any(c in t for c in ",\n\r\"")),
               None)
    if bad is not None:
        raise TensorError(f"{name}: {tensor} element {bad} is not an ISO 8601 time "
                          "(e.g. 2024-05-10 00:00:00)")
    return text


def _same_rows(name: str, *tensors: tuple[str, np.ndarray]) -> None:
    """Tensors that describe the same samples must have as many rows."""
    (first, a), *rest = tensors
    for other, b in rest:
        if a.shape[0] != b.shape[0]:
            raise TensorError(f"{name}: {first} has {a.shape[0]} rows but {other} has "
                              f"{b.shape[0]}; they must be equally long")


def _number_text(values: np.ndarray) -> np.ndarray:
    """Numbers as the shortest text that gives them back (FP32 stays FP32), NaN empty."""
    return np.where(np.isnan(values), "", values.astype(str)) if values.dtype.kind == "f" \
        else values.astype(str)


# --- icme ------------------------------------------------------------------------------

def _write_solar_wind(tensors: dict[str, np.ndarray], directory: Path) -> list[Path]:
    """The shared-CSV layout (``time,bx,...,texrat``): what read_solarwind_csv reads.
    Values are written with the shortest text that gives back the tensor's own numbers
    (FP32 stays FP32), NaN as an empty cell (missing data)."""
    values, times = tensors["solar_wind"], tensors["time"]
    _same_rows("icme", ("solar_wind", values), ("time", times))
    text = _time_text("icme", times)
    cells = _number_text(values)
    lines = ["time," + ",".join(SOLAR_WIND_COLUMNS)]
    lines += [t + "," + ",".join(row) for t, row in zip(text, cells.tolist(), strict=True)]
    path = directory / "oip_solar_wind.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [path]


def _icme_answer(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    n = len(records)
    return [
        {"name": "start", "datatype": "BYTES", "shape": [n],
         "data": [r["start"] for r in records]},
        {"name": "end", "datatype": "BYTES", "shape": [n], "data": [r["end"] for r in records]},
        {"name": "score", "datatype": "FP64", "shape": [n],
         "data": [float(r["score"]) for r in records]},
        {"name": "peak", "datatype": "FP64", "shape": [n],
         "data": [float(r["peak"]) for r in records]},
    ]


# --- pits ------------------------------------------------------------------------------

def _chip_writer(name: str, what: str) -> Callable[[dict[str, np.ndarray], Path], list[Path]]:
    """An 8-bit grayscale PNG chip (what the image readers take without georeference):
    UINT8 as is, FP32 only when every value is a whole number in 0-255 (exact)."""

    def write(tensors: dict[str, np.ndarray], directory: Path) -> list[Path]:
        from PIL import Image

        pixels = tensors["image"]
        if pixels.dtype != np.uint8:
            if not np.isfinite(pixels).all() or (pixels != np.round(pixels)).any() \
                    or pixels.min() < 0 or pixels.max() > 255:
                raise TensorError(f"{name}: image values must be whole numbers in 0-255 (the "
                                  f"{name} model reads {what}); send UINT8 or rescale")
            pixels = pixels.astype(np.uint8)
        path = directory / "oip_image.png"
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels), mode="L").save(buffer, format="PNG")
        path.write_bytes(buffer.getvalue())
        return [path]

    return write


_write_chip = _chip_writer("pits", "8-bit chips")


def _boxes_answer(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    n = len(records)
    return [
        {"name": "score", "datatype": "FP64", "shape": [n],
         "data": [float(r["score"]) for r in records]},
        {"name": "class", "datatype": "INT64", "shape": [n],
         "data": [int(r["class"]) for r in records]},
        {"name": "class_name", "datatype": "BYTES", "shape": [n],
         "data": [str(r["class_name"]) for r in records]},
        {"name": "box", "datatype": "FP64", "shape": [n, 4],
         "data": [float(r[k]) for r in records for k in ("x_min", "y_min", "x_max", "y_max")]},
    ]


# --- every other model: outputs read from the stage's record columns ------------------

@dataclass(frozen=True)
class Out:
    """One output tensor: the record column(s) it carries (one: shape [n]; several:
    [n, k], in this order). Missing values (None, NaN) are JSON null."""

    spec: TensorSpec
    keys: tuple[str, ...]


def _value(value: Any, datatype: str) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if datatype == "FP64":
        return float(value)
    if datatype == "INT64":
        return int(value)
    if datatype == "BOOL":
        return bool(value)
    return str(value)


def _columns(outs: tuple[Out, ...]) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    def answer(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        n = len(records)
        return [{"name": o.spec.name, "datatype": o.spec.datatypes[0],
                 "shape": [n] if len(o.keys) == 1 else [n, len(o.keys)],
                 "data": [_value(r.get(k), o.spec.datatypes[0]) for r in records
                          for k in o.keys]} for o in outs]

    return answer


def _mapping(inputs: tuple[TensorSpec, ...], outs: tuple[Out, ...],
             write: Callable[[dict[str, np.ndarray], Path], list[Path]]) -> Mapping:
    return Mapping(inputs, tuple(o.spec for o in outs), write, _columns(outs))


def _out(name: str, datatype: str, description: str, *keys: str) -> Out:
    shape = (-1,) if len(keys) <= 1 else (-1, len(keys))
    return Out(TensorSpec(name, (datatype,), shape, description), keys or (name,))


BOX = _out("box", "FP64", "x_min, y_min, x_max, y_max in pixels", "x_min", "y_min", "x_max",
           "y_max")
IMAGE_NOTE = ("no georeference over this protocol: coordinates and sizes in km stay null "
              "(send georeferenced files to /preview)")


def _image(description: str) -> tuple[TensorSpec, ...]:
    return (TensorSpec("image", ("UINT8", "FP32"), (-1, -1), description),)


# --- crossings: MESSENGER MAG 1-s samples -> the reader's CSV ----------------------------

MSO = ("x_mso_km", "y_mso_km", "z_mso_km")
FIELD = ("bx_mso_nt", "by_mso_nt", "bz_mso_nt")


def _write_mag(tensors: dict[str, np.ndarray], directory: Path) -> list[Path]:
    """The MAG CSV layout ``time,x_mso_km,...,bz_mso_nt`` (epnml.ingest.readers.messenger
    read_csv): NaN field or position = missing sample."""
    position, field, times = tensors["position"], tensors["field"], tensors["time"]
    _same_rows("crossings", ("position", position), ("field", field), ("time", times))
    text = _time_text("crossings", times)
    cells = np.concatenate([_number_text(position), _number_text(field)], axis=1)
    lines = ["time," + ",".join(MSO + FIELD)]
    lines += [t + "," + ",".join(row) for t, row in zip(text, cells.tolist(), strict=True)]
    path = directory / "oip_mag.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [path]


# --- units: MASCS VIRS footprints -> a PDS3 DDR table the units reader takes -------------

def _write_virs(tensors: dict[str, np.ndarray], directory: Path) -> list[Path]:
    """A VIRS-VIS DDR (detached label, .fmt, binary table) with the columns the MASCS
    reader uses: I/F spectra, channel wavelengths, footprint centre + corners, angles,
    spectrum times; data-quality flags all good (the client's data, taken as is); null
    I/F, latitude or longitude are written as the DDR's invalid / missing constants."""
    import pandas as pd

    from epnml.ingest.simulate.units import virs_columns, write_pds3_table

    iof, wl = tensors["iof"], tensors["wavelength_nm"]
    lat, lon, angles = tensors["latitude"], tensors["longitude"], tensors["angles"]
    _same_rows("units", ("iof", iof), ("latitude", lat), ("longitude", lon),
               ("angles", angles), ("time", tensors["time"]))
    if iof.shape[1] != wl.shape[0]:
        raise TensorError(f"units: iof has {iof.shape[1]} channels but wavelength_nm has "
                          f"{wl.shape[0]}")
    text = _time_text("units", tensors["time"])
    stamps = pd.to_datetime(pd.Series(text), errors="coerce", utc=True, format="ISO8601")
    if stamps.isna().any():
        bad = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise TensorError(f"units: time element {bad} is not an ISO 8601 time")
    n = iof.shape[0]
    data: dict[str, np.ndarray] = {
        "SC_TIME": np.arange(n, dtype=np.uint32) + 1,
        "SPECTRUM_NUMBER": np.arange(n) % 65536,
        "SPECTRUM_UTC_TIME": np.array([t.strftime("%y%jT%H:%M:%S.")
                                       + f"{t.microsecond // 10_000:02d}" for t in stamps]),
        "PHOTOM_IOF_SPECTRUM_DATA": np.where(np.isnan(iof), 1e32, iof).astype(np.float32),
        "CHANNEL_WAVELENGTHS": np.tile(wl.astype(np.float32), (n, 1)),
        # digit M (SPICE geometry) 2: the geometry is the client's, taken as valid
        "DATA_QUALITY_INDEX": np.array(["0000-0000-0000-2000"] * n),
        "TARGET_LATITUDE_SET": np.where(np.isnan(lat), -1e32, lat),
        "TARGET_LONGITUDE_SET": np.where(np.isnan(lon), -1e32, lon),
        **{k: np.where(np.isnan(angles[:, i]), -1e32, angles[:, i]) for i, k in
           enumerate(("INCIDENCE_ANGLE", "EMISSION_ANGLE", "PHASE_ANGLE"))},
    }
    keywords = {"PRODUCT_ID": '"OIP_VIRSVD_REQUEST"', "PRODUCT_TYPE": '"DDR"',
                "INSTRUMENT_HOST_NAME": '"MESSENGER"', "INSTRUMENT_ID": '"MASCS"',
                "DETECTOR_ID": '"VIRS"', "STANDARD_DATA_PRODUCT_ID": '"VIRSDVIS"',
                "TARGET_NAME": '"MERCURY"',
                "START_TIME": stamps.min().strftime("%Y-%m-%dT%H:%M:%S"),
                "STOP_TIME": stamps.max().strftime("%Y-%m-%dT%H:%M:%S")}
    paths = write_pds3_table(directory / "oip_virsvd_request.lbl", virs_columns(wl.shape[0]),
                             data, keywords, "OIPVIRSVD.FMT",
                             description="VIRS VIS spectra sent to the Open Inference "
                                         "Protocol endpoint")
    return [paths["lbl"], paths["dat"], paths["fmt"]]


# --- minerals: reflectance spectra -> one spectrum CSV each -------------------------------

def _write_spectra(tensors: dict[str, np.ndarray], directory: Path) -> list[Path]:
    """``wavelength_nm,reflectance`` CSVs (epnml.ingest.stages.minerals), one per row of
    ``reflectance``: the records come back in the row order."""
    wl, refl = tensors["wavelength_nm"], tensors["reflectance"]
    if refl.shape[1] != wl.shape[0]:
        raise TensorError(f"minerals: reflectance has {refl.shape[1]} wavelengths per "
                          f"spectrum but wavelength_nm has {wl.shape[0]}")
    paths = []
    wl_text = _number_text(wl).tolist()
    for i, row in enumerate(_number_text(refl).tolist()):
        path = directory / f"oip_spectrum_{i:05d}.csv"
        path.write_text("wavelength_nm,reflectance\n" + "".join(
            f"{w},{r}\n" for w, r in zip(wl_text, row, strict=True)), encoding="utf-8")
        paths.append(path)
    return paths


# --- meteors: light curves -> the network's CSV -------------------------------------------

def _write_meteors(tensors: dict[str, np.ndarray], directory: Path) -> list[Path]:
    """The Armagh/Bangor CSV (epnml.ingest.readers.meteors): one record per meteor, its
    per-frame lists the non-null leading values of its ``mag``/``ra``/``dec`` rows."""
    import csv

    import pandas as pd

    ids, cams, starts = tensors["meteor_id"], tensors["camera"], tensors["start"]
    mag, ra, dec = tensors["mag"], tensors["ra"], tensors["dec"]
    _same_rows("meteors", ("meteor_id", ids), ("camera", cams), ("start", starts),
               ("mag", mag), ("ra", ra), ("dec", dec))
    if not mag.shape == ra.shape == dec.shape:
        raise TensorError(f"meteors: mag, ra and dec must have one shape (frames per meteor, "
                          f"null after its last frame); got {list(mag.shape)}, "
                          f"{list(ra.shape)}, {list(dec.shape)}")
    text = _time_text("meteors", starts, "start")
    when = pd.to_datetime(pd.Series(text), errors="coerce", utc=True, format="ISO8601")
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(("fname", "cam", "year", "month", "day", "hour", "minute", "second", "sN",
                  "mag", "ra", "dec"))
    for i in range(mag.shape[0]):
        if pd.isna(when[i]):
            raise TensorError(f"meteors: start element {i} is not an ISO 8601 time")
        t = when[i]
        frames = np.isfinite(mag[i]) & np.isfinite(ra[i]) & np.isfinite(dec[i])
        n = int(frames.argmin()) if not frames.all() else frames.size
        if frames[n:].any():
            raise TensorError(f"meteors: meteor {i} has a null frame before its last one "
                              "(pad with null only after the last frame)")
        second = t.second + t.microsecond / 1e6
        out.writerow((f"{ids[i]}.XML", str(cams[i]), t.year, t.month, t.day, t.hour,
                      t.minute, repr(second), n,
                      *(";".join(_number_text(v[i, :n]).tolist()) for v in (mag, ra, dec))))
    path = directory / "oip_meteors.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return [path]


_MINERALS_PHASES = ("olivine", "orthopyroxene", "clinopyroxene", "plagioclase", "glass",
                    "other")  # epnml.ml.minerals.abundance.PHASES (a test checks they agree)

OTHER_MAPPINGS: dict[str, Mapping] = {
    "crossings": _mapping(
        (TensorSpec("position", ("FP64", "FP32"), (-1, 3),
                    "MESSENGER position x, y, z MSO (km), 1-s samples; NaN/null: missing"),
         TensorSpec("field", ("FP64", "FP32"), (-1, 3),
                    "magnetic field Bx, By, Bz MSO (nT); NaN/null: missing (data gap)"),
         TensorSpec("time", ("BYTES", "INT64"), (-1,),
                    "UTC time of each sample: ISO 8601 text or seconds since 1970")),
        (_out("time", "BYTES", "crossing time, ISO 8601 UTC"),
         _out("boundary", "BYTES", "bow shock or magnetopause"),
         _out("direction", "BYTES", "inbound or outbound"),
         _out("edge", "BYTES", "inner or outer edge of the boundary layer"),
         _out("boundary_number", "INT64", "Philpott et al. 2020 boundary number 1-8"),
         _out("score", "FP64", "mean probability of the decoded region around the edge"),
         _out("position", "FP64", "position at the edge, MSO km", *MSO),
         _out("local_time_h", "FP64", "local time at the edge (h)")),
        _write_mag),
    "units": _mapping(
        (TensorSpec("iof", ("FP32", "FP64"), (-1, -1),
                    "VIRS VIS photometrically corrected I/F [footprints, channels]; null: "
                    "fill"),
         TensorSpec("wavelength_nm", ("FP32", "FP64"), (-1,), "channel wavelengths (nm)"),
         TensorSpec("latitude", ("FP64", "FP32"), (-1, 5),
                    "footprint centre then its 4 corners, planetocentric latitude (deg)"),
         TensorSpec("longitude", ("FP64", "FP32"), (-1, 5),
                    "footprint centre then its 4 corners, east longitude (deg)"),
         TensorSpec("angles", ("FP64", "FP32"), (-1, 3),
                    "incidence, emission and phase angles (deg)"),
         TensorSpec("time", ("BYTES", "INT64"), (-1,),
                    "UTC time of each spectrum (within the MESSENGER mission)")),
        (_out("unit_id", "INT64", "spectral unit"),
         _out("region", "INT64", "connected region of the unit"),
         _out("tile", "INT64", "tile of the region (at most 90 deg of longitude)"),
         _out("cell_count", "INT64", "grid cells in the tile"),
         _out("bounds", "FP64", "lon_min, lon_max, lat_min, lat_max (deg)", "lon_min",
              "lon_max", "lat_min", "lat_max"),
         _out("score", "FP64", "membership stability of the tile's cells (null: one unit)"),
         _out("n_units", "INT64", "units found in the request"),
         _out("abundance", "FP64", "mineral abundance of the unit (%): "
              + ", ".join(_MINERALS_PHASES) + "; null: withheld",
              *(f"abundance_{p}" for p in _MINERALS_PHASES))),
        _write_virs),
    "minerals": _mapping(
        (TensorSpec("wavelength_nm", ("FP64", "FP32"), (-1,),
                    "wavelengths (nm) shared by every spectrum; 350-1050 nm must be covered"),
         TensorSpec("reflectance", ("FP64", "FP32"), (-1, -1),
                    "reflectance [spectra, wavelengths]; NaN/null: missing")),
        (_out("covered", "BOOL", "the spectrum covers the model's 350-1050 nm (else null "
              "results)"),
         _out("presence_prob", "FP64", "probability each phase is present: "
              + ", ".join(_MINERALS_PHASES),
              *(f"presence_prob_{p}" for p in _MINERALS_PHASES)),
         _out("abundance", "FP64", "abundance of each phase (%)",
              *(f"abundance_{p}" for p in _MINERALS_PHASES)),
         _out("abundance_sigma", "FP64", "ensemble spread of each abundance (%)",
              *(f"abundance_sigma_{p}" for p in _MINERALS_PHASES))),
        _write_spectra),
    "craters": _mapping(
        _image("grayscale orbital image or mosaic chip [H, W], 0-255; " + IMAGE_NOTE),
        (_out("score", "FP64", "detection score"), BOX,
         _out("diameter_px", "FP64", "crater diameter in pixels")),
        _chip_writer("craters", "8-bit chips")),
    "mounds": _mapping(
        _image("grayscale image (e.g. a hillshade) [H, W], 0-255, as a plain image channel; "
               + IMAGE_NOTE),
        (_out("score", "FP64", "mean mound probability of the component"), BOX,
         _out("centroid", "FP64", "centroid x, y in pixels", "centroid_x", "centroid_y"),
         _out("size_px", "FP64", "equivalent diameter in pixels"),
         _out("area_px", "INT64", "component area in pixels")),
        _chip_writer("mounds", "8-bit images without a DTM")),
    "ice": _mapping(
        _image("grayscale HiRISE-like image [H, W], 0-255 (cut into 1024-px chunks); "
               + IMAGE_NOTE),
        (_out("class", "BYTES", "ice patch (one icy chunk) or ice image: good / hard to "
              "identify / bad (the whole image)"),
         _out("score", "FP64", "chunk ice probability (image: mean over chunks)"),
         _out("chunk", "INT64", "chunk row, column (null for the image row)", "chunk_row",
              "chunk_col"), BOX),
        _chip_writer("ice", "8-bit images")),
    "meteors": _mapping(
        (TensorSpec("meteor_id", ("BYTES",), (-1,), "record name (the camera's file stem)"),
         TensorSpec("camera", ("BYTES",), (-1,), "camera name"),
         TensorSpec("start", ("BYTES", "INT64"), (-1,),
                    "UTC time of the first frame: ISO 8601 or seconds since 1970"),
         TensorSpec("mag", ("FP64", "FP32"), (-1, -1),
                    "magnitude per video field (1/50 s) [meteors, frames]; null after the "
                    "meteor's last frame"),
         TensorSpec("ra", ("FP64", "FP32"), (-1, -1), "right ascension per field (deg)"),
         TensorSpec("dec", ("FP64", "FP32"), (-1, -1), "declination per field (deg)")),
        (_out("meteor_id", "BYTES", "record name"),
         _out("cluster", "INT64", "light-curve cluster"),
         _out("meteor_class", "BYTES", "the cluster's light-curve class"),
         _out("score", "FP64", "membership score"),
         _out("linked_id", "BYTES", "the same meteor seen by another camera (null: none)"),
         _out("peak_mag", "FP64", "peak magnitude"),
         _out("duration_s", "FP64", "duration (s)")),
        _write_meteors),
    "aurora": _mapping(
        _image("FUV disk image of Mars [H, W] as a PNG chip's 8-bit values: v = 255 "
               "log1p(B/10 R)/log1p(20000/10) (epnml.ingest.readers.aurora.png_stretch); no "
               "time or geometry: coordinates null"),
        (_out("aurora_type", "BYTES", "discrete, diffuse or sinuous"),
         _out("score", "FP64", "detection score"),
         _out("centre", "FP64", "centre x, y in pixels", "x", "y"), BOX,
         _out("prefilter_objects", "INT64", "bright night-side objects the prefilter "
              "found")),
        _chip_writer("aurora", "8-bit PNG chips")),
}


MAPPINGS: dict[str, Mapping] = {
    "icme": Mapping(
        inputs=(
            TensorSpec("solar_wind", ("FP32", "FP64"), (-1, 10),
                       "10-min solar wind, columns " + ", ".join(SOLAR_WIND_COLUMNS) +
                       " (nT GSM, nT, km/s, cm^-3, K, -, Pa, -); NaN/null: missing"),
            TensorSpec("time", ("BYTES", "INT64"), (-1,),
                       "UTC time of each row: ISO 8601 text or seconds since 1970")),
        outputs=(
            TensorSpec("start", ("BYTES",), (-1,), "event start, ISO 8601 UTC"),
            TensorSpec("end", ("BYTES",), (-1,), "event end, ISO 8601 UTC"),
            TensorSpec("score", ("FP64",), (-1,), "event score (mean ICME probability)"),
            TensorSpec("peak", ("FP64",), (-1,), "highest ICME probability in the event")),
        write=_write_solar_wind, answer=_icme_answer),
    "pits": Mapping(
        inputs=(TensorSpec("image", ("UINT8", "FP32"), (-1, -1),
                           "grayscale Mars orbital image [H, W], 0-255, no georeference"),),
        outputs=(
            TensorSpec("score", ("FP64",), (-1,), "detection score"),
            TensorSpec("class", ("INT64",), (-1,), "class 1-5 (Type-1 skylight .. Type-5 "
                                                   "impact crater)"),
            TensorSpec("class_name", ("BYTES",), (-1,), "class name"),
            TensorSpec("box", ("FP64",), (-1, 4), "x_min, y_min, x_max, y_max in pixels")),
        write=_write_chip, answer=_boxes_answer),
}


MAPPINGS |= OTHER_MAPPINGS


def not_mapped(name: str) -> str:
    return (f"{name} has no Open Inference Protocol tensor mapping yet (mapped: "
            f"{', '.join(sorted(MAPPINGS))}); send its files to the preview upload endpoint")


# --- errors ----------------------------------------------------------------------------

def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    text = clean_message(message)
    return JSONResponse({"error": text, "detail": text}, status_code=status, headers=headers)


def _status(exc: Exception) -> int:
    """The protocol's 400 for any bad input (the rest of the service says 422)."""
    code = http_status(exc)
    return 400 if code == 422 else code


def _model(name: str, version: str | None = None) -> str:
    """The pipeline of ``name`` (NotFound), checked to have ``version``."""
    if name not in pipelines():
        raise NotFound(f"unknown model {name}; models: {', '.join(sorted(pipelines()))}")
    if version is not None and version not in allowed_versions(name):
        raise NotFound(f"model {name} has no version {version}; versions: "
                       f"{', '.join(allowed_versions(name)) or 'none installed'}")
    return name


# --- server ----------------------------------------------------------------------------

@router.get("")
def server_metadata() -> dict[str, Any]:
    """Server metadata (name, version, extensions)."""
    return {"name": SERVER_NAME, "version": service_version(), "extensions": []}


@router.get("/health/live")
def live() -> dict[str, bool]:
    """The process answers."""
    return {"live": True}


def _db_ok(settings: Settings) -> bool:
    try:
        with connect(settings) as conn:
            conn.execute("SELECT 1 FROM epnml.model_versions LIMIT 1")
        return True
    except (RuntimeError, psycopg.Error):
        return False


@router.get("/health/ready")
def ready(request: Request) -> JSONResponse:
    """Ready: the database answers and every mapped model's stage loads (its weights are
    installed); 503 otherwise, with the reason."""
    settings = get_settings(request)
    problems = [p for p in (stage_problem(n) for n in sorted(MAPPINGS)) if p]
    db_ok = _db_ok(settings)
    if not db_ok:
        problems.insert(0, "the database is unavailable")
    body: dict[str, Any] = {"ready": not problems}
    if problems:
        body["problems"] = problems
    return JSONResponse(body, status_code=200 if not problems else 503)


# --- models ----------------------------------------------------------------------------

def _metadata(name: str, version: str | None) -> dict[str, Any]:
    mapping = MAPPINGS.get(name)
    body: dict[str, Any] = {"name": name, "versions": allowed_versions(name),
                            "platform": PLATFORM,
                            "inputs": [t.metadata() for t in mapping.inputs] if mapping else [],
                            "outputs": [t.metadata() for t in mapping.outputs] if mapping
                            else []}
    from epnml.ingest.spec import describe

    body["parameters"] = {"spec": describe(name)}
    if mapping is None:
        body["parameters"]["not_mapped"] = not_mapped(name)
    if version is not None:
        body["versions"] = [version]
    return body


Name = Annotated[str, PathParam(pattern=NAME)]
Ver = Annotated[str, PathParam(pattern=VERSION)]


@router.get("/models/{name}")
def model_metadata(name: Name) -> JSONResponse:
    """Model metadata: its versions (the committed ones), input and output tensors and
    the spec's parameters (``parameters.spec``)."""
    try:
        return JSONResponse(_metadata(_model(name), None))
    except NotFound as exc:
        return _error(404, str(exc))


@router.get("/models/{name}/versions/{version}")
def model_version_metadata(name: Name, version: Ver) -> JSONResponse:
    """Metadata of one committed version."""
    try:
        return JSONResponse(_metadata(_model(name, version), version))
    except NotFound as exc:
        return _error(404, str(exc))


def _model_ready(name: str, version: str | None) -> JSONResponse:
    try:
        _model(name, version)
    except NotFound as exc:
        return _error(404, str(exc))
    ok = name in MAPPINGS and stage_problem(name) is None
    return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)


@router.get("/models/{name}/ready")
def model_ready(name: Name) -> JSONResponse:
    """200 when the model is mapped and loads here, else 503."""
    return _model_ready(name, None)


@router.get("/models/{name}/versions/{version}/ready")
def model_version_ready(name: Name, version: Ver) -> JSONResponse:
    return _model_ready(name, version)


# --- inference -------------------------------------------------------------------------

def _tensor(name: str, spec: TensorSpec, given: dict[str, Any]) -> np.ndarray:
    """One request tensor checked against its spec: datatype, shape, data size."""
    datatype = given.get("datatype")
    if datatype not in spec.datatypes:
        raise TensorError(f"{name}: input {spec.name} has datatype {datatype!r}, expected "
                          f"{' or '.join(spec.datatypes)}")
    shape = given.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool)
                                              and d >= 0 for d in shape):
        raise TensorError(f"{name}: input {spec.name} needs a shape: a list of sizes >= 0")
    if len(shape) != len(spec.shape) or any(w not in (-1, d) for w, d in
                                            zip(spec.shape, shape, strict=True)):
        raise TensorError(f"{name}: input {spec.name} has shape {shape}, expected "
                          f"{list(spec.shape)} (-1: any size)")
    if 0 in shape:
        raise TensorError(f"{name}: input {spec.name} is empty (shape {shape})")
    data = given.get("data")
    if not isinstance(data, list):
        raise TensorError(f"{name}: input {spec.name} has no data list")
    try:
        if datatype == "BYTES":
            flat = np.asarray(data, dtype=object).reshape(-1)
            if not all(isinstance(v, str) for v in flat):
                raise TensorError(f"{name}: input {spec.name} (BYTES) must hold strings")
            array = flat.astype(str)
        else:
            kind = _NUMPY[datatype]
            raw = np.asarray(data, dtype=object).reshape(-1)
            floats = np.issubdtype(kind, np.floating)
            ok = (lambda v: v is None or (isinstance(v, int | float) and not isinstance(v, bool))
                  ) if floats else (lambda v: isinstance(v, int) and not isinstance(v, bool))
            if not all(ok(v) for v in raw):
                raise TensorError(f"{name}: input {spec.name} ({datatype}) must hold "
                                  f"{'numbers (null: missing)' if floats else 'integers'}")
            if not floats:
                info = np.iinfo(kind)
                if any(v < info.min or v > info.max for v in raw):
                    raise TensorError(f"{name}: input {spec.name} ({datatype}) values must "
                                      f"be in {info.min}-{info.max}")
            with np.errstate(over="ignore"):
                array = np.array([math.nan if v is None else v for v in raw], dtype=kind)
            if floats and np.isinf(array).any():
                raise TensorError(f"{name}: input {spec.name} holds values out of "
                                  f"{datatype} range or infinite")
    except TensorError:
        raise
    except ValueError as exc:  # ragged nested lists (TensorError is a ValueError too)
        raise TensorError(f"{name}: input {spec.name} data is not a regular array") from exc
    if array.size != math.prod(shape):
        raise TensorError(f"{name}: input {spec.name} has {array.size} values, shape "
                          f"{shape} needs {math.prod(shape)}")
    return array.reshape(shape)


def parse_request(name: str, body: Any) -> tuple[dict[str, np.ndarray], dict[str, Any], str]:
    """The request's input tensors (checked), its spec parameters (unchecked) and id."""
    mapping = MAPPINGS.get(name)
    if mapping is None:
        raise TensorError(not_mapped(name))
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise TensorError(f"{name}: the request must be a JSON object with an 'inputs' list")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise TensorError(f"{name}: 'parameters' must be a JSON object")
    request_id = body.get("id", "")
    if not isinstance(request_id, str) or len(request_id) > 200:
        raise TensorError(f"{name}: 'id' must be a string of at most 200 characters")
    given: dict[str, dict[str, Any]] = {}
    for item in body["inputs"]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise TensorError(f"{name}: every input needs a name")
        if item["name"] in given:
            raise TensorError(f"{name}: input {item['name']} given more than once")
        given[item["name"]] = item
    expected = {t.name: t for t in mapping.inputs}
    extra = sorted(set(given) - set(expected))
    if extra:
        raise TensorError(f"{name}: unknown input {extra[0]!r} (inputs: "
                          f"{', '.join(expected)})")
    missing = [n for n in expected if n not in given]
    if missing:
        raise TensorError(f"{name}: missing input {missing[0]!r} (inputs: "
                          f"{', '.join(expected)})")
    tensors = {n: _tensor(name, spec, given[n]) for n, spec in expected.items()}
    return tensors, params, request_id


def predict_records(settings: Settings, pipeline: str, paths: list[Path],
                    model_version: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """One predict-mode run_pipeline (a worker process runs it): the stage's records
    (what ``epnml predict`` writes), or the error as data, like
    :func:`epnml.rerun.predict_once`."""
    try:
        summary = run_pipeline(pipeline, paths, mode="predict", settings=settings, workers=1,
                               model_version=model_version, params=dict(params),
                               progress=False)
    except LimitExceeded as exc:
        return {"error": "limit", "message": str(exc)}
    except RunFailed as exc:
        return {"error": exc.kind or classify(str(exc)), "message": str(exc)}
    except (ValueError, OSError) as exc:
        return {"error": "input", "message": str(exc)}
    records = json.loads(summary.records.to_json(orient="records")) \
        if not summary.records.empty else []
    return {"records": records, "model_version": summary.model_version}


def run_records(pool: WorkerPool, settings: Settings, pipeline: str, paths: list[Path],
                model_version: str | None, params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = pool.call(settings.preview_timeout_s, predict_records, settings,
                                    pipeline, paths, model_version, params)
    if "error" in out:
        preview_output(out, settings, pipeline, paths)  # raises the matching exception
    return out


async def _body(request: Request, settings: Settings) -> Any:
    """The JSON body, at most ``max_upload_mb`` (413)."""
    limit = settings.max_upload_mb * 1024 * 1024
    declared = request.headers.get("content-length")
    message = f"request larger than {settings.max_upload_mb} MB (max_upload_mb)"
    if declared and declared.isdigit() and int(declared) > limit:
        raise _TooBig(message)
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise _TooBig(message)
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as exc:
        raise TensorError("the request body is not JSON") from exc


class _TooBig(InputError):
    pass


async def _infer(request: Request, name: str, version: str | None) -> JSONResponse:
    settings, pool = get_settings(request), get_pool(request)
    t0 = time.perf_counter()
    status: int = 500
    error: str | None = None
    params: Any = {}
    used = version
    directory = settings.jobs_dir / "uploads" / f"oip-{uuid.uuid4().hex}"
    try:
        _model(name, version)
        body = await _body(request, settings)
        tensors, params, request_id = parse_request(name, body)
        checked = check_params(name, params, version)
        problem = stage_problem(name)
        if problem:
            raise InputError(problem)
        directory.mkdir(parents=True, exist_ok=True)
        paths = MAPPINGS[name].write(tensors, directory)
        out = await run_in_threadpool(run_records, pool, settings, name, paths, version,
                                      checked)
        used = out["model_version"]
        answer = {"model_name": name, "model_version": used,
                  "outputs": MAPPINGS[name].answer(out["records"])}
        if request_id:
            answer["id"] = request_id
        status = 200
        return JSONResponse(answer)
    except _TooBig as exc:
        status, error = 413, str(exc)
        return _error(413, error)
    except NotFound as exc:
        status, error = 404, str(exc)
        return _error(404, error)
    except Busy as exc:
        status, error = 503, str(exc)
        return _error(503, error, {"Retry-After": str(exc.retry_after)})
    except Internal as exc:
        status, error = 500, str(exc)
        return JSONResponse({"error": error, "detail": error, "error_id": exc.error_id},
                            status_code=500)
    except (InputError, Timeout) as exc:
        status, error = _status(exc), str(exc)
        return _error(status, error)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        await run_in_threadpool(
            log_request, None, settings, client=client_id(request), endpoint="oip_infer",
            pipeline=name[:80], granule_id=None, model_version=used,
            params=params if isinstance(params, dict) else {},
            seconds=time.perf_counter() - t0, outcome="ok" if status == 200 else "failed",
            http_status=status, error=None if error is None else clean_message(error))


@router.post("/models/{name}/infer")
async def infer(request: Request, name: Name) -> JSONResponse:
    """Inference on the newest committed version: ``{"inputs": [{name, shape, datatype,
    data}], "parameters": {spec parameters}}`` -> ``{"outputs": [...]}``, one element per
    detected event or box (see the model's metadata)."""
    return await _infer(request, name, None)


@router.post("/models/{name}/versions/{version}/infer")
async def infer_version(request: Request, name: Name, version: Ver) -> JSONResponse:
    """Inference on one committed version."""
    return await _infer(request, name, version)
