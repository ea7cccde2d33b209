"""examples/resnet50.py: the hand-written ResNet-50 from a torchvision-layout npz, against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from trtdsl import golden, reference
from trtdsl.golden import Tolerance

from .._onnx_models import resnet50
from ._load import example

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytestmark = pytest.mark.usefixtures("trt")


def test_resnet50_from_torchvision_npz_matches_pytorch(tmp_path):
    model = resnet50()  # torchvision layout, seeded random weights and randomized BN statistics
    state = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    np.savez(tmp_path / "resnet50.npz", **state)  # weights generated here, not committed
    ex = example("resnet50")
    net = ex["build_network"](str(tmp_path / "resnet50.npz"), size=64, batch=(1, 2, 4))
    names = {layer.name for layer in net.layers()}
    assert {"conv1", "layer3.0.conv2", "layer4.2.conv3", "fc"} <= {n.removesuffix(".conv") for n in names} | names
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = reference.run(net, {"images": x})["logits"]
    scale = float(np.abs(expected).max())
    assert golden.compare({"logits": got}, {"logits": expected}, Tolerance(atol=1e-4 * scale, rtol=1e-4)).ok
