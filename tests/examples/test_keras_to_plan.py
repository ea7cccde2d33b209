"""examples/keras_to_plan.py: the committed Keras .h5 and .keras to a plan, against Keras' own recorded logits."""

from __future__ import annotations

import pytest

import trtdsl

from ._load import ROOT, example

pytestmark = pytest.mark.usefixtures("trt")


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_keras_file_to_plan_matches_keras(tmp_path, suffix):
    main = example("keras_to_plan")["main"]
    diff = main([str(ROOT / "weights" / f"digits_keras{suffix}"), "-o", str(tmp_path / "k.plan")])
    assert diff <= 1e-4  # of the largest logit Keras recorded at training time
    plan = trtdsl.Plan.load(tmp_path / "k.plan")
    assert plan.inputs["images"].shape == ("batch", 1, 8, 8)  # fed NCHW (layout="NCHW")
