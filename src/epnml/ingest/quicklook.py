"""Small event quicklook PNGs for the EPN-TAP ``thumbnail_url`` of detected events.

Uses :class:`matplotlib.figure.Figure` with the Agg canvas directly, never
pyplot, so no global figure state leaks between stages or threads.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter, DayLocator
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator

_DPI = 100


def solarwind_quicklook_png(
    frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, title: str, size_px: int = 200
) -> bytes:
    """A ``size_px`` square PNG of B (bt, bz), V, Np, T around one event, event shaded.

    The window is the event +- max(1 day, 50 % of its length), so short and long
    events are both readable at thumbnail size.  Missing data plot as gaps.
    """
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if end <= start:
        raise ValueError(f"event end {end} is not after start {start}")
    if not 32 <= size_px <= 4000:
        raise ValueError(f"size_px must be in 32..4000, got {size_px}")
    missing = [c for c in ("bt", "bz", "vt", "np", "tp") if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks column(s): {', '.join(missing)}")
    pad = max(pd.Timedelta(days=1), (end - start) * 0.5)
    lo, hi = start - pad, end + pad
    win = frame.loc[(frame.index >= lo) & (frame.index <= hi)]
    t = win.index.to_numpy()

    inches = size_px / _DPI
    fig = Figure(figsize=(inches, inches), dpi=_DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.2, right=0.97, top=0.9, bottom=0.06, hspace=0.08)
    axes = fig.subplots(4, 1, sharex=True)
    small = 4.5
    panels = [
        (axes[0], [("bt", "k"), ("bz", "tab:red")], "B nT"),
        (axes[1], [("vt", "tab:blue")], "V km/s"),
        (axes[2], [("np", "tab:green")], "N cm⁻³"),
        (axes[3], [("tp", "tab:orange")], "T K"),
    ]
    for ax, series, label in panels:
        for col, color in series:
            ax.plot(t, win[col].to_numpy(float), color=color, lw=0.6)
        ax.axvspan(start, end, color="gold", alpha=0.35, lw=0)
        ax.set_ylabel(label, fontsize=small, labelpad=1)
        ax.tick_params(labelsize=small - 1, length=2, pad=1)
        ax.set_xlim(lo, hi)
        ax.yaxis.set_major_locator(MaxNLocator(3))
        ax.yaxis.set_minor_locator(NullLocator())  # tick creation dominates the cost
        ax.xaxis.set_minor_locator(NullLocator())
    axes[0].axhline(0.0, color="0.6", lw=0.4)
    tp = win["tp"].to_numpy(float)
    if np.isfinite(tp).any() and np.nanmin(tp) > 0:
        axes[3].set_yscale("log")
        axes[3].yaxis.set_major_locator(LogLocator(numticks=3))
        axes[3].yaxis.set_minor_locator(NullLocator())
    step = max(1, int(round((hi - lo) / pd.Timedelta(days=1) / 3)))
    axes[3].xaxis.set_major_locator(DayLocator(interval=step))
    axes[3].xaxis.set_major_formatter(DateFormatter("%m-%d"))
    fig.suptitle(title, fontsize=small + 0.5, y=0.985)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


#: colours of the boundary kinds in the MAG quicklooks.
_EDGE_COLOURS = {"bow shock": "tab:red", "magnetopause": "tab:blue"}


def mag_orbit_quicklook_png(
    frame: pd.DataFrame, edges: pd.DataFrame, title: str, size_px: int = 200
) -> bytes:
    """A ``size_px`` square PNG of one orbit: |B| (log) and Bx, By, Bz (MSO), crossings marked.

    ``edges`` needs ``time`` and ``boundary`` (bow shock red, magnetopause blue).
    Missing samples plot as gaps.
    """
    if not 32 <= size_px <= 4000:
        raise ValueError(f"size_px must be in 32..4000, got {size_px}")
    missing = [c for c in ("bx", "by", "bz") if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks column(s): {', '.join(missing)}")
    if len(frame) == 0:
        raise ValueError("empty orbit")
    # 200 px cannot show 43,200 points: 10-s decimation keeps the look and the speed.
    step = max(1, len(frame) // 4000)
    win = frame.iloc[::step]
    t = win.index.to_numpy()
    b = win[["bx", "by", "bz"]].to_numpy(float)
    bt = np.sqrt((b**2).sum(axis=1))

    inches = size_px / _DPI
    fig = Figure(figsize=(inches, inches), dpi=_DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.2, right=0.97, top=0.9, bottom=0.1, hspace=0.08)
    axes = fig.subplots(2, 1, sharex=True)
    small = 4.5
    axes[0].plot(t, bt, color="k", lw=0.5)
    if np.isfinite(bt).any() and np.nanmin(bt) > 0:
        axes[0].set_yscale("log")
        axes[0].yaxis.set_major_locator(LogLocator(numticks=3))
    axes[0].set_ylabel("|B| nT", fontsize=small, labelpad=1)
    for i, colour in enumerate(("tab:blue", "tab:green", "tab:red")):
        axes[1].plot(t, b[:, i], color=colour, lw=0.4)
    axes[1].set_ylabel("B MSO nT", fontsize=small, labelpad=1)
    for ax in axes:
        for when, boundary in zip(edges["time"], edges["boundary"], strict=True):
            ax.axvline(pd.Timestamp(when), color=_EDGE_COLOURS.get(str(boundary), "0.4"), lw=0.6)
        ax.tick_params(labelsize=small - 1, length=2, pad=1)
        ax.set_xlim(t[0], t[-1])
        ax.yaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_locator(NullLocator())
    axes[1].yaxis.set_major_locator(MaxNLocator(3))
    axes[1].xaxis.set_major_locator(MaxNLocator(3))
    axes[1].xaxis.set_major_formatter(DateFormatter("%H:%M"))
    fig.suptitle(title, fontsize=small + 0.5, y=0.985)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()
