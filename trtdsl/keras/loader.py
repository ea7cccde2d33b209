"""``load_model``: a Keras ``.h5`` or ``.keras`` file becomes a ``trtdsl.Network``, without TensorFlow."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import weights as _weights
from ..argcheck import api
from ..errors import KerasError, TrtdslError, did_you_mean
from ..network import Network
from ..profile import Dim
from ..weights.keras import WEIGHTS_ONLY_SUFFIXES, load_keras_weights
from ..weights.keras_config import Model, parse_model, read
from ..weights.keras_config.file import FOLDER_WEIGHTS, folder_file
from ..weights.limits import DEFAULT, Limits
from .graph import Context, KTensor, run_model, to_cf_perm

BatchLike = tuple[int, int, int] | Dim | int


def _input_dtype(keras_dtype: object) -> str:
    """The network input type for a Keras input dtype: floats feed float32, integers int32, bools bool."""
    name = str(keras_dtype or "float32")
    if name == "bool":
        return "bool"
    return "int32" if name.startswith(("int", "uint")) else "float32"


def _store(weights: Any, path: Path, config: dict, trusted: bool, limits: Limits) -> _weights.WeightStore:
    """The weights to convert with: the model file's own, a given store, or a file given by path."""
    if weights is None:
        if path.is_dir():  # Keras 3 saved unzipped: the archive's weights file, named through the config
            weights_file = folder_file(path, FOLDER_WEIGHTS, "a Keras 3 model saved with zipped=False")
            return load_keras_weights(weights_file, config, trusted=trusted, limits=limits)
        return _weights.load(path, trusted=trusted, limits=limits)
    if isinstance(weights, (str, os.PathLike)):
        given = Path(weights)
        if given.name.endswith(WEIGHTS_ONLY_SUFFIXES):  # Keras 3's save_weights insists on these suffixes
            return load_keras_weights(given, config, trusted=trusted, limits=limits)
        return _weights.load(given, trusted=trusted, limits=limits)
    return weights


def _dict_keys(model_cfg: dict, key: str, refs: list) -> list[str | None]:
    """The dict key of each of a model's ``input_layers``/``output_layers`` (``key``), in ``refs``' order.

    ``model.predict`` takes and returns a dict's tensors by key, and Keras matches a dict's inputs
    by key, not by the ``Input`` layer's name. None where the tensor is in no dict (a nested dict's
    keys join with '/'). The order is ``keras_config``'s ``_refs``: a dict by sorted key, depth first.
    """

    def walk(value: object, where: str | None) -> list[str | None]:
        if isinstance(value, dict):
            return [n for k in sorted(value) for n in walk(value[k], f"{where}/{k}" if where else str(k))]
        if isinstance(value, list) and value and isinstance(value[0], str):
            return [where]
        if isinstance(value, list):
            return [n for v in value for n in walk(v, where)]
        return []

    raw = (model_cfg.get("config") or {}).get(key) if model_cfg.get("class_name") != "Sequential" else None
    keys = walk(raw, None)
    return keys if len(keys) == len(refs) else [None] * len(refs)


def _input_shape(model: Model, name: str, cfg: dict, override: Mapping[str, Sequence[int]] | None) -> list:
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    if override and name in override:
        return [None, *override[name]]
    if shape is None:
        raise KerasError(f"input {name!r} of model {model.name!r} has no shape in the config")
    if not isinstance(shape, list) or not shape or not all(d is None or (type(d) is int and d >= 0) for d in shape):
        raise KerasError(f"input {name!r}: malformed shape {shape!r} in the config")
    if len(shape) > 8 or any(d is not None and d > 2**31 - 1 for d in shape):  # TensorRT's Dims: rank 8, int32 sizes
        raise KerasError(
            f"input {name!r}: shape {shape!r} in the config has {len(shape)} dims of at most "
            f"{max((d or 0) for d in shape)}; TensorRT takes rank 8 at most and dims up to 2**31-1"
        )
    if any(d is None for d in shape[1:]):
        raise KerasError(
            f"input {name!r} has dynamic dims {list(shape)}: give its shape without the batch, e.g. "
            f"load_model(..., input_shapes={{{name!r}: {tuple(8 if d is None else d for d in shape[1:])}}})"
        )
    return list(shape)


@api("trtdsl.keras")
def load_model(
    path: str | Path,
    *,
    batch: BatchLike = (1, 1, 32),
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    dtype: str = "float32",
    layout: str | None = None,
    weights: _weights.WeightStore | str | os.PathLike | None = None,
    backend: str | None = None,
    trusted: bool = False,
    limits: Limits | None = None,
) -> Network:
    """Convert a Keras model file (``.h5`` from Keras 2 or 3, or a Keras 3 ``.keras``) into a Network.

    Args:
        batch: ``(min, opt, max)`` of a dynamic dim named ``batch``, a ``Dim``, or a fixed int.
        input_shapes: per-input shapes without the batch, for inputs whose config leaves dims open.
        dtype: the network's compute dtype (``"float16"`` computes in half precision; I/O stays float32).
        layout: None keeps the model's own data format at inputs and outputs; ``"NCHW"`` lets users of a
            channels_last model feed (and read) image tensors channels-first, with no transposes.
        weights: the model's own weights as a ``WeightStore`` (default: loaded from ``path``); pass one to
            check afterwards that every weight was used (``trtdsl.build(net, weights=w)``). Or a path:
            a Keras 3 weights-only file (``model.save_weights("x.weights.h5")``, a ModelCheckpoint with
            ``save_weights_only=True``), or the index of sharded ones
            (``model.save_weights("x.weights.json", max_shard_size=2)``, its shards beside it), is named
            through this model's config; any other is loaded with ``trtdsl.weights.load``.
        backend: the Keras backend whose numerics to follow where backends differ (an uneven 'same'
            average pool: Keras' torch backend replicates edges, TensorFlow and JAX count real pixels).
            Default: the ``backend`` a legacy ``.h5`` records; ``.keras`` files record none, so "tensorflow".
        trusted, limits: as for ``trtdsl.weights.load``: the file is read as untrusted by default (HDF5
            structure in an isolated worker, sizes capped by ``limits``); ``trusted=True`` for files you made.

    Inputs and outputs keep the Keras names and order (that of ``model.inputs``/``outputs``: a dict's
    by sorted key). A dict's inputs and outputs are named by its keys, as ``model.predict`` takes and
    returns them; others by the ``Input`` layer's name and the name of the layer making the output.
    ``input_shapes`` uses the same names. The store is kept as ``net.keras_weights``.

    Example::

        net = trtdsl.keras.load_model("resnet50.h5", batch=(1, 8, 32))
        plan = trtdsl.build(net, weights=net.keras_weights)
    """
    if layout not in (None, "NCHW", "NHWC"):
        raise KerasError(f"layout must be None, 'NCHW' or 'NHWC', got {layout!r}")
    limits = limits or DEFAULT
    mf = read(path, trusted=trusted, limits=limits)
    model = parse_model(mf.config, mf.path.name)
    store = _store(weights, mf.path, mf.config, trusted, limits)
    net = Network(model.name, dtype=dtype)
    if isinstance(batch, Dim):
        bdim: Any = batch
    elif isinstance(batch, int):
        bdim = batch
    else:
        b = tuple(int(v) for v in batch)
        if len(b) != 3:
            raise KerasError(f"batch must be (min, opt, max), a Dim or an int, got {batch!r}")
        bdim = Dim("batch", *b)
    in_names = [k or r.layer for r, k in zip(model.inputs, _dict_keys(mf.config, "input_layers", model.inputs))]
    if input_shapes:
        unknown = [n for n in input_shapes if n not in in_names]
        if unknown:
            layer_names = {r.layer: n for r, n in zip(model.inputs, in_names) if r.layer != n}
            hint = (
                f" Input layer {unknown[0]!r} is fed as dict key {layer_names[unknown[0]]!r}."
                if unknown[0] in layer_names
                else did_you_mean(unknown[0], in_names)
            )
            raise KerasError(f"input_shapes names {unknown[0]!r}, not an input of the model; inputs: {in_names}.{hint}")
    inputs = []
    if not model.inputs or not model.outputs:
        raise KerasError(f"model {model.name!r}: the config names no inputs or no outputs")
    for ref, in_name in zip(model.inputs, in_names):
        cfg = model.layer(ref.layer).config
        shape = _input_shape(model, in_name, cfg, input_shapes)
        dt = _input_dtype(cfg.get("dtype"))
        nchw = layout == "NCHW" and len(shape) >= 3 and dt == "float32"
        dims = [bdim, *shape[1:]]
        if nchw:
            dims = [dims[i] for i in to_cf_perm(len(dims))]
        t = net.input(in_name, dt, dims)
        inputs.append(KTensor(t, cl=nchw))
    ctx = Context(net, store, mf.keras_major, str(mf.path), backend or mf.backend or "tensorflow")
    from .graph import Call

    outs = run_model(ctx, model, inputs)
    out_keys = _dict_keys(mf.config, "output_layers", model.outputs)
    keys = {k for k in out_keys if k is not None}  # names users asked for: kept as they are, or refused
    clash = sorted(keys & set(net.input_specs))
    if clash:
        raise KerasError(
            f"model {model.name!r}: output key {clash[0]!r} is also the name of an input, and a TensorRT "
            f"network cannot name an input and an output alike; rename one of them in the Keras model"
        )
    used: set[str] = set(net.input_specs) | keys  # an output that is an input needs a name of its own
    for ref, out, key in zip(model.outputs, outs, out_keys):
        name = key or ref.layer
        if key is None:
            i = 0
            while name in used:  # several outputs of one layer, or the same tensor twice
                i += 1
                name = f"{ref.layer}_{i}"
            used.add(name)
        call = Call(ctx, model.layer(ref.layer), "", ref.layer)
        t = out.t if (layout == "NCHW" and out.cl) else call.logical(out)
        try:
            net.output(t, name)
        except TrtdslError as e:  # a key that is the name of a tensor inside ('dense.linear.matmul.out')
            raise KerasError(f"model {model.name!r}: output {name!r} (of layer {ref.layer!r}): {e}") from e
    net.keras_weights = store  # type: ignore[attr-defined]
    net.keras_records = ctx.records  # type: ignore[attr-defined]
    net.keras_model = model  # type: ignore[attr-defined]
    return net
