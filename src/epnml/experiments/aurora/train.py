"""Train the aurora detector on SIMULATED EMUS-like images and commit it (one CPU core).

    OMP_NUM_THREADS=1 python -m epnml.experiments.aurora.train --version 1.0.0

Steps (all seeded by ``--seed``):

1. simulate ``--n-train`` images (none, discrete, diffuse, sinuous in turn;
   epnml.ingest.simulate.aurora) and run the prefilter on each, half with the file's
   geometry and half from the image alone (the PNG-chip path), to get the crops the
   detector sees; 15 % of them are the validation split;
2. train (Adam, cosine schedule, ``--epochs``, flips and quarter turns of the crops) with
   CenterNet's focal loss on the type heatmaps and L1 on size and offset;
3. choose the score threshold on the validation split: the one with the most images right
   (an aurora image found with its type, an image without aurora left empty);
4. evaluate both stages (``epnml.ml.aurora.model.detect``) on ``--n-test`` held-out images of
   another seed, through the FITS path (geometry) and the PNG path (8-bit stretch, no
   geometry): disk found, aurora found, type right, false detections, the prefilter's
   pass rates with and without the ``large_area_px`` rule (the seed's test alone).

Writes ``<out>/aurora-<version>.pt`` and its JSON card (data: SIMULATED only; metrics;
command; training time).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from epnml.ingest.readers.aurora import png_stretch, png_unstretch
from epnml.ingest.simulate.aurora import KINDS, SimulatedImage, simulate_image
from epnml.ml.aurora import AURORA_TYPES
from epnml.ml.aurora.model import (
    INPUT_PX,
    STRIDE,
    WEIGHTS_DIR,
    AuroraDetector,
    DetectorConfig,
    LoadedAuroraModel,
    detect,
    model_input,
    save_checkpoint,
)
from epnml.ml.aurora.prefilter import PrefilterParams, prefilter
from epnml.ml.checkpoints import sha256_file
from epnml.ml.model_info import ModelInfo

GRID = INPUT_PX // STRIDE
#: a detection counts when its centre lies in the true box grown by this many pixels.
MATCH_MARGIN_PX = 10.0


def simulate(n: int, seed: int) -> list[SimulatedImage]:
    rng = np.random.default_rng(seed)
    return [simulate_image(rng, KINDS[k % len(KINDS)]) for k in range(n)]


def crops(sims: list[SimulatedImage], seed: int
          ) -> tuple[np.ndarray, list[tuple[int, tuple[float, float, float, float]] | None]]:
    """Detector inputs (n, 128, 128) and each one's (type index, box in input px)."""
    rng = np.random.default_rng(seed)
    xs: list[np.ndarray] = []
    targets: list[tuple[int, tuple[float, float, float, float]] | None] = []
    for sim in sims:
        geo = sim.geometry if rng.random() < 0.5 else None
        pre = prefilter(sim.brightness, geo)
        if pre.crop is None:
            continue
        xs.append(model_input(sim.brightness, pre))
        if sim.box is None:
            targets.append(None)
            continue
        x0, y0, size = pre.crop
        f = INPUT_PX / size
        b = sim.box
        targets.append((AURORA_TYPES.index(sim.kind),
                        ((b[0] - x0) * f, (b[1] - y0) * f, (b[2] - x0) * f, (b[3] - y0) * f)))
    return np.stack(xs), targets


def _augment(x: np.ndarray, box: tuple[float, float, float, float] | None, k: int,
             flip: bool) -> tuple[np.ndarray, tuple[float, float, float, float] | None]:
    """Quarter turns (counter-clockwise, ``k``) and a left-right flip of a crop and box."""
    n = x.shape[-1]
    if flip:
        x = x[:, ::-1]
        if box is not None:
            box = (n - box[2], box[1], n - box[0], box[3])
    for _ in range(k):
        x = np.rot90(x)
        if box is not None:  # (col, row) -> (row, n - col)
            box = (box[1], n - box[2], box[3], n - box[0])
    return np.ascontiguousarray(x), box


def targets_tensor(targets: list[tuple[int, tuple[float, float, float, float]] | None]
                   ) -> dict[str, torch.Tensor]:
    n = len(targets)
    hm = np.zeros((n, len(AURORA_TYPES), GRID, GRID), np.float32)
    size = np.zeros((n, 2), np.float32)
    off = np.zeros((n, 2), np.float32)
    idx = np.zeros(n, np.int64)
    has = np.zeros(n, np.float32)
    yy, xx = np.mgrid[0:GRID, 0:GRID]
    for i, t in enumerate(targets):
        if t is None:
            continue
        k, (x0, y0, x1, y1) = t
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        ix, iy = min(GRID - 1, max(0, int(cx))), min(GRID - 1, max(0, int(cy)))
        sx = max(0.7, (x1 - x0) / STRIDE / 6)
        sy = max(0.7, (y1 - y0) / STRIDE / 6)
        hm[i, k] = np.maximum(hm[i, k], np.exp(-0.5 * (((xx - ix) / sx) ** 2
                                                       + ((yy - iy) / sy) ** 2)))
        hm[i, k, iy, ix] = 1.0
        size[i] = (math.log(max(x1 - x0, 1.0) / STRIDE), math.log(max(y1 - y0, 1.0) / STRIDE))
        off[i] = (cx - ix, cy - iy)
        idx[i] = iy * GRID + ix
        has[i] = 1.0
    return {"heatmap": torch.from_numpy(hm), "size": torch.from_numpy(size),
            "offset": torch.from_numpy(off), "index": torch.from_numpy(idx),
            "has": torch.from_numpy(has)}


def loss_fn(out: dict[str, torch.Tensor], t: dict[str, torch.Tensor]) -> torch.Tensor:
    p = torch.sigmoid(out["heatmap"]).clamp(1e-4, 1 - 1e-4)
    gt = t["heatmap"]
    pos = gt.eq(1.0).float()
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - p) * p ** 2 * (1 - gt) ** 4 * (1 - pos)).sum()
    n_pos = max(float(pos.sum()), 1.0)
    focal = (pos_loss + neg_loss) / n_pos
    b = out["size"].shape[0]
    gather = t["index"].view(b, 1, 1).expand(b, 2, 1)
    size = out["size"].view(b, 2, -1).gather(2, gather).squeeze(2)
    off = out["offset"].view(b, 2, -1).gather(2, gather).squeeze(2)
    has = t["has"].view(b, 1)
    reg = (F.l1_loss(size * has, t["size"] * has, reduction="sum")
           + F.l1_loss(off * has, t["offset"] * has, reduction="sum")) / max(float(has.sum()), 1)
    return focal + 0.5 * reg


def train(x: np.ndarray, targets: list[Any], epochs: int, seed: int, batch: int = 32
          ) -> AuroraDetector:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = AuroraDetector(DetectorConfig())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-5)
    steps = epochs * math.ceil(len(x) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(x))
        total = 0.0
        for s in range(0, len(x), batch):
            ids = order[s:s + batch]
            xb, tb = [], []
            for i in ids:
                t = targets[i]
                xi, box = _augment(x[i], None if t is None else t[1], int(rng.integers(4)),
                                   bool(rng.random() < 0.5))
                xb.append(xi)
                tb.append(None if t is None or box is None else (t[0], box))
            out = model(torch.from_numpy(np.stack(xb))[:, None])
            loss = loss_fn(out, targets_tensor(tb))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(ids)
        print(f"epoch {epoch + 1}/{epochs} loss {total / len(x):.4f}", file=sys.stderr)
    model.eval()
    return model


def _matches(det_centre: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    m = MATCH_MARGIN_PX
    return (box[0] - m <= det_centre[0] <= box[2] + m) and (box[1] - m <= det_centre[1]
                                                            <= box[3] + m)


def evaluate(sims: list[SimulatedImage], model: LoadedAuroraModel, threshold: float,
             png: bool) -> dict[str, Any]:
    """Both stages on held-out images: counts per kind (FITS path, or PNG path)."""
    per: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    pre_seed = Counter[str]()
    for sim in sims:
        b = png_unstretch(png_stretch(sim.brightness)) if png else sim.brightness
        geo = None if png else sim.geometry
        pre, dets = detect(b, geo, model, threshold)
        c = per[sim.kind]
        c["images"] += 1
        truth = sim.geometry
        if pre.disk is not None and math.hypot(pre.disk[0] - truth.cx, pre.disk[1] - truth.cy) \
                <= 0.1 * truth.disk_radius_px:
            c["disk_found"] += 1
        c["prefilter_pass"] += int(pre.candidate)
        seed_rule = prefilter(b, geo, PrefilterParams(large_area_px=0)).candidate
        pre_seed[sim.kind] += int(seed_rule)
        c["with_detection"] += int(bool(dets))
        if sim.box is not None:
            hits = [d for d in dets if _matches(d.centre, sim.box)]
            c["found"] += int(bool(hits))
            c["type_right"] += int(bool(hits) and hits[0].aurora_type == sim.kind)
            c["extra_detections"] += len(dets) - min(1, len(hits))
        else:
            c["extra_detections"] += len(dets)
    aur = [k for k in KINDS if k != "none"]
    n_aur = sum(per[k]["images"] for k in aur)
    return {
        "path": "PNG chips (8-bit stretch, no geometry)" if png else "FITS (with geometry)",
        "images": len(sims),
        "disk_found": sum(per[k]["disk_found"] for k in KINDS) / len(sims),
        "aurora_found": sum(per[k]["found"] for k in aur) / n_aur,
        "aurora_found_type_right": sum(per[k]["type_right"] for k in aur) / n_aur,
        "false_detection_images_without_aurora":
            per["none"]["with_detection"] / max(per["none"]["images"], 1),
        "prefilter_pass": {k: per[k]["prefilter_pass"] / max(per[k]["images"], 1)
                           for k in KINDS},
        "prefilter_pass_seed_rule_only": {k: pre_seed[k] / max(per[k]["images"], 1)
                                          for k in KINDS},
        "per_kind": {k: dict(per[k]) for k in KINDS},
    }


def choose_threshold(sims: list[SimulatedImage], model: LoadedAuroraModel) -> float:
    best, best_right = 0.3, -1
    for thr in (0.15, 0.2, 0.25, 0.3, 0.4, 0.5):
        right = 0
        for sim in sims:
            _, dets = detect(sim.brightness, sim.geometry, model, thr)
            if sim.box is None:
                right += int(not dets)
            else:
                right += int(bool(dets) and _matches(dets[0].centre, sim.box)
                             and dets[0].aurora_type == sim.kind)
        if right > best_right:
            best, best_right = thr, right
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--n-train", type=int, default=800)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=16)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0, cpu0 = time.perf_counter(), time.process_time()
    sims = simulate(args.n_train, args.seed)
    n_val = int(0.15 * len(sims))
    val_sims, train_sims = sims[:n_val], sims[n_val:]
    x, targets = crops(train_sims, args.seed + 1)
    t_data = time.perf_counter() - t0
    module = train(x, targets, args.epochs, args.seed)
    t_train = time.perf_counter() - t0 - t_data
    loaded = LoadedAuroraModel(module, ModelInfo("aurora", args.version, ""), {})
    threshold = choose_threshold(val_sims, loaded)
    test = simulate(args.n_test, args.seed + 1000)
    metrics = {"fits": evaluate(test, loaded, threshold, png=False),
               "png": evaluate(test, loaded, threshold, png=True)}
    seconds = time.perf_counter() - t0
    config = {"threshold": threshold, "input_px": INPUT_PX, "stride": STRIDE,
              "prefilter": asdict(PrefilterParams())}
    args.out.mkdir(parents=True, exist_ok=True)
    pt = args.out / f"aurora-{args.version}.pt"
    digest = save_checkpoint(pt, module, args.version, config)
    command = ("OMP_NUM_THREADS=1 python -m epnml.experiments.aurora.train --version "
               f"{args.version} --seed {args.seed} --n-train {args.n_train} --n-test "
               f"{args.n_test} --epochs {args.epochs}")
    card = {
        "name": "aurora", "version": args.version, "sha256": digest,
        "task": "detection of aurora (discrete, diffuse, sinuous) on the night side of "
                "Mars in FUV disk images: scipy prefilter, then a CenterNet-style detector",
        "data": {"source": "SIMULATED only: epnml.ingest.simulate.aurora (EMUS-like OI "
                           "130.4 nm disk images); no EMUS image was available",
                 "train_images": len(train_sims), "validation_images": n_val,
                 "test_images": args.n_test, "train_seed": args.seed,
                 "test_seed": args.seed + 1000, "labels": "the simulator's truth boxes"},
        "model": {**module.config.to_dict(),
                  "parameters": sum(p.numel() for p in module.parameters())},
        "inference": {"threshold": threshold},
        "metrics": {"measured_on": "SIMULATED held-out images only", **metrics},
        "command": command,
        "training": {"seconds": round(seconds, 1),
                     "cpu_seconds": round(time.process_time() - cpu0, 1),
                     "simulate_s": round(t_data, 1),
                     "fit_s": round(t_train, 1), "threads": 1,
                     "machine": platform.platform(), "python": platform.python_version(),
                     "torch": torch.__version__},
    }
    pt.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    if sha256_file(pt) != digest:
        raise RuntimeError(f"{pt}: written file does not match its digest")
    print(json.dumps(card["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
