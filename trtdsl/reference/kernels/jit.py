"""Compiled kernels (numba) for what NumPy does in many passes: grouped and depthwise convolutions, max pools, activations.

Why: a depthwise 3x3 convolution in NumPy is nine passes over its input (a copy or a
multiply-add per kernel offset), and SiLU is four (negate, exp, add, divide) over
arrays larger than the cache. Compiled, each is one pass with the sum (or the exp)
in registers: measured on MobileNetV2's and EfficientNet-B0's shapes
(``python bench/kernels.py``), depthwise 2-5x and SiLU 2-3x faster than the NumPy
kernels beside this module.

Used by the fast mode only, and only when numba is installed (the ``fast`` and ``dev``
extras); otherwise the NumPy kernels run (``enabled()`` says which, ``why_not()`` why).
Every kernel is float32 in and out, and is specialized for its constants (kernel
size, strides, dilations, activation: ``kernels.compiled``), so each loop over kernel
columns unrolls and each loop over output columns vectorizes. numba keeps the
compiled code in its own disk cache (beside ``compiled.py``, else in its user cache
directory), so a specialization compiles once per machine (about 0.5 s), not per process.

Numerics: sums run in float32 in another order than the NumPy paths (within a few
float32 ulps), and ``exp`` is Cephes' single-precision polynomial (within 1.5 ulps of
the exact value; NumPy's is within 3.5), inf above ln(FLT_MAX) and 0 below the log of
the smallest normal float (NumPy's gives subnormals there). NaN propagates through
every kernel, as through the NumPy formulas.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any

import numpy as np

# (ActivationType name, gate) -> the compiled code's activation number; a gate is
# y * act(y) (see reference.fusion.Epilogue): SiLU and hard-swish.
CODES = {
    ("RELU", False): 1,
    ("CLIP", False): 2,
    ("SIGMOID", False): 3,
    ("HARD_SIGMOID", False): 4,
    ("LEAKY_RELU", False): 5,
    ("SIGMOID", True): 6,
    ("HARD_SIGMOID", True): 7,
    ("GELU_ERF", False): 8,
    ("GELU_TANH", False): 9,
}


# A first call that takes longer than this (numba compiling, not loading from its cache)
# says so on an interactive terminal, once per process.
_NOTICE_AFTER_S = 2.0
_called: set[tuple] = set()
_noticed = threading.Event()


def _notice() -> None:
    if sys.stderr.isatty() and not _noticed.is_set():
        _noticed.set()
        print("trtdsl: compiling the reference interpreter's kernels with numba (once per machine: later runs "
              "load them from numba's cache)...", file=sys.stderr, flush=True)  # fmt: skip


def _call(key: tuple, kernel: Any, *args: Any) -> Any:
    """``kernel(*args)``; the first call of each specialization in this process is watched (``_notice``)."""
    if key in _called:
        return kernel(*args)
    timer = threading.Timer(_NOTICE_AFTER_S, _notice)
    timer.daemon = True
    timer.start()
    try:
        return kernel(*args)
    finally:
        timer.cancel()
        _called.add(key)


@functools.cache
def _compiled() -> tuple[Any, str]:
    """(the kernels.compiled module, "") when numba imports, else (None, why not)."""
    try:
        from . import compiled
    except ImportError as e:  # an optional speed-up: the fast and dev extras install numba
        return None, f"numba is not installed ({e}); install trtdsl[fast] for the compiled kernels"
    return compiled, ""


def compiles(activation: tuple[str, bool, float, float] | None) -> bool:
    """Whether the compiled kernels have a formula for ``activation`` (kind, gate, alpha, beta), or None."""
    return activation is None or activation[:2] in CODES


def enabled() -> bool:
    """Whether the compiled kernels run (numba imports); ``why_not()`` says why when they do not."""
    return _compiled()[0] is not None


def why_not() -> str:
    """Why the compiled kernels do not run, or "" when they do."""
    return _compiled()[1]


def activate(y: np.ndarray, kind: str, gate: bool, alpha: float, beta: float) -> bool:
    """Apply activation ``kind`` (``y * act(y)`` when ``gate``) in place to C-contiguous float32 ``y``.

    Returns False, having done nothing, when no kernel fits (numba absent, another
    dtype or layout, an activation without a compiled formula).
    """
    code = CODES.get((kind, gate))
    if code is None or not enabled() or y.dtype != np.float32 or not (y.flags.c_contiguous and y.flags.writeable):
        return False
    kernel = _compiled()[0].activation_kernel(code)
    _call(("activation", code), kernel, y.reshape(-1), np.float32(alpha), np.float32(beta))
    return True


def grouped(
    x: np.ndarray, w: np.ndarray, groups: int, stride: tuple[int, int], dilation: tuple[int, int],
    out: tuple[int, int], pre: tuple[int, int], bias: np.ndarray | None, y: np.ndarray,
    activation: tuple[str, bool, float, float] | None = None,
) -> None:  # fmt: skip
    """The grouped correlation of float32 ``x`` (N, C, H, W) with ``w`` (K, C/groups, FH, FW), plus
    ``bias``, into ``y`` (N, K, *out); depthwise when ``groups`` is C. For few channels per group:
    each output channel sums its group's input planes directly (no im2col, no GEMM).

    ``pre``: the zero padding before each spatial dim (negative crops); after them, as far
    as ``out`` reads. ``activation`` (kind, gate, alpha, beta), one of ``CODES``, is applied
    to each output plane as it is stored. Needs numba (``enabled()``).
    """
    if not enabled():
        raise RuntimeError(why_not())
    if not x.dtype == w.dtype == y.dtype == np.float32:
        raise TypeError(f"the compiled grouped kernel is float32 only, not {x.dtype}, {w.dtype} -> {y.dtype}")
    code = 0 if activation is None else CODES[activation[:2]]
    n, c, h, wd = x.shape
    k, cg, fh, fw = w.shape
    box, rows, cols = _plane(x.shape[2:], (fh, fw), stride, dilation, out, pre)
    b = np.zeros(k, np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
    alpha, beta = (0.0, 0.0) if activation is None else activation[2:]
    key = (cg, fh, fw, *stride, *dilation, code)
    kernel = _compiled()[0].grouped_kernel(*key)
    _call(("grouped", *key), kernel, np.ascontiguousarray(x).reshape(n * groups, c // groups, h, wd),
          np.ascontiguousarray(w).reshape(groups, k // groups, cg, fh, fw), b.reshape(groups, k // groups),
          np.float32(alpha), np.float32(beta), y.reshape(n * groups, k // groups, *out), box, rows, cols)  # fmt: skip


def _plane(
    size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, ...], dilation: tuple[int, ...],
    out: tuple[int, int], pre: tuple[int, int],
) -> tuple[np.ndarray, int, int]:  # fmt: skip
    """(box, rows, cols) of the padded plane that the compiled window kernels copy each input plane into."""
    h, wd = size
    # The padded plane: every row and column the output's windows read.
    rows, cols = ((o - 1) * s + (f - 1) * d + 1 for o, s, f, d in zip(out, stride, kernel, dilation, strict=True))
    (ph, pw) = pre
    # The box of the input inside the padded plane (a negative pre-padding crops).
    i0, j0, r0, c0 = max(0, -ph), max(0, -pw), max(0, ph), max(0, pw)
    box = np.array([r0, c0, i0, j0, max(0, min(h - i0, rows - r0)), max(0, min(wd - j0, cols - c0))], np.int64)
    return box, rows, cols


def max_pool(
    x: np.ndarray, window: tuple[int, int], stride: tuple[int, int], out: tuple[int, int], pre: tuple[int, int],
    y: np.ndarray,
) -> bool:  # fmt: skip
    """The 2-D max pool of float32 ``x`` (N, C, H, W) into ``y`` (N, C, *out): padding before by ``pre``,
    after as far as ``out`` reads, all of it -inf. False (nothing done) when no kernel fits."""
    if x.ndim != 4 or x.dtype != np.float32 or y.dtype != np.float32 or not enabled():
        return False
    n, c, h, wd = x.shape
    box, rows, cols = _plane((h, wd), window, stride, (1, 1), out, pre)
    kernel = _compiled()[0].max_pool_kernel(*window, *stride)
    _call(("max_pool", *window, *stride), kernel, np.ascontiguousarray(x).reshape(n * c, h, wd),
          y.reshape(n * c, *out), box, rows, cols)  # fmt: skip
    return True


def softmax(x: np.ndarray, axis: int, out: np.ndarray) -> bool:
    """Softmax of float32 ``x`` over its last axis into ``out``; False (nothing done) when no kernel fits."""
    if axis != x.ndim - 1 or x.dtype != np.float32 or out.dtype != np.float32 or x.size == 0 or not enabled():
        return False
    d = x.shape[-1]
    _call(("softmax",), _compiled()[0].softmax_rows, np.ascontiguousarray(x).reshape(-1, d), out.reshape(-1, d))
    return True


def layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, eps: float, out: np.ndarray) -> bool:
    """Normalization of float32 ``x`` over its last axis, times ``scale`` plus ``bias`` (each one
    value per element of that axis), into ``out``; False (nothing done) when no kernel fits."""
    d = x.shape[-1] if x.ndim else 0
    if not d or scale.size != d or bias.size != d or x.dtype != np.float32 or out.dtype != np.float32:
        return False
    if not enabled():
        return False
    s = np.ascontiguousarray(scale, np.float32).reshape(d)
    b = np.ascontiguousarray(bias, np.float32).reshape(d)
    x2 = np.ascontiguousarray(x).reshape(-1, d)
    _call(("layer_norm",), _compiled()[0].layernorm_rows, x2, s, b, float(eps), out.reshape(-1, d))
    return True


def matvec(
    w: np.ndarray, x: np.ndarray, bias: np.ndarray | None, y: np.ndarray,
    activation: tuple[str, bool, float, float] | None = None,
) -> None:  # fmt: skip
    """``y[i] = act(w @ x[i] + bias)`` for float32 ``w`` (K, C), ``x`` (N, C), into ``y`` (N, K), with
    ``activation`` (kind, gate, alpha, beta), one of ``CODES``, applied. Needs numba (``enabled()``)."""
    if not enabled():
        raise RuntimeError(why_not())
    if not w.dtype == x.dtype == y.dtype == np.float32:
        raise TypeError(f"the compiled matrix-vector kernel is float32 only, not {w.dtype}, {x.dtype} -> {y.dtype}")
    code = 0 if activation is None else CODES[activation[:2]]
    b = np.zeros(w.shape[0], np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
    alpha, beta = (0.0, 0.0) if activation is None else activation[2:]
    kernel = _compiled()[0].matvec_kernel(code)
    _call(("matvec", code), kernel, np.ascontiguousarray(w), np.ascontiguousarray(x), b, np.float32(alpha),
          np.float32(beta), y)  # fmt: skip


def exp(x: np.ndarray) -> np.ndarray:
    """The compiled kernels' ``exp`` of float32 ``x`` (for tests of its accuracy); needs numba."""
    if not enabled():
        raise RuntimeError(why_not())
    return _compiled()[0].exp_kernel()(np.ascontiguousarray(x, np.float32))
