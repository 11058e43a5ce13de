"""``/rows/{ID}/provenance``: the W3C PROV document of a row (DataLink ``#provenance``).

PROV-JSON (default), PROV-N or a VOTable of the ProvTAP tables; the graph and its
identifiers are those of the ``epnml_prov`` TAP schema (:mod:`epnml.provenance`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import Response

from epnml.api.deps import AppSettings, Conn
from epnml.api.errors import ERRORS
from epnml.provenance import FORMATS, row_graph, serialize
from epnml.rerun import check_id

router = APIRouter()


@router.get("/rows/{ID}/provenance", tags=["datalink"], response_class=Response,
            responses={200: {"content": {t: {} for t in FORMATS.values()}},
                       404: ERRORS[404], 422: ERRORS[422], 503: ERRORS[503]})
def row_provenance(conn: Conn, settings: AppSettings,
                   ID: Annotated[str, PathParam(max_length=200)],
                   format: Annotated[Literal["json", "provn", "votable"],
                                     Query()] = "json") -> Response:
    """How the row was made: the run that wrote it, the input files (sha256), the model
    version (weights sha256), the parameters, the software, the training dataset."""
    graph = row_graph(conn, check_id(ID))
    return Response(serialize(graph, format, settings.authority), media_type=FORMATS[format])
