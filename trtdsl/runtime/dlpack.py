"""DLPack capsules made and read with ctypes.

Why ctypes: a DLPack capsule is a ``PyCapsule`` around a C ``DLManagedTensor``.
Making one needs either a compiled extension or a library that already has one
(torch, CuPy, JAX), and trtdsl's runtime depends on neither. The ABI is small and
frozen (dlpack.h, legacy unversioned ``"dltensor"`` capsule, which every consumer
accepts), so ~100 lines of ``ctypes.Structure`` and four ``PyCapsule_*`` calls do
it without a build step.

Lifetime rules, from the DLPack Python specification:
- export: the capsule is named ``"dltensor"``; a consumer renames it
  ``"used_dltensor"`` and calls ``deleter`` when done. If it is never consumed,
  the capsule's destructor calls ``deleter``. ``deleter`` drops our reference to
  the exported array, which until then keeps its memory alive.
- import: we rename the capsule ourselves and call the producer's ``deleter``
  when the owning ``DeviceArray`` is garbage-collected.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from typing import Any

from .. import dtypes
from ..errors import TrtdslError

KDL_CPU, KDL_CUDA, KDL_CUDA_HOST = 1, 2, 3
# canonical dtype -> (DLDataTypeCode, bits), from the dtype table (dlpack.h's codes); whole-byte
# types only, since strides are computed in bytes.
CODES = {n: d.dlpack for n, d in dtypes.TABLE.items() if d.dlpack is not None and d.itemsize is not None}
_FROM_CODE = {v: k for k, v in CODES.items()}
_FROM_CODE[(1, 1)] = "bool"  # some producers spell bool as a 1-bit uint


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    pass


_Deleter = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _Deleter)]

_NAME = b"dltensor"
_USED = b"used_dltensor"
_api = ctypes.pythonapi
# PYFUNCTYPE keeps the GIL held: these are C-API calls. The "raw" variants take a
# PyObject* as an int because the capsule destructor receives one.
_capsule_new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)(
    ("PyCapsule_New", _api)
)
_capsule_get = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_GetPointer", _api))
_capsule_set_name = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_SetName", _api))
_capsule_is_valid_raw = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p)(("PyCapsule_IsValid", _api))
_capsule_get_raw = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(("PyCapsule_GetPointer", _api))

# address of a live exported DLManagedTensor -> (struct, shape array, strides array, owner)
_exports: dict[int, tuple[Any, ...]] = {}
_lock = threading.Lock()


def _release(address: int | None) -> None:
    with _lock:
        _exports.pop(address or 0, None)


@_Deleter
def _deleter(address):  # called by the consumer (or by _capsule_destructor) exactly once
    _release(address)


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _capsule_destructor(capsule):
    # Still named "dltensor": nobody consumed it, so we own the tensor and free it here.
    if _capsule_is_valid_raw(capsule, _NAME):
        _release(_capsule_get_raw(capsule, _NAME))


def live_exports() -> int:
    """Exported tensors whose consumer has not released them yet (for leak tests)."""
    return len(_exports)


def export(
    ptr: int, shape: tuple[int, ...], strides: tuple[int, ...] | None, dtype: str, device: int, *, owner: Any
) -> Any:
    """A ``"dltensor"`` capsule over device memory ``ptr``; ``owner`` stays alive until the consumer lets go.

    ``strides`` are in bytes (None: C-contiguous), as in ``__cuda_array_interface__``.
    """
    if dtype not in CODES:
        raise TrtdslError(f"DLPack has no {dtype} type that trtdsl can export")
    code, bits = CODES[dtype]
    ndim = len(shape)
    shape_arr = (ctypes.c_int64 * max(ndim, 1))(*shape)
    strides_arr = None
    if strides is not None:
        item = bits // 8
        strides_arr = (ctypes.c_int64 * max(ndim, 1))(*(s // item for s in strides))  # DLPack counts elements
    m = DLManagedTensor()
    m.dl_tensor.data = ptr
    m.dl_tensor.device = DLDevice(KDL_CUDA, device)
    m.dl_tensor.ndim = ndim
    m.dl_tensor.dtype = DLDataType(code, bits, 1)
    m.dl_tensor.shape = shape_arr
    m.dl_tensor.strides = strides_arr if strides_arr is not None else ctypes.POINTER(ctypes.c_int64)()
    m.dl_tensor.byte_offset = 0
    m.manager_ctx = None
    m.deleter = _deleter
    address = ctypes.addressof(m)
    with _lock:
        _exports[address] = (m, shape_arr, strides_arr, owner)
    return _capsule_new(address, _NAME, ctypes.cast(_capsule_destructor, ctypes.c_void_p))


class Imported:
    """Ownership of a consumed ``DLManagedTensor``: calls the producer's deleter when collected."""

    def __init__(self, address: int, source: Any):
        self.address = address
        self.source = source  # keeps the producer object alive as long as we are
        m = DLManagedTensor.from_address(address)
        deleter = m.deleter
        if deleter:
            f = weakref.finalize(self, deleter, address)
            f.atexit = False


def consume(capsule: Any, source: Any) -> tuple[int, tuple[int, ...], tuple[int, ...] | None, str, int, int, Imported]:
    """Read a ``"dltensor"`` capsule: (ptr, shape, byte strides or None, dtype, device type, device id, owner)."""
    try:
        address = _capsule_get(capsule, _NAME)
    except ValueError as e:
        raise TrtdslError(
            f"DLPack capsule from {type(source).__name__} is not an unconsumed 'dltensor' capsule "
            "(already used, or a versioned DLPack 1.x capsule, which trtdsl does not read yet)"
        ) from e
    t = DLManagedTensor.from_address(address).dl_tensor
    key = (t.dtype.code, t.dtype.bits)
    if t.dtype.lanes != 1 or key not in _FROM_CODE:
        raise TrtdslError(
            f"DLPack tensor from {type(source).__name__} has dtype code {t.dtype.code} bits {t.dtype.bits} "
            f"lanes {t.dtype.lanes}, which TensorRT I/O does not use"
        )
    dtype = _FROM_CODE[key]
    item = max(t.dtype.bits // 8, 1)
    shape = tuple(t.shape[i] for i in range(t.ndim))
    strides = tuple(t.strides[i] * item for i in range(t.ndim)) if t.strides else None
    ptr = (t.data or 0) + t.byte_offset
    device_type, device_id = t.device.device_type, t.device.device_id
    _capsule_set_name(capsule, _USED)
    return ptr, shape, strides, dtype, device_type, device_id, Imported(address, source)
