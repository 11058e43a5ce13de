"""Gridding, clustering, region polygons and abundances of the units pipeline."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from epnml.ingest.simulate.units import simulate_cells
from epnml.ml.units.grid import (
    clip_outliers,
    common_wavelengths,
    footprint_mask,
    grid_spectra,
    prepare_matrix,
    resample,
)
from epnml.ml.units.pipeline import UnitsConfig, config_sha256, fit_units, gap_choice
from epnml.ml.units.regions import signed_area, spoly_literal, unit_regions

FAST = UnitsConfig(embedding="none")
NO_USGS = Path("/nonexistent")


def test_common_grid_is_the_dlr_396_channels() -> None:
    wl = common_wavelengths()
    assert wl.size == 396 and wl[0] == 260.0 and wl[-1] == 1050.0


def test_resample_linear_no_extrapolation() -> None:
    wl = np.array([500.0, 600.0, 700.0])
    x = np.array([[1.0, 2.0, 3.0], [1.0, np.nan, 3.0]])
    out = resample(wl, x, np.array([450.0, 550.0, 650.0, 750.0]))
    np.testing.assert_allclose(out[0], [np.nan, 1.5, 2.5, np.nan])
    np.testing.assert_allclose(out[1], [np.nan, 1.5, 2.5, np.nan])  # gap bridged inside


def test_grid_medians_and_cells() -> None:
    lat = np.array([0.2, 0.5, 0.9, 10.5, -79.5])
    lon = np.array([359.9, 359.1, 359.5, 20.0, 0.5])
    spectra = np.array([[1.0, 10.0], [2.0, np.nan], [9.0, 30.0], [4.0, 4.0], [5.0, 5.0]])
    g = grid_spectra(lat, lon, spectra, np.array([500.0, 600.0]), step_deg=1.0)
    cells = g.cells.set_index(["row", "col"])
    assert len(g.cells) == 3 and g.shape == (160, 360)
    i = list(cells.index).index((80, 359))
    np.testing.assert_allclose(g.spectra[i], [2.0, 20.0])  # NaN-aware median
    assert cells.loc[(80, 359), "count"] == 3
    assert cells.loc[(80, 359), "lon"] == pytest.approx(359.5)
    assert cells.loc[(0, 0), "lat"] == pytest.approx(-79.5)
    with pytest.raises(ValueError):
        grid_spectra(lat, lon, spectra, np.array([500.0, 600.0]), step_deg=7.0)


def test_geometry_filter_and_clipping() -> None:
    meta = pd.DataFrame({"lat": [0, 85, 0, 0, np.nan], "lon": [1, 1, 1, 1, 1],
                         "incidence": [10, 10, 80, 10, 10], "emission": [10, 10, 10, 80.5, 10]})
    assert footprint_mask(meta).tolist() == [True, False, False, False, False]
    rng = np.random.default_rng(0)
    x = 0.05 + 0.001 * rng.normal(size=(50, 20))
    x[3, 5] = 5.0  # spike
    x[7] = 1.0  # whole spectrum off
    clipped, keep = clip_outliers(x)
    assert np.isnan(clipped[3, 5]) and keep[3]
    assert not keep[7] and keep.sum() == 49


def test_gap_choice() -> None:
    heights = np.array([0.1, 0.2, 0.25, 0.3, 5.0, 5.5])  # 3 clusters stand out
    k, gaps = gap_choice(heights, 2, 5)
    assert k == 3 and set(gaps) == {2, 3, 4, 5}
    assert gaps[3] == pytest.approx(4.7)


def test_clusters_recover_simulated_units_and_are_reproducible() -> None:
    wl = common_wavelengths(260.0, 1050.0, 8.0)  # 99 channels keep the test fast
    sim = simulate_cells(wavelength_nm=wl, step_deg=6.0, n_units=3, seed=5, usgs_path=NO_USGS)
    assert sim.endmember_source == "analytic"
    x, rows, _ = prepare_matrix(sim.spectra)
    a = fit_units(x, FAST)
    b = fit_units(x, FAST)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.n_clusters == 3 and 2 <= a.n_clusters <= 8
    assert adjusted_rand_score(sim.truth[rows], a.labels) > 0.9
    assert a.ica_rmse < 0.0015  # the DLR criterion, in I/F units
    assert config_sha256(FAST) == config_sha256(replace(FAST))
    assert config_sha256(FAST) != config_sha256(replace(FAST, n_components=5))


def test_umap_pipeline_reproducible() -> None:
    wl = common_wavelengths(260.0, 1050.0, 8.0)
    sim = simulate_cells(wavelength_nm=wl, step_deg=10.0, n_units=3, seed=5, usgs_path=NO_USGS)
    cfg = UnitsConfig(umap_neighbors=10)
    a, b = fit_units(sim.spectra, cfg), fit_units(sim.spectra, cfg)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.embedding, b.embedding)


def _segments_cross(p: tuple, q: tuple, r: tuple, s: tuple) -> bool:
    def o(a: tuple, b: tuple, c: tuple) -> float:
        return float(np.sign((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])))
    return o(p, q, r) * o(p, q, s) < 0 and o(r, s, p) * o(r, s, q) < 0


def _is_simple(v: list[tuple[float, float]]) -> bool:
    n = len(v)
    if len({(round(a % 360, 6), round(b, 6)) for a, b in v}) != n:
        return False
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue
            if _segments_cross(v[i], v[(i + 1) % n], v[j], v[(j + 1) % n]):
                return False
    return True


def _check_tiles(tiles: list) -> None:
    assert tiles, "no tiles to check"
    for t in tiles:
        assert len(t.vertices) >= 3
        assert signed_area(t.vertices) > 0, "not counter-clockwise"
        assert _is_simple(t.vertices), "not simple"
        assert 0 < t.lon_max - t.lon_min <= 90.0, "wider than 90 deg"
        assert 0.0 <= t.lon_min < t.lon_max <= 360.0
        lons = [v[0] for v in t.vertices if abs(v[1]) < 90]
        assert max(lons) - min(lons) <= 90.0
        # densified: no edge along a parallel longer than 2 deg
        for (x0, y0), (x1, y1) in zip(t.vertices, t.vertices[1:] + t.vertices[:1], strict=True):
            if y0 == y1 and abs(y0) < 90:
                assert abs(x1 - x0) <= 2.0 + 1e-9


def test_region_polygons_valid_wrap_and_tiles() -> None:
    # a band 340..20 deg E (crosses 0) of unit 0 with a big hole, and unit 1 elsewhere
    step, n_lat, n_lon = 2.0, 80, 180
    grid = np.ones((n_lat, n_lon), dtype=int)
    grid[30:50, 170:] = 0
    grid[30:50, :10] = 0
    grid[36:44, 4:8] = 1  # a 16-cell hole: cut out, not covered
    grid[40, 172] = 1  # a 1-cell island: covered by the outline
    rows, cols = np.nonzero(grid >= 0)
    tiles = unit_regions(rows, cols, grid[rows, cols], step, 80.0)
    _check_tiles(tiles)
    u0 = [t for t in tiles if t.unit_id == 0]
    assert {t.region for t in u0} == {0}, "the band across 0 deg is one region"
    assert sum(t.cell_count for t in u0) == int((grid == 0).sum())
    assert any(t.lon_max == 360.0 for t in u0) and any(t.lon_min == 0.0 for t in u0)
    u1 = [t for t in tiles if t.unit_id == 1]
    assert sum(t.cell_count for t in u1) == int((grid == 1).sum())
    # the region all around the globe in four tiles of <= 90 deg, the hole and the island
    assert max(t.lon_max - t.lon_min for t in u1) <= 90.0 and len(u1) == 6
    # 8-connectivity joins diagonal cells into one region
    diag = np.full((n_lat, n_lon), -1)
    diag[10, 10] = diag[11, 11] = 0
    r, c = np.nonzero(diag >= 0)
    assert len({t.region for t in unit_regions(r, c, diag[r, c], step, 80.0, 4)}) == 2
    eight = unit_regions(r, c, diag[r, c], step, 80.0, 8)
    assert len({t.region for t in eight}) == 1
    _check_tiles(eight)


def test_polar_cap_polygon() -> None:
    step = 5.0
    grid = np.full((36, 72), -1)
    grid[34:, 0:18] = 0  # touches the north pole (max_abs_lat = 90)
    r, c = np.nonzero(grid >= 0)
    tiles = unit_regions(r, c, grid[r, c], step, 90.0)
    assert len(tiles) == 1
    v = tiles[0].vertices
    assert sum(1 for p in v if p[1] == 90.0) == 1, "pole collapsed to one vertex"
    assert signed_area(v) > 0 and _is_simple(v)
    assert tiles[0].lat_max == 90.0


def test_spoly_literal() -> None:
    text = spoly_literal([(350.0, -1.0), (360.0, -1.0), (360.0, 1.5), (350.0, 1.5)])
    assert text == ("{(350.0000d,-1.0000d),(360.0000d,-1.0000d),(360.0000d,1.5000d),"
                    "(350.0000d,1.5000d)}")
    assert re.fullmatch(r"\{(\(-?\d+\.\d+d,-?\d+\.\d+d\),?)+\}", text)
    with pytest.raises(ValueError):
        spoly_literal([(0.0, 0.0), (1.0, 1.0)])


def test_abundances_sum_to_100_with_uncertainty() -> None:
    from epnml.ml.minerals.abundance import PHASES, load_model, predict_spectra

    model = load_model()
    wl = np.arange(300.0, 1100.0, 2.0)
    band = 1 - 0.3 * np.exp(-0.5 * ((wl - 1000) / 80) ** 2)
    spectra = np.vstack([0.3 * band, 0.05 + 0.0001 * (wl - 300)])
    preds = predict_spectra(model, wl, spectra)
    for p in preds:
        assert p is not None
        assert sum(p["abundance"].values()) == pytest.approx(100.0, abs=1e-3)
        assert all(0 <= v <= 100 for v in p["abundance"].values())
        assert all(s >= 0 for s in p["abundance_sigma"].values())
        assert set(p["abundance"]) == set(PHASES)
    nir_only = np.arange(900.0, 1450.0, 4.0)
    assert predict_spectra(model, nir_only, np.ones((1, nir_only.size))) == [None]
