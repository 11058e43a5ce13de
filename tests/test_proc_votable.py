"""#proc previews and UWS job rows as the TAP rows (issue #18): the same VOTable FIELDs as
``SELECT * FROM <schema>.epn_core`` (names, order, datatypes, arraysize, xtypes, UCDs,
units, TIMESYS), DALI error documents in the format asked for, DataLink documents and
#proc results that the real ``stilts datalinklint`` / ``stilts votlint`` pass, and the
longitudes of a footprint across 0 deg E as TAP and #proc serve them.

The stack tests run on the test instance (``ingested_all``) with ``epnml serve`` on the
test API port; stilts is the installed one (``stilts``), its output parsed: both tools
exit 0 with errors.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from starlette.requests import Request

from epnml.api.datalink import Link, ProcService, document, spec_param
from epnml.api.errors import error_format
from epnml.api.votable import error_votable, rows_votable, stcs_polygon
from epnml.ingest.spec import describe
from epnml.schemas.products import PRODUCTS, get_product
from tests.conftest import Ingest, Stack

VO = "{http://www.ivoa.net/xml/VOTable/v1.3}"
#: the four families ``ingested_all`` fills (meteors rows are test_meteors_tap's own).
FAMILIES = ("events", "crossings", "landforms", "units")
#: stilts 3.4.7 (Debian 12) checks semantics against a term list built into it, which
#: predates the core vocabulary's ``documentation`` (added by VEP-002, 2019) and has no
#: ``provenance`` (the issue's name for the PROV link): its complaints about those two links
#: (model card, PROV document), one each, are the only messages a DataLink document may cause.
KNOWN_OLD_VOCABULARY = re.compile(r"E-SMCO-\d Unknown predicate '(documentation|provenance)' "
                                  r"from core DataLink vocabulary at row \d+")


# --- helpers -----------------------------------------------------------------------------


def fields(xml: bytes) -> list[tuple[str | None, ...]]:
    """Each FIELD's name, datatype, arraysize, xtype, ucd, unit and its TIMESYS (the
    attributes of the TIMESYS its ``ref`` names, or None)."""
    root = ET.fromstring(xml)
    timesys = {t.get("ID"): f"{t.get('timeorigin')}/{t.get('timescale')}/"
                            f"{t.get('refposition')}" for t in root.iter(f"{VO}TIMESYS")}
    return [(f.get("name"), f.get("datatype"), f.get("arraysize"), f.get("xtype"),
             f.get("ucd"), f.get("unit"), timesys.get(f.get("ref")))
            for f in root.iter(f"{VO}FIELD")]


def query_status(xml: bytes) -> tuple[str | None, str]:
    root = ET.fromstring(xml)
    infos = [i for i in root.iter(f"{VO}INFO") if i.get("name") == "QUERY_STATUS"]
    assert len(infos) == 1, xml[:500]
    return infos[0].get("value"), (infos[0].text or "").strip()


def stilts(*args: str) -> str:
    if shutil.which("stilts") is None:
        pytest.skip("stilts is not installed")
    proc = subprocess.run(["stilts", *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    return proc.stdout + proc.stderr


def votlint(path: Path) -> list[str]:
    """votlint's messages (it prints nothing for a clean document)."""
    return [line for line in stilts("votlint", f"votable={path}").splitlines() if line]


def datalinklint(location: str) -> list[str]:
    """datalinklint's errors, warnings and failures (not its I- lines)."""
    out = stilts("datalinklint", f"votable={location}")
    assert "Totals:" in out, out
    return [line for line in out.splitlines() if re.match(r"^[EWF]-[A-Z]{4}-\d+ ", line)]


def polygon_lons(stcs: str) -> list[float]:
    words = stcs.split()
    assert words[:2] == ["Polygon", "UNKNOWNFrame"], stcs
    return [float(v) for v in words[2::2]]


# --- without the stack -------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(PRODUCTS))
def test_fields_come_from_the_column_declaration(family: str) -> None:
    """No row at all still gives every served column, in TAP order, typed as declared."""
    product = get_product(family)
    got = fields(rows_votable([], family))
    columns = product.tap_columns()
    assert [f[0] for f in got] == [c.name for c in columns]
    assert len(got) == len(product.served_columns())
    assert [f[0] for f in got if (f[4] or "").startswith(";")] == []  # no UCD without a word
    by_name = {f[0]: f for f in got}
    assert by_name["granule_uid"][1:4] == ("char", "*", None)
    assert by_name["s_region"][1:5] == ("char", "*", "adql:REGION", "pos.outline;obs.field")
    assert by_name["creation_date"][1:4] == ("char", "*", "timestamp")
    assert by_name["processing_level"][1:3] == ("int", None)
    assert by_name["time_min"][1:] == ("double", None, None, "time.start;obs", "d",
                                       "0/UTC/TOPOCENTER")
    assert by_name["time_max"][6] == "0/UTC/TOPOCENTER"
    assert [f[0] for f in got if f[6]] == ["time_min", "time_max"]
    # the custom columns come after the mixin's (datalink_url is an optional column)
    origins = [c.origin for c in columns]
    assert origins == sorted(origins, key=("core", "optional", "custom").index)


def test_rows_carry_nulls_and_continuous_polygons() -> None:
    row = {"granule_uid": "x_v1", "processing_level": 5, "c1min": 359.5, "c1max": 0.5,
           "s_region": "{(359.5d,0d),(360.5d,0d),(360.5d,1d),(359.5d,1d)}",
           "unit_id": None, "not_a_column": "dropped"}
    xml = rows_votable([row], "units")
    root = ET.fromstring(xml)
    (tr,) = list(root.iter(f"{VO}TR"))
    cells = {name: td.text for name, td in zip([f[0] for f in fields(xml)], tr, strict=True)}
    assert len(cells) == len(get_product("units").served_columns())
    assert cells["s_region"] == ("Polygon UNKNOWNFrame 359.5 0.0 360.5 0.0 360.5 1.0 "
                                 "359.5 1.0")
    assert cells["unit_id"] == "-1"  # the RD's nullLiteral
    assert cells["time_min"] is None and cells["access_url"] is None
    assert "not_a_column" not in xml.decode()
    assert query_status(xml) == ("OK", "")


def test_stcs_polygon_refuses_what_is_no_polygon() -> None:
    assert (stcs_polygon("{(1d,2d),(3d,4d),(5d,6d)}")
            == "Polygon UNKNOWNFrame 1.0 2.0 3.0 4.0 5.0 6.0")
    with pytest.raises(ValueError, match="not a pgSphere polygon: 'POLYGON 1 2'"):
        stcs_polygon("POLYGON 1 2")


def _request(path: str, query: str = "", accept: str | None = None) -> Request:
    headers = [(b"accept", accept.encode())] if accept is not None else []
    return Request({"type": "http", "method": "GET", "path": path, "query_string":
                    query.encode(), "headers": headers})


@pytest.mark.parametrize(("path", "query", "accept", "expected"), [
    ("/preview", "", None, "votable"),  # the endpoint's own format
    ("/preview", "", "*/*", "votable"),
    ("/preview", "RESPONSEFORMAT=json", None, "json"),
    ("/preview", "RESPONSEFORMAT=votable", "application/json", "votable"),
    ("/preview", "", "application/json", "json"),
    ("/preview", "", "application/json, application/x-votable+xml;q=0.5", "votable"),
    ("/preview/icme", "", "text/xml", "votable"),
    ("/jobs/abcdefgh", "", None, "votable"),
    ("/jobs", "", "application/json", "json"),
    ("/datalink", "", None, "json"),  # not one of the DALI endpoints that answer so yet
    ("/models", "RESPONSEFORMAT=votable", None, "json"),
])
def test_error_format_follows_what_was_asked(path: str, query: str, accept: str | None,
                                             expected: str) -> None:
    assert error_format(_request(path, query, accept)) == expected


def test_error_document_is_dali_and_votlint_clean(tmp_path: Path) -> None:
    xml = error_votable("unknown ID x & y: no current or superseded row", {"error_id": "e1"})
    assert query_status(xml) == ("ERROR", "unknown ID x & y: no current or superseded row")
    path = tmp_path / "error.xml"
    path.write_bytes(xml)
    assert votlint(path) == []


def test_no_parameter_default_is_nan() -> None:
    """A parameter with a default advertises it, never NaN; one without has the VOTable
    null: empty for ints and text, NaN for floats (an empty double PARAM parses as None,
    which pyvo's process() cannot send; /preview reads NaN as the stage's default)."""
    described = {p["name"]: p for p in describe("units")}
    n_clusters = spec_param(described["n_clusters"])
    assert 'value=""' in n_clusters and "NaN" not in n_clusters.split("<DESCRIPTION>")[0]
    float_without_default = {**described["step_deg"], "default": None}
    assert re.search(r'<PARAM name="step_deg" datatype="double" value="NaN">',
                     spec_param(float_without_default))
    for pipeline in ("icme", "crossings", "units", "craters", "pits", "mounds", "ice"):
        for p in describe(pipeline):
            if p["default"] is not None:
                assert 'value="NaN"' not in spec_param(p), (pipeline, p["name"])


def test_pyvo_can_send_every_parameter_without_a_default() -> None:
    import io

    import numpy as np
    from astropy.io.votable import parse

    params = [p for p in describe("craters") if p["default"] is None]
    assert {p["name"] for p in params} >= {"pixel_scale_m"}
    doc = ('<?xml version="1.0"?><VOTABLE version="1.3" '
           'xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="meta" '
           'utype="adhoc:service"><GROUP name="inputParams">'
           + "".join(spec_param(p) for p in params) + "</GROUP></RESOURCE></VOTABLE>")
    entries = parse(io.BytesIO(doc.encode())).resources[0].groups[0].entries
    for entry in entries:  # what pyvo's DatalinkQuery.from_resource needs: a scalar
        assert np.isscalar(entry.value), (entry.name, entry.value)


def test_datalink_document_is_lint_clean(tmp_path: Path) -> None:
    doc = document(
        [Link("u_v1", "#progenitor", access_url="http://localhost:1/g/u_v1/source",
              content_type="text/csv", content_length=1234),
         Link("u_v1", "#proc", service_def="proc_svc_0", description="re-run")],
        [ProcService("proc_svc_0", "http://localhost:1/preview", ["1.0.0"], "1.0.0",
                     describe("units", "1.0.0"))])
    root = ET.fromstring(doc)
    (length,) = [f for f in root.iter(f"{VO}FIELD") if f.get("name") == "content_length"]
    assert length.get("unit") == "byte"
    path = tmp_path / "links.xml"
    path.write_bytes(doc)
    assert datalinklint(str(path)) == []
    assert votlint(path) == []


# --- on the stack --------------------------------------------------------------------------

pyvo = pytest.importorskip("pyvo")


@pytest.fixture(scope="module")
def api(ingested_all: dict[str, Ingest], tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Stack]:
    """``epnml serve`` on the test API port (the rows' datalink_url) for this module."""
    from tests.test_api_e2e import serve

    stack = ingested_all["icme"].stack
    with serve(stack, tmp_path_factory.mktemp("api") / "serve.log"):
        yield stack


def _tap(stack: Stack, query: str) -> bytes:
    response = requests.post(f"{stack.tap_url}/sync", timeout=120, data={
        "REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query})
    assert response.status_code == 200, response.text[:500]
    return response.content


#: one row per family whose #proc re-run gives rows (the preset re-runs it as made):
#: the crater across 0 deg E for landforms, the 340-360 deg tile for units.
PICK = {
    "events": "SELECT TOP 1 granule_uid FROM epnml_events.epn_core ORDER BY granule_uid",
    "crossings": "SELECT TOP 1 granule_uid FROM epnml_crossings.epn_core ORDER BY granule_uid",
    "landforms": "SELECT TOP 1 granule_uid FROM epnml_landforms.epn_core "
                 "WHERE ml_model_name = 'craters' AND c1min > c1max ORDER BY granule_uid",
    "units": "SELECT TOP 1 granule_uid FROM epnml_units.epn_core WHERE c1max = 360 "
             "ORDER BY granule_uid",
}


def _pick(stack: Stack, family: str) -> str:
    table = pyvo.dal.TAPService(stack.tap_url).search(PICK[family])
    assert len(table) == 1, f"the test stack has no {family} row for: {PICK[family]}"
    return str(table[0]["granule_uid"])


def _proc(stack: Stack, uid: str) -> Any:
    from pyvo.dal.adhoc import DatalinkResults

    url = f"{stack.env['EPNML_API_URL']}/datalink?ID={requests.utils.quote(uid, safe='')}"
    links = DatalinkResults.from_result_url(url)
    return next(links.bysemantics("#proc", include_narrower=False)), url


@pytest.fixture(scope="module")
def served(api: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Per family: the picked row's TAP VOTable, its DataLink URL and its #proc result."""
    out: dict[str, dict[str, Any]] = {}
    folder = tmp_path_factory.mktemp("proc")
    for family in FAMILIES:
        uid = _pick(api, family)
        proc, url = _proc(api, uid)
        body = proc.process().read()
        path = folder / f"{family}.xml"
        path.write_bytes(body)
        out[family] = {"uid": uid, "datalink": url, "proc": body, "proc_path": path,
                       "tap": _tap(api, f"SELECT * FROM epnml_{family}.epn_core "
                                        f"WHERE granule_uid = '{uid}'")}
    return out


@pytest.mark.stack
@pytest.mark.parametrize("family", FAMILIES)
def test_proc_fields_are_the_tap_fields(served: dict[str, dict[str, Any]], family: str
                                        ) -> None:
    got = served[family]
    tap, proc = fields(got["tap"]), fields(got["proc"])
    assert len(tap) == len(get_product(family).served_columns())
    assert proc == tap
    assert query_status(got["proc"])[0] == "OK"
    rows = ET.fromstring(got["proc"]).findall(f".//{VO}TR")
    assert len(rows) > 0, f"the {family} re-run gave no rows: nothing was compared"
    uids = [tr[0].text for tr in rows]
    assert got["uid"] in uids  # the preset re-runs the row as it was made


@pytest.mark.stack
@pytest.mark.parametrize("family", FAMILIES)
def test_datalink_and_proc_are_lint_clean(served: dict[str, dict[str, Any]], family: str
                                          ) -> None:
    got = served[family]
    messages = datalinklint(got["datalink"])
    terms = sorted(m.group(1) for m in map(KNOWN_OLD_VOCABULARY.fullmatch, messages) if m)
    assert len(terms) == len(messages), messages  # nothing but the two known terms
    assert terms == ["documentation", "provenance"], messages
    assert votlint(got["proc_path"]) == []


@pytest.mark.stack
def test_uws_rows_are_the_tap_fields(served: dict[str, dict[str, Any]], api: Stack,
                                     tmp_path: Path) -> None:
    base = api.env["EPNML_API_URL"]
    uid = served["landforms"]["uid"]
    # the row's own threshold (a job runs the model version's defaults unless given)
    made = re.search(r"\+threshold-([0-9.]+)$", uid)
    assert made is not None, uid
    created = requests.post(f"{base}/jobs", data={"ID": uid, "THRESHOLD": made.group(1),
                                                  "PHASE": "RUN"},
                            allow_redirects=False, timeout=60)
    assert created.status_code == 303, created.text
    owner = {"X-Job-Owner-Token": created.headers["X-Job-Owner-Token"]}
    job = created.headers["Location"]
    deadline = time.monotonic() + 300
    phase = ""
    while time.monotonic() < deadline:
        phase = requests.get(f"{job}/phase", headers=owner, timeout=30).text
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            break
        time.sleep(1)
    assert phase == "COMPLETED"
    rows = requests.get(f"{job}/results/rows", headers=owner, timeout=60)
    assert rows.status_code == 200
    assert fields(rows.content) == fields(served["landforms"]["tap"])
    assert len(ET.fromstring(rows.content).findall(f".//{VO}TR")) == len(
        ET.fromstring(served["landforms"]["proc"]).findall(f".//{VO}TR"))
    path = tmp_path / "rows.xml"
    path.write_bytes(rows.content)
    assert votlint(path) == []


@pytest.mark.stack
def test_errors_are_dali_documents_in_the_format_asked(served: dict[str, dict[str, Any]],
                                                       api: Stack, tmp_path: Path) -> None:
    base = api.env["EPNML_API_URL"]
    uid = served["events"]["uid"]
    unknown = "ID nope_v1"
    vot = requests.get(f"{base}/preview", params={"ID": "nope_v1"}, timeout=60)
    assert (vot.status_code, vot.headers["content-type"]) == (404, "application/x-votable+xml")
    status, text = query_status(vot.content)
    assert status == "ERROR" and text.startswith(f"unknown {unknown}: ")
    path = tmp_path / "error.xml"
    path.write_bytes(vot.content)
    assert votlint(path) == []
    as_json = requests.get(f"{base}/preview", params={"ID": "nope_v1",
                                                       "RESPONSEFORMAT": "json"}, timeout=60)
    assert as_json.status_code == 404 and as_json.json()["detail"] == text
    accept = requests.get(f"{base}/preview", params={"ID": "nope_v1"}, timeout=60,
                          headers={"Accept": "application/json"})
    assert accept.status_code == 404 and accept.json()["detail"] == text
    bad = requests.get(f"{base}/preview", timeout=60, params={
        "ID": uid, "threshold": "7", "RESPONSEFORMAT": "votable"},
        headers={"Accept": "application/json"})
    assert bad.status_code == 422
    assert query_status(bad.content) == ("ERROR", "icme: threshold must be in (0, 1), got 7")
    # through the #proc descriptor, as pyvo sends it (RESPONSEFORMAT=votable preset)
    import io

    from astropy.io.votable import parse

    proc, _ = _proc(api, uid)
    body = proc.process(threshold=7).read()
    with pytest.raises(pyvo.dal.DALQueryError,
                       match=r"^icme: threshold must be in \(0, 1\), got 7$"):
        pyvo.dal.DALResults(parse(io.BytesIO(body)), url="proc")
    # UWS: an unknown job, and a job refused at creation
    job = requests.get(f"{base}/jobs/zzzzzzzz9", timeout=60)
    assert job.status_code == 404
    assert query_status(job.content)[0] == "ERROR"
    refused = requests.post(f"{base}/jobs", data={"ID": uid, "THRESHOLD": "7"},
                            allow_redirects=False, timeout=60)
    assert refused.status_code == 422
    assert query_status(refused.content) == ("ERROR", "icme: threshold must be in (0, 1), "
                                                      "got 7")
    refused_json = requests.post(f"{base}/jobs", data={"ID": uid, "THRESHOLD": "7"},
                                 headers={"Accept": "application/json"},
                                 allow_redirects=False, timeout=60)
    assert refused_json.json() == {"detail": "icme: threshold must be in (0, 1), got 7"}


@pytest.mark.stack
def test_footprints_across_zero(served: dict[str, dict[str, Any]]) -> None:
    """TAP serves pgSphere's folded longitudes; #proc keeps each polygon continuous."""
    import warnings

    from astropy.io.votable import parse

    def first(xml: bytes, uid: str) -> Any:
        import io

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = parse(io.BytesIO(xml)).get_first_table().array
        (row,) = [r for r in table if r["granule_uid"] == uid]
        return row

    crater = served["landforms"]
    tap, proc = first(crater["tap"], crater["uid"]), first(crater["proc"], crater["uid"])
    c1min, c1max = float(tap["c1min"]), float(tap["c1max"])
    assert c1min > c1max  # the wrap convention: west bound > east bound
    assert (float(proc["c1min"]), float(proc["c1max"])) == (c1min, c1max)
    folded, continuous = polygon_lons(str(tap["s_region"])), polygon_lons(str(proc["s_region"]))
    assert len(folded) == len(continuous) > 3
    assert min(folded) < 1.0 and max(folded) > 359.0  # folded into [0, 360)
    assert max(continuous) - min(continuous) < 2.0  # one continuous range
    assert min(continuous) == pytest.approx(c1min, abs=1e-5)
    assert max(continuous) == pytest.approx(c1max + 360.0, abs=1e-5)
    assert [lon % 360.0 for lon in continuous] == pytest.approx(folded, abs=1e-5)
    tile = served["units"]
    tap, proc = first(tile["tap"], tile["uid"]), first(tile["proc"], tile["uid"])
    assert (float(tap["c1min"]), float(tap["c1max"])) == (340.0, 360.0)
    folded, continuous = polygon_lons(str(tap["s_region"])), polygon_lons(str(proc["s_region"]))
    assert min(folded) == 0.0 and max(folded) < 360.0  # the 360 deg vertices served as 0
    assert max(continuous) == 360.0 and min(continuous) == 340.0
