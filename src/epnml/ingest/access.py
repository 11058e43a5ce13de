"""What a row's ``access_url`` delivers: the artefact files of the stages (pure functions).

Every served row carries ``access_url``, ``access_format`` (MIME type) and
``access_estsize`` (kB, EPN-TAP 2.0). The stages make the artefact as bytes and return it
in ``StageOutput.files`` like their quicklooks; the writer stores those files under
``Settings.data_dir`` in the granule's transaction and DaCHS serves them at
``files_base_url`` (``/static/epnml``), which answers with the MIME type of the suffix
(``.csv`` text/csv, ``.png`` image/png). docs/service-api.md lists what each family gets.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from epnml.ingest.stage import RunContext

CSV = "text/csv"
PNG = "image/png"
#: bytes per kB of ``access_estsize`` (VOUnit ``kbyte``: SI prefix, 1000 bytes).
KBYTE = 1000
#: the smallest side (source pixels) of a landform cut-out (the quicklook size): a 10 px
#: crater still gets a window that shows its surroundings, and a file of several kB.
MIN_CUTOUT_PX = 128


def estsize_kb(content: bytes) -> int:
    """``access_estsize`` of ``content``: its size in kB, rounded, at least 1."""
    return max(1, round(len(content) / KBYTE))


def access_columns(ctx: RunContext, rel: str, content: bytes, mime: str) -> dict[str, Any]:
    """The three access columns of a file served at ``ctx.files_base_url/rel``."""
    return {"access_url": f"{ctx.files_base_url}/{rel}", "access_format": mime,
            "access_estsize": estsize_kb(content)}


def publish_file(ctx: RunContext, files: dict[str, bytes], rel: str, content: bytes,
                 mime: str) -> dict[str, Any]:
    """Add ``content`` to the granule's files to publish as ``rel``; its access columns."""
    files[rel] = content
    return access_columns(ctx, rel, content, mime)


def _iso(index: pd.Index) -> list[str]:
    t = pd.DatetimeIndex(index)
    if t.tz is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return [f"{s}Z" for s in t.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3]]


def series_csv(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
               columns: Sequence[str], units: Mapping[str, str], header: Sequence[str],
               digits: int = 4) -> bytes:
    """CSV of ``frame``'s samples (time-indexed) in ``start``..``end`` (both included).

    Column ``time`` is ISO 8601 UTC with milliseconds; the others are ``columns`` as the
    reader gave them (empty = missing), their units in the ``#`` header after the lines
    of ``header`` (what the extract is, its source and whether it is simulated).
    """
    win = frame.loc[(frame.index >= start) & (frame.index <= end)]
    cols = [c for c in columns if c in win.columns]
    out = pd.DataFrame({c: win[c].to_numpy(float) for c in cols})
    out.insert(0, "time", _iso(win.index))
    lines = [f"# {line}" for line in header]
    lines.append(f"# window: {_iso(pd.DatetimeIndex([start]))[0]} .. "
                 f"{_iso(pd.DatetimeIndex([end]))[0]}, {len(out)} samples")
    lines.append("# units: time UTC; " + "; ".join(f"{c} {units.get(c, '') or '1'}"
                                                  for c in cols))
    text = "\n".join(lines) + "\n" + out.to_csv(index=False, float_format=f"%.{digits}g",
                                                lineterminator="\n")
    return text.encode()


def cutout_png(pixels: np.ndarray, box: tuple[float, float, float, float],
               note: str, min_px: int = MIN_CUTOUT_PX) -> bytes:
    """PNG of the source samples around ``box`` (x0, y0, x1, y1 pixels) at full resolution.

    The window is the box plus half its size on every side, at least ``min_px`` wide and
    high (clipped to the image). Samples are scaled linearly to 8 bits between their 1st
    and 99th percentiles; the PNG's text chunks give the window (``epnml:window``,
    columns and rows of the source image) and the scale (``epnml:scale``: value =
    lo + DN / 255 * (hi - lo)), so values are recoverable to 1/255 of that range.
    No-data pixels are 0 and counted in ``epnml:nodata``.
    """
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    h, w = pixels.shape
    x0, y0, x1, y1 = box
    a, c = _span(x0, x1, w, min_px)
    b, d = _span(y0, y1, h, min_px)
    part = np.asarray(pixels[b:d, a:c], dtype=np.float64)
    ok = np.isfinite(part)
    lo, hi = (np.percentile(part[ok], [1, 99]) if ok.any() else (0.0, 1.0))
    hi = hi if hi > lo else lo + 1.0
    dn = np.where(ok, np.clip(np.round((part - lo) / (hi - lo) * 255.0), 0, 255), 0)
    meta = PngInfo()
    meta.add_text("epnml:source", note)
    meta.add_text("epnml:window", f"x {a}..{c - 1}, y {b}..{d - 1} (source pixels)")
    meta.add_text("epnml:scale", f"value = {lo:.6g} + DN / 255 * ({hi:.6g} - {lo:.6g})")
    meta.add_text("epnml:nodata", f"{int((~ok).sum())} pixel(s) without data, DN 0")
    buf = io.BytesIO()
    Image.fromarray(dn.astype(np.uint8), mode="L").save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()


def _span(lo: float, hi: float, size: int, min_px: int) -> tuple[int, int]:
    """[start, stop) of the box side lo..hi plus half its length each way, widened to
    ``min_px`` around its centre and clipped to 0..size."""
    half = max(2.0 * (hi - lo), float(min_px)) / 2.0
    centre = (lo + hi) / 2.0
    start = max(0, math.floor(centre - half))
    stop = min(size, math.ceil(centre + half))
    if stop - start < min(min_px, size):  # clipped at an edge: extend the other way
        if start == 0:
            stop = min(size, min_px)
        else:
            start = max(0, size - min_px)
    return start, stop
