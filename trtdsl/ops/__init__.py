"""The DSL ops: one free function per operation, NumPy/PyTorch names and semantics.

Each op adds real ``INetworkDefinition`` layers to the network of its tensor
arguments, names them from the current scope, and returns a ``Tensor``.
Families live in their own modules; this package re-exports them all.

Every op has an interpreter function (``trtdsl.reference``) and a test against an
independent implementation (tests/ops/test_coverage.py checks both). TensorRT layer
types with no op, because nothing here could test them, are listed in ``UNTESTABLE``:

- ``dist_collective``: IDistCollectiveLayer all-reduces/gathers across GPUs through NCCL;
  a single-process CPU interpreter has no ranks to exchange data with.
- ``plugin``, ``plugin_v2``, ``plugin_v3``: plugins run user-compiled CUDA code, and
  TensorRT-RTX has no plugin API, so neither the interpreter nor a CPU build can run one.
- ``ragged_softmax``: IRaggedSoftMaxLayer's documentation does not say what the output
  holds past each sequence's bound, so there is no independent reference to test against.

Some layers have an op and an interpreter function but no CPU plan: ``moe`` (IMoELayer needs a
Blackwell/Thor GPU, and TensorRT-RTX's CPU build refuses it), like ``nms``; their tests compare
the interpreter with an independent reference and pin the builder's refusal.
"""

from ..argcheck import check_all
from .activation import *  # noqa: F403
from .activation import __all__ as _activation
from .attention import *  # noqa: F403
from .attention import __all__ as _attention
from .control import *  # noqa: F403
from .control import __all__ as _control
from .conv import *  # noqa: F403
from .conv import __all__ as _conv
from .detection import *  # noqa: F403
from .detection import __all__ as _detection
from .elementwise import *  # noqa: F403
from .elementwise import __all__ as _elementwise
from .indexing import *  # noqa: F403
from .indexing import __all__ as _indexing
from .join import *  # noqa: F403
from .join import __all__ as _join
from .linear import *  # noqa: F403
from .linear import __all__ as _linear
from .moe import *  # noqa: F403
from .moe import __all__ as _moe
from .norm import *  # noqa: F403
from .norm import __all__ as _norm
from .padding import *  # noqa: F403
from .padding import __all__ as _padding
from .pool import *  # noqa: F403
from .pool import __all__ as _pool
from .quant import *  # noqa: F403
from .quant import __all__ as _quant
from .reduce import *  # noqa: F403
from .reduce import __all__ as _reduce
from .resize import *  # noqa: F403
from .resize import __all__ as _resize
from .sampling import *  # noqa: F403
from .sampling import __all__ as _sampling
from .shape import *  # noqa: F403
from .shape import __all__ as _shape

UNTESTABLE: dict[str, str] = {
    "dist_collective": "needs several GPUs and NCCL; the interpreter has no ranks",
    "plugin": "user-compiled CUDA code; TensorRT-RTX has no plugin API",
    "plugin_v2": "user-compiled CUDA code; TensorRT-RTX has no plugin API",
    "plugin_v3": "user-compiled CUDA code; TensorRT-RTX has no plugin API",
    "ragged_softmax": "the output past each bound is undocumented: no independent reference",
}

__all__ = [
    *_activation,
    *_attention,
    *_control,
    *_conv,
    *_detection,
    *_elementwise,
    *_indexing,
    *_join,
    *_linear,
    *_moe,
    *_norm,
    *_padding,
    *_pool,
    *_quant,
    *_reduce,
    *_resize,
    *_sampling,
    *_shape,
]

# A wrongly typed argument (an array for a Tensor) is an ArgumentError naming it (trtdsl/argcheck.py).
check_all(globals(), __all__, "ops")
