"""The compiled kernels (numba) against float64 NumPy formulas and torch, edge values included."""

from __future__ import annotations

import numpy as np
import pytest

from trtdsl.reference.kernels import jit

pytestmark = pytest.mark.skipif(not jit.enabled(), reason=jit.why_not() or "numba is installed")
torch = pytest.importorskip("torch")
erfc = pytest.importorskip("scipy.special").erfc
F = torch.nn.functional


def test_exp_is_within_one_and_a_half_ulps_of_float64_over_the_normal_range():
    x = np.concatenate([np.linspace(-87.3, 88.7, 2_000_001, dtype=np.float32), np.float32([0, 1e-30, -1e-30])])
    got = jit.exp(x)
    exact = np.exp(x.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - exact) / ulp) <= 1.5
    assert jit.exp(np.float32([0]))[0] == 1.0


def test_exp_saturates_and_keeps_nan():
    x = np.float32([88.73, 89, 1e4, np.inf, -87.4, -104, -1e4, -np.inf, np.nan])
    got = jit.exp(x)
    assert np.all(np.isposinf(got[:4]))
    assert np.all(got[4:8] == 0)  # below the smallest normal's log (NumPy gives subnormals there)
    assert np.isnan(got[8])


def _float64(kind: str, gate: bool, a: float, b: float, v: np.ndarray) -> np.ndarray:
    """NvInfer.h's formulas, written out in float64 (independent of reference.activation), with
    alpha and beta as float32 (as TensorRT stores them); inf and NaN inputs give what they give."""
    x = v.astype(np.float64)
    a, b = float(np.float32(a)), float(np.float32(b))
    with np.errstate(all="ignore"):
        if kind == "GELU_ERF":  # 1 + erf(z) as erfc(-z): no cancellation in the negative tail
            return 0.5 * x * erfc(-x / np.sqrt(2))
        if kind == "GELU_TANH":  # 1 + tanh(u) as 2 / (1 + exp(-2u)), likewise
            return x / (1 + np.exp(-2 * np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
        act = {
            "RELU": lambda: np.maximum(x, 0.0),
            "CLIP": lambda: np.clip(x, a, b),
            "SIGMOID": lambda: 1.0 / (1.0 + np.exp(-x)),
            "HARD_SIGMOID": lambda: np.clip(a * x + b, 0.0, 1.0),
            "LEAKY_RELU": lambda: np.where(x >= 0, x, a * x),
        }[kind]()
        return x * act if gate else act


ACTIVATIONS = [  # (kind, gate, alpha, beta)
    ("RELU", False, 0.0, 0.0),
    ("CLIP", False, 0.0, 6.0),
    ("CLIP", False, -0.5, 1.5),
    ("SIGMOID", False, 0.0, 0.0),
    ("HARD_SIGMOID", False, 1 / 6, 0.5),
    ("HARD_SIGMOID", False, 0.2, 0.5),
    ("LEAKY_RELU", False, 0.1, 0.0),
    ("SIGMOID", True, 0.0, 0.0),
    ("HARD_SIGMOID", True, 1 / 6, 0.5),
    ("GELU_ERF", False, 0.0, 0.0),
    ("GELU_TANH", False, 0.0, 0.0),
]


@pytest.mark.parametrize(
    "activation", ACTIVATIONS, ids=[f"{k}{'-gate' if g else ''}-{a:g}" for k, g, a, _ in ACTIVATIONS]
)
def test_activations_match_float64_formulas_in_place(activation, rng):
    special = np.float32([0, -0.0, 1e-30, -1e-30, 3, -3, 6, 88.8, -88.8, 1e4, -1e4, np.inf, -np.inf])
    y = np.concatenate([(8 * rng.standard_normal(100_003)).astype(np.float32), special])
    expected = _float64(*activation, y)
    before = y.copy()
    assert jit.activate(y, *activation)
    finite = np.isfinite(expected)
    # A few float32 ulps of the result, or of the operand where a * x + b cancels (hard sigmoid).
    # Within a few float32 ulps of the result; magnitudes below 1e-30 may flush to 0 (exp saturates).
    bound = 4e-7 * np.abs(expected) + 1e-30
    if activation[0].startswith("GELU"):
        # exp(-z^2 ...) in the tail: the rounding of z^2 grows with z, so the relative error does
        # (1e-6 at z = 2); bounded by a third of an ulp of x (the plain path's 1 + erf(z) in
        # float32 loses far more there: 2e-5 relative at z = -2).
        bound = 1e-6 * np.abs(expected) + 2e-8 * np.abs(before.astype(np.float64)) + 1e-30
    if activation[0] == "HARD_SIGMOID":
        bound += 1.2e-7 * np.maximum(1.0, np.abs(before.astype(np.float64)))
    with np.errstate(invalid="ignore"):  # inf - inf where not finite, dropped
        err, bound, x = np.abs(y - expected)[finite], bound[finite], before[finite]
    assert np.all(err <= bound), f"worst at x = {x[np.argmax(err - bound)]}: error {err[np.argmax(err - bound)]}"
    assert np.array_equal(y[~finite], expected[~finite].astype(np.float32), equal_nan=True)
    nan = np.float32([np.nan])
    assert jit.activate(nan, *activation) and np.isnan(nan[0]), "NaN propagates"
    assert not np.array_equal(y, before)


def test_activate_declines_what_it_has_no_kernel_for():
    y = np.ones(10, np.float32)
    assert not jit.activate(y, "TANH", False, 0, 0)  # no compiled formula
    assert not jit.activate(y, "GELU_ERF", True, 0, 0)  # no such gate
    assert not jit.activate(y.astype(np.float64), "RELU", False, 0, 0)  # float32 only
    assert not jit.activate(np.ones((4, 4), np.float32)[:, ::2], "RELU", False, 0, 0)  # not contiguous
    frozen = np.ones(4, np.float32)
    frozen.flags.writeable = False
    assert not jit.activate(frozen, "RELU", False, 0, 0)


# (N, C, H, W, kernel, stride, dilation, pre-padding) with the output as torch's padding gives it
DEPTHWISE = [
    (1, 8, 15, 17, (3, 3), (1, 1), (1, 1), (1, 1)),
    (2, 6, 16, 16, (3, 3), (2, 2), (1, 1), (1, 1)),
    (1, 5, 14, 14, (5, 5), (1, 1), (1, 1), (2, 2)),
    (1, 5, 15, 13, (5, 5), (2, 2), (1, 1), (2, 2)),
    (1, 4, 12, 12, (7, 7), (1, 1), (1, 1), (3, 3)),
    (3, 3, 11, 10, (3, 5), (2, 3), (1, 1), (1, 2)),
    (1, 4, 13, 13, (3, 3), (1, 1), (2, 2), (2, 2)),
    (1, 4, 13, 12, (3, 3), (2, 1), (3, 2), (0, 3)),
    (1, 2, 7, 7, (3, 3), (1, 1), (1, 1), (0, 0)),  # no padding
    (1, 3, 3, 3, (5, 5), (1, 1), (1, 1), (3, 3)),  # more padding than input
    (1, 2, 9, 9, (2, 2), (3, 3), (1, 1), (0, 0)),  # even kernel, stride past it
]


@pytest.mark.parametrize("case", DEPTHWISE, ids=[str(i) for i in range(len(DEPTHWISE))])
@pytest.mark.parametrize("activation", [None, ("SIGMOID", True, 0.0, 0.0), ("CLIP", False, 0.0, 6.0)])
def test_depthwise_matches_torch(case, activation, rng):
    n, c, h, wd, kernel, stride, dilation, pre = case
    x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
    w = rng.standard_normal((c, 1, *kernel)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    t = F.conv2d(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
                 torch.from_numpy(b.astype(np.float64)), stride=stride, padding=pre, dilation=dilation, groups=c)  # fmt: skip
    if activation is not None:
        t = F.silu(t) if activation[0] == "SIGMOID" else torch.clamp(t, 0, 6)
    expected = t.numpy()
    out = expected.shape[2:]
    y = np.empty(expected.shape, np.float32)
    for _ in range(2):  # other values into the same output
        jit.grouped(x, w, c, stride, dilation, out, pre, b, y, activation)
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
        x = rng.standard_normal(x.shape).astype(np.float32)
        t = F.conv2d(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
                     torch.from_numpy(b.astype(np.float64)), stride=stride, padding=pre, dilation=dilation,
                     groups=c)  # fmt: skip
        if activation is not None:
            t = F.silu(t) if activation[0] == "SIGMOID" else torch.clamp(t, 0, 6)
        expected = t.numpy()


# (N, C, H, W, K, groups, kernel, stride, dilation, pre-padding): few channels per group, a channel multiplier
GROUPED = [
    (1, 16, 9, 11, 16, 2, (3, 3), (1, 1), (1, 1), (1, 1)),  # 8 channels per group
    (2, 12, 8, 8, 24, 3, (3, 3), (1, 1), (2, 2), (2, 2)),  # 4 in, 8 out per group, dilated
    (1, 8, 7, 6, 8, 4, (1, 3), (1, 1), (1, 1), (0, 1)),
    (1, 4, 10, 9, 8, 4, (3, 3), (2, 2), (1, 1), (1, 1)),  # depthwise, two outputs per channel
    (1, 6, 7, 7, 6, 2, (5, 5), (1, 1), (1, 1), (-1, 3)),  # cropping pre-padding
]


@pytest.mark.parametrize("case", GROUPED, ids=[str(i) for i in range(len(GROUPED))])
def test_grouped_matches_torch(case, rng):
    n, c, h, wd, k, groups, kernel, stride, dilation, pre = case
    x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
    w = rng.standard_normal((k, c // groups, *kernel)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    xt = torch.from_numpy(x.astype(np.float64))
    if min(pre) < 0:  # torch pads only: crop first
        xt = xt[:, :, max(0, -pre[0]) :, max(0, -pre[1]) :]
    t = F.conv2d(xt, torch.from_numpy(w.astype(np.float64)), torch.from_numpy(b.astype(np.float64)),
                 stride=stride, padding=tuple(max(0, p) for p in pre), dilation=dilation, groups=groups)  # fmt: skip
    expected = F.hardswish(t).numpy()
    y = np.empty(expected.shape, np.float32)
    jit.grouped(x, w, groups, stride, dilation, expected.shape[2:], pre, b, y, ("HARD_SIGMOID", True, 1 / 6, 0.5))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_depthwise_without_bias_and_with_a_cropping_pre_padding(rng):
    # A negative pre-padding crops the input's first rows and columns (TensorRT allows it).
    x = rng.standard_normal((1, 3, 10, 10)).astype(np.float32)
    w = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
    cropped = x[:, :, 2:, 1:]
    expected = F.conv2d(torch.from_numpy(cropped), torch.from_numpy(w), groups=3).numpy()
    out = expected.shape[2:]
    y = np.empty(expected.shape, np.float32)
    jit.grouped(x, w, x.shape[1], (1, 1), (1, 1), out, (-2, -1), None, y)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_depthwise_refuses_other_dtypes():
    x = np.zeros((1, 2, 4, 4), np.float64)
    with pytest.raises(TypeError, match="float32 only"):
        jit.grouped(x, np.zeros((2, 1, 3, 3)), 2, (1, 1), (1, 1), (2, 2), (0, 0), None, np.empty((1, 2, 2, 2)))


def test_hidden_numba_says_why(monkeypatch):
    monkeypatch.setattr(jit, "_compiled", lambda: (None, "numba is not installed (test)"))
    assert not jit.enabled() and "numba" in jit.why_not()
    assert not jit.activate(np.ones(3, np.float32), "RELU", False, 0, 0)
    with pytest.raises(RuntimeError, match="numba"):
        jit.exp(np.ones(2, np.float32))


@pytest.mark.parametrize("shape", [(3, 7), (2, 12, 197, 197), (5, 1)])
def test_softmax_matches_torch_over_the_last_axis(shape, rng):
    x = (4 * rng.standard_normal(shape)).astype(np.float32)
    out = np.empty_like(x)
    assert jit.softmax(x, x.ndim - 1, out)
    expected = F.softmax(torch.from_numpy(x.astype(np.float64)), -1).numpy()
    np.testing.assert_allclose(out, expected, rtol=2e-6, atol=1e-9)


def test_softmax_edge_rows():
    x = np.float32([
        [1e4, 0, -1e4, 3],  # no overflow: the max is subtracted
        [-np.inf, 0, 1, -np.inf],  # masked entries give 0
        [-np.inf] * 4,  # nothing left: NaN, as exp(x - max) gives
        [0, np.nan, 1, 2],  # a NaN spreads over its row
    ])  # fmt: skip
    out = np.empty_like(x)
    assert jit.softmax(x, 1, out)
    with np.errstate(invalid="ignore"):
        e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
        expected = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected, rtol=2e-6, atol=1e-30)
    assert not jit.softmax(x, 0, out), "only the last axis"


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_layer_norm_matches_torch(offset, rng):
    # Rows far from zero: float64 statistics in two passes lose nothing to cancellation.
    x = (offset + rng.standard_normal((2, 197, 768))).astype(np.float32)
    scale, bias = rng.standard_normal(768).astype(np.float32), rng.standard_normal(768).astype(np.float32)
    out = np.empty_like(x)
    assert jit.layer_norm(x, scale.reshape(1, 1, 768), bias.reshape(1, 1, 768), 1e-5, out)
    t = torch.from_numpy(x.astype(np.float64))
    expected = F.layer_norm(t, (768,), torch.from_numpy(scale).double(), torch.from_numpy(bias).double(), 1e-5)
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_layer_norm_of_a_constant_row_is_its_bias():
    x = np.full((1, 4), 3.0, np.float32)
    out = np.empty_like(x)
    bias = np.float32([1, 2, 3, 4])
    assert jit.layer_norm(x, np.ones(4, np.float32), bias, 1e-5, out)
    np.testing.assert_array_equal(out, bias.reshape(1, 4))
    assert not jit.layer_norm(x, np.ones(3, np.float32), bias, 1e-5, out), "one scale per element of the axis"


@pytest.mark.parametrize("activation", [None, ("SIGMOID", True, 0.0, 0.0), ("HARD_SIGMOID", False, 1 / 6, 0.5)])
@pytest.mark.parametrize("bias", [True, False])
def test_matvec_matches_float64(activation, bias, rng):
    w = rng.standard_normal((37, 300)).astype(np.float32)
    x = rng.standard_normal((3, 300)).astype(np.float32)
    b = rng.standard_normal(37).astype(np.float32) if bias else None
    y = np.empty((3, 37), np.float32)
    jit.matvec(w, x, b, y, activation)
    z = x.astype(np.float64) @ w.astype(np.float64).T + (0 if b is None else b)
    expected = z if activation is None else _float64(*activation, z.astype(np.float32))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="float32 only"):
        jit.matvec(w.astype(np.float64), x, b, y, activation)


def test_a_slow_first_call_says_on_a_terminal_that_it_compiles(monkeypatch):
    import io
    import sys
    import threading
    import time

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(jit, "_NOTICE_AFTER_S", 0.01)
    monkeypatch.setattr(jit, "_called", set())
    monkeypatch.setattr(jit, "_noticed", threading.Event())
    jit._call(("slow",), time.sleep, 0.2)  # standing in for a kernel that numba compiles
    assert "compiling the reference interpreter's kernels with numba (once per machine" in err.getvalue()
    jit._call(("slow",), time.sleep, 0.2)
    jit._call(("other",), time.sleep, 0.2)
    assert err.getvalue().count("compiling") == 1, "once per process"


# (N, C, H, W, window, stride, padding, ceil mode): torch's max_pool2d pads with -inf too
MAX_POOLS = [
    (1, 3, 9, 11, (3, 3), (1, 1), (1, 1), False),
    (2, 4, 12, 12, (3, 3), (2, 2), (1, 1), False),
    (1, 2, 13, 10, (3, 3), (2, 2), (0, 0), True),  # the last window hangs past the input
    (1, 2, 8, 9, (2, 3), (2, 3), (0, 1), True),
    (1, 5, 7, 7, (5, 5), (1, 1), (2, 2), False),
]


@pytest.mark.parametrize("case", MAX_POOLS, ids=[str(i) for i in range(len(MAX_POOLS))])
def test_max_pool_matches_torch_and_keeps_nan(case, rng):
    n, c, h, wd, window, stride, pad, ceil = case
    x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
    x[0, 0, 1, 1] = np.nan
    expected = F.max_pool2d(torch.from_numpy(x.astype(np.float64)), window, stride, pad, ceil_mode=ceil).numpy()
    y = np.empty(expected.shape, np.float32)
    assert jit.max_pool(x, window, stride, expected.shape[2:], pad, y)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))  # torch keeps a NaN in a window too
    np.testing.assert_array_equal(y[~np.isnan(y)], expected[~np.isnan(expected)].astype(np.float32))


def test_max_pool_declines_what_it_has_no_kernel_for():
    x = np.zeros((1, 2, 4, 4), np.float64)
    assert not jit.max_pool(x, (2, 2), (2, 2), (2, 2), (0, 0), np.empty((1, 2, 2, 2), np.float64))
