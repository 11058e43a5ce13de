"""Fit the meteor light-curve classes on the REAL Armagh records (no labels) and commit them.

    python -m epnml.experiments.meteors.train \
        --data ../shared/data/meteors/armagh_meteors_2011_2015.csv.gz \
        --version 1.0.0

Steps (seeded, ``--seed``):

1. read every valid record (epnml.ingest.readers.meteors), compute the features at
   ``frame_rate_hz`` and transform the shape features (epnml.ml.meteors.model.transform);
2. standardise, then k-means (scikit-learn, ``n_init`` 10) for every k in ``--k-range``;
3. CRITERION for k: the LARGEST k whose bootstrap stability (mean adjusted Rand index
   between the clustering of the whole set and the clusterings fitted on ``--bootstrap``
   resamples with replacement, each applied to the whole set) is >= ``--min-ari`` and whose
   silhouette (on a seeded sample of 4000) is within 10 % of the best k's. Why: the light
   curves form a continuum (silhouettes about 0.2), where the silhouette alone picks the
   coarsest split (early vs late peak); the finest partition that is still reproducible
   is the useful one;
4. name each cluster physically from its centroid (model.physical_class);
5. measure, without labels: the class agreement of double-station pairs (the same meteor
   seen by two cameras should have the same light-curve shape) against the agreement
   expected by chance from the class frequencies.

Writes ``<out>/meteors-<version>.pt`` and its JSON card (sha256, criterion, every k's
silhouette and stability, centroids in feature units, the measurements).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from epnml.ingest.readers.meteors import FIELD_RATE_HZ, read_meteors_csv
from epnml.ml.meteors.features import FEATURES, SHAPE_FEATURES, features_frame
from epnml.ml.meteors.model import (
    EARLY_T,
    FLARING_MAG,
    LATE_T,
    WEIGHTS_DIR,
    ClassifierConfig,
    MeteorClassifier,
    physical_class,
    save_checkpoint,
    transform,
    untransform_centroid,
)
from epnml.ml.meteors.pairing import pair_meteors

#: the real records under the shared-data setting (EPNML_SHARED_DATA).
DATA_NAME = "meteors/armagh_meteors_2011_2015.csv.gz"


def _kmeans(z: np.ndarray, k: int, seed: int, n_init: int = 10) -> Any:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(z)


def choose_k(z: np.ndarray, ks: list[int], seed: int, n_boot: int, min_ari: float
             ) -> tuple[int, list[dict[str, Any]]]:
    """The criterion of the module docstring; returns k and every k's measurements."""
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    rng = np.random.default_rng(seed)
    sample = rng.choice(len(z), min(4000, len(z)), replace=False)
    table: list[dict[str, Any]] = []
    for k in ks:
        km = _kmeans(z, k, seed)
        sil = float(silhouette_score(z[sample], km.labels_[sample]))
        aris = []
        for b in range(n_boot):
            idx = rng.integers(0, len(z), len(z))
            kb = _kmeans(z[idx], k, seed + 1 + b, n_init=3)
            aris.append(float(adjusted_rand_score(km.labels_, kb.predict(z))))
        table.append({"k": k, "silhouette": round(sil, 4),
                      "bootstrap_ari_mean": round(float(np.mean(aris)), 4),
                      "bootstrap_ari_min": round(float(np.min(aris)), 4)})
    best = max(r["silhouette"] for r in table)
    ok = [r["k"] for r in table
          if r["bootstrap_ari_mean"] >= min_ari and r["silhouette"] >= 0.9 * best]
    if not ok:
        raise SystemExit("no k meets the criterion; widen --k-range or lower --min-ari")
    return int(max(ok)), table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None,
                    help=f"default: <shared_data>/{DATA_NAME}")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--seed", type=int, default=2015)
    ap.add_argument("--k-range", default="2-8")
    ap.add_argument("--bootstrap", type=int, default=20)
    ap.add_argument("--min-ari", type=float, default=0.9)
    ap.add_argument("--frame-rate-hz", type=float, default=FIELD_RATE_HZ)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    lo, hi = (int(x) for x in args.k_range.split("-"))
    if args.data is None:
        from epnml.config import load_settings

        args.data = load_settings().shared_data / DATA_NAME
    table = read_meteors_csv(args.data)
    feats, dropped = features_frame(table.records, args.frame_rate_hz)
    x = transform(feats)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    z = (x - mean) / scale
    k, per_k = choose_k(z, list(range(lo, hi + 1)), args.seed, args.bootstrap, args.min_ari)
    km = _kmeans(z, k, args.seed)
    # clusters ordered by relative peak time, so numbering is stable and readable
    order = np.argsort(km.cluster_centers_[:, 0] * scale[0] + mean[0], kind="stable")
    centroids = km.cluster_centers_[order]
    in_units = [untransform_centroid(c * scale + mean) for c in centroids]
    names = [physical_class(c) for c in in_units]
    module = MeteorClassifier(ClassifierConfig(k, list(SHAPE_FEATURES), names))
    module.mean.copy_(torch.from_numpy(mean))
    module.scale.copy_(torch.from_numpy(scale))
    module.centroids.copy_(torch.from_numpy(centroids))
    with torch.no_grad():
        cluster, score = module(torch.from_numpy(x))
    cl = cluster.numpy()
    classes = np.array([names[i] for i in cl])
    # double-station agreement (no labels: the same meteor should get the same shape)
    valid = [table.records[i] for i in feats.index]
    partner = pair_meteors([r.start for r in valid], [r.camera for r in valid])
    pairs = [(i, j) for i, j in enumerate(partner) if j is not None and i < j]
    agree = float(np.mean([classes[i] == classes[j] for i, j in pairs])) if pairs else None
    freq = Counter(classes.tolist())
    chance = float(sum((n / len(classes)) ** 2 for n in freq.values()))
    agree_cluster = float(np.mean([cl[i] == cl[j] for i, j in pairs])) if pairs else None
    chance_cluster = float(sum((n / len(cl)) ** 2 for n in np.bincount(cl)))
    args.out.mkdir(parents=True, exist_ok=True)
    pt = args.out / f"meteors-{args.version}.pt"
    config = {"frame_rate_hz": args.frame_rate_hz, "seed": args.seed}
    digest = save_checkpoint(pt, module, args.version, config)
    card = {
        "name": "meteors", "version": args.version, "sha256": digest,
        "task": "unsupervised classification of meteor light curves (nearest centroid "
                "after k-means on shape features) and double-station pairing",
        "data": {"source": "REAL: Armagh/Bangor meteor network, 4 cameras, 2011-2015 "
                 "(epn-ml/Meteor-Trajectories, no licence stated: not redistributed)",
                 "file": args.data.name, "records_read": len(table.records) + sum(
                     table.invalid.values()),
                 "records_left_out": {**table.invalid, **dropped},
                 "records_used": len(feats), "labels": "none"},
        "features": {"all": list(FEATURES), "clustered": list(SHAPE_FEATURES),
                     "frame_rate_hz": args.frame_rate_hz,
                     "transform": "skewness clipped +-3, slopes sign*log1p|x|, flare log1p; "
                                  "standardised"},
        "criterion": {"rule": "largest k with mean bootstrap ARI >= min_ari and silhouette "
                              ">= 0.9 x best silhouette",
                      "k_range": [lo, hi], "bootstrap": args.bootstrap,
                      "min_ari": args.min_ari, "per_k": per_k, "chosen_k": k},
        "classes": {
            "rule": f"flare_amp >= {FLARING_MAG} mag: flaring; else t_peak < {EARLY_T}: "
                    f"early-peaked; t_peak > {LATE_T}: late-peaked; else symmetric",
            "clusters": [{"cluster": i, "class": names[i], "n": int((cl == i).sum()),
                          "centroid": {k2: round(v, 3) for k2, v in in_units[i].items()}}
                         for i in range(k)],
        },
        "metrics": {
            "measured_on": "REAL records (all valid ones; unsupervised: no held-out labels)",
            "class_counts": dict(sorted(freq.items())),
            "membership_score_median": round(float(np.median(score.numpy())), 4),
            "double_station_pairs": len(pairs),
            "pair_class_agreement": None if agree is None else round(agree, 4),
            "pair_class_agreement_by_chance": round(chance, 4),
            "pair_cluster_agreement": None if agree_cluster is None else round(
                agree_cluster, 4),
            "pair_cluster_agreement_by_chance": round(chance_cluster, 4),
        },
        "command": f"python -m epnml.experiments.meteors.train --data {args.data.name} "
                   f"--version {args.version} --seed {args.seed}",
        "torch": torch.__version__,
    }
    pt.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps({"k": k, "per_k": per_k, "metrics": card["metrics"],
                      "clusters": card["classes"]["clusters"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
