"""Keras recurrent layers: LSTM, GRU, SimpleRNN, Bidirectional and TimeDistributed, on TensorRT loops.

The cells run through :mod:`trtdsl.layers.recurrent` with Keras' gate orders
(LSTM ``ifco``, GRU ``zrh``). Keras' kernels are ``(in, G*units)``: transposed
once into the torch layout those layers take. A masked step keeps the state,
and outputs it again (Keras' ``zero_output_for_mask=False``) or zeros.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..errors import did_you_mean
from ..layers import recurrent
from ..tensor import Tensor
from .core import ACTIVATIONS, activation_name
from .graph import Call, KTensor, find_weight, run_model
from .registry import CONVERTERS, converts

_GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}


def _weights(layer: Call, cls: str, cfg: dict, take, suffix: str = "_l0") -> dict[str, np.ndarray]:
    units = int(cfg["units"])
    g = _GATES[cls]
    kernel = take("kernel")
    rec = take("recurrent_kernel")
    if kernel.shape[-1] != g * units or rec.shape != (units, g * units):
        raise layer.error(f"kernel {kernel.shape} / recurrent_kernel {rec.shape} do not fit {units} units of {cls}")
    w = {f"weight_ih{suffix}": np.ascontiguousarray(kernel.T), f"weight_hh{suffix}": np.ascontiguousarray(rec.T)}
    if cfg.get("use_bias", True):
        bias = take("bias")
        if cls == "GRU" and cfg.get("reset_after", True):
            bias = bias.reshape(2, g * units)
            w[f"bias_ih{suffix}"], w[f"bias_hh{suffix}"] = bias[0], bias[1]
        else:
            w[f"bias_ih{suffix}"] = bias.reshape(-1)
    return w


def _activation(layer: Call, cfg: dict, key: str, default: str) -> Any:
    """Keras' ``activation`` / ``recurrent_activation`` as ``fn(tensor)``, or None for the default."""
    name = activation_name(cfg.get(key, default))
    if name == default:
        return None
    if name not in ACTIVATIONS or name == "glu":  # glu halves the units
        names = [n for n in ACTIVATIONS if n != "glu"]
        raise layer.error(f"{key} {name!r} is not supported.{did_you_mean(name, names)} Supported: {', '.join(names)}")
    fn = ACTIVATIONS[name]
    return lambda t: fn(layer, t, t.ndim - 1)


def _check(layer: Call, cls: str, cfg: dict) -> None:
    _activation(layer, cfg, "activation", "tanh")
    if cls != "SimpleRNN":
        _activation(layer, cfg, "recurrent_activation", "sigmoid")
    if cfg.get("stateful"):
        raise layer.error("stateful=True is not supported: a TensorRT engine keeps no state between calls")


def _mask(x: KTensor, mask: Any) -> Tensor | None:
    if isinstance(mask, KTensor):
        return mask.t
    return x.mask


def _run(layer: Call, cls: str, cfg: dict, t: Tensor, w: dict, mask: Tensor | None, *, bidirectional: bool,
         initial: list, zero_masked: bool) -> tuple[Tensor, list[Tensor]]:  # fmt: skip
    units = int(cfg["units"])
    kw: dict[str, Any] = {"bidirectional": bidirectional, "batch_first": True, "mask": mask, "zero_masked": zero_masked}
    kw["activation"] = _activation(layer, cfg, "activation", "tanh")
    if cls != "SimpleRNN":
        kw["recurrent_activation"] = _activation(layer, cfg, "recurrent_activation", "sigmoid")
    if cls == "LSTM":
        h0, c0 = [*initial, None, None][:2]
        y, (h, c) = recurrent.lstm(t, w, "", units, gate_order="ifco", h0=h0, c0=c0, **kw)
        return y, [h, c]
    h0 = initial[0] if initial else None
    if cls == "GRU":
        y, h = recurrent.gru(
            t, w, "", units, gate_order="zrh", reset_after=bool(cfg.get("reset_after", True)), h0=h0, **kw
        )
    else:
        y, h = recurrent.simple_rnn(t, w, "", units, h0=h0, **kw)
    return y, [h]


def _initial(layer: Call, kwargs: dict) -> list:
    init = kwargs.get("initial_state")
    if init is None:
        return []
    items = init if isinstance(init, list) else [init]
    return [ops.unsqueeze(layer.logical(s), 0) for s in items]  # (1, B, H): one layer, one direction


def _recurrent(layer: Call, x: Any, cls: str, mask: Any = None, **kwargs: Any) -> list[KTensor] | KTensor:
    cfg = layer.config
    if isinstance(x, list):  # Keras 2 records initial states as further inputs of the call
        x, states = x[0], x[1:]
        if states:
            kwargs["initial_state"] = states
    _check(layer, cls, cfg)
    t = layer.logical(x)
    if cfg.get("go_backwards"):
        t = t[:, ::-1]
    m = _mask(x, mask)
    if m is not None and cfg.get("go_backwards"):
        m = m[:, ::-1]
    w = _weights(layer, cls, cfg, layer.take)
    y, states = _run(layer, cls, cfg, t, w, m, bidirectional=False, initial=_initial(layer, kwargs),
                     zero_masked=bool(cfg.get("zero_output_for_mask", False)))  # fmt: skip
    last = ops.squeeze(states[0], 0)
    out = KTensor(y if cfg.get("return_sequences") else last)
    if cfg.get("return_sequences") and m is not None:
        out.mask = m
    if cfg.get("return_state"):
        return [out, *(KTensor(ops.squeeze(s, 0)) for s in states)]
    return out


for _cls in _GATES:
    converts(_cls)(lambda layer, x, mask=None, _cls=_cls, **kw: _recurrent(layer, x, _cls, mask, **kw))


def _bidirectional_initial(layer: Call, kwargs: dict) -> list:
    """Keras' Bidirectional gives the first half of ``initial_state`` to the forward layer, the rest to the
    backward one; the cells take each state as (2, B, H), forward then backward."""
    init = _initial(layer, kwargs)
    if len(init) % 2:
        raise layer.error(f"initial_state has {len(init)} tensors; Bidirectional needs the same number per direction")
    half = len(init) // 2
    return [ops.concat([init[i], init[half + i]], 0) for i in range(half)]


@converts("Bidirectional")
def bidirectional(layer: Call, x: Any, mask: Any = None, **kwargs: Any) -> list[KTensor] | KTensor:
    if isinstance(x, list):  # Keras 2 records initial states as further inputs of the call
        x, states = x[0], x[1:]
        if states:
            kwargs["initial_state"] = states
    c = layer.config
    inner = c["layer"]
    cls, cfg = str(inner.get("class_name")), inner.get("config") or {}
    back = c.get("backward_layer")
    bcfg = (back.get("config") or {}) if back else cfg
    if cls not in _GATES:
        raise layer.error(f"Bidirectional({cls}) is not supported ({', '.join(_GATES)})")
    if back:
        same = ("units", "use_bias", "activation", "recurrent_activation", "reset_after", "return_sequences")
        differ = [k for k in same if bcfg.get(k) != cfg.get(k)]
        if str(back.get("class_name")) != cls or differ:
            raise layer.error(
                f"a backward_layer that differs from the forward {cls} ({back.get('class_name')!s}; "
                f"{', '.join(f'{k}={bcfg.get(k)!r}' for k in differ) or 'class'}) is not supported"
            )
    _check(layer, cls, cfg)
    # A legacy .h5 names a given backward_layer's group by that layer's own name, not backward_<name>.
    bpart = "backward" if not back or _has_part(layer, "backward") else str(bcfg.get("name"))
    w = _weights(layer, cls, cfg, lambda n: layer.take_key(find_weight(layer, "forward", n)))
    w.update(_weights(layer, cls, bcfg, lambda n: layer.take_key(find_weight(layer, bpart, n)), "_l0_reverse"))  # fmt: skip
    m = _mask(x, mask)
    seqs = bool(cfg.get("return_sequences"))
    # Bidirectional forces zero_output_for_mask = return_sequences on both layers.
    initial = _bidirectional_initial(layer, kwargs)
    y, states = _run(layer, cls, cfg, layer.logical(x), w, m, bidirectional=True, initial=initial, zero_masked=seqs)
    units = int(cfg["units"])
    if seqs:
        fwd, bwd = y[:, :, :units], y[:, :, units:]
    else:
        h = states[0]  # (2, B, H): forward final, backward final
        fwd, bwd = h[0], h[1]
    mode = c.get("merge_mode", "concat")
    if mode is None:  # Keras returns the two directions as two outputs
        outs = [KTensor(fwd), KTensor(bwd)]
        if cfg.get("return_state"):
            outs += [KTensor(s[i]) for i in (0, 1) for s in states]
        return outs
    merged = {
        "concat": lambda: ops.concat([fwd, bwd], -1 + (fwd.ndim if fwd.ndim else 0)),
        "sum": lambda: ops.add(fwd, bwd),
        "mul": lambda: ops.mul(fwd, bwd),
        "ave": lambda: ops.mul(ops.add(fwd, bwd), 0.5),
    }
    if mode not in merged:
        raise layer.error(f"merge_mode {mode!r} is not supported ({', '.join(merged)})")
    out = KTensor(merged[mode]())
    if cfg.get("return_state"):
        # Keras: [output, *forward states, *backward states]; states here are (h, c) with a direction axis.
        return [out, *(KTensor(s[i]) for i in (0, 1) for s in states)]
    return out


def _has_part(layer: Call, part: str) -> bool:
    base = f"{layer.wprefix}{layer.name}/"
    return any(
        c == part or c.startswith(part + "_")
        for key in layer.ctx.store
        if key.startswith(base)
        for c in key[len(base) :].split("/")[:-1]
    )


@converts("TimeDistributed")
def time_distributed(layer: Call, x: KTensor, mask: Any = None, **kwargs: Any) -> KTensor:
    from ..weights.keras_config import MODEL_CLASSES, Layer, parse_model

    entry = layer.config["layer"]
    inner = Layer(layer.name, str(entry.get("class_name")), "layer", str(entry.get("module") or ""),
                  entry.get("config") or {})  # fmt: skip
    nested = inner.class_name in MODEL_CLASSES
    fn = CONVERTERS.get(("layer", inner.class_name))
    if fn is None and not nested:
        raise layer.error(f"no converter for the wrapped class {inner.class_name!r}")
    t = layer.logical(x)
    steps = t.shape[1]
    if steps < 0:
        raise layer.error("TimeDistributed needs a static number of time steps")
    folded = KTensor(ops.reshape(t, (-1, *t.shape[2:])))  # (B*T, ...): the wrapped layer sees one step per sample
    if nested:  # a whole model applied per step: its layers' weights sit under this layer's name
        model = parse_model(entry)
        outs = run_model(layer.ctx, model, [folded], f"{layer.wprefix}{layer.name}/", f"{layer.where}/")
        if len(outs) != 1:
            raise layer.error(f"the wrapped model {model.name!r} has {len(outs)} outputs; TimeDistributed needs one")
        y, call = outs[0], Call(layer.ctx, inner, layer.wprefix, layer.where)
    else:
        call = Call(layer.ctx, inner, layer.wprefix, layer.where)
        y = fn(call, folded)
        layer.params += call.params
    yt = call.logical(y if isinstance(y, KTensor) else KTensor(y))
    # Keras' TimeDistributed.compute_mask: the (B, T) mask of its input passes through
    return KTensor(ops.reshape(yt, (-1, steps, *yt.shape[1:])), mask=x.mask)
