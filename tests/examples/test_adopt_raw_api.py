"""examples/adopt_raw_api.py: raw-API code wrapped with Network.adopt, extended with the DSL, against torch."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import reference

from ._load import example

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("trt")


def test_migrated_network_matches_torch_and_builds():
    ex = example("adopt_raw_api")
    net = ex["build_network"]()
    names = [layer.name for layer in net.layers()]
    assert names[:2] == ["convolution", "activation"] and any(n.startswith("head.") for n in names)
    conv = net.layer("convolution")
    kernel, bias = np.array(conv.kernel).reshape(8, 3, 3, 3), np.array(conv.bias)
    w = np.random.default_rng(1).standard_normal((10, 8)).astype(np.float32)  # the example's head weights
    x = np.random.default_rng(2).standard_normal((2, 3, 16, 16)).astype(np.float32)
    t = torch.relu(
        torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(kernel), torch.from_numpy(bias), padding=1)
    )
    expected = (t.mean((2, 3)) @ torch.from_numpy(w).T).numpy()
    np.testing.assert_allclose(reference.run(net, {"images": x})["logits"], expected, rtol=1e-5, atol=1e-5)
    plan = trtdsl.build(net)
    assert plan.inputs["images"].shape == ("images.0", 3, 16, 16)
