"""The main job (``trtdsl demo``): two digits models x FP32/FP16/INT8/FP8, built, run and checked on real data.

The data are scikit-learn's bundled UCI handwritten digits (8x8), held-out
split as committed in weights/ by the training scripts. The two models:

* ``digits_cnn``: the hand-written DSL network of examples/digits_cnn.py over
  weights/digits_cnn.npz (trained by examples/train_digits.py, PyTorch);
* ``keras``: weights/digits_keras.h5, trained by examples/train_keras_digits.py
  with Keras 3 and ported by ``trtdsl.keras.load_model`` (fed NCHW).

For each model and precision it builds a plan with a dynamic batch, runs the
400 test images on the GPU where the installed TensorRT supports it and
through the reference interpreter otherwise (the table says which), and
prints one table. INT8 (entropy) and FP8 (max) are calibrated on 256
training-split images (weights/digits_calib.npz). ``--out`` receives the plans, calibration
caches, the quantization reports, ``golden.npz`` (every row's logits) and
``results.json`` (the table). Exit status 1 when a row misses its bound: FP32
as trained (PyTorch's / Keras' own recorded logits), FP16 and FP8 within 0.5
point of FP32 accuracy, INT8 within 1 point.

    trtdsl demo --out out/         # or: python examples/main.py --out out/
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from digits_cnn import build_network as build_digits_cnn

import trtdsl
from trtdsl import golden, reference

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "weights"
PRECISIONS = ("fp32", "fp16", "int8", "fp8")
BOUNDS = {"fp16": 0.5, "int8": 1.0, "fp8": 0.5}  # accuracy points below FP32 a row may lose
# INT8: entropy (KL divergence over 128 integer levels). The entropy search is defined for
# integer levels only, so FP8 E4M3 takes max calibration, ModelOpt's default for FP8.
ALGORITHMS = {"int8": "entropy", "fp8": "max"}
MATCH = 1e-4  # FP32 logits vs the training framework's, relative to their largest magnitude


@dataclass
class Row:
    model: str
    precision: str
    accuracy: float | None = None  # percent
    agreement: float | None = None  # percent of test images with FP32's top-1 class
    plan_bytes: int | None = None
    build_seconds: float | None = None
    ran_on: str = ""
    ok: bool = False
    note: str = ""


def load_keras(dtype: str) -> trtdsl.Network:
    import trtdsl.keras

    return trtdsl.keras.load_model(WEIGHTS / "digits_keras.h5", batch=(1, 64, 400), dtype=dtype, layout="NCHW")


def load_digits_cnn(dtype: str) -> trtdsl.Network:
    net = build_digits_cnn(dtype)
    net.dims["batch"] = trtdsl.Dim("batch", 1, 64, 400)  # the whole test split in one batch
    return net


# model -> (network factory, file with the training framework's logits, key in it)
MODELS: dict[str, tuple[Callable[[str], trtdsl.Network], str, str]] = {
    "digits_cnn": (load_digits_cnn, "digits_test.npz", "torch_logits"),
    "keras": (load_keras, "digits_keras_test.npz", "keras_logits"),
}


def quantize(net: trtdsl.Network, precision: str, images: np.ndarray, out: Path, model: str) -> str:
    """Calibrate ``net`` on the training-split images and write Q/DQ into it; returns a note."""
    from trtdsl import calib

    cache = out / f"{model}_{precision}.calib"
    reused = cache.is_file()  # a calibrator reads its cache before any data, as TensorRT's did
    calibrator = calib.ArrayCalibrator({"images": images}, batch_size=64, cache=cache, progress=False)
    with contextlib.redirect_stdout(io.StringIO()) as table:  # the report is saved; the demo prints its own table
        calib.quantize(net, calibrator, dtype=precision, algorithm=ALGORITHMS[precision],
                       report=out / f"{model}_{precision}_quantization.json")  # fmt: skip
    (out / f"{model}_{precision}_quantization.txt").write_text(table.getvalue())
    return f"ranges from {cache.name}" if reused else ""


def run(plan: trtdsl.Plan, net: trtdsl.Network, images: np.ndarray) -> tuple[np.ndarray, str]:
    """Logits of the test split on the GPU when the engine loads here, else through the interpreter."""
    try:
        from trtdsl.runtime import Session

        logits = Session(plan).run({"images": images})
        return next(iter(logits.values())), "GPU (TensorRT engine)"
    except trtdsl.TrtdslError as e:
        reason = str(e).split(". Use ")[0]  # the runtime's own sentence: no usable CUDA device (...)
        return next(iter(reference.run(net, {"images": images}).values())), f"interpreter: {reason}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trtdsl demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="folder for plans, caches, reports and golden outputs")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    from tqdm.auto import tqdm

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with np.load(WEIGHTS / "digits_test.npz", allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    with np.load(WEIGHTS / "digits_calib.npz", allow_pickle=False) as data:
        calibration = data["images"]
    print(
        f"data: {len(images)} held-out 8x8 digits (scikit-learn's UCI digits), "
        f"{len(calibration)} training-split images for calibration"
    )
    precisions = ["fp32", *[p for p in args.precisions if p != "fp32"]]  # the others are compared with FP32
    rows: list[Row] = []
    goldens: dict[str, np.ndarray] = {}
    start = time.perf_counter()
    bar = tqdm(total=len(args.models) * len(precisions), desc="demo", disable=args.no_progress, file=sys.stderr)
    for model in args.models:
        factory, ref_file, ref_key = MODELS[model]
        with np.load(WEIGHTS / ref_file, allow_pickle=False) as data:
            framework_logits = data[ref_key]
        fp32_pred = None
        for precision in precisions:
            row = Row(model, precision)
            rows.append(row)
            bar.set_postfix_str(f"{model} {precision}")
            try:
                net = factory("float16" if precision == "fp16" else "float32")
                if precision in ("int8", "fp8"):
                    row.note = quantize(net, precision, calibration, out, model)
                # FP32 without TF32 on a GPU, so that it can match the framework's float32 logits.
                plan = trtdsl.build(net, tf32=precision != "fp32", progress=False)
            except (trtdsl.TrtdslError, ImportError) as e:
                row.note = f"not built: {type(e).__name__}: {e}"[:300]
                bar.update(1)
                continue
            plan.save(out / f"{model}_{precision}.plan")
            row.plan_bytes, row.build_seconds = len(plan.engine), plan.build_seconds
            logits, row.ran_on = run(plan, net, images)
            goldens[f"{model}.{precision}"] = logits
            pred = logits.argmax(1)
            row.accuracy = 100 * float((pred == labels).mean())
            if precision == "fp32":
                fp32_pred, fp32_acc = pred, row.accuracy
                trained = 100 * float((framework_logits.argmax(1) == labels).mean())
                diff = float(np.abs(logits - framework_logits).max() / np.abs(framework_logits).max())
                row.ok = diff <= MATCH and row.accuracy == trained
                row.note = f"logits vs {ref_key.split('_')[0]}: {diff:.1e} of max (bound {MATCH:.0e})"
            if fp32_pred is not None:
                row.agreement = 100 * float((pred == fp32_pred).mean())
                if precision != "fp32":
                    row.ok = row.accuracy >= fp32_acc - BOUNDS[precision]
                    row.note = row.note or f"bound: FP32 - {BOUNDS[precision]} point"
            bar.update(1)
    bar.close()
    seconds = time.perf_counter() - start
    golden.record(goldens, out / "golden.npz", metadata={"rows": [f"{r.model}.{r.precision}" for r in rows]})
    (out / "results.json").write_text(json.dumps({"rows": [asdict(r) for r in rows], "seconds": seconds}, indent=2))
    print(table(rows))
    failed = [r for r in rows if not r.ok]
    print(f"{len(rows) - len(failed)}/{len(rows)} rows within their bounds in {seconds:.0f}s; wrote {out}/")
    for r in failed:
        print(f"MISSED: {r.model} {r.precision}: {r.note}")
    return 1 if failed else 0


def table(rows: Sequence[Row]) -> str:
    """The demo's table, fixed width."""
    head = ("model", "precision", "accuracy", "agree fp32", "plan size", "build", "ran on", "ok", "note")
    fmt = lambda v, f: "-" if v is None else f.format(v)  # noqa: E731
    body = [
        (r.model, r.precision.upper(), fmt(r.accuracy, "{:.2f}%"), fmt(r.agreement, "{:.2f}%"),
         fmt(None if r.plan_bytes is None else r.plan_bytes / 1024, "{:.0f} KiB"), fmt(r.build_seconds, "{:.1f}s"),
         r.ran_on.split(":")[0].split(" (")[0], "yes" if r.ok else "NO", r.note)
        for r in rows
    ]  # fmt: skip
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(x, widths)).rstrip() for x in [head, *body]]
    where = {r.ran_on for r in rows if r.ran_on}
    return "\n".join(
        [lines[0], "  ".join("-" * w for w in widths), *lines[1:], *[f"ran on {w}" for w in sorted(where)]]
    )


if __name__ == "__main__":
    sys.exit(main())
