"""DeviceArray with PyTorch on a real GPU: DLPack and __cuda_array_interface__, both directions, no copies."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from trtdsl.errors import TrtdslError
from trtdsl.runtime import DeviceArray, dlpack

from ._gpu import gpu_marks

pytestmark = gpu_marks()
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("this torch build cannot use the GPU", allow_module_level=True)


def test_device_array_to_torch_without_copy(rng):
    host = rng.standard_normal((3, 5)).astype(np.float32)
    arr = DeviceArray.from_numpy(host)
    before = dlpack.live_exports()
    t = torch.from_dlpack(arr)
    assert t.device.type == "cuda" and t.data_ptr() == arr.ptr and tuple(t.shape) == (3, 5)
    np.testing.assert_array_equal(t.cpu().numpy(), host)
    t.mul_(2)  # shared memory: visible through the DeviceArray
    torch.cuda.synchronize()
    np.testing.assert_array_equal(arr.numpy(), host * 2)
    del arr
    gc.collect()
    np.testing.assert_array_equal(t.cpu().numpy(), host * 2)  # the export keeps the memory alive
    del t
    gc.collect()
    assert dlpack.live_exports() == before
    t2 = torch.as_tensor(DeviceArray.from_numpy(host), device="cuda")  # __cuda_array_interface__
    np.testing.assert_array_equal(t2.cpu().numpy(), host)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int32", "int64", "int8", "uint8", "bool"])
def test_torch_to_device_array_without_copy(dtype):
    t = (torch.arange(24, device="cuda") % 7).to(getattr(torch, dtype)).reshape(2, 3, 4)
    arr = DeviceArray.from_object(t)
    assert arr.ptr == t.data_ptr() and arr.shape == (2, 3, 4) and arr.dtype == dtype
    np.testing.assert_array_equal(arr.numpy(), t.cpu().numpy())


def test_torch_bfloat16_goes_through_dlpack():
    t = torch.randn(4, 6, device="cuda").to(torch.bfloat16)
    arr = DeviceArray.from_object(t)  # torch has no CAI for bfloat16
    assert arr.dtype == "bfloat16" and arr.ptr == t.data_ptr()
    np.testing.assert_array_equal(arr.numpy(), t.float().cpu().numpy())
    back = torch.from_dlpack(arr)
    assert back.dtype == torch.bfloat16 and torch.equal(back, t)


def test_dlpack_import_owns_the_producer():
    class OnlyDLPack:  # forces the DLPack path for a float32 tensor
        def __init__(self, t):
            self.t = t

        def __dlpack__(self, **kw):
            return self.t.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.t.__dlpack_device__()

    t = torch.arange(10, dtype=torch.float32, device="cuda")
    arr = DeviceArray.from_object(OnlyDLPack(t))
    ptr = t.data_ptr()
    del t
    gc.collect()
    assert arr.ptr == ptr
    np.testing.assert_array_equal(arr.numpy(), np.arange(10, dtype=np.float32))


def test_strided_torch_tensor_reports_strides():
    t = torch.zeros(4, 6, device="cuda").t()
    arr = DeviceArray.from_object(t)
    assert not arr.is_contiguous and arr.strides == (4, 24)
    with pytest.raises(TrtdslError, match="strides"):
        arr.numpy()
