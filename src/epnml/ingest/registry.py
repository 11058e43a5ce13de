"""The explicit registry of ingest pipelines: short science-case name -> stage factory."""

from __future__ import annotations

from collections.abc import Callable

from epnml.ingest.stage import Stage


def _icme(model_version: str | None) -> Stage:
    from epnml.ingest.stages.icme import IcmeStage

    return IcmeStage(model_version)


def _crossings(model_version: str | None) -> Stage:
    from epnml.ingest.stages.crossings import CrossingsStage

    return CrossingsStage(model_version)


def _units(model_version: str | None) -> Stage:
    from epnml.ingest.stages.units import UnitsStage

    return UnitsStage(model_version)


def _minerals(model_version: str | None) -> Stage:
    from epnml.ingest.stages.minerals import MineralsStage

    return MineralsStage(model_version)


def _pits(model_version: str | None) -> Stage:
    from epnml.ingest.stages.pits import PitsStage

    return PitsStage(model_version)


def _craters(model_version: str | None) -> Stage:
    from epnml.ingest.stages.craters import CratersStage

    return CratersStage(model_version)


def _mounds(model_version: str | None) -> Stage:
    from epnml.ingest.stages.mounds import MoundsStage

    return MoundsStage(model_version)


def _ice(model_version: str | None) -> Stage:
    from epnml.ingest.stages.ice import IceStage

    return IceStage(model_version)


def _meteors(model_version: str | None) -> Stage:
    from epnml.ingest.stages.meteors import MeteorsStage

    return MeteorsStage(model_version)


def _aurora(model_version: str | None) -> Stage:
    from epnml.ingest.stages.aurora import AuroraStage

    return AuroraStage(model_version)


def _icme_versions() -> list[str]:
    from epnml.ml.icme.inference import available_versions

    return available_versions()


def _crossings_versions() -> list[str]:
    from epnml.ml.crossings.inference import available_versions

    return available_versions()


def _units_versions() -> list[str]:
    from epnml.ml.units.pipeline import MODEL_VERSION

    return [MODEL_VERSION]


def _minerals_versions() -> list[str]:
    from epnml.ml.minerals.abundance import available_versions

    return available_versions()


def _pits_versions() -> list[str]:
    from epnml.ml.pits.inference import available_versions

    return available_versions()


def _craters_versions() -> list[str]:
    from epnml.ml.craters.inference import available_versions

    return available_versions()


def _mounds_versions() -> list[str]:
    from epnml.ml.mounds.model import available_versions

    return available_versions()


def _ice_versions() -> list[str]:
    from epnml.ml.ice.model import available_versions

    return available_versions()


def _meteors_versions() -> list[str]:
    from epnml.ml.meteors.model import available_versions

    return available_versions()


def _aurora_versions() -> list[str]:
    from epnml.ml.aurora.model import available_versions

    return available_versions()


PIPELINES: dict[str, Callable[[str | None], Stage]] = {
    "icme": _icme,
    "crossings": _crossings,
    "units": _units,
    "minerals": _minerals,  # predict only: its results are columns of the units rows
    "pits": _pits,
    "craters": _craters,
    "mounds": _mounds,
    "ice": _ice,
    "meteors": _meteors,
    "aurora": _aurora,
}

#: committed model versions per pipeline (what ``epnml models`` lists).
MODEL_VERSIONS: dict[str, Callable[[], list[str]]] = {
    "icme": _icme_versions,
    "crossings": _crossings_versions,
    "units": _units_versions,
    "minerals": _minerals_versions,
    "pits": _pits_versions,
    "craters": _craters_versions,
    "mounds": _mounds_versions,
    "ice": _ice_versions,
    "meteors": _meteors_versions,
    "aurora": _aurora_versions,
}


def make_stage(pipeline: str, model_version: str | None = None) -> Stage:
    try:
        factory = PIPELINES[pipeline]
    except KeyError:
        raise ValueError(f"unknown pipeline {pipeline!r}; known: {sorted(PIPELINES)}") from None
    return factory(model_version)
