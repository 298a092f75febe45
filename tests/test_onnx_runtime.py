"""Tests of porescope.segmentation.onnx_runtime and the onnxruntime backend of predict_proba.

The reference is torch eager on the same random-init network: ONNX Runtime must reproduce its
probabilities within PROBA_TOL and its decisions exactly (a pixel whose probability lies within
PROBA_TOL of the threshold could flip; none does on these inputs, and the test says how many
may), and give the same output twice.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from porescope.segmentation.inference import decide, predict_proba, resolve_backend
from porescope.segmentation.models import build_model
from porescope.segmentation.onnx_runtime import OnnxModel, export_onnx, onnx_model_for

torch.set_num_threads(2)

PROBA_TOL = 1e-4  # stated tolerance between ONNX Runtime and torch probabilities


def _net(classes: int = 1, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model({"arch": "Unet", "encoder": "tu-mobilenetv3_small_100", "classes": classes,
                        "in_channels": 1, "encoder_depth": 5}).eval()


def _image(shape, seed=3) -> np.ndarray:
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    smooth = ndi.gaussian_filter(rng.normal(size=shape), 4)
    return np.clip(128 + 400 * smooth + rng.normal(0, 8, shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def net():
    return _net()


def _flips_allowed(p_ref: np.ndarray) -> int:
    """Pixels whose decision may legitimately differ: probability within PROBA_TOL of 0.5."""
    return int((np.abs(p_ref - 0.5) <= PROBA_TOL).sum())


def test_export_has_dynamic_batch_and_size(net, tmp_path):
    path = export_onnx(net, tmp_path / "model.onnx")
    assert path.exists() and path.stat().st_size > 0
    m = OnnxModel(path, threads=1)
    for shape in [(1, 1, 64, 64), (3, 1, 96, 160)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            ref = net(x).numpy()
        got = m(x.numpy())
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_export_restores_training_mode(tmp_path):
    net = _net()
    net.train()
    export_onnx(net, tmp_path / "m.onnx")
    assert net.training


@pytest.mark.parametrize("classes", [1, 3])
@pytest.mark.parametrize("kw", [{}, {"tta": True, "batch_size": 3}])
def test_onnxruntime_backend_matches_torch(classes, kw):
    net = _net(classes)
    img = _image((200, 333))
    ref = predict_proba(net, img, tile=128, overlap=32, **kw)
    got = predict_proba(net, img, tile=128, overlap=32, backend="onnxruntime", threads=2, **kw)
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert float(np.abs(got - ref).max()) <= PROBA_TOL
    differ = int((decide(got) != decide(ref)).sum())
    assert differ <= (_flips_allowed(ref[0]) if classes == 1 else 0)
    again = predict_proba(net, img, tile=128, overlap=32, backend="onnxruntime", threads=2, **kw)
    assert np.array_equal(got, again)


def test_auto_backend_and_tile(net):
    img = _image((150, 170))
    assert resolve_backend("auto", torch.device("cpu")) == "onnxruntime"
    assert resolve_backend("auto", torch.device("cuda")) == "torch"
    ref = predict_proba(net, img, tile="auto")
    got = predict_proba(net, img, tile="auto", backend="auto")
    assert float(np.abs(got - ref).max()) <= PROBA_TOL
    with pytest.raises(ValueError, match="backend"):
        predict_proba(net, img, backend="tensorrt")
    with pytest.raises(ValueError, match="auto"):
        predict_proba(net, img, tile="big")


def test_onnx_model_accepted_and_cache_follows_weights(net):
    img = _image((64, 64))
    m = onnx_model_for(net, 2)
    assert onnx_model_for(net, 2) is m  # cached while the weights are unchanged
    with pytest.raises(TypeError, match="torch"):
        predict_proba(m, img, tile=64, overlap=16)
    direct = predict_proba(m, img, tile=64, overlap=16, backend="onnxruntime")
    via_net = predict_proba(net, img, tile=64, overlap=16, backend="onnxruntime", threads=2)
    assert np.array_equal(direct, via_net)

    changed = _net(seed=1)
    before = predict_proba(changed, img, tile=64, overlap=16, backend="onnxruntime")
    with torch.no_grad():
        changed.load_state_dict(net.state_dict())  # in place: the cached session must be redone
    after = predict_proba(changed, img, tile=64, overlap=16, backend="onnxruntime")
    assert not np.array_equal(before, after)
    assert np.array_equal(after, predict_proba(net, img, tile=64, overlap=16, backend="onnxruntime"))


def test_onnx_model_rejects_bad_input(net):
    m = onnx_model_for(net, 1)
    with pytest.raises(ValueError, match="N x 1"):
        m(np.zeros((1, 2, 32, 32), np.float32))
