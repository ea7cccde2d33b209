"""The main job: build the digits CNN into a TensorRT plan and check it on real data.

1. Define the network by hand (examples/digits_cnn.py) from weights/digits_cnn.npz.
2. Build a serialized engine with dynamic batch (works on a CPU-only machine with tensorrt_rtx).
3. Run the held-out real digits through the reference interpreter (fp32 and fp16 policies)
   and, where a supported GPU exists, through the engine; report accuracy and the
   difference from the PyTorch logits recorded at training time.

    python examples/main.py [--out out/]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from digits_cnn import build_network

import trtdsl
import trtdsl.weights
from trtdsl import golden, reference

DATA = Path(__file__).resolve().parent.parent / "weights" / "digits_test.npz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="folder for the plan and outputs")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with np.load(DATA, allow_pickle=False) as data:
        images, labels, torch_logits = data["images"], data["labels"], data["torch_logits"]
    print(f"data: {len(images)} held-out 8x8 digits (scikit-learn's UCI digits)")

    for dtype in ("float32", "float16"):
        net = build_network(dtype)
        t = time.perf_counter()
        plan = trtdsl.build(net)
        plan.save(out / f"digits_{dtype}.plan")
        print(
            f"[{dtype}] built {len(plan.engine):,}-byte plan in {time.perf_counter() - t:.1f}s -> {out}/digits_{dtype}.plan"
        )
        t = time.perf_counter()
        logits = np.concatenate([reference.run(net, {"images": b})["logits"] for b in np.array_split(images, 4)])
        accuracy = float((logits.argmax(1) == labels).mean())
        agree = float((logits.argmax(1) == torch_logits.argmax(1)).mean())
        report = golden.compare({"logits": logits}, {"logits": torch_logits}, tolerance="float32")
        err = report.outputs["logits"]
        verdict = "MATCH (fp32 tolerance)" if report.ok else f"differs by {err.max_abs:.2e} (expected for {dtype})"
        print(
            f"[{dtype}] reference interpreter: accuracy {accuracy:.4f}, top-1 agreement with PyTorch {agree:.4f}, "
            f"max |diff| {err.max_abs:.2e} ({time.perf_counter() - t:.2f}s) -> {verdict}"
        )
        golden.record({"logits": logits}, out / f"digits_{dtype}_reference.npz", metadata={"dtype": dtype})
        if dtype == "float32" and not report.ok:
            print(report)
            return 1
    _run_engine(out / "digits_float32.plan", images, torch_logits)
    return 0


def _run_engine(plan_path: Path, images: np.ndarray, torch_logits: np.ndarray) -> None:
    try:
        from trtdsl.runtime import Session

        session = Session(trtdsl.Plan.load(plan_path))
    except trtdsl.TrtdslError as e:
        print(f"engine: not run on this machine ({e})")
        return
    logits = session.run({"images": images[:256]})["logits"]
    print(f"engine: max |diff| vs PyTorch {np.abs(logits - torch_logits[:256]).max():.2e}")


if __name__ == "__main__":
    sys.exit(main())
