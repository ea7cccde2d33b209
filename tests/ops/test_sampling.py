"""ops.grid_sample against torch.nn.functional.grid_sample (float64), through the reference interpreter.

torch covers every combination here: nearest and bilinear on 4-D and 5-D input, bicubic
on 4-D, each with zeros/border/reflection padding and both corner alignments. Grids
reach past [-1, 1] so that every padding mode is exercised.
"""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import ops, reference
from trtdsl.errors import ShapeError

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.usefixtures("trt")

TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float16": dict(rtol=1e-2, atol=2e-2)}
PADDINGS = ["zeros", "border", "reflection"]


def _grid(rng, n, out, k, reach=1.4):
    return rng.uniform(-reach, reach, (n, *out, k)).astype(np.float32)


def _run(x, grid, dtype="float32", **kw):
    net = trtdsl.Network("gs", dtype=dtype)
    y = ops.grid_sample(net.input("x", "float32", x.shape), net.input("g", "float32", grid.shape), **kw)
    net.output(y, "y")
    return reference.run(net, {"x": x, "g": grid})["y"], y, net


def _torch(x, grid, **kw):
    return F.grid_sample(torch.from_numpy(x).double(), torch.from_numpy(grid).double(), **kw).numpy()


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize(("xshape", "out"), [((2, 3, 5, 7), (4, 6)), ((1, 2, 1, 6), (3, 3)), ((1, 1, 8, 8), (8, 8))])
def test_grid_sample_4d_matches_torch(xshape, out, mode, padding_mode, align_corners, rng):
    x = rng.standard_normal(xshape).astype(np.float32)
    grid = _grid(rng, xshape[0], out, 2)
    kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    got, y, _ = _run(x, grid, **kw)
    ref = _torch(x, grid, **kw)
    assert y.shape == ref.shape
    # Random grids almost surely put no point on a rounding boundary, so nearest is compared exactly too.
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_grid_sample_5d_matches_torch(mode, padding_mode, align_corners, rng):
    x = rng.standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    grid = _grid(rng, 2, (3, 4, 2), 3)
    kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    got, y, _ = _run(x, grid, **kw)
    ref = _torch(x, grid, **kw)
    assert y.shape == ref.shape == (2, 3, 3, 4, 2)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_nearest_on_exact_pixel_centres_is_exact(rng):
    """Grid points on pixel centres leave no rounding ambiguity: nearest must match torch exactly."""
    x = rng.standard_normal((1, 2, 4, 5)).astype(np.float32)
    ys, xs = np.meshgrid(np.arange(4), np.arange(5), indexing="ij")
    grid = np.stack([xs / 4 * 2 - 1, ys / 3 * 2 - 1], -1)[None].astype(np.float32)  # align_corners=True centres
    got, _, _ = _run(x, grid, mode="nearest", align_corners=True)
    np.testing.assert_array_equal(got, x)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_grid_sample_float16(mode, rng):
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    grid = _grid(rng, 1, (5, 5), 2, reach=1.0)
    got, _, _ = _run(x, grid, dtype="float16", mode=mode)
    np.testing.assert_allclose(got, _torch(x, grid, mode=mode, align_corners=False), **TOL["float16"])


@pytest.mark.parametrize(("rank", "mode"), [(4, "bilinear"), (4, "nearest"), (4, "bicubic"), (5, "bilinear"),
                                            (5, "nearest")])  # fmt: skip
@pytest.mark.parametrize("padding_mode", PADDINGS)
def test_grid_sample_builds_on_cpu(rank, mode, padding_mode, rng):
    xshape = (1, 2, 4, 5) if rank == 4 else (1, 2, 3, 4, 5)
    grid = _grid(rng, 1, (3,) * (rank - 2), rank - 2)
    _, _, net = _run(rng.standard_normal(xshape).astype(np.float32), grid, mode=mode, padding_mode=padding_mode)
    trtdsl.build(net, progress=False)


def test_grid_sample_bad_inputs_raise():
    net = trtdsl.Network("bad")
    x = net.input("x", "float32", (1, 2, 4, 4))
    g = net.input("g", "float32", (1, 3, 3, 2))
    with pytest.raises(ShapeError, match="unknown mode 'cubic'.*bicubic"):
        ops.grid_sample(x, g, mode="cubic")
    with pytest.raises(ShapeError, match="unknown padding_mode 'reflect'"):
        ops.grid_sample(x, g, padding_mode="reflect")
    with pytest.raises(ShapeError, match=r"grid 'g3'.*expected \(N, \*out, 2\)"):
        ops.grid_sample(x, net.input("g3", "float32", (1, 3, 3, 3)))
    with pytest.raises(ShapeError, match="grid batch 2 differs"):
        ops.grid_sample(x, net.input("g2", "float32", (2, 3, 3, 2)))
    x5 = net.input("x5", "float32", (1, 2, 3, 4, 4))
    with pytest.raises(ShapeError, match="'bicubic' takes 4-D"):
        ops.grid_sample(x5, net.input("g5", "float32", (1, 2, 2, 2, 3)), mode="bicubic")


@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_non_finite_grid_values_do_not_crash(mode, padding_mode, rng):
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    grid = _grid(rng, 1, (3, 3), 2)
    grid[0, 0, 0] = [np.nan, 0.0]
    grid[0, 1, 1] = [np.inf, -np.inf]
    got, _, _ = _run(x, grid, mode=mode, padding_mode=padding_mode)
    assert got.shape == (1, 2, 3, 3)
    finite = np.ones((3, 3), bool)
    finite[0, 0] = finite[1, 1] = False
    ref = _torch(x, np.where(np.isfinite(grid), grid, 0), mode=mode, padding_mode=padding_mode, align_corners=False)
    np.testing.assert_allclose(got[..., finite], ref[..., finite], rtol=1e-4, atol=1e-4)
