"""ops.interpolate against torch.nn.functional.interpolate, through the reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import ops
from trtdsl.errors import ShapeError

torch = pytest.importorskip("torch")
F = torch.nn.functional

from ._oprun import run_output as _run  # noqa: E402
from ._oprun import torch64 as _t  # noqa: E402

pytestmark = pytest.mark.usefixtures("trt")

TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float16": dict(rtol=3e-3, atol=5e-3)}


# (mode, spatial, size or None, scale or None, align_corners)
CASES = [
    ("nearest", (5, 7), (10, 14), None, None),
    ("nearest", (6, 9), (4, 5), None, None),
    ("nearest", (5, 6), None, 2, None),
    ("nearest", (3, 4), (7, 11), None, None),
    ("nearest", (7,), (16,), None, None),
    ("nearest", (3, 4, 5), (6, 5, 9), None, None),
    ("nearest-exact", (5, 7), (11, 3), None, None),
    ("nearest-exact", (4, 4), None, 3, None),
    ("linear", (9,), (20,), None, False),
    ("linear", (9,), (4,), None, True),
    ("bilinear", (5, 6), (11, 13), None, False),
    ("bilinear", (5, 6), (11, 13), None, True),
    ("bilinear", (8, 9), (3, 4), None, False),
    ("bilinear", (4, 5), None, 2, False),
    ("bilinear", (4, 5), None, (2, 3), True),
    ("bilinear", (4, 5), (1, 1), None, True),
    ("trilinear", (3, 4, 5), (5, 8, 7), None, False),
    ("trilinear", (3, 4, 5), (2, 6, 3), None, True),
    ("bicubic", (5, 6), (11, 13), None, False),
    ("bicubic", (6, 7), (12, 14), None, True),
    ("bicubic", (9, 8), (4, 5), None, False),
    ("bicubic", (4, 5), None, 2, False),
]
IDS = [f"{m}-{s}-size{z}-scale{f}-ac{a}" for m, s, z, f, a in CASES]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_interpolate_matches_torch(case, dtype, rng):
    mode, spatial, size, scale, align = case
    x = rng.standard_normal((2, 3, *spatial)).astype(np.float32)
    net = trtdsl.Network("resize", dtype=dtype)
    y = ops.interpolate(net.input("x", "float32", x.shape), size, scale, mode, align)
    ref = F.interpolate(_t(x), size, scale, mode, align).numpy()
    assert y.shape == ref.shape
    np.testing.assert_allclose(_run(net, y, x), ref, **TOL[dtype])


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_fractional_scale_maps_like_recomputed_torch_scale(mode, rng):
    """TensorRT maps coordinates by in/out length: torch's recompute_scale_factor=True."""
    x = rng.standard_normal((1, 2, 5, 7)).astype(np.float32)
    net = trtdsl.Network("frac")
    y = ops.interpolate(net.input("x", "float32", x.shape), scale_factor=1.5, mode=mode)
    kw = {} if mode == "nearest" else {"align_corners": False}
    ref = F.interpolate(_t(x), scale_factor=1.5, mode=mode, recompute_scale_factor=True, **kw).numpy()
    assert y.shape == ref.shape == (1, 2, 7, 10)
    np.testing.assert_allclose(_run(net, y, x), ref, rtol=1e-5, atol=1e-5)


def test_size_with_dynamic_batch_uses_scales(rng):
    net = trtdsl.Network("dyn")
    xi = net.input("x", "float32", (net.dim("batch", 1, 2, 4), 3, 3, 7))
    y = ops.interpolate(xi, size=(7, 9), mode="bilinear", align_corners=False)
    assert y.shape == (-1, 3, 7, 9)
    assert np.floor(np.float32(3) * np.float32(y.layer.scales[2])) == 7  # TensorRT sizes in float32
    x = rng.standard_normal((2, 3, 3, 7)).astype(np.float32)
    ref = F.interpolate(_t(x), (7, 9), mode="bilinear", align_corners=False).numpy()
    np.testing.assert_allclose(_run(net, y, x), ref, rtol=1e-5, atol=1e-5)


def test_scale_factor_with_dynamic_spatial_dims(rng):
    net = trtdsl.Network("dynhw")
    xi = net.input("x", "float32", (1, 2, net.dim("h", 2, 4, 8), net.dim("w", 2, 4, 8)))
    y = ops.interpolate(xi, scale_factor=2, name="up")
    assert y.shape == (1, 2, -1, -1) and y.layer.name == "up" and y.name == "up.out"
    x = rng.standard_normal((1, 2, 3, 5)).astype(np.float32)
    np.testing.assert_array_equal(_run(net, y, x), F.interpolate(_t(x), scale_factor=2).numpy())


def test_scoped_name():
    net = trtdsl.Network("names")
    with net.scope("neck"):
        y = ops.interpolate(net.input("x", "float32", (1, 2, 4, 4)), scale_factor=2, name="up")
    assert y.layer.name == "neck.up" and y.name == "neck.up.out"


def test_interpolate_errors():
    net = trtdsl.Network("err")
    x = net.input("x", "float32", (1, 2, 4, 4))
    with pytest.raises(ShapeError, match=r"interpolate: unknown mode 'area'; expected one of nearest"):
        ops.interpolate(x, scale_factor=2, mode="area")
    with pytest.raises(ShapeError, match=r"mode 'trilinear' takes inputs of rank 5, got 'x' with shape \(1, 2, 4, 4\)"):
        ops.interpolate(x, scale_factor=2, mode="trilinear")
    with pytest.raises(ShapeError, match=r"align_corners applies to linear and cubic modes only, not 'nearest'"):
        ops.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(ShapeError, match=r"give exactly one of size or scale_factor"):
        ops.interpolate(x, (8, 8), 2)
    with pytest.raises(ShapeError, match=r"size needs 2 positive values, got \(8, 8, 8\)"):
        ops.interpolate(x, (8, 8, 8))
    dyn = net.input("d", "float32", (1, 2, "h", 4))
    with pytest.raises(
        ShapeError, match=r"size= needs static spatial dims, got input shape \(1, 2, -1, 4\); use scale"
    ):
        ops.interpolate(dyn, (8, 8))
