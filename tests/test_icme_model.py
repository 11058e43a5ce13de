"""Fast tests of the ICME pipeline with a TINY model (not the committed weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from epnml.experiments.icme.evaluate import event_scores, true_events_from_labels
from epnml.ingest.stage import ModelInfo
from epnml.ml.checkpoints import sha256_file
from epnml.ml.icme.events import extract_events
from epnml.ml.icme.features import DEFAULT_SCALER, FEATURES, N_CHANNELS, frame_to_array
from epnml.ml.icme.inference import (
    WEIGHTS_DIR,
    LoadedModel,
    available_versions,
    load_model,
    predict_proba,
    save_checkpoint,
)
from epnml.ml.icme.model import ICMESegmenter, ModelConfig

H = pd.Timedelta(hours=1)
T0 = pd.Timestamp("2019-05-01")


def tiny_config() -> ModelConfig:
    return ModelConfig(
        base_width=4,
        max_width=8,
        depth=2,
        kernel_size=3,
        aspp_rates=(1, 2),
        se_reduction=2,
        dropout=0.0,
    )


def tiny_model(seed: int = 0) -> ICMESegmenter:
    torch.manual_seed(seed)
    return ICMESegmenter(tiny_config()).eval()


def tiny_loaded(window: int = 64) -> LoadedModel:
    return LoadedModel(
        module=tiny_model(),
        info=ModelInfo(name="icme", version="0.0.0-test", sha256="0" * 64),
        config={"window": window, "model": tiny_config().to_dict()},
        scaler=DEFAULT_SCALER,
    )


def solar_wind(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range(T0, periods=n, freq="10min", name="time")
    data = {
        "bx": rng.normal(0, 3, n),
        "by": rng.normal(0, 3, n),
        "bz": rng.normal(0, 3, n),
        "bt": rng.uniform(2, 8, n),
        "vt": rng.uniform(300, 600, n),
        "np": rng.uniform(1, 20, n),
        "tp": rng.uniform(2e4, 2e5, n),
        "beta": rng.uniform(0.1, 3, n),
        "pdyn": rng.uniform(5e-10, 5e-9, n),
        "texrat": rng.uniform(0.3, 3, n),
    }
    return pd.DataFrame(data, index=idx)[FEATURES]


def index(n: int) -> pd.DatetimeIndex:
    return pd.date_range(T0, periods=n, freq="10min")


# ----------------------------------------------------------------------------- model
def test_forward_shape() -> None:
    m = tiny_model()
    x = torch.randn(3, N_CHANNELS, 64)
    assert m(x).shape == (3, 1, 64)


def test_forward_rejects_bad_length_and_channels() -> None:
    m = tiny_model()
    with pytest.raises(ValueError, match="multiple"):
        m(torch.randn(1, N_CHANNELS, 66))
    with pytest.raises(ValueError, match="expected input"):
        m(torch.randn(1, N_CHANNELS + 1, 64))


def test_gradient_flows_to_every_parameter() -> None:
    m = tiny_model().train()
    x = torch.randn(2, N_CHANNELS, 32)
    y = (torch.rand(2, 1, 32) > 0.5).float()
    torch.nn.functional.binary_cross_entropy_with_logits(m(x), y).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert sum(float(p.grad.abs().sum()) for p in m.parameters() if p.grad is not None) > 0


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        ModelConfig(kernel_size=4)
    with pytest.raises(ValueError):
        ModelConfig(depth=0)
    assert ModelConfig.from_dict(tiny_config().to_dict()) == tiny_config()


# ----------------------------------------------------------------------------- features
def test_frame_to_array_gaps_and_mask() -> None:
    f = solar_wind(100)
    f.iloc[10:13] = np.nan  # short gap: interpolated
    f.iloc[40:60] = np.nan  # long gap: zero + mask 0
    f.iloc[80, FEATURES.index("np")] = -1.0  # unphysical -> missing (short gap)
    x = frame_to_array(f)
    assert x.shape == (len(FEATURES) + 1, 100)
    assert np.isfinite(x).all()
    assert (x[-1, 10:13] == 1).all()
    assert (x[-1, 40:60] == 0).all() and (x[:-1, 40:60] == 0).all()
    assert x[-1, 80] == 1
    assert x[-1, :10].all() and x[-1, 60:].all()


def test_frame_to_array_missing_column() -> None:
    with pytest.raises(ValueError, match="lacks"):
        frame_to_array(solar_wind(10).drop(columns=["tp"]))


# ----------------------------------------------------------------------------- events
def proba_from_runs(n: int, runs: list[tuple[int, int, float]]) -> np.ndarray:
    p = np.full(n, 0.1)
    for s, e, v in runs:
        p[s:e] = v
    return p


def test_extract_events_threshold_and_stats() -> None:
    p = proba_from_runs(200, [(20, 60, 0.8), (100, 150, 0.55)])
    p[30] = 0.95
    ev = extract_events(index(200), p, threshold=0.6, min_duration=H, merge_gap=pd.Timedelta(0))
    assert list(ev.columns) == ["start", "end", "score", "peak"]
    assert len(ev) == 1
    assert ev.start[0] == index(200)[20] and ev.end[0] == index(200)[59]
    assert ev.peak[0] == pytest.approx(0.95)
    assert ev.score[0] == pytest.approx((39 * 0.8 + 0.95) / 40)
    ev2 = extract_events(index(200), p, threshold=0.5, min_duration=H, merge_gap=pd.Timedelta(0))
    assert len(ev2) == 2


def test_extract_events_min_duration_inclusive() -> None:
    # 25 rows = exactly 4 h from first to last timestamp: kept; 24 rows (3h50) dropped.
    p = proba_from_runs(200, [(10, 35, 0.9), (100, 124, 0.9)])
    ev = extract_events(index(200), p, min_duration=4 * H, merge_gap=pd.Timedelta(0))
    assert len(ev) == 1 and ev.end[0] - ev.start[0] == 4 * H


def test_extract_events_gap_merge() -> None:
    # runs 10..29 and 42..61: last-above to next-first = 13 steps = 2h10.
    p = proba_from_runs(100, [(10, 30, 0.9), (42, 62, 0.9)])
    idx = index(100)
    merged = extract_events(idx, p, min_duration=H, merge_gap=pd.Timedelta(minutes=130))
    assert len(merged) == 1
    assert merged.start[0] == idx[10] and merged.end[0] == idx[61]
    assert merged.score[0] == pytest.approx(p[10:62].mean())  # dip included in the score
    apart = extract_events(idx, p, min_duration=H, merge_gap=2 * H)
    assert len(apart) == 2
    # merging happens before the duration filter: two 1h40 pieces make one event.
    assert len(extract_events(idx, p, min_duration=5 * H, merge_gap=3 * H)) == 1


def test_extract_events_edges() -> None:
    idx = index(50)
    ev = extract_events(
        idx,
        proba_from_runs(50, [(0, 30, 0.7), (40, 50, 0.7)]),
        min_duration=pd.Timedelta(0),
        merge_gap=pd.Timedelta(0),
    )
    assert ev.start[0] == idx[0] and ev.end[1] == idx[-1]
    none = extract_events(idx, np.zeros(50))
    assert none.empty and list(none.columns) == ["start", "end", "score", "peak"]
    one = extract_events(idx[:1], np.array([0.9]), min_duration=pd.Timedelta(0))
    assert len(one) == 1 and one.start[0] == one.end[0]
    assert extract_events(idx[:0], np.array([])).empty
    # the threshold itself counts as "above".
    assert len(extract_events(idx, np.full(50, 0.5), threshold=0.5)) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0.0},
        {"threshold": 1.5},
        {"threshold": float("nan")},
        {"min_duration": pd.Timedelta(hours=-1)},
        {"min_duration": 4},
        {"merge_gap": "soon"},
        {"merge_gap": pd.Timedelta(minutes=-10)},
    ],
)
def test_extract_events_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        extract_events(index(10), np.zeros(10), **kwargs)


def test_extract_events_bad_inputs() -> None:
    with pytest.raises(ValueError):
        extract_events(index(10), np.zeros(9))
    with pytest.raises(ValueError):
        extract_events(index(10), np.full(10, np.nan))
    with pytest.raises(ValueError):
        extract_events(index(10), np.full(10, 1.2))
    with pytest.raises(ValueError):
        extract_events(index(10), np.zeros((10, 1)))
    with pytest.raises(ValueError):
        extract_events(pd.RangeIndex(10), np.zeros(10))
    with pytest.raises(ValueError):
        extract_events(index(10)[::-1], np.zeros(10))


# ----------------------------------------------------------------------------- scoring
def test_event_scores_ten_percent_is_not_enough() -> None:
    true = [(T0, T0 + 10 * H)]
    exactly = event_scores([(T0 + 9 * H, T0 + 12 * H)], true)
    assert (exactly["tp"], exactly["fn"], exactly["fp"]) == (0, 1, 0)  # overlaps: no FP either
    more = event_scores([(T0 + 9 * H - pd.Timedelta(minutes=1), T0 + 12 * H)], true)
    assert (more["tp"], more["fn"], more["fp"]) == (1, 0, 0)
    assert more["precision"] == 1.0 and more["recall"] == 1.0 and more["f1"] == 1.0


def test_event_scores_counts_false_positives_and_misses() -> None:
    true = [(T0, T0 + 10 * H), (T0 + 50 * H, T0 + 60 * H), (T0 + 100 * H, T0 + 110 * H)]
    pred = pd.DataFrame(
        {
            "start": [T0 + 2 * H, T0 + 20 * H, T0 + 30 * H, T0 + 55 * H],
            "end": [T0 + 8 * H, T0 + 25 * H, T0 + 31 * H, T0 + 58 * H],
        }
    )
    r = event_scores(pred, true)
    assert (r["tp"], r["fp"], r["fn"]) == (2, 2, 1)
    assert r["precision"] == pytest.approx(0.5)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_event_scores_one_prediction_two_icmes_and_touching() -> None:
    true = [(T0, T0 + 10 * H), (T0 + 12 * H, T0 + 20 * H)]
    r = event_scores([(T0, T0 + 20 * H)], true)
    assert (r["tp"], r["fp"], r["fn"]) == (2, 0, 0)
    # ending exactly where the ICME starts is zero overlap -> a false positive.
    r = event_scores([(T0 - 5 * H, T0)], [(T0, T0 + 10 * H)])
    assert (r["tp"], r["fp"], r["fn"]) == (0, 1, 1)


def test_event_scores_single_event_rule_and_empty() -> None:
    true = [(T0, T0 + 100 * H)]
    # two pieces of 6 % each: neither alone overlaps > 10 %.
    r = event_scores([(T0, T0 + 6 * H), (T0 + 50 * H, T0 + 56 * H)], true)
    assert (r["tp"], r["fp"], r["fn"]) == (0, 0, 1)
    empty = event_scores(pd.DataFrame(columns=["start", "end"]), [])
    assert (empty["tp"], empty["fp"], empty["fn"], empty["precision"]) == (0, 0, 0, 0.0)
    with pytest.raises(ValueError):
        event_scores([(T0 + H, T0)], true)
    with pytest.raises(ValueError):
        event_scores([], true, min_overlap=1.0)


def test_true_events_from_labels() -> None:
    idx = index(10)
    lab = np.array([1, 1, 0, 0, 1, np.nan, 1, 1, 0, 1], dtype=float)
    assert true_events_from_labels(idx, lab) == [
        (idx[0], idx[1]),
        (idx[4], idx[4]),
        (idx[6], idx[7]),
        (idx[9], idx[9]),
    ]
    with pytest.raises(ValueError):
        true_events_from_labels(idx, lab[:5])


# ----------------------------------------------------------------------------- inference
@pytest.mark.parametrize("n", [1, 37, 64, 150])
def test_predict_proba_short_frames_with_nans(n: int) -> None:
    f = solar_wind(n)
    f.iloc[n // 2 : n // 2 + 3] = np.nan
    p = predict_proba(f, tiny_loaded())
    assert p.shape == (n,)
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()


def test_predict_proba_all_nan_and_empty() -> None:
    f = solar_wind(20)
    f.iloc[:] = np.nan
    assert np.isfinite(predict_proba(f, tiny_loaded())).all()
    with pytest.raises(ValueError):
        predict_proba(f.iloc[:0], tiny_loaded())


def write_tiny_weights(tmp_path: Path, version: str) -> Path:
    pt = tmp_path / f"icme-{version}.pt"
    digest = save_checkpoint(pt, tiny_model(), version, {"window": 64}, DEFAULT_SCALER)
    pt.with_suffix(".json").write_text(
        json.dumps({"name": "icme", "version": version, "sha256": digest})
    )
    return pt


def test_load_model_roundtrip_and_newest(tmp_path: Path) -> None:
    write_tiny_weights(tmp_path, "0.9.0")
    write_tiny_weights(tmp_path, "0.10.0")
    assert available_versions(tmp_path) == ["0.9.0", "0.10.0"]
    m = load_model(path=tmp_path)
    assert m.info.version == "0.10.0" and m.info.name == "icme"
    assert m.info.sha256 == sha256_file(tmp_path / "icme-0.10.0.pt")
    f = solar_wind(100)
    ref = tiny_loaded()
    assert np.allclose(predict_proba(f, m), predict_proba(f, ref), atol=1e-6)


def test_load_model_unknown_version(tmp_path: Path) -> None:
    write_tiny_weights(tmp_path, "0.1.0")
    with pytest.raises(ValueError, match="0.1.0"):
        load_model("9.9.9", path=tmp_path)
    with pytest.raises(ValueError, match="available"):
        load_model("does-not-exist")  # default weights directory


def test_load_model_rejects_tampered_weights(tmp_path: Path) -> None:
    pt = write_tiny_weights(tmp_path, "0.1.0")
    with open(pt, "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ValueError, match="sha256"):
        load_model("0.1.0", path=tmp_path)


def test_committed_weights_match_card() -> None:
    versions = available_versions(WEIGHTS_DIR)
    if not versions:
        pytest.skip(f"no committed icme weights in {WEIGHTS_DIR}")
    for v in versions:
        pt = WEIGHTS_DIR / f"icme-{v}.pt"
        card = json.loads(pt.with_suffix(".json").read_text())
        assert card["sha256"] == sha256_file(pt)
        assert card["name"] == "icme" and card["version"] == v
        assert pt.stat().st_size < 3_000_000  # small: 2.2.0 holds 5 networks (2.5 MB)
        m = load_model(v)
        assert m.info.sha256 == card["sha256"]
        p = predict_proba(solar_wind(300), m)
        assert p.shape == (300,) and np.isfinite(p).all()
