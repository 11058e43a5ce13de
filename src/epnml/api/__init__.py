"""The HTTP service (``epnml serve``): a thin shell over :func:`epnml.rerun.rerun` and
``run_pipeline``.

Synchronous previews, UWS 1.1 jobs persisted in PostgreSQL, token-protected commits,
DataLink documents for every served row, a request log and a per-model drift view.
The package loads FastAPI only when :func:`create_app` is called, so the CLI's other
commands start without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from epnml.config import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for these settings: :func:`epnml.api.app.create_app`."""
    from epnml.api.app import create_app as build

    return build(settings)
