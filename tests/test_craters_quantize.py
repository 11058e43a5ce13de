"""The int8 trial of the craters CTX network (issue #14, speed): the traceable copy it
quantizes computes what the float inference copy computes, and the int8 module runs
through tiled inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from epnml.experiments.craters.quantize import DictOutput, quantize, traceable_copy
from epnml.ml.craters.net import CraterNet
from epnml.ml.fuse import inference_copy
from epnml.ml.pits.inference import detect_array


def _net() -> CraterNet:
    torch.manual_seed(3)
    net = CraterNet().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding matters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return net


@pytest.mark.parametrize("shape", [(64, 64), (96, 160), (512, 512)])
def test_traceable_copy_equals_the_inference_copy(shape: tuple[int, int]) -> None:
    net = _net()
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 1, *shape)).astype(np.float32))
    with torch.inference_mode():
        want = inference_copy(net)(x)
        got = traceable_copy(net)(x)
    for name, tensor in zip(("heatmap", "size", "offset"), got, strict=True):
        assert tensor.shape == want[name].shape
        torch.testing.assert_close(tensor, want[name], rtol=1e-4, atol=1e-4)


def test_traceable_copy_is_fx_traceable() -> None:
    graph = torch.fx.symbolic_trace(traceable_copy(_net()))
    x = torch.randn(1, 1, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(graph(x)[0], traceable_copy(_net())(x)[0])


def test_int8_module_runs_tiled_inference_and_stays_near_float() -> None:
    net = _net()
    rng = np.random.default_rng(1)
    calib = [rng.normal(size=(64, 64)).astype(np.float32) for _ in range(4)]
    int8 = quantize(net, calib, "onednn")
    assert any("quantized" in type(m).__module__ for m in int8.modules())
    x = torch.from_numpy(rng.normal(size=(1, 1, 64, 64)).astype(np.float32))
    with torch.inference_mode():
        got, want = int8(x), inference_copy(net)(x)
    # the untrained heatmap is nearly constant (focal prior), so compare the box heads:
    # int8 error well below the spread of the float outputs
    for name in ("size", "offset"):
        error = float((got[name] - want[name]).pow(2).mean().sqrt() / want[name].std())
        assert error < 0.2, name
    dets = detect_array(rng.normal(size=(100, 90)), int8, scale=1.0, min_score=0.0)
    assert dets.shape[1] == 6 and len(dets) > 0


def test_int8_refuses_tiles_it_was_not_traced_for_and_bad_settings() -> None:
    net = _net()
    with pytest.raises(ValueError, match="multiples of 32"):
        DictOutput(traceable_copy(net), net)(torch.zeros(1, 1, 48, 64))
    with pytest.raises(ValueError, match="engine 'nope'"):
        quantize(net, [np.zeros((64, 64), np.float32)], "nope")
    with pytest.raises(ValueError, match="at least one tile"):
        quantize(net, [], "onednn")
