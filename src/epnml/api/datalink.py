"""DataLink documents (DataLink 1.1) for the rows' ``datalink_url``.

Written as plain XML: the document is small and fixed, and the service descriptor
(``RESOURCE type="meta" utype="adhoc:service"``) with its ``ref`` to the ID field is
easier to state literally than through astropy's tree. TOPCAT's DataLink window and
``pyvo.dal.adhoc`` read it; the #proc row re-runs the model through ``/preview``.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    threshold: float | None
    with_threshold: bool


def _td(value: str | int | None) -> str:
    return "<TD/>" if value is None or value == "" else f"<TD>{escape(str(value))}</TD>"


def _field(name: str, ucd: str, datatype: str) -> str:
    if datatype == "long":
        return (f'<FIELD name="{name}" ID="{name}" datatype="long" ucd="{ucd}">'
                f'<VALUES null="-1"/></FIELD>')
    return f'<FIELD name="{name}" ID="{name}" datatype="char" arraysize="*" ucd="{ucd}"/>'


def _service(svc: ProcService) -> str:
    options = "".join(f"<OPTION value={quoteattr(v)}/>" for v in svc.versions)
    threshold = ""
    if svc.with_threshold:
        # NaN is the VOTable null: the service then uses the model's default threshold.
        value = "NaN" if svc.threshold is None else repr(svc.threshold)
        threshold = (
            f'<PARAM name="threshold" datatype="double" ucd="stat.value" value="{value}">'
            "<DESCRIPTION>Detection threshold in (0, 1); NaN or absent = the model's default"
            "</DESCRIPTION><VALUES><MIN value=\"0\" inclusive=\"no\"/>"
            "<MAX value=\"1\" inclusive=\"no\"/></VALUES></PARAM>")
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
        f"{threshold}"
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
        '<RESOURCE type="results"><INFO name="standardID" '
        'value="ivo://ivoa.net/std/DataLink#links-1.1"/>'
        f"<TABLE>{fields}<DATA><TABLEDATA>{rows}</TABLEDATA></DATA></TABLE></RESOURCE>"
        f"{svc}</VOTABLE>"
    )
    return text.encode()


def url(base: str, path: str, **query: str) -> str:
    """An absolute URL of this service (path segments quoted by the caller)."""
    qs = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    return f"{base.rstrip('/')}{path}" + (f"?{qs}" if qs else "")
