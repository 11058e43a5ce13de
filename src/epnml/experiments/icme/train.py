"""Train the ICME segmenter and write ``ml/weights/icme-<version>.{pt,json}``.

    python -m epnml.experiments.icme.train --seed 42 --out ml/weights --version 1.0.0

Split (see ``evaluate.SPLIT``): train on STEREO-A 2019-01-01..08-31 and Wind
2019-01-01..06-30; choose post-processing (threshold, minimum duration) on the
held-out STEREO-A 2019-09-01..12-31 and Wind 2019-07-01..08-31; report the
test on Wind 2019-09-01..12-31, which nothing in here looks at before the
weights are frozen. Fully seeded; CPU-deterministic algorithms.
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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: N812
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from epnml.ml.icme.features import DEFAULT_SCALER, FEATURES, Scaler, frame_to_array
from epnml.ml.icme.inference import MODEL_NAME, WINDOW, load_model, predict_array, save_checkpoint
from epnml.ml.icme.model import ICMESegmenter, ModelConfig, count_parameters

from .evaluate import (
    DATA_FILES,
    ICMECAT_FILE,
    SPACECRAFT_NAMES,
    SPLIT,
    Segment,
    evaluate_model,
    load_split,
    pixel_scores,
    score_segments,
    shared_data_dir,
)

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
MIN_DURATIONS_H = (2.0, 4.0, 6.0, 8.0)
MERGE_GAP_H = 2.0
#: fixed event rule for the per-10-epoch validation log (monitoring only).
MONITOR_POSTPROCESS: dict[str, Any] = {
    "threshold": 0.5,
    "min_duration": pd.Timedelta(hours=4),
    "merge_gap": pd.Timedelta(hours=MERGE_GAP_H),
}
_BX, _BY, _BZ = (FEATURES.index(c) for c in ("bx", "by", "bz"))


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    steps_per_epoch: int = 8
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    #: fraction of REAL crops forced to contain ICME samples (ICMEs are ~4 % of 2019).
    positive_fraction: float = 0.5
    dice_weight: float = 1.0
    noise_std: float = 0.05
    #: probability of blanking a random span (teaches the net about data gaps).
    gap_prob: float = 0.3
    #: crops are resampled by a random factor in [1/max_stretch, max_stretch] (ICME sizes vary).
    max_stretch: float = 1.4
    #: std of a random per-channel offset in scaled units (solar-cycle / distance changes).
    offset_std: float = 0.2
    #: number of SIMULATED ICMEs injected into real quiet training wind (0 = none).
    simulated_icmes: int = 600
    #: fraction of crops taken from the simulated pool when there is one.
    simulated_fraction: float = 0.7
    #: fraction of simulated ICMEs whose parameters are one real ICMECAT event (the
    #: rest use the simulator's built-in fits with textbook-cold magnetic obstacles).
    simulated_catalogue_fraction: float = 1.0
    #: exponential moving average of the weights (0 = off). Tried against the noisy
    #: epoch-to-epoch swings; with OneCycle and averaged BN buffers it was markedly
    #: more conservative on validation, so it is off.
    ema_decay: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


class CropSampler:
    """Random 1024-sample crops: real (half around ICMEs) and optionally simulated."""

    def __init__(
        self,
        arrays: list[tuple[np.ndarray, np.ndarray]],
        cfg: TrainConfig,
        rng: np.random.Generator,
        simulated: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        span = int(np.ceil(WINDOW * max(cfg.max_stretch, 1.0))) + 1
        self.span = span
        self.arrays = [(x, y) for x, y in arrays if x.shape[1] >= span]
        if not self.arrays:
            raise ValueError("no training segment is as long as one (stretched) window")
        self.sim = [(x, y) for x, y in (simulated or []) if x.shape[1] >= span]
        self.cfg = cfg
        self.rng = rng
        lengths = np.array([x.shape[1] for x, _ in self.arrays], dtype=float)
        self.seg_p = lengths / lengths.sum()
        self.pos = [np.flatnonzero(y > 0.5) for _, y in self.arrays]
        npos = np.array([len(p) for p in self.pos], dtype=float)
        self.pos_p = npos / npos.sum() if npos.sum() else None

    def _pick(self) -> tuple[np.ndarray, np.ndarray, int | None]:
        rng = self.rng
        if self.sim and rng.random() < self.cfg.simulated_fraction:
            x, y = self.sim[int(rng.integers(len(self.sim)))]
            pos = np.flatnonzero(y > 0.5)
            return x, y, int(rng.choice(pos)) if len(pos) else None
        if self.pos_p is not None and rng.random() < self.cfg.positive_fraction:
            k = int(rng.choice(len(self.arrays), p=self.pos_p))
            return self.arrays[k][0], self.arrays[k][1], int(rng.choice(self.pos[k]))
        k = int(rng.choice(len(self.arrays), p=self.seg_p))
        return self.arrays[k][0], self.arrays[k][1], None

    def crop(self) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        x, y, centre = self._pick()
        f = 1.0
        if self.cfg.max_stretch > 1.0:
            f = float(np.exp(rng.uniform(-1.0, 1.0) * np.log(self.cfg.max_stretch)))
        length = min(int(round(WINDOW * f)), x.shape[1])
        if centre is None:
            s = int(rng.integers(0, x.shape[1] - length + 1))
        else:
            lo = max(0, centre - length + 1)
            hi = min(x.shape[1] - length, centre)
            s = int(rng.integers(lo, hi + 1))
        xc = x[:, s : s + length]
        yc = y[s : s + length]
        if length != WINDOW:
            src = np.linspace(0.0, length - 1.0, WINDOW)
            xi = np.empty((x.shape[0], WINDOW), dtype=np.float32)
            for c in range(x.shape[0]):
                xi[c] = np.interp(src, np.arange(length), xc[c])
            xi[-1] = (xi[-1] > 0.999).astype(np.float32)
            xi[:-1, xi[-1] < 0.5] = 0.0
            yc = (np.interp(src, np.arange(length), yc) > 0.5).astype(np.float32)
            xc = xi
        else:
            xc = xc.copy()
            yc = yc.copy()
        return self.augment(xc), yc

    def augment(self, x: np.ndarray) -> np.ndarray:
        rng = self.rng
        if rng.random() < 0.5:  # opposite IMF sector polarity
            x[[_BX, _BY]] *= -1.0
        if rng.random() < 0.5:  # opposite flux-rope orientation
            x[_BZ] *= -1.0
        valid = x[-1] > 0.5
        nv = int(valid.sum())
        c = x.shape[0] - 1
        shift = np.zeros((c, 1), dtype=np.float32)
        if self.cfg.offset_std > 0:
            shift[:, 0] = rng.normal(0.0, self.cfg.offset_std, size=c)
            shift[[_BX, _BY, _BZ], 0] = 0.0  # B components are signed, keep them centred
        x[:-1, valid] += shift + rng.normal(0.0, self.cfg.noise_std, size=(c, nv))
        if rng.random() < self.cfg.gap_prob:
            n = int(rng.integers(6, 150))
            s = int(rng.integers(0, WINDOW - n))
            x[:, s : s + n] = 0.0
        return x

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = zip(*(self.crop() for _ in range(self.cfg.batch_size)), strict=True)
        xb = torch.from_numpy(np.stack(xs).astype(np.float32))
        return xb, torch.from_numpy(np.stack(ys)[:, None, :]).float()


def loss_fn(logits: torch.Tensor, target: torch.Tensor, dice_weight: float) -> torch.Tensor:
    """BCE for calibrated per-sample probabilities + soft Dice against class imbalance."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    dice = 1.0 - (2.0 * inter + 1.0) / (p.sum() + target.sum() + 1.0)
    return bce + dice_weight * dice


def segment_arrays(
    segments: Sequence[Segment], scaler: Scaler
) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(frame_to_array(s.frame, scaler), s.labels.astype(np.float32)) for s in segments]


def _catalogue_for_simulation(data_dir: Path | None = None) -> pd.DataFrame:
    """ICMECAT v2.3 without the 2019 Wind / STEREO-A events (our val/test ICMEs)."""
    cat = pd.read_csv((data_dir or shared_data_dir()) / ICMECAT_FILE)
    year = pd.to_datetime(cat["icme_start_time"]).dt.year
    held_out = cat["sc_insitu"].isin(["Wind", "STEREO-A"]) & (year == 2019)
    return cat.loc[~held_out].reset_index(drop=True)


def simulated_segments(
    n_icmes: int,
    seed: int,
    quiet: Sequence[Segment],
    catalogue_fraction: float = 0.5,
    data_dir: Path | None = None,
) -> list[Segment]:
    """SIMULATED ICMEs (ingest.simulate.solarwind) injected into REAL quiet training wind.

    Each one sits in its own 2048-sample piece of training-period wind that holds no
    catalogued ICME, so its label is exactly the injected interval. Half the
    ``catalogue_fraction`` of the parameter sets are those of real ICMECAT events
    (warm, weak solar-minimum-like ejecta included), never the 2019 Wind/STEREO-A
    ones; the rest come from the simulator's built-in fits (textbook-cold ejecta).
    """
    from epnml.ingest.simulate.solarwind import ICMEParams, icme_label, inject_icme

    from .evaluate import true_events_from_labels

    rng = np.random.default_rng(seed + 1000)
    catalogue = _catalogue_for_simulation(data_dir)
    piece = 2 * WINDOW
    pieces = [
        (seg, s)
        for seg in quiet
        for s in range(0, len(seg.frame) - piece + 1, WINDOW // 2)
        if not (seg.labels[s : s + piece] > 0.5).any()
    ]
    if not pieces:
        raise ValueError("no quiet training wind to inject simulated ICMEs into")
    out: list[Segment] = []
    for i in range(n_icmes):
        seg, s = pieces[int(rng.integers(len(pieces)))]
        frame = seg.frame.iloc[s : s + piece]
        params = ICMEParams.draw(rng, catalogue if rng.random() < catalogue_fraction else None)
        start = frame.index[int(rng.integers(WINDOW // 4, WINDOW))]
        sim = inject_icme(frame, start, params, rng)
        end = start + pd.Timedelta(hours=params.sheath_hours + params.mo_hours)
        index = pd.DatetimeIndex(sim.index)
        labels = np.asarray(icme_label(index, [(start, end)]), dtype=np.float64)
        out.append(
            Segment(
                name=f"SIMULATED #{i} in {seg.name}",
                spacecraft=seg.spacecraft,
                frame=sim[FEATURES],
                labels=labels,
                true_events=true_events_from_labels(index, labels),
            )
        )
    return out


def choose_postprocess(
    segments: Sequence[Segment], probas: Sequence[np.ndarray]
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Best validation event F1 over the grid; ties -> closest to (0.5, 4 h)."""
    table = []
    for th in THRESHOLDS:
        for md in MIN_DURATIONS_H:
            pp = {
                "threshold": th,
                "min_duration": pd.Timedelta(hours=md),
                "merge_gap": pd.Timedelta(hours=MERGE_GAP_H),
            }
            r = score_segments(segments, probas, pp)["pooled"]
            table.append(
                {
                    "threshold": th,
                    "min_duration_h": md,
                    **{k: r[k] for k in ("tp", "fp", "fn", "f1")},
                }
            )
    best = max(
        table, key=lambda r: (r["f1"], -abs(r["threshold"] - 0.5), -abs(r["min_duration_h"] - 4.0))
    )
    return {
        "threshold": best["threshold"],
        "min_duration_h": best["min_duration_h"],
        "merge_gap_h": MERGE_GAP_H,
    }, table


def fit(
    seed: int,
    cfg: TrainConfig,
    mcfg: ModelConfig,
    train_segs: Sequence[Segment],
    val_segs: Sequence[Segment],
    scaler: Scaler = DEFAULT_SCALER,
) -> tuple[ICMESegmenter, list[dict[str, Any]], int]:
    """Seeded training; validation only monitored (logged), never the test part."""
    torch.set_num_threads(2)
    seed_everything(seed)
    sim_segs: list[Segment] = []
    if cfg.simulated_icmes:
        sim_segs = simulated_segments(
            cfg.simulated_icmes, seed, train_segs, cfg.simulated_catalogue_fraction
        )
    sampler = CropSampler(
        segment_arrays(train_segs, scaler),
        cfg,
        np.random.default_rng(seed),
        simulated=segment_arrays(sim_segs, scaler),
    )
    val_arrays = segment_arrays(val_segs, scaler)
    model = ICMESegmenter(mcfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = cfg.epochs * cfg.steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=total_steps, pct_start=0.1
    )
    ema: AveragedModel | None = None
    if cfg.ema_decay > 0:
        ema = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
        )
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        losses = []
        for _ in range(cfg.steps_per_epoch):
            xb, yb = sampler.batch()
            loss = loss_fn(model(xb), yb, cfg.dice_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            losses.append(loss.item())
        if (epoch + 1) % 10 == 0 or epoch == cfg.epochs - 1:
            current = model if ema is None else _unwrap(ema, mcfg)
            probas = [predict_array(x, current, WINDOW) for x, _ in val_arrays]
            r = score_segments(val_segs, probas, MONITOR_POSTPROCESS)["pooled"]
            pix = pixel_scores(
                np.concatenate(probas), np.concatenate([y for _, y in val_arrays]), 0.5
            )
            history.append(
                {
                    "epoch": epoch + 1,
                    "loss": round(float(np.mean(losses)), 4),
                    "val_pixel_iou": round(pix["iou"], 4),
                    "val_tp": r["tp"],
                    "val_fp": r["fp"],
                    "val_fn": r["fn"],
                }
            )
            print(json.dumps(history[-1]), file=sys.stderr, flush=True)
    final = model if ema is None else _unwrap(ema, mcfg)
    final.eval()
    return final, history, len(sim_segs)


def _unwrap(ema: AveragedModel, mcfg: ModelConfig) -> ICMESegmenter:
    """A plain ICMESegmenter holding the averaged weights and buffers."""
    out = ICMESegmenter(mcfg)
    out.load_state_dict(ema.module.state_dict())
    return out.eval()


def train(
    seed: int, out: Path, version: str, cfg: TrainConfig, mcfg: ModelConfig, command: str
) -> dict[str, Any]:
    t_start = time.time()
    scaler = DEFAULT_SCALER
    train_segs = load_split("train")
    val_segs = load_split("val")
    model, history, n_sim = fit(seed, cfg, mcfg, train_segs, val_segs, scaler)
    train_seconds = time.time() - t_start

    probas = [predict_array(frame_to_array(s.frame, scaler), model, WINDOW) for s in val_segs]
    postprocess, grid = choose_postprocess(val_segs, probas)
    print(json.dumps({"postprocess": postprocess}), file=sys.stderr, flush=True)

    out.mkdir(parents=True, exist_ok=True)
    pt = out / f"{MODEL_NAME}-{version}.pt"
    card_path = pt.with_suffix(".json")
    config = {
        "model": mcfg.to_dict(),
        "window": WINDOW,
        "postprocess": postprocess,
        "features": list(FEATURES),
    }
    digest = save_checkpoint(pt, model, version, config, scaler)
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
        "data": _data_description(n_sim, cfg),
        "split": {
            k: [f"{SPACECRAFT_NAMES[sc]} {a}..{b}" for sc, a, b in v] for k, v in SPLIT.items()
        },
        "labels": "icme column of the 2019 CSVs: 1 inside an ICMECAT v2.0 ICME "
        "(icme_start..mo_end)",
        "hyperparameters": {
            "train": asdict(cfg),
            "model": mcfg.to_dict(),
            "window": WINDOW,
            "scaler": scaler.to_dict(),
        },
        "postprocess": postprocess,
        "postprocess_grid_on_val": grid,
        "history": history,
    }
    card_path.write_text(json.dumps(card, indent=2, default=str) + "\n")
    # metrics come from the weights as written, through the public loader (the CLI's path).
    loaded = load_model(version, path=out)
    metrics = evaluate_model(loaded, ("val", "test"))
    card["metrics"] = {k: v for k, v in metrics.items() if k not in ("model", "postprocess")}
    card_path.write_text(json.dumps(card, indent=2, default=str) + "\n")
    return card


def _data_description(n_sim: int, cfg: TrainConfig) -> dict[str, Any]:
    desc: dict[str, Any] = {
        "files": {SPACECRAFT_NAMES[k]: v for k, v in DATA_FILES.items()},
        "train_real": [f"{SPACECRAFT_NAMES[sc]} {a}..{b} (real)" for sc, a, b in SPLIT["train"]],
        "val_real": [f"{SPACECRAFT_NAMES[sc]} {a}..{b} (real)" for sc, a, b in SPLIT["val"]],
        "test_real": [f"{SPACECRAFT_NAMES[sc]} {a}..{b} (real)" for sc, a, b in SPLIT["test"]],
    }
    if n_sim:
        desc["train_simulated"] = (
            f"{n_sim} SIMULATED ICMEs (epnml.ingest.simulate.solarwind.inject_icme: shock, "
            "sheath, Lundquist flux rope) injected into REAL quiet solar wind of the training "
            "segments (2048-sample pieces without catalogued ICMEs); "
            f"{cfg.simulated_catalogue_fraction:.0%} parameterised by one random ICMECAT v2.3 "
            "event at 0.9-1.1 AU excluding all 2019 Wind/STEREO-A events, the rest by the "
            f"simulator's built-in fits; {cfg.simulated_fraction:.0%} of training crops"
        )
    else:
        desc["train_simulated"] = "none"
    return desc


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["--recipe"] or any(a.startswith("--recipe=") for a in args_in[:1]):
        recipe = args_in[1] if args_in[:1] == ["--recipe"] else args_in[0].split("=", 1)[1]
        rest = args_in[2:] if args_in[:1] == ["--recipe"] else args_in[1:]
        if recipe == "omni2-hourly":
            from .train_omni2 import main as omni2_main

            return omni2_main(rest)
        if recipe == "omni2-hourly-folds":
            from .train_omni2_folds import main as folds_main

            return folds_main(rest)
        raise SystemExit(f"unknown recipe {recipe!r} (known: omni2-hourly, omni2-hourly-folds)")
    ap = argparse.ArgumentParser(
        prog="python -m epnml.experiments.icme.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, default=Path("ml/weights"))
    ap.add_argument("--version", required=True)
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument(
        "--simulated-icmes",
        type=int,
        default=TrainConfig.simulated_icmes,
        help="number of simulated ICMEs injected into real quiet training wind",
    )
    ap.add_argument("--base-width", type=int, default=ModelConfig.base_width)
    ap.add_argument("--depth", type=int, default=ModelConfig.depth)
    args = ap.parse_args(argv)
    cfg = TrainConfig(epochs=args.epochs, simulated_icmes=args.simulated_icmes)
    mcfg = ModelConfig(base_width=args.base_width, depth=args.depth)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m epnml.experiments.icme.train " + " ".join(
        shlex.quote(a) for a in argv_list)
    card = train(args.seed, args.out, args.version, cfg, mcfg, command)
    json.dump(
        {
            "weights": str(args.out / card["weights_file"]),
            "sha256": card["sha256"],
            "size_bytes": card["size_bytes"],
            "training_seconds": card["training_seconds"],
            "postprocess": card["postprocess"],
            "metrics": card["metrics"],
        },
        sys.stdout,
        indent=2,
        default=str,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
