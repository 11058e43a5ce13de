"""Pieces of the HTTP service that need no stack: names, parameters, documents, CLI."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from epnml.api.datalink import Link, ProcService, document
from epnml.api.params import ENDPOINT_NAMES, CaseInsensitiveParams, given_params
from epnml.api.routes.inference import _safe_name
from epnml.rerun import InputError, check_id, check_params, scrub


@pytest.mark.parametrize("given, kept", [
    ("wind_20210301.csv", "wind_20210301.csv"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\x\\orbit0900.LBL", "orbit0900.LBL"),
    ("/abs/path/tile.tif", "tile.tif"),
    ("..", "upload3"),
    (".hidden.csv", "upload3.csv"),
    ("name with spaces.cdf", "upload3.cdf"),
    ("x\x00y.csv", "upload3.csv"),
    ("", "upload3"),
])
def test_upload_names_keep_no_client_path(given: str, kept: str) -> None:
    assert _safe_name(given, 3) == kept


@pytest.mark.parametrize("value", ["x' OR 1=1", "a b", "a#b", "", "a" * 201, "../x", "é"])
def test_ids_are_checked(value: str) -> None:
    with pytest.raises(InputError):
        check_id(value)


def test_pipeline_parameters_are_the_specs() -> None:
    pairs = [("ID", "a"), ("THRESHOLD", "0.4"), ("Min_Duration_H", "NaN"), ("runid", "r1"),
             ("RESPONSEFORMAT", "json")]
    # NaN / empty = the VOTable null: the default; the endpoint's own names are not parameters
    assert given_params(pairs, ENDPOINT_NAMES) == {"threshold": "0.4"}
    assert check_params("icme", {"threshold": "0.4"}) == {"threshold": 0.4}
    with pytest.raises(InputError, match="given more than once"):
        given_params([("threshold", "0.4"), ("THRESHOLD", "0.5")], ENDPOINT_NAMES)
    for bad in ("0", "1", "-1", "2", "inf"):
        with pytest.raises(InputError) as info:
            check_params("icme", {"threshold": bad})
        assert str(info.value) == f"icme: threshold must be in (0, 1), got {bad}"
    with pytest.raises(InputError) as info:
        check_params("units", {"threshold": "0.5"})
    assert str(info.value).startswith("units: unknown parameter 'threshold' (known: step_deg,")


def test_errors_show_file_names_not_server_paths() -> None:
    path = Path("/srv/data/inputs/wind.csv")
    assert scrub(f"{path}: no column bt", [path]) == "wind.csv: no column bt"


def _call(scope: dict[str, Any], body: bytes = b"") -> tuple[dict[str, Any], bytes]:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)
        message = await receive()
        seen["body"] = message.get("body", b"")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        pass

    asyncio.run(CaseInsensitiveParams(app)(scope, receive, send))
    return seen, seen["body"]


def test_parameter_names_are_case_insensitive() -> None:
    query = b"id=a&THRESHOLD=0.3&Model_Version=1.0.0&responseformat=json"
    scope, _ = _call({"type": "http", "method": "GET", "path": "/preview", "headers": [],
                      "query_string": query})
    assert scope["query_string"] == \
        b"ID=a&threshold=0.3&model_version=1.0.0&RESPONSEFORMAT=json"
    scope, body = _call({"type": "http", "method": "POST", "path": "/jobs", "query_string": b"",
                         "headers": [(b"content-type", b"application/x-www-form-urlencoded")]},
                        b"id=a&id=b&threshold=0.3&phase=run")
    assert body == b"ID=a&ID=b&THRESHOLD=0.3&PHASE=run"
    assert (b"content-length", str(len(body)).encode()) in scope["headers"]


def test_datalink_document_parses_with_pyvo() -> None:
    pyvo = pytest.importorskip("pyvo")
    from astropy.io.votable import parse

    from epnml.ingest.spec import describe

    doc = document(
        [Link("a<&>", "#progenitor", access_url="http://h/granules/a/source", content_length=3),
         Link("a<&>", "#proc", service_def="proc_svc_0"),
         Link("zz", "#this", error_message="NotFoundFault: unknown ID zz")],
        [ProcService("proc_svc_0", "http://h/preview", ["1.0.0", "2.0.0"], "1.0.0",
                     describe("icme") + describe("units"))])
    links = pyvo.dal.adhoc.DatalinkResults(parse(io.BytesIO(doc)), url="http://h/datalink")
    assert [r.semantics for r in links] == ["#progenitor", "#proc", "#this"]
    assert str(links[0]["ID"]) == "a<&>" and links[0].content_length == 3
    params = {p.name: p for p in links[1].input_params}
    assert params["ID"].ref == "ID" and params["model_version"].value == "1.0.0"
    assert [v for _, v in params["model_version"].values.options] == ["1.0.0", "2.0.0"]
    assert float(params["threshold"].value) == 0.4  # icme 2.2.0's own, not a null
    assert params["threshold"].datatype == "double"
    assert [v for _, v in params["connectivity"].values.options] == ["4", "8"]
    assert params["n_clusters"].datatype == "int"  # None: no value (largest-gap rule)
    assert params["embedding"].value == "umap"
    assert links[2].error_message.startswith("NotFoundFault")


def test_serve_has_help() -> None:
    proc = subprocess.run([str(Path(sys.prefix) / "bin" / "epnml"), "serve", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "--no-dachs" in proc.stdout
