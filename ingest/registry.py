"""The explicit registry of ingest pipelines: short science-case name -> stage factory."""

from __future__ import annotations

from collections.abc import Callable

from epnml.ingest.stage import Stage


def _icme(model_version: str | None) -> Stage:
    from epnml.ingest.stages.icme import IcmeStage

    return IcmeStage(model_version)


PIPELINES: dict[str, Callable[[str | None], Stage]] = {
    "icme": _icme,
}


def make_stage(pipeline: str, model_version: str | None = None) -> Stage:
    try:
        factory = PIPELINES[pipeline]
    except KeyError:
        raise ValueError(f"unknown pipeline {pipeline!r}; known: {sorted(PIPELINES)}") from None
    return factory(model_version)
