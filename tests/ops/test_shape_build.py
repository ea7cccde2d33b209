"""The layers the shape and indexing ops emit are accepted by the TensorRT builder, dynamic batch included.

The interpreter tests check the numbers; this checks that TensorRT itself
builds an engine from the same layer configurations (dynamic slice inputs,
sample modes, placeholder reshapes, shape-tensor arithmetic).
"""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import ops

pytestmark = pytest.mark.usefixtures("trt")

CASES = {
    "reshape_keep_batch": lambda x, i: ops.reshape(x, (-1, -1, 5)),
    "flatten": lambda x, i: ops.flatten(x, 1),
    "permute": lambda x, i: ops.permute(x, (2, 0, 1)),
    "getitem_dynamic": lambda x, i: x[1:, ::-2, -1],
    "getitem_array": lambda x, i: x[:, [2, 0]],
    "pad_constant": lambda x, i: ops.pad(x, (1, 2, 0, 1), value=-1.0),
    "pad_reflect": lambda x, i: ops.pad(x, (2, 2), mode="reflect"),
    "pad_replicate_batch": lambda x, i: ops.pad(x, (0, 0, 0, 0, 1, 1), mode="replicate"),
    "expand": lambda x, i: ops.expand(x[:, None], -1, 4, -1, -1),
    "repeat": lambda x, i: ops.repeat(x, 2, 1, 3),
    "split_concat": lambda x, i: ops.concat(ops.split(x, [2, 1], 1)[::-1], 1),
    "stack": lambda x, i: ops.stack([x, x], 1),
    "where": lambda x, i: ops.where(x > 0, x, 0.5),
    "gather": lambda x, i: ops.gather(x[:, :, :2], 2, i),
    "index_select": lambda x, i: ops.index_select(x, 2, [4, 0]),
    "embedding": lambda x, i: ops.embedding(i, np.ones((8, 4), np.float32)),
    "one_hot": lambda x, i: ops.one_hot(i, 6),
    "scatter": lambda x, i: ops.scatter(x[:, :, :2], 2, i, x[:, :, 2:4]),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("compute", ["float32", "float16"])
def test_builder_accepts(case, compute):
    from trtdsl.build import build

    net = trtdsl.Network(case, dtype=compute)
    net.dim("batch", 1, 2, 4)
    x = net.to_compute(net.input("x", "float32", ("batch", 3, 5)))
    i = net.input("i", "int32", ("batch", 3, 2))
    net.output(CASES[case](x, i), "y")
    plan = build(net)
    assert len(plan.engine) > 0
