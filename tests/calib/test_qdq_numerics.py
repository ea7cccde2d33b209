"""Quantize/dequantize numerics of quantized networks in the interpreter, against the formulas.

INT8: ``q = clamp(round_half_even(x / s), -128, 127)``, ``x_hat = q * s``; FP8:
``q = e4m3(clip(x / s, -448, 448))`` (ml_dtypes here; the interpreter rounds with its own
bit arithmetic). Scales are powers of two so that every half-way case is exact, and the
expected integer levels are written out by hand.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import trtdsl
from trtdsl import calib, ops, reference

pytestmark = pytest.mark.usefixtures("trt")


def _net(kernel):
    net = trtdsl.Network("q")
    x = net.input("x", "float32", (1, kernel.shape[1], 1, 7))
    net.output(ops.conv2d(x, kernel, name="conv"), "y")
    return net


def test_int8_half_even_and_clamp_per_tensor_and_per_channel():
    # Activations: amax 127/16, so s = 1/16 exactly; x in units of s.
    units = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 200.0, -200.0])
    levels = np.array([0, 2, 2, 0, -2, 127, -128])  # half to even; clamp to [-128, 127]
    x = np.stack([units, -units]) / 16  # channel 1 mirrors channel 0
    # Weights per output channel: amax 127/64 and 127/256 give s = 1/64 and 1/256; channel 2 is all zero.
    kernel = np.array([[127 / 64, -63.5 / 64], [-127 / 256, 2.5 / 256], [0.0, 0.0]], np.float32)[:, :, None, None]
    w_levels = np.array([[127, -64], [-127, 2], [0, 0]])
    w_scale = np.array([1 / 64, 1 / 256, 1.0])
    net = _net(kernel)
    calib.quantize(net, {"x": 127 / 16}, dtype="int8", report=False)
    got = reference.run(net, {"x": x[None, :, None, :].astype(np.float32)})["y"][0, :, 0, :]
    xq = np.stack([levels, np.array([0, -2, -2, 0, 2, -128, 127])]) / 16
    wq = w_levels * w_scale[:, None]
    np.testing.assert_allclose(got, wq @ xq, rtol=1e-6, atol=1e-7)
    # And without per-channel weights one scale serves all: 127/64's, so the small channel rounds away.
    net = _net(kernel)
    calib.quantize(net, {"x": 127 / 16}, dtype="int8", per_channel_weights=False, report=False)
    got = reference.run(net, {"x": x[None, :, None, :].astype(np.float32)})["y"][0, :, 0, :]
    wq_tensor = np.array([[127, -64], [-32, 1], [0, 0]]) / 64  # -31.75 -> -32, 0.625 -> 1
    np.testing.assert_allclose(got, wq_tensor @ xq, rtol=1e-6, atol=1e-7)


def test_fp8_saturates_at_448_and_rounds_to_e4m3():
    x = np.array([500.0, -1000.0, 17.0, 19.0, 0.3, -3.3, 448.0], np.float32)
    by_hand = np.array([448, -448, 16, 20])  # saturation, then ties to even on the 2-spaced grid of [16, 32)
    kernel = np.array([[1.0], [0.75]], np.float32)[:, :, None, None]  # per-channel amax 1 and 0.75
    net = _net(kernel)
    calib.quantize(net, {"x": 448.0}, dtype="fp8", report=False)  # s = 1
    got = reference.run(net, {"x": x[None, None, None, :]})["y"][0, :, 0, :]
    xq = np.clip(x, -448, 448).astype(ml_dtypes.float8_e4m3fn).astype(np.float64)
    np.testing.assert_array_equal(xq[:4], by_hand)
    w = kernel[:, 0, 0, 0].astype(np.float64)
    s = np.float32(w / 448).astype(np.float64)
    wq = np.clip(w / s, -448, 448).astype(ml_dtypes.float8_e4m3fn).astype(np.float64) * s
    np.testing.assert_allclose(got, wq[:, None] * xq[None, :], rtol=1e-6)
    assert trtdsl.build(net, progress=False).outputs["y"].shape == (1, 2, 1, 7)
