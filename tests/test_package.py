"""The public surface: what ``import trtdsl`` gives a user, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import trtdsl


def test_subpackages_are_attributes_after_a_plain_import():
    code = "import trtdsl; print(trtdsl.layers.__name__, trtdsl.models.__name__, trtdsl.ops.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["trtdsl.layers", "trtdsl.models", "trtdsl.ops"]


def test_every_error_type_is_exported_and_derives_from_trtdsl_error():
    from trtdsl import errors

    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert trtdsl.CudaError is errors.CudaError
    for cls in classes:
        assert issubclass(cls, trtdsl.TrtdslError), cls
        assert getattr(trtdsl, cls.__name__) is cls, f"{cls.__name__} is not exported from trtdsl"


def test_all_names_resolve():
    for name in trtdsl.__all__:
        assert hasattr(trtdsl, name), name
