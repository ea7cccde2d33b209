"""Activations fused into the layer before them, as TensorRT fuses them (fast mode only).

Why: an activation is a full pass over its input, and one that allocates. After
a convolution, matrix multiply or elementwise layer whose output nothing else
reads, TensorRT runs the activation in that layer's epilogue; here it is
applied in place to the layer's fresh output, with no new array. Two shapes of
pattern qualify (``plan``):

- one activation of the output: ReLU, clip (ReLU6), sigmoid, hard sigmoid,
  tanh, leaky ReLU, GELU;
- a gate, ``x * act(x)``: an activation of the output and an elementwise PROD
  of the output with it, which is SiLU (sigmoid) and hard-swish (hard sigmoid)
  as TensorRT's ONNX parser and ``trtdsl.ops`` build them;
- GELU as five layers, ``x * (1 + erf(x / sqrt 2)) * 0.5`` with scalar
  constants, as TensorRT's ONNX parser builds torch's exported GELU.

A tensor that is exported (a network output, captured or observed) is never
fused away. The in-place functions compute the same formulas as
``reference.activation`` in float32, some in another order (the sigmoid as
``1 / (1 + exp(-x))``), within a few float32 ulps of it
(tests/reference/test_fusion.py). Where numba is installed, the activations that
``kernels.jit`` compiles run as one compiled pass (SiLU: one pass instead of four);
a depthwise convolution applies them as it stores each output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .control import Structure
from .elementwise import erf, rectify
from .kernels import jit
from .kernels.scratch import kept
from .registry import Node, fresh

_BLOCK = 16384
_consts: dict[tuple[float, np.dtype], np.ndarray] = {}


def _const(value: float, dtype: np.dtype) -> np.ndarray:
    # NumPy's binary ufuncs against a scalar skip their SIMD loops (3x slower than array
    # against array), so a contiguous array meets a block of the constant instead.
    key = (float(value), np.dtype(dtype))
    block = _consts.get(key)
    if block is None:
        block = _consts[key] = np.full(_BLOCK, value, dtype=dtype)
    return block


def _blocked(op: Any, y: np.ndarray, value: float, out: np.ndarray) -> None:
    """``op(y, value, out=out)`` for C-contiguous ``y`` and ``out`` of one shape, with the value as a block."""
    block = _const(value, y.dtype)
    flat, dst = y.reshape(-1), out.reshape(-1)
    whole = flat.size - flat.size % _BLOCK
    op(flat[:whole].reshape(-1, _BLOCK), block, out=dst[:whole].reshape(-1, _BLOCK))
    op(flat[whole:], block[: flat.size - whole], out=dst[whole:])


def _clip(y: np.ndarray, lo: float, hi: float) -> np.ndarray:
    _blocked(np.maximum, y, lo, y)
    _blocked(np.minimum, y, hi, y)
    return y


def _sigmoid(y: np.ndarray, out: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-y)) into ``out`` (exp overflows to inf for y < -88, giving 0, as it should).

    Four NumPy passes: measured twice as fast as scipy's scalar ``expit`` (5.2 against 10.3 ms
    on 1.2 M float32 values, one core).
    """
    np.negative(y, out=out)
    np.exp(out, out=out)
    _blocked(np.add, out, 1.0, out)
    return np.reciprocal(out, out=out)


def _hard_sigmoid(y: np.ndarray, a: float, b: float, out: np.ndarray) -> np.ndarray:
    _blocked(np.multiply, y, a, out)
    _blocked(np.add, out, b, out)
    return _clip(out, 0.0, 1.0)


def _scratch(y: np.ndarray) -> np.ndarray:
    return kept(("fusion", y.shape, y.dtype), lambda: np.empty(y.shape, y.dtype))


_SQRT_HALF = float(np.sqrt(0.5))
_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))


def _gelu_erf(y: np.ndarray) -> np.ndarray:
    t = _scratch(y)
    _blocked(np.multiply, y, _SQRT_HALF, t)
    t[...] = erf(t)
    _blocked(np.add, t, 1.0, t)
    np.multiply(y, t, out=y)
    _blocked(np.multiply, y, 0.5, y)
    return y


def _gelu_tanh(y: np.ndarray) -> np.ndarray:
    t = _scratch(y)
    np.multiply(y, y, out=t)
    np.multiply(t, y, out=t)
    _blocked(np.multiply, t, 0.044715, t)
    np.add(t, y, out=t)
    _blocked(np.multiply, t, _SQRT_2_OVER_PI, t)
    np.tanh(t, out=t)
    _blocked(np.add, t, 1.0, t)
    np.multiply(y, t, out=y)
    _blocked(np.multiply, y, 0.5, y)
    return y


# ActivationType -> in-place fn(y, alpha, beta) on a C-contiguous float32 array.
_IN_PLACE: dict[str, Callable[[np.ndarray, float, float], np.ndarray]] = {
    "RELU": lambda y, a, b: rectify(y, inplace=True),
    "CLIP": _clip,
    "SIGMOID": lambda y, a, b: _sigmoid(y, y),
    "HARD_SIGMOID": lambda y, a, b: _hard_sigmoid(y, a, b, y),
    "TANH": lambda y, a, b: np.tanh(y, out=y),
    "LEAKY_RELU": lambda y, a, b: np.multiply(y, np.where(y >= 0, 1.0, a).astype(y.dtype), out=y),
    "GELU_ERF": lambda y, a, b: _gelu_erf(y),
    "GELU_TANH": lambda y, a, b: _gelu_tanh(y),
}

# ActivationType -> fn(y, alpha, beta, out) writing act(y) into out (for the gate y * act(y)).
_GATES: dict[str, Callable[[np.ndarray, float, float, np.ndarray], np.ndarray]] = {
    "SIGMOID": lambda y, a, b, out: _sigmoid(y, out),
    "HARD_SIGMOID": _hard_sigmoid,
}


@dataclass(frozen=True)
class Epilogue:
    """What a layer applies to its own output: ``act(y)``, or ``y * act(y)`` when ``gate``."""

    kind: str  # ActivationType name
    alpha: float
    beta: float
    gate: bool = False

    @property
    def relu(self) -> bool:
        """A plain ReLU (which the GEMM paths of a convolution apply as they finish)."""
        return self.kind == "RELU" and not self.gate

    @property
    def activation(self) -> tuple[str, bool, float, float]:
        """(kind, gate, alpha, beta), as ``kernels.jit`` takes it."""
        return self.kind, self.gate, self.alpha, self.beta

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """``y`` with the activation applied, in place when ``y`` is C-contiguous and writeable."""
        if not (y.flags.c_contiguous and y.flags.writeable):
            y = np.array(y, order="C")
        if not self.relu and jit.activate(y, *self.activation):  # (a ReLU is one NumPy pass already)
            return y
        with np.errstate(over="ignore", under="ignore"):
            if self.gate and self.kind == "SIGMOID":  # SiLU as y / (1 + exp(-y)): one pass fewer
                t = _scratch(y)
                np.negative(y, out=t)
                np.exp(t, out=t)
                _blocked(np.add, t, 1.0, t)
                return np.divide(y, t, out=y)
            if self.gate:
                t = _GATES[self.kind](y, self.alpha, self.beta, _scratch(y))
                return np.multiply(y, t, out=y)
            return _IN_PLACE[self.kind](y, self.alpha, self.beta)


# Step position -> Epilogue for a layer that applies it, or the name of the tensor that
# holds a fused follower's value (its last layer), or None for a follower with no output
# of its own (a gate's activation, never read by anything else).
Plan = dict[int, Epilogue | str | None]


def plan(steps: Sequence[Node], exported: Iterable[str]) -> Plan:
    """Which steps fuse which activations after them, for outputs that nothing else reads."""
    readers: dict[str, list[int]] = {}
    for pos, step in enumerate(steps):
        for n in dict.fromkeys(step.inputs):
            if n is not None:
                readers.setdefault(n, []).append(pos)
    keep = set(exported)
    producer = {n: step for step in steps for n in step.outputs}
    out: Plan = {}
    for pos, step in enumerate(steps):
        if isinstance(step, Structure) or len(step.outputs) != 1 or step.out_dtypes[0] != "float32":
            continue
        if not fresh(step.type) or pos in out:
            continue
        src = step.outputs[0]
        if src in keep:
            continue
        users = readers.get(src, [])
        follow = [steps[p] for p in users]
        if len(users) == 1 and _activation(follow[0], _IN_PLACE, src):
            act = follow[0]
            out[pos] = Epilogue(act.layer.type.name, act.layer.alpha, act.layer.beta)
            out[users[0]] = src
        elif len(users) == 2 and (gelu := _gelu_chain(steps, pos, readers, producer, keep)) is not None:
            div, erf, add, mul, half = gelu
            out[pos] = Epilogue("GELU_ERF", 0.0, 0.0)
            out[div] = out[erf] = out[add] = None
            # Each alias at a step that reads the tensor it names, before that tensor is freed.
            out[mul], out[half] = src, steps[mul].outputs[0]
        elif len(users) == 2:
            act_pos, mul_pos = users
            act, mul = steps[act_pos], steps[mul_pos]
            if not _activation(act, _GATES, src) or act.outputs[0] in keep:
                continue
            if readers.get(act.outputs[0]) != [mul_pos] or not _gate_product(mul, src, act.outputs[0]):
                continue
            out[pos] = Epilogue(act.layer.type.name, act.layer.alpha, act.layer.beta, gate=True)
            out[act_pos] = None
            out[mul_pos] = src
    return out


def _scalar(name: str | None, producer: dict[str, Node]) -> float | None:
    """The value of ``name`` when it is a one-element constant (through shuffles and identities), else None."""
    for _ in range(8):
        node = producer.get(name) if name is not None else None
        if node is None or isinstance(node, Structure):
            return None
        if node.type == "constant":
            w = node.layer.weights
            return float(np.asarray(w).reshape(-1)[0]) if isinstance(w, np.ndarray) and w.size == 1 else None
        if node.type not in ("shuffle", "identity") or len(node.inputs) != 1:
            return None
        name = node.inputs[0]
    return None


def _binary(node: Node, op: str, operand: str, producer: dict[str, Node], value: float) -> bool:
    """Whether ``node`` is elementwise ``op`` of ``operand`` and a scalar constant equal to float32 ``value``."""
    if isinstance(node, Structure) or node.type != "elementwise" or node.layer.op.name != op:
        return False
    if operand not in node.inputs or node.out_dtypes[0] != "float32":
        return False
    other = node.inputs[1] if node.inputs[0] == operand else node.inputs[0]
    if op == "DIV" and node.inputs[0] != operand:
        return False
    return _scalar(other, producer) == float(np.float32(value))


def _gelu_chain(
    steps: Sequence[Node], pos: int, readers: dict[str, list[int]], producer: dict[str, Node], keep: set[str]
) -> list[int] | None:
    """The positions of DIV, ERF, SUM, PROD, PROD computing GELU(x) = x * (1 + erf(x / sqrt 2)) * 0.5 of
    step ``pos``'s output (as TensorRT's ONNX parser builds it from torch's exported GELU), or None."""
    src = steps[pos].outputs[0]
    users = readers.get(src, [])
    if len(users) != 2:
        return None
    div, mul = steps[users[0]], steps[users[1]]
    if not _binary(div, "DIV", src, producer, float(np.sqrt(2.0))):
        return None
    chain = [users[0]]
    erf = _only_reader(steps, readers, div.outputs[0], keep)
    if erf is None or steps[erf].type != "unary" or steps[erf].layer.op.name != "ERF":
        return None
    add = _only_reader(steps, readers, steps[erf].outputs[0], keep)
    if add is None or not _binary(steps[add], "SUM", steps[erf].outputs[0], producer, 1.0):
        return None
    if _only_reader(steps, readers, steps[add].outputs[0], keep) != users[1] or mul.type != "elementwise":
        return None
    if mul.layer.op.name != "PROD" or sorted(mul.inputs, key=str) != sorted([src, steps[add].outputs[0]], key=str):
        return None
    half = _only_reader(steps, readers, mul.outputs[0], keep)
    if half is None or not _binary(steps[half], "PROD", mul.outputs[0], producer, 0.5):
        return None
    if steps[half].out_shapes[0] != steps[pos].out_shapes[0]:
        return None
    return [*chain, erf, add, users[1], half]


def _only_reader(steps: Sequence[Node], readers: dict[str, list[int]], name: str, keep: set[str]) -> int | None:
    users = readers.get(name, [])
    if name in keep or len(users) != 1 or isinstance(steps[users[0]], Structure):
        return None
    return users[0]


def _activation(node: Node, table: dict, src: str) -> bool:
    return (
        not isinstance(node, Structure)
        and node.type == "activation"
        and node.inputs == [src]
        and node.out_dtypes[0] == "float32"
        and node.layer.type.name in table
    )


def _gate_product(node: Node, src: str, act: str) -> bool:
    return (
        not isinstance(node, Structure)
        and node.type == "elementwise"
        and sorted(node.inputs, key=str) == sorted([src, act], key=str)
        and node.out_dtypes[0] == "float32"
        and node.layer.op.name == "PROD"
    )
