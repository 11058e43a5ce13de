"""Double-station pairs: the same meteor recorded by two cameras.

The network's CSV gives each record's UTC to the whole second, so two records are the
same meteor when they come from different cameras and start within ``window_s``
(default 1 s) of each other. Pairs are one-to-one, formed greedily from the closest
start times (ties: the earlier record first), so a meteor seen by three cameras links
two of them and leaves the third unpaired.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def pair_meteors(starts: Sequence[pd.Timestamp], cameras: Sequence[str],
                 window_s: float = 1.0) -> list[int | None]:
    """For each record, the index of its partner (another camera), or None."""
    if window_s < 0:
        raise ValueError(f"pairing window must be >= 0 s, got {window_s}")
    n = len(starts)
    if len(cameras) != n:
        raise ValueError("starts and cameras differ in length")
    t = np.array([pd.Timestamp(s).value for s in starts], dtype="int64")
    order = np.argsort(t, kind="stable")
    window_ns = int(round(window_s * 1e9))
    candidates: list[tuple[int, int, int]] = []
    for a_pos, a in enumerate(order):
        for b in order[a_pos + 1:]:
            dt = int(t[b] - t[a])
            if dt > window_ns:
                break
            if cameras[a] != cameras[b]:
                candidates.append((dt, int(a_pos), int(b)))
    partner: list[int | None] = [None] * n
    for _, a_pos, b in sorted(candidates):
        a = int(order[a_pos])
        if partner[a] is None and partner[b] is None:
            partner[a], partner[b] = b, a
    return partner
