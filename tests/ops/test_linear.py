"""linear, matmul, bmm and einsum against torch on the CPU."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import trtdsl  # noqa: E402
from trtdsl import ShapeError, ops, reference  # noqa: E402
from trtdsl.layerinfo import downcast  # noqa: E402

from ._oprun import run_one as run  # noqa: E402

pytestmark = pytest.mark.usefixtures("trt")

TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float16": dict(rtol=2e-2, atol=3e-2)}


def t64(x: np.ndarray):
    return torch.from_numpy(np.asarray(x, dtype=np.float64))


def layer_types(net) -> list[str]:
    return [net.trt.get_layer(i).type.name for i in range(net.trt.num_layers)]


# ------------------------------------------------------------------ linear
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("shape", [(6,), (3, 6), (2, 3, 6), (2, 2, 3, 6)])
def test_linear_matches_torch(shape, with_bias, dtype, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((4, 6)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32) if with_bias else None
    y, reported, _ = run(lambda t: ops.linear(t, w, b), x, dtype=dtype)
    expected = F.linear(t64(x), t64(w), None if b is None else t64(b)).numpy()
    assert reported == expected.shape == y.shape
    np.testing.assert_allclose(y, expected, **TOL[dtype])


def test_linear_keeps_checkpoint_layout_and_names(trt, rng):
    w = rng.standard_normal((4, 6)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (3, 6))
    with net.scope("head"):
        y = ops.linear(x, w, b, name="fc")
    assert y.name == "head.fc.out"
    # The weight is stored as (out, in), as in the checkpoint, and transposed by the layer.
    np.testing.assert_array_equal(net.weights["head.fc.weight"], w)
    np.testing.assert_array_equal(net.weights["head.fc.bias"], b)
    mm = downcast(net.trt.get_layer(layer_types(net).index("MATRIX_MULTIPLY")))
    assert mm.op1 == trt.MatrixOperation.TRANSPOSE and mm.name == "head.fc.matmul"
    assert "head.fc.weight" in [net.trt.get_layer(i).name for i in range(net.trt.num_layers)]


def test_linear_with_tensor_weight(rng):
    x = rng.standard_normal((2, 5, 6)).astype(np.float32)
    w = rng.standard_normal((3, 6)).astype(np.float32)
    y, reported, _ = run(ops.linear, x, w)
    assert reported == (2, 5, 3)
    np.testing.assert_allclose(y, F.linear(t64(x), t64(w)).numpy(), rtol=1e-5, atol=1e-5)


def test_linear_dynamic_batch(rng):
    w = rng.standard_normal((4, 6)).astype(np.float32)
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (net.dim("batch", 1, 4, 8), 6))
    y = ops.linear(x, w)
    assert y.shape == (-1, 4)
    net.output(y, "y")
    xv = rng.standard_normal((5, 6)).astype(np.float32)
    np.testing.assert_allclose(reference.run(net, {"x": xv})["y"], xv @ w.T, rtol=1e-5, atol=1e-5)


def test_linear_wrong_weight_shape_names_expected_and_received():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (2, 6))
    with pytest.raises(
        ShapeError, match=r"linear 'fc': weight of shape \(4, 5\) does not fit input 'x' \(2, 6\) .*\(out_features, 6\)"
    ):
        ops.linear(x, np.zeros((4, 5)), name="fc")


def test_linear_detects_keras_dense_kernel():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (2, 6))
    with pytest.raises(ShapeError, match=r"Keras Dense kernel .*\(6, 4\).*trtdsl\.weights\.layout\.keras_dense"):
        ops.linear(x, np.zeros((6, 4)), name="dense")


def test_keras_dense_hint_is_the_fix(rng):
    from trtdsl.weights.layout import keras_dense

    kernel = rng.standard_normal((6, 4)).astype(np.float32)  # Keras Dense: (in, out)
    x = rng.standard_normal((2, 6)).astype(np.float32)
    y, _, _ = run(lambda t: ops.linear(t, keras_dense(kernel)), x)
    np.testing.assert_allclose(y, x @ kernel, rtol=1e-5, atol=1e-5)


def test_linear_wrong_bias():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (2, 6))
    with pytest.raises(ShapeError, match=r"linear 'fc': bias of shape \(5,\) does not fit 4 output features"):
        ops.linear(x, np.zeros((4, 6)), np.zeros(5), name="fc")


# ------------------------------------------------------------------ matmul
MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((4,), (2, 3, 4, 5)),
    ((2, 3, 3, 4), (4,)),
    ((2, 1, 3, 4), (5, 4, 6)),
    ((2, 3, 4), (2, 4, 5)),
    ((1, 3, 4), (6, 4, 2)),
]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize(("sa", "sb"), MATMUL_SHAPES)
def test_matmul_broadcasting_matches_torch(sa, sb, dtype, rng):
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    y, reported, _ = run(lambda x, z: x @ z, a, b, dtype=dtype)
    expected = torch.matmul(t64(a), t64(b)).numpy()
    assert reported == expected.shape == y.shape
    np.testing.assert_allclose(y, expected, **TOL[dtype])


@pytest.mark.parametrize(("ta", "tb"), [(True, False), (False, True), (True, True)])
def test_matmul_transposes(ta, tb, rng):
    a = rng.standard_normal((2, 4, 3) if ta else (2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((5, 4) if tb else (4, 5)).astype(np.float32)
    y, reported, net = run(lambda x, z: ops.matmul(x, z, transpose_a=ta, transpose_b=tb), a, b)
    expected = torch.matmul(t64(a).mT if ta else t64(a), t64(b).mT if tb else t64(b)).numpy()
    assert reported == expected.shape == (2, 3, 5)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert "SHUFFLE" not in layer_types(net)  # the transpose happens inside the matmul layer


def test_matmul_with_array_operand(rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((4, 5)).astype(np.float32)
    y, reported, net = run(lambda x: ops.matmul(x, b, name="proj"), a)
    assert reported == (2, 3, 5)
    np.testing.assert_allclose(y, a @ b, rtol=1e-5, atol=1e-5)
    assert layer_types(net) == ["CONSTANT", "MATRIX_MULTIPLY"]  # stored at rank 3, no unsqueeze layer
    y, _, _ = run(lambda x: ops.matmul(b.T, x, transpose_b=True), a)
    np.testing.assert_allclose(y, b.T @ a.transpose(0, 2, 1), rtol=1e-5, atol=1e-5)


def test_bmm_matches_torch(rng):
    a = rng.standard_normal((3, 2, 4)).astype(np.float32)
    b = rng.standard_normal((3, 4, 5)).astype(np.float32)
    y, reported, _ = run(ops.bmm, a, b)
    expected = torch.bmm(t64(a), t64(b)).numpy()
    assert reported == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_matmul_errors():
    net = trtdsl.Network("t")
    a = net.input("a", "float32", (2, 3, 4))
    b = net.input("b", "float32", (5, 6))
    c = net.input("c", "float32", (3, 4, 6))
    with pytest.raises(
        ShapeError, match=r"matmul 'mm': contraction sizes differ: 'a' \(2, 3, 4\) has 4, 'b' \(5, 6\) has 5"
    ):
        ops.matmul(a, b, name="mm")
    with pytest.raises(ShapeError, match=r"matmul: batch axes of 'a' \(2, 3, 4\) and 'c' \(3, 4, 6\) do not broadcast"):
        ops.matmul(a, c)
    with pytest.raises(ShapeError, match=r"bmm: expected 3-D \(batch, n, k\) tensors, got \(5, 6\)"):
        ops.bmm(a, b)


# ------------------------------------------------------------------ einsum
EINSUMS = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhld,bhsd->bhls", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("i,i->", [(6,), (6,)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ij,j->i", [(3, 4), (4,)]),
    ("abc,cd->abd", [(2, 3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("i,j->ij", [(3,), (4,)]),
    ("IJ,JK->IK", [(3, 4), (4, 5)]),
    ("ab, bc -> ac", [(3, 4), (4, 2)]),
]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize(("equation", "shapes"), EINSUMS)
def test_einsum_matches_torch(equation, shapes, dtype, rng):
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    y, reported, net = run(lambda *ts: ops.einsum(equation, *ts), *arrays, dtype=dtype)
    expected = torch.einsum(equation, *[t64(a) for a in arrays]).numpy()
    assert reported == expected.shape == y.shape
    np.testing.assert_allclose(y, expected, **TOL[dtype])
    assert "EINSUM" in layer_types(net)


def test_einsum_list_of_operands(rng):
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((4, 2)).astype(np.float32)
    y, _, _ = run(lambda x: ops.einsum("ij,jk->ik", [x, b]), a)
    np.testing.assert_allclose(y, a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("equation", "message"),
    [
        ("...ij,...jk->...ik", r"does not support ellipsis \('\.\.\.'\)"),
        ("ii,jk->ik", r"operand 0 repeats subscript\(s\) \['i'\] \(a diagonal\)"),
        ("ij,jk,kl->il", r"3 operand terms for 2 operands"),
        ("ijk,jk->ik", r"operand 0 term 'ijk' names 3 axes, it has 2"),
        ("i1,jk->ik", r"operand 0 term 'i1' may only contain letters"),
    ],
)
def test_einsum_errors(equation, message):
    net = trtdsl.Network("t")
    a = net.input("a", "float32", (3, 3))
    b = net.input("b", "float32", (3, 4))
    with pytest.raises(ShapeError, match=message):
        ops.einsum(equation, a, b)


def test_interpreter_matrix_multiply_vector_ops(trt, rng):
    # MatrixOperation.VECTOR on both inputs: a collection of dot products.
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 3, 4)).astype(np.float32)
    net = trtdsl.Network("t")
    ta, tb = net.input("a", "float32", a.shape), net.input("b", "float32", b.shape)
    layer = net.trt.add_matrix_multiply(ta.trt, trt.MatrixOperation.VECTOR, tb.trt, trt.MatrixOperation.VECTOR)
    y = net.register(layer, "dot")
    assert y.shape == (2, 3)
    net.output(y, "y")
    np.testing.assert_allclose(reference.run(net, {"a": a, "b": b})["y"], (a * b).sum(-1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_tensorrt_builds_every_linear_op(dtype, rng):
    """TensorRT itself accepts what the ops emit (an ahead-of-time build; no GPU needed)."""
    net = trtdsl.Network("linear", dtype=dtype)
    x = net.input("x", "float32", (2, 3, 6))
    v = net.input("v", "float32", (6,))
    outs = [
        ops.linear(x, rng.standard_normal((4, 6)), rng.standard_normal(4)),
        ops.linear(v, rng.standard_normal((4, 6))),
        ops.matmul(x, x, transpose_b=True),
        ops.matmul(x, v),
        ops.matmul(v, rng.standard_normal((5, 6, 2))),
        ops.matmul(v, v),
        ops.matmul(x, x, transpose_a=True),
        ops.einsum("bij,bkj->bik", x, x),
        ops.einsum("i,j->ij", v, v),
    ]
    for i, y in enumerate(outs):
        net.output(y, f"y{i}")
    config = net.builder.create_builder_config()
    assert net.builder.build_serialized_network(net.trt, config) is not None
