"""Data split, metrics and the evaluation CLI of the crossings model.

ALL numbers here are on SIMULATED magnetometer data (``epnml.ingest.simulate.messenger``)
whose boundary times are the REAL Philpott et al. 2020 catalogue times of each orbit.

Split BY TIME over complete catalogue orbits (all eight edges, in order), by the
time of edge 1; the split lives here so training can never drift from it::

    train       2011-03-01 .. 2012-12-31   (12-h orbits, then 8-h from April 2012)
    validation  2013-01-01 .. 2013-06-30   (8-h orbits; checkpoint + post-processing choice)
    test        2013-07-01 .. 2015-04-30   (8-h orbits, never seen before the weights froze)

Each orbit is simulated with seed ``SEED_OFFSET[part] + orbit`` so parts never share
noise realisations. Metrics (``evaluate_model``):

* region classification: per-class and macro F1 over valid (non-gap) samples;
* crossings (``extract_crossings`` with the card's defaults): per boundary number,
  signed time error predicted - catalogue (median |error|, 90th percentile |error|,
  seconds) over orbits where both exist; an edge is a hit within ``TOL_S``; missed =
  catalogue edge with no predicted edge of that number within ``TOL_S``; spurious =
  predicted edge with no catalogue edge of that number within ``TOL_S``;
* robustness: the same on the same orbits simulated with data gaps, and split by
  low / high solar-wind dynamic pressure (lower / upper quartile of ``pdyn_npa``);
* Winslow et al. 2013 shapes: ``normalized_distance`` of predicted vs catalogue
  edge positions (1 = on the average surface);
* the sliding-window CNN+LSTM baseline on a (stated) subset of the same orbits.

    python -m epnml.experiments.crossings.evaluate --version 1.0.0
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from epnml.ml.crossings.labels import EDGES, N_REGIONS, REGION_NAMES, region_labels
from epnml.ml.crossings.postprocess import extract_crossings

SPLIT: dict[str, tuple[str, str]] = {
    "train": ("2011-03-01", "2012-12-31"),
    "val": ("2013-01-01", "2013-06-30"),
    "test": ("2013-07-01", "2015-04-30"),
}
SEED_OFFSET = {"train": 0, "val": 100_000, "test": 200_000}
#: a predicted edge within this many seconds of the catalogue edge of the same number is a hit.
TOL_S = 300.0
#: defaults of the CLI (orbits evenly spread over the test period).
N_TEST = 250
N_BASELINE = 60
N_GAPS = 100
SIMULATED_NOTE = ("SIMULATED magnetometer data (epnml.ingest.simulate.messenger) with REAL "
                  "Philpott et al. 2020 catalogue boundary times")
#: optional on-disk cache of simulated orbits (speeds up repeated runs; delete freely).
CACHE_ENV = "EPNML_CROSSINGS_CACHE"
_FRAME_COLS = ("x", "y", "z", "bx", "by", "bz")

Predictor = Callable[[pd.DataFrame], np.ndarray]


# ----------------------------------------------------------------------------- data
def shared_data_dir() -> Path:
    from epnml.config import load_settings

    return load_settings().shared_data


def split_orbits(part: str, n: int | None = None, shared: Path | None = None) -> list[int]:
    """Complete catalogue orbits of one split part; ``n`` evenly spread over the period."""
    from epnml.ml.crossings.catalogue import load_boundaries

    if part not in SPLIT:
        raise ValueError(f"unknown split part {part!r}; known: {sorted(SPLIT)}")
    table = load_boundaries(shared or shared_data_dir())
    lo, hi = (pd.Timestamp(d) for d in SPLIT[part])
    t1 = pd.to_datetime(table["t1"])
    sel = table[table["complete"] & (t1 >= lo) & (t1 < hi + pd.Timedelta(days=1))]
    orbits = sorted(int(o) for o in sel["orbit"])
    if n is not None and n < len(orbits):
        idx = np.unique(np.linspace(0, len(orbits) - 1, n).round().astype(int))
        orbits = [orbits[i] for i in idx]
    return orbits


def _cache_path(orbit: int, seed: int, gaps: bool) -> Path | None:
    root = os.environ.get(CACHE_ENV)
    if not root:
        return None
    return Path(root) / f"orbit{orbit:05d}_seed{seed}_gaps{int(gaps)}.pkl"


def simulate(orbit: int, part: str, *, gaps: bool = False,
             shared: Path | None = None) -> pd.DataFrame:
    """One SIMULATED orbit (1-s MAG, ``region`` truth) for the split part's seed."""
    from epnml.ingest.simulate.messenger import simulate_orbit

    seed = SEED_OFFSET[part] + int(orbit)
    cache = _cache_path(orbit, seed, gaps)
    if cache is not None and cache.is_file():
        return pd.read_pickle(cache)  # noqa: S301 - our own cache, written below
    frame = simulate_orbit(int(orbit), seed, shared=shared or shared_data_dir(), gaps=gaps)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        frame.to_pickle(cache)
    return frame


def truth_labels(frame: pd.DataFrame) -> np.ndarray:
    """Per-sample truth: the simulator's ``region`` column, else labels from attrs edges."""
    if "region" in frame.columns:
        return frame["region"].to_numpy(dtype=np.int64)
    idx = pd.DatetimeIndex(frame.index)
    edges = pd.DatetimeIndex(pd.to_datetime(frame.attrs["edges"], format="ISO8601"))
    edges = edges.as_unit(idx.unit)
    return region_labels(idx, list(edges)).astype(np.int64)


def truth_edges(frame: pd.DataFrame) -> list[pd.Timestamp]:
    return [pd.Timestamp(t) for t in frame.attrs["edges"]]


def valid_mask(frame: pd.DataFrame) -> np.ndarray:
    return np.isfinite(frame[["bx", "by", "bz"]].to_numpy(dtype=np.float64)).all(axis=1)


# ----------------------------------------------------------------------------- metrics
def region_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Per-class and macro F1 (all five classes, absent ones count as 0)."""
    labels = list(range(N_REGIONS))
    per = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0.0)
    return {
        "macro_f1": round(float(np.mean(per)), 4),
        "per_class_f1": {REGION_NAMES[k]: round(float(per[k]), 4) for k in labels},
        "accuracy": round(float(np.mean(y_true == y_pred)), 4),
        "n_samples": int(len(y_true)),
    }


def edge_table(frame: pd.DataFrame, crossings: pd.DataFrame, orbit: int) -> pd.DataFrame:
    """One row per boundary number 1..8: catalogue time, predicted time, error (s), score."""
    truth = truth_edges(frame)
    rows = []
    for k in range(1, 9):
        pred = crossings[crossings["boundary_number"] == k]
        t_true = truth[k - 1]
        if len(pred):
            # a multi-orbit frame could decode one per orbit piece: keep the closest.
            dt = (pd.DatetimeIndex(pred["time"]) - t_true).total_seconds().to_numpy()
            j = int(np.argmin(np.abs(dt)))
            row = pred.iloc[j]
            rows.append({"orbit": orbit, "number": k, "error_s": float(dt[j]),
                         "score": float(row["score"]), "x": float(row["x"]),
                         "y": float(row["y"]), "z": float(row["z"]), "n_pred": len(pred)})
        else:
            rows.append({"orbit": orbit, "number": k, "error_s": np.nan, "score": np.nan,
                         "x": np.nan, "y": np.nan, "z": np.nan, "n_pred": 0})
    return pd.DataFrame(rows)


def crossing_scores(edges: pd.DataFrame) -> dict[str, Any]:
    """Timing error per boundary number (median / p90 of |error|) and missed / spurious."""
    out: dict[str, Any] = {}
    all_hits = 0
    n_true = 0
    n_spur = 0
    for k in range(1, 9):
        e = edges[edges["number"] == k]
        err = e["error_s"].to_numpy(dtype=float)
        found = np.isfinite(err)
        hit = found & (np.abs(np.nan_to_num(err, nan=np.inf)) <= TOL_S)
        extra = (e["n_pred"].to_numpy() - hit.astype(int)).clip(min=0)
        ae = np.abs(err[found])
        out[str(k)] = {
            "boundary": f"{EDGES[k].direction} {EDGES[k].boundary} {EDGES[k].edge}",
            "n_catalogue": int(len(e)),
            "n_predicted": int(e["n_pred"].sum()),
            "median_abs_error_s": round(float(np.median(ae)), 1) if len(ae) else None,
            "p90_abs_error_s": round(float(np.percentile(ae, 90)), 1) if len(ae) else None,
            "median_signed_error_s": round(float(np.median(err[found])), 1) if len(ae) else None,
            "hit_rate_60s": round(float(np.mean(np.abs(np.nan_to_num(err, nan=np.inf)) <= 60)),
                                  4) if len(e) else None,
            "missed": int((~hit).sum()),
            "spurious": int(extra.sum()),
        }
        all_hits += int(hit.sum())
        n_true += int(len(e))
        n_spur += int(extra.sum())
    allerr = np.abs(edges["error_s"].to_numpy(dtype=float))
    allerr = allerr[np.isfinite(allerr)]
    out["all"] = {
        "n_catalogue": n_true,
        "median_abs_error_s": round(float(np.median(allerr)), 1) if len(allerr) else None,
        "p90_abs_error_s": round(float(np.percentile(allerr, 90)), 1) if len(allerr) else None,
        "missed": n_true - all_hits,
        "spurious": n_spur,
        "hit_rate_300s": round(all_hits / n_true, 4) if n_true else None,
    }
    return out


def timing_loss(edges: pd.DataFrame, cap_s: float = 600.0) -> float:
    """Validation objective of the post-processing: mean of min(|error|, cap)/cap, missing = 1."""
    err = np.abs(edges["error_s"].to_numpy(dtype=float))
    extra = (edges["n_pred"].to_numpy() - 1).clip(min=0)
    per = np.where(np.isfinite(err), np.minimum(err, cap_s) / cap_s, 1.0)
    return float((per.sum() + extra.sum()) / max(len(per), 1))


def winslow_agreement(edges: pd.DataFrame, frames_truth_xyz: pd.DataFrame) -> dict[str, Any]:
    """Distribution of Winslow 2013 normalized distance for predicted vs catalogue edges."""
    from epnml.ml.crossings.catalogue import normalized_distance

    def summary(v: np.ndarray) -> dict[str, Any]:
        v = v[np.isfinite(v)]
        if not len(v):
            return {"n": 0}
        q = np.percentile(v, [10, 25, 50, 75, 90])
        return {"n": int(len(v)), "p10": round(float(q[0]), 3), "p25": round(float(q[1]), 3),
                "median": round(float(q[2]), 3), "p75": round(float(q[3]), 3),
                "p90": round(float(q[4]), 3)}

    out: dict[str, Any] = {}
    for boundary, numbers in (("bow shock", (1, 2, 7, 8)), ("magnetopause", (3, 4, 5, 6))):
        p = edges[edges["number"].isin(numbers)]
        c = frames_truth_xyz[frames_truth_xyz["number"].isin(numbers)]
        nd_p = normalized_distance(p["x"].to_numpy(), p["y"].to_numpy(), p["z"].to_numpy(),
                                   boundary)
        nd_c = normalized_distance(c["x"].to_numpy(), c["y"].to_numpy(), c["z"].to_numpy(),
                                   boundary)
        out[boundary] = {"predicted": summary(np.asarray(nd_p, dtype=float)),
                         "catalogue": summary(np.asarray(nd_c, dtype=float))}
    return out


def catalogue_positions(frame: pd.DataFrame, orbit: int) -> pd.DataFrame:
    """Positions (MSO km) of the catalogue edges on the simulated trajectory."""
    idx = pd.DatetimeIndex(frame.index)
    xyz = frame[["x", "y", "z"]].to_numpy(dtype=float)
    rows = []
    for k, t in enumerate(truth_edges(frame), start=1):
        i = min(int(idx.searchsorted(t)), len(idx) - 1)
        rows.append({"orbit": orbit, "number": k, "x": xyz[i, 0], "y": xyz[i, 1],
                     "z": xyz[i, 2]})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- runs
def run_orbits(frames: Sequence[tuple[int, pd.DataFrame]], predict: Predictor,
               postprocess: dict[str, Any]) -> dict[str, Any]:
    """Predict, score regions and crossings; returns raw per-orbit pieces for grouping."""
    y_true, y_pred, tables, truth_pos, seconds = [], [], [], [], []
    for orbit, frame in frames:
        t0 = time.perf_counter()
        proba = predict(frame)
        cr = extract_crossings(frame, proba, **postprocess)
        seconds.append(time.perf_counter() - t0)
        v = valid_mask(frame)
        y_true.append(truth_labels(frame)[v])
        y_pred.append(proba.argmax(axis=1)[v])
        tables.append(edge_table(frame, cr, orbit))
        truth_pos.append(catalogue_positions(frame, orbit))
    return {"y_true": y_true, "y_pred": y_pred, "edges": tables, "truth_pos": truth_pos,
            "seconds": seconds}


def summarise(raw: dict[str, Any], keep: Sequence[int] | None = None,
              winslow: bool = False) -> dict[str, Any]:
    """Metrics over all orbits of ``raw`` (or the positions ``keep``)."""
    ids = range(len(raw["edges"])) if keep is None else keep
    ids = list(ids)
    if not ids:
        return {"n_orbits": 0}
    yt = np.concatenate([raw["y_true"][i] for i in ids])
    yp = np.concatenate([raw["y_pred"][i] for i in ids])
    edges = pd.concat([raw["edges"][i] for i in ids], ignore_index=True)
    out: dict[str, Any] = {"n_orbits": len(ids), "regions": region_scores(yt, yp),
                           "crossings": crossing_scores(edges)}
    if winslow:
        truth = pd.concat([raw["truth_pos"][i] for i in ids], ignore_index=True)
        out["winslow_normalized_distance"] = winslow_agreement(edges, truth)
    out["seconds_per_orbit_median"] = round(float(np.median([raw["seconds"][i] for i in ids])), 3)
    return out


def evaluate_model(version: str | None = None, *, n_test: int = N_TEST,
                   n_baseline: int = N_BASELINE, n_gaps: int = N_GAPS,
                   baseline_version: str | None = "1.0.0",
                   shared: Path | None = None, log: bool = True) -> dict[str, Any]:
    """Every metric of the module docstring on held-out TEST orbits (SIMULATED MAG)."""
    from epnml.ml.crossings.baseline import load_baseline
    from epnml.ml.crossings.baseline import predict_proba as baseline_proba
    from epnml.ml.crossings.inference import load_model, predict_proba

    model = load_model(version)
    pp = model.postprocess()
    orbits = split_orbits("test", n_test, shared)

    def say(msg: str) -> None:
        if log:
            print(msg, file=sys.stderr, flush=True)

    frames = [(o, simulate(o, "test", shared=shared)) for o in orbits]
    say(f"simulated {len(frames)} test orbits")
    raw = run_orbits(frames, lambda f: predict_proba(f, model), pp)
    metrics: dict[str, Any] = {
        "data": SIMULATED_NOTE,
        "split": {k: f"{a}..{b}" for k, (a, b) in SPLIT.items()},
        "test_orbits": {"n": len(orbits), "first": orbits[0], "last": orbits[-1],
                        "selection": f"{len(orbits)} complete catalogue orbits evenly spread "
                                     f"over the test period, seeds {SEED_OFFSET['test']}+orbit"},
        "tolerance_s": TOL_S,
        "postprocess": pp,
        "test": summarise(raw, winslow=True),
    }
    say(json.dumps({"test_macro_f1": metrics["test"]["regions"]["macro_f1"]}))
    pdyn = np.array([float(f.attrs.get("pdyn_npa", np.nan)) for _, f in frames])
    if np.isfinite(pdyn).sum() >= 8:
        q1, q3 = np.nanpercentile(pdyn, [25, 75])
        metrics["by_pdyn"] = {
            "quartiles_npa": [round(float(q1), 2), round(float(q3), 2)],
            "low (<= Q1)": summarise(raw, [i for i, p in enumerate(pdyn) if p <= q1]),
            "high (>= Q3)": summarise(raw, [i for i, p in enumerate(pdyn) if p >= q3]),
        }
    gap_ids = list(range(0, len(frames)))[: n_gaps] if n_gaps else []
    if gap_ids:
        step = max(1, len(frames) // n_gaps)
        gap_ids = list(range(0, len(frames), step))[:n_gaps]
        gframes = [(frames[i][0], simulate(frames[i][0], "test", gaps=True, shared=shared))
                   for i in gap_ids]
        graw = run_orbits(gframes, lambda f: predict_proba(f, model), pp)
        gap_frac = float(np.mean([1.0 - valid_mask(f).mean() for _, f in gframes]))
        metrics["with_gaps"] = {
            "note": "same orbits and seeds simulated with gaps=True; F1 over valid samples; "
                    "edges the decoder would place inside a gap are dropped (count as missed)",
            "mean_gap_fraction": round(gap_frac, 4),
            "with_gaps": summarise(graw),
            "same_orbits_without_gaps": summarise(raw, gap_ids),
        }
        say(json.dumps({"gaps_macro_f1": metrics["with_gaps"]["with_gaps"]["regions"]}))
    if baseline_version and n_baseline:
        try:
            base = load_baseline(baseline_version)
        except FileNotFoundError as exc:
            metrics["baseline"] = {"error": str(exc)}
        else:
            step = max(1, len(frames) // n_baseline)
            b_ids = list(range(0, len(frames), step))[:n_baseline]
            braw = run_orbits([frames[i] for i in b_ids], lambda f: baseline_proba(f, base), pp)
            metrics["baseline"] = {
                "model": f"sliding-window CNN+LSTM, {base.version} (sha256 {base.sha256})",
                "note": "same features, same post-processing defaults; subset of the test "
                        "orbits because one window per sample is slow",
                "baseline": summarise(braw),
                "tcn_same_orbits": summarise(raw, b_ids),
            }
            say(json.dumps({"baseline_macro_f1":
                            metrics["baseline"]["baseline"]["regions"]["macro_f1"]}))
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m epnml.experiments.crossings.evaluate",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", default=None)
    ap.add_argument("--n-test", type=int, default=N_TEST)
    ap.add_argument("--n-baseline", type=int, default=N_BASELINE)
    ap.add_argument("--n-gaps", type=int, default=N_GAPS)
    ap.add_argument("--baseline-version", default="1.0.0")
    ap.add_argument("--results", type=Path, default=None,
                    help="results JSON (default ml/weights/crossings-<version>-results.json)")
    ap.add_argument("--no-card", action="store_true", help="do not write metrics into the card")
    args = ap.parse_args(argv)
    import torch

    from epnml.ml.checkpoints import sha256_file
    from epnml.ml.crossings.inference import WEIGHTS_DIR, load_model

    torch.set_num_threads(2)
    model = load_model(args.version)
    version = model.info.version
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m epnml.experiments.crossings.evaluate " + " ".join(
        shlex.quote(a) for a in argv_list)
    t0 = time.time()
    metrics = evaluate_model(version, n_test=args.n_test, n_baseline=args.n_baseline,
                             n_gaps=args.n_gaps, baseline_version=args.baseline_version)
    metrics["command"] = command
    metrics["evaluation_seconds"] = round(time.time() - t0, 1)
    results = args.results or WEIGHTS_DIR / f"crossings-{version}-results.json"
    results.write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    if not args.no_card:
        card_path = WEIGHTS_DIR / f"crossings-{version}.json"
        card = json.loads(card_path.read_text())
        if card.get("sha256") != sha256_file(card_path.with_suffix(".pt")):
            raise ValueError(f"{card_path}: card does not describe the weights next to it")
        card["metrics"] = metrics
        card_path.write_text(json.dumps(card, indent=2, default=str) + "\n")
    json.dump({k: metrics[k] for k in ("test_orbits", "test") if k in metrics}, sys.stdout,
              indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
