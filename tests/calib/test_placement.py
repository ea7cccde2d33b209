"""Q/DQ placement on ResNet-, MobileNet- and transformer-style networks, against lists written by hand.

The expected placement of each network is written out here from the rules (the TensorRT developer guide,
"Q/DQ layer-placement recommendations"; trtdsl/calib/qdq.py): which inputs of which layers read a dequantized
tensor, and of which original tensor, and which tensors must stay unquantized. It is
never derived from ``plan``. The quantized networks are read back through the raw
TensorRT API (Dequantize <- Quantize <- source), run in the interpreter and built
into plans on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import calib, ops, reference
from trtdsl.errors import CalibrationError, CalibrationWarning
from trtdsl.layerinfo import downcast

pytestmark = pytest.mark.usefixtures("trt")
W = "weight"  # the source of a per-channel weight Q/DQ


def qdq_inputs(net):
    """{(layer, input): (source tensor, per-channel axis or None)} for every input that reads a DQ."""
    prod = {}
    for i in range(net.trt.num_layers):
        layer = downcast(net.trt.get_layer(i))
        for j in range(layer.num_outputs):
            prod[layer.get_output(j).name] = layer
    found = {}
    for i in range(net.trt.num_layers):
        layer = downcast(net.trt.get_layer(i))
        if layer.name.endswith(".replaced") or layer.type.name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        for j in range(layer.num_inputs):
            t = layer.get_input(j)
            dq = prod.get(t.name) if t is not None else None
            if dq is None or dq.type.name != "DEQUANTIZE":
                continue
            q = prod[dq.get_input(0).name]
            assert q.type.name == "QUANTIZE"
            src = q.get_input(0)
            src_layer = prod.get(src.name)
            is_weight = src_layer is not None and src_layer.type.name == "CONSTANT"
            axis = dq.axis if dq.get_input(1).shape != () and len(dq.get_input(1).shape) == 1 else None
            found[(layer.name, j)] = (W if is_weight else src.name, axis)
    return found


def _w(rng, *shape):
    return (rng.standard_normal(shape) * 0.3).astype(np.float32)


def _bn(rng, c):
    return dict(running_mean=rng.standard_normal(c).astype(np.float32) * 0.1,
                running_var=rng.uniform(0.5, 2, c).astype(np.float32),
                weight=rng.uniform(0.5, 1.5, c).astype(np.float32), bias=rng.standard_normal(c).astype(np.float32) * 0.1)  # fmt: skip


def _quantize_by_hand(net, tensors, dtype="int8", **kw):
    """quantize() with ranges for exactly the hand-listed activation tensors."""
    return calib.quantize(net, {t: 2.0 for t in tensors}, dtype=dtype, report=False, **kw)


def _runs_and_builds(net, feeds):
    out = reference.run(net, feeds)
    assert all(np.all(np.isfinite(v)) for v in out.values())
    plan = trtdsl.build(net, progress=False)
    assert set(plan.outputs) == set(net.outputs)


# ------------------------------------------------------------------- ResNet-style
def resnet_style(rng):
    net = trtdsl.Network("resnet_style")
    x = net.input("x", "float32", (2, 8, 8, 8))
    with net.scope("stem"):
        y = ops.conv2d(x, _w(rng, 8, 8, 3, 3), padding=1, name="conv")
        y = ops.batch_norm(y, **_bn(rng, 8), name="bn")
        y = ops.relu(y, name="relu")
    p = ops.max_pool2d(y, 2, name="pool")  # (2, 8, 4, 4)
    with net.scope("block1"):  # identity shortcut
        h = ops.relu(ops.conv2d(p, _w(rng, 8, 8, 3, 3), _w(rng, 8), padding=1, name="conv1"), name="relu1")
        h = ops.conv2d(h, _w(rng, 8, 8, 3, 3), _w(rng, 8), padding=1, name="conv2")
        o1 = ops.relu(ops.add(h, p, name="add"), name="relu")
    with net.scope("block2"):  # downsample shortcut: conv + BN on both branches
        h = ops.relu(ops.conv2d(o1, _w(rng, 16, 8, 3, 3), _w(rng, 16), stride=2, padding=1, name="conv1"), name="relu1")
        h = ops.conv2d(h, _w(rng, 16, 16, 3, 3), _w(rng, 16), padding=1, name="conv2")
        d = ops.batch_norm(ops.conv2d(o1, _w(rng, 16, 8, 1, 1), stride=2, name="down"), **_bn(rng, 16), name="down_bn")
        o2 = ops.relu(ops.add(h, d, name="add"), name="relu")
    f = ops.flatten(ops.global_avg_pool(o2, name="gap"), 1, name="flatten")
    net.output(ops.linear(f, _w(rng, 10, 16), _w(rng, 10), name="fc"), "logits")
    return net


RESNET_EXPECTED = {
    ("stem.conv", 0): ("x", None), ("stem.conv", 1): (W, 0),
    ("block1.conv1", 0): ("pool.out", None), ("block1.conv1", 1): (W, 0),
    ("block1.conv2", 0): ("block1.relu1.out", None), ("block1.conv2", 1): (W, 0),
    # rule 3: conv2's output (read by nothing else) is fused; the shortcut is quantized
    ("block1.add", 1): ("pool.out", None),
    ("block2.conv1", 0): ("block1.relu.out", None), ("block2.conv1", 1): (W, 0),
    ("block2.down", 0): ("block1.relu.out", None), ("block2.down", 1): (W, 0),
    ("block2.conv2", 0): ("block2.relu1.out", None), ("block2.conv2", 1): (W, 0),
    # both inputs come from convolutions: the first (conv2) is fused, the BN'd downsample quantized
    ("block2.add", 1): ("block2.down_bn.out", None),
    ("fc.matmul", 0): ("flatten.out", None), ("fc.matmul", 1): (W, 0),
}  # fmt: skip
RESNET_FLOAT = [
    "stem.conv.out",
    "stem.bn.out",
    "stem.relu.out",
    "block1.conv2.out",
    "block2.relu.out",
    "gap.out",
    "logits",
]


@pytest.mark.parametrize("dtype", ["int8", "fp8"])
def test_resnet_style_placement(rng, dtype):
    net = resnet_style(rng)
    xv = rng.standard_normal((2, 8, 8, 8)).astype(np.float32)
    _quantize_by_hand(net, {src for src, _ in RESNET_EXPECTED.values() if src != W}, dtype)
    got = qdq_inputs(net)
    assert got == RESNET_EXPECTED
    quantized_sources = {src for src, _ in got.values()}
    for name in RESNET_FLOAT:
        assert name not in quantized_sources
    # One Q/DQ pair per tensor, shared by every quantized reader: pool.out's feeds conv1 and the add.
    layers = {downcast(net.trt.get_layer(i)).name: downcast(net.trt.get_layer(i)) for i in range(net.trt.num_layers)}
    assert layers["block1.conv1"].get_input(0).name == layers["block1.add"].get_input(1).name
    assert layers["block2.conv1"].get_input(0).name == layers["block2.down"].get_input(0).name
    _runs_and_builds(net, {"x": xv})


# ---------------------------------------------------------------- MobileNet-style
def mobilenet_style(rng):
    net = trtdsl.Network("mobilenet_style")
    x = net.input("x", "float32", (2, 3, 8, 8))
    with net.scope("stem"):
        y = ops.hard_swish(ops.conv2d(x, _w(rng, 16, 3, 3, 3), _w(rng, 16), padding=1, name="conv"), name="act")
    with net.scope("ir"):  # inverted residual: expand, depthwise, squeeze-excite, project, add
        h = ops.hard_swish(ops.conv2d(y, _w(rng, 32, 16, 1, 1), _w(rng, 32), name="expand"), name="expand_act")
        h = ops.hard_swish(
            ops.conv2d(h, _w(rng, 32, 1, 3, 3), _w(rng, 32), padding=1, groups=32, name="dw"), name="dw_act"
        )
        with net.scope("se"):
            s = ops.mean(h, (2, 3), keepdim=True, name="pool")
            s = ops.relu(ops.conv2d(s, _w(rng, 8, 32, 1, 1), _w(rng, 8), name="fc1"), name="relu")
            s = ops.hard_sigmoid(ops.conv2d(s, _w(rng, 32, 8, 1, 1), _w(rng, 32), name="fc2"), name="gate")
            h = ops.mul(h, s, name="scale")
        h = ops.conv2d(h, _w(rng, 16, 32, 1, 1), _w(rng, 16), name="project")
        out = ops.add(h, y, name="add")
    g = ops.flatten(ops.global_avg_pool(out, name="gap"), 1, name="flatten")
    net.output(ops.linear(g, _w(rng, 10, 16), name="fc"), "logits")
    return net


MOBILENET_EXPECTED = {
    ("stem.conv", 0): ("x", None), ("stem.conv", 1): (W, 0),
    ("ir.expand", 0): ("stem.act.out", None), ("ir.expand", 1): (W, 0),
    ("ir.dw", 0): ("ir.expand_act.out", None), ("ir.dw", 1): (W, 0),  # depthwise: 32 channel scales
    ("ir.se.fc1", 0): ("ir.se.pool.out", None), ("ir.se.fc1", 1): (W, 0),
    ("ir.se.fc2", 0): ("ir.se.relu.out", None), ("ir.se.fc2", 1): (W, 0),
    ("ir.project", 0): ("ir.se.scale.out", None), ("ir.project", 1): (W, 0),
    ("ir.add", 1): ("stem.act.out", None),  # the shortcut; project's output is fused
    ("fc", 0): ("flatten.out", None), ("fc", 1): (W, 0),  # linear without bias: the matmul is 'fc'
}  # fmt: skip
# No Q/DQ around the hard-swish / hard-sigmoid products, the SE multiply, or the output.
MOBILENET_FLOAT = [
    "stem.conv.out",
    "ir.dw.out",
    "ir.dw_act.out",
    "ir.se.gate.out",
    "ir.project.out",
    "ir.add.out",
    "logits",
]


@pytest.mark.parametrize("dtype", ["int8", "fp8"])
def test_mobilenet_style_placement(rng, dtype):
    net = mobilenet_style(rng)
    _quantize_by_hand(net, {src for src, _ in MOBILENET_EXPECTED.values() if src != W}, dtype)
    got = qdq_inputs(net)
    assert got == MOBILENET_EXPECTED
    for name in MOBILENET_FLOAT:
        assert name not in {src for src, _ in got.values()}
    # The depthwise kernel is quantized per output channel: 32 scales.
    layers = {downcast(net.trt.get_layer(i)).name: downcast(net.trt.get_layer(i)) for i in range(net.trt.num_layers)}
    assert tuple(layers["ir.dw.kernel.quant.dq"].get_input(1).shape) == (32,)
    _runs_and_builds(net, {"x": rng.standard_normal((2, 3, 8, 8)).astype(np.float32)})


# ------------------------------------------------------------ transformer encoder
def encoder(rng, e=16, heads=2, length=6):
    d = e // heads
    net = trtdsl.Network("encoder")
    x = net.input("x", "float32", (2, length, e))
    with net.scope("attn"):
        h = ops.layer_norm(x, (e,), np.ones(e, np.float32), np.zeros(e, np.float32), name="ln")

        def heads_of(t, name):
            return ops.permute(
                ops.reshape(t, (2, length, heads, d), name=f"{name}.split"), (0, 2, 1, 3), name=f"{name}.heads"
            )

        q = heads_of(ops.linear(h, _w(rng, e, e), _w(rng, e), name="q"), "q")
        k = heads_of(ops.linear(h, _w(rng, e, e), _w(rng, e), name="k"), "k")
        v = heads_of(ops.linear(h, _w(rng, e, e), _w(rng, e), name="v"), "v")
        scores = ops.matmul(q, k, transpose_b=True, name="scores")
        a = ops.softmax(scores, -1, name="softmax")
        ctx = ops.reshape(
            ops.permute(ops.matmul(a, v, name="context"), (0, 2, 1, 3), name="merge"), (2, length, e), name="flat"
        )
        o = ops.linear(ctx, _w(rng, e, e), _w(rng, e), name="out")
    x1 = ops.add(x, o, name="res1")
    with net.scope("mlp"):
        h = ops.layer_norm(x1, (e,), np.ones(e, np.float32), np.zeros(e, np.float32), name="ln")
        h = ops.gelu(ops.linear(h, _w(rng, 32, e), _w(rng, 32), name="fc1"), name="gelu")
        h = ops.linear(h, _w(rng, e, 32), _w(rng, e), name="fc2")
    net.output(ops.add(x1, h, name="res2"), "y")
    return net


ENCODER_EXPECTED = {
    ("attn.q.matmul", 0): ("attn.ln.out", None), ("attn.q.matmul", 1): (W, 1),
    ("attn.k.matmul", 0): ("attn.ln.out", None), ("attn.k.matmul", 1): (W, 1),
    ("attn.v.matmul", 0): ("attn.ln.out", None), ("attn.v.matmul", 1): (W, 1),
    # activation x activation matmuls: both inputs per tensor
    ("attn.scores", 0): ("attn.q.heads.out", None), ("attn.scores", 1): ("attn.k.heads.out", None),
    ("attn.context", 0): ("attn.softmax.out", None), ("attn.context", 1): ("attn.v.heads.out", None),
    ("attn.out.matmul", 0): ("attn.flat.out", None), ("attn.out.matmul", 1): (W, 1),
    ("mlp.fc1.matmul", 0): ("mlp.ln.out", None), ("mlp.fc1.matmul", 1): (W, 1),
    ("mlp.fc2.matmul", 0): ("mlp.gelu.out", None), ("mlp.fc2.matmul", 1): (W, 1),
}  # fmt: skip
# The residual adds follow matmuls, not convolutions: rule 3 does not apply; no Q/DQ on them.
ENCODER_FLOAT = ["x", "res1.out", "attn.out.out", "mlp.fc2.out", "y"]


@pytest.mark.parametrize("dtype", ["int8", "fp8"])
def test_transformer_encoder_placement(rng, dtype):
    net = encoder(rng)
    _quantize_by_hand(net, {src for src, _ in ENCODER_EXPECTED.values() if src != W}, dtype)
    got = qdq_inputs(net)
    # Weights of ops.linear are (1, out, in) constants read transposed: out-features is axis 1.
    assert got == ENCODER_EXPECTED
    for name in ENCODER_FLOAT:
        assert name not in {src for src, _ in got.values()}
    _runs_and_builds(net, {"x": rng.standard_normal((2, 6, 16)).astype(np.float32)})


# ------------------------------------------------------------------- concat, exclude
def test_concat_inputs_share_one_scale(rng):
    net = trtdsl.Network("concat")
    x = net.input("x", "float32", (1, 4, 6, 6))
    a = ops.relu(ops.conv2d(x, _w(rng, 4, 4, 1, 1), name="a"), name="a_relu")
    b = ops.relu(ops.conv2d(x, _w(rng, 4, 4, 3, 3), padding=1, name="b"), name="b_relu")
    c = ops.concat([a, b], 1, name="cat")
    net.output(ops.conv2d(c, _w(rng, 8, 8, 1, 1), name="mix"), "y")
    calib.quantize(net, {"x": 3.0, "cat.out": 5.0}, report=False)
    got = qdq_inputs(net)
    assert got[("cat", 0)] == ("a_relu.out", None)
    assert got[("cat", 1)] == ("b_relu.out", None)
    assert ("mix", 0) not in got  # the concatenation itself reads the dequantized inputs
    layers = {downcast(net.trt.get_layer(i)).name: downcast(net.trt.get_layer(i)) for i in range(net.trt.num_layers)}
    scales = [layers[f"{n}.quant.scale"].weights for n in ("a_relu", "b_relu")]
    assert np.float32(scales[0]) == np.float32(scales[1]) == np.float32(5.0 / 127)
    _runs_and_builds(net, {"x": rng.standard_normal((1, 4, 6, 6)).astype(np.float32)})


def test_exclude_keeps_layers_in_float(rng):
    net = resnet_style(rng)
    placement = calib.plan(net, exclude=["block2", "fc*"])
    assert set(placement.excluded) == {"block2.conv1", "block2.conv2", "block2.down", "block2.add", "fc.matmul"}
    assert "flatten.out" not in placement.tensors and "block1.relu.out" not in placement.tensors
    assert {"x", "pool.out", "block1.relu1.out"} <= set(placement.tensors)


def test_exclude_unknown_name_suggests(rng):
    net = resnet_style(rng)
    with pytest.warns(CalibrationWarning, match="'head.*' matches no layer"):
        calib.plan(net, exclude="head.*")
    with pytest.warns(CalibrationWarning, match=r"'blok2\.\*' matches no layer\. Did you mean 'block2'"):
        calib.plan(net, exclude="blok2.*")
    with pytest.raises(CalibrationError, match=r"exclude names no layer 'block3'.*Did you mean 'block2' or 'block1'"):
        calib.plan(net, exclude="block3")


def test_per_tensor_weights_option(rng):
    net = resnet_style(rng)
    _quantize_by_hand(net, {src for src, _ in RESNET_EXPECTED.values() if src != W}, per_channel_weights=False)
    got = qdq_inputs(net)
    assert got[("stem.conv", 1)] == (W, None)


def test_quantizing_twice_adds_nothing(rng):
    net = resnet_style(rng)
    tensors = {src for src, _ in RESNET_EXPECTED.values() if src != W}
    _quantize_by_hand(net, tensors)
    layers = net.trt.num_layers
    assert calib.plan(net).tensors == [] and calib.plan(net).weights == []
    _quantize_by_hand(net, tensors)
    assert net.trt.num_layers == layers
    assert qdq_inputs(net) == RESNET_EXPECTED
