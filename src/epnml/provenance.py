"""Provenance of one served row: the W3C PROV graph (IVOA ProvDM) read from the store.

The row (entity) wasGeneratedBy its ingest run (activity), which used the input granule
(its files, by content sha256), the model version (weights sha256), the run's parameters
and any catalogue it cross-matched, and wasAssociatedWith the software agent (epnml
version); the model version wasDerivedFrom its training dataset version; a superseded row
wasInvalidatedBy the run that superseded it, when the store still records that run.

The graph is read from the ``epnml.prov_*`` views (sql/0016_provenance.sql), which DaCHS
serves as the ProvTAP tables ``epnml_prov.*`` (rd/provenance/q.rd): the document of a row
and the ProvTAP answer are the same graph, with the same identifiers. Serialized with the
``prov`` package as PROV-JSON and PROV-N, and as a VOTable holding one table per ProvTAP
table. Documents carry file names only, never server paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import psycopg
from prov.constants import PROV
from prov.model import Namespace, ProvDocument, QualifiedName
from psycopg.rows import dict_row

from epnml.rerun import find_row

#: serializations of the DataLink ``#provenance`` link: format name -> media type.
FORMATS = {"json": "application/json", "provn": "text/provenance-notation",
           "votable": "application/x-votable+xml"}
#: the ProvTAP tables (views epnml.prov_<name>), with their columns in order.
TABLES: dict[str, tuple[str, ...]] = {
    "entity": ("id", "name", "type", "location", "generated_at_time", "invalidated_at_time",
               "content_sha256", "comment"),
    "activity": ("id", "name", "type", "start_time", "end_time", "status", "comment"),
    "agent": ("id", "name", "type", "comment"),
    "used": ("activity_id", "entity_id", "role"),
    "wasgeneratedby": ("entity_id", "activity_id", "role", "generated_at"),
    "wasassociatedwith": ("activity_id", "agent_id", "role"),
    "wasderivedfrom": ("entity_id", "progenitor_id", "role"),
    "wasinvalidatedby": ("entity_id", "activity_id", "invalidated_at"),
}
PREFIX = "epnml"


def namespace_uri(authority: str) -> str:
    """The URI of the ``epnml`` prefix of every identifier."""
    return f"ivo://{authority}/prov#"


@dataclass
class RowGraph:
    """The provenance records of one row: the rows of each ProvTAP table that concern it."""

    granule_uid: str
    records: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {name: [] for name in TABLES})

    def ids(self, table: str, column: str) -> list[str]:
        return sorted({str(r[column]) for r in self.records[table]})


def _select(conn: psycopg.Connection, table: str, column: str, values: list[str]
            ) -> list[dict[str, Any]]:
    if not values:
        return []
    cols = ", ".join(TABLES[table])
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {cols} FROM epnml.prov_{table} WHERE {column} = ANY(%s)"
            f" ORDER BY {cols.split(', ')[0]}, {cols.split(', ')[1]}", (values,)).fetchall()


def row_graph(conn: psycopg.Connection, uid: str) -> RowGraph:
    """The graph of the row ``uid`` (current or superseded): NotFound for an unknown ID,
    InputError for a malformed one (:func:`epnml.rerun.find_row`)."""
    find_row(conn, uid)
    graph = RowGraph(uid)
    rec = graph.records
    row_id = f"{PREFIX}:row/{uid}"
    rec["wasgeneratedby"] = _select(conn, "wasgeneratedby", "entity_id", [row_id])
    rec["wasinvalidatedby"] = _select(conn, "wasinvalidatedby", "entity_id", [row_id])
    runs = graph.ids("wasgeneratedby", "activity_id")
    own = _select(conn, "wasderivedfrom", "entity_id", [row_id])
    granules = {str(d["progenitor_id"]) for d in own}
    # the run's other granules made other rows: only this row's granule is its provenance
    rec["used"] = [u for u in _select(conn, "used", "activity_id", runs)
                   if u["role"] != "input granule" or u["entity_id"] in granules]
    rec["wasassociatedwith"] = _select(conn, "wasassociatedwith", "activity_id", runs)
    models = sorted({str(u["entity_id"]) for u in rec["used"] if u["role"] == "model"})
    rec["wasderivedfrom"] = own + _select(conn, "wasderivedfrom", "entity_id", models)
    entities = sorted({row_id, *graph.ids("used", "entity_id"),
                       *graph.ids("wasderivedfrom", "progenitor_id")})
    rec["entity"] = _select(conn, "entity", "id", entities)
    _no_training_set(rec)
    rec["activity"] = _select(conn, "activity", "id", sorted(
        {*runs, *graph.ids("wasinvalidatedby", "activity_id")}))
    rec["agent"] = _select(conn, "agent", "id", graph.ids("wasassociatedwith", "agent_id"))
    return graph


def _no_training_set(rec: dict[str, list[dict[str, Any]]]) -> None:
    """A model version without a dataset that trains nothing says so in its comment
    (``epnml.datasets.manifest.NO_TRAINING_SET``), rather than leaving the link out
    silently; the ProvTAP entity keeps the store's comment."""
    from epnml.datasets.manifest import NO_TRAINING_SET

    derived = {str(d["entity_id"]) for d in rec["wasderivedfrom"]}
    for e in rec["entity"]:
        if e["type"] != "epnml:ModelVersion" or e["id"] in derived:
            continue
        name = str(e["id"]).removeprefix(f"{PREFIX}:model/").split("/")[0]
        if name in NO_TRAINING_SET:
            e["comment"] = f"{e['comment']}; {NO_TRAINING_SET[name]}"


def _qname(ns: Namespace, value: str) -> QualifiedName:
    prefix, _, local = value.partition(":")
    return PROV[local] if prefix == "prov" else ns[local]


def _attrs(ns: Namespace, record: dict[str, Any], skip: tuple[str, ...]) -> dict[Any, Any]:
    """Record columns as PROV attributes: type, label and location from PROV, the rest
    in the epnml namespace; empty values left out."""
    out: dict[Any, Any] = {}
    for key, value in record.items():
        if key in skip or value is None or value == "":
            continue
        if key == "type":
            out[PROV["type"]] = _qname(ns, str(value))
        elif key == "name":
            out[PROV["label"]] = str(value)
        elif key == "location":
            out[PROV["location"]] = str(value)
        else:
            out[ns[key]] = value.isoformat() if isinstance(value, datetime) else value
    return out


def to_document(graph: RowGraph, authority: str) -> ProvDocument:
    """The graph as a ``prov`` document (namespace ``epnml`` = :func:`namespace_uri`)."""
    doc = ProvDocument()
    ns = doc.add_namespace(PREFIX, namespace_uri(authority))
    rec = graph.records
    for e in rec["entity"]:
        doc.entity(_qname(ns, e["id"]), _attrs(ns, e, ("id",)))
    for a in rec["activity"]:
        doc.activity(_qname(ns, a["id"]), a["start_time"], a["end_time"],
                     _attrs(ns, a, ("id", "start_time", "end_time")))
    for g in rec["agent"]:
        doc.agent(_qname(ns, g["id"]), _attrs(ns, g, ("id",)))
    for u in rec["used"]:
        doc.used(_qname(ns, u["activity_id"]), _qname(ns, u["entity_id"]),
                 other_attributes={PROV["role"]: u["role"]})
    for w in rec["wasgeneratedby"]:
        doc.wasGeneratedBy(_qname(ns, w["entity_id"]), _qname(ns, w["activity_id"]),
                           w["generated_at"], other_attributes={PROV["role"]: w["role"]})
    for w in rec["wasassociatedwith"]:
        doc.wasAssociatedWith(_qname(ns, w["activity_id"]), _qname(ns, w["agent_id"]),
                              other_attributes={PROV["role"]: w["role"]})
    for d in rec["wasderivedfrom"]:
        doc.wasDerivedFrom(_qname(ns, d["entity_id"]), _qname(ns, d["progenitor_id"]),
                           other_attributes={PROV["role"]: d["role"]})
    invalidated = {str(i["entity_id"]) for i in rec["wasinvalidatedby"]}
    for i in rec["wasinvalidatedby"]:
        doc.wasInvalidatedBy(_qname(ns, i["entity_id"]), _qname(ns, i["activity_id"]),
                             i["invalidated_at"])
    for e in rec["entity"]:  # superseded, but the superseding run is no longer recorded
        if e["invalidated_at_time"] is not None and e["id"] not in invalidated:
            doc.wasInvalidatedBy(_qname(ns, e["id"]), None, e["invalidated_at_time"])
    return doc


def _cell(value: Any) -> str:
    if value is None:
        return "<TD/>"
    return f"<TD>{escape(value.isoformat() if isinstance(value, datetime) else str(value))}</TD>"


def to_votable(graph: RowGraph, authority: str) -> bytes:
    """The graph as a VOTable: one TABLE per ProvTAP table (its name and columns, ISO
    times as text), the ``epnml`` namespace URI as a PARAM."""
    tables = []
    for name, cols in TABLES.items():
        fields = "".join(f'<FIELD name="{c}" datatype="char" arraysize="*"/>' for c in cols)
        rows = "".join("<TR>" + "".join(_cell(r[c]) for c in cols) + "</TR>"
                       for r in graph.records[name])
        tables.append(f'<TABLE name="{name}" utype="provtap:{name}">{fields}'
                      f"<DATA><TABLEDATA>{rows}</TABLEDATA></DATA></TABLE>")
    text = ('<?xml version="1.0" encoding="utf-8"?>'
            '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
            '<RESOURCE type="results" name="provenance">'
            f"<DESCRIPTION>IVOA ProvDM provenance of the epnml row "
            f"{escape(graph.granule_uid)} (the ProvTAP tables of epnml_prov)</DESCRIPTION>"
            f'<PARAM name="namespace_{PREFIX}" datatype="char" arraysize="*" '
            f"value={quoteattr(namespace_uri(authority))}/>"
            f"{''.join(tables)}</RESOURCE></VOTABLE>")
    return text.encode()


def serialize(graph: RowGraph, fmt: str, authority: str) -> bytes:
    """The graph in one of :data:`FORMATS` (ValueError for another name)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown provenance format {fmt!r}; one of: {', '.join(FORMATS)}")
    if fmt == "votable":
        return to_votable(graph, authority)
    doc = to_document(graph, authority)
    if fmt == "provn":
        return (doc.get_provn() + "\n").encode()
    return str(doc.serialize(format="json", indent=1)).encode()
