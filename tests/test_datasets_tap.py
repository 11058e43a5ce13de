"""The training datasets through TAP (pyvo): the ADQL examples of docs/datasets.md answer on
the provisioned stack with exactly the counts of the committed manifests."""

from __future__ import annotations

from typing import Any

import pytest

from epnml.config import load_settings
from epnml.datasets.manifest import read_manifest
from tests.conftest import Ingest

pytestmark = pytest.mark.stack

MANIFESTS = load_settings().models_dir / "datasets"
OBS = "ESP_016213_1720"

PITS_BY_OBSERVATION = f"""
SELECT s.sample_id, s.split, s.label, s.source_file
FROM epnml_datasets.samples AS s
JOIN epnml_datasets.versions AS v ON v.dataset_id = s.dataset_id
WHERE v.model_name = 'pits' AND v.model_version = '1.0.0' AND s.obs_id = '{OBS}'
"""

ICMECAT_OF_ROW = """
SELECT s.sample_id, s.time_min, s.time_max, v.model_version
FROM epnml_events.epn_core AS e
JOIN epnml_datasets.versions AS v
  ON v.model_name = e.ml_model_name AND v.model_version = e.ml_model_version
JOIN epnml_datasets.samples AS s ON s.dataset_id = v.dataset_id
WHERE e.granule_uid = '{uid}' AND s.split = 'train' AND s.label_source LIKE 'ICMECAT%'
"""


def test_pits_samples_of_one_observation(tap: Any) -> None:
    m = read_manifest(MANIFESTS / "pits-1.0.0.json")
    want = sorted(s.sample_id for s in m.samples if s.obs_id == OBS)
    assert len(want) == 17
    rows = tap.search(PITS_BY_OBSERVATION).to_table()
    assert sorted(str(x) for x in rows["sample_id"]) == want
    assert {str(x) for x in rows["split"]} == {"validation"}


def test_icmecat_training_events_of_a_served_row(tap: Any, ingested_icme: Ingest) -> None:
    rows = tap.search("SELECT granule_uid, ml_model_version FROM epnml_events.epn_core "
                      "WHERE ml_model_name = 'icme'").to_table()
    assert len(rows) > 0, "no icme row served"
    uid, version = str(rows["granule_uid"][0]), str(rows["ml_model_version"][0])
    m = read_manifest(MANIFESTS / f"icme-{version}.json")
    want = sorted(s.sample_id for s in m.samples
                  if s.split == "train" and s.label_source.startswith("ICMECAT"))
    assert len(want) == {"1.0.0": 13, "2.0.0": 198}[version]
    got = tap.search(ICMECAT_OF_ROW.format(uid=uid)).to_table()
    assert sorted(str(x) for x in got["sample_id"]) == want
    assert {str(x) for x in got["model_version"]} == {version}


def test_dataset_versions_join_the_model_registry(tap: Any, ingested_icme: Ingest) -> None:
    got = tap.search(
        "SELECT d.dataset_id, d.n_train, d.content_sha256 FROM epnml_datasets.versions AS d "
        "JOIN epnml_models.versions AS m ON m.model_name = d.model_name "
        "AND m.model_version = d.model_version WHERE d.model_name = 'icme'").to_table()
    # the registry holds the versions that wrote rows here: the fixture's icme 1.0.0
    want = [read_manifest(MANIFESTS / "icme-1.0.0.json")]
    assert {(str(r["dataset_id"]), int(r["n_train"]), str(r["content_sha256"])) for r in got} \
        == {(m.dataset_id, m.counts()["train"], m.content_sha256) for m in want}
