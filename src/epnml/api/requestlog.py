"""The request log: one ``epnml.inference_log`` row per inference request or job granule."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from epnml.config import Settings
from epnml.db import connect


def log_request(conn: psycopg.Connection | None, settings: Settings, *, client: str,
                endpoint: str, pipeline: str | None, granule_id: str | None,
                model_version: str | None, params: dict[str, Any], seconds: float,
                outcome: str, http_status: int, error: str | None = None) -> None:
    """One ``epnml.inference_log`` row; a logging failure never fails the request."""
    own = conn is None
    try:
        if conn is None:
            conn = connect(settings)
        conn.execute(
            "INSERT INTO epnml.inference_log (client, endpoint, pipeline, granule_id,"
            " model_version, params, seconds, outcome, http_status, error)"
            " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s)",
            (client, endpoint, pipeline, granule_id, model_version,
             json.dumps(params, default=str), seconds, outcome, http_status,
             None if error is None else error[:2000]))
    except (psycopg.Error, RuntimeError):
        pass
    finally:
        if own and conn is not None:
            conn.close()
