"""Does one more labelled CTX tile help the crater network on a tile it never saw?

    python -m epnml.experiments.craters.datasize --out ml/weights/craters-datasize-trial.json

Why: 2.3.0 is trained on 4 of the 8 CTX tiles; 2 choose checkpoints and recipes, 2 are the
test. A refit on the 6 non-test tiles (+50 % labelled craters) is the usual last step once
every choice is made, but it cannot be validated afterwards (no tile is left but the
test). This experiment measures, on the validation tiles only, whether adding a tile helps
on the other one. Three continuations of 2.3.0's ctx network, with 2.3.0's own
hyper-parameters, the last step kept (no selection), the same seed:

* ``control``: the training tiles A, E, G, H; scored on B and J;
* ``plus_B``: A, E, G, H and B; scored on J;
* ``plus_J``: A, E, G, H and J; scored on B.

Each is scored with 2.3.0's test-time recipe and threshold, which the refit would keep.
Rule (fixed before the run): the refit is made only if the pooled F1 of ``plus_B`` on J and
``plus_J`` on B exceeds the control's pooled F1 on B and J by at least 0.01. The test
tiles are never read here.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from .evaluate import MIN_SCORE, PIXEL_M, TRAIN_TILES, VAL_TILES, load_tile, prf, scores_at

BASE = "2.3.0"
#: 2.3.0's training hyper-parameters (its card), kept so that only the data differ
STEPS, LR, CROP, MIN_SCALE, SEED = 400, 2.5e-4, 256, 0.35, 2026
MARGIN = 0.01
ARMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "control": (TRAIN_TILES, VAL_TILES),
    "plus_B": ((*TRAIN_TILES, "MC11E-B"), ("MC11E-J",)),
    "plus_J": ((*TRAIN_TILES, "MC11E-J"), ("MC11E-B",)),
}


def run_arm(name: str, steps: int, threads: int) -> dict[str, Any]:
    """Train one arm from the base's ctx network and score its held-out tiles."""
    import torch

    from epnml.ml.craters.inference import detect_band, load_model

    from .train import SCALE_JITTER, initial_network, train

    torch.set_num_threads(threads)
    train_names, held_out = ARMS[name]
    base = load_model(BASE)
    use = base.choose(PIXEL_M)
    init, _ = initial_network(BASE)
    module, log = train([load_tile(n) for n in train_names], [], steps, SEED,
                        init=copy.deepcopy(init), lr=LR, eval_every=steps,
                        jitter=(MIN_SCALE, SCALE_JITTER[1]), crop=CROP,
                        threshold=float(use.threshold))
    per_tile = {}
    for n in held_out:
        tile = load_tile(n)
        found = detect_band(tile.pixels, replace(use, module=module), min_score=MIN_SCORE)
        per_tile[n] = scores_at([tile], [found], float(use.threshold))
    return {"train": list(train_names), "held_out": list(held_out),
            "train_seconds": log["train_seconds"], "per_tile": per_tile}


def pooled(parts: Sequence[dict[str, Any]]) -> dict[str, float]:
    tp = sum(p["tp"] for p in parts)
    return prf(tp, sum(p["n_pred"] for p in parts), sum(p["n_ref"] for p in parts))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="does one more CTX tile help on an unseen one?")
    ap.add_argument("--out", type=Path, required=True, help="JSON record to write")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--workers", type=int, default=2, help="arms trained at once (1 thread each)")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.workers < 1:
        ap.error("--steps and --workers must be >= 1")
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=args.workers,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: pool.submit(run_arm, name, args.steps, 1) for name in ARMS}
        arms = {name: f.result() for name, f in futures.items()}
    control = pooled(list(arms["control"]["per_tile"].values()))
    added = pooled([arms["plus_B"]["per_tile"]["MC11E-J"],
                    arms["plus_J"]["per_tile"]["MC11E-B"]])
    refit = added["f1"] >= control["f1"] + MARGIN
    record = {
        "question": "does one more labelled CTX tile raise F1 on a tile never trained on?",
        "base": BASE, "steps": args.steps, "lr": LR, "crop": CROP, "min_scale": MIN_SCALE,
        "seed": SEED, "selection": "last step (no selection)",
        "scored_with": f"craters {BASE}'s ctx recipe and threshold", "arms": arms,
        "control_pooled_B_J": control, "added_tile_pooled_J_B": added,
        "rule": f"refit on the 6 non-test tiles only if added F1 >= control F1 + {MARGIN}",
        "refit": refit, "test_tiles_read": False, "seconds": round(time.time() - t0, 1),
        "command": "python -m epnml.experiments.craters.datasize --out "
                   f"{args.out}" + (f" --steps {args.steps}" if args.steps != STEPS else ""),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({"control": control, "added": added, "refit": refit}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
