"""Plan metadata records the network's layers; `trtdsl info --layers` prints them."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import trtdsl
from trtdsl import ops
from trtdsl.cli import main
from trtdsl.planinfo import engine_layers, format_layers

pytestmark = pytest.mark.usefixtures("trt")


def _net():
    r = np.random.default_rng(0)
    net = trtdsl.Network("mixed", dtype="float16")
    x = net.input("images", "float32", (net.dim("batch", 1, 2, 4), 3, 8, 8))
    with net.scope("stem"):
        q = ops.fake_quantize(net.to_compute(x), amax=1.0)  # Q/DQ on the fp16 tensor the conv reads
        y = ops.relu(ops.conv2d(q, r.standard_normal((4, 3, 3, 3)).astype(np.float32), padding=1))
    with net.scope("head"), net.precision("float32"):
        z = ops.softmax(ops.flatten(y, 1), dim=-1)
    net.output(z, "probs")
    return net


def test_layers_are_recorded_saved_and_loaded(tmp_path):
    plan = trtdsl.build(_net())
    plan.save(tmp_path / "m.plan")
    meta = json.loads((tmp_path / "m.plan.json").read_text())
    assert meta["layers"] == plan.layers
    loaded = trtdsl.Plan.load(tmp_path / "m.plan")
    by_name = {r["name"]: r for r in loaded.layers}
    # Restated from the network written above: fp16 compute, Q/DQ before the conv, fp32 head.
    conv = by_name["stem.conv2d"]
    assert conv["type"] == "convolution" and conv["precision"] == "float16" and conv["quantized"]
    assert conv["outputs"] == [{"name": "stem.conv2d.out", "dtype": "float16", "shape": [-1, 4, 8, 8]}]
    qs = [r for r in loaded.layers if r["qdq"] == "quantize"]
    dqs = [r for r in loaded.layers if r["qdq"] == "dequantize"]
    assert len(qs) == 1 and qs[0]["precision"] == "int8" and qs[0]["outputs"][0]["dtype"] == "int8"
    assert len(dqs) == 1 and dqs[0]["outputs"][0]["dtype"] == "float16"
    assert by_name["head.softmax"]["precision"] == "float32" and by_name["head.softmax"]["region"] == "float32"
    assert by_name["stem.conv2d"]["region"] == ""  # the network's own dtype
    assert [r["name"] for r in loaded.layers] == [net_layer.name for net_layer in _net().layers()]


def test_info_layers_prints_the_table_and_why_the_inspector_is_unavailable(tmp_path, capsys):
    trtdsl.build(_net()).save(tmp_path / "m.plan")
    assert main(["info", str(tmp_path / "m.plan"), "--layers"]) == 0
    out = capsys.readouterr().out
    assert "network layers (" in out
    line = next(x for x in out.splitlines() if " stem.conv2d " in x)
    assert "convolution" in line and "float16" in line and "reads DQ" in line and "float16(-1, 4, 8, 8)" in line
    found, why = engine_layers(trtdsl.Plan.load(tmp_path / "m.plan"))
    if found is None:  # CPU-only machine (CI): the reason is printed
        assert f"engine inspector: not available: {why}" in out
        assert "could not deserialize" in why or "built with" in why
    else:
        assert "engine:" in out and len(found) >= 1


def test_old_plans_without_layers_load_and_bad_layers_are_refused(tmp_path, capsys):
    trtdsl.build(_net()).save(tmp_path / "m.plan")
    meta_path = tmp_path / "m.plan.json"
    meta = json.loads(meta_path.read_text())
    del meta["layers"]
    meta_path.write_text(json.dumps(meta))
    assert trtdsl.Plan.load(tmp_path / "m.plan").layers == []
    assert main(["info", str(tmp_path / "m.plan"), "--layers"]) == 0
    assert "not recorded" in capsys.readouterr().out
    good = trtdsl.build(_net()).layers[0]
    hostile = [
        ({"a": 1}, r"layers: expected a list of layer records"),
        ([1], r"layers\[0\]: expected a layer record"),
        ([{"type": "convolution"}], r"layers\[0\].name: expected a string"),
        ([{**good, "name": "x" * 5000}], r"layers\[0\].name: expected a string of at most 4096"),
        ([{**good, "qdq": "both"}], r"layers\[0\].qdq: expected null, 'quantize' or 'dequantize'"),
        ([{**good, "quantized": "yes"}], r"layers\[0\].quantized: expected true or false"),
        ([{**good, "inputs": [3]}], r"layers\[0\].inputs\[0\]: expected a string"),
        (
            [{**good, "outputs": [{**good["outputs"][0], "shape": [1, -7]}]}],
            r"layers\[0\].outputs\[0\].shape: expected a list",
        ),
        ([{**good, "outputs": [{**good["outputs"][0], "shape": [[1] * 3]}]}], r"layers\[0\].outputs\[0\].shape"),
        ([good, {**good, "outputs": "x"}], r"layers\[1\].outputs: expected a list of output records"),
    ]
    for value, pattern in hostile:
        meta["layers"] = value
        meta_path.write_text(json.dumps(meta))
        with pytest.raises(trtdsl.TrtdslError, match="malformed: " + pattern):
            trtdsl.Plan.load(tmp_path / "m.plan")
    meta["layers"] = [good]
    meta_path.write_text(json.dumps(meta))
    assert trtdsl.Plan.load(tmp_path / "m.plan").layers == [good]


def _replace(doc, path, value):
    if not path:
        return value
    doc = copy.deepcopy(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


def _paths(x, prefix=()):
    yield prefix
    items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
    for k, v in items:
        yield from _paths(v, (*prefix, k))


HOSTILE_VALUES = [None, -1, 2**70, "x" * 5000, "", [], {}, 1e308, True, "float32", [[1]], {"a": 1}, [2**31] * 3]


@pytest.mark.parametrize("n", [64, pytest.param(600, marks=pytest.mark.slow, id="slow")])
def test_mutated_sidecars_load_or_raise_trtdsl_error(tmp_path, n):
    """Byte mutations of a real sidecar, and every field replaced by each hostile value: a Plan or a TrtdslError."""
    from ._mutations import mutations

    plan = trtdsl.build(_net())
    plan.save(tmp_path / "m.plan")
    meta_path = tmp_path / "m.plan.json"
    good = meta_path.read_bytes()
    doc = json.loads(good)
    cases = list(mutations(good, n, seed=len(good)))
    step = max(1, 600 // n)  # the default run replaces every field of a few, the slow run of all
    for path in list(_paths(doc))[::step]:
        cases += [(f"{path}={v!r:.20}", json.dumps(_replace(doc, path, v)).encode()) for v in HOSTILE_VALUES]
    outcomes = {"loaded": 0, "refused": 0}
    for label, data in cases:
        meta_path.write_bytes(data)
        try:
            loaded = trtdsl.Plan.load(tmp_path / "m.plan")
            loaded.summary()
            format_layers(loaded.layers)
            outcomes["loaded"] += 1
        except trtdsl.TrtdslError:
            outcomes["refused"] += 1
        except Exception as e:
            pytest.fail(f"{label}: {type(e).__name__}: {e}")
    assert outcomes["refused"] > outcomes["loaded"] > 0
