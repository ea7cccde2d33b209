"""examples/onnx_edit.py: ResNet-18 from ONNX, ReLU->GELU in layer4, INT8 except layer4, against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import reference

from .._onnx_models import MODELS, export
from ._load import example

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytestmark = [pytest.mark.usefixtures("trt"), pytest.mark.slow]


def _torch_edited():
    model = MODELS["resnet18"].make()
    for block in model.layer4:  # the same edit in PyTorch: each ReLU call of the stage becomes GELU
        block.relu = torch.nn.GELU()
    return model


def test_onnx_model_edited_kept_fp32_in_layer4_and_quantized(tmp_path):
    path = export("resnet18", tmp_path / "r18.onnx", dynamic_batch=True)
    ex = example("onnx_edit")
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((8, 3, 64, 64)).astype(np.float32)
    x = rng.standard_normal((4, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = _torch_edited()(torch.from_numpy(x)).numpy()
    # The edit alone matches PyTorch's at float32 precision.
    edited = ex["load"](str(path))
    assert ex["swap_activations"](edited, "layer4") == 4  # two ReLU calls in each of two blocks
    got = reference.run(edited, {"input": x})["output"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # Then quantized, with layer4 excluded: no Q/DQ in or into layer4, Q/DQ elsewhere.
    net = ex["tune"](ex["load"](str(path)), calibration)
    deq = {
        net.trt.get_layer(i).get_output(0).name
        for i in range(net.trt.num_layers)
        if net.trt.get_layer(i).type.name == "DEQUANTIZE"
    }
    reads_dq = {
        layer.name
        for layer in net.layers()
        if any(layer.get_input(j) is not None and layer.get_input(j).name in deq for j in range(layer.num_inputs))
    }
    assert "layer1.0.conv1" in reads_dq and "layer3.1.conv2" in reads_dq
    assert not any(n.startswith("layer4.") and not n.endswith(".replaced") for n in reads_dq)
    q = reference.run(net, {"input": x})["output"]
    cos = (q * expected).sum(1) / np.linalg.norm(q, axis=1) / np.linalg.norm(expected, axis=1)
    assert cos.min() > 0.98 and np.abs(q - expected).max() > 1e-4 * np.abs(expected).max()  # quantized, still close
    plan = trtdsl.build(net)
    assert plan.inputs["input"].shape == ("batch", 3, 64, 64) and any(r["qdq"] for r in plan.layers)
