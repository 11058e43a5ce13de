"""Crater resolution bands (issue #14): one version for CTX tiles and global mosaics, the
band picked from the georeference or ``pixel_scale_m`` (operational: never a version)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from epnml.ingest.spec import defaults, validate_params
from epnml.ingest.stage import GranuleError, RunContext
from epnml.ingest.stages.craters import CratersStage
from epnml.ml.craters.bands import BandedConfig, BandedCraterNet, band_dict, choose
from epnml.ml.craters.inference import WEIGHTS_DIR, available_versions, circles, load_model
from epnml.ml.craters.net import CraterNet, CraterNetConfig
from epnml.ml.imagery.detector import DetectorConfig, PitsDetector
from tests.fixtures.make_craters_fixtures import make_craters_fixtures

BANDED = "2.1.0"
DEFAULT = "2.3.0"
CTX = RunContext("run-test", "http://f", datetime(2026, 1, 2, 3, 4, 5), make_quicklooks=False)
needs_banded = pytest.mark.skipif(BANDED not in available_versions(),
                                  reason="no committed banded craters weights")


def _banded(ctx_max: float = 100.0) -> BandedCraterNet:
    return BandedCraterNet(BandedConfig(bands=(
        band_dict("ctx", 1.0, ctx_max, CraterNetConfig().to_dict(),
                  {"input_scale": 1.5, "threshold": 0.45}, "test ctx"),
        band_dict("mosaic", 1000.0, 30000.0, DetectorConfig(n_classes=1).to_dict(),
                  {"input_scale": 2.0, "threshold": 0.4}, "test mosaic"))))


def test_band_choice_by_scale() -> None:
    net = _banded()
    assert choose(net, {}, None, "x").band.name == "ctx"  # type: ignore[union-attr]
    ctx = choose(net, {}, 5.5, "x")
    assert (ctx.band.name, ctx.input_scale, ctx.threshold) == ("ctx", 1.5, 0.45)  # type: ignore[union-attr]
    assert isinstance(ctx.module, CraterNet)
    mosaic = choose(net, {}, 20_840.0, "x")
    assert (mosaic.band.name, mosaic.input_scale, mosaic.threshold) == ("mosaic", 2.0, 0.4)  # type: ignore[union-attr]
    assert isinstance(mosaic.module, PitsDetector)
    assert choose(net, {}, 1.0, "x").band.name == "ctx"  # type: ignore[union-attr]
    assert choose(net, {}, 1000.0, "x").band.name == "mosaic"  # type: ignore[union-attr]


@pytest.mark.parametrize("scale, shown", [(100.0, "100"), (500.0, "500"), (0.25, "0.25"),
                                          (30_000.0, "30,000")])
def test_scale_outside_every_band_is_refused(scale: float, shown: str) -> None:
    with pytest.raises(ValueError) as err:
        choose(_banded(), {}, scale, "9.9.9")
    assert str(err.value) == (
        f"pixel scale {shown} m/px is outside the resolution bands of craters 9.9.9 "
        "(ctx 1-100 m/px; mosaic 1,000-30,000 m/px); resample the image into a band")


def test_one_network_versions_have_no_bands() -> None:
    net = PitsDetector(DetectorConfig(n_classes=1))
    c = choose(net, {"input_scale": 2.0, "threshold": 0.4}, 500.0, "1.0.0")
    assert c.band is None and c.module is net and (c.input_scale, c.threshold) == (2.0, 0.4)


def test_overlapping_bands_are_refused() -> None:
    with pytest.raises(ValueError, match="bands ctx and mosaic overlap"):
        _banded(ctx_max=2000.0)


def test_banded_net_is_not_called_whole() -> None:
    with pytest.raises(TypeError, match="choose_band first"):
        _banded()(torch.zeros(1, 1, 32, 32))


def test_pixel_scale_is_operational_never_a_version() -> None:
    validated, derived = validate_params("craters", {"pixel_scale_m": "5.5", "target": "mars"})
    assert validated == {"pixel_scale_m": 5.5, "target": "Mars"}
    assert derived == {}
    with pytest.raises(ValueError) as err:
        validate_params("craters", {"pixel_scale_m": -3})
    assert str(err.value) == "craters: pixel_scale_m must be in (0, 1000000], got -3"


@needs_banded
def test_committed_banded_version_is_default_and_carries_both_networks() -> None:
    model = load_model()
    # the default: 2.3.0 (a new ctx network and its recipe, validation F1 0.447 > 2.2.0's 0.446)
    assert model.info.version == DEFAULT and model.banded
    one_0 = load_model("1.0.0").module.state_dict()
    for version in (BANDED, "2.2.0", DEFAULT):
        mosaic = load_model(version).module.nets["mosaic"].state_dict()  # type: ignore[union-attr]
        assert sorted(mosaic) == sorted(one_0)
        assert all(torch.equal(mosaic[k], one_0[k]) for k in one_0)
        card = json.loads((WEIGHTS_DIR / f"craters-{version}.json").read_text())
        assert card["inference"]["bands"]["ctx"]["pixel_scale_m"] == [1.0, 100.0]
        assert card["inference"]["bands"]["mosaic"]["pixel_scale_m"] == [1000.0, 30000.0]
    assert defaults("craters") == {"threshold": None, "target": None, "pixel_scale_m": None}
    assert load_model("2.0.0").info.version == "2.0.0"  # stays loadable


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_craters_fixtures(tmp_path_factory.mktemp("craters_bands"))


def _spy(seen: list[Any]) -> Any:
    def detect(image: np.ndarray, model: Any, **kw: Any) -> pd.DataFrame:
        seen.append(kw["band"])
        return circles(np.array([[40.0, 40.0, 60.0, 60.0, 0.0, 0.7]]), kw.get("lat_of_row"),
                       float(image.shape[0]))
    return detect


@needs_banded
def test_stage_picks_the_band(fx: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import epnml.ml.craters.inference as craters

    seen: list[Any] = []
    monkeypatch.setattr(craters, "detect", _spy(seen))
    stage = CratersStage(BANDED)
    (mars,) = stage.granules([fx["mars"]])  # 0.02 deg/px of Mars: 1,185.5 m/px
    (row,) = stage.process(mars, CTX).rows
    assert "resolution band mosaic 1,000-30,000 m/px (image: 1,185.5 m/px)" \
        in row["processing_level_desc"]
    (chip,) = stage.granules([fx["chip_png"]])
    for params, band in (({"target": "Mars"}, "ctx"),
                         ({"target": "Mars", "pixel_scale_m": 6}, "ctx"),
                         ({"target": "Mars", "pixel_scale_m": 5000}, "mosaic")):
        out = stage.process(chip, RunContext("r", "http://f", CTX.started, params=params,
                                             make_quicklooks=False))
        assert seen[-1].band.name == band
        assert out.rows[0]["ml_model_version"] == BANDED  # no derived version
    assert [c.band.name for c in seen] == ["mosaic", "ctx", "ctx", "mosaic"]


@needs_banded
@pytest.mark.parametrize("name, params, message", [
    ("chip_png", {"target": "Mars", "pixel_scale_m": 300},
     "pixel scale 300 m/px is outside the resolution bands of craters 2.1.0 "
     "(ctx 1-100 m/px; mosaic 1,000-30,000 m/px); resample the image into a band"),
    ("mars", {"pixel_scale_m": 6},
     "georeference says 1,185.5 m/px, parameter pixel_scale_m says 6.0"),
])
def test_stage_refuses_scales(fx: dict[str, Path], name: str, params: dict[str, Any],
                              message: str) -> None:
    stage = CratersStage(BANDED)
    (g,) = stage.granules([fx[name]])
    with pytest.raises(GranuleError) as err:
        stage.process(g, RunContext("r", "http://f", CTX.started, params=params))
    assert str(err.value).endswith(f"{fx[name].name}: {message}")
