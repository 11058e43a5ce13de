"""HAPI 3.3 (the heliophysics time-series API of hapiclient, Autoplot, SPEDAS, speasy) for
the ICME event catalogue and the solar-wind series the ICME pipeline ingested:
``/hapi/{capabilities,about,catalog,info,data}``.

One dataset, ``epnml_icme_events``: one record per current row of ``epnml.events``
(``superseded_at IS NULL``) of the ``icme`` pipeline, the primary time being the event's
start (``time_min``, JD UTC) with ``timeStampLocation`` ``begin``; the stop time,
duration, model score, catalogue matches and model version are parameters. Events have no
cadence, so ``cadence`` is absent. ``start`` (inclusive) and ``stop`` (exclusive) select
on the event start as written in the stream (millisecond ISO time), so adjacent requests
concatenate without duplicates.

Series datasets, ``solarwind_<spacecraft>_<cadence>[_simulated]`` (:func:`series_id`):
one per (spacecraft, cadence, simulated) of ``epnml.solarwind_series`` with a current
granule link, records = its samples (``epnml.solarwind_samples``), NULL as the double
fill; ``startDate`` is the first sample, ``stopDate`` the last sample plus the cadence.
Both kinds go through the same parameter selection, time parsing, streams and statuses.

Errors are HAPI status JSON with the HTTP code of the spec's table (400, or 404 for an
unknown dataset or parameter). The deprecated 2.x names ``id``, ``time.min``,
``time.max`` are accepted; any other unknown request parameter is 1401.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from epnml.api.deps import Conn, get_settings
from epnml.config import Settings

router = APIRouter(prefix="/hapi", tags=["hapi"])

HAPI_VERSION = "3.3"
DATASET = "epnml_icme_events"
FORMATS = ("csv", "binary", "json")
#: the HAPI status codes this server emits, with their HTTP code and message (spec 4.2).
STATUS: dict[int, tuple[int, str]] = {
    1200: (200, "OK"),
    1201: (200, "OK - no data for time range"),
    1400: (400, "Bad request - user input error"),
    1401: (400, "Bad request - unknown API parameter name"),
    1402: (400, "Bad request - syntax error in start time"),
    1403: (400, "Bad request - syntax error in stop time"),
    1404: (400, "Bad request - start equal to or after stop"),
    1405: (400, "Bad request - start < startDate and/or stop > stopDate"),
    1406: (404, "Bad request - unknown dataset id"),
    1407: (404, "Bad request - unknown dataset parameter"),
    1409: (400, "Bad request - unsupported output format"),
    1410: (400, "Bad request - unsupported include value"),
    1411: (400, "Bad request - out-of-order or duplicate parameters"),
    1412: (400, "Bad request - unsupported resolve_references value"),
    1413: (400, "Bad request - unsupported depth value"),
    1500: (500, "Internal server error"),
}
#: every isotime of the stream: yyyy-mm-ddThh:mm:ss.sssZ
TIME_LENGTH = 24
#: strings are fixed-length in binary: at least this many bytes (more if a value needs it).
MIN_STRING_LENGTH = 64
#: fill of double parameters that may be NULL (an exact double; JSON has no NaN).
DOUBLE_FILL = "-1.0E30"
JD_UNIX_EPOCH = 2440587.5
CORS = {"Access-Control-Allow-Origin": "*"}


class HapiError(Exception):
    """A request the server answers with a HAPI error status."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def status(code: int, detail: str = "") -> dict[str, Any]:
    message = STATUS[code][1] + (f": {detail}" if detail else "")
    return {"code": code, "message": message}


def error_response(exc: HapiError) -> JSONResponse:
    return JSONResponse({"HAPI": HAPI_VERSION, "status": status(exc.code, exc.detail)},
                        status_code=STATUS[exc.code][0], headers=CORS)


def ok(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"HAPI": HAPI_VERSION, "status": status(1200), **body}, headers=CORS)


# -- request parameters -----------------------------------------------------------------

#: 3.x name -> deprecated 2.x name (spec 1.1: a 3.x server accepts both).
ALIASES = {"dataset": "id", "start": "time.min", "stop": "time.max"}


def request_params(request: Request, allowed: Sequence[str]) -> dict[str, str]:
    """The request's parameters under their 3.x names; 1401 for an unknown name, 1400 for
    one given twice (also under both spellings)."""
    known = set(allowed) | {ALIASES[a] for a in allowed if a in ALIASES}
    out: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in known:
            raise HapiError(1401, f"'{name[:40]}' (known: {', '.join(allowed) or 'none'})")
        canonical = next((k for k, v in ALIASES.items() if v == name), name)
        if canonical in out:
            raise HapiError(1400, f"{canonical} given more than once")
        out[canonical] = value
    return out


_TIME = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?|-(\d{3}))?"
    r"(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?Z?$")


def parse_time(text: str) -> datetime:
    """A HAPI restricted ISO 8601 time (year-month-day or year-day-of-year, truncations
    allowed, trailing Z optional, UTC); ValueError if it is not one."""
    m = _TIME.match(text.strip())
    if m is None:
        raise ValueError(text)
    year, month, day, doy, hour, minute, second, frac = m.groups()
    if hour is not None and day is None and doy is None:
        raise ValueError(text)  # a time of day needs a full date
    if doy is not None:
        base = datetime(int(year), 1, 1, tzinfo=UTC)
        if not 1 <= int(doy) <= (366 if _leap(int(year)) else 365):
            raise ValueError(text)
        base += timedelta(days=int(doy) - 1)
    else:
        base = datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
    h, mi, s = int(hour or 0), int(minute or 0), int(second or 0)
    if h > 24 or mi > 59 or s > 60 or (h == 24 and (mi or s or (frac and int(frac)))):
        raise ValueError(text)
    micro = int((frac or "0").ljust(6, "0")[:6])
    return base + timedelta(hours=h, minutes=mi, seconds=s, microseconds=micro)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def isotime(when: datetime) -> str:
    """The stream's fixed-length form (24 characters, millisecond)."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def jd_to_datetime(jd: float) -> datetime:
    """JD (UTC) to a datetime rounded to the millisecond (the stream's precision)."""
    ms = round((jd - JD_UNIX_EPOCH) * 86400000.0)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def datetime_to_jd(when: datetime) -> float:
    return JD_UNIX_EPOCH + (when - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() / 86400


# -- the dataset ------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    name: str
    type: str  # isotime, double, integer, string
    units: str | None
    description: str
    #: SQL expression of the value (rows: current icme events)
    sql: str
    fill: str | None = None
    label: str | None = None

    def meta(self, length: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "units": self.units,
                               "fill": self.fill, "description": self.description}
        if self.label:
            out["label"] = self.label
        if length is not None:
            out["length"] = length
        return out


PARAMS: tuple[Param, ...] = (
    Param("Time", "isotime", "UTC", "Start of the detected event (time_min)", "time_min",
          label="Event start"),
    Param("stop_time", "isotime", "UTC", "End of the detected event (time_max)", "time_max",
          label="Event stop"),
    Param("duration", "double", "h", "Duration of the detected event (stop - start)",
          "(time_max - time_min) * 24", label="Duration"),
    Param("score", "double", None, "Model score (probability) of the detection, 0..1 "
          "(ml_score)", "ml_score", fill=DOUBLE_FILL, label="Score"),
    Param("spacecraft", "string", None, "Spacecraft whose solar-wind data the model read "
          "(instrument_host_name)", "instrument_host_name", fill=""),
    Param("simulated", "integer", None, "1: detected in simulated solar wind (demo inputs, "
          "not spacecraft data; processing_level_desc says so), 0: real data",
          "CASE WHEN strpos(lower(processing_level_desc), 'simulated') > 0 THEN 1 ELSE 0 END"),
    Param("icmecat_id", "string", None, "ICMECAT event of the same spacecraft most covered "
          "by this detection (empty: none overlaps, or not cross-matched)", "icmecat_id",
          fill=""),
    Param("icmecat_overlap", "double", None, "Fraction of the ICMECAT event covered by this "
          "detection (0..1]", "icmecat_overlap", fill=DOUBLE_FILL),
    Param("nguyen_id", "string", None, "Nguyen et al. 2019 Wind ICME most covered by this "
          "detection (empty: none overlaps, or not cross-matched)", "nguyen_id", fill=""),
    Param("nguyen_overlap", "double", None, "Fraction of the Nguyen 2019 event covered by "
          "this detection (0..1]", "nguyen_overlap", fill=DOUBLE_FILL),
    Param("model_version", "string", None, "Version of the model that wrote the row "
          "(ml_model_version; epnml_models.versions)", "ml_model_version", fill=""),
    Param("granule_uid", "string", None, "The row in the EPN-TAP table epnml_events.epn_core "
          "(DataLink: /datalink?ID=<granule_uid>)", "granule_uid"),
)
CURRENT = ("FROM epnml.events WHERE superseded_at IS NULL AND pipeline = 'icme' "
           "AND time_min IS NOT NULL AND time_max IS NOT NULL")

#: the parameters of every solar-wind series dataset (columns of epnml.solarwind_samples).
SERIES_PARAMS: tuple[Param, ...] = (
    Param("Time", "isotime", "UTC", "Sample time: start of the 10-min bin (cadence PT10M), "
          "or centre of the hour of hourly sources (cadence PT1H)", "s.time", label="Time"),
    Param("density", "double", "cm^-3", "Proton number density (np)", "s.np",
          fill=DOUBLE_FILL, label="Np"),
    Param("speed", "double", "km/s", "Solar-wind bulk speed |V| (vt)", "s.vt",
          fill=DOUBLE_FILL, label="|V|"),
    Param("temperature", "double", "K", "Proton temperature (tp)", "s.tp",
          fill=DOUBLE_FILL, label="Tp"),
    Param("bx", "double", "nT", "Magnetic field x component, as in the source files (GSM "
          "for Wind, ACE and OMNI)", "s.bx", fill=DOUBLE_FILL, label="Bx"),
    Param("by", "double", "nT", "Magnetic field y component (frame of bx)", "s.by",
          fill=DOUBLE_FILL, label="By"),
    Param("bz", "double", "nT", "Magnetic field z component (frame of bx)", "s.bz",
          fill=DOUBLE_FILL, label="Bz"),
    Param("b_total", "double", "nT", "Magnetic field magnitude |B| (bt)", "s.bt",
          fill=DOUBLE_FILL, label="|B|"),
    Param("beta", "double", None, "Proton plasma beta n k T / (B^2 / 2 mu0)", "s.beta",
          fill=DOUBLE_FILL, label="beta"),
    Param("pdyn", "double", "Pa", "Dynamic pressure m_p n V^2", "s.pdyn",
          fill=DOUBLE_FILL, label="Pdyn"),
)
#: the granule -> series links served: current ones (superseded series are kept, not served)
SERIES_CURRENT = ("EXISTS (SELECT 1 FROM epnml.solarwind_granules g WHERE g.sha256 = r.sha256"
                  " AND g.superseded_at IS NULL)")
#: the data citation of each spacecraft's source data (series from simulated files: none)
SOURCE_CITATIONS = {
    "Wind": "Wind MFI (Lepping et al. 1995, doi:10.1007/BF00751330) and SWE (Ogilvie et al. "
            "1995, doi:10.1007/BF00751326), NASA CDAWeb",
    "OMNI": "OMNI (King & Papitashvili 2005, doi:10.1029/2004JA010649), NASA OMNIWeb",
    "ACE": "ACE MAG (Smith et al. 1998) and SWEPAM (McComas et al. 1998), ACE Science Center",
    "STEREO-A": "STEREO IMPACT (Luhmann et al. 2008) and PLASTIC (Galvin et al. 2008)",
    "STEREO-B": "STEREO IMPACT (Luhmann et al. 2008) and PLASTIC (Galvin et al. 2008)",
}


@dataclass(frozen=True)
class Definition:
    """One HAPI dataset: its parameters and the SQL of its current records."""
    id: str
    title: str
    params: tuple[Param, ...]
    #: FROM and WHERE of the current records (placeholders: ``args``)
    relation: str
    args: tuple[Any, ...] = ()
    #: the primary time column: "jd" (float JD UTC) or "timestamp" (UTC)
    time_kind: str = "jd"
    #: secondary sort key, or DISTINCT ON the time when records of overlapping sources
    #: share a time (the series stored last wins)
    order: str = ""
    distinct_time: bool = False
    #: solar-wind series: (spacecraft, cadence_s, simulated); None for the event catalogue
    series: tuple[str, float, bool] | None = None

    @property
    def by_name(self) -> dict[str, Param]:
        return {p.name: p for p in self.params}


EVENTS = Definition(DATASET, "ICMEs detected by the epnml model", PARAMS, CURRENT,
                    order="granule_uid")
BY_NAME = EVENTS.by_name


def cadence_label(seconds: float) -> tuple[str, str]:
    """(dataset id part, ISO 8601 duration) of a cadence: 600 -> ("10min", "PT10M")."""
    s = int(round(seconds))
    if s % 3600 == 0:
        return f"{s // 3600}h", f"PT{s // 3600}H"
    if s % 60 == 0:
        return f"{s // 60}min", f"PT{s // 60}M"
    return f"{s}s", f"PT{s}S"


def series_id(spacecraft: str, cadence_s: float, simulated: bool) -> str:
    """``solarwind_<spacecraft>_<cadence>[_simulated]``, e.g. solarwind_omni_1h."""
    slug = re.sub(r"[^a-z0-9]+", "_", spacecraft.lower()).strip("_") or "unknown"
    return (f"solarwind_{slug}_{cadence_label(cadence_s)[0]}"
            + ("_simulated" if simulated else ""))


def series_definition(spacecraft: str, cadence_s: float, simulated: bool) -> Definition:
    title = (f"{spacecraft} solar wind at {cadence_label(cadence_s)[0]}, as ingested by the "
             "epnml ICME pipeline" + (" (SIMULATED)" if simulated else ""))
    relation = ("FROM epnml.solarwind_samples s JOIN epnml.solarwind_series r "
                "ON r.sha256 = s.sha256 WHERE r.spacecraft = %s AND r.cadence_s = %s "
                f"AND r.simulated = %s AND {SERIES_CURRENT}")
    return Definition(series_id(spacecraft, cadence_s, simulated), title, SERIES_PARAMS,
                      relation, (spacecraft, cadence_s, simulated), time_kind="timestamp",
                      order="r.stored_at DESC, r.sha256", distinct_time=True,
                      series=(spacecraft, cadence_s, simulated))


def definitions(conn: psycopg.Connection) -> list[Definition]:
    """Every dataset: the event catalogue, then one per stored series source."""
    rows = conn.execute(
        "SELECT DISTINCT spacecraft, cadence_s, simulated FROM epnml.solarwind_series r "
        f"WHERE {SERIES_CURRENT} ORDER BY 1, 2, 3").fetchall()
    out = [EVENTS]
    for spacecraft, cadence_s, simulated in rows:
        d = series_definition(str(spacecraft), float(cadence_s), bool(simulated))
        if d.id not in {o.id for o in out}:
            out.append(d)
    return out


def find(conn: psycopg.Connection, dataset: str) -> Definition:
    """The definition of a dataset id; 1406 when it is not one."""
    if dataset == DATASET:
        return EVENTS
    if dataset.startswith("solarwind_"):
        for d in definitions(conn)[1:]:
            if d.id == dataset:
                return d
    raise HapiError(1406, f"'{dataset[:60]}' (known: {DATASET}, solarwind_*: see catalog)")


@dataclass(frozen=True)
class Dataset:
    """What ``info`` says of the current records (read once per request)."""
    definition: Definition
    start: datetime
    stop: datetime
    lengths: dict[str, int]
    #: the info keys that depend on the dataset (description, provenance, citation, ...)
    meta: dict[str, Any]
    n_rows: int


def describe(conn: psycopg.Connection, settings: Settings,
             definition: Definition = EVENTS) -> Dataset:
    """The dataset's extent, string lengths and metadata; 1406 when it has no records."""
    if definition.series is not None:
        return _describe_series(conn, settings, definition)
    strings = [p for p in PARAMS if p.type == "string"]
    lengths_sql = ", ".join(f"max(octet_length({p.sql}))" for p in strings)
    row = conn.execute(f"SELECT count(*), min(time_min), max(time_min), {lengths_sql} "
                       f"{CURRENT}").fetchone()
    if row is None or not row[0]:
        raise HapiError(1406, f"{DATASET} has no current events")
    models = conn.execute(
        "SELECT DISTINCT ml_model_name, ml_model_version, coalesce(ml_weights_sha256, '') "
        f"{CURRENT} ORDER BY 1, 2").fetchall()
    first, last = jd_to_datetime(row[1]), jd_to_datetime(row[2])
    # whole days around the event starts, so [startDate, stopDate) holds every record
    start = first.replace(hour=0, minute=0, second=0, microsecond=0)
    stop = last.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    lengths = {p.name: max(MIN_STRING_LENGTH, int(n or 0))
               for p, n in zip(strings, row[3:], strict=True)}
    lengths.update({p.name: TIME_LENGTH for p in PARAMS if p.type == "isotime"})
    return Dataset(EVENTS, start, stop, lengths,
                   _events_meta(settings, [(str(a), str(b), str(c)) for a, b, c in models]),
                   int(row[0]))


def _events_meta(settings: Settings, models: list[tuple[str, str, str]]) -> dict[str, Any]:
    names = "; ".join(f"{n} {v} (weights sha256 {w or 'not recorded'})" for n, v, w in models)
    api = settings.api_url.rstrip("/")
    return {
        "timeStampLocation": "begin",
        "description": (
            "Interplanetary coronal mass ejections detected by the epnml machine-learning "
            "ICME model in in-situ solar-wind data: one record per detected event (variable "
            "duration), time = event start. Current rows of the EPN-TAP table "
            "epnml_events.epn_core; rows from simulated inputs have simulated=1."),
        "resourceURL": f"{settings.server_url.rstrip('/')}/tap",
        "resourceID": f"ivo://{settings.authority}/events/q/epn_core",
        "datasetCitation": (
            f"epnml ICME event catalogue, ivo://{settings.authority}/events/q/epn_core; "
            "method: https://doi.org/10.1029/2022SW003149"),
        "licenseURL": LICENSE_URL,
        "provenance": (
            f"Written by the epnml ingest pipeline 'icme' with model version(s) {names}; "
            "each row records its ingest run (ml_run_id) and the weights' sha256 "
            "(ml_weights_sha256; TAP table epnml_models.versions) "
            f"and its source granule: DataLink {api}/datalink?ID=<granule_uid> "
            "(#progenitor: the input files). Superseded rows are not served here."),
    }


LICENSE_URL = "https://creativecommons.org/licenses/by/4.0/"
#: granules named in a series' provenance (the rest are counted)
MAX_PROVENANCE_GRANULES = 20


def _describe_series(conn: psycopg.Connection, settings: Settings,
                     definition: Definition) -> Dataset:
    """A series' extent from its current series (first sample to last sample + cadence)."""
    if definition.series is None:
        raise ValueError("not a series dataset")
    spacecraft, cadence_s, simulated = definition.series
    where = ("FROM epnml.solarwind_series r WHERE r.spacecraft = %s AND r.cadence_s = %s "
             f"AND r.simulated = %s AND {SERIES_CURRENT}")
    row = conn.execute(f"SELECT sum(n_samples), min(time_min), max(time_max) {where}",
                       definition.args).fetchone()
    if row is None or not row[0] or row[1] is None:
        raise HapiError(1406, f"{definition.id} has no current samples")
    granules = conn.execute(
        "SELECT g.obs_id, g.sha256, g.last_run_id FROM epnml.solarwind_granules g JOIN "
        "epnml.solarwind_series r ON r.sha256 = g.sha256 WHERE g.superseded_at IS NULL AND "
        "r.spacecraft = %s AND r.cadence_s = %s AND r.simulated = %s ORDER BY r.time_min, "
        "g.obs_id", definition.args).fetchall()
    cadence = timedelta(seconds=cadence_s)
    start = _utc(row[1])
    stop = _utc(row[2]) + cadence
    listed = "; ".join(f"{o} (sha256 {sha}, run {run})"
                       for o, sha, run in granules[:MAX_PROVENANCE_GRANULES])
    more = len(granules) - MAX_PROVENANCE_GRANULES
    hourly = cadence_s > 600
    source = ("SIMULATED solar wind (demo inputs made by epnml.ingest.simulate.solarwind, "
              "not spacecraft data)" if simulated else f"{spacecraft} in-situ data")
    how = ("the source's hourly values, time = centre of the hour" if hourly else
           "10-min bin means of the source samples, time = bin start; gaps of up to 1 h "
           "between valid bins are linearly interpolated, as the ICME model reads them")
    citation = ("simulated data, no source to cite" if simulated
                else SOURCE_CITATIONS.get(spacecraft, f"{spacecraft} data"))
    resource_id = f"ivo://{settings.authority}/hapi/{definition.id}"
    return Dataset(definition, start, stop,
                   {p.name: TIME_LENGTH for p in definition.params if p.type == "isotime"},
                   {
                       "timeStampLocation": "center" if hourly else "begin",
                       "cadence": cadence_label(cadence_s)[1],
                       "description": (
                           f"{source}: the solar-wind series the epnml ICME pipeline "
                           f"ingested ({how}). Missing values are the fill {DOUBLE_FILL}. "
                           "The ICMEs the model detected in it are dataset "
                           f"{DATASET}."),
                       "resourceID": resource_id,
                       "datasetCitation": (
                           f"epnml solar-wind series {definition.id}, {resource_id}; source "
                           f"data: {citation}"),
                       "licenseURL": LICENSE_URL,
                       "provenance": (
                           "Read by the epnml ingest pipeline 'icme' (reader "
                           "epnml.ingest.readers.solarwind) from "
                           f"{len(granules)} granule(s), each stored once per content "
                           "(sha256 of its files, as in epnml.granule_sources): "
                           f"{listed}" + (f"; and {more} more" if more > 0 else "")
                           + ". A changed file of a granule supersedes its former series "
                           "(kept, not served); where two sources overlap, the one stored "
                           "last is served."),
                   }, int(row[0]))


def _utc(value: datetime) -> datetime:
    """A stored UTC timestamp (naive) as an aware datetime at the stream's precision."""
    when = value.replace(tzinfo=UTC)
    return when - timedelta(microseconds=when.microsecond % 1000)


def select(names: str | None, definition: Definition = EVENTS) -> list[Param]:
    """The parameters of a ``parameters`` request value (spec 3.6.1): the primary time
    always first; 1407 for an unknown name, 1411 for an out-of-order or repeated one."""
    params = definition.params
    if names is None or names.strip() == "":
        return list(params)
    wanted = [n.strip() for n in names.split(",")]
    by_name = definition.by_name
    for name in wanted:
        if name not in by_name:
            raise HapiError(1407, f"'{name[:40]}'")
    positions = [params.index(by_name[n]) for n in wanted]
    if positions != sorted(set(positions)):
        raise HapiError(1411, ",".join(wanted)[:200])
    return [params[0]] + [params[i] for i in positions if i != 0]


def info_body(settings: Settings, ds: Dataset, params: Sequence[Param]) -> dict[str, Any]:
    return {
        "parameters": [p.meta(ds.lengths.get(p.name)) for p in params],
        "startDate": isotime(ds.start),
        "stopDate": isotime(ds.stop),
        **ds.meta,
        "contact": settings.contact,
    }


# -- data streams -----------------------------------------------------------------------

Record = list[Any]


def fetch_records(conn: psycopg.Connection, params: Sequence[Param], start: datetime,
                  stop: datetime, definition: Definition = EVENTS) -> list[Record]:
    """Records whose time, as written (ms), is in [start, stop), in time order."""
    cols = ", ".join(p.sql for p in params)
    time_sql = definition.params[0].sql
    if definition.time_kind == "jd":
        margin: Any = 1.0 / 86400  # one second in JD: the exact test is on the written time
        bounds: tuple[Any, Any] = (datetime_to_jd(start) - margin,
                                   datetime_to_jd(stop) + margin)
    else:
        margin = timedelta(seconds=1)
        bounds = ((start - margin).replace(tzinfo=None), (stop + margin).replace(tzinfo=None))
    distinct = f"DISTINCT ON ({time_sql}) " if definition.distinct_time else ""
    order = f"{time_sql}, {definition.order}" if definition.order else time_sql
    rows = conn.execute(
        f"SELECT {distinct}{cols} {definition.relation} AND {time_sql} >= %s "
        f"AND {time_sql} < %s ORDER BY {order}", (*definition.args, *bounds)).fetchall()
    out: list[Record] = []
    for row in rows:
        record: Record = []
        for p, value in zip(params, row, strict=True):
            if p.type == "isotime":
                record.append(_utc(value) if isinstance(value, datetime)
                              else jd_to_datetime(value))
            elif value is None:
                record.append(None)
            elif p.type == "double":
                record.append(float(value))
            elif p.type == "integer":
                record.append(int(value))
            else:
                record.append(str(value))
        if start <= record[0] < stop:
            out.append(record)
    return out


def _text(p: Param, value: Any) -> str:
    if p.type == "isotime":
        return isotime(value)
    if value is None:
        return p.fill or ""
    if p.type == "double":
        return repr(float(value)) if math.isfinite(value) else str(p.fill)
    return str(value)


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def to_csv(params: Sequence[Param], records: list[Record]) -> bytes:
    lines = [",".join(_csv_cell(_text(p, v)) for p, v in zip(params, r, strict=True))
             for r in records]
    return "".join(line + "\n" for line in lines).encode()


def to_binary(params: Sequence[Param], records: list[Record],
              lengths: dict[str, int]) -> bytes:
    """Little-endian doubles and 4-byte integers, fixed-length null-padded strings."""
    return b"".join(_pack(p, v, lengths.get(p.name, 0))
                    for r in records for p, v in zip(params, r, strict=True))


def _pack(p: Param, value: Any, length: int) -> bytes:
    if p.type == "double":
        fill = float(p.fill) if p.fill is not None else math.nan
        return struct.pack("<d", fill if value is None else value)
    if p.type == "integer":
        return struct.pack("<i", value)
    return _text(p, value).encode()[:length].ljust(length, b"\0")


def to_json_record(params: Sequence[Param], record: Record) -> list[Any]:
    out: list[Any] = []
    for p, v in zip(params, record, strict=True):
        if p.type == "isotime":
            out.append(isotime(v))
        elif v is None:
            out.append(float(p.fill) if p.type == "double" and p.fill else (p.fill or ""))
        else:
            out.append(v)
    return out


def header_lines(header: dict[str, Any]) -> bytes:
    """The info header prefixed to csv/binary data: every line starts with '#'."""
    text = json.dumps(header, indent=1)
    return "".join(f"#{line}\n" for line in text.splitlines()).encode()


# -- routes -----------------------------------------------------------------------------

def _run(fn: Callable[[], Response]) -> Response:
    try:
        return fn()
    except HapiError as exc:
        return error_response(exc)


#: the OpenAPI ``responses`` of the HAPI routes: errors are HAPI status documents.
HAPI_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": "HAPI status (code 14xx)", "content": {"application/json": {
        "schema": {"type": "object", "required": ["HAPI", "status"], "properties": {
            "HAPI": {"type": "string"},
            "status": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "integer"}, "message": {"type": "string"}}}}}}}}
    for code in (400, 404)}


@router.get("", response_class=HTMLResponse, include_in_schema=False)
@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def landing() -> HTMLResponse:
    """The optional landing page (spec 3.2)."""
    links = "".join(f'<li><a href="/hapi/{e}">{e}</a></li>'
                    for e in ("capabilities", "about", "catalog", f"info?dataset={DATASET}"))
    return HTMLResponse(f"<html><head><title>epnml HAPI server</title></head><body>"
                        f"<h1>epnml HAPI {HAPI_VERSION} server</h1><ul>{links}</ul>"
                        "</body></html>", headers=CORS)


@router.get("/capabilities", responses=HAPI_ERRORS)
def capabilities(request: Request) -> Response:
    def run() -> Response:
        request_params(request, [])
        return ok({"outputFormats": list(FORMATS), "catalogDepthOptions": ["dataset", "all"]})
    return _run(run)


@router.get("/about", responses=HAPI_ERRORS)
def about(request: Request) -> Response:
    def run() -> Response:
        request_params(request, [])
        settings = get_settings(request)
        return ok({"id": f"{settings.authority}/epnml",
                   "title": "epnml ML-detected heliophysics events",
                   "contact": settings.contact,
                   "description": "Event catalogues written by the epnml machine-learning "
                                  "pipelines (also served through EPN-TAP), and the "
                                  "solar-wind series the ICME pipeline ingested.",
                   "resourceID": f"ivo://{settings.authority}"})
    return _run(run)


@router.get("/catalog", responses=HAPI_ERRORS)
def catalog(request: Request, conn: Conn) -> Response:
    def run() -> Response:
        given = request_params(request, ["depth", "resolve_references"])
        depth = given.get("depth", "dataset")
        if depth not in ("dataset", "all"):
            raise HapiError(1413, f"'{depth[:20]}' (dataset or all)")
        _resolve(given)
        settings = get_settings(request)
        entries: list[dict[str, Any]] = []
        for definition in definitions(conn):
            try:
                ds = describe(conn, settings, definition)
            except HapiError:  # no current records: not listed
                continue
            entry: dict[str, Any] = {"id": definition.id, "title": definition.title}
            if depth == "all":
                entry["info"] = info_body(settings, ds, definition.params)
            entries.append(entry)
        return ok({"catalog": entries})
    return _run(run)


def _resolve(given: dict[str, str]) -> None:
    if given.get("resolve_references", "true") not in ("true", "false"):
        raise HapiError(1412, "true or false")


def _dataset(given: dict[str, str], conn: psycopg.Connection) -> Definition:
    if "dataset" not in given:
        raise HapiError(1400, "dataset is required")
    return find(conn, given["dataset"])


@router.get("/info", responses=HAPI_ERRORS)
def info(request: Request, conn: Conn) -> Response:
    def run() -> Response:
        given = request_params(request, ["dataset", "parameters", "resolve_references"])
        definition = _dataset(given, conn)
        _resolve(given)
        params = select(given.get("parameters"), definition)
        settings = get_settings(request)
        return ok(info_body(settings, describe(conn, settings, definition), params))
    return _run(run)


@router.get("/data", responses=HAPI_ERRORS)
def data(request: Request, conn: Conn) -> Response:
    def run() -> Response:
        given = request_params(request,
                               ["dataset", "start", "stop", "parameters", "include", "format"])
        definition = _dataset(given, conn)
        fmt = given.get("format", "csv") or "csv"
        if fmt not in FORMATS:
            raise HapiError(1409, f"'{fmt[:20]}' (csv, binary or json)")
        include = given.get("include", "")
        if include not in ("", "header"):
            raise HapiError(1410, f"'{include[:20]}' (header)")
        for key, code in (("start", 1402), ("stop", 1403)):
            if key not in given:
                raise HapiError(1400, f"{key} is required")
            try:
                parse_time(given[key])
            except ValueError:
                raise HapiError(code, f"'{given[key][:40]}'") from None
        start, stop = parse_time(given["start"]), parse_time(given["stop"])
        if start >= stop:
            raise HapiError(1404)
        params = select(given.get("parameters"), definition)
        settings = get_settings(request)
        ds = describe(conn, settings, definition)
        if stop <= ds.start or start >= ds.stop:
            raise HapiError(1405, f"the dataset spans {isotime(ds.start)} to "
                                  f"{isotime(ds.stop)}")
        records = fetch_records(conn, params, max(start, ds.start), min(stop, ds.stop),
                                definition)
        code = 1200 if records else 1201
        header = {"HAPI": HAPI_VERSION, "status": status(code),
                  **info_body(settings, ds, params), "format": fmt}
        headers = {**CORS}
        if fmt == "json":
            header["data"] = [to_json_record(params, r) for r in records]
            return JSONResponse(header, headers=headers)
        head = header_lines(header) if include == "header" else b""
        if fmt == "csv":
            return Response(head + to_csv(params, records), media_type="text/csv",
                            headers=headers)
        return Response(head + to_binary(params, records, ds.lengths),
                        media_type="application/octet-stream", headers=headers)
    return _run(run)


@router.get("/{endpoint:path}", include_in_schema=False)
def unknown(endpoint: str) -> Response:
    """Spec 4.1: an endpoint that does not exist is 1400."""
    return error_response(HapiError(1400, f"unknown endpoint '{endpoint[:40]}'"))
