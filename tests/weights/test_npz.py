"""weights/npz: a pickled object array in a .npz or .npy is refused, and nothing is unpickled."""

from __future__ import annotations

import numpy as np
import pytest

from trtdsl import WeightError
from trtdsl import weights as W

from ._crafted import Evil


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_with_pickled_object_array_is_refused(tmp_path, save):
    marker = tmp_path / "pwned"
    save(tmp_path / "evil.npz", ok=np.ones(3), obj=np.array([Evil(marker)], dtype=object))
    with pytest.raises(
        WeightError,
        match=r"evil.npz: member 'obj.npy': holds pickled Python objects \(dtype object\); trtdsl never unpickles",
    ):
        W.load(tmp_path / "evil.npz")
    assert not marker.exists()


def test_npy_with_pickled_object_array_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    np.save(tmp_path / "evil.npy", np.array([Evil(marker)], dtype=object))
    with pytest.raises(WeightError, match=r"evil.npy: holds pickled Python objects"):
        W.load(tmp_path / "evil.npy")
    assert not marker.exists()
