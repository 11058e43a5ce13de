"""icme and crossings load and save through epnml.ml.checkpoints (issue #12).

Their private copies of load/save were replaced by the shared one: the committed weights
must give exactly the outputs of the former loader (re-implemented here, independently of
epnml.ml.checkpoints), and a save/load round trip must keep weights, config and scaler.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from epnml.ml.checkpoints import sha256_file
from epnml.ml.crossings import inference as crossings
from epnml.ml.crossings.features import N_FEATURES
from epnml.ml.crossings.features import Scaler as CrossingsScaler
from epnml.ml.crossings.model import CrossingsTCN
from epnml.ml.crossings.model import ModelConfig as CrossingsConfig
from epnml.ml.icme import inference as icme
from epnml.ml.icme.features import DEFAULT_SCALER, N_CHANNELS
from epnml.ml.icme.features import Scaler as IcmeScaler
from epnml.ml.icme.model import ICMESegmenter
from epnml.ml.icme.model import ModelConfig as IcmeConfig


def _former_load(pt: Path, build: Callable[[dict[str, Any]], torch.nn.Module]
                 ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """What icme/crossings ``load_model`` did before: torch.load, float32, eval."""
    ckpt = torch.load(pt, map_location="cpu", weights_only=True)
    module = build(ckpt["config"]["model"])
    module.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()})
    module.eval()
    return module, ckpt


def _icme_input() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(N_CHANNELS, 1500)).astype(np.float32)


def _crossings_input() -> np.ndarray:
    return np.random.default_rng(2).normal(size=(3000, N_FEATURES)).astype(np.float32)


@pytest.mark.skipif(not icme.available_versions(), reason="no committed icme weights")
def test_icme_committed_weights_give_the_former_outputs() -> None:
    model = icme.load_model("1.0.0")
    pt = icme.WEIGHTS_DIR / "icme-1.0.0.pt"
    former, ckpt = _former_load(pt, lambda cfg: ICMESegmenter(IcmeConfig.from_dict(cfg)))
    assert model.info == icme.ModelInfo("icme", "1.0.0", sha256_file(pt))
    assert model.config == ckpt["config"]
    assert model.scaler.to_dict() == IcmeScaler.from_dict(ckpt["scaler"]).to_dict()
    x = _icme_input()
    new = icme.predict_array(x, model.module, model.window)
    old = icme.predict_array(x, former, model.window)  # type: ignore[arg-type]
    assert new.shape == (1500,)
    assert np.array_equal(new, old)


@pytest.mark.skipif(not crossings.available_versions(), reason="no committed crossings weights")
def test_crossings_committed_weights_give_the_former_outputs() -> None:
    model = crossings.load_model("1.0.0")
    pt = crossings.WEIGHTS_DIR / "crossings-1.0.0.pt"
    former, ckpt = _former_load(pt, lambda cfg: CrossingsTCN(CrossingsConfig.from_dict(cfg)))
    assert model.info.sha256 == sha256_file(pt)
    assert model.scaler.to_dict() == CrossingsScaler.from_dict(ckpt["scaler"]).to_dict()
    x = _crossings_input()
    new = crossings.predict_array(x, model.module)
    old = crossings.predict_array(x, former)  # type: ignore[arg-type]
    assert new.shape == (3000, 5)
    assert np.array_equal(new, old)


def _card(pt: Path, name: str, version: str) -> None:
    pt.with_suffix(".json").write_text(json.dumps(
        {"name": name, "version": version, "sha256": sha256_file(pt)}))


def test_icme_round_trip_keeps_weights_config_and_scaler(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = ICMESegmenter(IcmeConfig(base_width=4, depth=2)).eval()
    scaler = DEFAULT_SCALER
    config = {"window": 256, "postprocess": {"threshold": 0.4}}
    pt = tmp_path / "icme-0.0.1.pt"
    digest = icme.save_checkpoint(pt, module, "0.0.1", config, scaler)
    _card(pt, "icme", "0.0.1")
    loaded = icme.load_model(path=pt)
    assert loaded.info == icme.ModelInfo("icme", "0.0.1", digest)
    assert loaded.config == {**config, "model": module.config.to_dict()}
    assert loaded.scaler.to_dict() == scaler.to_dict()
    x = _icme_input()[:, :256]
    assert np.array_equal(icme.predict_array(x, loaded.module, 256),
                          icme.predict_array(x, module, 256))


def test_crossings_round_trip_and_refusals(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = CrossingsTCN(CrossingsConfig()).eval()
    scaler = CrossingsScaler(mean=(0.0,) * N_FEATURES, std=(1.0,) * N_FEATURES)
    pt = tmp_path / "crossings-0.0.1.pt"
    crossings.save_checkpoint(pt, module, "0.0.1", {"postprocess": {}}, scaler)
    _card(pt, "crossings", "0.0.1")
    loaded = crossings.load_model(path=pt)
    x = _crossings_input()[:500]
    assert np.array_equal(crossings.predict_array(x, loaded.module),
                          crossings.predict_array(x, module))
    # an icme file renamed as a crossings version is not a crossings checkpoint
    other = tmp_path / "icme-0.0.2.pt"
    icme.save_checkpoint(other, ICMESegmenter(IcmeConfig(base_width=4, depth=2)), "0.0.2",
                         {}, DEFAULT_SCALER)
    wrong = tmp_path / "crossings-0.0.2.pt"
    other.rename(wrong)
    _card(wrong, "crossings", "0.0.2")
    with pytest.raises(ValueError, match=r"crossings-0\.0\.2\.pt: not a crossings checkpoint$"):
        crossings.load_model(path=wrong)
    # a checkpoint without the feature scaler is refused, not run unscaled
    from epnml.ml.checkpoints import save_checkpoint

    bare = tmp_path / "crossings-0.0.3.pt"
    save_checkpoint(bare, "crossings", "0.0.3", module, {}, half=False)
    _card(bare, "crossings", "0.0.3")
    with pytest.raises(ValueError, match=r"^crossings-0\.0\.3\.pt: checkpoint has no scaler$"):
        crossings.load_model(path=bare)
