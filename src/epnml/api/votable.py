"""Product rows -> VOTable or JSON, typed from the product's column definitions.

Rows come straight from a stage (datetimes, numpy scalars, None); the product schema
gives each column its type, unit and UCD so a preview looks like the TAP rows it mirrors.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
from astropy.io.votable import from_table
from astropy.table import MaskedColumn, Table
from astropy.utils.exceptions import AstropyWarning

from epnml.schemas.products import get_product

VOTABLE_TYPE = "application/x-votable+xml"
_FLOAT = {"double precision", "real", "float8", "float4"}
_INT = {"integer", "smallint", "bigint", "int", "int4", "int8"}


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


def _column_order(rows: Sequence[dict[str, Any]], family: str | None) -> list[tuple[str, str]]:
    """(name, sql_type) of the columns to serve: the product's served columns the rows carry."""
    present: dict[str, None] = {}
    for row in rows:
        present.update(dict.fromkeys(row))
    if family is None:
        return [(name, "text") for name in present]
    columns = get_product(family).served_columns()
    if not rows:
        return [(c.name, c.sql_type) for c in columns]
    known = [(c.name, c.sql_type) for c in columns if c.name in present]
    stored = {c.name for c in get_product(family).columns()}
    return known + [(n, "text") for n in present if n not in stored]


def rows_table(rows: Sequence[dict[str, Any]], family: str | None) -> Table:
    table = Table()
    product = get_product(family) if family else None
    for name, sql_type in _column_order(rows, family):
        values = [json_value(row.get(name)) for row in rows]
        mask = [v is None for v in values]
        kind = sql_type.lower()
        data: Any
        if kind in _FLOAT:
            data = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
        elif kind in _INT:
            data = np.array([0 if v is None else int(v) for v in values], dtype=np.int64)
        elif kind == "boolean":
            data = np.array([bool(v) for v in values], dtype=bool)
        else:
            texts = ["" if v is None else str(v) for v in values]
            # ASCII text as VOTable char (bytes), anything else as unicodeChar
            data = (np.array([t.encode() for t in texts], dtype=bytes)
                    if all(t.isascii() for t in texts) else np.array(texts, dtype=str))
            if not texts:
                data = np.array([], dtype="S1")
        col = MaskedColumn(data, name=name, mask=mask)
        if product is not None:
            try:
                meta = product.column(name)
            except KeyError:
                meta = None
            if meta is not None:
                col.description = meta.description or None
                if meta.unit:
                    col.unit = meta.unit
                if meta.ucd:
                    col.meta["ucd"] = meta.ucd
        table.add_column(col)
    return table


def rows_votable(rows: Sequence[dict[str, Any]], family: str | None,
                 info: dict[str, str] | None = None) -> bytes:
    """A VOTable 1.4 document of the rows (TABLEDATA, so it stays human-readable)."""
    table = rows_table(rows, family)
    with warnings.catch_warnings():  # e.g. '%' is not a VOUnit; the unit text is kept
        warnings.simplefilter("ignore", AstropyWarning)
        votable = from_table(table)
    for col_field in votable.get_first_table().fields:
        ucd = table[col_field.name].meta.get("ucd") if col_field.name in table.colnames else None
        if ucd:
            col_field.ucd = ucd
    resource = votable.resources[0]
    from astropy.io.votable.tree import Info

    for name, value in (info or {}).items():
        resource.infos.append(Info(name=name, value=value))
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        votable.to_xml(out, tabledata_format="tabledata")
    return out.getvalue()
