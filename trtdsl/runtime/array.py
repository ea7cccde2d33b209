"""``DeviceArray``: a typed view of device memory that other GPU libraries can share.

It speaks ``__cuda_array_interface__`` (v3) and DLPack both ways, so a PyTorch or
CuPy tensor goes into a Session without a copy and an output comes back out as
one (``torch.from_dlpack(arr)``, ``cupy.asarray(arr)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import ShapeError, TrtdslError
from . import cuda, dlpack

# canonical dtype -> __cuda_array_interface__ typestr: NumPy's own types only (CAI has no
# bfloat16 or fp8; DLPack carries those). Sizes come from the dtype table.
_TYPESTR = {n: d.holder.str for n, d in dtypes.TABLE.items() if not d.narrow}


def itemsize(dtype: str) -> int:
    """Bytes per element of ``dtype``; ShapeError for sub-byte types (fp4, int4), which the runtime cannot move."""
    size = dtypes.info(dtype).itemsize
    if size is None:
        raise ShapeError(f"dtype {dtype} has no whole-byte element size; the runtime cannot move it")
    return size


def _c_strides(shape: Sequence[int], item: int) -> tuple[int, ...]:
    out, step = [], item
    for d in reversed(shape):
        out.append(step)
        step *= max(d, 1)
    return tuple(reversed(out))


class DeviceArray:
    """``shape``/``dtype`` over device pointer ``ptr`` on ``device``.

    Args:
        strides: byte strides, None when C-contiguous.
        owner: whatever keeps the memory alive (a ``DeviceBuffer``, the source tensor).
        stream: stream handle on which the memory is still being written (CAI v3
            ``stream``), or None when the data is ready.

    Example::

        x = DeviceArray.from_numpy(np.ones((2, 3), np.float32))
        t = torch.from_dlpack(x)              # no copy
        y = DeviceArray.from_object(t * 2)    # no copy
    """

    __slots__ = ("__weakref__", "device", "dtype", "owner", "ptr", "shape", "stream", "strides")

    def __init__(
        self,
        ptr: int,
        shape: Sequence[int],
        dtype: str,
        *,
        device: int = 0,
        strides: Sequence[int] | None = None,
        owner: Any = None,
        stream: int | None = None,
    ):
        self.ptr = int(ptr)
        self.shape = tuple(int(d) for d in shape)
        self.dtype = dtypes.canonical(dtype)
        itemsize(self.dtype)
        self.device = int(device)
        st = tuple(int(s) for s in strides) if strides is not None else None
        self.strides = None if st is None or st == _c_strides(self.shape, itemsize(self.dtype)) else st
        self.owner = owner
        self.stream = stream

    # --------------------------------------------------------------- make
    @classmethod
    def empty(
        cls, shape: Sequence[int], dtype: str, *, device: int | None = None, stream: cuda.Stream | None = None
    ) -> DeviceArray:
        """A new owning array (stream-ordered allocation when ``stream`` is given)."""
        if device is not None:
            cuda.set_device(device)
        dtype = dtypes.canonical(dtype)
        nbytes = math.prod(shape) * itemsize(dtype)
        buf = cuda.DeviceBuffer(nbytes, stream=stream)
        return cls(buf.ptr, shape, dtype, device=cuda.current_device(), owner=buf)

    @classmethod
    def from_numpy(cls, array: np.ndarray, *, device: int | None = None) -> DeviceArray:
        """A device copy of ``array`` (synchronous)."""
        array = np.ascontiguousarray(array)
        out = cls.empty(array.shape, dtypes.canonical(array.dtype), device=device)
        cuda.check(
            cuda.runtime().cudaMemcpy(
                out.ptr, array.ctypes.data, array.nbytes, cuda.runtime().cudaMemcpyKind.cudaMemcpyDefault
            ),
            "cudaMemcpy",
        )
        return out

    @classmethod
    def from_object(cls, obj: Any, *, stream: int | None = None) -> DeviceArray:
        """Wrap a GPU tensor without copying, through DLPack or ``__cuda_array_interface__``.

        ``stream`` is the consumer's stream handle: it is passed to ``__dlpack__`` so the
        producer orders its pending writes before it (CAI v3's ``stream`` is kept on the
        result for the consumer to wait on).
        """
        if isinstance(obj, DeviceArray):
            return obj
        dl = hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__")
        # With a consumer stream, DLPack is preferred: the producer orders its own current
        # stream before ours (torch's CAI is version 2 and carries no stream at all).
        cai = (
            getattr(obj, "__cuda_array_interface__", None)
            if not (dl and stream is not None) and _has_cai(obj)
            else None
        )
        if cai is not None and (cai.get("typestr", "")[1:2] != "V" or not dl):  # torch spells bfloat16 "<V2"
            return cls._from_cai(obj, cai)
        if dl:
            device_type, _ = obj.__dlpack_device__()
            if int(device_type) != dlpack.KDL_CUDA:
                raise TrtdslError(
                    f"{type(obj).__name__} lives on DLPack device type {int(device_type)}, not CUDA (2); "
                    "pass host data as a NumPy array"
                )
            capsule = obj.__dlpack__() if stream is None else obj.__dlpack__(stream=stream)
            ptr, shape, strides, dtype, _, device_id, owner = dlpack.consume(capsule, obj)
            return cls(ptr, shape, dtype, device=device_id, strides=strides, owner=owner)
        raise TrtdslError(
            f"{type(obj).__name__} is not a device array: it has neither __cuda_array_interface__ nor __dlpack__"
        )

    @classmethod
    def _from_cai(cls, obj: Any, cai: dict[str, Any]) -> DeviceArray:
        ptr = cai["data"][0] or 0
        dtype = dtypes.canonical(np.dtype(cai["typestr"]))
        stream = cai.get("stream")
        device = 0
        if ptr:
            attrs = cuda.check(cuda.runtime().cudaPointerGetAttributes(ptr), "cudaPointerGetAttributes")
            device = int(attrs.device)
        return cls(ptr, cai["shape"], dtype, device=device, strides=cai.get("strides"), owner=obj, stream=stream)

    # ------------------------------------------------------------ properties
    @property
    def itemsize(self) -> int:
        return itemsize(self.dtype)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_contiguous(self) -> bool:
        return self.strides is None

    def numpy(self) -> np.ndarray:
        """A host copy (synchronous; narrow types come back as ``ml_dtypes`` arrays)."""
        if not self.is_contiguous:
            raise TrtdslError(f"DeviceArray with strides {self.strides} cannot be copied as one block")
        host = np.empty(self.shape, dtype=host_dtype(self.dtype))
        rt = cuda.runtime()
        if self.stream is not None:
            cuda.check(rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        cuda.check(
            rt.cudaMemcpy(host.ctypes.data, self.ptr, self.nbytes, rt.cudaMemcpyKind.cudaMemcpyDefault), "cudaMemcpy"
        )
        return host

    # ------------------------------------------------------------ protocols
    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        if self.dtype not in _TYPESTR:
            raise TypeError(f"__cuda_array_interface__ has no {self.dtype} type; use DLPack (torch.from_dlpack)")
        cai: dict[str, Any] = {
            "shape": self.shape,
            "typestr": _TYPESTR[self.dtype],
            "data": (self.ptr, False),
            "strides": self.strides,
            "version": 3,
        }
        if self.stream is not None:
            cai["stream"] = self.stream
        return cai

    def __dlpack_device__(self) -> tuple[int, int]:
        return (dlpack.KDL_CUDA, self.device)

    def __dlpack__(
        self, *, stream: int | None = None, max_version: Any = None, dl_device: Any = None, copy: bool | None = None
    ) -> Any:
        """A legacy ``"dltensor"`` capsule (every DLPack consumer reads it); the array stays alive until released."""
        if copy:
            raise BufferError("DeviceArray.__dlpack__ cannot copy; it only shares memory")
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError(f"DeviceArray lives on {self.__dlpack_device__()}, cannot export to {tuple(dl_device)}")
        if self.stream is not None and stream is not None and stream != -1:
            # Order the consumer's stream after our pending writes (None means the legacy default stream: 1).
            ev = cuda.Event()
            consumer = cuda.Stream.wrap(stream)
            consumer.wait_stream(self.stream, ev)
        return dlpack.export(self.ptr, self.shape, self.strides, self.dtype, self.device, owner=self)

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, device={self.device}, ptr={self.ptr:#x})"


def _has_cai(obj: Any) -> bool:
    # torch raises (not returns None) for dtypes CAI cannot express, such as bfloat16.
    try:
        return hasattr(obj, "__cuda_array_interface__")
    except Exception:
        return False


def host_dtype(dtype: str) -> np.dtype:
    """NumPy dtype of host arrays of ``dtype``: its holder (``ml_dtypes.bfloat16``, ``float8_e4m3fn``, ...)."""
    itemsize(dtype)
    return dtypes.holder(dtype)


def is_device(obj: Any) -> bool:
    """True for objects that hold device memory (DeviceArray, torch CUDA tensors, CuPy arrays)."""
    if isinstance(obj, (np.ndarray, np.generic)):
        return False
    if isinstance(obj, DeviceArray) or _has_cai(obj):
        return True
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is None:
        return False
    try:
        return int(dev()[0]) == dlpack.KDL_CUDA
    except Exception:
        return False
