"""The product families: one storage table, one RD and one EPN-TAP service each."""

from __future__ import annotations

from dataclasses import dataclass, field

from epnml.schemas.columns import OPTIONAL, PROVENANCE, STORAGE, Column, _custom, core_columns

STORAGE_SCHEMA = "epnml"
#: mineral phases of the abundance model (epnml.ml.minerals.abundance.PHASES must match).
MINERAL_PHASES = ("olivine", "orthopyroxene", "clinopyroxene", "plagioclase", "glass", "other")


@dataclass(frozen=True)
class Product:
    #: product family = storage table name = RD directory under ``rd/``.
    family: str
    spatial_frame_type: str
    optional: tuple[str, ...]
    extra: tuple[Column, ...] = field(default_factory=tuple)
    #: columns added after the first release, by the migration that adds them
    #: (``sql/<name>.sql``, generated): applied databases are altered, never rebuilt.
    added: tuple[tuple[str, tuple[Column, ...]], ...] = field(default_factory=tuple)
    #: the migration creating the table: the first families share ``0002_products``; a
    #: family added later has its own generated ``sql/<created_by>.sql``.
    created_by: str = "0002_products"
    #: the generated migration also re-creates the model registry and score-drift views
    #: over every product table up to this one (meteors had a hand-written 0011 for that).
    with_views: bool = False

    @property
    def schema(self) -> str:
        """The served schema; EPN-TAP wants service_title equal to it."""
        return f"epnml_{self.family}"

    @property
    def storage_table(self) -> str:
        return f"{STORAGE_SCHEMA}.{self.family}"

    @property
    def rd_id(self) -> str:
        return f"{self.family}/q"

    def columns(self) -> list[Column]:
        """All columns of the storage table, in view order, then storage-only ones."""
        return [*self.initial_columns()[:-len(STORAGE)],
                *(c for _, cols in self.added for c in cols), *STORAGE]

    def initial_columns(self) -> list[Column]:
        """The columns ``sql/0002_products.sql`` creates (before any later migration)."""
        return [
            *core_columns(self.spatial_frame_type),
            *(OPTIONAL[name] for name in self.optional),
            *PROVENANCE,
            *self.extra,
            *STORAGE,
        ]

    def served_columns(self) -> list[Column]:
        return [c for c in self.columns() if c.served]

    def tap_columns(self) -> list[Column]:
        """The served columns in the order the TAP service gives them (``SELECT *``): the
        DaCHS mixin's core and optional columns first, then the RD's own."""
        served = self.served_columns()
        return [c for origin in ("core", "optional", "custom") for c in served
                if c.origin == origin]

    def column(self, name: str) -> Column:
        for col in self.columns():
            if col.name == name:
                return col
        raise KeyError(f"{self.family}: no column {name!r}")


_COMMON_OPTIONAL = (
    "thumbnail_url", "processing_level_desc", "publisher", "bib_reference",
    "time_scale", "time_refposition",
)

#: every product gained DataLink (issue #6): the service's document for each row.
_DATALINK = ("0006_datalink_url", (OPTIONAL["datalink_url"],))
#: every row gained something to download (issue #18): families without access_url get
#: the three columns, those with it (landforms, units) the estimated size.
_ACCESS_NAME = "0019_access"
_ACCESS = (_ACCESS_NAME, tuple(OPTIONAL[n] for n in ("access_url", "access_format",
                                                      "access_estsize")))
_ESTSIZE = (_ACCESS_NAME, (OPTIONAL["access_estsize"],))

PRODUCTS: dict[str, Product] = {
    "events": Product(
        family="events",
        spatial_frame_type="none",
        optional=(*_COMMON_OPTIONAL, "target_region", "sun_distance_min", "sun_distance_max",
                  "event_type", "event_status"),
        extra=(
            _custom("event_duration", "double precision", "h", "time.duration",
                    "Duration of the detected event"),
            _custom("event_b_max", "double precision", "nT", "phys.magField;stat.max",
                    "Maximum magnetic field magnitude in the event"),
            _custom("event_b_mean", "double precision", "nT", "phys.magField;stat.mean",
                    "Mean magnetic field magnitude in the event"),
            _custom("event_v_mean", "double precision", "km/s", "phys.veloc;stat.mean",
                    "Mean solar-wind speed in the event"),
        ),
        # catalogue cross-match of each detection (issue #13; rule: docs/pipelines/icme.md)
        added=(_DATALINK, ("0012_events_catalogue_match", (
            _custom("icmecat_id", "text", "", "meta.id.cross",
                    "ICMECAT event of the same spacecraft most covered by this detection "
                    "(NULL: none overlaps, or not cross-matched)"),
            _custom("icmecat_overlap", "double precision", "", "time.interval;arith.ratio",
                    "Fraction of the ICMECAT event (icme_start..mo_end) covered by "
                    "this detection (0..1]"),
            _custom("nguyen_id", "text", "", "meta.id.cross",
                    "Nguyen et al. 2019 Wind ICME most covered by this detection "
                    "(N19_<begin>; NULL: none overlaps, or not cross-matched)"),
            _custom("nguyen_overlap", "double precision", "", "time.interval;arith.ratio",
                    "Fraction of the Nguyen 2019 event (begin..end) covered by this "
                    "detection (0..1]"),
        )), _ACCESS),
    ),
    "crossings": Product(
        family="crossings",
        spatial_frame_type="cartesian",
        optional=(*_COMMON_OPTIONAL, "feature_name", "spatial_coordinate_description",
                  "spatial_origin", "local_time_min", "local_time_max",
                  "radial_distance_min", "radial_distance_max"),
        extra=(
            _custom("crossing_direction", "text", "", "meta.code",
                    "inbound or outbound"),
            _custom("crossing_edge", "text", "", "meta.code", "outer or inner edge"),
            _custom("orbit_number", "integer", "", "meta.id;obs.sequence",
                    "Spacecraft orbit number"),
        ),
        added=(_DATALINK, _ACCESS),
    ),
    "landforms": Product(
        family="landforms",
        spatial_frame_type="body",
        optional=(*_COMMON_OPTIONAL, "feature_name", "spatial_coordinate_description",
                  "access_url", "access_format"),
        extra=(
            _custom("landform_class", "text", "", "src.class",
                    "Landform class assigned by the model"),
            _custom("landform_size", "double precision", "km", "phys.size",
                    "Size of the landform (km; NULL without georeference)"),
            _custom("source_image", "text", "", "meta.id;obs.image",
                    "Identifier of the source image"),
        ),
        added=(_DATALINK, _ESTSIZE),
    ),
    "units": Product(
        family="units",
        spatial_frame_type="body",
        optional=(*_COMMON_OPTIONAL, "spatial_coordinate_description", "access_url",
                  "access_format"),
        extra=(
            _custom("unit_id", "integer", "", "meta.id;src.class", "Spectral unit identifier"),
            _custom("cell_count", "integer", "", "meta.number", "Number of grid cells"),
        ),
        added=(("0004_units_regions_abundances", (
            _custom("unit_region", "integer", "", "meta.id;obs.field",
                    "Connected region of the unit (0 = largest)"),
            _custom("unit_tile", "integer", "", "meta.id;obs.field",
                    "Tile of the region (regions are cut at 0/90/180/270 deg E)"),
            _custom("region_cell_count", "integer", "", "meta.number",
                    "Number of grid cells of the whole region (all tiles)"),
            *(c for p in MINERAL_PHASES for c in (
                _custom(f"abundance_{p}", "double precision", "%", "phys.abund",
                        f"Estimated {p} abundance of the unit mean spectrum "
                        "(percent, phases sum to 100)"),
                _custom(f"abundance_sigma_{p}", "double precision", "%",
                        "stat.stdev;phys.abund", f"Ensemble standard deviation of abundance_{p}"),
            )),
        )), _DATALINK, _ESTSIZE),
    ),
    "meteors": Product(
        family="meteors",
        spatial_frame_type="celestial",
        optional=(*_COMMON_OPTIONAL, "target_region", "spatial_coordinate_description",
                  "datalink_url"),
        extra=(
            _custom("meteor_id", "text", "", "meta.id",
                    "Record of the camera (its file name without extension)"),
            _custom("meteor_camera", "text", "", "meta.id;instr",
                    "Camera of the network that recorded the meteor"),
            _custom("meteor_peak_mag", "double precision", "mag", "phot.mag;stat.max",
                    "Peak (brightest) magnitude of the light curve"),
            _custom("meteor_mean_mag", "double precision", "mag", "phot.mag;stat.mean",
                    "Magnitude of the mean flux of the light curve"),
            _custom("meteor_class", "text", "", "src.class",
                    "Light-curve class: symmetric, early-peaked, late-peaked or flaring"),
            _custom("meteor_cluster", "integer", "", "meta.code.class",
                    "Cluster of the classifier (several clusters may share a class)"),
            _custom("meteor_linked_id", "text", "", "meta.id.cross",
                    "meteor_id of the same meteor recorded by another camera "
                    "(double station), NULL when none"),
            _custom("meteor_frames", "integer", "", "meta.number",
                    "Number of video fields of the record"),
            _custom("meteor_t_peak", "double precision", "", "time.epoch;arith.ratio",
                    "Time of the peak relative to the record (0 first, 1 last field)"),
            _custom("meteor_angular_speed", "double precision", "deg/s", "phys.veloc.ang",
                    "Angular speed along the fitted great-circle track"),
            _custom("meteor_track_length", "double precision", "deg", "pos.angDistance",
                    "Length of the fitted track on the sky"),
        ),
        added=(_ACCESS,),
        created_by="0010_meteors",
    ),
    # own family: a body-fixed footprint on Mars with a time (neither events' frame
    # "none" nor the landforms' timeless surface features; docs/pipelines/aurora.md)
    "aurora": Product(
        family="aurora",
        spatial_frame_type="body",
        optional=(*_COMMON_OPTIONAL, "target_region", "feature_name",
                  "spatial_coordinate_description", "datalink_url", "access_url",
                  "access_format", "access_estsize"),
        extra=(
            _custom("aurora_type", "text", "", "src.class",
                    "Auroral type assigned by the detector: discrete, diffuse or sinuous"),
            _custom("aurora_x", "double precision", "pix", "pos.cartesian.x;instr.det",
                    "Column of the aurora's box centre in the image (0 = left edge)"),
            _custom("aurora_y", "double precision", "pix", "pos.cartesian.y;instr.det",
                    "Row of the aurora's box centre in the image (0 = top edge)"),
            _custom("aurora_width", "double precision", "pix", "phys.size;instr.det",
                    "Width of the aurora's box in the image"),
            _custom("aurora_height", "double precision", "pix", "phys.size;instr.det",
                    "Height of the aurora's box in the image"),
            _custom("aurora_lon", "double precision", "deg", "pos.bodyrc.lon",
                    "Planetocentric east longitude of the box centre (NULL without "
                    "geometry or off the disk)"),
            _custom("aurora_lat", "double precision", "deg", "pos.bodyrc.lat",
                    "Planetocentric latitude of the box centre (NULL without geometry "
                    "or off the disk)"),
            _custom("aurora_band", "text", "", "instr.bandpass",
                    "Emission band of the image (NULL when the file does not say)"),
            _custom("aurora_objects", "integer", "", "meta.number",
                    "Bright objects the prefilter found on the night side"),
            _custom("source_image", "text", "", "meta.id;obs.image",
                    "File name of the source image"),
        ),
        created_by="0018_aurora",
        with_views=True,
    ),
}


def get_product(family: str) -> Product:
    try:
        return PRODUCTS[family]
    except KeyError:
        raise ValueError(f"unknown product family {family!r}; known: {sorted(PRODUCTS)}") from None
