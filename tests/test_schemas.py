"""schemas/ is the single source: the SQL and the RDs must be what it renders."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from epnml.schemas import PRODUCTS, get_product
from epnml.schemas.columns import core_columns
from epnml.schemas.render import (
    PRODUCTS_SQL,
    RD_DIR,
    SCHEMAS_DIR,
    product_schema_json,
    render_products_sql,
    render_rd,
)

REPO = Path(__file__).resolve().parent.parent


def test_sql_is_rendered_from_schemas() -> None:
    assert PRODUCTS_SQL.read_text() == render_products_sql()


@pytest.mark.parametrize("family", sorted(PRODUCTS))
def test_rd_columns_match_schemas(family: str) -> None:
    product = PRODUCTS[family]
    path = RD_DIR / f"{product.rd_id}.rd"
    text = path.read_text()
    assert render_rd(product, text) == text, f"{path} is stale"
    root = ET.fromstring(text)
    assert root.get("schema") == product.schema
    table = root.find("table")
    assert table is not None and table.get("id") == "epn_core"
    mixin = table.find("mixin")
    assert mixin is not None and mixin.text == "//epntap2#table-2_0"
    assert mixin.get("spatial_frame_type") == product.spatial_frame_type
    declared = {c.get("name"): c for c in table.findall("column")}
    custom = {c.name: c for c in product.served_columns() if c.origin == "custom"}
    assert set(declared) == set(custom)
    for name, col in custom.items():
        assert declared[name].get("ucd") == col.ucd
        assert (declared[name].get("unit") or "") == col.unit
    view = table.find("viewStatement")
    assert view is not None and product.storage_table in (view.text or "")
    assert "superseded_at IS NULL" in (view.text or "")
    assert table.find("publish") is not None
    subjects = {m.text for m in root.findall("meta") if m.get("name") == "subject"}
    assert subjects & {"planetary-science", "solar-system-astronomy", "solar-physics"}


def test_core_columns_cover_the_rec() -> None:
    names = [c.name for c in core_columns("body")]
    assert len(names) == len(set(names))
    for required in ("granule_uid", "time_min", "s_region", "c3max", "c3_resol_max",
                     "service_title", "release_date"):
        assert required in names


def test_unknown_family_and_frame_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown product family"):
        get_product("nope")
    with pytest.raises(ValueError, match="spatial_frame_type"):
        core_columns("healpix")


def test_migrations_are_ordered() -> None:
    names = sorted(p.name for p in (REPO / "sql").glob("*.sql"))
    assert names[:2] == ["0001_init.sql", "0002_products.sql"]


def test_abundance_columns_follow_the_model_phases() -> None:
    from epnml.ml.minerals.abundance import PHASES
    from epnml.schemas.products import MINERAL_PHASES, get_product

    assert tuple(PHASES) == MINERAL_PHASES
    names = {c.name for c in get_product("units").columns()}
    assert {f"abundance_{p}" for p in PHASES} <= names


def test_added_columns_have_their_migration() -> None:
    from epnml.schemas.render import added_columns_sql

    for path, text in added_columns_sql().items():
        assert path.is_file() and path.read_text() == text, f"{path.name} is stale"


@pytest.mark.parametrize("family", sorted(PRODUCTS))
def test_committed_product_schema_json_matches(family: str) -> None:
    product = PRODUCTS[family]
    path = SCHEMAS_DIR / f"{family}.json"
    assert path.read_text() == product_schema_json(product), f"{path} is stale"
    doc = json.loads(path.read_text())
    served = [c["name"] for c in doc["columns"] if c["served"]]
    assert served == [c.name for c in product.served_columns()]
    assert doc["served_table"] == f"epnml_{family}.epn_core"
