"""trtdsl.feeds.check_mapping: one rule for the feeds of the interpreter, Session and `trtdsl run`."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import ShapeError, TrtdslError, ops, reference
from trtdsl.feeds import check_mapping

pytestmark = pytest.mark.usefixtures("trt")


@pytest.fixture
def net():
    n = trtdsl.Network("n")
    n.output(ops.relu(n.input("x", "float32", (1, 2))), "y")
    return n


X = np.ones((1, 2), np.float32)


@pytest.mark.parametrize(
    "feeds,pattern",
    [
        (
            X,
            r"feeds for network 'n' must be a dict of input name -> array, got ndarray; inputs are \['x'\]\. "
            r"Wrap it as \{'x': array\}",
        ),
        ([X], r"must be a dict of input name -> array, got list"),
        (None, r"must be a dict of input name -> array, got NoneType"),
        ({0: X}, r"feed key 0 \(int\) is not an input name; feeds of network 'n' are keyed by name"),
        ({"x": None}, r"feed 'x' of network 'n' is None; expected an array"),
    ],
    ids=["array", "list", "none", "int-key", "none-value"],
)
def test_bad_feeds_are_trtdsl_errors(net, feeds, pattern):
    with pytest.raises(ShapeError, match=pattern):
        reference.run(net, feeds)
    assert issubclass(ShapeError, TrtdslError)


def test_the_session_feed_checker_applies_the_same_rule(net):
    from trtdsl.runtime.feeds import FeedChecker

    checker = FeedChecker(trtdsl.build(net, progress=False))
    with pytest.raises(ShapeError, match=r"feed key 0 \(int\) is not an input name; feeds of plan 'n'"):
        checker.check({0: X})
    with pytest.raises(ShapeError, match=r"feeds for plan 'n' must be a dict"):
        checker.check(X)
    _values, shapes = checker.check({"x": X})
    assert shapes == ((1, 2),)


def test_good_feeds_pass_unchanged():
    feeds = {"x": X}
    assert check_mapping(feeds, ["x"]) is feeds
