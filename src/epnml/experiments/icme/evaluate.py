"""Event-level scoring (Rüdisser et al. 2022 rule), the data split, and the evaluation CLI.

Rule: a catalogued ICME counts as detected (TP) when predicted events overlap
MORE than ``min_overlap`` (10 %) of its duration; otherwise it is missed (FN).
A predicted event that overlaps no catalogued ICME at all is a false positive.
Precision = TP / (TP + FP), recall = TP / (TP + FN).

The split lives here (not in train.py) so that evaluation can never drift from
what training held out::

    python -m epnml.experiments.icme.evaluate --weights 1.0.0
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epnml.ingest.readers.icme_catalogues import ICMECAT_NAME, between, read_icmecat
from epnml.ml.icme.events import extract_events
from epnml.ml.icme.features import FEATURES

CADENCE = pd.Timedelta(minutes=10)
DATA_FILES = {
    "wind": "solarwind/wind_2019_10min.csv",
    "stereoa": "solarwind/stereoa_2019_10min.csv",
}
SPACECRAFT_NAMES = {"wind": "Wind", "stereoa": "STEREO-A"}
ICMECAT_FILE = f"catalogues/{ICMECAT_NAME}"

#: (spacecraft, first day, last day inclusive). Separated by spacecraft AND time:
#: the test months (Wind Sep-Dec 2019) are never seen in training or model selection.
SPLIT: dict[str, list[tuple[str, str, str]]] = {
    "train": [("stereoa", "2019-01-01", "2019-08-31"), ("wind", "2019-01-01", "2019-06-30")],
    "val": [("stereoa", "2019-09-01", "2019-12-31"), ("wind", "2019-07-01", "2019-08-31")],
    "test": [("wind", "2019-09-01", "2019-12-31")],
}

Interval = tuple[pd.Timestamp, pd.Timestamp]
#: IWF rule: an unmatched prediction is a false positive only when it lasts this long.
IWF_MIN_FP_DURATION = pd.Timedelta(hours=2.5)


# ----------------------------------------------------------------------------- scoring
def _overlap(
    a0: pd.Timestamp, a1: pd.Timestamp, b0: pd.Timestamp, b1: pd.Timestamp
) -> pd.Timedelta:
    return max(pd.Timedelta(0), min(a1, b1) - max(a0, b0))


def _intersects(a0: pd.Timestamp, a1: pd.Timestamp, b0: pd.Timestamp, b1: pd.Timestamp) -> bool:
    """Positive-duration overlap; a zero-length interval counts if it lies inside the other."""
    if a0 == a1 or b0 == b1:
        return max(a0, b0) <= min(a1, b1)
    return _overlap(a0, a1, b0, b1) > pd.Timedelta(0)


def _as_intervals(items: Iterable[Any], what: str) -> list[Interval]:
    out = []
    for item in items:
        try:
            s, e = pd.Timestamp(item[0]), pd.Timestamp(item[1])
        except (TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"{what}: cannot read interval {item!r}") from exc
        if pd.isna(s) or pd.isna(e) or e < s:
            raise ValueError(f"{what}: invalid interval ({s}, {e})")
        out.append((s, e))
    return out


def event_scores(
    predicted: pd.DataFrame | Sequence[tuple[Any, Any]],
    true: Sequence[tuple[Any, Any]],
    min_overlap: float = 0.1,
    min_fp_duration: pd.Timedelta | None = None,
) -> dict[str, float | int]:
    """Event-level tp, fp, fn, precision, recall, f1 (0.0 where a ratio is undefined).

    TP/FN count catalogued ICMEs: detected when ONE predicted event overlaps more
    than ``min_overlap`` of its duration (exactly ``min_overlap`` is not enough).
    FP counts predicted events that overlap no catalogued ICME at all and last at
    least ``min_fp_duration`` (the IWF rule of Rüdisser et al. 2022 uses 2.5 h:
    :data:`IWF_MIN_FP_DURATION`). One prediction spanning two ICMEs detects both.
    """
    if not 0.0 <= min_overlap < 1.0:
        raise ValueError(f"min_overlap must be in [0, 1), got {min_overlap}")
    if isinstance(predicted, pd.DataFrame):
        if len(predicted) and not {"start", "end"} <= set(predicted.columns):
            raise ValueError("predicted DataFrame needs columns start and end")
        pred_items: list[Any] = (
            list(zip(predicted["start"], predicted["end"], strict=True)) if len(predicted) else []
        )
    else:
        pred_items = list(predicted)
    pred = _as_intervals(pred_items, "predicted")
    truth = _as_intervals(true, "true")

    tp = 0
    for t0, t1 in truth:
        dur = t1 - t0
        if dur == pd.Timedelta(0):
            hit = any(p0 <= t0 <= p1 for p0, p1 in pred)
        else:
            hit = any(_overlap(p0, p1, t0, t1) / dur > min_overlap for p0, p1 in pred)
        tp += int(hit)
    fn = len(truth) - tp
    shortest = pd.Timedelta(0) if min_fp_duration is None else min_fp_duration
    fp = sum(1 for p0, p1 in pred if p1 - p0 >= shortest
             and not any(_intersects(p0, p1, t0, t1) for t0, t1 in truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "n_true": len(truth),
        "n_pred": len(pred),
    }


def true_events_from_labels(index: pd.DatetimeIndex, labels: np.ndarray) -> list[Interval]:
    """(first, last) timestamps of each run of consecutive rows labelled 1 (NaN counts as 0)."""
    lab = np.asarray(labels, dtype=np.float64)
    if lab.ndim != 1 or len(lab) != len(index):
        raise ValueError(f"labels must be 1-D with one value per index row ({len(index)})")
    on = np.nan_to_num(lab, nan=0.0) > 0.5
    edges = np.diff(np.r_[0, on.astype(np.int8), 0])
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return [(index[int(s)], index[int(e)]) for s, e in zip(starts, ends, strict=True)]


# ----------------------------------------------------------------------------- data
def shared_data_dir() -> Path:
    """``$EPNML_SHARED_DATA`` or ``<repo>/../shared/data`` (read-only real data)."""
    from epnml.config import load_settings

    return load_settings().shared_data


@dataclass
class Segment:
    """A contiguous piece of one spacecraft's data on the regular 10-min grid."""

    name: str
    spacecraft: str
    frame: pd.DataFrame  # standard frame, NaN rows in gaps
    labels: np.ndarray  # 0/1 per row (training target: the CSV's ICMECAT v2.0 column)
    #: evaluation truth: ICMECAT v2.3 (icme_start, mo_end) intervals in the segment.
    true_events: list[Interval]
    #: the same from the CSV labels (ICMECAT v2.0), reported alongside.
    label_events: list[Interval] = field(default_factory=list)

    @property
    def days(self) -> float:
        return len(self.frame) * CADENCE / pd.Timedelta(days=1)


def load_year(
    spacecraft: str, data_dir: Path | None = None
) -> tuple[pd.DataFrame, np.ndarray, list[Interval]]:
    """Read one 2019 CSV onto the regular grid; true events from the original rows."""
    if spacecraft not in DATA_FILES:
        raise ValueError(f"unknown spacecraft {spacecraft!r}; known: {sorted(DATA_FILES)}")
    path = (data_dir or shared_data_dir()) / DATA_FILES[spacecraft]
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (set EPNML_SHARED_DATA)")
    raw = pd.read_csv(path, parse_dates=["time"], index_col="time").sort_index()
    raw = raw[~raw.index.duplicated()]
    true = true_events_from_labels(pd.DatetimeIndex(raw.index), raw["icme"].to_numpy())
    grid = pd.date_range(raw.index[0].floor(CADENCE), raw.index[-1].ceil(CADENCE), freq=CADENCE)
    frame = (
        raw[FEATURES]
        .astype("float64")
        .reindex(grid, method="nearest", tolerance=pd.Timedelta(minutes=4))
    )
    lab = (
        raw["icme"]
        .astype("float64")
        .reindex(grid, method="nearest", tolerance=pd.Timedelta(minutes=4))
    )
    # a gap inside an ICME stays inside it: 1 only if both neighbours are 1.
    labels = (lab.ffill().fillna(0.0) * lab.bfill().fillna(0.0)).to_numpy()
    frame.index.name = "time"
    return frame, labels, true


def load_split(part: str, data_dir: Path | None = None) -> list[Segment]:
    """Segments of one split part (train / val / test).

    Event truth is ICMECAT v2.3 (the newer catalogue: it adds STEREO-A 2019-10-14,
    absent from the v2.0 labels); the v2.0 label events are kept for comparison.
    """
    if part not in SPLIT:
        raise ValueError(f"unknown split part {part!r}; known: {sorted(SPLIT)}")
    years: dict[str, tuple[pd.DataFrame, np.ndarray, list[Interval]]] = {}
    out = []
    for sc, first, last in SPLIT[part]:
        if sc not in years:
            years[sc] = load_year(sc, data_dir)
        frame, labels, label_true = years[sc]
        t0 = pd.Timestamp(first)
        t1 = pd.Timestamp(last) + pd.Timedelta(days=1) - CADENCE
        m = (frame.index >= t0) & (frame.index <= t1)
        if not m.any():
            continue
        t1 = min(t1, frame.index[m][-1])
        t0 = max(t0, frame.index[m][0])
        cat = icmecat_events(SPACECRAFT_NAMES[sc], t0, t1, data_dir)
        out.append(
            Segment(
                name=f"{SPACECRAFT_NAMES[sc]} {first}..{last}",
                spacecraft=sc,
                frame=frame.loc[m].copy(),
                labels=labels[m].copy(),
                true_events=_clip_intervals(cat, t0, t1),
                label_events=_clip_intervals(label_true, t0, t1),
            )
        )
    return out


def _clip_intervals(
    intervals: Iterable[Interval],
    t0: pd.Timestamp,
    t1: pd.Timestamp,
) -> list[Interval]:
    return [(max(s, t0), min(e, t1)) for s, e in intervals if e >= t0 and s <= t1]


def icmecat_events(
    spacecraft: str, start: Any, end: Any, data_dir: Path | None = None
) -> list[Interval]:
    """ICMECAT v2.3 (icme_start, mo_end) intervals of one spacecraft overlapping [start, end]."""
    return between(read_icmecat((data_dir or shared_data_dir()) / ICMECAT_FILE), spacecraft,
                   start, end)


# ----------------------------------------------------------------------------- evaluation
def pool(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sum counts over segments and recompute the ratios."""
    tp = sum(int(r["tp"]) for r in results)
    fp = sum(int(r["fp"]) for r in results)
    fn = sum(int(r["fn"]) for r in results)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    out: dict[str, Any] = {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": p,
        "recall": r,
        "f1": f1,
        "n_true": sum(int(x["n_true"]) for x in results),
        "n_pred": sum(int(x["n_pred"]) for x in results),
    }
    return out


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (95 % for z = 1.96): how far a precision
    or recall measured on a few dozen events can move by chance alone."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denom
    return (round(centre - half, 3), round(centre + half, 3))


def counts_intervals(counts: dict[str, Any]) -> dict[str, Any]:
    """Precision and recall with their Wilson 95 % intervals from pooled tp/fp/fn counts."""
    tp, fp, fn = int(counts["tp"]), int(counts["fp"]), int(counts["fn"])
    out: dict[str, Any] = {"tp": tp, "fp": fp, "fn": fn}
    if tp + fp:
        out["precision"] = round(tp / (tp + fp), 3)
        out["precision_95"] = wilson_interval(tp, tp + fp)
    if tp + fn:
        out["recall"] = round(tp / (tp + fn), 3)
        out["recall_95"] = wilson_interval(tp, tp + fn)
    return out


def pixel_scores(proba: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Sample-level precision/recall/IoU: a smoother signal than 4-event counts."""
    pred = proba >= threshold
    lab = labels > 0.5
    tp = float((pred & lab).sum())
    fp = float((pred & ~lab).sum())
    fn = float((~pred & lab).sum())
    return {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "iou": tp / (tp + fp + fn) if tp + fp + fn else 0.0,
    }


def score_segments(
    segments: Sequence[Segment],
    probas: Sequence[np.ndarray],
    postprocess: dict[str, Any],
) -> dict[str, Any]:
    """Per-segment and pooled metrics for given probabilities and post-processing."""
    per = {}
    results = []
    for seg, proba in zip(segments, probas, strict=True):
        ev = extract_events(pd.DatetimeIndex(seg.frame.index), proba, **postprocess)
        r: dict[str, Any] = dict(event_scores(ev, seg.true_events))
        v20 = event_scores(ev, seg.label_events)
        r["vs_labels_v20"] = {k: v20[k] for k in ("tp", "fp", "fn", "n_true")}
        r["pixel"] = pixel_scores(proba, seg.labels, postprocess.get("threshold", 0.5))
        r["days"] = round(seg.days, 2)
        r["predicted_events"] = [
            [str(a), str(b), round(float(s), 3)]
            for a, b, s in zip(ev["start"], ev["end"], ev["score"], strict=True)
        ]
        r["true_events_icmecat_v23"] = [[str(a), str(b)] for a, b in seg.true_events]
        per[seg.name] = r
        results.append(r)
    pooled = pool(results)
    v20 = pool([{**r["vs_labels_v20"], "n_pred": r["n_pred"]} for r in results])
    pooled["vs_labels_v20"] = {k: v20[k] for k in ("tp", "fp", "fn", "precision", "recall", "f1")}
    return {"pooled": pooled, "segments": per}


def evaluate_model(
    model: Any,
    parts: Sequence[str] = ("val", "test"),
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Metrics of a LoadedModel on held-out split parts, with its own post-processing."""
    from epnml.ml.icme.inference import predict_proba

    out: dict[str, Any] = {
        "model": {
            "name": model.info.name,
            "version": model.info.version,
            "sha256": model.info.sha256,
        },
        "postprocess": model.config.get("postprocess", {}),
        "rule": "ICME detected if predicted events overlap > 10 % of it; "
        "predicted event overlapping no ICME = FP",
    }
    for part in parts:
        if part == "train":
            raise ValueError("refusing to report metrics on training data")
        segs = load_split(part, data_dir)
        probas = [predict_proba(s.frame, model) for s in segs]
        out[part] = score_segments(segs, probas, model.postprocess())
    return out


def may2024_check(model: Any, data_dir: Path | None = None) -> dict[str, Any]:
    """Qualitative check on the Wind CDF pair of 10-12 May 2024 (five ICMECAT v2.3 ICMEs)."""
    from epnml.ingest.readers.solarwind import read_cdaweb_wind  # written by another team
    from epnml.ml.icme.inference import predict_proba

    d = (data_dir or shared_data_dir()) / "solarwind"
    frame = read_cdaweb_wind(
        d / "wind_mfi_h0_20240510_20240512.cdf", d / "wind_swe_h1_20240510_20240512.cdf"
    )
    proba = predict_proba(frame, model)
    ev = extract_events(pd.DatetimeIndex(frame.index), proba, **model.postprocess())
    true = icmecat_events("Wind", frame.index[0], frame.index[-1], data_dir)
    return {
        "rows": len(frame),
        "first": str(frame.index[0]),
        "last": str(frame.index[-1]),
        "max_proba": float(proba.max()),
        "mean_proba": float(proba.mean()),
        "predicted_events": [
            [str(a), str(b), round(float(s), 3)]
            for a, b, s in zip(ev["start"], ev["end"], ev["score"], strict=True)
        ],
        "icmecat_v23_events": [[str(a), str(b)] for a, b in true],
        "scores": event_scores(ev, true),
    }


def benchmark(model: Any, repeats: int = 3) -> dict[str, Any]:
    """Wall-clock throughput of predict_proba on the test segment (best of ``repeats``)."""
    import time

    import torch

    from epnml.ml.icme.inference import predict_proba

    seg = load_split("test")[0]
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        predict_proba(seg.frame, model)
        times.append(time.perf_counter() - t)
    best = min(times)
    return {
        "rows": len(seg.frame),
        "seconds": round(best, 3),
        "samples_per_second": round(len(seg.frame) / best),
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m epnml.experiments.icme.evaluate",
        description="Event-level metrics of committed ICME weights on the held-out data.",
    )
    ap.add_argument("--weights", default=None, help="model version (default: newest committed)")
    ap.add_argument("--parts", default="val,test", help="comma-separated split parts (val,test)")
    ap.add_argument("--may2024", action="store_true", help="also run the May 2024 Wind CDF check")
    ap.add_argument("--brief", action="store_true", help="omit per-event listings")
    ap.add_argument(
        "--benchmark", action="store_true", help="also time predict_proba (samples/s, 2 threads)"
    )
    args = ap.parse_args(argv)

    from epnml.ml.icme.inference import load_model

    model = load_model(args.weights)
    res = evaluate_model(model, [p.strip() for p in args.parts.split(",") if p.strip()])
    if args.may2024:
        try:
            res["may2024"] = may2024_check(model)
        except ImportError as exc:
            res["may2024"] = {"error": f"reader not available: {exc}"}
    if args.benchmark:
        res["benchmark"] = benchmark(model)
    if args.brief:
        for part in ("val", "test"):
            for seg in res.get(part, {}).get("segments", {}).values():
                seg.pop("predicted_events", None)
                seg.pop("true_events_icmecat_v23", None)
    json.dump(res, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
