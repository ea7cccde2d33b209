"""Layout conversions from Keras (channels-last) weights to TensorRT/PyTorch (channels-first).

Each function is named for what it converts and works for 1-, 2- and 3-D
kernels alike. Results are C-contiguous copies, ready for ``net.keep``.

Example::

    kernel = layout.keras_conv(w.take("conv2d/kernel"))       # (3,3,16,32) -> (32,16,3,3)
    dense = layout.keras_dense(layout.nhwc_flatten_rows(w.take("dense/kernel"), (7, 7, 32)))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..errors import ShapeError

__all__ = ["keras_conv", "keras_conv_transpose", "keras_dense", "keras_depthwise", "nhwc_flatten_rows"]


def _kernel(kernel: ArrayLike, what: str, layout: str) -> np.ndarray:
    k = np.asarray(kernel)
    if not 3 <= k.ndim <= 5:
        raise ShapeError(f"{what}: expected a Keras kernel {layout} with 1 to 3 spatial axes, got shape {k.shape}")
    return k


def _channels_first(k: np.ndarray) -> np.ndarray:
    # (*spatial, a, b) -> (b, a, *spatial)
    n = k.ndim
    return np.ascontiguousarray(k.transpose(n - 1, n - 2, *range(n - 2)))


def keras_conv(kernel: ArrayLike) -> np.ndarray:
    """Conv kernel (kh, kw, in, out) (HWIO) -> (out, in, kh, kw) (KCRS); also 1-D and 3-D."""
    return _channels_first(_kernel(kernel, "keras_conv", "(spatial..., in, out)"))


def keras_conv_transpose(kernel: ArrayLike) -> np.ndarray:
    """Conv2DTranspose kernel (kh, kw, out, in) -> (in, out, kh, kw), TensorRT's and torch's deconvolution layout.

    Keras stores it (out, in) last, so the same transposition as :func:`keras_conv` swaps them into place.
    """
    return _channels_first(_kernel(kernel, "keras_conv_transpose", "(spatial..., out, in)"))


def keras_depthwise(kernel: ArrayLike) -> np.ndarray:
    """DepthwiseConv2D kernel (kh, kw, C, M) -> (C*M, 1, kh, kw) for a convolution with groups=C.

    Output channel ``c*M + m`` is input channel ``c`` times multiplier ``m``, Keras' order.
    """
    k = _kernel(kernel, "keras_depthwise", "(spatial..., channels, multiplier)")
    n = k.ndim
    c, m = k.shape[-2:]
    return np.ascontiguousarray(k.transpose(n - 2, n - 1, *range(n - 2)).reshape(c * m, 1, *k.shape[:-2]))


def keras_dense(kernel: ArrayLike) -> np.ndarray:
    """Dense kernel (in, out) -> (out, in), the layout of ``torch.nn.Linear`` and ``ops.linear``."""
    k = np.asarray(kernel)
    if k.ndim != 2:
        raise ShapeError(f"keras_dense: expected a Dense kernel (in, out), got shape {k.shape}")
    return np.ascontiguousarray(k.T)


def nhwc_flatten_rows(kernel: ArrayLike, feature_shape: Sequence[int], *, axis: int = 0) -> np.ndarray:
    """Reorder a Dense kernel that follows a Flatten from channels-last to channels-first features.

    Keras flattens (h, w, c); a channels-first network flattens (c, h, w).
    ``feature_shape`` is the Keras (h, w, c) shape before the Flatten (any
    number of spatial axes); ``axis`` is the kernel's feature axis (0 for
    Keras' (in, out), 1 after :func:`keras_dense`).
    """
    k = np.asarray(kernel)
    shape = tuple(int(d) for d in feature_shape)
    ax = axis % max(k.ndim, 1)
    if k.ndim != 2 or int(np.prod(shape)) != k.shape[ax]:
        raise ShapeError(
            f"nhwc_flatten_rows: kernel {k.shape} axis {axis} must have prod{shape} = {int(np.prod(shape))} features"
        )
    moved = np.moveaxis(k, ax, 0).reshape(*shape, -1)
    n = len(shape)
    chw = moved.transpose(n - 1, *range(n - 1), n).reshape(k.shape[ax], -1)
    return np.ascontiguousarray(np.moveaxis(chw, 0, ax))
