"""Train ICME model 3.x: a year-fold ensemble on the 17 non-test hourly OMNI2 years.

    python -m epnml.experiments.icme.train --recipe omni2-hourly-folds --version 3.0.0 \\
        --folds 4 --seed 42 --out /tmp/icme3
    python -m epnml.experiments.icme.train --recipe omni2-hourly --version 3.0.0 \\
        --out ml/weights --final-test      # only when the adoption rule passed

Why: 2.0.0 chose its checkpoint and post-processing on 5 validation years (79 ICMEs) and
never trained on them.  Here the 17 years that are not TEST years are dealt into K folds of
whole years, stratified by solar-cycle phase (:func:`assign_folds`, fixed by ``--fold-seed``
and written to ``folds.json`` before any training).  Each fold network is the 2.0.0 recipe
(:func:`~.train_omni2.fit`: same net, epochs, steps, lr and seed) trained on the other
folds, its checkpoint chosen on its held-out fold.  Each year is then predicted by the
network that never saw it; the post-processing is chosen on these pooled out-of-fold
probabilities (~264 ICMEs) with 2.0.0's grid and selection score.  The released model is
the mean probability of the K networks (:class:`~epnml.ml.icme.model.ICMEEnsemble`).

The adoption rule (:func:`adoption`) is fixed here and applied before any test year is
read.  Fold networks and out-of-fold probabilities are kept in ``--work`` so an
interrupted run resumes.  TEST years never enter this module.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from epnml.ml.icme.features import FEATURES
from epnml.ml.icme.inference import (
    MODEL_NAME,
    WEIGHTS_DIR,
    load_model,
    predict_array,
    save_checkpoint,
)
from epnml.ml.icme.model import EnsembleConfig, ICMEEnsemble, ICMESegmenter, count_parameters

from .evaluate import shared_data_dir
from .train_omni2 import (
    CADENCE,
    MODEL,
    PHASE,
    RULE,
    SCALER,
    SPLIT_YEARS,
    WINDOW,
    _pp,
    _stage_path_scores,
    _year,
    add_schedule_args,
    by_phase,
    choose_postprocess,
    data_description,
    fit_members,
    hour_f1,
    pooled,
    selection_score,
    training_arrays,
    year_scores,
)

#: the years 3.x may train and choose on: all but the TEST years of 2.0.0.
NON_TEST_YEARS: list[int] = sorted(SPLIT_YEARS["train"] + SPLIT_YEARS["val"])
#: the default it must beat (or equal), and the years where it was validated.
BASELINE_VERSION = "2.0.0"
ADOPTION_RULE = (
    "fixed before training, applied before any test year is read: 3.x becomes the default "
    "only if (A) the selection score (mean of event F1, IWF rule, and hour F1) of the pooled "
    "out-of-fold predictions of the 17 non-test years (each year by the single fold network "
    "that never saw it, with the chosen post-processing) is >= 2.0.0's validation selection "
    "score in its card (the best point of its grid: optimistic for 2.0.0), and (B) the "
    "ensemble's selection score on the 5 old validation years 2002/06/09/13/17 is >= 2.0.0's "
    "there, both computed the same way (whole 21-year array, each model's own "
    "post-processing; the ensemble figure is optimistic: 3 of 4 members trained on each of "
    "those years)")


def assign_folds(years: Sequence[int], k: int, seed: int) -> list[list[int]]:
    """Whole years dealt into ``k`` folds, stratified by solar-cycle phase: the years of each
    phase (phases in name order) are shuffled with ``seed`` and dealt round-robin, the deal
    continuing across phases so fold sizes differ by at most one."""
    if not 2 <= k <= len(years):
        raise ValueError(f"folds must be between 2 and {len(years)}, got {k}")
    rng = random.Random(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    i = 0
    for phase in sorted({PHASE[y] for y in years}):
        ys = sorted(y for y in years if PHASE[y] == phase)
        rng.shuffle(ys)
        for y in ys:
            folds[i % k].append(y)
            i += 1
    return [sorted(f) for f in folds]


def _fix_folds(work: Path, folds: list[list[int]], fold_seed: int) -> None:
    """Write the assignment before training; a resumed run must find the same one."""
    path = work / "folds.json"
    rec = {"folds": folds, "fold_seed": fold_seed, "years": NON_TEST_YEARS,
           "phase": {str(y): PHASE[y] for y in NON_TEST_YEARS}}
    if path.is_file():
        old = json.loads(path.read_text())
        if old["folds"] != folds:
            raise ValueError(f"{path}: work directory holds another fold assignment {old['folds']}")
        return
    rec["fixed_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    path.write_text(json.dumps(rec, indent=2) + "\n")


def train_folds(x: np.ndarray, y: np.ndarray, index: pd.DatetimeIndex,
                truth: Sequence[tuple[Any, Any]], folds: list[list[int]], work: Path,
                seed: int, epochs: int, steps: int, batch: int, lr: float,
                gain: float = 0.0, seeds: int = 1,
                ) -> tuple[list[ICMESegmenter | ICMEEnsemble], list[dict[str, Any]]]:
    """One network per fold (trained on the other folds, checkpoint chosen on its own), or
    with ``seeds`` > 1 the mean of that many (seeds ``seed``...; 2.2.0's recipe); ``gain``
    as :func:`~.train_omni2.fit`. A fold already in ``work`` is loaded, not retrained."""
    models: list[ICMESegmenter | ICMEEnsemble] = []
    logs = []
    for i, held in enumerate(folds):
        pt, log = work / f"fold{i}.pt", work / f"fold{i}.json"
        model: ICMESegmenter | ICMEEnsemble = (
            ICMESegmenter(MODEL) if seeds == 1 else ICMEEnsemble(EnsembleConfig(seeds, MODEL)))
        if pt.is_file() and log.is_file():
            model.load_state_dict(torch.load(pt, map_location="cpu", weights_only=True))
            model.eval()
            rec = json.loads(log.read_text())
        else:
            t0 = time.time()
            train_years = [yr for j, f in enumerate(folds) if j != i for yr in f]
            print(json.dumps({"fold": i, "held_out": held, "train": train_years}),
                  file=sys.stderr, flush=True)
            model, history = fit_members(x, y, index, truth, seed, seeds, epochs, steps,
                                         batch, lr, gain=gain, train_years=train_years,
                                         val_years=held)
            rec = {"fold": i, "held_out": held, "train_years": train_years,
                   "seconds": round(time.time() - t0, 1), "history": history}
            torch.save(model.state_dict(), pt)
            log.write_text(json.dumps(rec, indent=2) + "\n")
        models.append(model)
        logs.append(rec)
    return models, logs


def out_of_fold(x: np.ndarray, index: pd.DatetimeIndex,
                models: Sequence[ICMESegmenter | ICMEEnsemble],
                folds: list[list[int]]) -> np.ndarray:
    """Each non-test year's probabilities from the fold network that never saw it (0 in the
    test years, which are never scored here)."""
    oof = np.zeros(len(index), dtype=np.float64)
    for model, held in zip(models, folds, strict=True):
        m = np.isin(index.year, held)
        oof[m] = predict_array(x, model, WINDOW)[m]
    return oof


def selection_on(index: pd.DatetimeIndex, proba: np.ndarray, y: np.ndarray,
                 truth: Sequence[tuple[Any, Any]], years: Sequence[int], pp: dict[str, Any]
                 ) -> dict[str, Any]:
    """Pooled IWF scores, per phase, hour F1 and the selection score of one post-processing
    on the given years (the quantity 2.0.0's grid maximised)."""
    per = year_scores(index, proba, truth, years, pp, CADENCE)
    tot = pooled(per)
    hf1 = hour_f1(index, proba, y, years, float(pp["threshold"]))
    return {"pooled": {k: v for k, v in tot.items()}, "hour_f1": round(hf1, 3),
            "selection": selection_score(tot["f1"], hf1), "by_phase": by_phase(per),
            "per_year": {yr: {k: per[yr][k] for k in ("tp", "fp", "fn", "n_true", "n_pred")}
                         for yr in years}}


def baseline_val_selection(weights_dir: Path = WEIGHTS_DIR) -> float:
    """2.0.0's validation selection score as its card records it (best grid point)."""
    card = json.loads((weights_dir / f"{MODEL_NAME}-{BASELINE_VERSION}.json").read_text())
    best = max(card["postprocess_grid_on_val"], key=lambda g: (g["selection"], g["precision"]))
    return float(best["selection"])


def adoption(oof_selection: float, baseline_card_selection: float,
             ens_val_selection: float, baseline_val_selection_now: float) -> dict[str, Any]:
    """:data:`ADOPTION_RULE` applied to the measured figures."""
    a = oof_selection >= baseline_card_selection
    b = ens_val_selection >= baseline_val_selection_now
    return {"rule": ADOPTION_RULE,
            "A_oof_selection": oof_selection, "A_2.0.0_card_val_selection": baseline_card_selection,
            "A_passed": a,
            "B_ensemble_old_val_selection": ens_val_selection,
            "B_2.0.0_old_val_selection": baseline_val_selection_now, "B_passed": b,
            "adopted": a and b}


def run(seed: int, k: int, fold_seed: int, out: Path, work: Path, version: str, epochs: int,
        steps: int, batch: int, lr: float, command: str) -> dict[str, Any]:
    torch.set_num_threads(2)
    data_dir = shared_data_dir()
    work.mkdir(parents=True, exist_ok=True)
    folds = assign_folds(NON_TEST_YEARS, k, fold_seed)
    _fix_folds(work, folds, fold_seed)
    t_start = time.time()
    frame, index, truth, x, y = training_arrays(data_dir)
    models, logs = train_folds(x, y, index, truth, folds, work, seed, epochs, steps, batch, lr)
    oof = out_of_fold(x, index, models, folds)
    postprocess, grid = choose_postprocess(index, oof, y, truth, NON_TEST_YEARS)
    pp = _pp(postprocess)
    oof_res = selection_on(index, oof, y, truth, NON_TEST_YEARS, pp)
    print(json.dumps({"postprocess": postprocess, "oof": oof_res["pooled"],
                      "oof_selection": oof_res["selection"]}), file=sys.stderr, flush=True)

    singles = [m for m in models if isinstance(m, ICMESegmenter)]
    if len(singles) != len(models):
        raise ValueError("a 3.x fold ensemble is made of single fold networks")
    ensemble = ICMEEnsemble.from_members(singles)
    ensemble.eval()
    out.mkdir(parents=True, exist_ok=True)
    pt = out / f"{MODEL_NAME}-{version}.pt"
    config = {"window": WINDOW, "cadence_min": 60, "postprocess": postprocess,
              "features": list(FEATURES), "folds": folds}
    digest = save_checkpoint(pt, ensemble, version, config, SCALER)

    # rule part B: the 5 old validation years, ensemble vs 2.0.0, computed alike
    val_years = SPLIT_YEARS["val"]
    base = load_model(BASELINE_VERSION)
    ens_val = selection_on(index, predict_array(x, ensemble, WINDOW), y, truth, val_years, pp)
    base_val = selection_on(index, predict_array(x, base.module, WINDOW), y, truth, val_years,
                            base.postprocess())
    card: dict[str, Any] = {
        "name": MODEL_NAME, "version": version, "sha256": digest, "weights_file": pt.name,
        "size_bytes": pt.stat().st_size,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command, "seed": seed, "fold_seed": fold_seed, "torch": torch.__version__,
        "training_seconds": round(time.time() - t_start, 1),
        "fold_training_seconds": [r["seconds"] for r in logs],
        "n_parameters": count_parameters(ensemble), "n_members": k,
        "cadence": "the standard 10-min frame averaged to 1 h (bins labelled at their start); "
                   "each 10-min row takes its hour's probability",
        "data": data_description(len(truth)),
        "folds": {"assignment": folds, "fixed_at": json.loads(
            (work / "folds.json").read_text())["fixed_at"],
                  "years": NON_TEST_YEARS, "test_years_never_read": SPLIT_YEARS["test"]},
        "phase": {str(yr): PHASE[yr] for yr in NON_TEST_YEARS},
        "hyperparameters": {"epochs": epochs, "steps_per_epoch": steps, "batch_size": batch,
                            "lr": lr, "window_h": WINDOW, "model": MODEL.to_dict(),
                            "scaler": SCALER.to_dict(),
                            "checkpoint": "per fold network: epoch with the best selection "
                                          "score on its held-out fold (2.0.0's monitor)",
                            "ensemble": "mean probability of the fold networks"},
        "postprocess": postprocess, "postprocess_grid_on_oof": grid,
        "fold_logs": logs, "rule": RULE,
        "metrics": {"out_of_fold_17_years": oof_res,
                    "old_val_years_optimistic": {version: ens_val, BASELINE_VERSION: base_val}},
    }
    card["adoption"] = adoption(oof_res["selection"], baseline_val_selection(),
                                ens_val["selection"], base_val["selection"])
    pt.with_suffix(".json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    card["metrics"]["old_val_years_stage_path"] = stage_path_val(frame, truth, pt, base)
    pt.with_suffix(".json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    return card


def stage_path_val(frame: pd.DataFrame, truth: Sequence[tuple[Any, Any]], pt: Path,
                   base: Any) -> dict[str, Any]:
    """Pooled P/R/F1 on the old validation years through ``load_model`` + ``predict_proba``
    (one granule per year: the stage's path), for the ensemble and 2.0.0."""
    res: dict[str, Any] = {}
    for model in (load_model(path=pt), base):
        per: dict[int, dict[str, Any]] = {}
        for yr in SPLIT_YEARS["val"]:
            per.update(_stage_path_scores(model, _year(frame, yr), truth, [yr]))
        res[model.info.version] = pooled(per)
    return res


def recipe_out_of_fold(version: str, k: int, fold_seed: int, work: Path, threads: int = 2
                       ) -> dict[str, Any]:
    """The recipe of a committed 2.x version (its card's epochs, steps, batch, lr, seeds,
    gain) retrained on the same year folds as 3.0.0, each non-test year predicted by the
    fold model that never trained on it, scored with that version's OWN post-processing:
    an estimate on ~277 ICMEs of 17 years instead of 79 of 5. Nothing is chosen here and
    the test years are not read. Slightly optimistic: each fold model's checkpoint is chosen
    on its held-out fold, and the post-processing was chosen on 5 of the 17 years."""
    torch.set_num_threads(threads)
    card = json.loads((WEIGHTS_DIR / f"{MODEL_NAME}-{version}.json").read_text())
    hp = card["hyperparameters"]
    seeds = hp.get("seeds", [card["seed"]])
    gain = float(hp.get("gain_augment", 0.0))
    work.mkdir(parents=True, exist_ok=True)
    folds = assign_folds(NON_TEST_YEARS, k, fold_seed)
    _fix_folds(work, folds, fold_seed)
    t_start = time.time()
    _frame, index, truth, x, y = training_arrays(shared_data_dir())
    models, logs = train_folds(x, y, index, truth, folds, work, int(seeds[0]),
                               int(hp["epochs"]), int(hp["steps_per_epoch"]),
                               int(hp["batch_size"]), float(hp["lr"]), gain=gain,
                               seeds=len(seeds))
    oof = out_of_fold(x, index, models, folds)
    res = selection_on(index, oof, y, truth, NON_TEST_YEARS, _pp(card["postprocess"]))
    return {"version": version, "recipe": {"epochs": hp["epochs"], "seeds": seeds,
                                           "gain_augment": gain},
            "postprocess": card["postprocess"], "folds": folds, "fold_seed": fold_seed,
            "test_years_never_read": SPLIT_YEARS["test"], "rule": RULE,
            "seconds": round(time.time() - t_start, 1),
            "fold_seconds": [r["seconds"] for r in logs], "out_of_fold_17_years": res}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m epnml.experiments.icme.train --recipe omni2-hourly-folds",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=42, help="training seed of every fold network")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--fold-seed", type=int, default=42, help="seed of the year-to-fold deal")
    ap.add_argument("--out", type=Path, default=Path("ml/weights"))
    ap.add_argument("--work", type=Path, default=None,
                    help="fold networks and assignment (default: <out>/<name>-<version>-folds)")
    ap.add_argument("--version", default=None, help="version to train (not with --oof-of)")
    ap.add_argument("--oof-of", metavar="VERSION", default=None,
                    help="estimate a committed 2.x version's recipe out of fold on the 17 "
                         "non-test years, with its own post-processing; writes "
                         "<out>/icme-VERSION-oof.json (nothing is chosen, no test year read)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--show-folds", action="store_true",
                    help="print the fold assignment and exit (no data read)")
    add_schedule_args(ap)
    args = ap.parse_args(argv)
    folds = assign_folds(NON_TEST_YEARS, args.folds, args.fold_seed)
    if args.show_folds:
        json.dump({"folds": folds, "phase": [[PHASE[y] for y in f] for f in folds]}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    if args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    if args.oof_of:
        work = args.work or args.out / f"{MODEL_NAME}-{args.oof_of}-oof-folds"
        est = recipe_out_of_fold(args.oof_of, args.folds, args.fold_seed, work, args.threads)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{MODEL_NAME}-{args.oof_of}-oof.json").write_text(
            json.dumps(est, indent=2, default=str) + "\n")
        json.dump({k: est[k] for k in ("version", "recipe", "seconds")}
                  | {"pooled": est["out_of_fold_17_years"]["pooled"],
                     "by_phase": est["out_of_fold_17_years"]["by_phase"]},
                  sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    if not args.version:
        ap.error("--version is required (or --oof-of VERSION)")
    work = args.work or args.out / f"{MODEL_NAME}-{args.version}-folds"
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = ("python -m epnml.experiments.icme.train --recipe omni2-hourly-folds "
               + " ".join(shlex.quote(a) for a in argv_list))
    card = run(args.seed, args.folds, args.fold_seed, args.out, work, args.version,
               args.epochs, args.steps, args.batch, args.lr, command)
    json.dump({"postprocess": card["postprocess"], "adoption": card["adoption"],
               "metrics": {k: v for k, v in card["metrics"].items()
                           if k != "out_of_fold_17_years"},
               "out_of_fold": card["metrics"]["out_of_fold_17_years"]["pooled"]},
              sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
