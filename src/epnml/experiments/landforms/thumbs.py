"""One failure thumbnail of a detector's examples figure (craters, pits): the image around a
box, the box outlined, a title. Shared so both figures crop and draw the same way."""

from __future__ import annotations

from typing import Any

import numpy as np


def box_thumbnail(ax: Any, pixels: np.ndarray, box: Any, label: str, side: float,
                  colour: str, *, margin: float = 0.75, interpolation: str = "nearest"
                  ) -> None:
    """Draw on ``ax`` the ``pixels`` around ``box`` (x0, y0, x1, y1): at least ``side`` px
    across, and ``margin`` x the box's size each side of its centre; the box outlined in
    ``colour``, titled ``label``."""
    from matplotlib.patches import Rectangle

    b = box
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    half = max(side / 2, (b[2] - b[0]) * margin, (b[3] - b[1]) * margin)
    x0, y0 = int(max(cx - half, 0)), int(max(cy - half, 0))
    x1 = int(min(cx + half, pixels.shape[1]))
    y1 = int(min(cy + half, pixels.shape[0]))
    ax.imshow(pixels[y0:y1, x0:x1], cmap="gray", interpolation=interpolation)
    ax.add_patch(Rectangle((b[0] - x0, b[1] - y0), b[2] - b[0], b[3] - b[1],
                           fill=False, lw=1.0, ec=colour))
    ax.set_title(label, fontsize=5.5)


def thumbnail_grid(axes: Any, rows: list[list[tuple[np.ndarray, Any, str]]], side: float,
                   colour_of_row: Any, **kw: Any) -> None:
    """Fill a grid of axes: row r holds thumbnails ``(pixels, box, label)`` drawn in
    ``colour_of_row(r)`` (:func:`box_thumbnail` options in ``kw``); empty cells hidden."""
    for r, row in enumerate(rows):
        for k, ax in enumerate(axes[r]):
            ax.set_axis_off()
            if k < len(row):
                pixels, box, label = row[k]
                box_thumbnail(ax, pixels, box, label, side, colour_of_row(r), **kw)
