"""Column definitions of the product tables: the single source of truth.

The storage SQL (``sql/``) is generated from these definitions and the RDs'
extra columns are tested against them, so a column cannot drift between the
store, the ``epn_core`` view and the compliance tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: where a column comes from: the DaCHS ``//epntap2#table-2_0`` mixin ("core"),
#: its ``optional_columns`` ("optional"), a column declared in our RD
#: ("custom"), or the store only, never served ("storage").
Origin = Literal["core", "optional", "custom", "storage"]


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    unit: str = ""
    ucd: str = ""
    description: str = ""
    not_null: bool = False
    origin: Origin = "core"

    @property
    def served(self) -> bool:
        return self.origin != "storage"

    @property
    def votable(self) -> VOField:
        """How DaCHS serves this column over TAP (and so every VOTable of its rows)."""
        datatype, arraysize, xtype = _VO_TYPES[self.sql_type]
        null = None
        if datatype in _INT_NULL:
            # the RDs declare nullLiteral -1 on their own integers (rd_custom_columns);
            # the mixin's integers keep DaCHS' default, the type's smallest value
            null = "-1" if self.origin == "custom" else _INT_NULL[datatype]
        return VOField(datatype, arraysize, xtype, null,
                       timesys=self.unit == "d" and self.ucd.split(";")[0] in _JD_TIMES)


@dataclass(frozen=True)
class VOField:
    """A column as a VOTable FIELD: what the TAP service declares for it."""

    datatype: str
    arraysize: str | None = None
    xtype: str | None = None
    #: the VALUES null of integer columns
    null: str | None = None
    #: the field refers to :data:`TIMESYS` (Julian dates of the DaCHS epntap2 mixin)
    timesys: bool = False


#: sql type -> (VOTable datatype, arraysize, xtype) as DaCHS 2.7 serves them. s_region is
#: an STC-S string with xtype adql:REGION: the //epntap2 mixin declares it so.
_VO_TYPES: dict[str, tuple[str, str | None, str | None]] = {
    "text": ("char", "*", None),
    "double precision": ("double", None, None),
    "real": ("float", None, None),
    "integer": ("int", None, None),
    "bigint": ("long", None, None),
    "smallint": ("short", None, None),
    "boolean": ("boolean", None, None),
    "timestamp": ("char", "*", "timestamp"),
    "spoly": ("char", "*", "adql:REGION"),
}
_INT_NULL = {"short": "-32768", "int": "-2147483648", "long": "-9223372036854775808"}
_JD_TIMES = ("time.start", "time.end")
#: the time system of time_min/time_max (JD in UTC), as DaCHS' mixin declares it.
TIMESYS = {"timeorigin": "0", "timescale": "UTC", "refposition": "TOPOCENTER"}


def _pair(base: str, sql_type: str, unit: str, ucd: str, what: str) -> list[Column]:
    return [
        # no UCD stays none (the frame "none" has no resolution UCD): not ";stat.min"
        Column(f"{base}_min", sql_type, unit, f"{ucd};stat.min" if ucd else "", f"Min {what}"),
        Column(f"{base}_max", sql_type, unit, f"{ucd};stat.max" if ucd else "", f"Max {what}"),
    ]


# Coordinate units and UCDs per spatial_frame_type (EPN-TAP 2.0 REC, table 2).
FRAME_META: dict[str, tuple[tuple[str, str, str], tuple[str, str, str]]] = {
    "celestial": (("deg", "deg", "AU"), ("pos.eq.ra", "pos.eq.dec", "pos.distance")),
    "body": (("deg", "deg", "km"), ("pos.bodyrc.lon", "pos.bodyrc.lat", "pos.bodyrc.alt")),
    "cartesian": (("km", "km", "km"), ("pos.cartesian.x", "pos.cartesian.y", "pos.cartesian.z")),
    "none": (("", "", ""), ("", "", "")),
}


def core_columns(frame: str) -> list[Column]:
    """The mandatory EPN-TAP 2.0 columns, in the order of the DaCHS mixin."""
    if frame not in FRAME_META:
        raise ValueError(f"unknown spatial_frame_type {frame!r}; known: {sorted(FRAME_META)}")
    units, ucds = FRAME_META[frame]
    text, dbl = "text", "double precision"
    cols = [
        Column("granule_uid", text, ucd="meta.id", not_null=True,
               description="Unique identifier of the row"),
        Column("granule_gid", text, ucd="meta.id", not_null=True,
               description="Common to granules of the same type"),
        Column("obs_id", text, ucd="meta.id;obs", not_null=True,
               description="Identifier of the source data the row was derived from"),
        Column("dataproduct_type", text, ucd="meta.code.class", not_null=True,
               description="Data product type (EPN-TAP vocabulary)"),
        Column("target_name", text, ucd="meta.id;src", description="Standard IAU name of target"),
        Column("target_class", text, ucd="src.class", not_null=True,
               description="Type of target (EPN-TAP vocabulary)"),
        Column("time_min", dbl, "d", "time.start;obs", "Start time (JD, UTC)"),
        Column("time_max", dbl, "d", "time.end;obs", "Stop time (JD, UTC)"),
        *_pair("time_sampling_step", dbl, "s", "time.resolution", "sampling time"),
        *_pair("time_exp", dbl, "s", "time.duration;obs.exposure", "integration time"),
        *_pair("spectral_range", dbl, "Hz", "em.freq", "spectral range"),
        *_pair("spectral_sampling_step", dbl, "Hz", "em.freq;spect.binSize",
               "spectral sampling step"),
        *_pair("spectral_resolution", dbl, "", "spect.resolution", "spectral resolution"),
    ]
    for i in range(3):
        unit, ucd = units[i], ucds[i]
        cols += [
            Column(f"c{i + 1}min", dbl, unit, f"{ucd};stat.min" if ucd else "", f"Min c{i + 1}"),
            Column(f"c{i + 1}max", dbl, unit, f"{ucd};stat.max" if ucd else "", f"Max c{i + 1}"),
        ]
    cols.append(Column("s_region", "spoly", ucd="pos.outline;obs.field",
                       description="Footprint on the body (pgSphere polygon, degrees)"))
    for i in range(3):
        res_ucd = ""
        if ucds[i]:
            res_ucd = "pos.angResolution" if units[i] == "deg" else "pos.resolution"
        cols += _pair(f"c{i + 1}_resol", dbl, units[i], res_ucd, f"resolution in c{i + 1}")
    cols += [
        Column("spatial_frame_type", text, ucd="meta.code.class;pos.frame", not_null=True,
               description="Flavour of coordinate system"),
        *_pair("incidence", dbl, "deg", "pos.incidenceAng", "incidence angle"),
        *_pair("emergence", dbl, "deg", "pos.emergenceAng", "emergence angle"),
        *_pair("phase", dbl, "deg", "pos.phaseAng", "phase angle"),
        Column("instrument_host_name", text, ucd="meta.id;instr.obsty",
               description="Spacecraft or observatory"),
        Column("instrument_name", text, ucd="meta.id;instr", description="Instrument"),
        Column("measurement_type", text, ucd="meta.ucd", description="UCD(s) of the data"),
        Column("processing_level", "integer", ucd="meta.calibLevel", not_null=True,
               description="CODMAC-like level; 5 for ML-derived products"),
        Column("creation_date", "timestamp", ucd="time.creation", not_null=True,
               description="Date of first entry of this granule"),
        Column("modification_date", "timestamp", ucd="time.processing", not_null=True,
               description="Date of last modification"),
        Column("release_date", "timestamp", ucd="time.release", not_null=True,
               description="Start of public access period"),
        Column("service_title", text, ucd="meta.title", not_null=True,
               description="Service name (= schema name)"),
    ]
    return cols


def _opt(name: str, sql_type: str, unit: str, ucd: str, description: str) -> Column:
    return Column(name, sql_type, unit, ucd, description, origin="optional")


#: optional EPN-TAP columns we use, as the DaCHS mixin defines them.
OPTIONAL: dict[str, Column] = {
    c.name: c
    for c in [
        _opt("access_url", "text", "", "meta.ref.url;meta.file", "URL of the data file"),
        _opt("access_format", "text", "", "meta.code.mime", "MIME type of the data file"),
        _opt("access_estsize", "integer", "kbyte", "phys.size;meta.file", "Size of the file"),
        _opt("thumbnail_url", "text", "", "meta.ref.url;meta.preview", "URL of a quicklook"),
        _opt("datalink_url", "text", "", "meta.ref.url",
             "Link to a datalink document for this dataset"),
        _opt("processing_level_desc", "text", "", "meta.note",
             "How the row was produced"),
        _opt("target_region", "text", "", "meta.id;src;obs.field", "Region of interest"),
        _opt("feature_name", "text", "", "meta.id;src;obs.field", "Feature name"),
        _opt("publisher", "text", "", "meta.curation", "Publisher"),
        _opt("bib_reference", "text", "", "meta.bib", "Reference of the method"),
        _opt("spatial_coordinate_description", "text", "", "meta.code.class;pos.frame",
             "Coordinate system"),
        _opt("spatial_origin", "text", "", "meta.ref;pos.frame", "Frame origin"),
        _opt("time_refposition", "text", "", "meta.ref;time.scale", "Where time is measured"),
        _opt("time_scale", "text", "", "time.scale", "Time scale"),
        _opt("local_time_min", "double precision", "h", "time.phase;time.period.rotation;stat.min",
             "Min local time"),
        _opt("local_time_max", "double precision", "h", "time.phase;time.period.rotation;stat.max",
             "Max local time"),
        _opt("radial_distance_min", "double precision", "km", "pos.distance;pos.bodyrc;stat.min",
             "Min distance from target centre"),
        _opt("radial_distance_max", "double precision", "km", "pos.distance;pos.bodyrc;stat.max",
             "Max distance from target centre"),
        _opt("sun_distance_min", "double precision", "AU", "pos.distance;stat.min",
             "Min Sun-target distance"),
        _opt("sun_distance_max", "double precision", "AU", "pos.distance;stat.max",
             "Max Sun-target distance"),
        _opt("event_type", "text", "", "meta.code.class", "Type of event"),
        _opt("event_status", "text", "", "meta.code.status", "prediction, observation or utility"),
    ]
}


def _custom(name: str, sql_type: str, unit: str, ucd: str, description: str,
            not_null: bool = False) -> Column:
    return Column(name, sql_type, unit, ucd, description, not_null, origin="custom")


#: ML provenance, served with every product so a user sees which model wrote a row.
PROVENANCE: list[Column] = [
    _custom("ml_model_name", "text", "", "meta.id;meta.software",
            "Name of the model that produced the row", True),
    _custom("ml_model_version", "text", "", "meta.version;meta.software",
            "Version of the model that produced the row", True),
    _custom("ml_weights_sha256", "text", "", "meta.checksum",
            "SHA-256 of the model weights file", True),
    _custom("ml_run_id", "text", "", "meta.id;meta.dataset",
            "Identifier of the ingest run that wrote the row", True),
    _custom("ml_score", "double precision", "", "stat.probability",
            "Model score (probability) of the detection, 0..1"),
]

#: bookkeeping kept in the store and never served.
STORAGE: list[Column] = [
    Column("pipeline", "text", description="Ingest pipeline (science-case short name)",
           not_null=True, origin="storage"),
    Column("superseded_at", "timestamp",
           description="When a newer model version replaced this row (NULL = current)",
           origin="storage"),
]
