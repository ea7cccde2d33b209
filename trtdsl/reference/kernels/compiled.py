"""The numba code behind ``kernels.jit``: imported only when numba is (see jit.enabled).

Every function here is module-level, and each specialization's closure holds only
integers and flags, so numba's disk cache recognizes a specialization in the next
process (its key hashes the closure's contents).

The kernels run on the calling thread (``nogil``: other Python threads run meanwhile).
numba's parallel loops were measured and left out: their OpenMP threads spin after each
kernel, on the cores that BLAS needs next (MobileNetV2 ran 7x slower end to end), and
their compilation takes 3 s per specialization instead of 0.5 s.
"""

from __future__ import annotations

import functools
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

# Activation codes: a compile-time constant of each specialization (see act).
NONE, RELU, CLIP, SIGMOID, HARD_SIGMOID, LEAKY_RELU, SILU, HARD_SWISH, GELU_ERF, GELU_TANH = range(10)
# No signed zeros; reciprocals and fused multiply-adds allowed; NaN and inf kept (no nnan, ninf).
FASTMATH = {"nsz", "arcp", "contract"}
_OPTIONS = {"fastmath": FASTMATH, "boundscheck": False, "error_model": "numpy", "nogil": True}
_INLINE = {"inline": "always", "fastmath": FASTMATH, "error_model": "numpy"}
_f32, _i32 = np.float32, np.int32
# float32's exponent bias and mantissa bits (127, 23), for building 2^n from its bits in expf.
_BIAS, _MANT = _i32(np.finfo(np.float32).maxexp - 1), _i32(np.finfo(np.float32).nmant)


def _njit(fn: Any) -> Any:
    try:
        return numba.njit(cache=True, **_OPTIONS)(fn)
    except RuntimeError:  # no writable cache directory: compile in every process instead
        return numba.njit(cache=False, **_OPTIONS)(fn)


@intrinsic
def _as_float(typingctx, bits):
    """The float32 whose bits are the low 32 of the integer ``bits``."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = args[0] if bits.bitwidth == 32 else builder.trunc(args[0], ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(bits), codegen


@numba.njit(**_INLINE)
def expf(x0):
    """Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by its polynomial, times 2^n
    made from its bits as 2^h * 2^(n - h), so that both factors are normal for n in [-126, 128]."""
    x = _f32(-87.33654) if x0 < _f32(-87.33654) else x0
    x = _f32(88.72283) if x > _f32(88.72283) else x
    n = np.floor(x * _f32(1.44269504088896341) + _f32(0.5))
    r = x - n * _f32(0.693359375) - n * _f32(-2.12194440e-4)
    p = _f32(1.9875691500e-4)
    p = p * r + _f32(1.3981999507e-3)
    p = p * r + _f32(8.3334519073e-3)
    p = p * r + _f32(4.1665795894e-2)
    p = p * r + _f32(1.6666665459e-1)
    p = p * r + _f32(5.0000001201e-1)
    p = p * r * r + r + _f32(1)
    k = _i32(n)
    h = k >> _i32(1)
    e = p * _as_float((h + _BIAS) << _MANT) * _as_float((k - h + _BIAS) << _MANT)
    e = _f32(np.inf) if x0 > _f32(88.72283) else e
    return _f32(0) if x0 < _f32(-87.33654) else e


@numba.njit(**_INLINE)
def erfc_abs(z):
    """erfc(|z|) within 1.2e-7 of its value, relative (Numerical Recipes' ``erfcc``, a Chebyshev fit
    of erfc(z) exp(z^2)), so that 1 + erf(z) = erfc(-z) keeps its precision in the negative tail."""
    az = abs(z)
    t = _f32(1) / (_f32(1) + _f32(0.5) * az)
    p = _f32(0.17087277)
    p = p * t + _f32(-0.82215223)
    p = p * t + _f32(1.48851587)
    p = p * t + _f32(-1.13520398)
    p = p * t + _f32(0.27886807)
    p = p * t + _f32(-0.18628806)
    p = p * t + _f32(0.09678418)
    p = p * t + _f32(0.37409196)
    p = p * t + _f32(1.00002368)
    return t * expf(p * t - az * az - _f32(1.26551223))


@numba.njit(**_INLINE)
def act(code, v, a, b):
    """Activation ``code`` of ``v``: the formulas of reference.activation (NvInfer.h's alpha and
    beta). Each select keeps a NaN (a comparison with NaN is false)."""
    if code == RELU:
        return _f32(0) if v < _f32(0) else v
    if code == CLIP:
        v = a if v < a else v
        return b if v > b else v
    if code == SIGMOID:
        return _f32(1) / (_f32(1) + expf(-v))
    if code in (HARD_SIGMOID, HARD_SWISH):
        t = a * v + b
        t = _f32(0) if t < _f32(0) else t
        t = _f32(1) if t > _f32(1) else t
        return t if code == HARD_SIGMOID else v * t
    if code == LEAKY_RELU:
        return a * v if v < _f32(0) else v
    if code == SILU:
        return v / (_f32(1) + expf(-v))
    if code == GELU_ERF:  # x (1 + erf(x / sqrt 2)) / 2, with 1 + erf(z) = erfc(-z) = 2 - erfc(z)
        z = v * _f32(0.7071067811865476)
        r = erfc_abs(z)
        return _f32(0.5) * v * (r if z < _f32(0) else _f32(2) - r)
    if code == GELU_TANH:  # x (1 + tanh(u)) / 2 = x / (1 + exp(-2u)), u = sqrt(2 / pi) (x + 0.044715 x^3)
        u = _f32(0.7978845608028654) * (v + _f32(0.044715) * v * v * v)
        return v / (_f32(1) + expf(_f32(-2) * u))
    return v


@functools.cache
def activation_kernel(code: int) -> Any:
    """kernel(y, a, b): activation ``code`` applied in place to the 1-D float32 ``y``."""

    def kernel(y, a, b):
        for i in range(y.size):
            y[i] = act(code, y[i], a, b)

    return _njit(kernel)


@numba.njit(**_INLINE)
def _copy_box(src, plane, box):
    """Copy the input plane ``src`` into ``plane`` at ``box`` (r0, c0, i0, j0, ni, nj): rows r0.. and
    columns c0.. of ``plane`` take rows i0.. and columns j0.. of ``src``, ni by nj."""
    r0, c0, i0, j0, ni, nj = box
    for i in range(ni):
        s = src[i0 + i, j0 : j0 + nj]
        d = plane[r0 + i, c0 : c0 + nj]
        for j in range(nj):
            d[j] = s[j]


@numba.njit(**_INLINE)
def _store_run(acc, y, wp):
    """Store a stride-1 run ``acc`` (output row i at i * wp) into the output plane ``y``."""
    oh, ow = y.shape
    for i in range(oh):
        yr = y[i]
        ar = acc[i * wp :]
        for j in range(ow):
            yr[j] = ar[j]


@functools.cache
def grouped_kernel(cg: int, fh: int, fw: int, sh: int, sw: int, dh: int, dw: int, code: int) -> Any:
    """kernel(x, w, bias, a, b, y, box, rows, wp) for one group width, kernel size, stride, dilation, activation.

    A grouped convolution with few channels per group, depthwise (one channel per group)
    included: x (N*G, CG, H, W), w (G, KG, CG, fh, fw), bias (G, KG), y (N*G, KG, OH, OW).
    Each group's input planes are copied into zeroed planes (CG, rows, wp) that stay in cache
    for the sums, at the box ``(r0, c0, i0, j0, ni, nj)``: rows r0.. and columns c0.. take the
    input's rows i0.. and columns j0.. (ni by nj), and the zeros around them (the padding)
    stay, as every plane has the same box. For each output channel, one kernel row at a time,
    fw products per output in registers; the loop over outputs vectorizes. At stride 1 a plane
    is one run: output (i, j) and its window's first pixel are both at i * wp + j of the padded
    plane, so one loop of OH * wp outputs (``acc``) covers it (the wp - OW outputs per row
    that fall between rows are dropped), which keeps short rows (7x7, 14x14) vectorized. At
    other strides, a loop per output row. The activation is one more pass over the output plane.
    """
    cols = tuple(t * dw for t in range(fw))  # constant offsets: the loop over them unrolls
    flat = sh == 1 and sw == 1

    def kernel(x, w, bias, a, b, y, box, rows, wp):
        ng, kg, oh, ow = y.shape
        g_ = w.shape[0]
        planes = np.zeros((cg, rows, wp), np.float32)  # a few kB per channel: in cache for the sums
        pf = planes.reshape(-1)
        acc = np.empty(oh * wp, np.float32)
        for m in range(ng):
            g = m % g_
            xm = x[m]
            for ci in range(cg):
                _copy_box(xm[ci], planes[ci], box)
            for kk in range(kg):
                bv = bias[g, kk]
                wk = w[g, kk]
                yk = y[m, kk]
                if flat:
                    run = (oh - 1) * wp + ow
                    for p in range(run):
                        acc[p] = bv
                    for ci in range(cg):
                        for r in range(fh):
                            wr = wk[ci, r]
                            xs = pf[(ci * rows + r * dh) * wp :]
                            for p in range(run):
                                s = acc[p]
                                for t in range(fw):
                                    s += wr[t] * xs[p + cols[t]]
                                acc[p] = s
                    _store_run(acc, yk, wp)
                else:
                    for i in range(oh):
                        yr = yk[i]
                        for j in range(ow):
                            yr[j] = bv
                        for ci in range(cg):
                            plane = planes[ci]
                            for r in range(fh):
                                xr = plane[i * sh + r * dh]
                                wr = wk[ci, r]
                                for j in range(ow):
                                    s = yr[j]
                                    for t in range(fw):
                                        s += wr[t] * xr[j * sw + cols[t]]
                                    yr[j] = s
                if code != NONE:
                    yf = yk.reshape(-1)
                    for q in range(oh * ow):
                        yf[q] = act(code, yf[q], a, b)

    return _njit(kernel)


@functools.cache
def max_pool_kernel(fh: int, fw: int, sh: int, sw: int) -> Any:
    """kernel(x, y, box, rows, wp): the max over each fh x fw window, stride (sh, sw), of the planes of
    x (N*C, H, W) into y (N*C, OH, OW). As ``grouped_kernel``: each plane copied into a plane of -inf
    (the padding) at ``box``, and at stride 1 one run of OH * wp outputs per plane. A NaN in a
    window gives NaN, as ``np.maximum`` does."""
    flat = sh == 1 and sw == 1

    def kernel(x, y, box, rows, wp):
        nc_, oh, ow = y.shape
        plane = np.full((rows, wp), -np.inf, np.float32)
        pf = plane.reshape(-1)
        acc = np.empty(oh * wp, np.float32)
        for m in range(nc_):
            _copy_box(x[m], plane, box)
            if flat:
                run = (oh - 1) * wp + ow
                for p in range(run):
                    acc[p] = -np.inf
                for r in range(fh):
                    xs = pf[r * wp :]
                    for p in range(run):
                        v = acc[p]
                        for t in range(fw):
                            u = xs[p + t]
                            v = u if (u > v or np.isnan(u)) else v
                        acc[p] = v
                _store_run(acc, y[m], wp)
            else:
                for i in range(oh):
                    yr = y[m, i]
                    for j in range(ow):
                        yr[j] = -np.inf
                    for r in range(fh):
                        xr = plane[i * sh + r]
                        for j in range(ow):
                            v = yr[j]
                            for t in range(fw):
                                u = xr[j * sw + t]
                                v = u if (u > v or np.isnan(u)) else v
                            yr[j] = v

    return _njit(kernel)


# Reductions may reassociate (their sums vectorize); float64 accumulators keep them exact enough.
_REDUCE = {**_OPTIONS, "fastmath": FASTMATH | {"reassoc"}}


@numba.njit(cache=True, **_REDUCE)
def softmax_rows(x, y):
    """y[i] = softmax(x[i]) for the rows of the 2-D float32 ``x`` (max subtracted; a NaN row gives NaNs)."""
    n, d = x.shape
    for i in range(n):
        xr, yr = x[i], y[i]
        m = _f32(-np.inf)
        for j in range(d):
            m = max(m, xr[j])
        total = 0.0
        for j in range(d):
            e = expf(xr[j] - m)
            yr[j] = e
            total += e
        inv = _f32(1.0 / total)
        for j in range(d):
            yr[j] *= inv


@numba.njit(cache=True, **_REDUCE)
def layernorm_rows(x, scale, bias, eps, y):
    """y[i] = (x[i] - mean) / sqrt(var + eps) * scale + bias per row of the 2-D float32 ``x``:
    mean and (biased) variance over the row, in float64 (two passes: no cancellation)."""
    n, d = x.shape
    for i in range(n):
        xr, yr = x[i], y[i]
        total = 0.0
        for j in range(d):
            total += xr[j]
        mean = total / d
        sq = 0.0
        for j in range(d):
            c = xr[j] - mean
            sq += c * c
        inv = 1.0 / np.sqrt(sq / d + eps)
        for j in range(d):  # centered in float64 too: float32(mean) would be off by half its ulp
            yr[j] = _f32((xr[j] - mean) * inv * scale[j] + bias[j])


@functools.cache
def matvec_kernel(code: int) -> Any:
    """kernel(w, x, bias, a, b, y): y[i, k] = act(sum_c w[k, c] x[i, c] + bias[k]), float64 sums."""

    def kernel(w, x, bias, a, b, y):
        n, c = x.shape
        k_ = w.shape[0]
        for i in range(n):
            xi = x[i]
            for k in range(k_):
                wk = w[k]
                s = 0.0
                for j in range(c):
                    s += wk[j] * xi[j]
                y[i, k] = act(code, _f32(s + bias[k]), a, b)

    return numba.njit(cache=True, **_REDUCE)(kernel)


@functools.cache
def exp_kernel() -> Any:
    """kernel(x) -> expf of every element of the float32 array ``x``."""

    def kernel(x):
        y = np.empty_like(x)
        fx, fy = x.reshape(-1), y.reshape(-1)
        for i in range(fx.size):
            fy[i] = expf(fx[i])
        return y

    return _njit(kernel)
