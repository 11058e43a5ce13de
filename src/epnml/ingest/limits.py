"""Resource limits: what one granule (or one request) may cost, checked before work starts.

A tiny input can declare an enormous amount of work (three CSV rows 120 years apart, a
PDS3 label declaring 400 m/px over a planet, a 1 MB PNG of 30000x30000 pixels). Each
stage declares its :class:`ResourceLimits`; readers check the label or header against
them *before* allocating, and raise :class:`LimitExceeded` (HTTP 413, CLI exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from epnml.ingest.stage import GranuleError


class LimitExceeded(GranuleError):
    """The input declares more work than the stage allows (HTTP 413, CLI exit 2)."""

    def __init__(self, path: Path | str, quantity: str, value: float, maximum: float,
                 unit: str = "") -> None:
        unit_text = f" {unit}" if unit else ""
        super().__init__(
            path, f"{quantity} {value:g}{unit_text} exceeds the limit of {maximum:g}{unit_text}"
        )
        self.quantity = quantity
        self.value = value
        self.maximum = maximum


@dataclass(frozen=True)
class ResourceLimits:
    """Per-granule maxima a stage accepts (None = not applicable to this stage)."""

    #: time covered by one granule (days).
    max_span_days: float | None = None
    #: samples (rows of a time series) in one granule.
    max_samples: int | None = None
    #: pixels of one image or DTM (width x height), or grid cells.
    max_pixels: int | None = None
    #: spectral channels / bands.
    max_bands: int | None = None
    #: estimated working memory of one granule (MB).
    max_memory_mb: float | None = None

    def check(self, path: Path | str, quantity: str, value: float) -> None:
        """Raise LimitExceeded if ``value`` passes the maximum named by ``quantity``.

        ``quantity`` is one of ``span_days``, ``samples``, ``pixels``, ``bands``,
        ``memory_mb``.
        """
        maximum = getattr(self, f"max_{quantity}")
        if maximum is not None and value > maximum:
            units = {"span_days": "days", "memory_mb": "MB"}
            raise LimitExceeded(path, quantity.replace("_", " "), value, maximum,
                                units.get(quantity, ""))


#: generous defaults for one granule on one worker (24 GiB machine, 2 workers).
DEFAULT_LIMITS = ResourceLimits(
    max_span_days=3 * 366,
    max_samples=20_000_000,
    max_pixels=100_000_000,
    max_bands=4096,
    max_memory_mb=4000,
)
