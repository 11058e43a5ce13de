"""Provenance of a loaded model: name, version and weights sha256 (written into every row).

It lives in ``epnml.ml`` because model code makes it when it loads weights, and
``epnml.ml`` never imports ``epnml.ingest``; the stage interface uses this class
(``epnml.ingest.stage.ModelInfo`` is the same object).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ModelInfo:
    """Provenance of the model a stage runs (written into every row)."""

    name: str
    version: str
    sha256: str

    def derived(self, suffix: str) -> ModelInfo:
        """The same weights run with non-default model parameters: version
        ``<version><suffix>`` (e.g. ``1.0.0+threshold-0.7``); ``""`` derives nothing."""
        return replace(self, version=self.version + suffix) if suffix else self
