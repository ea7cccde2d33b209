"""The one helper the op tests share: build ``fn(*inputs)`` in a fresh network and run the reference."""

from __future__ import annotations

import numpy as np

import trtdsl
from trtdsl import reference


def run_many(fn, *arrays: np.ndarray, dtype: str = "float32"):
    """(outputs, TensorRT-reported shapes, net) of ``fn`` returning a Tensor or a tuple of them."""
    net = trtdsl.Network("t", dtype=dtype)
    xs = [net.input(f"x{i}", "float32", a.shape) for i, a in enumerate(arrays)]
    ys = fn(*xs)
    ys = ys if isinstance(ys, tuple) else (ys,)
    shapes = [y.shape for y in ys]
    for i, y in enumerate(ys):
        net.output(y, f"y{i}")
    out = reference.run(net, {f"x{i}": a for i, a in enumerate(arrays)})
    return [out[f"y{i}"] for i in range(len(ys))], shapes, net


def run_one(fn, *arrays: np.ndarray, dtype: str = "float32"):
    """(output, TensorRT-reported shape, net) of ``fn`` returning one Tensor."""
    outs, shapes, net = run_many(fn, *arrays, dtype=dtype)
    return outs[0], shapes[0], net


def torch64(a: np.ndarray):
    """``a`` as a float64 torch tensor: the independent reference computes in double precision."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def run_output(net, y, feeds):
    """Mark ``y`` as output 'y' and run the reference; ``feeds`` is a dict, or the array for input 'x'."""
    net.output(y, "y")
    return reference.run(net, feeds if isinstance(feeds, dict) else {"x": feeds})["y"]
