"""The HTTP service of issue #6 (``epnml serve``): a thin shell over ``run_pipeline``.

Synchronous previews, UWS 1.1 jobs persisted in PostgreSQL, token-protected commits,
DataLink documents for every served row, a request log and a per-model drift view.
"""

from __future__ import annotations

from epnml.api.app import create_app

__all__ = ["create_app"]
