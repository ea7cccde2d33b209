"""Networks written with the raw TensorRT API, shared by the tests that run them."""

from __future__ import annotations

from typing import Any

import numpy as np

from trtdsl import _trt


def loop_then_conditional(reverse: bool) -> tuple[Any, Any, list[np.ndarray]]:
    """``x`` (5, 2) -> the product over axis 0 by a loop, negated when the bool input ``p`` holds.

    Unnamed layers and a recurrence wired by a later ``set_input``, as hand-written code does.
    Returns ``(builder, network, arrays)``: ``trt.Weights`` does not copy, so the caller keeps
    ``arrays`` alive as long as the network.
    """
    trt = _trt.load()
    builder = trt.Builder(_trt.logger())
    n = builder.create_network(0)
    x = n.add_input("x", trt.float32, (5, 2))
    p = n.add_input("p", trt.bool, ())
    loop = n.add_loop()
    it = loop.add_iterator(x, 0, reverse)
    arrays = [np.ones(2, np.float32), np.array(5, np.int32)]
    rec = loop.add_recurrence(n.add_constant((2,), trt.Weights(arrays[0])).get_output(0))
    loop.add_trip_limit(n.add_constant((), trt.Weights(arrays[1])).get_output(0), trt.TripLimit.COUNT)
    prod = n.add_elementwise(rec.get_output(0), it.get_output(0), trt.ElementWiseOperation.PROD)
    rec.set_input(1, prod.get_output(0))
    last = loop.add_loop_output(rec.get_output(0), trt.LoopOutput.LAST_VALUE, 0).get_output(0)
    c = n.add_if_conditional()
    c.set_condition(p)
    inp = c.add_input(last).get_output(0)
    o = c.add_output(n.add_unary(inp, trt.UnaryOperation.NEG).get_output(0), inp)
    n.mark_output(o.get_output(0))
    return builder, n, arrays
