"""The publishing registry, harvested over OAI-PMH as a registry would (docs/registry.md).

A real OAI-PMH client (Sickle) harvests the test instance after every pipeline has
ingested and ``provision.sh coverage`` ran, as operators do after ingests. Every
response is validated against the VOResource/VODataService/RegistryInterface/OAI-PMH
XSDs DaCHS ships (offline: each schemaLocation resolved to DaCHS' local copy).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.stack

sickle = pytest.importorskip("sickle")
etree = pytest.importorskip("lxml.etree")

SCHEMATA = Path("/usr/lib/python3/dist-packages/gavo/resources/schemata")
#: the XSDs a DaCHS OAI-PMH response (ivo_vor and oai_dc) draws on
XSDS = ("OAI-PMH.xsd", "oai_dc.xsd", "simpledc20021212.xsd", "RegistryInterface.xsd",
        "VOResource.xsd", "VODataService.xsd", "VORegistry.xsd", "TAPRegExt.xsd",
        "Colstats.xsd", "stc.xsd", "xlink.xsd")
NS = {"oai": "http://www.openarchives.org/OAI/2.0/",
      "ri": "http://www.ivoa.net/xml/RegistryInterface/v1.0",
      "dc": "http://purl.org/dc/elements/1.1/",
      "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
FAMILIES = ("events", "crossings", "landforms", "units", "meteors", "aurora")
#: the registry record shortName of each family's table (<= 16 characters)
SHORT_NAMES = {"events": "epnml events", "crossings": "epnml crossings",
               "landforms": "epnml landforms", "units": "epnml units",
               "meteors": "epnml meteors", "aurora": "epnml aurora"}
#: UAT terms of which every EPN-TAP resource needs one (EPN-TAP checklist)
EPN_UAT = {"planetary-science", "solar-system-astronomy", "solar-physics",
           "exoplanet-astronomy"}
PLANCK_H = 6.62607015e-34
JD_MJD = 2400000.5


class _LocalSchemata(etree.Resolver):
    """Resolve every schemaLocation (http://.../VOResource.xsd) to DaCHS' local copy."""

    def resolve(self, url: str, pubid: str | None, context: Any) -> Any:
        local = SCHEMATA / url.rsplit("/", 1)[-1]
        if local.is_file():
            return self.resolve_filename(str(local), context)
        raise OSError(f"no local copy of schema {url}")


@pytest.fixture(scope="module")
def validator() -> Any:
    if not SCHEMATA.is_dir():
        pytest.fail(f"DaCHS' schemata not found at {SCHEMATA} (gavodachs2-server)")
    parser = etree.XMLParser()
    parser.resolvers.add(_LocalSchemata())
    combiner = etree.Element("{http://www.w3.org/2001/XMLSchema}schema",
                             targetNamespace="urn:epnml-combiner")
    for name in XSDS:
        tns = etree.parse(str(SCHEMATA / name)).getroot().get("targetNamespace")
        etree.SubElement(combiner, "{http://www.w3.org/2001/XMLSchema}import",
                         namespace=tns, schemaLocation=f"http://localhost/schemata/{name}")
    return etree.XMLSchema(etree.fromstring(etree.tostring(combiner), parser))


def _defaultmeta() -> dict[str, str]:
    """service/dachs/defaultmeta.txt: the one file with curation and rights."""
    meta = {}
    for line in (REPO / "service" / "dachs" / "defaultmeta.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#") and ":" in line:
            key, value = line.split(":", 1)
            meta[key.strip()] = " ".join(value.split())
    return meta


@pytest.fixture(scope="module")
def harvest(ingested_all: dict[str, Any]) -> dict[str, Any]:
    """`provision.sh coverage` (as after every ingest), then the OAI-PMH endpoint."""
    stack = ingested_all["icme"].stack
    proc = stack.run("bash", str(REPO / "service" / "provision.sh"), "coverage", check=False)
    assert proc.returncode == 0, proc.stderr
    authority = stack.env.get("EPNML_AUTHORITY", "epnml.example.org")
    return {"client": sickle.Sickle(f"{stack.server_url}/oai.xml", max_retries=0),
            "authority": authority, "stack": stack}


def _expected_ids(authority: str) -> set[str]:
    return ({f"ivo://{authority}", f"ivo://{authority}/__system__/services/registry",
             f"ivo://{authority}/tap"}
            | {f"ivo://{authority}/{f}/q/epn_core" for f in FAMILIES})


def _records(client: Any, prefix: str) -> dict[str, Any]:
    """ListRecords: identifier -> metadata element (lxml)."""
    records = {}
    for record in client.ListRecords(metadataPrefix=prefix):
        assert not record.deleted, record.header.identifier
        records[record.header.identifier] = record.xml.find("oai:metadata", NS)[0]
    return records


def _text(element: Any, path: str) -> list[str]:
    return [" ".join((e.text or "").split()) for e in element.iterfind(path, NS)]


def test_every_response_is_schema_valid(harvest: dict[str, Any], validator: Any) -> None:
    client = harvest["client"]
    ids = _expected_ids(harvest["authority"])
    responses = [client.harvest(verb="Identify"),
                 client.harvest(verb="ListIdentifiers", metadataPrefix="ivo_vor"),
                 client.harvest(verb="ListRecords", metadataPrefix="ivo_vor"),
                 client.harvest(verb="ListRecords", metadataPrefix="oai_dc")]
    responses += [client.harvest(verb="GetRecord", metadataPrefix=prefix, identifier=i)
                  for i in sorted(ids) for prefix in ("ivo_vor", "oai_dc")]
    assert len(responses) == 4 + 2 * len(ids) == 22  # 6 tables + TAP + authority + registry
    for response in responses:
        tree = etree.fromstring(response.raw.encode())
        assert tree.find("oai:error", NS) is None, response.raw[:500]
        assert validator.validate(tree), (response.params, str(validator.error_log))


def test_the_whole_registry_is_harvestable(harvest: dict[str, Any]) -> None:
    client, authority = harvest["client"], harvest["authority"]
    expected = _expected_ids(authority)
    listed = {h.identifier for h in client.ListIdentifiers(metadataPrefix="ivo_vor")}
    assert listed == expected
    for prefix in ("ivo_vor", "oai_dc"):
        assert set(_records(client, prefix)) == expected
    for identifier in sorted(expected):  # the issue: these answered idDoesNotExist
        record = client.GetRecord(metadataPrefix="ivo_vor", identifier=identifier)
        assert record.header.identifier == identifier
    types = {i: r.get(f"{{{NS['xsi']}}}type")
             for i, r in _records(client, "ivo_vor").items()}
    assert types == {**{i: "vs:CatalogResource" for i in expected},
                     f"ivo://{authority}": "vg:Authority",
                     f"ivo://{authority}/__system__/services/registry": "vg:Registry",
                     f"ivo://{authority}/tap": "vs:CatalogService"}


def test_curation_comes_from_the_one_settings_file(harvest: dict[str, Any]) -> None:
    meta = _defaultmeta()
    records = _records(harvest["client"], "ivo_vor")
    assert len(records) == 9  # 6 product tables, TAP, authority, registry
    for identifier, resource in records.items():
        assert _text(resource, "curation/publisher") == [meta["publisher"]], identifier
        assert _text(resource, "curation/creator/name") == [meta["creator.name"]], identifier
        assert _text(resource, "curation/contact/name") == [meta["contact.name"]], identifier
        assert _text(resource, "curation/contact/email") == [meta["contact.email"]], identifier
        short = _text(resource, "shortName")
        assert len(short) == 1 and 0 < len(short[0]) <= 16, (identifier, short)
    authority = harvest["authority"]
    assert {f: _text(records[f"ivo://{authority}/{f}/q/epn_core"], "shortName")[0]
            for f in FAMILIES} == SHORT_NAMES
    # VOResource 1.1 has rights on services only; DaCHS puts them on both services
    for service in (f"ivo://{authority}/tap", f"ivo://{authority}/__system__/services/registry"):
        rights = records[service].findall("rights")
        assert len(rights) == 1, service
        assert rights[0].get("rightsURI") == meta["rights.rightsURI"]
        assert " ".join(rights[0].text.split()) == meta["rights"]
    dc = _records(harvest["client"], "oai_dc")
    assert {i: _text(r, "dc:rights") for i, r in dc.items()} == {
        i: [meta["rights"]] for i in _expected_ids(authority)}


def test_subjects_are_uat_terms(harvest: dict[str, Any]) -> None:
    subset = json.loads((REPO / "service" / "dachs" / "uat-subset.json").read_text())
    known = set(subset["terms"])
    records = _records(harvest["client"], "ivo_vor")
    authority = harvest["authority"]
    for identifier in [f"ivo://{authority}/tap"] + [
            f"ivo://{authority}/{f}/q/epn_core" for f in FAMILIES]:
        subjects = set(_text(records[identifier], "content/subject"))
        assert subjects and subjects <= known, (identifier, subjects - known)
        assert subjects & EPN_UAT, identifier


def _tap_limits(tap_url: str, family: str) -> tuple[float | None, ...]:
    """The rows' time (JD) and spectral (Hz) extent, through TAP; None where all NULL."""
    import numpy as np
    import pyvo

    row = pyvo.dal.TAPService(tap_url).run_sync(
        "SELECT MIN(time_min) AS t0, MAX(time_max) AS t1, MIN(spectral_range_min) AS f0,"
        f" MAX(spectral_range_max) AS f1 FROM epnml_{family}.epn_core").to_table()[0]
    return tuple(None if np.ma.is_masked(row[c]) or math.isnan(row[c]) else float(row[c])
                 for c in ("t0", "t1", "f0", "f1"))


def test_coverage_is_taken_from_the_rows(harvest: dict[str, Any]) -> None:
    records = _records(harvest["client"], "ivo_vor")
    authority, tap_url = harvest["authority"], harvest["stack"].tap_url
    timed = []
    for family in FAMILIES:
        resource = records[f"ivo://{authority}/{family}/q/epn_core"]
        t0, t1, f0, f1 = _tap_limits(tap_url, family)
        temporal = _text(resource, "coverage/temporal")
        if t0 is None:
            assert temporal == [], family
        else:
            timed.append(family)
            (low, high), = [map(float, t.split()) for t in temporal]
            assert low == pytest.approx(t0 - JD_MJD, abs=1e-4), family
            assert high == pytest.approx(t1 - JD_MJD, abs=1e-4), family
        spectral = _text(resource, "coverage/spectral")
        if f0 is None:
            assert spectral == [], family
        else:  # VODataService: photon energy in J
            (low, high), = [map(float, s.split()) for s in spectral]
            assert low == pytest.approx(PLANCK_H * f0, rel=1e-8), family
            assert high == pytest.approx(PLANCK_H * f1, rel=1e-8), family
        # body-fixed footprints: no (ICRS) sky coverage is claimed
        assert _text(resource, "coverage/spatial") == [], family
    # the test stack's icme, crossings and units rows all have times
    assert set(timed) >= {"events", "crossings", "units"}


def test_provisioning_wires_coverage_after_the_demo() -> None:
    script = (REPO / "service" / "provision.sh").read_text()
    run_demo = re.search(r"run_demo\(\) \{(.*?)\n\}", script, re.S)
    assert run_demo is not None and "update_coverage" in run_demo.group(1)
    assert "dachs pub //services //tap" in script
    assert subprocess.run(["bash", "-n", str(REPO / "service" / "provision.sh")]).returncode == 0
