"""Feed validation shared by Session and its tests: names, dtypes and shapes, before TensorRT sees them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import ShapeError, did_you_mean
from ..feeds import check_mapping
from .array import host_dtype, is_device, itemsize


class FeedChecker:
    """Checks one call's feeds against a Plan's inputs; pure CPU work, so it is tested without a GPU.

    ``check`` returns the feeds in input order (NumPy arrays, or whatever
    ``device_feed`` made of a device tensor) and the tuple of their shapes, the
    key a Session compares with its last call. ``profile(key)`` is the slow path
    taken only when that key changes: ProfileError naming input, dim and range.
    """

    def __init__(self, plan: Any):
        self.plan = plan
        self.names = list(plan.inputs)
        specs = {**plan.inputs, **plan.outputs}
        self.dtype = {n: s.dtype for n, s in specs.items()}
        self.itemsize = {n: itemsize(s.dtype) for n, s in specs.items()}
        self.host_dtype = {n: host_dtype(s.dtype) for n, s in specs.items()}

    def check(
        self, feeds: Mapping[str, Any], device_feed: Callable[[str, Any], Any] | None = None
    ) -> tuple[list, tuple]:
        names = self.names
        check_mapping(feeds, names, f"plan {self.plan.network!r}")
        if len(feeds) != len(names) or any(n not in feeds for n in names):
            extra = [n for n in feeds if n not in self.plan.inputs]
            if extra:
                raise ShapeError(
                    f"feed {extra[0]!r} is not an input of plan {self.plan.network!r}; inputs are "
                    f"{names}.{did_you_mean(extra[0], names)}"
                )
            missing = [n for n in names if n not in feeds]
            raise ShapeError(f"missing feed for input(s) {missing}; the plan's inputs are {names}")
        values, shapes = [], []
        for name in names:
            v = feeds[name]
            if not isinstance(v, np.ndarray):
                if is_device(v):
                    if device_feed is None:
                        raise ShapeError(f"feed {name!r} is a device tensor, which this path cannot take")
                    v = device_feed(name, v)
                else:
                    v = np.asarray(v)
            if isinstance(v, np.ndarray) and v.dtype != self.host_dtype[name]:
                v = dtypes.convert(v, self.dtype[name], name=f"feed {name!r}")  # the one feed rule
            values.append(v)
            shapes.append(v.shape)
        return values, tuple(shapes)

    def profile(self, key: tuple) -> int:
        return self.plan.select_profile(dict(zip(self.names, key, strict=True)))
