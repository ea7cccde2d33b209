"""weights/keras_config: Keras 2 and Keras 3 configs of the same models parse into the same call graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from trtdsl.errors import WeightError
from trtdsl.weights import keras_config as kc

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "keras"


def _shape(model: kc.Model) -> list[tuple[str, int, list[int]]]:
    """Class, number of calls and arity of every layer: what both Keras versions must agree on."""

    def refs(v):
        if isinstance(v, kc.Ref):
            return 1
        if isinstance(v, (list, tuple)):
            return sum(refs(x) for x in v)
        if isinstance(v, dict):
            return sum(refs(x) for x in v.values())
        return 0

    return sorted(
        (layer.class_name, len(layer.nodes), [refs([n.args, n.kwargs]) for n in layer.nodes]) for layer in model.layers
    )


@pytest.mark.parametrize("name", ["cnn", "multi_io", "conv3d", "transformer", "sequential"])
def test_keras2_and_keras3_configs_agree(name):
    m2 = kc.parse_model(kc.read(FIX / "k2" / f"{name}.h5").config)
    m3 = kc.parse_model(kc.read(FIX / "k3" / f"{name}.keras").config)
    assert len(m2.inputs) == len(m3.inputs) and len(m2.outputs) == len(m3.outputs)
    assert _shape(m2) == _shape(m3)


def test_nested_models_and_shared_layers():
    m = kc.parse_model(kc.read(FIX / "k3" / "multi_io.keras").config)
    shared = m.layer("shared")
    assert len(shared.nodes) == 2  # called twice
    assert m.layer("block").model.class_name == "Sequential" and m.layer("inner").model.class_name == "Functional"
    # Keras 2 numbers a nested model's calls from 1; parsing shifts them to 0
    m2 = kc.parse_model(kc.read(FIX / "k2" / "multi_io.h5").config)
    reads = [r for layer in m2.layers for n in layer.nodes for r in n.args if isinstance(r, kc.Ref)]
    assert all(r.node < len(m2.layer(r.layer).nodes) or m2.layer(r.layer).class_name == "InputLayer" for r in reads)


def _k3_tensor(layer: str, node: int) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"shape": [None, 4], "keras_history": [layer, node, 0]}}


def test_a_nested_functional_model_as_an_output_is_numbered_from_one():
    """Keras 3's Functional.get_config numbers a nested Functional model's calls from 1 in the outer
    model's output_layers (its own construction is node 0) and from 0 in inbound_nodes (as written
    by Keras 3.15 for ``Model(x, [inner(x), inner(relu(x))])``)."""
    inp = {"class_name": "InputLayer", "name": "x", "config": {"name": "x", "batch_shape": [None, 4]}}
    inner = {
        "class_name": "Functional", "module": "keras.src.models.functional", "name": "inner",
        "config": {
            "name": "inner", "trainable": True,
            "layers": [{**inp, "name": "i", "config": {"name": "i", "batch_shape": [None, 4]}, "inbound_nodes": []},
                       {"class_name": "Dense", "module": "keras.layers", "name": "d",
                        "config": {"name": "d", "units": 4, "trainable": True},
                        "inbound_nodes": [{"args": [_k3_tensor("i", 0)], "kwargs": {}}]}],
            "input_layers": ["i", 0, 0], "output_layers": ["d", 0, 0],
        },
        "inbound_nodes": [{"args": [_k3_tensor("x", 0)], "kwargs": {}}, {"args": [_k3_tensor("r", 0)], "kwargs": {}}],
    }  # fmt: skip
    relu = {"class_name": "ReLU", "module": "keras.layers", "name": "r", "config": {"name": "r", "trainable": True},
            "inbound_nodes": [{"args": [_k3_tensor("x", 0)], "kwargs": {}}]}  # fmt: skip
    cfg = {"class_name": "Functional", "config": {"name": "outer", "layers": [{**inp, "inbound_nodes": []}, relu, inner],
           "input_layers": [["x", 0, 0]], "output_layers": [["inner", 1, 0], ["inner", 2, 0]]}}  # fmt: skip
    m = kc.parse_model(cfg)
    assert [(r.layer, r.node) for r in m.outputs] == [("inner", 0), ("inner", 1)]
    assert len(m.layer("inner").nodes) == 2


def test_dict_inputs_and_outputs_are_in_keras_sorted_key_order():
    """Keras flattens a dict by sorted key (keras.tree): a nested model's ``keras_history`` index and the
    order of ``model.inputs``/``outputs`` follow it, while the config lists the dict as the user wrote it
    (``Model({"zb": b, "ya": a}, {"z": ..., "a": ..., "m": ...})``, as Keras 3.15 writes it)."""
    inp = {"class_name": "InputLayer", "name": "x", "config": {"name": "x", "batch_shape": [None, 4]}}
    cfg = {"class_name": "Functional", "config": {
        "name": "m", "layers": [{**inp, "name": n, "config": {"name": n, "batch_shape": [None, 4]}, "inbound_nodes": []}
                                for n in ("b", "a")],
        "input_layers": {"zb": ["b", 0, 0], "ya": ["a", 0, 0]},
        "output_layers": {"z": ["b", 0, 0], "a": ["a", 0, 0], "m": ["b", 0, 0]}}}  # fmt: skip
    m = kc.parse_model(cfg)
    assert [r.layer for r in m.inputs] == ["a", "b"]  # ya, zb
    assert [r.layer for r in m.outputs] == ["a", "b", "b"]  # a, m, z


def test_a_backend_tensor_operand_is_a_constant():
    # `x @ keras.ops.ones((4, 2))` records the tensor's value in the node (Keras 3.15)
    node = {"args": [_k3_tensor("x", 0), {"class_name": "__tensor__", "config": {"value": [[1.0, 2.0]] * 4,
                                                                                 "dtype": "float32"}}], "kwargs": {}}  # fmt: skip
    mm = {"class_name": "Matmul", "module": "keras.src.ops.numpy", "name": "mm", "config": {"name": "mm"},
          "inbound_nodes": [node]}  # fmt: skip
    inp = {
        "class_name": "InputLayer",
        "name": "x",
        "config": {"name": "x", "batch_shape": [None, 4]},
        "inbound_nodes": [],
    }
    m = kc.parse_model({"class_name": "Functional", "config": {"name": "m", "layers": [inp, mm],
                        "input_layers": [["x", 0, 0]], "output_layers": [["mm", 0, 0]]}})  # fmt: skip
    const = m.layer("mm").nodes[0].args[1]
    assert const.dtype == "float32" and const.shape == (4, 2) and const[0, 1] == 2.0


def test_kinds_keep_operations_apart_from_layers():
    k3 = kc.parse_model(kc.read(FIX / "k3" / "arithmetic.keras").config)
    k3h5 = kc.parse_model(kc.read(FIX / "k3" / "arithmetic.h5").config)  # legacy .h5 drops the module
    k2 = kc.parse_model(kc.read(FIX / "k2" / "arithmetic.h5").config)
    for m in (k3, k3h5):
        assert {(layer.kind, layer.class_name) for layer in m.layers} >= {("operation", "Add"), ("layer", "Conv2D")}
    assert ("tfop", "__operators__.add") in {(layer.kind, layer.class_name) for layer in k2.layers}


def test_constant_first_operand_of_a_tf_op():
    m = kc.parse_model(kc.read(FIX / "k2" / "tensor_ops.h5").config)
    sub = next(layer for layer in m.layers if layer.class_name == "math.subtract")
    assert sub.nodes[0].args[0] == 3.0 and isinstance(sub.nodes[0].kwargs["y"], kc.Ref)


def test_versions_and_backends():
    assert kc.read(FIX / "k2" / "cnn.h5").keras_major == 2
    f3 = kc.read(FIX / "k3" / "cnn.h5")
    assert f3.keras_major == 3 and f3.backend == "torch"
    assert kc.read(FIX / "k3" / "cnn.keras").backend is None


def test_variable_names_follow_the_config():
    assert kc.VARIABLES["Dense"]({"use_bias": False}) == ["kernel"]
    q = {"dtype": {"class_name": "QuantizedDTypePolicy", "config": {"mode": "int8"}}}
    assert kc.VARIABLES["Dense"](q) == ["kernel", "bias", "kernel_scale"]
    assert kc.VARIABLES["BatchNormalization"]({"scale": False}) == ["beta", "moving_mean", "moving_variance"]
    assert kc.VARIABLES["LayerNormalization"]({"rms_scaling": True}) == ["gamma"]
    assert [g for g, *_ in kc.wrapped("MultiHeadAttention", {})] == [
        "query_dense",
        "key_dense",
        "value_dense",
        "output_dense",
    ]


@pytest.mark.parametrize("bad", [{}, {"class_name": "Functional"}, {"class_name": "Functional", "config": {"layers": [5]}},
                                 {"class_name": "Sequential", "config": {"layers": []}}])  # fmt: skip
def test_malformed_configs(bad):
    with pytest.raises(WeightError, match=r"model config|malformed|no layers"):
        kc.parse_model(bad)


def test_a_folder_whose_config_is_a_link_loop_says_so(tmp_path):
    import os
    import zipfile

    with zipfile.ZipFile(Path(__file__).resolve().parents[1] / "fixtures" / "weights" / "keras3_convnet.keras") as z:
        z.extractall(tmp_path)
    (tmp_path / "config.json").unlink()
    os.symlink("config.json", tmp_path / "config.json")
    # Was "is a directory without 'config.json' ...; it holds config.json, ..." (exists() is False for a loop).
    with pytest.raises(WeightError, match=r"config\.json: cannot resolve it \(RuntimeError: Symlink loop"):
        kc.read(tmp_path)


def test_a_malformed_model_config_names_its_source():
    with pytest.raises(WeightError, match=r"^model\.keras: malformed Keras model config \(AttributeError: 'float'"):
        kc.parse_model({"class_name": float("nan"), "config": float("inf")}, "model.keras")
