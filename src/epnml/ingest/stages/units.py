"""Units stage: MASCS VIRS DDRs -> spectral units of Mercury -> ``units`` rows.

Science cases: DLR (D'Amore et al., Zenodo 10.5281/zenodo.7778172) for the
units, INAF (RELAB minerals) for their abundances.  A granule is a set of
observations clustered together (units only make sense over many footprints).
One row per (unit, region, tile): a simple counter-clockwise pgSphere polygon
no wider than 90 deg of longitude (see ``epnml.ml.units.regions``).

``dataproduct_type`` is ``ma`` (map): each row is an area of a map of units in
body-fixed coordinates, the EPN-TAP 2.0 type for "scalar field / classification
maps on a surface".  ``ci`` is kept for non-spatial catalogue items (our events);
``sp`` would make the rows look like observed spectra, while the linked file is
only the unit's mean spectrum (an ancillary product).

Provenance: the units pipeline is unsupervised, so its "weights" sha256 is the
sha256 of the canonical JSON of its configuration together with the sha256 of
the mineral-abundance weights it applies (changing either changes the rows).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epnml.ingest.access import CSV, access_columns
from epnml.ingest.epn import core_row, to_jd
from epnml.ingest.limits import DEFAULT_LIMITS, ResourceLimits
from epnml.ingest.stage import Granule, GranuleError, RunContext, StageOutput, safe_name
from epnml.ml.model_info import ModelInfo
from epnml.schemas.columns import Column
from epnml.schemas.products import get_product

PRODUCT = get_product("units")
BIB_REFERENCE = "10.5281/zenodo.7778172"
C_NM_HZ = 299_792_458.0 * 1e9
#: NIR grid used when a granule has no VIS product (real NIR DDRs: 896-1491 nm).
NIR_GRID_NM = (900.0, 1450.0, 4.0)
MIN_CELLS = 10
#: MESSENGER from launch to impact: a MASCS spectrum dated outside it cannot be an
#: observation (a simulator's or a clock's date), and its rows would mislead time searches.
MISSION_START = pd.Timestamp("2004-08-03T00:00:00")
MISSION_END = pd.Timestamp("2015-04-30T19:26:00")
PHASES = ("olivine", "orthopyroxene", "clinopyroxene", "plagioclase", "glass", "other")


#: columns added to the product by migration 0004 (defined in epnml.schemas.products).
UNITS_EXTRA_COLUMNS: tuple[Column, ...] = tuple(c for _, cols in PRODUCT.added for c in cols)


class UnitsStage:
    name = "units"
    product = "units"
    version_suffix = ""  # see Stage.version_suffix
    #: spectra of all products of the granule (real VIRS: 1,823 in four NIR products, at
    #: most 598 in one), channels per spectrum (VIS 512 items, NIR 256), and the decoded
    #: tables' memory (a real product: about 6 MB).
    limits: ResourceLimits = replace(DEFAULT_LIMITS, max_samples=200_000, max_bands=1024,
                                     max_memory_mb=1000)

    def __init__(self, model_version: str | None = None) -> None:
        from epnml.ml.units.pipeline import MODEL_VERSION, UnitsConfig

        if model_version not in (None, MODEL_VERSION):
            raise ValueError(f"unknown units model version {model_version!r}; "
                             f"available: {MODEL_VERSION}")
        self.config = UnitsConfig()
        self._minerals: Any = None
        self._minerals_error = ""
        try:
            from epnml.ml.minerals.abundance import load_model

            self._minerals = load_model()
        except (FileNotFoundError, ValueError) as exc:  # units still work without it
            self._minerals_error = str(exc)

    def model_info(self) -> ModelInfo:
        from epnml.ml.units.pipeline import MODEL_NAME, MODEL_VERSION, config_sha256

        minerals = self._minerals.info.sha256 if self._minerals is not None else "none"
        doc = {"units_config_sha256": config_sha256(self.config), "minerals_sha256": minerals}
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        return ModelInfo(MODEL_NAME, MODEL_VERSION, digest).derived(self.version_suffix)

    def model_card(self) -> dict[str, Any]:
        from epnml.ml.units.pipeline import config_sha256

        card: dict[str, Any] = {
            "name": "units", "config": self.config.to_dict(),
            "config_sha256": config_sha256(self.config),
            "method": "FastICA -> UMAP -> Ward, k at the largest dendrogram gap (DLR case)",
            "card": "ml/MODEL_CARD_units.md",
        }
        if self._minerals is not None:
            from epnml.ml.minerals.abundance import WEIGHTS_DIR

            path = WEIGHTS_DIR / f"minerals-{self._minerals.info.version}.json"
            card["minerals"] = json.loads(path.read_text()) if path.is_file() else {}
        else:
            card["minerals"] = {"error": self._minerals_error}
        return card

    def granules(self, paths: Sequence[Path]) -> list[Granule]:
        """All given observations form one granule (units are fitted across them)."""
        from epnml.ingest.readers.mascs import group_mascs_files

        groups = group_mascs_files(paths)
        if not groups:
            raise GranuleError(", ".join(str(p) for p in paths), "no MASCS .lbl products found")
        files = tuple(p for _, fs in groups for p in fs)
        keys = [k for k, _ in groups]
        gid = keys[0] if len(keys) == 1 else \
            f"{len(keys)}obs_{hashlib.sha256('|'.join(keys).encode()).hexdigest()[:8]}"
        return [Granule(f"mascs_{gid}", files)]

    def _params(self, ctx: RunContext) -> dict[str, Any]:
        """Every parameter as the spec resolves it (epnml.ingest.spec)."""
        from epnml.ingest.spec import resolve
        from epnml.ml.units.pipeline import MODEL_VERSION

        return resolve("units", ctx.params, MODEL_VERSION)

    def process(self, granule: Granule, ctx: RunContext) -> StageOutput:
        from epnml.ingest.readers.mascs import read_mascs_files
        from epnml.ml.units import grid as G
        from epnml.ml.units.pipeline import fit_units, membership_stability
        from epnml.ml.units.regions import spoly_literal, unit_regions

        p = self._params(ctx)
        labels = [q for q in granule.paths if q.suffix.lower() == ".lbl"]
        obs = read_mascs_files(labels, limits=self.limits)
        if not obs:
            raise GranuleError(granule.label, "no product with its data file (labels only)")
        detector = p["detector"]
        if detector == "auto":
            detector = "VIS" if any(o.detector == "VIS" for o in obs) else "NIR"
        used = [o for o in obs if o.detector == detector]
        if not used:
            raise GranuleError(granule.label, f"no {detector} product in the granule")
        wl = G.common_wavelengths() if detector == "VIS" else G.common_wavelengths(*NIR_GRID_NM)
        metas, specs = [], []
        for o in used:
            keep = G.footprint_mask(o.meta, p["max_incidence"], p["max_emission"])
            clipped, ok = G.clip_outliers(o.iof)
            keep &= ok
            metas.append(o.meta.loc[keep].reset_index(drop=True))
            specs.append(G.resample(o.wavelength_nm, clipped[keep], wl))
        meta = pd.concat(metas, ignore_index=True)
        _check_mission_times(granule, meta)
        spectra = np.vstack(specs) if specs else np.zeros((0, wl.size))
        if len(meta) == 0:
            raise GranuleError(granule.label, "no footprint passes the geometry filter "
                                              "(incidence/emission < 80, |lat| <= 80)")
        grid = G.grid_spectra(meta["lat"].to_numpy(float), meta["lon"].to_numpy(float), spectra, wl,
                              float(p["step_deg"]))
        x, rows_ok, chan = G.prepare_matrix(grid.spectra)
        if x.shape[0] < MIN_CELLS:
            raise GranuleError(granule.label, f"only {x.shape[0]} grid cells with full spectra "
                                              f"(need {MIN_CELLS})")
        cells = grid.cells.loc[rows_ok].reset_index(drop=True)
        cfg = self.config
        if p["embedding"] == "ica":
            from dataclasses import replace

            cfg = replace(cfg, embedding="none")
        res = fit_units(x, cfg, None if p["n_clusters"] is None else int(p["n_clusters"]))
        cells["unit"] = res.labels
        stability = membership_stability(res.embedding, res.labels, seed=cfg.seed)
        cells["stability"] = np.nan if stability is None else stability
        angles = _cell_angles(meta, grid)
        cells = cells.merge(angles, on=["row", "col"], how="left")
        tiles = unit_regions(cells["row"].to_numpy(), cells["col"].to_numpy(), res.labels,
                             grid.step_deg, grid.max_abs_lat, int(p["connectivity"]),
                             min_cells=int(p["min_cells"]))
        wl_used = wl[chan]
        means = {u: x[res.labels == u].mean(axis=0) for u in np.unique(res.labels)}
        stds = {u: x[res.labels == u].std(axis=0) for u in np.unique(res.labels)}
        abund = self._abundances(wl_used, means)
        simulated = any(o.simulated for o in used)
        info = self.model_info()
        times = pd.to_datetime(meta["time"]).dropna()
        t0, t1 = (times.min(), times.max()) if len(times) else (None, None)
        files: dict[str, bytes] = {}
        spec_url: dict[int, tuple[str, str | None]] = {}
        for u in means:
            base = f"units/{safe_name(granule.granule_id, 120)}_v{info.version}_unit{u}"
            files[f"{base}.csv"] = _spectrum_csv(wl_used, means[u], stds[u], simulated)
            thumb = None
            if ctx.make_quicklooks:
                thumb = f"{base}.png"
                files[thumb] = _spectrum_png(wl_used, means[u], stds[u], int(u), simulated)
            spec_url[int(u)] = (f"{base}.csv", thumb)
        key = cells.set_index(["row", "col"])
        max_sigma = float(p["max_abundance_sigma"])
        records, out_rows = [], []
        for t in tiles:
            sel = key.loc[[tuple(rc) for rc in t.cells]]
            uid = (f"units_{granule.granule_id}_u{t.unit_id}_r{t.region}_t{t.tile}"
                   f"_v{info.version}")
            # the share of bootstraps in which the row's cells keep their unit (None: one unit)
            mean_stab = float(sel["stability"].mean())
            score = round(mean_stab, 4) if np.isfinite(mean_stab) else None
            ab = abund.get(t.unit_id)
            rec: dict[str, Any] = {"granule_uid": uid, "unit_id": t.unit_id, "region": t.region,
                   "tile": t.tile, "cell_count": t.cell_count, "region_cells": t.region_cells,
                   "lon_min": t.lon_min, "lon_max": t.lon_max, "lat_min": t.lat_min,
                   "lat_max": t.lat_max, "score": score,
                   "n_units": res.n_clusters, "simulated": simulated,
                   "granule_id": granule.granule_id}
            for ph in PHASES:
                sigma = None if ab is None else round(ab["abundance_sigma"][ph], 2)
                # an estimate whose ensemble spread exceeds the limit is not informative:
                # withheld (NULL), its spread kept so the reason stays visible
                rec[f"abundance_{ph}"] = None if ab is None or sigma is None or \
                    sigma > max_sigma else round(ab["abundance"][ph], 2)
                rec[f"abundance_sigma_{ph}"] = sigma
            records.append(rec)
            csv_path, thumb = spec_url[t.unit_id]
            row = core_row(
                PRODUCT, uid=uid, gid="units", granule=granule, info=info, ctx=ctx,
                dataproduct_type="ma", target_name="Mercury", target_class="planet",
                thumb=thumb, bib_reference=BIB_REFERENCE, time_scale="UTC",
            ) | {
                "time_min": to_jd(t0) if t0 is not None else None,
                "time_max": to_jd(t1) if t1 is not None else None,
                "spectral_range_min": C_NM_HZ / float(wl_used.max()),
                "spectral_range_max": C_NM_HZ / float(wl_used.min()),
                "spectral_sampling_step_min": _freq_steps(wl_used)[0],
                "spectral_sampling_step_max": _freq_steps(wl_used)[1],
                "c1min": t.lon_min, "c1max": t.lon_max, "c2min": t.lat_min, "c2max": t.lat_max,
                "s_region": spoly_literal(t.vertices),
                "c1_resol_min": grid.step_deg, "c1_resol_max": grid.step_deg,
                "c2_resol_min": grid.step_deg, "c2_resol_max": grid.step_deg,
                "incidence_min": _fin(sel["incidence_min"].min()),
                "incidence_max": _fin(sel["incidence_max"].max()),
                "emergence_min": _fin(sel["emission_min"].min()),
                "emergence_max": _fin(sel["emission_max"].max()),
                "phase_min": _fin(sel["phase_min"].min()),
                "phase_max": _fin(sel["phase_max"].max()),
                "instrument_host_name": "MESSENGER", "instrument_name": "MASCS",
                "measurement_type": "phys.reflectance",
                **access_columns(ctx, csv_path, files[csv_path], CSV),
                "processing_level_desc": self._desc(info, res, detector, used, simulated,
                                                    grid.step_deg, ab is not None, cfg.embedding,
                                                    max_sigma),
                "time_refposition": "MESSENGER",
                "spatial_coordinate_description": "Mercury planetocentric, east longitude",
                "ml_score": score,
                "unit_id": t.unit_id, "cell_count": t.cell_count, "unit_region": t.region,
                "unit_tile": t.tile, "region_cell_count": t.region_cells,
            }
            for ph in PHASES:
                row[f"abundance_{ph}"] = rec[f"abundance_{ph}"]
                row[f"abundance_sigma_{ph}"] = rec[f"abundance_sigma_{ph}"]
            out_rows.append(row)
        return StageOutput(granule, pd.DataFrame.from_records(records, columns=RECORD_COLUMNS),
                           out_rows, files)

    def _abundances(self, wl: np.ndarray, means: dict[Any, np.ndarray]
                    ) -> dict[int, dict[str, Any]]:
        if self._minerals is None:
            return {}
        from epnml.ml.minerals.abundance import predict_spectra

        units = sorted(means)
        preds = predict_spectra(self._minerals, wl, np.stack([means[u] for u in units]))
        return {int(u): pr for u, pr in zip(units, preds, strict=True) if pr is not None}

    def _desc(self, info: ModelInfo, res: Any, detector: str, used: list[Any],
              simulated: bool, step: float, with_abundances: bool, embedding: str,
              max_sigma: float) -> str:
        what = ("SIMULATED MASCS-like spectra (demo inputs, not spacecraft data)" if simulated
                else f"MESSENGER MASCS VIRS {detector} DDR spectra "
                     f"({sum(o.n_spectra for o in used)} spectra, {len(used)} observations)")
        ab = (f"; abundances by model minerals v{self._minerals.info.version} "
              "(RELAB-trained, 350-1050 nm; NULL where the ensemble spread exceeds "
              f"{max_sigma:g} pp)" if with_abundances else
              "; no abundances (spectra do not cover 350-1050 nm or no minerals model)")
        emb = "UMAP" if embedding == "umap" else "no UMAP (ICA sources clustered directly)"
        return (f"Spectral unit region from {info.name} v{info.version} (FastICA "
                f"{self.config.n_components} components, {emb}, Ward; {res.n_clusters} units by "
                f"dendrogram gap) on a {step:g} deg grid of {what}{ab}")


RECORD_COLUMNS = [
    "granule_uid", "unit_id", "region", "tile", "cell_count", "region_cells", "lon_min",
    "lon_max", "lat_min", "lat_max", "score", "n_units", "simulated", "granule_id",
    *(f"abundance_{p}" for p in PHASES), *(f"abundance_sigma_{p}" for p in PHASES),
]


def _check_mission_times(granule: Granule, meta: pd.DataFrame) -> None:
    """Refuse a granule whose spectra are dated outside MESSENGER's mission."""
    times = pd.to_datetime(meta["time"]).dropna()
    if not len(times):
        return
    outside = times[(times < MISSION_START) | (times > MISSION_END)]
    if len(outside):
        bad = outside.min()
        raise GranuleError(granule.label, f"spectrum time {bad:%Y-%m-%dT%H:%M:%S} is outside "
                                          f"the MESSENGER mission ({MISSION_START:%Y-%m-%d} .. "
                                          f"{MISSION_END:%Y-%m-%d}): MASCS cannot have "
                                          "observed it")


def _cell_angles(meta: pd.DataFrame, grid: Any) -> pd.DataFrame:
    from epnml.ml.units.grid import cell_index

    row, col = cell_index(meta["lat"].to_numpy(), meta["lon"].to_numpy(), grid.step_deg,
                          grid.max_abs_lat)
    df = pd.DataFrame({"row": row, "col": col, "incidence": meta["incidence"].to_numpy(),
                       "emission": meta["emission"].to_numpy(),
                       "phase": meta["phase"].to_numpy()})
    agg = df.groupby(["row", "col"]).agg(["min", "max"])
    agg.columns = [f"{c[0]}_{c[1]}" for c in agg.columns.to_flat_index()]
    return agg.reset_index()


def _freq_steps(wl: np.ndarray) -> tuple[float, float]:
    f = np.sort(C_NM_HZ / wl)
    d = np.diff(f)
    return (float(d.min()), float(d.max())) if d.size else (0.0, 0.0)


def _fin(v: Any) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


def _spectrum_csv(wl: np.ndarray, mean: np.ndarray, std: np.ndarray, simulated: bool) -> bytes:
    head = "# SIMULATED data (not spacecraft measurements)\n" if simulated else ""
    frame = pd.DataFrame({"wavelength_nm": wl, "iof_mean": mean, "iof_std": std})
    return (head + frame.to_csv(index=False, float_format="%.6g")).encode()


def _spectrum_png(wl: np.ndarray, mean: np.ndarray, std: np.ndarray, unit: int,
                  simulated: bool, size_px: int = 200) -> bytes:
    """Small PNG of the unit mean spectrum with a +-1 sigma band (Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size_px / 100, size_px / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.22, 0.18, 0.74, 0.7))
    ax.fill_between(wl, mean - std, mean + std, color="0.8", lw=0)
    ax.plot(wl, mean, "k", lw=0.8)
    ax.set_title(f"unit {unit}" + (" (SIMULATED)" if simulated else ""), fontsize=6)
    ax.set_xlabel("nm", fontsize=5)
    ax.set_ylabel("I/F", fontsize=5)
    ax.tick_params(labelsize=4.5)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
