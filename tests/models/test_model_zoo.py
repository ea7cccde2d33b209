"""trtdsl.models against torchvision models with random weights, loaded from npz/safetensors files."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import models
from trtdsl.errors import ShapeError, WeightError

torch = pytest.importorskip("torch")
tvm = pytest.importorskip("torchvision.models")
from trtdsl import reference  # noqa: E402
from trtdsl import weights as tw  # noqa: E402

from ..layers._torch_util import close, randomize, state  # noqa: E402


def _save(module, path, fmt):
    sd = state(module)
    if fmt == "npz":
        np.savez(path, **sd)
    else:
        from safetensors.numpy import save_file

        save_file(sd, str(path))
    return path


def _check(tmp_path, build, module, shape=(1, 3, 64, 64), fmt="npz", rtol=1e-4, atol=1e-4, **kw):
    path = _save(module, tmp_path / f"w.{fmt}", fmt)
    store = tw.load(path)
    net = trtdsl.Network(build.__name__)
    y = build(net, net.input("images", "float32", shape), store, **kw)
    net.output(y, "logits")
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x))
    assert y.shape == tuple(want.shape)
    close(reference.run(net, {"images": x})["logits"], want, rtol=rtol, atol=atol)
    assert store.unused() == [], "every weight of the checkpoint is used"
    return net, store


def _no_bn_scale_layers(net, trt):
    kinds = [layer.type for layer in net.layers()]
    assert trt.LayerType.SCALE not in kinds and trt.LayerType.NORMALIZATION not in kinds


def test_resnet18_matches_torchvision_and_builds(tmp_path, trt):
    net, store = _check(tmp_path, models.resnet18, randomize(tvm.resnet18(num_classes=10)))
    _no_bn_scale_layers(net, trt)
    plan = trtdsl.build(net, weights=store)
    assert len(plan.engine) > 0 and list(plan.outputs) == ["logits"]


def test_resnet18_from_safetensors_and_named_layers(tmp_path):
    net, _ = _check(
        tmp_path,
        models.resnet18,
        randomize(tvm.resnet18(num_classes=5), seed=3),
        fmt="safetensors",
        shape=(1, 3, 32, 32),
    )
    names = {layer.name for layer in net.layers()}
    assert {"conv1", "conv1.relu", "maxpool", "layer4.1.conv2", "layer4.1.add", "fc"} <= names


@pytest.mark.slow
def test_resnet34_matches_torchvision_and_builds(tmp_path, trt):
    net, store = _check(tmp_path, models.resnet34, randomize(tvm.resnet34(num_classes=10)))
    trtdsl.build(net, weights=store)


@pytest.mark.slow
def test_resnet50_matches_torchvision_and_builds(tmp_path, trt):
    net, store = _check(tmp_path, models.resnet50, randomize(tvm.resnet50(num_classes=10)))
    _no_bn_scale_layers(net, trt)
    trtdsl.build(net, weights=store)


def test_mobilenet_v2_matches_torchvision_and_builds(tmp_path, trt):
    net, store = _check(tmp_path, models.mobilenet_v2, randomize(tvm.mobilenet_v2(num_classes=10)))
    _no_bn_scale_layers(net, trt)
    trtdsl.build(net, weights=store)


def test_mobilenet_v3_small_matches_torchvision_and_builds(tmp_path, trt):
    net, store = _check(tmp_path, models.mobilenet_v3_small, randomize(tvm.mobilenet_v3_small(num_classes=10)))
    _no_bn_scale_layers(net, trt)
    trtdsl.build(net, weights=store)


def _small_vit(**kw):
    from torchvision.models.vision_transformer import VisionTransformer

    return randomize(VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32,
                                       mlp_dim=64, num_classes=10, **kw))  # fmt: skip


@pytest.mark.parametrize("representation_size", [None, 24])
def test_vit_matches_torchvision_and_builds(tmp_path, representation_size):
    net, store = _check(tmp_path, models.vit, _small_vit(representation_size=representation_size),
                        shape=(2, 3, 32, 32), num_heads=4)  # fmt: skip
    trtdsl.build(net, weights=store)


def test_model_with_wrong_checkpoint_names_block_key_and_shape(tmp_path):
    # resnet18 weights where resnet50 expects bottlenecks: the first mismatch is named precisely.
    sd = state(randomize(tvm.resnet18(num_classes=10)))
    net = trtdsl.Network("t")
    x = net.input("images", "float32", (1, 3, 64, 64))
    with pytest.raises(ShapeError, match=r"conv_bn_act 'layer1\.0\.conv1' \(in bottleneck_block 'layer1\.0'\): weight "
                       r"'layer1\.0\.conv1\.weight' has shape \(64, 64, 3, 3\), expected \(64, 64, 1, 1\)"):  # fmt: skip
        models.resnet50(net, x, sd)
    del sd["layer3.1.bn2.running_mean"]
    with pytest.raises(WeightError, match=r"conv_bn_act 'layer3\.1\.bn2' \(in residual_block 'layer3\.1'\): missing "
                       r"weight 'layer3\.1\.bn2\.running_mean' \(expected shape \(256,\)\)"):  # fmt: skip
        net = trtdsl.Network("u")
        models.resnet18(net, net.input("images", "float32", (1, 3, 64, 64)), sd)


def test_model_takes_a_path(tmp_path):
    m = randomize(tvm.resnet18(num_classes=4))
    path = _save(m, tmp_path / "r.npz", "npz")
    net = trtdsl.Network("t")
    y = models.resnet18(net, net.input("images", "float32", (1, 3, 32, 32)), str(path))
    assert y.shape == (1, 4)
