"""trtdsl.weights.layout against real Keras outputs (keras3_layouts.npz) recomputed with torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trtdsl import ShapeError
from trtdsl.weights import layout

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "weights"


@pytest.fixture(scope="module")
def keras_out():
    return dict(np.load(FIX / "keras3_layouts.npz"))


def nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def nhwc(t):
    return t.numpy().transpose(0, 2, 3, 1)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def test_keras_conv_matches_keras_conv2d(keras_out):
    k = keras_out
    y = F.conv2d(nchw(k["conv.x"]), t(layout.keras_conv(k["conv.kernel"])), t(k["conv.bias"]), stride=(1, 2))
    np.testing.assert_allclose(nhwc(y), k["conv.y"], rtol=1e-5, atol=1e-5)


def test_keras_depthwise_matches_keras_depthwise_conv2d(keras_out):
    k = keras_out
    kernel = layout.keras_depthwise(k["depthwise.depthwise_kernel"])
    assert kernel.shape == (9, 1, 3, 2)
    y = F.conv2d(nchw(k["depthwise.x"]), t(kernel), t(k["depthwise.bias"]), groups=3)
    np.testing.assert_allclose(nhwc(y), k["depthwise.y"], rtol=1e-5, atol=1e-5)


def test_keras_conv_transpose_matches_keras_conv2d_transpose(keras_out):
    k = keras_out
    kernel = layout.keras_conv_transpose(k["deconv.kernel"])
    assert kernel.shape == (3, 4, 3, 2)  # (in, out, kh, kw)
    y = F.conv_transpose2d(nchw(k["deconv.x"]), t(kernel), t(k["deconv.bias"]), stride=(2, 1))
    np.testing.assert_allclose(nhwc(y), k["deconv.y"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("axis", [0, 1])
def test_nhwc_flatten_rows_matches_keras_flatten_dense(keras_out, axis):
    k = keras_out
    x = nchw(k["flatten_dense.x"]).reshape(2, -1)  # a channels-first network flattens (c, h, w)
    kernel = k["flatten_dense.kernel"]
    if axis == 0:
        weight = layout.keras_dense(layout.nhwc_flatten_rows(kernel, (3, 4, 5)))
    else:
        weight = layout.nhwc_flatten_rows(layout.keras_dense(kernel), (3, 4, 5), axis=1)
    y = F.linear(x, t(weight), t(k["flatten_dense.bias"]))
    np.testing.assert_allclose(y.numpy(), k["flatten_dense.y"], rtol=1e-5, atol=1e-5)


def keras_conv_numpy(x, kernel):
    """Channels-last valid convolution from its definition: y[n, p, o] = sum_{k, i} x[n, p + k, i] K[k, i, o]."""
    spatial = kernel.shape[:-2]
    win = np.lib.stride_tricks.sliding_window_view(x, spatial, axis=tuple(range(1, 1 + len(spatial))))
    # win: (n, *out, in, *k)
    nd = len(spatial)
    letters = "abc"[:nd]
    return np.einsum(f"n...i{letters},{letters}io->n...o", win, kernel)


@pytest.mark.parametrize("spatial", [(3,), (2, 3), (2, 2, 3)])
def test_keras_conv_any_rank(rng, spatial):
    x = rng.standard_normal((2, *[s + 4 for s in spatial], 3)).astype(np.float32)
    kernel = rng.standard_normal((*spatial, 3, 4)).astype(np.float32)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(spatial)]
    y = conv(t(np.moveaxis(x, -1, 1)), t(layout.keras_conv(kernel)))
    np.testing.assert_allclose(np.moveaxis(y.numpy(), 1, -1), keras_conv_numpy(x, kernel), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_results_are_contiguous_and_keep_dtype(rng, dtype):
    k = rng.standard_normal((3, 3, 4, 2)).astype(dtype)
    for fn in (layout.keras_conv, layout.keras_conv_transpose, layout.keras_depthwise):
        out = fn(k)
        assert out.flags.c_contiguous and out.dtype == dtype
    assert layout.keras_dense(k[0, 0]).flags.c_contiguous


def test_layout_errors_name_the_expected_layout():
    with pytest.raises(
        ShapeError, match=r"keras_conv: expected a Keras kernel \(spatial..., in, out\).*got shape \(3, 4\)"
    ):
        layout.keras_conv(np.zeros((3, 4)))
    with pytest.raises(ShapeError, match=r"keras_dense: expected a Dense kernel \(in, out\), got shape \(3, 3, 4\)"):
        layout.keras_dense(np.zeros((3, 3, 4)))
    with pytest.raises(ShapeError, match=r"nhwc_flatten_rows: kernel \(60, 6\) axis 0 must have prod\(3, 4, 4\) = 48"):
        layout.nhwc_flatten_rows(np.zeros((60, 6)), (3, 4, 4))
