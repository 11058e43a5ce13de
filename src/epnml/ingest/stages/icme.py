"""ICME stage: solar-wind in-situ files -> detected ICME events -> ``events`` rows.

Science case: Europlanet IWF (Rüdisser et al. 2022, Space Weather,
doi:10.1029/2022SW003149). Pure: reads files, runs the model, builds rows.

Every row is cross-matched with the published ICME lists found in the run's reference data
(``RunContext.reference_data`` = ``Settings.shared_data``: ICMECAT and Nguyen 2019, read by
:mod:`epnml.ingest.readers.icme_catalogues`). They are an input of the run like the model
file: the runner records their names and sha256 (``run_inputs`` -> ``epnml.runs.inputs``),
and the stage never looks anywhere else for them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from epnml.ingest.access import CSV, publish_file, series_csv
from epnml.ingest.epn import core_row, earth_sun_distance_au, finite_or_none, iso_utc, to_jd
from epnml.ingest.limits import ResourceLimits
from epnml.ingest.readers.icme_catalogues import (
    MATCH_SPACECRAFT,
    Catalogues,
    best_match,
    load_catalogues,
)
from epnml.ingest.readers.solarwind import SOLARWIND_LIMITS, csv_has_omni_words
from epnml.ingest.stage import (
    SERIES_COLUMNS,
    CommittedModelStage,
    Granule,
    GranuleError,
    ModelInfo,
    RunContext,
    SolarWindSeries,
    StageOutput,
    invalid_note,
    safe_uid,
)
from epnml.schemas.products import get_product

if TYPE_CHECKING:
    from epnml.ml.icme.inference import LoadedModel

PRODUCT = get_product("events")
BIB_REFERENCE = "10.1029/2022SW003149"
CADENCE_S = 600.0


@dataclass(frozen=True)
class Source:
    """What the files are: spacecraft, instruments and whether they are simulated."""

    host: str
    instrument: str
    simulated: bool
    #: spacecraft near Earth (L1 or OMNI): Sun distance from Earth's orbit.
    near_earth: bool


def describe_source(granule: Granule) -> Source:
    names = " ".join(p.name.lower() for p in granule.paths)
    simulated = "simulated" in names or "sim_" in names or any(
        _cdf_says_simulated(p) for p in granule.paths if p.suffix.lower() == ".cdf"
    )
    if any(p.suffix.lower() in (".lst", ".dat") for p in granule.paths) or "omni" in names \
            or any(csv_has_omni_words(p) for p in granule.paths if p.suffix.lower() == ".csv"):
        return Source("OMNI", "OMNI", simulated, True)
    if "stereo" in names or "sta_" in names:
        return Source("STEREO-A", "IMPACT#PLASTIC", simulated, False)
    if "stb_" in names:
        return Source("STEREO-B", "IMPACT#PLASTIC", simulated, False)
    if "ace" in names:
        return Source("ACE", "MAG#SWEPAM", simulated, True)
    return Source("Wind", "MFI#SWE", simulated, True)


def _cdf_says_simulated(path: Path) -> bool:
    try:
        import cdflib

        attrs = cdflib.CDF(str(path)).globalattsget()
    except Exception:  # unreadable files are reported by the reader
        return False
    return "simulated" in json.dumps(attrs, default=str).lower()


class IcmeStage(CommittedModelStage):
    name = "icme"
    product = "events"
    model_module = "epnml.ml.icme.inference"
    _model: LoadedModel
    #: per-granule limits, checked by the readers before resampling (see
    #: :data:`epnml.ingest.readers.solarwind.SOLARWIND_LIMITS` for the choice):
    #: 22 years of time span, 1.2 M samples in the file(s) and 10-min bins, 1 GB.
    limits: ResourceLimits = SOLARWIND_LIMITS
    #: catalogues already read, by reference-data folder (read once per process)
    _catalogues: dict[Path | None, Catalogues]

    def catalogues(self, ctx: RunContext) -> Catalogues:
        """The ICME catalogues of the run's reference data (CatalogueError if unreadable)."""
        cache = self.__dict__.setdefault("_catalogues", {})
        if ctx.reference_data not in cache:
            cache[ctx.reference_data] = load_catalogues(ctx.reference_data)
        found: Catalogues = cache[ctx.reference_data]
        return found

    def run_inputs(self, ctx: RunContext) -> dict[str, Any]:
        """Recorded with the run: the catalogue files' names, sha256 and event counts."""
        return self.catalogues(ctx).record()

    def granules(self, paths: Sequence[Path]) -> list[Granule]:
        from epnml.ingest.readers.solarwind import group_solarwind_files

        expanded: list[Path] = []
        for path in paths:
            if path.is_dir():
                expanded += sorted(p for p in path.iterdir()
                                   if p.suffix.lower() in {".csv", ".cdf", ".lst", ".fmt", ".dat"})
            else:
                expanded.append(path)
        return [Granule(gid, tuple(files))
                for gid, files in group_solarwind_files(expanded, self.limits)]

    def _postprocess(self, ctx: RunContext) -> dict[str, Any]:
        """extract_events arguments: the model's own, overridden by the spec's values
        (epnml.ingest.spec; None = the model's own)."""
        from epnml.ingest.spec import resolve

        p = resolve("icme", ctx.params, self._model.info.version)
        kwargs: dict[str, Any] = dict(self._model.postprocess())
        if p["threshold"] is not None:
            kwargs["threshold"] = float(p["threshold"])
        if p["min_duration_h"] is not None:
            kwargs["min_duration"] = pd.Timedelta(hours=float(p["min_duration_h"]))
        return kwargs

    def process(self, granule: Granule, ctx: RunContext) -> StageOutput:
        from epnml.ingest.readers.solarwind import read_solarwind
        from epnml.ml.icme.events import extract_events
        from epnml.ml.icme.inference import predict_proba

        postprocess = self._postprocess(ctx)
        frame = read_solarwind(list(granule.paths), self.limits)
        if frame.empty or frame[["bt", "vt"]].notna().sum().min() == 0:
            raise GranuleError(granule.label, "no valid magnetic field or plasma samples")
        invalid: dict[str, int] = dict(frame.attrs.get("invalid_values", {}))
        source = describe_source(granule)
        series = solarwind_series(frame, source)
        proba = predict_proba(frame, self._model)
        events = extract_events(pd.DatetimeIndex(frame.index), proba, **postprocess)
        catalogues = self.catalogues(ctx)
        info = self.model_info()
        records = []
        rows = []
        files: dict[str, bytes] = {}
        for event in events.to_dict("records"):
            start, end = pd.Timestamp(event["start"]), pd.Timestamp(event["end"])
            inside = frame.loc[start:end]
            stats = {
                "duration_h": (end - start).total_seconds() / 3600.0,
                "b_max": float(np.nanmax(inside["bt"])) if inside["bt"].notna().any() else np.nan,
                "b_mean": float(np.nanmean(inside["bt"])) if inside["bt"].notna().any() else np.nan,
                "v_mean": float(np.nanmean(inside["vt"])) if inside["vt"].notna().any() else np.nan,
            }
            uid = f"icme_{granule.granule_id}_{start:%Y%m%dt%H%M}_v{info.version}"
            matches = cross_match(catalogues, source, start, end)
            records.append({
                "start": iso_utc(start), "end": iso_utc(end),
                "score": round(float(event["score"]), 4), "peak": round(float(event["peak"]), 4),
                **{k: round(v, 3) if np.isfinite(v) else None for k, v in stats.items()},
                "spacecraft": source.host, "granule_id": granule.granule_id,
                "granule_uid": uid, "model": info.name, "model_version": info.version,
                "simulated": source.simulated, **matches,
            })
            thumb = f"events/{safe_uid(uid)}.png"
            if ctx.make_quicklooks:
                from epnml.ingest.quicklook import solarwind_quicklook_png

                title = f"{source.host} ICME {start:%Y-%m-%d}" + (" (simulated)"
                                                                 if source.simulated else "")
                files[thumb] = solarwind_quicklook_png(frame, start, end, title)
            row = self._row(uid, granule, source, info, start, end, float(event["score"]),
                            stats, ctx, thumb if ctx.make_quicklooks else None, invalid,
                            catalogues, matches)
            if ctx.make_quicklooks:  # files to publish (ingest), not for predict
                rel = f"events/{safe_uid(uid)}.csv"
                row |= publish_file(ctx, files, rel, event_extract_csv(
                    frame, start, end, uid, source, granule), CSV)
            rows.append(row)
        return StageOutput(granule, pd.DataFrame.from_records(records, columns=RECORD_COLUMNS),
                           rows, files, invalid_values=invalid, series=series)

    def _row(self, uid: str, granule: Granule, source: Source, info: ModelInfo,
             start: pd.Timestamp, end: pd.Timestamp, score: float, stats: dict[str, float],
             ctx: RunContext, thumb: str | None,
             invalid: dict[str, int] | None = None, catalogues: Catalogues | None = None,
             matches: dict[str, Any] | None = None) -> dict[str, Any]:
        cadence_s = self._cadence_s()
        sun = None
        if source.near_earth:
            # L1 monitors sit about 0.01 au sunward of Earth; OMNI is shifted to the bow shock.
            offset = 0.0 if source.host == "OMNI" else 0.01
            sun = earth_sun_distance_au(start + (end - start) / 2) - offset
        return core_row(
            PRODUCT, uid=uid, gid="icme", granule=granule, info=info, ctx=ctx,
            dataproduct_type="ci", target_name="solar wind",
            target_class="interplanetary_medium", thumb=thumb, bib_reference=BIB_REFERENCE,
            time_scale="UTC",
        ) | {
            "time_min": to_jd(start),
            "time_max": to_jd(end),
            "time_sampling_step_min": cadence_s,
            "time_sampling_step_max": cadence_s,
            "instrument_host_name": source.host,
            "instrument_name": source.instrument,
            "measurement_type": "phys.magField#phys.veloc#phys.density#phys.temperature",
            "processing_level_desc": self._desc(info, source, catalogues, invalid),
            "time_refposition": source.host,
            "target_region": "solar-wind",
            "sun_distance_min": sun,
            "sun_distance_max": sun,
            "event_type": "icme",
            "event_status": "observation",
            "ml_score": min(1.0, max(0.0, score)),
            "event_duration": stats["duration_h"],
            "event_b_max": finite_or_none(stats["b_max"]),
            "event_b_mean": finite_or_none(stats["b_mean"]),
            "event_v_mean": finite_or_none(stats["v_mean"]),
        } | (matches or dict.fromkeys(MATCH_COLUMNS))


    def _cadence_s(self) -> float:
        # the cadence the model sees (icme 1.x: 10 min; 2.x: 1 h means of the 10-min frame)
        return 60.0 * float(self._model.config.get("cadence_min", CADENCE_S / 60))

    def _desc(self, info: ModelInfo, source: Source, catalogues: Catalogues | None,
              invalid: dict[str, int] | None) -> str:
        what = "SIMULATED solar wind (demo inputs, not spacecraft data)" if source.simulated \
            else f"{source.host} {source.instrument.replace('#', '/')} data"
        note = ""
        if catalogues is not None and not source.simulated and not catalogues.available:
            note = "; not cross-matched with ICME catalogues (catalogues not available)"
        return (f"ICME detected by model {info.name} v{info.version} (1-D ResUNet++-style "
                f"segmentation at {self._cadence_s() / 60:g}-min cadence) in {what}"
                + note + invalid_note(invalid or {}))


def solarwind_series(frame: pd.DataFrame, source: Source) -> SolarWindSeries:
    """The series the reader made of the granule (stored with the rows, served by HAPI).

    The reader's frame is a 10-min grid. A source with a coarser native cadence (hourly
    OMNI) fills 5 of every 6 bins by interpolation: only the bins holding a native value
    are kept, at the native cadence. Bins without any value are left out.
    """
    data = frame.loc[:, list(SERIES_COLUMNS)].astype("float64")
    cadence = CADENCE_S
    native = frame.attrs.get("source_cadence_s")
    if native and native > CADENCE_S and native % CADENCE_S == 0 and len(data):
        offsets = pd.DatetimeIndex(data.index) - data.index[0]
        data = data[(offsets % pd.Timedelta(seconds=native)) == pd.Timedelta(0)]
        cadence = float(native)
    return SolarWindSeries(source.host, cadence, source.simulated,
                           data.dropna(how="all").copy())


#: the cross-match columns (rows and ``predict`` records), NULL when nothing matches.
MATCH_COLUMNS = ["icmecat_id", "icmecat_overlap", "nguyen_id", "nguyen_overlap"]


def cross_match(catalogues: Catalogues, source: Source, start: pd.Timestamp,
                end: pd.Timestamp) -> dict[str, Any]:
    """Per catalogue, the event of the source's spacecraft most covered by [start, end].

    Simulated inputs are never matched: their times are invented, a catalogued ICME at
    the same time would be a coincidence. Overlaps are rounded to 4 decimals.
    """
    out: dict[str, Any] = dict.fromkeys(MATCH_COLUMNS)
    if source.simulated:
        return out
    for key, spacecraft in MATCH_SPACECRAFT.items():
        cat = catalogues.get(key)
        match = best_match(cat.events, spacecraft.get(source.host), start, end) \
            if cat is not None else None
        if match is not None:
            out[f"{key}_id"], out[f"{key}_overlap"] = match[0], round(match[1], 4)
    return out


RECORD_COLUMNS = [
    "start", "end", "score", "peak", "duration_h", "b_max", "b_mean", "v_mean", "spacecraft",
    "granule_id", "granule_uid", "model", "model_version", "simulated", *MATCH_COLUMNS,
]



def extract_window(start: pd.Timestamp, end: pd.Timestamp
                   ) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The window of an event's data extract: the event +- max(1 day, 50 % of its length),
    the window of its quicklook."""
    pad = max(pd.Timedelta(days=1), (end - start) * 0.5)
    return start - pad, end + pad


def event_extract_csv(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
                      uid: str, source: Source, granule: Granule) -> bytes:
    """The row's ``access_url`` file: the granule's solar-wind series (as read, at the
    reader's 10-min cadence) in :func:`extract_window`."""
    from epnml.ingest.readers.solarwind import FRAME_COLUMNS, UNITS

    lo, hi = extract_window(start, end)
    what = "SIMULATED solar wind (not spacecraft data)" if source.simulated else \
        f"{source.host} {source.instrument.replace('#', '/')} data"
    header = [f"epnml events: data extract of {uid}",
              f"ICME {iso_utc(start)} .. {iso_utc(end)}; window = event +- max(1 day, 50 %)",
              f"source: {what}, granule {granule.granule_id} (10-min samples as read)"]
    return series_csv(frame, lo, hi, FRAME_COLUMNS, UNITS, header)
