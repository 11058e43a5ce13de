"""Fast tests of the Mercury crossings model: decoding, shapes, checksum, committed weights.

Everything here runs without the shared data (synthetic probabilities, or the
simulator's synthetic mode); all magnetometer data are SIMULATED.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from epnml.ingest.stage import ModelInfo
from epnml.ml.crossings.baseline import WindowCNNLSTM, windows
from epnml.ml.crossings.baseline import predict_array as baseline_predict
from epnml.ml.crossings.features import (
    FEATURES,
    N_FEATURES,
    frame_to_features,
    identity_scaler,
    raw_features,
)
from epnml.ml.crossings.inference import (
    WEIGHTS_DIR,
    LoadedModel,
    available_versions,
    load_model,
    predict_array,
    predict_proba,
    save_checkpoint,
)
from epnml.ml.crossings.labels import MAGNETOSHEATH, N_REGIONS, region_labels
from epnml.ml.crossings.model import CrossingsTCN, ModelConfig
from epnml.ml.crossings.postprocess import COLUMNS, extract_crossings, segment_orbits

T0 = pd.Timestamp("2012-06-01")
OFFSETS = [15000, 15300, 17000, 17200, 21000, 21100, 23000, 23400]


def orbit_frame(n: int = 43_200, offsets: list[int] = OFFSETS) -> tuple[pd.DataFrame, np.ndarray]:
    """A toy orbit (apoapsis at both ends) and its region labels."""
    idx = pd.date_range(T0, periods=n, freq="1s", name="time")
    ph = np.linspace(0.0, 2.0 * np.pi, n)
    r = 12_000.0 + 9_000.0 * np.cos(ph)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": r * np.cos(ph), "y": r * np.sin(ph), "z": np.zeros(n),
                          "bx": rng.normal(0, 5, n), "by": rng.normal(0, 5, n),
                          "bz": rng.normal(0, 5, n)}, index=idx)
    edges = list(pd.DatetimeIndex([T0 + pd.Timedelta(seconds=o) for o in offsets]).as_unit(
        idx.unit))
    return frame, region_labels(idx, edges)


def noisy_proba(labels: np.ndarray, seed: int = 0, strength: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.full((len(labels), N_REGIONS), 0.1)
    p[np.arange(len(labels)), labels] += strength
    p += rng.uniform(0.0, 0.5, size=p.shape)
    return p / p.sum(axis=1, keepdims=True)


def tiny_model(seed: int = 0) -> CrossingsTCN:
    torch.manual_seed(seed)
    cfg = ModelConfig(width=8, fine_width=4, dilations=(1, 2), stacks=1, down=4, dropout=0.0)
    return CrossingsTCN(cfg).eval()


# ----------------------------------------------------------------------------- postprocess
def test_decoder_recovers_eight_edges_from_noisy_probabilities() -> None:
    frame, labels = orbit_frame()
    out = extract_crossings(frame, noisy_proba(labels), min_region_s=30, switch_penalty=8.0)
    assert list(out.columns) == COLUMNS
    assert out["boundary_number"].tolist() == list(range(1, 9))
    err = (pd.DatetimeIndex(out["time"]) - T0).total_seconds().to_numpy() - np.array(OFFSETS)
    assert np.abs(err).max() <= 5.0
    assert ((out["score"] > 0) & (out["score"] <= 1)).all()
    assert out["boundary"].tolist()[:4] == ["bow shock", "bow shock", "magnetopause",
                                            "magnetopause"]


def test_decoder_invents_no_magnetopause_when_magnetosphere_never_reached() -> None:
    frame, labels = orbit_frame()
    labels = np.where(labels >= 3, MAGNETOSHEATH, labels)  # the orbit stays in the sheath
    out = extract_crossings(frame, noisy_proba(labels, seed=1))
    assert out["boundary_number"].tolist() == [1, 2, 7, 8]
    # and all solar wind: nothing at all
    out = extract_crossings(frame, noisy_proba(np.zeros(len(frame), dtype=int), seed=2))
    assert out.empty


def test_edges_inside_long_gaps_are_dropped() -> None:
    frame, labels = orbit_frame()
    frame.iloc[16_900:17_500, 3:] = np.nan  # a 10-min gap across edges 3 and 4
    out = extract_crossings(frame, noisy_proba(labels), max_gap_s=30)
    assert out["boundary_number"].tolist() == [1, 2, 5, 6, 7, 8]


def test_postprocess_parameters_are_validated() -> None:
    frame, labels = orbit_frame(n=2000, offsets=[100, 200, 300, 400, 500, 600, 700, 800])
    p = noisy_proba(labels)
    for bad in ({"min_region_s": 0}, {"switch_penalty": -1.0}, {"min_score": 2.0},
                {"smooth_s": 1.5}, {"no_such": 1}):
        with pytest.raises(ValueError):
            extract_crossings(frame, p, **bad)
    with pytest.raises(ValueError):
        extract_crossings(frame, p[:-1])


def test_segment_orbits_splits_at_apoapsis() -> None:
    a, la = orbit_frame()
    b, lb = orbit_frame()
    b.index = a.index[-1] + pd.Timedelta(seconds=1) + (b.index - b.index[0])
    both = pd.concat([a, b])
    slices = segment_orbits(both)
    assert len(slices) == 2 and abs(slices[0].stop - len(a)) <= 2
    out = extract_crossings(both, noisy_proba(np.r_[la, lb]))
    assert out.groupby("orbit_index")["boundary_number"].apply(list).tolist() == [
        list(range(1, 9))] * 2


# ----------------------------------------------------------------------------- model/features
def test_features_flag_gaps_and_stay_finite() -> None:
    frame, _ = orbit_frame(n=600, offsets=[100, 150, 200, 250, 300, 350, 400, 450])
    frame.iloc[100:130, 3] = np.nan
    x = frame_to_features(frame)
    assert x.shape == (600, N_FEATURES) and x.dtype == np.float32
    assert np.isfinite(x).all()
    v = FEATURES.index("valid")
    assert (x[100:130, v] == 0).all() and (x[:100, v] == 1).all()
    assert np.isnan(raw_features(frame)[100:130, 0]).all()


@pytest.mark.parametrize("length", [1, 7, 100, 1001])
def test_model_is_fully_convolutional(length: int) -> None:
    model = tiny_model()
    with torch.inference_mode():
        out = model(torch.randn(2, N_FEATURES, length))
    assert out.shape == (2, N_REGIONS, length)


def test_default_model_is_small() -> None:
    model = CrossingsTCN()
    assert sum(p.numel() for p in model.parameters()) < 200_000
    assert model.config.receptive_field_s >= 300  # several minutes of context


def test_predict_proba_rows_sum_to_one_and_chunks_agree() -> None:
    frame, _ = orbit_frame(n=1200, offsets=[100, 200, 300, 400, 500, 600, 700, 800])
    module = tiny_model()
    loaded = LoadedModel(module=module, info=ModelInfo("crossings", "0.0.0-test", "0" * 64),
                         config={"model": module.config.to_dict()}, scaler=identity_scaler())
    p = predict_proba(frame, loaded)
    assert p.shape == (1200, N_REGIONS)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    x = frame_to_features(frame)
    chunked = predict_array(x, module, chunk=2 * (module.config.receptive_field_s + 64) + 300)
    np.testing.assert_allclose(chunked, p, atol=1e-4)


def test_baseline_windows_label_each_sample() -> None:
    x = np.random.default_rng(0).normal(size=(50, N_FEATURES)).astype(np.float32)
    w = windows(torch.from_numpy(x.T.copy()), torch.arange(50), 30)
    assert w.shape == (50, N_FEATURES, 30)
    assert torch.equal(w[20, :, 15], torch.from_numpy(x[20]))
    torch.manual_seed(0)
    p = baseline_predict(x, WindowCNNLSTM())
    assert p.shape == (50, N_REGIONS)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


# ----------------------------------------------------------------------------- weights
def test_load_model_refuses_checksum_mismatch(tmp_path: Path) -> None:
    module = tiny_model()
    pt = tmp_path / "crossings-9.9.9.pt"
    digest = save_checkpoint(pt, module, "9.9.9", {}, identity_scaler())
    pt.with_suffix(".json").write_text(f'{{"version": "9.9.9", "sha256": "{digest}"}}')
    assert available_versions(tmp_path) == ["9.9.9"]
    assert load_model("9.9.9", path=tmp_path).info.sha256 == digest
    data = bytearray(pt.read_bytes())
    data[-10] ^= 0xFF
    pt.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_model("9.9.9", path=tmp_path)
    with pytest.raises(ValueError, match="unknown"):
        load_model("1.2.3", path=tmp_path)


def test_committed_model_card_matches_weights(tmp_path: Path) -> None:
    versions = available_versions()
    assert "1.0.0" in versions
    model = load_model("1.0.0")
    assert model.info.name == "crossings" and len(model.info.sha256) == 64
    assert (WEIGHTS_DIR / "crossings-1.0.0.pt").stat().st_size < 2_000_000
    shutil.copy(WEIGHTS_DIR / "crossings-1.0.0.pt", tmp_path / "crossings-1.0.0.pt")
    (tmp_path / "crossings-1.0.0.json").write_text('{"version": "1.0.0", "sha256": "bad"}')
    with pytest.raises(ValueError, match="sha256"):
        load_model("1.0.0", path=tmp_path)


def test_committed_model_on_a_simulated_orbit() -> None:
    """Seeded synthetic orbit (no shared data): sane macro-F1 and the eight edges nearby."""
    from sklearn.metrics import f1_score

    from epnml.ingest.simulate.messenger import simulate_orbit

    torch.set_num_threads(2)
    frame = simulate_orbit(None, 11)
    model = load_model("1.0.0")
    proba = predict_proba(frame, model)
    f1 = f1_score(frame["region"].to_numpy(), proba.argmax(axis=1), average="macro")
    assert f1 > 0.6
    out = extract_crossings(frame, proba, **model.postprocess())
    truth = pd.DatetimeIndex(pd.to_datetime(frame.attrs["edges"], format="ISO8601"))
    got = out.set_index("boundary_number")["time"]
    close = [k for k in range(1, 9)
             if k in got.index and abs((got[k] - truth[k - 1]).total_seconds()) < 300]
    assert len(close) >= 6
