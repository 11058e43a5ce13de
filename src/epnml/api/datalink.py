"""DataLink documents (DataLink 1.1) for the rows' ``datalink_url``.

Written as plain XML: the document is small and fixed, and the service descriptor
(``RESOURCE type="meta" utype="adhoc:service"``) with its ``ref`` to the ID field is
easier to state literally than through astropy's tree. TOPCAT's DataLink window and
``pyvo.dal.adhoc`` read it; the #proc row re-runs the model through ``/preview``.

The descriptor's input parameters are the row's pipeline spec (:mod:`epnml.ingest.spec`,
:func:`~epnml.ingest.spec.describe`): every parameter with its real default for the model
version the descriptor presets (or the row's own value where its run set one, so that
the preset re-runs the row as made), its datatype, and its range as VOTable ``VALUES``
(``MIN``/``MAX`` with ``inclusive``, or ``OPTION`` per choice). Sending a default back
derives no version; an empty value or ``NaN`` means the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

DATALINK_TYPE = "application/x-votable+xml;content=datalink"
_FIELDS = (
    ("ID", "meta.id;meta.main", "char"),
    ("access_url", "meta.ref.url", "char"),
    ("service_def", "meta.ref", "char"),
    ("error_message", "meta.code.error", "char"),
    ("semantics", "meta.code", "char"),
    ("description", "meta.note", "char"),
    ("content_type", "meta.code.mime", "char"),
    ("content_length", "phys.size;meta.file", "long"),
)


@dataclass(frozen=True)
class Link:
    id: str
    semantics: str
    access_url: str = ""
    service_def: str = ""
    error_message: str = ""
    description: str = ""
    content_type: str = ""
    content_length: int | None = None


@dataclass(frozen=True)
class ProcService:
    """The #proc descriptor: re-run the row's model on its granule (``/preview``)."""

    id: str
    access_url: str
    versions: list[str]
    model_version: str
    #: the spec's parameters (:func:`epnml.ingest.spec.describe` for ``model_version``);
    #: ``default`` is the value the descriptor presets (the row's own when its run set it:
    #: then ``model_default`` holds the model's).
    params: list[dict[str, Any]] = field(default_factory=list)


def _td(value: str | int | None) -> str:
    return "<TD/>" if value is None or value == "" else f"<TD>{escape(str(value))}</TD>"


def _field(name: str, ucd: str, datatype: str) -> str:
    if datatype == "long":  # content_length: DataLink 1.1 wants it in bytes
        return (f'<FIELD name="{name}" ID="{name}" datatype="long" ucd="{ucd}" unit="byte">'
                f'<VALUES null="-1"/></FIELD>')
    return f'<FIELD name="{name}" ID="{name}" datatype="char" arraysize="*" ucd="{ucd}"/>'


#: spec type -> VOTable datatype (and arraysize).
_DATATYPES = {"float": 'datatype="double"', "int": 'datatype="int"',
              "str": 'datatype="char" arraysize="*"'}


def _text(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def spec_param(p: dict[str, Any]) -> str:
    """One input PARAM from a :func:`epnml.ingest.spec.describe` entry."""
    kind = p["type"]
    default = p["default"]
    values = ""
    # no default: an empty value, the VOTable null, never NaN (for int 0 declared as
    # VALUES null when the range excludes it: parsers read an empty int as 0, and pyvo
    # sends no 0 back), i.e. the default the stage resolves
    value = "" if default is None else _text(default)
    if default is None and kind == "float":
        # a float PARAM with an empty value parses as None, which pyvo's process() cannot
        # send (AttributeError); NaN is the VOTable null of floats, and /preview reads it
        # as "the default the stage resolves" (e.g. craters 2.1.0's per-band threshold)
        value = "NaN"
    null = ""
    if kind == "int" and not p.get("choices") and default is None:
        low = p.get("min")
        sentinel = 0 if low is not None and low > 0 else -1
        null = f' null="{sentinel}"'
        value = "" if sentinel == 0 else str(sentinel)
    if p.get("choices"):
        values = "".join(f"<OPTION value={quoteattr(str(c))}/>" for c in p["choices"])
    else:
        for bound, key in (("MIN", "min"), ("MAX", "max")):
            if p.get(key) is not None:
                inclusive = "yes" if p.get(f"{key}_inclusive", True) else "no"
                values += (f"<{bound} value={quoteattr(_text(p[key]))} "
                           f'inclusive="{inclusive}"/>')
    role = ("model parameter: another value derives a model version" if p["model_param"]
            else "operational: changes no result")
    row = ""
    if "model_default" in p:  # the row's own value (its run set it)
        row = f"preset: this row's value; the model's default is {p['model_default']}"
    what = "; ".join(x for x in (p.get("description", ""), p.get("range", ""), role, row)
                     if x)
    return (f'<PARAM name={quoteattr(p["name"])} {_DATATYPES.get(kind, _DATATYPES["str"])} '
            f"value={quoteattr(value)}><DESCRIPTION>{escape(what)}; empty or NaN = the "
            f"default</DESCRIPTION>{f'<VALUES{null}>{values}</VALUES>' if values or null else ''}"
            "</PARAM>")


def _service(svc: ProcService) -> str:
    options = "".join(f"<OPTION value={quoteattr(v)}/>" for v in svc.versions)
    params = "".join(spec_param(p) for p in svc.params)
    return (
        f'<RESOURCE type="meta" utype="adhoc:service" ID={quoteattr(svc.id)} name="rerun">'
        "<DESCRIPTION>Re-run the model on this row's source granule and return the rows "
        "(nothing is written; POST /commit with a token writes them as a new version)"
        "</DESCRIPTION>"
        f'<PARAM name="accessURL" datatype="char" arraysize="*" ucd="meta.ref.url" '
        f"value={quoteattr(svc.access_url)}/>"
        '<GROUP name="inputParams">'
        '<PARAM name="ID" datatype="char" arraysize="*" ucd="meta.id;meta.main" ref="ID" '
        'value=""><DESCRIPTION>granule_uid of the row</DESCRIPTION></PARAM>'
        f'<PARAM name="model_version" datatype="char" arraysize="*" ucd="meta.version" '
        f"value={quoteattr(svc.model_version)}><DESCRIPTION>Model version</DESCRIPTION>"
        f"<VALUES>{options}</VALUES></PARAM>"
        f"{params}"
        '<PARAM name="RESPONSEFORMAT" datatype="char" arraysize="*" ucd="meta.code.mime" '
        'value="votable"><VALUES><OPTION value="votable"/><OPTION value="json"/></VALUES>'
        "</PARAM></GROUP></RESOURCE>"
    )


def document(links: list[Link], services: list[ProcService]) -> bytes:
    """The DataLink VOTable: the links table plus one service descriptor per row's #proc."""
    rows = "".join(
        "<TR>" + _td(link.id) + _td(link.access_url) + _td(link.service_def)
        + _td(link.error_message) + _td(link.semantics) + _td(link.description)
        + _td(link.content_type)
        + _td(-1 if link.content_length is None else link.content_length) + "</TR>"
        for link in links
    )
    fields = "".join(_field(*f) for f in _FIELDS)
    svc = "".join(_service(s) for s in services)
    text = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<RESOURCE type="results"><INFO name="QUERY_STATUS" value="OK"/><INFO name="standardID" '
        'value="ivo://ivoa.net/std/DataLink#links-1.1"/>'
        f"<TABLE>{fields}<DATA><TABLEDATA>{rows}</TABLEDATA></DATA></TABLE></RESOURCE>"
        f"{svc}</VOTABLE>"
    )
    return text.encode()


def url(base: str, path: str, **query: str) -> str:
    """An absolute URL of this service (path segments quoted by the caller)."""
    qs = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    return f"{base.rstrip('/')}{path}" + (f"?{qs}" if qs else "")
