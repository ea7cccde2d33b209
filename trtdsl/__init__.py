"""trtdsl: write TensorRT networks by hand, layer by layer, in Python.

``import trtdsl`` works without TensorRT installed; what needs it raises
``trtdsl.BackendError`` naming the pip extra to install.
"""

from . import golden, keras, layers, models, onnx, ops, reference, rewrite, weights
from .build import IOSpec, Plan, build
from .errors import (
    ArgumentError,
    BackendError,
    BuildError,
    CudaError,
    GoldenMismatch,
    InterpreterError,
    ProfileError,
    ShapeError,
    TrtdslError,
    UnsupportedLayerError,
    WeightError,
    WeightShapeError,
)
from .layerinfo import layer_type
from .network import Network
from .profile import Dim, Profile
from .runtime import ReferenceSession, Session
from .tensor import Tensor

__version__ = "0.1.0"

__all__ = [
    "ArgumentError", "BackendError", "BuildError", "CudaError", "Dim", "IOSpec", "Plan", "build", "GoldenMismatch", "InterpreterError", "Network",
    "Profile", "ProfileError", "ReferenceSession", "Session", "ShapeError", "Tensor", "TrtdslError", "UnsupportedLayerError",
    "WeightError", "WeightShapeError", "__version__", "golden", "layers", "layer_type", "models", "ops", "reference",
    "weights", "keras", "onnx", "rewrite",
]  # fmt: skip

from . import calib  # calibration and explicit Q/DQ (after the rest: it uses ops, reference, rewrite)
from .errors import (  # main's keras merge left them unexported
    CacheError,
    CalibrationError,
    CalibrationWarning,
    KerasError,
    OnnxParseError,
    UnsupportedKerasLayerError,
)

__all__ += ["CacheError", "CalibrationError", "CalibrationWarning", "KerasError", "OnnxParseError",
            "UnsupportedKerasLayerError", "calib"]  # fmt: skip
