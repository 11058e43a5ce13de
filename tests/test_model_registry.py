"""The model registry through TAP: every row's model version, its checksum and card."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import ICME_VERSION, Ingest

pyvo = pytest.importorskip("pyvo")

pytestmark = pytest.mark.stack


def test_ingested_models_are_registered_with_their_checksum(
        ingested_icme: Ingest, ingested_crossings: Ingest, ingested_units: Ingest,
        tap: Any) -> None:
    from epnml.ml.crossings.inference import load_model

    rows = tap.search("SELECT * FROM epnml_models.versions").to_table()
    found = {(str(r["model_name"]), str(r["model_version"])): r for r in rows}
    # the service tests ingest icme with ICME_VERSION (tests/conftest.py)
    icme = ("icme", ICME_VERSION)
    assert {icme, ("crossings", "1.0.0"), ("units", "1.0.0")} <= set(found)
    crossings = found[("crossings", "1.0.0")]
    assert str(crossings["weights_sha256"]) == load_model("1.0.0").info.sha256
    card = json.loads(str(crossings["card"]))
    assert card["version"] == "1.0.0" and "metrics" in card
    assert "SIMULATED" in str(crossings["training_data"])
    assert int(crossings["n_current_rows"]) == ingested_crossings.n_rows()


@pytest.mark.parametrize("schema", ["epnml_events", "epnml_crossings", "epnml_units"])
def test_every_current_row_joins_its_model_version(
        ingested_icme: Ingest, ingested_crossings: Ingest, ingested_units: Ingest,
        tap: Any, schema: str) -> None:
    total = tap.search(f"SELECT COUNT(*) AS n FROM {schema}.epn_core").to_table()
    joined = tap.search(
        f"SELECT COUNT(*) AS n FROM {schema}.epn_core AS r"
        " JOIN epnml_models.versions AS m ON r.ml_model_name = m.model_name"
        " AND r.ml_model_version = m.model_version"
        " AND r.ml_weights_sha256 = m.weights_sha256").to_table()
    assert int(total["n"][0]) > 0, f"{schema}: nothing ingested to join"
    assert int(joined["n"][0]) == int(total["n"][0]), schema


def test_row_counts_match_the_product_tables(ingested_crossings: Ingest, tap: Any) -> None:
    registry = tap.search("SELECT model_name, n_current_rows FROM epnml_models.versions"
                          " WHERE model_name = 'crossings'").to_table()
    served = tap.search("SELECT COUNT(*) AS n FROM epnml_crossings.epn_core"
                        " WHERE ml_model_name = 'crossings'").to_table()
    assert len(registry) == 1
    assert int(registry["n_current_rows"][0]) == int(served["n"][0]) \
        == ingested_crossings.n_rows()
