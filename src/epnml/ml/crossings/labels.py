"""The region and boundary vocabulary of the Mercury crossings case (shared contract).

Regions (Julka et al. 2022): every 1-s MAG sample is in one of five classes.
Boundaries (Philpott et al. 2020, JGR 125, e2019JA027544): eight timed edges per
orbit, numbered 1..8 in the order the spacecraft meets them on a nominal orbit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: class index -> region name; the index is the model's output channel.
REGION_NAMES: tuple[str, ...] = (
    "solar wind", "bow shock", "magnetosheath", "magnetopause", "magnetosphere",
)
SOLAR_WIND, BOW_SHOCK, MAGNETOSHEATH, MAGNETOPAUSE, MAGNETOSPHERE = range(5)
N_REGIONS = len(REGION_NAMES)


@dataclass(frozen=True)
class Edge:
    number: int
    boundary: str  # "bow shock" | "magnetopause" (EPN-TAP feature_name)
    direction: str  # "inbound" | "outbound"
    edge: str  # "outer" | "inner"


#: Philpott boundary number -> what it is.
EDGES: dict[int, Edge] = {
    1: Edge(1, "bow shock", "inbound", "outer"),
    2: Edge(2, "bow shock", "inbound", "inner"),
    3: Edge(3, "magnetopause", "inbound", "outer"),
    4: Edge(4, "magnetopause", "inbound", "inner"),
    5: Edge(5, "magnetopause", "outbound", "inner"),
    6: Edge(6, "magnetopause", "outbound", "outer"),
    7: Edge(7, "bow shock", "outbound", "inner"),
    8: Edge(8, "bow shock", "outbound", "outer"),
}

#: region between edge k and edge k+1 (index k-1), for k = 1..7; outside 1..8: solar wind.
_BETWEEN = (BOW_SHOCK, MAGNETOSHEATH, MAGNETOPAUSE, MAGNETOSPHERE, MAGNETOPAUSE,
            MAGNETOSHEATH, BOW_SHOCK)


def region_labels(times: pd.DatetimeIndex, edges: Sequence[pd.Timestamp]) -> np.ndarray:
    """Per-sample region of one orbit from its eight edge times (1..8, ascending).

    Samples before edge 1 and after edge 8 are solar wind; an edge time belongs to
    the region it opens. Missing edges (NaT) raise ValueError: such orbits are not
    used for training or evaluation.
    """
    if len(edges) != 8:
        raise ValueError(f"need 8 boundary times, got {len(edges)}")
    # compare int64 nanoseconds: indexes parsed from text may carry other units (us, ms)
    stamps = pd.DatetimeIndex(list(edges)).as_unit("ns")
    if stamps.hasnans:
        raise ValueError("an orbit with a missing boundary time cannot be labelled")
    if not stamps.is_monotonic_increasing:
        raise ValueError("boundary times must be in order 1..8")
    t = pd.DatetimeIndex(times).as_unit("ns").asi8
    k = np.searchsorted(stamps.asi8, t, side="right")  # 0..8 edges passed
    out = np.full(len(t), SOLAR_WIND, dtype=np.int8)
    inside = (k >= 1) & (k <= 7)
    out[inside] = np.asarray(_BETWEEN, dtype=np.int8)[k[inside] - 1]
    return out
