"""ONNX's node test cases through TensorRT's ONNX parser and the interpreter, against ONNX's expected outputs.

Every case of ``onnx.backend.test.case.node.collect_testcases()`` (inputs and
outputs the ONNX authors computed in NumPy) is serialized, parsed by
``trtdsl.onnx.parse`` (TensorRT's ``OnnxParser``) and run by the interpreter in
both modes (``fast=True`` and ``fast=False``), each output compared with the
case's own rtol/atol. ``_onnx_conformance`` says what the harness changes: the
one dtype change the comparison undoes (DOUBLE cast down to FLOAT) and, for a
model the parser refuses, one retry with its small inputs (axes, pads, scales)
given as initializers of the same values.

- *Not applicable* (skipped, counted): TensorRT's parser refuses the model, or
  TensorRT's builder refuses the network it makes (the interpreter must refuse
  it too, in both modes).
- ``EXPECTED_FAILURES``: the parser builds a network whose semantics differ from
  ONNX, each with the reason; the interpreter follows the network. Such a case
  must still fail in both modes, so a fixed parser shows up here.
- ``EXPECTED_REFUSALS``: such misreads that trtdsl's own checks (``trtdsl.onnxcheck``)
  refuse before TensorRT's parser reads the file; each case checks the message and that
  the parser's network, unchecked, is off ONNX's outputs. Any other model that trtdsl
  refuses fails: that is not TensorRT's verdict.
- ``TOLERANCES``: a case compared with a wider tolerance, each with the reason.

The tally is printed in the run's terminal summary (README.md, "Testing", has the
numbers for onnx 1.23.2 and tensorrt_rtx 1.7.1 on a CPU-only machine). About 10 s
of the run is ONNX computing its cases, at collection.
"""

from __future__ import annotations

import re

import pytest

from trtdsl import _trt
from trtdsl.errors import TrtdslError

from . import _onnx_conformance as conformance

pytest.importorskip("onnx")
CASES = conformance.collect() if _trt.available() else {}

_TRILU = (
    "onnx-tensorrt's Trilu importer reads `upper` with default 0 (attrs.get(\"upper\", 0)) where ONNX's "
    "default is 1, so a Trilu without the attribute becomes tril"
)
_RNN_LAYOUT = (
    "the RNN/GRU/LSTM importers ignore `layout`: with layout=1 the network still reads X as "
    "[seq, batch, input] and writes Y as [seq, dirs, batch, hidden]"
)
_CEIL = (
    "ceil_mode=1 becomes PaddingMode.EXPLICIT_ROUND_UP, whose output size ceil((M - F) / S) + 1 keeps a "
    "last window that starts in the padding; ONNX drops that window"
)
_RANDOM = (
    "RandomUniformLike becomes a random fill: TensorRT ignores the seed (onnx-tensorrt operators.md) and "
    "its generator is not NumPy's (the interpreter draws from NumPy's, seed 0), so the draws differ"
)
_NONPAD = (
    "the Attention importer ignores the nonpad_kv_seqlen input (no layer reads it; IAttention gets no "
    "key_value_lengths), so padded keys are attended"
)
_RESIZE_SCALES = (
    "NvInfer.h maps a resized coordinate with the length ratio length_in / length_out, ONNX with 1 / scale: "
    "they differ where length_in * scale is not whole (0.6 of 4 is 2.4, so 4 -> 2: a ratio of 2, not 1.67)"
)
_WINDOW = "the Attention importer ignores left_window_size/right_window_size (IAttention has no window)"

# (b) The parser's network means something else than the ONNX node (one line per case).
EXPECTED_FAILURES = {
    "test_averagepool_2d_ceil_last_window_starts_on_pad": _CEIL,
    "test_maxpool_2d_ceil_output_size_reduce_by_one": _CEIL,
    "test_bernoulli_seed_expanded": _RANDOM,
    "test_bernoulli_double_expanded": _RANDOM,
    "test_attention_4d_causal_nonpad_batch_prefill": _NONPAD,
    "test_attention_4d_causal_nonpad_continued_prefill": _NONPAD,
    "test_attention_4d_causal_nonpad_negative_offset_structural_empty": _NONPAD,
    "test_attention_4d_gqa_causal_nonpad_decode": _NONPAD,
    "test_attention_4d_gqa_causal_nonpad_decode_fp16": _NONPAD,
    "test_attention_local_window": _WINDOW,
    "test_attention_bidirectional_window": _WINDOW,
    "test_nonmaxsuppression_two_classes": (
        "INMSLayer sorts a batch's selected boxes by decreasing score, ties unspecified (its docstring); ONNX "
        "sorts them by class, then score: the same four boxes, in another order"
    ),
    "test_resize_downsample_scales_linear": _RESIZE_SCALES,
    "test_resize_downsample_scales_linear_align_corners": _RESIZE_SCALES,
    "test_resize_downsample_scales_cubic": _RESIZE_SCALES,
    "test_resize_downsample_scales_cubic_align_corners": _RESIZE_SCALES,
    "test_resize_downsample_scales_cubic_A_n0p5_exclude_outside": _RESIZE_SCALES,
    "test_attention_23_boolmask_fullymasked_row_nan_robustness": (
        "a query row whose bool mask keeps no key: ONNX defines its output as 0; NvInfer.h does not say what "
        "IAttention gives, and the interpreter gives softmax's NaN (as torch does) rather than guess"
    ),
}

# (c) The same misreads, refused by trtdsl.onnx.parse (trtdsl/onnxcheck.py) with the fix in its message:
# case -> why. Each such case also checks the message (_MESSAGES) and that the parser's own network,
# unchecked, is off ONNX's outputs (test_triu_zero's output is empty: nothing to differ).
_SPACETODEPTH = "the SpaceToDepth importer ignores `mode` and always builds the DCR permutation (0, 3, 5, 1, 2, 4)"
_MESSAGES = {
    _TRILU: r"has no 'upper' attribute: ONNX's default is 1 .* Set upper=1",
    _RNN_LAYOUT: r"has layout=1 \(batch first\), which TensorRT's parser ignores",
    _SPACETODEPTH: r"has mode='CRD', which TensorRT's parser ignores",
}
EXPECTED_REFUSALS = {
    **dict.fromkeys([f"test_triu{s}" for s in ("", "_neg", "_one_row", "_out_neg_out", "_out_pos", "_pos",
                                               "_square", "_square_neg", "_zero")], _TRILU),
    **dict.fromkeys(["test_simple_rnn_batchwise", "test_gru_batchwise", "test_lstm_batchwise"], _RNN_LAYOUT),
    "test_spacetodepth_crd_mode_example": _SPACETODEPTH,
}  # fmt: skip

# Wider tolerances: (rtol, atol, why). The outputs are attention averages of values in [0, 1),
# where one unit in the last place is 2**-8 in bfloat16 and 2**-11 in float16.
_BF16_ULP, _FP16_ULP = 2.0**-8, 2.0**-11
_ROUNDING = (
    "one {} ulp: ONNX's expected values come from its NumPy reference run in {} (ml_dtypes rounds after "
    "every NumPy op: the scaling, each matmul, the softmax); the network rounds at other points: at the "
    "outputs of {}"
)
_SCALED = _ROUNDING.format("bfloat16", "bfloat16", "the layers that scale Q and K and of IAttention (float32 inside)")
_EXPANDED = "the expanded function's layers, each rounding its output (a strongly typed network)"
_BF16_EXPANDED = _ROUNDING.format("bfloat16", "bfloat16", _EXPANDED)
_FP16_EXPANDED = _ROUNDING.format("float16", "float16", _EXPANDED)
_STFT = (
    "atol 2**-12, one float32 ulp at 2048 (above the largest partial sum, 16 samples * 127): the parser "
    "computes STFT as a float32 matmul of each frame with a cos/sin table, so the imaginary part of the "
    "Nyquist bin, exactly 0 in ONNX's float64 FFT, comes out up to 2e-4"
)
TOLERANCES = {
    "test_stft": (1e-3, 2.0**-12, _STFT),
    "test_stft_with_window": (1e-3, 2.0**-12, _STFT),
    "test_attention_3d_causal_bf16": (1e-3, _BF16_ULP, _SCALED),
    "test_attention_4d_causal_bf16": (1e-3, _BF16_ULP, _SCALED),
    "test_attention_3d_causal_bf16_expanded": (1e-3, _BF16_ULP, _BF16_EXPANDED),
    "test_attention_4d_causal_bf16_expanded": (1e-3, _BF16_ULP, _BF16_EXPANDED),
    "test_attention_4d_attn_mask_causal_bf16_expanded": (1e-3, _BF16_ULP, _BF16_EXPANDED),
    "test_attention_4d_causal_padded_kv_bf16_expanded": (1e-3, _BF16_ULP, _BF16_EXPANDED),
    "test_attention_4d_padded_kv_bf16_expanded": (1e-3, _BF16_ULP, _BF16_EXPANDED),
    "test_attention_4d_causal_fp16_expanded": (1e-3, _FP16_ULP, _FP16_EXPANDED),
}

TALLY = conformance.TALLY  # printed in the terminal summary (tests/reference/conftest.py)


def _came_out(kind: str) -> None:
    TALLY["failed"] -= 1
    TALLY[kind] += 1


@pytest.mark.parametrize("name", sorted(CASES))
def test_node_case(name):
    case = CASES[name]
    TALLY["failed"] += 1  # until it is known to be something else
    try:
        loaded = conformance.load(case)
    except conformance.NotApplicable as e:
        _came_out(e.kind)
        pytest.skip(f"not applicable: {e}")
    except conformance.RefusedByTrtdsl as e:  # not TensorRT's verdict: right only for a known misread
        if name not in EXPECTED_REFUSALS:
            raise AssertionError(f"trtdsl.onnx.parse refuses it before TensorRT's parser reads it: {e}") from None
        _refusal_is_right(name, case, str(e))
        _came_out("refused")
        return
    TALLY["frozen"] += bool(loaded.frozen)
    rtol, atol = TOLERANCES[name][:2] if name in TOLERANCES else (case.rtol, case.atol)
    problems: dict[str, list[str]] = {}
    refused: dict[str, TrtdslError] = {}
    for mode in ("fast", "plain"):
        try:
            actual = conformance.run(loaded, fast=mode == "fast")
        except TrtdslError as e:
            refused[mode] = e
            continue
        problems[mode] = conformance.mismatches(loaded.expected, actual, rtol, atol)
    if refused:
        why = conformance.builder_refusal(loaded)
        mode, error = next(iter(refused.items()))
        assert why is not None, f"the interpreter ({mode}) refuses a network TensorRT's builder builds: {error}"
        assert len(refused) == 2, f"TensorRT's builder refuses the network, but the {set(problems)} mode runs it"
        _came_out("builder")
        pytest.skip(f"not applicable: TensorRT's builder refuses the network: {conformance.gist(why)}")
    failing = {mode: p for mode, p in problems.items() if p}
    if name in EXPECTED_FAILURES:
        assert set(failing) == {"fast", "plain"}, (
            f"expected to fail ({EXPECTED_FAILURES[name]}), but passes in the {set(problems) - set(failing)} "
            "mode: remove it from EXPECTED_FAILURES"
        )
        _came_out("expected failure")
        pytest.xfail(EXPECTED_FAILURES[name])
    assert not failing, "\n".join(f"{mode}: {line}" for mode, lines in failing.items() for line in lines)
    _came_out("passed")


def _refusal_is_right(name: str, case, message: str) -> None:
    """trtdsl's message is the expected one, and the parser's own network (unchecked) is off ONNX's outputs."""
    why = EXPECTED_REFUSALS[name]
    assert re.search(_MESSAGES[why], message), f"refused, but not for the expected reason ({why}): {message}"
    loaded = conformance.load(case, checked=False)
    actual = conformance.run(loaded, fast=False)
    off = conformance.mismatches(loaded.expected, actual, case.rtol, case.atol)
    empty = all(v.size == 0 for v in loaded.expected.values())
    assert off or empty, f"refused ({why}), but TensorRT's parser alone builds a network that matches ONNX"


@pytest.mark.skipif(not CASES, reason="TensorRT (trtdsl[rtx] or trtdsl[trt]) is not installed")
def test_tables_name_real_cases():
    """A table entry for a case ONNX renamed or dropped would silently stop meaning anything."""
    stale = sorted((set(EXPECTED_FAILURES) | set(EXPECTED_REFUSALS) | set(TOLERANCES)) - set(CASES))
    assert not stale, f"no ONNX node test case is called {stale}"
    assert not set(EXPECTED_FAILURES) & set(EXPECTED_REFUSALS), "a case is both an expected failure and refused"
    assert not set(EXPECTED_FAILURES) & set(TOLERANCES), "a case is both an expected failure and widened"
