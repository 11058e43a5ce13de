"""icme 3.x: the fold ensemble loads and predicts through the stage's public path, and the
year folds are a phase-stratified partition of the non-test years."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from epnml.experiments.icme.train_omni2 import PHASE, SPLIT_YEARS
from epnml.experiments.icme.train_omni2_folds import NON_TEST_YEARS, adoption, assign_folds
from epnml.ml.icme.features import DEFAULT_SCALER, FEATURES
from epnml.ml.icme.inference import load_model, predict_array, predict_proba, save_checkpoint
from epnml.ml.icme.model import EnsembleConfig, ICMEEnsemble, ICMESegmenter, ModelConfig

CFG = ModelConfig(base_width=4, max_width=8, depth=2, kernel_size=3, aspp_rates=(1, 2),
                  se_reduction=2, dropout=0.0)


def _net(seed: int, cfg: ModelConfig = CFG) -> ICMESegmenter:
    torch.manual_seed(seed)
    return ICMESegmenter(cfg).eval()


def _frame(rows: int) -> pd.DataFrame:
    idx = pd.date_range("2015-03-01", periods=rows, freq="10min", name="time")
    rng = np.random.default_rng(5)
    data = {c: rng.uniform(1.0, 3.0, rows) for c in FEATURES}
    data["vt"] = rng.uniform(300, 700, rows)
    data["bz"] = rng.normal(0.0, 5.0, rows)
    return pd.DataFrame(data, index=idx)[FEATURES]


def _save(tmp_path: Path, module: ICMESegmenter | ICMEEnsemble, version: str) -> Path:
    pt = tmp_path / f"icme-{version}.pt"
    cfg = {"window": 32, "cadence_min": 60,
           "postprocess": {"threshold": 0.6, "min_duration_h": 12.0, "merge_gap_h": 1.0}}
    digest = save_checkpoint(pt, module, version, cfg, DEFAULT_SCALER)
    pt.with_suffix(".json").write_text(json.dumps({"name": "icme", "version": version,
                                                   "sha256": digest}))
    return pt


def test_ensemble_of_identical_members_equals_the_member(tmp_path: Path) -> None:
    net = _net(1)
    _save(tmp_path, net, "2.9.0")
    _save(tmp_path, ICMEEnsemble.from_members([net, net, net, net]), "3.9.0")
    single, ens = load_model("2.9.0", path=tmp_path), load_model("3.9.0", path=tmp_path)
    assert isinstance(ens.module, ICMEEnsemble) and len(ens.module.members) == 4
    assert isinstance(single.module, ICMESegmenter)
    assert ens.postprocess() == single.postprocess()
    frame = _frame(6 * 24 * 5 + 3)
    p1, p4 = predict_proba(frame, single), predict_proba(frame, ens)
    assert p1.shape == p4.shape == (len(frame),)
    assert np.ptp(p1) > 0.0  # the member's output varies, so equality means something
    np.testing.assert_allclose(p4, p1, atol=1e-6)


def test_ensemble_is_the_mean_probability_of_its_members() -> None:
    a, b = _net(1), _net(2)
    x = np.random.default_rng(0).normal(size=(CFG.in_channels, 100)).astype(np.float32)
    pa, pb = predict_array(x, a, 32), predict_array(x, b, 32)
    assert np.abs(pa - pb).max() > 1e-3
    np.testing.assert_allclose(predict_array(x, ICMEEnsemble.from_members([a, b]), 32),
                               (pa + pb) / 2, atol=1e-6)


def test_ensemble_config_and_members_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ICMEEnsemble.from_members([])
    with pytest.raises(ValueError, match="at least one"):
        EnsembleConfig(0, CFG)
    with pytest.raises(ValueError, match="one architecture"):
        ICMEEnsemble.from_members([_net(1), _net(1, ModelConfig(base_width=2, max_width=8,
                                                                depth=2))])
    with pytest.raises(ValueError, match="ensemble config"):
        EnsembleConfig.from_dict({"n_members": 2})
    cfg = EnsembleConfig(3, CFG)
    assert EnsembleConfig.from_dict(cfg.to_dict()) == cfg


def test_folds_partition_the_non_test_years_stratified_by_phase() -> None:
    folds = assign_folds(NON_TEST_YEARS, 4, 42)
    years = [y for f in folds for y in f]
    assert sorted(years) == NON_TEST_YEARS and len(years) == len(set(years)) == 17
    assert not set(years) & set(SPLIT_YEARS["test"])
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for phase in set(PHASE.values()):  # each phase spread as evenly as the deal allows
        per_fold = [sum(PHASE[y] == phase for y in f) for f in folds]
        assert max(per_fold) - min(per_fold) <= 1, (phase, per_fold)
    assert assign_folds(NON_TEST_YEARS, 4, 42) == folds
    assert assign_folds(NON_TEST_YEARS, 4, 7) != folds
    assert Counter(len(f) for f in assign_folds(NON_TEST_YEARS, 2, 42)) == Counter({9: 1, 8: 1})
    with pytest.raises(ValueError, match="folds"):
        assign_folds(NON_TEST_YEARS, 1, 42)


def test_adoption_needs_both_conditions() -> None:
    assert adoption(0.66, 0.6573, 0.70, 0.6573)["adopted"]
    assert not adoption(0.65, 0.6573, 0.70, 0.6573)["adopted"]
    assert not adoption(0.66, 0.6573, 0.65, 0.6573)["adopted"]


def test_folds_cli_needs_a_version_unless_estimating_one(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from epnml.experiments.icme.train_omni2_folds import main

    assert main(["--show-folds"]) == 0  # reads no data
    assert len(json.loads(capsys.readouterr().out)["folds"]) == 4
    with pytest.raises(SystemExit):
        main([])
    assert "--version is required (or --oof-of VERSION)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--oof-of", "2.2.0", "--threads", "0"])
    assert "--threads must be >= 1" in capsys.readouterr().err
