"""The declared spec of every pipeline: product family, versions and typed parameters.

One pydantic model per pipeline declares its parameters: type, range, default and
whether it is a MODEL parameter (changes the results, so a value other than the
default derives a model version such as ``1.0.0+threshold-0.7``) or an OPERATIONAL
one (``target`` and ``pixel_scale_m`` of craters: metadata about the input, never a
version). The CLI, the runner, the HTTP service
and DataLink ``#proc`` all read :data:`SPECS` and validate through
:func:`validate_params`, once, before anything is registered or read.

Defaults marked ``card`` come from the model itself (the validation-chosen threshold of
the committed weights): the field's default is ``None`` = "the model's own", and
:func:`defaults` resolves it from the JSON card committed next to the weights
(``ml/weights/<name>-<version>.json``; the same values the checkpoint carries), so the
advertised default is the real one and passing it explicitly derives no version.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

#: ``json_schema_extra`` markers of a field.
MODEL: dict[str, Any] = {"model_param": True}
OPERATIONAL: dict[str, Any] = {"model_param": False}
#: a model parameter whose default is the loaded model's own (resolved from its card).
CARD: dict[str, Any] = {"model_param": True, "card_default": True}


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IcmeParams(_Params):
    threshold: float | None = Field(None, gt=0, lt=1, json_schema_extra=CARD,
                                    description="ICME probability threshold")
    min_duration_h: float | None = Field(None, ge=0, le=240, json_schema_extra=CARD,
                                         description="shortest event kept, hours")


class CrossingsParams(_Params):
    threshold: float = Field(0.0, ge=0, lt=1, json_schema_extra=MODEL,
                             description="crossings with a lower score are dropped")
    switch_penalty: float | None = Field(None, ge=0, le=1000, json_schema_extra=CARD,
                                         description="Viterbi cost of a region change")
    min_region_s: int | None = Field(None, ge=1, le=86400, json_schema_extra=CARD,
                                     description="shortest region kept, seconds")
    smooth_s: int | None = Field(None, ge=1, le=3600, json_schema_extra=CARD,
                                 description="probability smoothing window, seconds")
    max_gap_s: int | None = Field(None, ge=0, le=86400, json_schema_extra=CARD,
                                  description="longest data gap bridged, seconds")
    score_window_s: int | None = Field(None, ge=1, le=3600, json_schema_extra=CARD,
                                       description="window of the edge score, seconds")
    min_score: float | None = Field(None, ge=0, le=1, json_schema_extra=CARD,
                                    description="decoder's lowest edge score")


class UnitsParams(_Params):
    step_deg: float = Field(1.0, gt=0, le=30, json_schema_extra=MODEL,
                            description="grid cell size, degrees")
    connectivity: Literal[4, 8] = Field(4, json_schema_extra=MODEL,
                                        description="grid neighbourhood of a unit region")
    embedding: Literal["umap", "ica"] = Field("umap", json_schema_extra=MODEL,
                                              description="embedding before clustering")
    n_clusters: int | None = Field(None, ge=2, le=50, json_schema_extra=MODEL,
                                   description="number of units; None: largest dendrogram gap")
    min_cells: int = Field(4, ge=1, le=100000, json_schema_extra=MODEL,
                           description="smallest region served as a row, grid cells "
                                       "(smaller specks are not regions)")
    max_abundance_sigma: float = Field(
        20.0, gt=0, le=100, json_schema_extra=MODEL,
        description="largest ensemble spread of a served abundance, percentage points "
                    "(above it the abundance is NULL, its spread kept)")
    detector: Literal["auto", "VIS", "NIR"] = Field("auto", json_schema_extra=MODEL,
                                                    description="MASCS detector used")
    max_incidence: float = Field(80.0, ge=0, le=90, json_schema_extra=MODEL,
                                 description="largest incidence angle kept, degrees")
    max_emission: float = Field(80.0, ge=0, le=90, json_schema_extra=MODEL,
                                description="largest emission angle kept, degrees")


class MineralsParams(_Params):
    pass


class PitsParams(_Params):
    threshold: float | None = Field(None, gt=0, lt=1, json_schema_extra=CARD,
                                    description="detection score threshold")


class CratersParams(_Params):
    threshold: float | None = Field(None, gt=0, lt=1, json_schema_extra=CARD,
                                    description="detection score threshold")
    target: Literal["Moon", "Mars", "Mercury"] | None = Field(
        None, json_schema_extra=OPERATIONAL,
        description="body of an image without georeference (a georeference must agree)")
    pixel_scale_m: float | None = Field(
        None, gt=0, le=1_000_000, json_schema_extra=OPERATIONAL,
        description="ground pixel scale of the image, metres per pixel: picks the model's "
                    "resolution band (a georeference must agree within 10 %)")


class MoundsParams(_Params):
    threshold: float | None = Field(None, gt=0, lt=1, json_schema_extra=CARD,
                                    description="mound probability threshold")
    min_area_px: int | None = Field(None, ge=1, le=1_000_000, json_schema_extra=CARD,
                                    description="smallest mound kept, pixels")


class IceParams(_Params):
    threshold: float | None = Field(None, gt=0, lt=1, json_schema_extra=CARD,
                                    description="probability from which a chunk is icy")


class MeteorsParams(_Params):
    frame_rate_hz: float = Field(50.0, gt=0, le=1000, json_schema_extra=MODEL,
                                 description="video fields per second of the records")
    pair_window_s: float = Field(1.0, ge=0, le=10, json_schema_extra=MODEL,
                                 description="largest start difference of a double-station "
                                             "pair, seconds")


class AuroraParams(_Params):
    threshold: float | None = Field(None, gt=0, lt=1, json_schema_extra=CARD,
                                    description="detector score from which an aurora is kept")
    prefilter: Literal["on", "off"] = Field("on", json_schema_extra=MODEL,
                                            description="on: the detector sees prefilter "
                                                        "candidates only; off: every image")
    prefilter_threshold_r: float = Field(8.0, gt=0, le=1000, json_schema_extra=MODEL,
                                         description="prefilter: zenith brightness of a "
                                                     "bright object, rayleigh")
    prefilter_gap_px: float = Field(30.0, gt=0, le=1000, json_schema_extra=MODEL,
                                    description="prefilter: largest distance of two close "
                                                "objects, pixels")
    prefilter_large_area_px: int = Field(40, ge=0, le=100000, json_schema_extra=MODEL,
                                         description="prefilter: one object this large "
                                                     "passes (0: only the seed's two-object "
                                                     "test)")


def _card_section(name: str, section: str) -> Callable[[str], dict[str, Any]]:
    def read(version: str) -> dict[str, Any]:
        from epnml.ml.checkpoints import committed_card

        value: dict[str, Any] = committed_card(name, version).get(section, {})
        return value
    return read


def _icme_card(version: str) -> dict[str, Any]:
    pp = _card_section("icme", "postprocess")(version)
    return {k: pp[k] for k in ("threshold", "min_duration_h") if k in pp}


def _crossings_card(version: str) -> dict[str, Any]:
    from epnml.ml.crossings.postprocess import PostprocessParams

    pp = _card_section("crossings", "postprocess")(version)
    return PostprocessParams.from_dict(pp).to_dict()


def _keys(name: str, section: str, fallback: dict[str, Any]) -> Callable[[str], dict[str, Any]]:
    """``fallback``: the values the loader uses when the card lacks a key."""
    read = _card_section(name, section)
    return lambda version: {k: read(version).get(k, v) for k, v in fallback.items()}


@dataclass(frozen=True)
class StageSpec:
    name: str
    #: product family (schemas.products) the rows belong to.
    product: str
    params: type[_Params]
    #: the committed model versions, oldest first.
    versions: Callable[[], list[str]]
    #: the card defaults of a model version (fields marked CARD).
    card_defaults: Callable[[str], dict[str, Any]] = lambda version: {}
    #: predict only: results are not a product table of their own.
    predict_only: bool = False


def _versions(pipeline: str) -> Callable[[], list[str]]:
    def versions() -> list[str]:
        from epnml.ingest.registry import MODEL_VERSIONS

        return MODEL_VERSIONS[pipeline]()
    return versions


SPECS: dict[str, StageSpec] = {
    "icme": StageSpec("icme", "events", IcmeParams, _versions("icme"), _icme_card),
    "crossings": StageSpec("crossings", "crossings", CrossingsParams, _versions("crossings"),
                           _crossings_card),
    "units": StageSpec("units", "units", UnitsParams, _versions("units")),
    "minerals": StageSpec("minerals", "units", MineralsParams, _versions("minerals"),
                          predict_only=True),
    "pits": StageSpec("pits", "landforms", PitsParams, _versions("pits"),
                      _keys("pits", "inference", {"threshold": 0.3})),
    "craters": StageSpec("craters", "landforms", CratersParams, _versions("craters"),
                         _keys("craters", "inference", {"threshold": 0.3})),
    "mounds": StageSpec("mounds", "landforms", MoundsParams, _versions("mounds"),
                        _keys("mounds", "inference", {"threshold": 0.5, "min_area_px": 4})),
    "ice": StageSpec("ice", "landforms", IceParams, _versions("ice"),
                     _keys("ice", "inference", {"threshold": 0.5})),
    "meteors": StageSpec("meteors", "meteors", MeteorsParams, _versions("meteors")),
    "aurora": StageSpec("aurora", "aurora", AuroraParams, _versions("aurora"),
                        _keys("aurora", "inference", {"threshold": 0.3})),
}


def get_spec(pipeline: str) -> StageSpec:
    try:
        return SPECS[pipeline]
    except KeyError:
        raise ValueError(f"unknown pipeline {pipeline!r}; known: {', '.join(SPECS)}") from None


def is_model_param(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return bool(isinstance(extra, dict) and extra.get("model_param"))


@functools.lru_cache(maxsize=64)
def _defaults(pipeline: str, version: str | None) -> tuple[tuple[str, Any], ...]:
    spec = get_spec(pipeline)
    out = {name: f.default for name, f in spec.params.model_fields.items()}
    if version is None:
        known = spec.versions()
        version = known[-1] if known else None
    if version is not None:
        card = spec.card_defaults(version.split("+")[0])
        out.update({k: v for k, v in card.items() if k in out})
    return tuple(out.items())


def defaults(pipeline: str, model_version: str | None = None) -> dict[str, Any]:
    """Every parameter's real default for ``model_version`` (None: the newest committed)."""
    return dict(_defaults(pipeline, model_version))


def range_text(field: FieldInfo) -> str:
    """``(0, 1)``, ``[0, 240]``, ``>= 1``, ``one of 4, 8`` (for messages and /pipelines)."""
    lo: Any = None
    hi: Any = None
    lo_open = hi_open = False
    for m in field.metadata:
        if isinstance(m, Gt):
            lo, lo_open = m.gt, True
        elif isinstance(m, Ge):
            lo = m.ge
        elif isinstance(m, Lt):
            hi, hi_open = m.lt, True
        elif isinstance(m, Le):
            hi = m.le
    if lo is not None and hi is not None:
        return f"{'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_num(lo)}"
    choices = _choices(field)
    return f"one of {', '.join(map(str, choices))}" if choices else ""


def _num(value: Any) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _choices(field: FieldInfo) -> list[Any]:
    from typing import get_args, get_origin

    out: list[Any] = []
    for arg in (get_args(field.annotation) or (field.annotation,)):
        if get_origin(arg) is Literal:
            out += list(get_args(arg))
    if get_origin(field.annotation) is Literal:
        out += list(get_args(field.annotation))
    return out


def type_name(field: FieldInfo) -> str:
    if _choices(field):
        return "str" if isinstance(_choices(field)[0], str) else "int"
    text = str(field.annotation)
    return "int" if "int" in text else "float" if "float" in text else "str"


def describe(pipeline: str, model_version: str | None = None) -> list[dict[str, Any]]:
    """The parameters as /pipelines and DataLink #proc advertise them."""
    spec = get_spec(pipeline)
    real = defaults(pipeline, model_version)
    out = []
    for name, field in spec.params.model_fields.items():
        lo: Any = None
        hi: Any = None
        lo_in = hi_in = True
        for m in field.metadata:
            if isinstance(m, Gt | Ge):
                lo, lo_in = (m.gt, False) if isinstance(m, Gt) else (m.ge, True)
            elif isinstance(m, Lt | Le):
                hi, hi_in = (m.lt, False) if isinstance(m, Lt) else (m.le, True)
        out.append({"name": name, "type": type_name(field), "min": lo, "max": hi,
                    "min_inclusive": lo_in, "max_inclusive": hi_in,
                    "range": range_text(field), "choices": _choices(field) or None,
                    "default": real[name], "model_param": is_model_param(field),
                    "description": field.description or ""})
    return out


def parameter_names() -> list[str]:
    """Every parameter name of every pipeline (the HTTP layer's case-insensitive names)."""
    return sorted({name for spec in SPECS.values() for name in spec.params.model_fields})


def _convert(name: str, field: FieldInfo, value: Any) -> Any:
    """CLI/HTTP strings to the field's type (``4`` -> 4 for Literal[4, 8]; ``none``)."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("none", "null", "") and field.default is None:
            return None
        choices = _choices(field)
        if choices and isinstance(choices[0], str):
            for c in choices:  # case-insensitive choices: target=mars
                if text.lower() == str(c).lower():
                    return c
            return text
        if choices:
            try:
                return int(float(text))
            except ValueError:
                return text
        return text
    return value


def validate_params(pipeline: str, raw: dict[str, Any] | None,
                    model_version: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(validated, version_params)``: typed values of the given parameters, and the model
    parameters among them that differ from the real default (they derive a version).

    Raises ValueError with one line: ``icme: threshold must be in (0, 1), got 1.5``.
    """
    spec = get_spec(pipeline)
    fields = spec.params.model_fields
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        known = ", ".join(fields) or "none"
        raise ValueError(f"{pipeline}: unknown parameter {unknown[0]!r} (known: {known})")
    given = {k: _convert(k, fields[k], v) for k, v in raw.items()}
    try:
        model = spec.params(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err.get("loc") else "?"
        field = fields.get(name)
        shown = raw.get(name)
        what = range_text(field) if field is not None else ""
        kind = type_name(field) if field is not None else ""
        if "parsing" in err["type"] or err["type"].endswith("_type") \
                or err["type"] == "int_from_float":
            reason = "must be an integer" if kind == "int" else "must be a number"
            if what and not what.startswith("one of"):
                reason += f" {'in ' if what[0] in '([' else ''}{what}"
            elif what:
                reason = f"must be {what}"
        elif what:
            reason = f"must be {'in ' if what[0] in '([' else ''}{what}"
        else:
            reason = str(err.get("msg", "is invalid"))
        shown_text = shown if isinstance(shown, int | float) or _is_number(shown) else repr(shown)
        raise ValueError(f"{pipeline}: {name} {reason}, got {shown_text}") from None
    validated = {k: getattr(model, k) for k in given}
    real = defaults(pipeline, model_version)
    version_params = {k: v for k, v in validated.items()
                      if is_model_param(fields[k]) and v is not None and not _same(v, real[k])}
    return validated, version_params


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, int | float) and isinstance(default, int | float) \
            and not isinstance(value, bool):
        return float(value) == float(default)
    return bool(value == default)


def version_params(pipeline: str, params: dict[str, Any] | None,
                   model_version: str | None = None) -> dict[str, Any]:
    """The model parameters of already validated ``params`` that derive a version."""
    return validate_params(pipeline, params, model_version)[1]


def resolve(pipeline: str, params: dict[str, Any] | None,
            model_version: str | None = None) -> dict[str, Any]:
    """Every parameter's effective value for a stage: the real defaults of
    ``model_version`` (:func:`defaults`), overridden by ``params``.

    ``params`` are the runner's validated ones; they go through :func:`validate_params`
    again (idempotent on validated values, and cheap), so a stage called directly accepts
    exactly what the spec accepts and refuses the rest with the same one-line message.
    A value left None is a card default the model's card does not carry: the stage uses
    the loaded model's own.
    """
    validated, _ = validate_params(pipeline, params, model_version)
    return {**defaults(pipeline, model_version), **validated}
