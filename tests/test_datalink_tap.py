"""DataLink from plain TAP results: the service descriptor DaCHS writes into every TAP
response of the four services (docs/registry.md), followed by pyvo's iter_datalinks()
to the DataLink documents of ``epnml serve``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import Ingest, Stack

pyvo = pytest.importorskip("pyvo")

pytestmark = pytest.mark.stack

DATALINK_IVOID = "ivo://ivoa.net/std/DataLink#links-1.0"


#: the families ingested by ``ingested_all`` (meteors rows are test_meteors_tap's own).
FAMILIES = ("events", "crossings", "landforms", "units", "aurora")


@pytest.fixture(scope="module")
def api(ingested_all: dict[str, Ingest], tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Stack]:
    """``epnml serve`` on the test API port (the rows' datalink_url) for this module."""
    from tests.test_api_e2e import serve

    stack = ingested_all["icme"].stack
    with serve(stack, tmp_path_factory.mktemp("api") / "serve.log"):
        yield stack


def _descriptor_url(result: Any) -> str:
    service = result.get_adhocservice_by_ivoid(DATALINK_IVOID)
    params = {p.name: p.value for p in service.params}
    (param,) = service.groups[0].entries
    assert (param.name, param.ref) == ("ID", "granule_uid")
    return str(params["accessURL"])


@pytest.mark.parametrize("family", FAMILIES)
def test_iter_datalinks_on_plain_results(api: Stack, family: str) -> None:
    stack = api
    result = pyvo.dal.TAPService(stack.tap_url).search(
        f"SELECT * FROM epnml_{family}.epn_core")
    uids = [str(uid) for uid in result["granule_uid"]]
    assert len(uids) > 0, f"the test stack ingested no {family} rows"
    assert _descriptor_url(result) == f"{stack.server_url}/{family}/q/dl/dlmeta"
    seen: dict[str, list[str]] = {}
    for links in result.iter_datalinks():
        (uid,) = {str(row["ID"]) for row in links}
        seen[uid] = sorted(str(row.semantics) for row in links)
    assert sorted(seen) == sorted(uids)
    for uid, semantics in seen.items():
        assert semantics.count("#progenitor") == 1, (uid, semantics)
        assert semantics.count("#preview") == 1, (uid, semantics)
        assert "#proc" in semantics, (uid, semantics)


def test_descriptor_redirects_to_the_rows_datalink_url(api: Stack) -> None:
    """TOPCAT's action (GET, one ID) lands where the row's datalink_url points."""
    stack = api
    result = pyvo.dal.TAPService(stack.tap_url).search(
        "SELECT TOP 1 granule_uid, datalink_url FROM epnml_events.epn_core")
    assert len(result) == 1
    row = result[0]
    response = requests.get(_descriptor_url(result), params={"ID": row["granule_uid"]},
                            allow_redirects=False, timeout=30)
    assert response.status_code == 303
    assert response.headers["Location"] == row["datalink_url"]


def test_redirect_carries_at_most_50_ids(api: Stack) -> None:
    """pyvo POSTs all IDs of a result; /datalink takes 50: it asks again for the rest."""
    url = f"{api.server_url}/units/q/dl/dlmeta"
    ids = [f"id{n:03d}" for n in range(60)]
    response = requests.post(url, data={"ID": ids}, allow_redirects=False, timeout=30)
    assert response.status_code == 303
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(response.headers["Location"]).query)
    assert query == {"ID": ids[:50]}


def test_no_descriptor_without_the_id_column(api: Stack) -> None:
    result = pyvo.dal.TAPService(api.tap_url).search(
        "SELECT COUNT(*) AS n FROM epnml_events.epn_core")
    with pytest.raises(pyvo.dal.DALServiceError):
        result.get_adhocservice_by_ivoid(DATALINK_IVOID)
