"""Product rows -> VOTable or JSON; DALI error documents.

A ``#proc`` preview and a UWS job's rows are the rows of the TAP service they mirror, so
their VOTable has the FIELDs ``SELECT * FROM <schema>.epn_core`` has: every served column
of the family (all-null ones too), in the TAP order, with the datatype, arraysize, xtype,
UCD and unit DaCHS declares (:meth:`epnml.schemas.columns.Column.votable`,
:meth:`epnml.schemas.products.Product.tap_columns`), and time_min/time_max referring to a
TIMESYS. ``s_region`` is an STC-S string (xtype ``adql:REGION``) as TAP serves it; here its
vertices keep the stage's continuous longitudes (TAP's come folded into [0, 360) by
pgSphere: docs/service-api.md). Written as plain XML (TABLEDATA) for full control of the
FIELD attributes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from epnml.schemas.columns import TIMESYS, Column, VOField
from epnml.schemas.products import get_product

VOTABLE_TYPE = "application/x-votable+xml"
_HEAD = ('<?xml version="1.0" encoding="utf-8"?>\n'
         '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3" '
         'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">')
_TIMESYS_ID = "ts"


def json_value(value: Any) -> Any:
    """A JSON-safe value: numpy scalars unwrapped, NaN/inf -> null, dates -> ISO strings."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def json_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: json_value(v) for k, v in row.items()} for row in rows]


def stcs_polygon(spoly: str) -> str:
    """A pgSphere polygon literal ``{(lon d,lat d),...}`` as the STC-S string TAP serves
    (``Polygon UNKNOWNFrame lon lat ...``, degrees); the vertices as given (a stage's
    continuous longitudes stay continuous)."""
    text = spoly.strip()
    if not (text.startswith("{(") and text.endswith(")}")):
        raise ValueError(f"not a pgSphere polygon: {text[:40]!r}")
    numbers: list[str] = []
    for vertex in text[2:-2].split("),("):
        parts = [p.strip().rstrip("d") for p in vertex.split(",")]
        if len(parts) != 2:
            raise ValueError(f"not a pgSphere polygon vertex: {vertex[:40]!r}")
        numbers += [repr(float(p)) for p in parts]
    return "Polygon UNKNOWNFrame " + " ".join(numbers)


def _timestamp(value: Any) -> str:
    """ISO 8601 without zone, UTC (DaCHS' timestamp text)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat()
    return str(value)


def _cell(value: Any, col: Column, vo: VOField) -> str:
    """One TD's text ('' = null; integers write their VALUES null)."""
    value = json_value(value) if not isinstance(value, datetime) else value
    if value is None or value == "":
        return vo.null or ""
    if vo.datatype in ("double", "float"):
        return repr(float(value))
    if vo.datatype in ("int", "long", "short"):
        return str(int(value))
    if vo.datatype == "boolean":
        return "T" if value else "F"
    if vo.xtype == "timestamp":
        return _timestamp(value)
    if vo.xtype == "adql:REGION" and col.sql_type == "spoly":
        return stcs_polygon(str(value))
    return str(value)


def _field(col: Column) -> str:
    vo = col.votable
    attrs = f'name={quoteattr(col.name)} ID={quoteattr(col.name)} datatype="{vo.datatype}"'
    if vo.arraysize:
        attrs += f' arraysize="{vo.arraysize}"'
    if vo.xtype:
        attrs += f' xtype="{vo.xtype}"'
    if col.ucd:
        attrs += f" ucd={quoteattr(col.ucd)}"
    if col.unit:
        attrs += f" unit={quoteattr(col.unit)}"
    if vo.timesys:
        attrs += f' ref="{_TIMESYS_ID}"'
    inner = f"<DESCRIPTION>{escape(col.description)}</DESCRIPTION>" if col.description else ""
    if vo.null is not None:
        inner += f'<VALUES null="{vo.null}"/>'
    return f"<FIELD {attrs}>{inner}</FIELD>"


def _infos(status: str, info: dict[str, str] | None, text: str = "") -> str:
    out = f'<INFO name="QUERY_STATUS" value="{status}">{escape(text)}</INFO>'
    return out + "".join(f"<INFO name={quoteattr(k)} value={quoteattr(v)}/>"
                         for k, v in (info or {}).items())


def family_columns(family: str) -> list[Column]:
    """The FIELDs of a family's rows: what ``SELECT *`` on its epn_core gives."""
    return get_product(family).tap_columns()


def rows_votable(rows: Sequence[dict[str, Any]], family: str | None,
                 info: dict[str, str] | None = None) -> bytes:
    """A VOTable 1.4 document of the rows (TABLEDATA), DALI ``QUERY_STATUS`` OK.

    With a family, the FIELDs are the family's TAP fields (columns a row lacks are null;
    keys that are no column of the family are not served). Without one (no row found a
    family), every key is a char field."""
    if family is None:
        names = list(dict.fromkeys(k for row in rows for k in row))
        columns = [Column(n, "text") for n in names]
    else:
        columns = family_columns(family)
    vo = [c.votable for c in columns]
    timesys = ""
    if any(v.timesys for v in vo):
        attrs = " ".join(f'{k}="{v}"' for k, v in TIMESYS.items())
        timesys = f'<TIMESYS ID="{_TIMESYS_ID}" {attrs}/>'
    body = "".join(
        "<TR>" + "".join(
            (f"<TD>{escape(text)}</TD>" if (text := _cell(row.get(c.name), c, v)) else "<TD/>")
            for c, v in zip(columns, vo, strict=True)) + "</TR>\n"
        for row in rows)
    text = (f"{_HEAD}{timesys}<RESOURCE type=\"results\">{_infos('OK', info)}<TABLE>"
            + "".join(_field(c) for c in columns)
            + f"<DATA><TABLEDATA>\n{body}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>\n")
    return text.encode()


def error_votable(message: str, info: dict[str, str] | None = None) -> bytes:
    """A DALI error document: ``INFO name="QUERY_STATUS" value="ERROR"`` with the message."""
    return (f'{_HEAD}<RESOURCE type="results">{_infos("ERROR", info, message)}'
            "</RESOURCE></VOTABLE>\n").encode()
