"""Every TAP example (service/dachs/userconfig.rd, served at /tap/examples) answers rows.

The examples are read from the running service's examples document (DALI examples,
RDFa ``property="query"``), as TOPCAT shows them, and run through pyvo on the test
stack after every pipeline has ingested. They are chosen to answer on the demo too.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

pyvo = pytest.importorskip("pyvo")
etree = pytest.importorskip("lxml.etree")

pytestmark = pytest.mark.stack

#: the examples userconfig.rd declares, by title (the test fails on a missing one)
TITLES = ("ICMEs overlapping a time interval", "Confident detections in Wind data",
          "Incremental harvest", "Dayside bow shock crossings at Mercury",
          "Spectral units of Mercury in a region", "Landforms near a point (spatial)",
          "ML-derived products of every service")
SCHEMAS = {"epnml_events", "epnml_crossings", "epnml_landforms", "epnml_units"}


def served_examples(tap_url: str) -> dict[str, str]:
    """Title -> ADQL of each example in the service's examples document."""
    response = requests.get(f"{tap_url}/examples", timeout=30)
    response.raise_for_status()
    root = etree.fromstring(response.content, etree.HTMLParser())
    examples = {}
    for node in root.iterfind(".//*[@typeof='example']"):
        names = node.xpath(".//*[@property='name']")
        queries = node.xpath(".//*[@property='query']")
        assert len(names) == 1 and len(queries) == 1, etree.tostring(node)[:300]
        title = " ".join("".join(names[0].itertext()).split())
        examples[title] = "".join(queries[0].itertext()).strip()
    return examples


@pytest.fixture(scope="module")
def examples(tap: Any, ingested_all: dict[str, Any]) -> dict[str, str]:
    """The served examples, once every pipeline's rows are in (they must answer)."""
    found = served_examples(tap.baseurl)
    assert sorted(found) == sorted(TITLES)
    return found


@pytest.mark.parametrize("title", TITLES)
def test_example_returns_rows(tap: Any, examples: dict[str, str], title: str) -> None:
    result = tap.run_sync(examples[title])
    assert len(result) > 0, f"example {title!r} returned no rows:\n{examples[title]}"


def test_catalogue_example_covers_every_service(tap: Any, examples: dict[str, str]) -> None:
    query = examples["ML-derived products of every service"]
    assert {s for s in SCHEMAS if f"{s}.epn_core" in query} == SCHEMAS
    rows = tap.run_sync(query).to_table()
    assert {str(s) for s in rows["service_title"]} == SCHEMAS
    counts = {str(s): 0 for s in SCHEMAS}
    for row in rows:
        counts[str(row["service_title"])] += int(row["n"])
    for schema in SCHEMAS:  # each service's share is its own row count
        (total,) = tap.run_sync(
            f"SELECT COUNT(*) AS n FROM {schema}.epn_core WHERE processing_level >= 5"
            ).to_table()["n"]
        assert counts[schema] == int(total), schema


def test_spatial_examples_fix_no_sky_frame(examples: dict[str, str]) -> None:
    """Body-fixed footprints: CIRCLE with an empty coordinate system, never ICRS."""
    spatial = [q for q in examples.values() if "CIRCLE(" in q]
    assert len(spatial) == 2
    for query in spatial:
        assert "CIRCLE(''," in query and "ICRS" not in query.upper(), query
