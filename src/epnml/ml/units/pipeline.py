"""Spectral units: FastICA -> UMAP -> Ward clustering cut at the largest dendrogram gap.

DLR case (D'Amore et al., Zenodo 10.5281/zenodo.7778172): 4 ICA components
(reconstruction error < 0.0015), UMAP, hierarchical agglomerative clustering,
3 clusters from the dendrogram gap.  Unsupervised, so the "model" is its
configuration: its canonical JSON is hashed as the provenance sha256.

Ward linkage needs O(n^2) memory, so above ``max_linkage`` rows the dendrogram is
built on a seeded subsample and every other row takes the label of its nearest
neighbours in the UMAP embedding (documented in the model card).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

MODEL_NAME = "units"
MODEL_VERSION = "1.0.0"
MAX_THREADS = 2


@dataclass(frozen=True)
class UnitsConfig:
    """Every parameter that changes the units (hashed into the provenance sha256)."""

    n_components: int = 4
    ica_max_iter: int = 1000
    umap_neighbors: int = 15
    umap_min_dist: float = 0.0
    umap_components: int = 2
    #: ``umap`` (the DLR method) or ``none``: cluster the standardised ICA sources
    #: directly (fast; used by tests and quick looks, said so in the rows).
    embedding: str = "umap"
    k_min: int = 2
    k_max: int = 8
    #: rows above which Ward runs on a subsample (memory is O(n^2)).
    max_linkage: int = 4000
    #: neighbours used to propagate subsample labels to the other rows.
    assign_neighbors: int = 5
    #: divide each spectrum by its mean so units follow shape more than albedo: off
    #: (the DLR case clusters I/F as measured).
    normalize: bool = False
    seed: int = 42

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UnitsConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown units parameters {sorted(unknown)}")
        return cls(**d)


def config_sha256(cfg: UnitsConfig) -> str:
    """sha256 of the canonical config JSON plus the algorithm version (no trained weights)."""
    doc = {"model": MODEL_NAME, "version": MODEL_VERSION, "config": cfg.to_dict(),
           "steps": ["FastICA", "UMAP", "Ward", "largest-gap"]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass
class UnitsResult:
    """Labels (0-based unit ids ordered by size) and what produced them."""

    labels: np.ndarray
    n_clusters: int
    #: dendrogram gap for each candidate k (k_min..k_max).
    gaps: dict[int, float]
    ica_rmse: float
    ica_mse: float
    sources: np.ndarray
    embedding: np.ndarray
    linkage_rows: int
    config: UnitsConfig = field(default_factory=UnitsConfig)


def _limit_threads() -> None:
    """Keep BLAS/numba on the 2 shared cores (must run before numba first compiles)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(MAX_THREADS))


def _preprocess(x: np.ndarray, cfg: UnitsConfig) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("spectra matrix has NaN/inf: use grid.prepare_matrix first")
    if cfg.normalize:
        x = x / np.maximum(x.mean(axis=1, keepdims=True), 1e-12)
    return x


def fit_ica(x: np.ndarray, n_components: int, seed: int, max_iter: int = 1000
            ) -> tuple[np.ndarray, float, float]:
    """FastICA sources and the reconstruction RMSE/MSE of the input (I/F units)."""
    from sklearn.decomposition import FastICA

    n_components = int(min(n_components, x.shape[0], x.shape[1]))
    ica = FastICA(n_components=n_components, random_state=seed, max_iter=max_iter,
                  whiten="unit-variance", whiten_solver="eigh", tol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on degenerate small sets
        s = ica.fit_transform(x)
    recon = ica.inverse_transform(s)
    mse = float(np.mean((x - recon) ** 2))
    return s, float(np.sqrt(mse)), mse


def ica_error_curve(x: np.ndarray, components: range | list[int] = range(1, 11),
                    seed: int = 42, normalize: bool = False) -> list[dict[str, float]]:
    """Reconstruction error vs number of ICA components (what justifies 4)."""
    xx = _preprocess(x, UnitsConfig(normalize=normalize))
    out = []
    for n in components:
        if n > min(xx.shape):
            break
        _, rmse, mse = fit_ica(xx, n, seed)
        out.append({"n_components": int(n), "rmse": rmse, "mse": mse})
    return out


def embed(sources: np.ndarray, cfg: UnitsConfig) -> np.ndarray:
    """UMAP of standardised ICA sources (fixed random_state: reproducible, single thread)."""
    _limit_threads()
    n = sources.shape[0]
    if n <= cfg.umap_components + 2:
        return sources[:, : cfg.umap_components].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba/umap chatter, n_jobs overridden by the seed
        import umap

        reducer = umap.UMAP(n_neighbors=int(min(cfg.umap_neighbors, n - 1)),
                            min_dist=cfg.umap_min_dist, n_components=cfg.umap_components,
                            random_state=cfg.seed, init="spectral" if n > 50 else "random")
        z = reducer.fit_transform(sources)
    return np.asarray(z, dtype=np.float64)


def gap_choice(heights: np.ndarray, k_min: int, k_max: int) -> tuple[int, dict[int, float]]:
    """k with the largest gap between successive merge heights of the dendrogram.

    With merge heights h sorted ascending (n-1 of them), cutting between
    h[-k] and h[-(k-1)] leaves k clusters; its gap is h[-(k-1)] - h[-k].
    """
    h = np.sort(np.asarray(heights, dtype=float))
    k_max = int(min(k_max, h.size))
    gaps = {k: float(h[-(k - 1)] - h[-k]) for k in range(max(2, k_min), k_max + 1)}
    if not gaps:
        return 1, {}
    best = max(gaps, key=lambda k: (gaps[k], -k))
    return best, gaps


def cluster(embedding: np.ndarray, cfg: UnitsConfig, n_clusters: int | None = None
            ) -> tuple[np.ndarray, int, dict[int, float], int]:
    """Ward clustering; returns labels, k, gaps and how many rows the dendrogram used."""
    from scipy.cluster.hierarchy import fcluster, linkage

    n = embedding.shape[0]
    if n < 3:
        return np.zeros(n, dtype=np.int64), 1, {}, n
    rng = np.random.default_rng(cfg.seed)
    sub = np.sort(rng.choice(n, cfg.max_linkage, replace=False)) if n > cfg.max_linkage \
        else np.arange(n)
    z = linkage(embedding[sub], method="ward")
    k, gaps = gap_choice(z[:, 2], cfg.k_min, cfg.k_max)
    if n_clusters is not None:
        k = int(n_clusters)
    sub_labels = fcluster(z, t=k, criterion="maxclust") - 1
    if sub.size == n:
        labels = sub_labels.astype(np.int64)
    else:
        from sklearn.neighbors import KNeighborsClassifier

        knn = KNeighborsClassifier(n_neighbors=min(cfg.assign_neighbors, sub.size))
        knn.fit(embedding[sub], sub_labels)
        labels = knn.predict(embedding).astype(np.int64)
        labels[sub] = sub_labels
    return relabel_by_size(labels), int(k), gaps, int(sub.size)


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Unit 0 is the largest, ties by first appearance: ids stable across identical runs."""
    uniq, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = sorted(range(uniq.size), key=lambda i: (-counts[i], first[i]))
    mapping = {int(uniq[j]): rank for rank, j in enumerate(order)}
    return np.array([mapping[int(v)] for v in labels], dtype=np.int64)


def fit_units(x: np.ndarray, cfg: UnitsConfig | None = None,
              n_clusters: int | None = None) -> UnitsResult:
    """The whole pipeline on a finite (n_cells, n_channels) I/F matrix."""
    cfg = cfg or UnitsConfig()
    if cfg.embedding not in ("umap", "none"):
        raise ValueError(f"embedding must be 'umap' or 'none', got {cfg.embedding!r}")
    if cfg.k_min < 2 or cfg.k_max < cfg.k_min or cfg.k_max > 20:
        raise ValueError(f"need 2 <= k_min <= k_max <= 20, got {cfg.k_min}..{cfg.k_max}")
    xx = _preprocess(x, cfg)
    if xx.shape[0] < 2:
        raise ValueError(f"need at least 2 spectra, got {xx.shape[0]}")
    sources, rmse, mse = fit_ica(xx, cfg.n_components, cfg.seed, cfg.ica_max_iter)
    std = sources.std(axis=0)
    sources = (sources - sources.mean(axis=0)) / np.where(std > 0, std, 1.0)
    z = embed(sources, cfg) if cfg.embedding == "umap" else sources
    labels, k, gaps, used = cluster(z, cfg, n_clusters)
    return UnitsResult(labels, k, gaps, rmse, mse, sources, z, used, cfg)


def bootstrap_ari(x: np.ndarray, cfg: UnitsConfig | None = None, n_boot: int = 5,
                  max_rows: int = 3000, seed: int = 0) -> dict[str, Any]:
    """Cluster stability: ARI between the reference labels and labels refitted on bootstraps.

    Each bootstrap resamples rows with replacement (at most ``max_rows`` to keep
    the cost bounded), refits the whole pipeline with the reference k and
    compares labels on the distinct resampled rows.
    """
    from sklearn.metrics import adjusted_rand_score

    cfg = cfg or UnitsConfig()
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    base_idx = np.sort(rng.choice(n, max_rows, replace=False)) if n > max_rows \
        else np.arange(n)
    ref = fit_units(x[base_idx], cfg)
    scores = []
    for _ in range(n_boot):
        pick = rng.choice(base_idx.size, base_idx.size, replace=True)
        uniq = np.unique(pick)
        res = fit_units(x[base_idx][uniq], cfg, n_clusters=ref.n_clusters)
        scores.append(float(adjusted_rand_score(ref.labels[uniq], res.labels)))
    return {"n_rows": int(base_idx.size), "n_boot": n_boot, "k": ref.n_clusters,
            "ari": scores, "ari_mean": float(np.mean(scores)) if scores else float("nan"),
            "ari_min": float(np.min(scores)) if scores else float("nan")}


def membership_stability(embedding: np.ndarray, labels: np.ndarray, n_boot: int = 10,
                         max_rows: int = 2000, seed: int = 0) -> np.ndarray | None:
    """Per-cell bootstrap stability of its unit: a 0..1 frequency, or None for one unit.

    Each bootstrap resamples at most ``max_rows`` cells with replacement, re-runs the Ward
    clustering of the embedding with the reference number of units, gives every cell the
    nearest bootstrap centroid, matches bootstrap units to reference units (Hungarian, on
    the confusion matrix) and counts whether the cell keeps its unit.  The score is the
    share of bootstraps in which it does: the probability that the cell's membership is
    reproduced by the clustering, not a calibrated class probability.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.optimize import linear_sum_assignment

    labels = np.asarray(labels)
    units = np.unique(labels)
    n = labels.size
    if units.size < 2 or n < 3:
        return None
    k = int(units.size)
    rng = np.random.default_rng(seed)
    kept = np.zeros(n)
    for _ in range(n_boot):
        pick = rng.choice(n, min(n, max_rows), replace=True)
        sub = embedding[pick]
        boot = fcluster(linkage(sub, method="ward"), t=k, criterion="maxclust") - 1
        present = np.unique(boot)
        centroids = np.vstack([sub[boot == b].mean(axis=0) for b in present])
        d = ((embedding[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
        assigned = present[np.argmin(d, axis=1)]
        conf = np.zeros((k, int(present.max()) + 1))
        ref_index = np.searchsorted(units, labels)
        np.add.at(conf, (ref_index, assigned), 1)
        r, c = linear_sum_assignment(-conf)
        mapping = np.full(conf.shape[1], -1)
        mapping[c] = units[r]
        kept += mapping[assigned] == labels
    return kept / n_boot
