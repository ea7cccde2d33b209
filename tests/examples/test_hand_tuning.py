"""examples/hand_tuning.py: fp32 head in an fp16 network, INT8 except one layer, names, timing cache."""

from __future__ import annotations

import numpy as np
import pytest

from trtdsl import reference

from ._load import ROOT, example

pytestmark = pytest.mark.usefixtures("trt")


def test_hand_tuned_plan_has_the_requested_precisions(tmp_path):
    ex = example("hand_tuning")
    plan = ex["main"](tmp_path)
    by_name = {r["name"]: r for r in plan.layers}
    assert by_name["features.3.conv"]["precision"] == "float16" and by_name["features.3.conv"]["quantized"]
    assert by_name["classifier.1.linear.matmul"]["precision"] == "float32"
    assert by_name["classifier.1.linear.matmul"]["quantized"]  # quantized, in float32
    # Excluded: nothing dequantized feeds the last linear layer.
    assert not by_name["classifier.3.linear.matmul"]["quantized"]
    assert not any(r["qdq"] and r["name"].startswith("classifier.3") for r in plan.layers)
    assert "features.7.max_pool" in by_name and "pool" not in by_name
    assert (tmp_path / "timing.cache").is_file() and (tmp_path / "digits_tuned.plan").is_file()
    net = ex["tune"](ex["build_network"]())
    with np.load(ROOT / "weights" / "digits_test.npz") as data:
        images, labels, torch_logits = data["images"][:200], data["labels"][:200], data["torch_logits"][:200]
    pred = reference.run(net, {"images": images})["logits"].argmax(1)
    assert (pred == labels).mean() >= (torch_logits.argmax(1) == labels).mean() - 0.01
