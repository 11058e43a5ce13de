"""Schemathesis against the service's OpenAPI document: no input makes a 5xx.

Runs on the ASGI app in-process (test database, the ``ingested_icme`` rows); the job worker
is held (job_worker=0) and the queue bound is high, so generated jobs run nothing and
the only 503 the service knows (queue full) cannot occur. Every generated job is
deleted afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from epnml.config import load_settings
from tests.conftest import TEST_ROOT, _stack_env

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.stack

_JOBS = TEST_ROOT / "schemathesis-jobs"


def _app() -> object:
    """The app on the test instance (its settings are fixed; the schema loads at import)."""
    from epnml.api import create_app

    env = _stack_env()
    return create_app(replace(
        # the DSN file is written when the stack fixture provisions: read at connect time
        load_settings(), dsn="", dsn_file=Path(env["EPNML_DSN_FILE"]),
        server_url=env["EPNML_SERVER_URL"],
        api_url=env["EPNML_API_URL"], data_dir=Path(env["EPNML_DATA_DIR"]),
        api_token="schema-token", job_worker=0, max_queued_jobs=100000, jobs_dir=_JOBS,
        max_pending_per_client=100000))


@pytest.fixture(scope="module", autouse=True)
def _stack(ingested_icme: object) -> Iterator[None]:
    """The stack is up (and rows ingested) before any call; generated jobs are deleted."""
    yield
    with psycopg.connect(load_settings().dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM epnml.jobs")


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error(case: Any) -> None:
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance,
                                   content_type_conformance, response_schema_conformance])
