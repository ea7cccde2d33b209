"""The DSL ops: one free function per operation, NumPy/PyTorch names and semantics.

Each op adds real ``INetworkDefinition`` layers to the network of its tensor
arguments, names them from the current scope, and returns a ``Tensor``.
Families live in their own modules; this package re-exports them all.
"""

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
from .linear import *  # noqa: F403
from .linear import __all__ as _linear
from .norm import *  # noqa: F403
from .norm import __all__ as _norm
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

__all__ = [
    *_activation,
    *_attention,
    *_control,
    *_conv,
    *_detection,
    *_elementwise,
    *_indexing,
    *_linear,
    *_norm,
    *_pool,
    *_quant,
    *_reduce,
    *_resize,
    *_sampling,
    *_shape,
]
