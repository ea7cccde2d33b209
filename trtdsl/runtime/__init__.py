"""Run plans on a GPU with cuda-python (``Session``) or on the CPU (``ReferenceSession``).

``import trtdsl.runtime`` needs neither cuda-python nor a GPU: cuda-python is
imported when the first GPU object is created, and a missing one raises
``BackendError`` naming ``pip install 'trtdsl[cuda]'``.
"""

from .array import DeviceArray
from .cuda import CudaError
from .graph import SessionGraph
from .lane import RunHandle
from .reference import ReferenceHandle, ReferenceSession
from .session import Session

__all__ = [
    "CudaError", "DeviceArray", "ReferenceHandle", "ReferenceSession", "RunHandle", "Session", "SessionGraph",
]  # fmt: skip
