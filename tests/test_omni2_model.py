"""icme 2.x pieces: the model sees the 10-min frame at 1 h; the IWF false-positive rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from epnml.experiments.icme.evaluate import IWF_MIN_FP_DURATION, event_scores
from epnml.experiments.icme.train_omni2 import SPLIT_YEARS, hourly_labels
from epnml.ingest.stage import ModelInfo
from epnml.ml.icme.features import DEFAULT_SCALER, FEATURES
from epnml.ml.icme.inference import LoadedModel, predict_proba, to_model_cadence
from epnml.ml.icme.model import ICMESegmenter, ModelConfig


def _frame(rows: int) -> pd.DataFrame:
    idx = pd.date_range("2015-03-01 00:30", periods=rows, freq="10min", name="time")
    rng = np.random.default_rng(3)
    data = {c: rng.uniform(1.0, 2.0, rows) for c in FEATURES}
    data["vt"] = rng.uniform(350, 450, rows)
    return pd.DataFrame(data, index=idx)


def test_hourly_model_gives_one_probability_per_10min_row() -> None:
    torch.manual_seed(0)
    module = ICMESegmenter(ModelConfig(base_width=4, depth=2, max_width=8)).eval()
    model = LoadedModel(module, ModelInfo("icme", "test", "0" * 64),
                        {"window": 32, "cadence_min": 60}, DEFAULT_SCALER)
    frame = _frame(6 * 40 + 1)  # 00:30 .. 40 h later
    p = predict_proba(frame, model)
    assert p.shape == (len(frame),)
    hours = frame.index.floor("1h")
    for h in np.unique(hours):  # constant within each hour
        assert np.ptp(p[hours == h]) == 0.0
    assert len(to_model_cadence(frame, pd.Timedelta(hours=1))) == 41


def test_iwf_rule_short_unmatched_prediction_is_not_false_positive() -> None:
    t = pd.Timestamp("2015-01-01")
    truth = [(t + pd.Timedelta(hours=10), t + pd.Timedelta(hours=30))]
    pred = [(t, t + pd.Timedelta(hours=2)),                       # 2 h, unmatched: ignored
            (t + pd.Timedelta(hours=40), t + pd.Timedelta(hours=43)),  # 3 h, unmatched: FP
            (t + pd.Timedelta(hours=12), t + pd.Timedelta(hours=20))]  # detects the ICME
    r = event_scores(pred, truth, min_fp_duration=IWF_MIN_FP_DURATION)
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 0)
    assert event_scores(pred, truth)["fp"] == 2


def test_split_years_are_disjoint_and_phases_covered() -> None:
    from epnml.experiments.icme.train_omni2 import PHASE

    years = [y for part in SPLIT_YEARS.values() for y in part]
    assert sorted(years) == list(range(1998, 2019))
    for part in ("train", "val", "test"):
        phases = {PHASE[y] for y in SPLIT_YEARS[part]}
        assert {"minimum", "maximum"} <= phases, part


def test_hourly_labels_mark_overlapping_hours() -> None:
    idx = pd.date_range("2015-01-01", periods=10, freq="1h")
    lab = hourly_labels(idx, [(pd.Timestamp("2015-01-01 02:40"), pd.Timestamp("2015-01-01 05:00"))])
    assert lab.tolist() == [0, 0, 1, 1, 1, 1, 0, 0, 0, 0]


@pytest.mark.parametrize("version", ["2.0.0", "2.1.0", "2.2.0"])
def test_committed_hourly_model_loads(version: str) -> None:
    from epnml.ml.icme.inference import available_versions, load_model

    if version not in available_versions():
        pytest.skip(f"icme {version} not committed")
    model = load_model(version)
    assert model.config["cadence_min"] == 60
    p = predict_proba(_frame(6 * 24 * 12), model)
    assert p.shape == (6 * 24 * 12,) and np.isfinite(p).all()


def test_default_version_reproduces_its_card_on_a_real_validation_year(shared_data: Path
                                                                       ) -> None:
    """The default icme version on ONE real OMNI2 validation file (2013), as a user runs
    it, finds the events its card lists for that year (test years are never read here)."""
    import json

    from epnml.experiments.icme.train_omni2 import OMNI2_DIR, icmecat_wind, year_scores
    from epnml.ingest.readers.omni2 import read_omni2
    from epnml.ml.icme.inference import WEIGHTS_DIR, available_versions, load_model

    version = available_versions()[-1]
    model = load_model()
    assert model.info.version == version
    card = json.loads((WEIGHTS_DIR / f"icme-{version}.json").read_text())
    if "2013" not in card.get("metrics", {}).get("val", {}).get(version, {}).get("per_year", {}):
        pytest.skip(f"icme {version}'s card has no validation figures for 2013")
    assert 2013 in SPLIT_YEARS["val"]
    frame = read_omni2([shared_data / OMNI2_DIR / "omni2_2013.dat"])
    got = year_scores(pd.DatetimeIndex(frame.index), predict_proba(frame, model),
                      icmecat_wind(shared_data), [2013], model.postprocess(),
                      pd.Timedelta(minutes=10))[2013]
    expected = card["metrics"]["val"][version]["per_year"]["2013"]
    assert {k: got[k] for k in expected} == expected


def _physical_frame(rows: int, seed: int) -> pd.DataFrame:
    """A plausible solar wind (values well inside the scaler's clip range), derived columns
    computed from the base ones as every reader does."""
    from epnml.ingest.readers.solarwind import derive_columns

    idx = pd.date_range("2015-03-01", periods=rows, freq="1h", name="time")
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"bx": rng.uniform(-4, 4, rows), "by": rng.uniform(-4, 4, rows),
                          "bz": rng.uniform(-4, 4, rows), "vt": rng.uniform(350, 500, rows),
                          "np": rng.uniform(3, 8, rows), "tp": rng.uniform(4e4, 1.2e5, rows)},
                         index=idx)
    frame["bt"] = np.sqrt(frame.bx ** 2 + frame.by ** 2 + frame.bz ** 2)
    return derive_columns(frame)


def test_gain_augment_equals_rescaling_the_raw_listing() -> None:
    """Augmenting in the scaled space is the same as multiplying B, n, T of the listing
    and deriving beta, pdyn, T/Texp again; data gaps stay 'unknown'."""
    from epnml.experiments.icme.train_omni2 import SCALER, gain_augment
    from epnml.ingest.readers.solarwind import derive_columns
    from epnml.ml.icme.features import frame_to_array

    frame = _physical_frame(48, seed=5)
    gains = {"B": 1.25, "n": 0.8, "T": 1.3}
    scaled_frame = frame.copy()
    for c in ("bx", "by", "bz", "bt"):
        scaled_frame[c] *= gains["B"]
    scaled_frame["np"] *= gains["n"]
    scaled_frame["tp"] *= gains["T"]
    expected = frame_to_array(derive_columns(scaled_frame), SCALER)

    xb = torch.from_numpy(frame_to_array(frame, SCALER))[None].clone()
    xb[0, :, 10:14] = 0.0  # a data gap: values 0, mask 0
    expected[:, 10:14] = 0.0
    log_gains = torch.tensor([[np.log10(gains["B"]), np.log10(gains["n"]),
                               np.log10(gains["T"])]], dtype=torch.float32)
    gain_augment(xb, log_gains, SCALER)
    np.testing.assert_allclose(xb[0].numpy(), expected, atol=2e-5)
    with pytest.raises(ValueError, match="shape"):
        gain_augment(xb, log_gains[:, :2], SCALER)


def test_wilson_interval_known_values_and_bad_counts() -> None:
    from epnml.experiments.icme.evaluate import counts_intervals, wilson_interval

    assert wilson_interval(5, 10) == (0.237, 0.763)  # centre 0.5, half 0.2634
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError, match="k=11, n=10"):
        wilson_interval(11, 10)
    got = counts_intervals({"tp": 50, "fp": 33, "fn": 17})
    assert got["precision"] == 0.602 and got["recall"] == 0.746
    lo, hi = got["precision_95"]
    assert lo < 0.602 < hi and hi - lo > 0.15  # 83 predictions: a wide interval


def test_card_intervals_read_counts_of_the_committed_cards() -> None:
    import json

    from epnml.experiments.icme.train_omni2 import card_intervals
    from epnml.ml.icme.inference import WEIGHTS_DIR

    card = json.loads((WEIGHTS_DIR / "icme-2.1.0.json").read_text())
    got = card_intervals(card)
    test = card["metrics"]["test"]["icmecat"]["pooled"]
    assert (got["test_years"]["tp"], got["test_years"]["fp"]) == (test["tp"], test["fp"])
    assert set(got["test_years_by_phase"]) == {"maximum", "declining", "minimum"}
    other = card["metrics"]["test"]["other_data_never_trained_on"].values()
    assert got["other_data_pooled"]["tp"] == sum(v["tp"] for v in other)
    assert got["other_data_pooled"]["fn"] == sum(v["fn"] for v in other)
    with pytest.raises(ValueError, match="no metrics"):
        card_intervals({"name": "icme", "version": "9.9.9"})
    oof = json.loads((WEIGHTS_DIR / "icme-2.2.0-oof.json").read_text())
    est = card_intervals({"name": "icme", "version": "2.2.0"}, oof)["out_of_fold_17_years"]
    lo, hi = est["precision_95"]
    assert lo < est["precision"] < hi and est["tp"] + est["fn"] == 277


def test_final_test_refuses_a_card_that_already_holds_test_figures(tmp_path: Path) -> None:
    """The test years are read once per version: checked before any data is read."""
    import json

    from epnml.experiments.icme.train_omni2 import main

    card = tmp_path / "icme-9.0.0.json"
    card.write_text(json.dumps({"name": "icme", "version": "9.0.0",
                                "metrics": {"val": {}, "test": {"icmecat": {}}}}))
    with pytest.raises(SystemExit, match="already holds test figures"):
        main(["--version", "9.0.0", "--out", str(tmp_path), "--final-test"])
    with pytest.raises(SystemExit, match="no such card"):
        main(["--version", "9.1.0", "--out", str(tmp_path), "--final-test"])


def test_misses_by_strength_counts_match_the_card(shared_data: Path) -> None:
    """The miss analysis on the validation years finds exactly the card's detections, and
    its bins partition the ICMEs; it refuses test years."""
    import json

    from epnml.experiments.icme.train_omni2 import misses_by_strength
    from epnml.ml.icme.inference import WEIGHTS_DIR, available_versions

    version = available_versions()[-1]
    card = json.loads((WEIGHTS_DIR / f"icme-{version}.json").read_text())
    pooled_val = card["metrics"]["val"][version]["pooled"]
    got = misses_by_strength(version)
    assert (got["n"], got["detected"]) == (pooled_val["n_true"], pooled_val["tp"])
    assert len(got["missed"]) == pooled_val["fn"]
    for bins in got["by"].values():
        assert sum(b["n"] for b in bins.values()) == got["n"]
    assert list(got["by"]["mo_bmean"])[:3] == ["< 8 nT", "8-12 nT", ">= 12 nT"]
    with pytest.raises(ValueError, match="non-test years only"):
        misses_by_strength(version, years=[2000])
