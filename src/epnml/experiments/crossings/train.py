"""Train the crossings TCN (and the sliding-window baseline) on SIMULATED MESSENGER MAG orbits.

    python -m epnml.experiments.crossings.train --version 1.0.0

Data: orbits simulated by ``epnml.ingest.simulate.messenger`` around the REAL Philpott
et al. 2020 boundary times; split BY TIME (``evaluate.SPLIT``): train 2011-03..2012-12,
validation 2013-01..2013-06 (checkpoint choice, post-processing grid), test
2013-07..2015-04 (only ``evaluate`` looks at it, after the weights are frozen). A third
of the training orbits are simulated with data gaps; batches add noise and blanked
spans. Class imbalance (~50-65 % solar wind, 2-4 % layers): inverse-sqrt-frequency
class weights in the cross-entropy. Fully seeded; CPU-deterministic algorithms.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: N812

from epnml.ml.crossings import baseline as bl
from epnml.ml.crossings.features import FEATURES, N_FEATURES, Scaler, raw_features
from epnml.ml.crossings.inference import MODEL_NAME, load_model, predict_array, save_checkpoint
from epnml.ml.crossings.labels import N_REGIONS
from epnml.ml.crossings.model import CrossingsTCN, ModelConfig, count_parameters
from epnml.ml.crossings.postprocess import PostprocessParams, extract_crossings

from .evaluate import (
    SEED_OFFSET,
    SIMULATED_NOTE,
    SPLIT,
    edge_table,
    region_scores,
    simulate,
    split_orbits,
    timing_loss,
    truth_labels,
    valid_mask,
)

#: post-processing grid searched on validation.
GRID: dict[str, tuple[Any, ...]] = {
    "switch_penalty": (4.0, 8.0, 16.0),
    "min_region_s": (10, 30, 90),
    "smooth_s": (1, 5),
}
_VALID = FEATURES.index("valid")
_POSITION = {FEATURES.index(c) for c in ("x_rm", "y_rm", "z_rm", "r_rm", "rho_rm", "sin_lt",
                                         "cos_lt")}
_B_CH = [i for i in range(N_FEATURES) if i not in _POSITION and i != _VALID]


@dataclass(frozen=True)
class TrainConfig:
    n_train: int = 300
    n_val: int = 40
    #: every ``gap_every``-th training orbit is simulated with data gaps.
    gap_every: int = 3
    steps: int = 1200
    batch_size: int = 8
    crop: int = 8192
    lr: float = 3e-3
    weight_decay: float = 1e-4
    #: fraction of crops placed around a catalogue edge (the rest uniform over the orbit).
    edge_fraction: float = 0.7
    noise_std: float = 0.05
    #: probability of blanking one random span (10 s .. 30 min) per crop.
    gap_prob: float = 0.3
    eval_every: int = 150
    baseline_steps: int = 3000
    baseline_batch: int = 256
    baseline_lr: float = 3e-3


@dataclass
class Orbit:
    orbit: int
    x: np.ndarray  # scaled (n, F) float32
    y: np.ndarray  # (n,) int64
    edge_idx: np.ndarray  # sample indices of the eight edges


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def load_part(part: str, orbits: Sequence[int], gap_every: int = 0
              ) -> list[tuple[int, pd.DataFrame]]:
    frames = []
    for k, o in enumerate(orbits):
        gaps = bool(gap_every) and k % gap_every == gap_every - 1
        frames.append((o, simulate(o, part, gaps=gaps)))
    return frames


def to_orbits(frames: Sequence[tuple[int, pd.DataFrame]], raws: Sequence[np.ndarray],
              scaler: Scaler) -> list[Orbit]:
    out = []
    for (o, f), raw in zip(frames, raws, strict=True):
        idx = pd.DatetimeIndex(f.index)
        edges = pd.DatetimeIndex(pd.to_datetime(f.attrs["edges"], format="ISO8601"))
        edges = edges.as_unit(idx.unit)
        e = np.clip(idx.searchsorted(edges), 0, len(idx) - 1)
        out.append(Orbit(o, scaler.transform(raw), truth_labels(f), e))
    return out


class Sampler:
    """Random crops (mostly around edges) with noise and blanked spans."""

    def __init__(self, orbits: list[Orbit], cfg: TrainConfig, rng: np.random.Generator) -> None:
        self.orbits = [o for o in orbits if len(o.y) >= cfg.crop]
        if not self.orbits:
            raise ValueError("no training orbit is as long as one crop")
        self.cfg = cfg
        self.rng = rng

    def centre(self) -> tuple[Orbit, int]:
        o = self.orbits[int(self.rng.integers(len(self.orbits)))]
        n, c = len(o.y), self.cfg.crop
        if self.rng.random() < self.cfg.edge_fraction:
            e = int(o.edge_idx[int(self.rng.integers(8))])
            s = e - int(self.rng.integers(0, c))
        else:
            s = int(self.rng.integers(0, n - c + 1))
        return o, int(np.clip(s, 0, n - c))

    def augment(self, x: np.ndarray) -> np.ndarray:
        rng = self.rng
        valid = x[:, _VALID] > 0.5
        noise = rng.normal(0.0, self.cfg.noise_std, size=(int(valid.sum()), len(_B_CH)))
        x[np.ix_(valid, np.asarray(_B_CH))] += noise.astype(np.float32)
        if rng.random() < self.cfg.gap_prob:
            length = int(np.exp(rng.uniform(np.log(10), np.log(1800))))
            s = int(rng.integers(0, max(1, len(x) - length)))
            x[s : s + length, _B_CH] = 0.0
            x[s : s + length, _VALID] = 0.0
        return x

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for _ in range(self.cfg.batch_size):
            o, s = self.centre()
            xs.append(self.augment(o.x[s : s + self.cfg.crop].copy()).T)
            ys.append(o.y[s : s + self.cfg.crop])
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))

    def window_batch(self, n: int, window: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Baseline batch: ``n`` 30-s windows labelled by their centre sample."""
        xs, ys = [], []
        half = window // 2
        for _ in range(n):
            o, s = self.centre()
            c = s + int(self.rng.integers(half, self.cfg.crop - window + half))
            xs.append(self.augment(o.x[c - half : c - half + window].copy()).T)
            ys.append(o.y[c])
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.asarray(ys))


def class_weights(orbits: Sequence[Orbit]) -> torch.Tensor:
    counts = np.bincount(np.concatenate([o.y for o in orbits]), minlength=N_REGIONS)
    freq = counts / counts.sum()
    w = 1.0 / np.sqrt(np.maximum(freq, 1e-4))
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def val_macro_f1(orbits: Sequence[Orbit], predict: Any) -> float:
    yt, yp = [], []
    for o in orbits:
        v = o.x[:, _VALID] > 0.5
        yt.append(o.y[v])
        yp.append(predict(o.x).argmax(axis=1)[v])
    return float(region_scores(np.concatenate(yt), np.concatenate(yp))["macro_f1"])


def fit_tcn(cfg: TrainConfig, mcfg: ModelConfig, train: list[Orbit], val: list[Orbit],
            seed: int) -> tuple[CrossingsTCN, list[dict[str, Any]]]:
    """Seeded training; the checkpoint with the best validation macro-F1 is kept."""
    seed_everything(seed)
    sampler = Sampler(train, cfg, np.random.default_rng(seed))
    weights = class_weights(train)
    model = CrossingsTCN(mcfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                pct_start=0.1)
    history: list[dict[str, Any]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    losses = []
    t0 = time.time()
    for step in range(1, cfg.steps + 1):
        model.train()
        xb, yb = sampler.batch()
        loss = F.cross_entropy(model(xb), yb, weight=weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % cfg.eval_every == 0 or step == cfg.steps:
            f1 = val_macro_f1(val, lambda x: predict_array(x, model))
            history.append({"step": step, "loss": round(float(np.mean(losses)), 4),
                            "val_macro_f1": round(f1, 4), "seconds": round(time.time() - t0)})
            losses = []
            print(json.dumps(history[-1]), file=sys.stderr, flush=True)
            if best is None or f1 > best[0]:
                best = (f1, {k: v.detach().clone() for k, v in model.state_dict().items()})
    if best is not None:
        model.load_state_dict(best[1])
    return model.eval(), history


def fit_baseline(cfg: TrainConfig, train: list[Orbit], val: list[Orbit], seed: int
                 ) -> tuple[bl.WindowCNNLSTM, list[dict[str, Any]]]:
    """The case's CNN+LSTM on the same orbits, features, augmentations and class weights."""
    seed_everything(seed)
    sampler = Sampler(train, cfg, np.random.default_rng(seed + 1))
    weights = class_weights(train)
    model = bl.WindowCNNLSTM(bl.BaselineConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.baseline_lr,
                            weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.baseline_lr,
                                                total_steps=cfg.baseline_steps, pct_start=0.1)
    history: list[dict[str, Any]] = []
    losses = []
    t0 = time.time()
    for step in range(1, cfg.baseline_steps + 1):
        model.train()
        xb, yb = sampler.window_batch(cfg.baseline_batch, bl.WINDOW_S)
        loss = F.cross_entropy(model(xb), yb, weight=weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 500 == 0 or step == cfg.baseline_steps:
            history.append({"step": step, "loss": round(float(np.mean(losses)), 4),
                            "seconds": round(time.time() - t0)})
            losses = []
            print(json.dumps({"baseline": history[-1]}), file=sys.stderr, flush=True)
    model.eval()
    f1 = val_macro_f1(val[:8], lambda x: bl.predict_array(x, model))
    history.append({"step": cfg.baseline_steps, "val_macro_f1_8_orbits": round(f1, 4)})
    return model, history


def choose_postprocess(frames: Sequence[tuple[int, pd.DataFrame]],
                       probas: Sequence[np.ndarray]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Grid point with the lowest validation timing loss (ties: the earlier grid point)."""
    table = []
    for values in product(*GRID.values()):
        params = PostprocessParams(**dict(zip(GRID, values, strict=True))).to_dict()
        tabs = [edge_table(f, extract_crossings(f, p, **params), o)
                for (o, f), p in zip(frames, probas, strict=True)]
        edges = pd.concat(tabs, ignore_index=True)
        table.append({**{k: params[k] for k in GRID}, "timing_loss": round(timing_loss(edges), 4),
                      "median_abs_error_s": round(float(np.nanmedian(np.abs(edges["error_s"]))),
                                                  1)})
    best = min(table, key=lambda r: r["timing_loss"])
    params = PostprocessParams(**{k: best[k] for k in GRID}).to_dict()
    return params, table


def train(seed: int, out: Path, version: str, cfg: TrainConfig, mcfg: ModelConfig,
          command: str, with_baseline: bool = True) -> dict[str, Any]:
    t_start = time.time()
    torch.set_num_threads(2)
    train_ids = split_orbits("train", cfg.n_train)
    val_ids = split_orbits("val", cfg.n_val)
    train_frames = load_part("train", train_ids, cfg.gap_every)
    val_frames = load_part("val", val_ids)
    print(json.dumps({"train_orbits": len(train_frames), "val_orbits": len(val_frames),
                      "simulate_seconds": round(time.time() - t_start)}), file=sys.stderr,
          flush=True)
    train_raw = [raw_features(f) for _, f in train_frames]
    val_raw = [raw_features(f) for _, f in val_frames]
    scaler = Scaler.fit(train_raw)
    train_orbits = to_orbits(train_frames, train_raw, scaler)
    val_orbits = to_orbits(val_frames, val_raw, scaler)
    del train_raw, val_raw

    model, history = fit_tcn(cfg, mcfg, train_orbits, val_orbits, seed)
    train_seconds = time.time() - t_start
    probas = [predict_array(o.x, model) for o in val_orbits]
    postprocess, grid = choose_postprocess(val_frames, probas)
    print(json.dumps({"postprocess": postprocess}), file=sys.stderr, flush=True)
    yt = np.concatenate([truth_labels(f)[valid_mask(f)] for _, f in val_frames])
    yp = np.concatenate([p.argmax(axis=1)[valid_mask(f)]
                         for (_, f), p in zip(val_frames, probas, strict=True)])

    out.mkdir(parents=True, exist_ok=True)
    pt = out / f"{MODEL_NAME}-{version}.pt"
    config = {"model": mcfg.to_dict(), "postprocess": postprocess, "features": list(FEATURES)}
    digest = save_checkpoint(pt, model, version, config, scaler)
    data = {
        "note": SIMULATED_NOTE,
        "simulator": "epnml.ingest.simulate.messenger.simulate_orbit(orbit, seed, shared=...)",
        "labels": "per-sample region truth of the simulator = labels.region_labels of the "
                  "orbit's eight REAL catalogue edge times (Philpott et al. 2020)",
        "split_by_time_of_edge_1": {k: f"{a}..{b}" for k, (a, b) in SPLIT.items()},
        "train_orbits": {"n": len(train_ids), "first": train_ids[0], "last": train_ids[-1],
                         "with_gaps": sum(1 for k in range(len(train_ids))
                                          if cfg.gap_every and k % cfg.gap_every ==
                                          cfg.gap_every - 1),
                         "seeds": f"{SEED_OFFSET['train']} + orbit"},
        "val_orbits": {"n": len(val_ids), "first": val_ids[0], "last": val_ids[-1],
                       "seeds": f"{SEED_OFFSET['val']} + orbit"},
        "selection": "complete catalogue orbits evenly spread over each period",
    }
    card: dict[str, Any] = {
        "name": MODEL_NAME,
        "version": version,
        "sha256": digest,
        "weights_file": pt.name,
        "size_bytes": pt.stat().st_size,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "seed": seed,
        "torch": torch.__version__,
        "training_seconds": round(train_seconds, 1),
        "n_parameters": count_parameters(model),
        "receptive_field_s": mcfg.receptive_field_s,
        "data": data,
        "hyperparameters": {"train": asdict(cfg), "model": mcfg.to_dict(),
                            "class_weights": [round(float(w), 4)
                                              for w in class_weights(train_orbits)]},
        "scaler": scaler.to_dict(),
        "features": list(FEATURES),
        "postprocess": postprocess,
        "postprocess_grid_on_val": grid,
        "history": history,
        "metrics": {"val": {"data": SIMULATED_NOTE, "n_orbits": len(val_ids),
                            "regions": region_scores(yt, yp)}},
    }
    if with_baseline:
        t_b = time.time()
        base, b_hist = fit_baseline(cfg, train_orbits, val_orbits, seed)
        b_pt = out / f"{bl.BASELINE_NAME}-{version}.pt"
        b_card = {"created": card["created"], "command": command, "seed": seed,
                  "training_seconds": round(time.time() - t_b, 1),
                  "n_parameters": count_parameters(base), "data": data,
                  "hyperparameters": {"steps": cfg.baseline_steps, "batch": cfg.baseline_batch,
                                      "lr": cfg.baseline_lr, "model": base.config.to_dict()},
                  "history": b_hist}
        bl.save_baseline(b_pt, base, version, scaler, b_card)
        size = b_pt.stat().st_size
        if size >= 1_000_000:  # too big to commit: keep only its description
            b_pt.unlink()
            b_pt.with_suffix(".json").unlink()
        card["baseline"] = {"weights_file": b_pt.name if size < 1_000_000 else None,
                            "size_bytes": size, **b_card}
    card_path = pt.with_suffix(".json")
    card_path.write_text(json.dumps(card, indent=2, default=str) + "\n")
    load_model(version, path=out)  # the written weights load through the public path
    return card


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m epnml.experiments.crossings.train",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, default=Path("ml/weights"))
    ap.add_argument("--version", required=True)
    ap.add_argument("--steps", type=int, default=TrainConfig.steps)
    ap.add_argument("--n-train", type=int, default=TrainConfig.n_train)
    ap.add_argument("--n-val", type=int, default=TrainConfig.n_val)
    ap.add_argument("--baseline-steps", type=int, default=TrainConfig.baseline_steps)
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args(argv)
    cfg = TrainConfig(steps=args.steps, n_train=args.n_train, n_val=args.n_val,
                      baseline_steps=args.baseline_steps)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m epnml.experiments.crossings.train " + " ".join(
        shlex.quote(a) for a in argv_list)
    card = train(args.seed, args.out, args.version, cfg, ModelConfig(), command,
                 with_baseline=not args.no_baseline)
    json.dump({k: card.get(k) for k in ("weights_file", "sha256", "size_bytes",
                                        "training_seconds", "postprocess", "metrics")},
              sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
