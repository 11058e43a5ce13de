"""Minerals stage (predict only): reflectance spectra -> phases present and abundances.

INAF case (RELAB laboratory spectra): the ``minerals`` model of
:mod:`epnml.ml.minerals.abundance` applied to any reflectance spectrum over
350-1050 nm.  It has no product table of its own: its results become columns
of the ``units`` rows, so ``epnml ingest minerals`` is refused.

Inputs: RELAB/SLab JSON spectra, a CSV with ``wavelength_nm`` and a reflectance
column (``reflectance``, ``iof_mean`` as the units' mean-spectrum files, or
``iof``), or an ENVI spectral library (``.sli`` with its ``.hdr``: one granule,
one record per spectrum).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from epnml.ingest.limits import DEFAULT_LIMITS, ResourceLimits
from epnml.ingest.stage import CommittedModelStage, Granule, GranuleError, RunContext, StageOutput

if TYPE_CHECKING:
    from epnml.ml.minerals.abundance import MineralModel

REFLECTANCE_COLUMNS = ("reflectance", "iof_mean", "iof")
SUFFIXES = {".json", ".csv", ".sli"}
#: spectra per granule (the USGS library: 3,139), wavelengths per spectrum (RELAB: at
#: most 2,151; USGS AVIRIS: 224) and the decoded library's memory (USGS: about 10 MB).
LIMITS = replace(DEFAULT_LIMITS, max_samples=100_000, max_bands=8192, max_memory_mb=1000)


def _read(path: Path, limits: ResourceLimits = LIMITS
          ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(spectrum id, wavelength nm, reflectance) of every spectrum in one file."""
    from epnml.ingest.readers.paths import describe_exception, require_file
    from epnml.ingest.readers.spectra import read_envi_sli, read_relab_json

    suffix = path.suffix.lower()
    if suffix == ".json":
        lab = read_relab_json(path, limits)
        return [(lab.spectrum_id, lab.wavelength_nm, lab.reflectance)]
    if suffix == ".sli":
        lib = read_envi_sli(path, limits)
        return [(name, lib.wavelength_nm, row) for name, row in zip(lib.names, lib.spectra,
                                                                    strict=True)]
    with require_file(path).open("rb") as fh:  # one wavelength a line: bands
        limits.check(path, "bands", sum(1 for _ in fh))
    try:
        table = pd.read_csv(path, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise GranuleError(path, f"not a readable CSV: {reason}") from None
    except (OSError, ValueError) as exc:
        raise GranuleError(path, f"not a readable CSV: {describe_exception(exc)}") from None
    column = next((c for c in REFLECTANCE_COLUMNS if c in table.columns), None)
    if "wavelength_nm" not in table.columns or column is None:
        raise GranuleError(path, "a spectrum CSV needs wavelength_nm and one of "
                                 f"{', '.join(REFLECTANCE_COLUMNS)}")
    wl = pd.to_numeric(table["wavelength_nm"], errors="coerce").to_numpy(float)
    refl = pd.to_numeric(table[column], errors="coerce").to_numpy(float)
    return [(path.stem, wl, refl)]


class MineralsStage(CommittedModelStage):
    name = "minerals"
    product = "units"
    model_module = "epnml.ml.minerals.abundance"
    _model: MineralModel
    #: results are columns of ``units`` rows; nothing of its own to ingest.
    predict_only = True
    limits: ResourceLimits = LIMITS

    def granules(self, paths: Sequence[Path]) -> list[Granule]:
        files: list[Path] = []
        for path in paths:
            if path.is_dir():
                files += sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
            elif path.suffix.lower() == ".hdr":
                continue  # read with its .sli
            elif path.suffix.lower() in SUFFIXES:
                files.append(path)
            else:
                raise GranuleError(path, "not a spectrum file (.json, .csv or ENVI .sli)")
        if not files:
            raise ValueError("no spectrum files (.json, .csv, .sli) given")
        return [Granule(p.stem, (p,)) for p in files]

    def process(self, granule: Granule, ctx: RunContext) -> StageOutput:
        from epnml.ingest.spec import resolve
        from epnml.ml.minerals.abundance import PHASES, predict_spectra

        resolve("minerals", ctx.params, self._model.info.version)  # the spec declares none
        path = granule.paths[0]
        records = []
        for i, (spectrum_id, wl, refl) in enumerate(_read(path, self.limits), 1):
            if wl.size < 2 or not np.isfinite(refl).any():
                raise GranuleError(path, f"no valid data: spectrum #{i} has no valid "
                                         "reflectance value")
            result = predict_spectra(self._model, wl, refl[None, :])[0]
            record: dict[str, Any] = {"file": str(path), "spectrum_id": spectrum_id,
                                      "covered": result is not None}
            for phase in PHASES:
                record[f"present_{phase}"] = None if result is None else \
                    phase in result["present"]
                record[f"presence_prob_{phase}"] = None if result is None else \
                    round(float(result["presence"][phase]), 4)
                record[f"abundance_{phase}"] = None if result is None else \
                    round(float(result["abundance"][phase]), 2)
                record[f"abundance_sigma_{phase}"] = None if result is None else \
                    round(float(result["abundance_sigma"][phase]), 2)
            record["model"] = self._model.info.name
            record["model_version"] = self._model.info.version
            records.append(record)
        return StageOutput(granule, pd.DataFrame.from_records(records), [])
