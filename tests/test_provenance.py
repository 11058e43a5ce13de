"""Provenance of every row (issue #16): DataLink ``#provenance`` -> a W3C PROV document the
``prov`` package reads back, whose records are exactly what the store recorded; the same
graph through TAP (``epnml_prov``, ProvTAP) from a row's obs_id to the training samples.

One served row of each family: events (icme), crossings, landforms (pits), units (the
shared session ingests), aurora and meteors (this module's own ingest, then a derived
version of it that supersedes those rows). Every model's training dataset is the one
provisioning registered from its committed manifest (ml/datasets); nothing is inserted here.
units trains nothing: its document says "no training set" and its model has no derivation.
"""

from __future__ import annotations

import io
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import psycopg
import pytest

from epnml import __version__
from epnml.config import Settings, load_settings
from epnml.provenance import namespace_uri
from tests.conftest import ICME_VERSION, PITS_VERSION, Ingest, Stack

pyvo = pytest.importorskip("pyvo")
prov_model = pytest.importorskip("prov.model")
prov_constants = pytest.importorskip("prov.constants")

from fastapi.testclient import TestClient  # noqa: E402

pytestmark = pytest.mark.stack

#: family -> the model whose current rows the test reads.
REPO = Path(__file__).resolve().parents[1]
MODELS = {"events": "icme", "crossings": "crossings", "landforms": "pits", "units": "units",
          "meteors": "meteors", "aurora": "aurora"}
RUN_LINE = re.compile(r"^run (\S+) \(meteors, ingest", re.M)


@dataclass(frozen=True)
class Row:
    family: str
    uid: str
    obs_id: str
    pipeline: str
    run_id: str
    model_name: str
    model_version: str
    weights_sha256: str


@dataclass(frozen=True)
class Meteors:
    first_run: str
    second_run: str


def _run_id(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    found = RUN_LINE.findall(result.stderr)
    assert len(found) == 1, result.stderr
    return str(found[0])


@pytest.fixture(scope="module")
def meteors(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Meteors:
    """A simulated meteors file ingested twice: 1.0.0, then a derived version (another
    pair window) whose rows supersede the first ones."""
    from epnml.ingest.simulate.meteors import write_simulated

    path = write_simulated(tmp_path_factory.mktemp("prov_meteors"), 12, 4711)
    cli = [str(Path(sys.prefix) / "bin" / "epnml"), "ingest", "meteors", "--no-progress",
           "--workers", "1"]
    first = _run_id(stack.run(*cli, str(path), check=False))
    second = _run_id(stack.run(*cli, "--param", "pair_window_s=0.5", str(path), check=False))
    return Meteors(first, second)


def _row(conn: psycopg.Connection, family: str, where: str, *args: Any) -> Row:
    found = conn.execute(
        f"SELECT granule_uid, obs_id, pipeline, ml_run_id, ml_model_name, ml_model_version,"
        f" ml_weights_sha256 FROM epnml.{family} WHERE {where} ORDER BY granule_uid LIMIT 1",
        args).fetchone()
    assert found is not None, f"no {family} row where {where} {args}"
    return Row(family, *found)


@pytest.fixture(scope="module")
def rows(ingested_icme: Ingest, ingested_crossings: Ingest, ingested_units: Ingest,
         ingested_pits: Ingest, ingested_aurora: Ingest, meteors: Meteors) -> dict[str, Row]:
    """One current row per family, plus the superseded meteors row (key ``superseded``)."""
    out = {}
    with psycopg.connect(load_settings().dsn) as conn:
        for family, model in MODELS.items():
            if family == "meteors":
                out[family] = _row(conn, family, "ml_run_id = %s AND superseded_at IS NULL",
                                   meteors.second_run)
            else:
                version = {"icme": ICME_VERSION, "pits": PITS_VERSION}.get(model, "1.0.0")
                out[family] = _row(conn, family, "superseded_at IS NULL AND ml_model_name = %s"
                                   " AND ml_model_version = %s", model, version)
        out["superseded"] = _row(conn, "meteors", "ml_run_id = %s AND superseded_at IS NOT NULL",
                                 meteors.first_run)
    return out


def _registered(conn: psycopg.Connection, model: str, version: str) -> str | None:
    """The dataset provisioning registered from ml/datasets for this model version."""
    found = conn.execute("SELECT dataset_id FROM epnml.dataset_versions WHERE model_name = %s"
                         " AND model_version = %s", (model, version)).fetchall()
    assert len(found) <= 1, found
    return found[0][0] if found else None


def _manifest(model: str, version: str) -> Any:
    """The committed manifest of a model version (ml/datasets), None when it has none."""
    from epnml.datasets.manifest import read_manifest

    path = REPO / "ml" / "datasets" / f"{model}-{version}.json"
    return read_manifest(path) if path.is_file() else None


def _expected_samples(model: str, version: str) -> list[tuple[str, str, str | None, str]]:
    m = _manifest(model, version)
    return sorted((x.sample_id, x.split, x.obs_id, x.label) for x in m.samples)


@pytest.fixture(scope="module")
def datasets(stack: Stack, rows: dict[str, Row]) -> dict[str, str | None]:
    """The dataset version of each row's model (base version): the one provisioning
    registered from its committed manifest; None for a model that trains nothing
    (NO_TRAINING_SET: units). Nothing is inserted by the test."""
    from epnml.datasets.manifest import NO_TRAINING_SET

    out: dict[str, str | None] = {}
    with psycopg.connect(stack.owner_dsn) as conn:
        for row in rows.values():
            version = row.model_version.split("+")[0]
            registered = _registered(conn, row.model_name, version)
            manifest = _manifest(row.model_name, version)
            if row.model_name in NO_TRAINING_SET:
                assert (registered, manifest) == (None, None), row.model_name
            else:
                assert manifest is not None, f"no ml/datasets manifest for {row.model_name}"
                assert registered == manifest.dataset_id, row.model_name
            out[row.model_name] = registered
    assert sorted(m for m, d in out.items() if d is None) == ["units"]
    return out


@pytest.fixture(scope="module")
def settings(stack: Stack, datasets: dict[str, str | None],
             tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return replace(load_settings(), jobs_dir=tmp_path_factory.mktemp("jobs"), job_worker=0)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    from epnml.api import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def _expected(settings: Settings, row: Row, datasets: dict[str, str | None]
              ) -> dict[str, set[str]]:
    """What the store recorded about the row, read from its tables (not the views)."""
    with psycopg.connect(settings.dsn) as conn:
        granules = conn.execute(
            "SELECT sha256 FROM epnml.granule_sources WHERE pipeline = %s AND obs_id = %s"
            " AND (first_run_id = %s OR last_run_id = %s)",
            (row.pipeline, row.obs_id, row.run_id, row.run_id)).fetchall()
        inputs = conn.execute("SELECT inputs FROM epnml.runs WHERE run_id = %s",
                              (row.run_id,)).fetchone()
    assert len(granules) == 1, granules
    catalogues = {f"epnml:file/{c['sha256']}" for c in (inputs[0] or {}).get("catalogues", [])}
    model = f"epnml:model/{row.model_name}/{row.model_version}"
    dataset = datasets[row.model_name]
    return {
        "entity": {f"epnml:row/{row.uid}", f"epnml:granule/{granules[0][0]}",
                   f"epnml:params/{row.run_id}", model, *catalogues,
                   *([f"epnml:dataset/{dataset}"] if dataset else [])},
        "activity": {f"epnml:run/{row.run_id}"},
        "agent": {f"epnml:software/epnml-{__version__}"},
        "used": {f"epnml:granule/{granules[0][0]}", model, f"epnml:params/{row.run_id}",
                 *catalogues},
    }


def _local(qname: Any) -> str:
    return f"epnml:{qname.localpart}"


def _records(doc: Any, kind: type) -> list[Any]:
    return [r for r in doc.get_records(kind)]


def _datalink_provenance(client: TestClient, settings: Settings, uid: str) -> str:
    response = client.get("/datalink", params={"ID": uid})
    assert response.status_code == 200
    ns = {"v": "http://www.ivoa.net/xml/VOTable/v1.3"}
    links = [[td.text or "" for td in tr.findall("v:TD", ns)]
             for tr in ET.fromstring(response.content).iterfind(".//v:TR", ns)]
    found = [link for link in links if link[4] == "#provenance"]
    assert len(found) == 1, links
    url = found[0][1]
    assert url == (f"{settings.api_url.rstrip('/')}/rows/{quote(uid, safe='')}"
                   "/provenance?format=json")
    assert found[0][6] == "application/json"
    return url.replace(settings.api_url.rstrip("/"), "")


@pytest.mark.parametrize("family", list(MODELS))
def test_datalink_provenance_document(client: TestClient, settings: Settings,
                                      rows: dict[str, Row], datasets: dict[str, str | None],
                                      family: str) -> None:
    from prov.model import (
        ProvActivity,
        ProvAgent,
        ProvAssociation,
        ProvDerivation,
        ProvDocument,
        ProvEntity,
        ProvGeneration,
        ProvUsage,
    )

    row = rows[family]
    response = client.get(_datalink_provenance(client, settings, row.uid))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    doc = ProvDocument.deserialize(content=response.text, format="json")
    # round trip: what prov reads it writes back to an equal document
    again = ProvDocument.deserialize(content=doc.serialize(format="json"), format="json")
    assert again == doc
    assert {n.prefix: n.uri for n in doc.namespaces} == {
        "epnml": namespace_uri(settings.authority)}
    expected = _expected(settings, row, datasets)
    assert {_local(e.identifier) for e in _records(doc, ProvEntity)} == expected["entity"]
    assert {_local(a.identifier) for a in _records(doc, ProvActivity)} == expected["activity"]
    assert {_local(a.identifier) for a in _records(doc, ProvAgent)} == expected["agent"]
    run = f"epnml:run/{row.run_id}"
    (generation,) = _records(doc, ProvGeneration)
    attrs = dict(generation.formal_attributes)
    assert (_local(attrs[prov_constants.PROV_ATTR_ENTITY]),
            _local(attrs[prov_constants.PROV_ATTR_ACTIVITY])) == (f"epnml:row/{row.uid}", run)
    used = {(_local(dict(u.formal_attributes)[prov_constants.PROV_ATTR_ACTIVITY]),
             _local(dict(u.formal_attributes)[prov_constants.PROV_ATTR_ENTITY]))
            for u in _records(doc, ProvUsage)}
    assert used == {(run, e) for e in expected["used"]}
    (association,) = _records(doc, ProvAssociation)
    assert _local(dict(association.formal_attributes)[prov_constants.PROV_ATTR_AGENT]) == \
        f"epnml:software/epnml-{__version__}"
    # the row comes from its granule; the model version leads to its training dataset
    derivations = {(_local(dict(d.formal_attributes)[prov_constants.PROV_ATTR_GENERATED_ENTITY]),
                    _local(dict(d.formal_attributes)[prov_constants.PROV_ATTR_USED_ENTITY]))
                   for d in _records(doc, ProvDerivation)}
    granule = next(e for e in expected["used"] if e.startswith("epnml:granule/"))
    model_id = f"epnml:model/{row.model_name}/{row.model_version}"
    dataset = datasets[row.model_name]
    assert derivations == {(f"epnml:row/{row.uid}", granule),
                           *([(model_id, f"epnml:dataset/{dataset}")] if dataset else [])}
    # checksums: the model entity carries the row's weights sha256
    (model,) = [e for e in _records(doc, ProvEntity)
                if _local(e.identifier).startswith("epnml:model/")]
    attributes = {str(k.localpart): v for k, v in model.attributes}
    assert attributes["content_sha256"] == row.weights_sha256
    # a model that trains nothing says so; the others lead to the registered dataset
    assert ("no training set" in attributes["comment"]) == (dataset is None)
    if dataset is not None:
        (entity,) = [e for e in _records(doc, ProvEntity)
                     if _local(e.identifier) == f"epnml:dataset/{dataset}"]
        assert {str(k.localpart): v for k, v in entity.attributes}["content_sha256"] == \
            _manifest(row.model_name, row.model_version.split("+")[0]).content_sha256
    # file names only: no server directory in the document
    assert "/tmp/" not in response.text and "/var/" not in response.text


def test_provn_and_votable_are_the_same_graph(client: TestClient, rows: dict[str, Row],
                                              settings: Settings,
                                              datasets: dict[str, str | None]) -> None:
    from astropy.io.votable import parse

    row = rows["events"]
    path = f"/rows/{quote(row.uid, safe='')}/provenance"
    provn = client.get(path, params={"format": "provn"})
    assert provn.status_code == 200
    assert provn.headers["content-type"].startswith("text/provenance-notation")
    assert provn.text.startswith("document\n")
    assert f"wasGeneratedBy(epnml:row/{row.uid}, epnml:run/{row.run_id}," in provn.text
    assert provn.text.rstrip().endswith("endDocument")
    votable = client.get(path, params={"format": "votable"})
    assert votable.status_code == 200
    tables = {t.name: t.to_table() for t in parse(io.BytesIO(votable.content)).iter_tables()}
    assert list(tables) == ["entity", "activity", "agent", "used", "wasgeneratedby",
                            "wasassociatedwith", "wasderivedfrom", "wasinvalidatedby"]
    expected = _expected(settings, row, datasets)
    assert {str(v) for v in tables["entity"]["id"]} == expected["entity"]
    assert {str(v) for v in tables["activity"]["id"]} == expected["activity"]
    assert len(tables["wasinvalidatedby"]) == 0


def test_superseded_row_was_invalidated_by_the_superseding_run(
        client: TestClient, rows: dict[str, Row], meteors: Meteors) -> None:
    from prov.constants import PROV_ATTR_ACTIVITY
    from prov.model import ProvDocument, ProvInvalidation

    row = rows["superseded"]
    assert row.model_version == "1.0.0"
    response = client.get(f"/rows/{quote(row.uid, safe='')}/provenance")
    assert response.status_code == 200
    doc = ProvDocument.deserialize(content=response.text, format="json")
    (invalidation,) = doc.get_records(ProvInvalidation)
    assert _local(dict(invalidation.formal_attributes)[PROV_ATTR_ACTIVITY]) == \
        f"epnml:run/{meteors.second_run}"
    activities = {_local(a.identifier) for a in doc.get_records(prov_model.ProvActivity)}
    assert activities == {f"epnml:run/{meteors.first_run}", f"epnml:run/{meteors.second_run}"}


@pytest.mark.parametrize("family", list(MODELS))
def test_provtap_from_obs_id_to_training_samples(stack: Stack, client: TestClient,
                                                 rows: dict[str, Row],
                                                 datasets: dict[str, str | None],
                                                 family: str) -> None:
    row = rows[family]
    tap = pyvo.dal.TAPService(stack.tap_url)
    query = (
        "SELECT DISTINCT r.granule_uid, g.activity_id, d.progenitor_id, m.content_sha256"
        f" FROM epnml_{family}.epn_core AS r"
        " JOIN epnml_prov.entity AS e ON e.name = r.granule_uid AND e.type = 'epnml:ProductRow'"
        " JOIN epnml_prov.wasgeneratedby AS g ON g.entity_id = e.id"
        " JOIN epnml_prov.used AS u ON u.activity_id = g.activity_id AND u.role = 'model'"
        " JOIN epnml_prov.entity AS m ON m.id = u.entity_id"
        " JOIN epnml_prov.wasderivedfrom AS d ON d.entity_id = u.entity_id"
        f" WHERE r.obs_id = '{row.obs_id}' AND r.granule_uid = '{row.uid}'")
    found = tap.search(query).to_table()
    dataset = datasets[row.model_name]
    if dataset is None:  # units: no training set, so no derivation of its model
        assert len(found) == 0
    else:
        assert [(str(x["activity_id"]), str(x["progenitor_id"]), str(x["content_sha256"]))
                for x in found] == [(f"epnml:run/{row.run_id}", f"epnml:dataset/{dataset}",
                                     row.weights_sha256)]
        # the registered dataset's samples, through TAP, are the committed manifest's
        samples = tap.search(
            "SELECT s.sample_id, s.split, s.obs_id, s.label FROM epnml_datasets.samples AS s"
            f" WHERE s.dataset_id = '{dataset}'", maxrec=100_000).to_table()
        got = sorted((str(x["sample_id"]), str(x["split"]),
                      None if np.ma.is_masked(x["obs_id"]) else str(x["obs_id"]),
                      str(x["label"])) for x in samples)
        expected = _expected_samples(row.model_name, row.model_version.split("+")[0])
        assert len(expected) > 0
        assert got == expected
    # the TAP graph of the run is the document's
    used = tap.search(
        "SELECT u.entity_id FROM epnml_prov.used AS u"
        f" WHERE u.activity_id = 'epnml:run/{row.run_id}'"
        " AND (u.role IN ('model', 'parameters', 'catalogue') OR"
        " u.entity_id IN (SELECT d.progenitor_id FROM epnml_prov.wasderivedfrom AS d"
        f" WHERE d.entity_id = 'epnml:row/{row.uid}'))").to_table()
    doc = json.loads(client.get(f"/rows/{quote(row.uid, safe='')}/provenance").text)
    assert sorted(str(u) for u in used["entity_id"]) == sorted(
        u["prov:entity"] for u in doc["used"].values())


@pytest.mark.parametrize(("uid", "status", "detail"), [
    ("nope-0001", 404, "unknown ID nope-0001: no current or superseded row has this "
                       "granule_uid"),
    ("a b", 422, "ID must be a granule_uid of this service: 1-200 characters of "
                 "A-Z a-z 0-9 _ . : + - ~"),
])
def test_bad_ids(client: TestClient, uid: str, status: int, detail: str) -> None:
    response = client.get(f"/rows/{quote(uid, safe='')}/provenance")
    assert response.status_code == status
    assert response.json() == {"detail": detail}


def test_bad_format(client: TestClient, rows: dict[str, Row]) -> None:
    response = client.get(f"/rows/{quote(rows['units'].uid, safe='')}/provenance",
                          params={"format": "xml"})
    assert response.status_code == 422
    assert "\n" not in response.json()["detail"]
    assert response.json()["detail"].startswith("format: ")
