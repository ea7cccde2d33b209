"""``Tensor``: a TensorRT ``ITensor`` together with the ``Network`` it belongs to.

Operators and methods delegate to ``trtdsl.ops``, so ``a + b`` and
``ops.add(a, b)`` add the same layer. ``tensor.trt`` is the raw ``ITensor`` and
``tensor.layer`` the ``ILayer`` that produced it, for hand-tuning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import dtypes

if TYPE_CHECKING:
    from .network import Network

# str(Dims) -> tuple. ``str`` is one call into the bindings and prints the dims as a
# Python tuple does, while reading the dims one by one is one call each (``Dims`` has no
# __iter__: tuple(dims) iterates until an IndexError crosses pybind, slower still).
# Networks reuse few shapes; the cache is cleared if it ever grows past _SHAPES_MAX.
_SHAPES: dict[str, tuple[int, ...]] = {}
_SHAPES_MAX = 4096


def dims_tuple(dims: Any) -> tuple[int, ...]:
    """A ``trt.Dims`` as a tuple of ints."""
    key = str(dims)
    shape = _SHAPES.get(key)
    if shape is None:
        shape = tuple([dims[i] for i in range(len(dims))])
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()
        _SHAPES[key] = shape
    return shape


class Tensor:
    """A tensor of a ``Network``. Shape and dtype are the ones TensorRT reports."""

    __slots__ = ("net", "trt")
    __array_priority__ = 1000  # make ``ndarray + Tensor`` call Tensor.__radd__

    def __init__(self, itensor: Any, net: Network):
        self.trt = itensor
        self.net = net

    @property
    def name(self) -> str:
        return self.trt.name

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape with -1 for dynamic dimensions, as TensorRT infers it."""
        # Read fresh every time: TensorRT re-infers shapes when a layer is rewired
        # (set_input, a constant's new shape), so a cached copy could go stale.
        return dims_tuple(self.trt.shape)

    @property
    def ndim(self) -> int:
        return len(self.trt.shape)

    @property
    def dtype(self) -> str:
        # Not cached either (a rewired input can change an output's type); from_trt is cheap.
        return dtypes.from_trt(self.trt.dtype)

    @property
    def layer(self) -> Any:
        """The ``ILayer`` that produced this tensor (None for a network input)."""
        return self.net.producer(self)

    def __repr__(self) -> str:
        # A network input shows its dim names ('batch') where TensorRT only knows -1.
        spec = self.net.input_specs.get(self.name) if self.trt.is_network_input else None
        shape = "(" + ", ".join(map(str, spec)) + ("," if len(spec) == 1 else "") + ")" if spec else self.shape
        return f"Tensor({self.name!r}, shape={shape}, dtype={self.dtype!r})"

    def __bool__(self) -> bool:
        raise TypeError(
            "a trtdsl.Tensor has no truth value at definition time; use ops.where for data-dependent choices"
        )

    # Arithmetic --------------------------------------------------------------
    def __add__(self, other):
        return _ops().add(self, other)

    def __radd__(self, other):
        return _ops().add(other, self)

    def __sub__(self, other):
        return _ops().sub(self, other)

    def __rsub__(self, other):
        return _ops().sub(other, self)

    def __mul__(self, other):
        return _ops().mul(self, other)

    def __rmul__(self, other):
        return _ops().mul(other, self)

    def __truediv__(self, other):
        return _ops().div(self, other)

    def __rtruediv__(self, other):
        return _ops().div(other, self)

    def __floordiv__(self, other):
        return _ops().floor_divide(self, other)

    def __rfloordiv__(self, other):
        return _ops().floor_divide(other, self)

    def __mod__(self, other):
        return _ops().remainder(self, other)

    def __rmod__(self, other):
        return _ops().remainder(other, self)

    def __pow__(self, other):
        return _ops().pow(self, other)

    def __rpow__(self, other):
        return _ops().pow(other, self)

    def __matmul__(self, other):
        return _ops().matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul(other, self)

    def __neg__(self):
        return _ops().neg(self)

    def __abs__(self):
        return _ops().abs(self)

    def __lt__(self, other):
        return _ops().less(self, other)

    def __gt__(self, other):
        return _ops().greater(self, other)

    def __le__(self, other):
        return _ops().less_equal(self, other)

    def __ge__(self, other):
        return _ops().greater_equal(self, other)

    def __eq__(self, other):
        return _ops().equal(self, other)  # type: ignore[override]

    def __ne__(self, other):
        return _ops().not_equal(self, other)  # type: ignore[override]

    def __and__(self, other):
        return _ops().logical_and(self, other)

    def __or__(self, other):
        return _ops().logical_or(self, other)

    def __xor__(self, other):
        return _ops().logical_xor(self, other)

    def __invert__(self):
        return _ops().logical_not(self)

    __hash__ = object.__hash__

    def __getitem__(self, index: Any) -> Tensor:
        return _ops().getitem(self, index)

    # Methods -----------------------------------------------------------------
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        return _ops().reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)

    def view(self, *shape: int | Sequence[int]) -> Tensor:
        return self.reshape(*shape)

    def permute(self, *dims: int | Sequence[int]) -> Tensor:
        return _ops().permute(self, dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        return _ops().transpose(self, dim0, dim1)

    @property
    def T(self) -> Tensor:
        return _ops().permute(self, tuple(reversed(range(self.ndim))))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return _ops().flatten(self, start_dim, end_dim)

    def squeeze(self, dim: int | Sequence[int]) -> Tensor:
        return _ops().squeeze(self, dim)

    def unsqueeze(self, dim: int | Sequence[int]) -> Tensor:
        return _ops().unsqueeze(self, dim)

    def sum(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return _ops().sum(self, dim, keepdim)

    def mean(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return _ops().mean(self, dim, keepdim)

    def max(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return _ops().amax(self, dim, keepdim)

    def min(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return _ops().amin(self, dim, keepdim)

    def cast(self, dtype: dtypes.DTypeLike) -> Tensor:
        return _ops().cast(self, dtype)

    def astype(self, dtype: dtypes.DTypeLike) -> Tensor:
        return _ops().cast(self, dtype)


def _ops():
    # trtdsl.ops imports Tensor; importing it lazily breaks the cycle.
    from . import ops

    return ops
