"""trtdsl.errors: the suggestions every error message shares."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl.errors import ShapeError, did_you_mean


def test_did_you_mean_ignores_case_and_puts_case_only_differences_first():
    assert did_you_mean("X", ["x", "y"]) == " Did you mean 'x'?"
    assert did_you_mean("Conv1.Weight", ["conv1.weight", "conv1.bias"]).startswith(" Did you mean 'conv1.weight'")
    assert did_you_mean("images", ["image", "Images"]) == " Did you mean 'Images' or 'image'?"
    assert did_you_mean("zzz", ["a", "b"]) == ""
    assert did_you_mean("a", ["a"]) == ""  # the name itself is no suggestion


def test_a_feed_named_in_the_wrong_case_gets_the_input_suggested():
    net = trtdsl.Network("t")
    net.output(net.input("x", "float32", (2,)) * 2, "y")
    with pytest.raises(
        ShapeError, match=r"feed 'X' is not an input of the network; inputs are \['x'\]\. Did you mean 'x'\?"
    ):
        trtdsl.reference.run(net, {"X": np.ones(2, np.float32)})
