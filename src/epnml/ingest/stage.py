"""The ingest stage interface shared by every pipeline.

A stage is pure: a granule (source files) in, rows for one product table out.
It never touches the database or the network; readers, stages and writers are
separate so the same stage serves ``epnml predict`` (no database),
``epnml ingest`` (COPY into PostgreSQL) and on-demand re-inference.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

# defined with the model code (epnml.ml never imports epnml.ingest); re-exported here
from epnml.ml.model_info import ModelInfo as ModelInfo


class GranuleError(ValueError):
    """A granule cannot be processed; the message names the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def printable(text: str | os.PathLike[str]) -> str:
    """``text`` with undecodable file-name bytes shown as ``\\xff``: storable as UTF-8.

    ``os.fsdecode`` turns a non-UTF-8 byte of a file name into a lone surrogate, which
    PostgreSQL (and any UTF-8 encoder) refuses; this gives the same name, printable.
    """
    text = os.fspath(text)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def safe_name(name: str, limit: int | None = 100) -> str:
    """``name`` as a file-name part: anything but letters, digits and ``-_.`` becomes
    ``_``; cut to ``limit`` characters (``None``: not cut)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:limit]


def safe_uid(uid: str) -> str:
    """A file name for a row's uid: :func:`safe_name` uncut up to 120 characters, a longer
    one cut to 100 plus 16 hex of its sha256 (two long uids never share a file)."""
    clean = safe_name(uid, None)
    if len(clean) <= 120:
        return clean
    return clean[:100] + "_" + hashlib.sha256(uid.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Granule:
    """One unit of work: the files of one source product (e.g. an MFI+SWE CDF pair).

    Stages group files and name the granule from the file names; the ingest runner may
    then give it another ``granule_id`` (``dataclasses.replace``) when that id already
    belongs to different source data (see :mod:`epnml.ingest.writer`).
    """

    #: stable identifier of the source data; becomes ``obs_id`` of every row.
    granule_id: str
    paths: tuple[Path, ...]

    @property
    def label(self) -> str:
        """The files, printable (non-UTF-8 name bytes escaped): for messages and the store."""
        return ", ".join(printable(p) for p in self.paths)


def one_granule_per_file(files: Iterable[Path], granule_id: Callable[[Path], str],
                         on_clash: Callable[[Path, str], str]) -> list[Granule]:
    """One granule per file, in order: ``granule_id(file)``, or ``on_clash(file, id)`` when
    an earlier file already took that id (the same name in two folders)."""
    out: dict[str, Granule] = {}
    for f in files:
        gid = granule_id(f)
        if gid in out:
            gid = on_clash(f, gid)
        out[gid] = Granule(gid, (f,))
    return list(out.values())


@dataclass(frozen=True)
class RunContext:
    """What a stage needs to know about the run, without any I/O handle."""

    run_id: str
    #: base URL under which files returned in ``StageOutput.files`` are served.
    files_base_url: str
    started: datetime
    #: the files a row links to (quicklooks and ``access_url`` artefacts, see
    #: epnml.ingest.access) cost time; ``predict`` publishes nothing and skips them.
    make_quicklooks: bool = True
    #: pipeline parameters as given (validated by the runner with epnml.ingest.spec); a
    #: stage reads every value through ``spec.resolve`` (defaults filled in, same check).
    params: dict[str, Any] = field(default_factory=dict)
    #: the read-only reference data of the settings (``Settings.shared_data``): published
    #: catalogues a stage cross-matches (icme: ICMECAT, Nguyen 2019). An input of the run
    #: like the model file, recorded with it (``Stage.run_inputs``); None = not available.
    reference_data: Path | None = None


@dataclass(frozen=True)
class SolarWindSeries:
    """The series a solar-wind reader made of a granule, as served by HAPI.

    Built by the icme stage (pure: no I/O), stored by the ingest writer in the granule's
    transaction (``epnml.solarwind_samples``, keyed by the granule's content sha256).
    """

    #: instrument_host_name of the granule's rows (Wind, ACE, OMNI, STEREO-A, ...)
    spacecraft: str
    #: seconds between samples: 600 (the reader's 10-min frame) or the source's coarser
    #: native cadence (hourly OMNI: only the bins holding an hourly value are kept)
    cadence_s: float
    simulated: bool
    #: tz-naive UTC DatetimeIndex, float columns :data:`SERIES_COLUMNS`; NaN = missing;
    #: bins with no value at all are left out
    frame: pd.DataFrame


#: the stored and served quantities (names of the solar-wind standard frame).
SERIES_COLUMNS = ("np", "vt", "tp", "bx", "by", "bz", "bt", "beta", "pdyn")


@dataclass
class StageOutput:
    granule: Granule
    #: domain records, one per detection (what ``epnml predict`` writes as CSV).
    records: pd.DataFrame
    #: rows of the product table: EPN-TAP columns plus ML provenance.
    rows: list[dict[str, Any]]
    #: files to publish, relative path -> content: quicklook PNGs (thumbnail_url) and
    #: the artefacts of access_url (epnml.ingest.access).
    files: dict[str, bytes] = field(default_factory=dict)
    #: values that were not physical (inf, NaN text, +-1e308, undeclared fill values,
    #: negative densities...) and became missing data: quantity -> count in this granule.
    invalid_values: dict[str, int] = field(default_factory=dict)
    #: the input series (icme only), stored with the rows by the ingest writer.
    series: SolarWindSeries | None = None


class Stage(Protocol):
    #: short science-case name used everywhere (CLI, tests, fixtures), e.g. ``icme``.
    name: str
    #: product family = storage table and RD, e.g. ``events``.
    product: str
    #: appended to the model version of every row and of model_info() when the run's
    #: model parameters differ from the defaults (``+threshold-0.7``; set by
    #: :func:`epnml.ingest.executor.get_stage`, ``""`` otherwise).
    version_suffix: str

    def granules(self, paths: Sequence[Path]) -> list[Granule]:
        """Group input files into granules; raise GranuleError on unknown files."""
        ...

    def model_info(self) -> ModelInfo: ...

    def model_card(self) -> dict[str, Any]:
        """Model card (data, real vs simulated, metrics, command) recorded with the version."""
        ...

    def process(self, granule: Granule, ctx: RunContext) -> StageOutput:
        """Read, infer and build rows; raise GranuleError for bad input."""
        ...


def invalid_note(invalid: dict[str, int]) -> str:
    """Sentence appended to processing_level_desc when input values were not physical
    (StageOutput.invalid_values), so every row says what its granule lost."""
    total = sum(invalid.values())
    if not total:
        return ""
    parts = ", ".join(f"{q} {n}" for q, n in sorted(invalid.items()))
    return f"; {total} non-physical input value(s) treated as missing ({parts})"


class CommittedModelStage:
    """What the stages whose model is one committed weights file share: loading it,
    ``model_info()`` with the stage's version suffix, and the committed card.

    ``model_module`` names the module with ``load_model(version)``; it is imported when
    the stage is made, so listing the registry never loads torch.
    """

    name: str
    model_module: str
    version_suffix = ""  # see Stage.version_suffix
    #: the loaded model (each stage declares its type)
    _model: Any

    def __init__(self, model_version: str | None = None) -> None:
        self._model = importlib.import_module(self.model_module).load_model(model_version)
        self._info: ModelInfo = self._model.info

    def model_info(self) -> ModelInfo:
        return self._info.derived(self.version_suffix)

    def model_card(self) -> dict[str, Any]:
        """The JSON model card committed next to the weights (stored in epnml.model_versions)."""
        from epnml.ml.checkpoints import committed_card

        card: dict[str, Any] = committed_card(self.name, self._info.version)
        return card
