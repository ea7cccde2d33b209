"""Keras ResNet50 ``.h5`` on disk -> TensorRT network definition: trtdsl.keras against tf_keras + tf2onnx.

Both sides start from the same tf_keras ResNet50 ``.h5`` (weights=None, written
once by the peer environment). Each measurement is a fresh process:

- trtdsl (this environment): ``trtdsl.keras.load_model(path)``, then (separately
  timed) ``trtdsl.build`` to a serialized plan on the CPU (tensorrt_rtx);
- peer (``--peer-python``, an environment with tensorflow-cpu, tf-keras and
  tf2onnx, never a trtdsl dependency): ``tf_keras.models.load_model`` +
  ``tf2onnx.convert.from_keras``, then, in this environment, TensorRT's ONNX
  parser on the ONNX bytes it wrote (parse time added to the peer's).

Times are the work inside each process after its imports ("work"), and the
same plus importing the libraries ("with imports"); rounds alternate the two
sides (the machine is shared, so take the minimum). Peak memory is each
process' maximum RSS (the peer's is its TensorFlow process; the ONNX parse
runs apart and is reported separately).

Run: ``python bench/keras.py --peer-python /tmp/tfenv/bin/python [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_TRTDSL = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import trtdsl
t1 = time.perf_counter()
net = trtdsl.keras.load_model(sys.argv[1])
t2 = time.perf_counter()
rss_net = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
plan = trtdsl.build(net, weights=net.keras_weights, progress=False) if sys.argv[2] == "1" else None
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "work": t2 - t1, "build": t3 - t2, "layers": net.trt.num_layers,
                  "rss_mb": rss_net, "rss_build_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_PEER = r"""
import json, os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
t0 = time.perf_counter()
import tf_keras, tensorflow as tf, tf2onnx
t1 = time.perf_counter()
model = tf_keras.models.load_model(sys.argv[1], compile=False)
spec = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="input")]
proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
open(sys.argv[2], "wb").write(proto.SerializeToString())
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "work": t2 - t1, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_PARSE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from trtdsl import _trt
trt = _trt.load()
t1 = time.perf_counter()
builder = trt.Builder(_trt.logger())
net = builder.create_network(0)
parser = trt.OnnxParser(net, _trt.logger())
ok = parser.parse(open(sys.argv[1], "rb").read())
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "work": t2 - t1, "ok": bool(ok), "layers": net.num_layers,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(python: str, code: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [python, "-c", code, *args], check=False, capture_output=True, text=True, env=env, timeout=1800
    )
    if done.returncode:
        raise SystemExit(f"{python} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--peer-python", required=True, help="python of an environment with tensorflow-cpu, tf-keras, tf2onnx"
    )
    ap.add_argument("--model", help="ResNet50 .h5 (default: written once by the peer into a temp dir)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="trtdsl_bench_keras_"))
    model = Path(args.model) if args.model else tmp / "resnet50.h5"
    if not model.exists():
        code = "import sys, tf_keras; tf_keras.applications.ResNet50(weights=None).save(sys.argv[1])"
        subprocess.run([args.peer_python, "-c", code, str(model)], check=True, capture_output=True, timeout=1800)
    ours, peer, parse = [], [], []
    for i in range(args.rounds):
        ours.append(_run(sys.executable, _TRTDSL, str(model), "1" if i == 0 else "0"))
        onnx = tmp / "resnet50.onnx"
        peer.append(_run(args.peer_python, _PEER, str(model), str(onnx)))
        parse.append(_run(sys.executable, _PARSE, str(onnx)))
        if not parse[-1]["ok"]:
            raise SystemExit("TensorRT's ONNX parser rejected tf2onnx's output")
        print(f"round {i + 1}: trtdsl {ours[-1]['work']:.2f}s, peer {peer[-1]['work']:.2f}s + parse {parse[-1]['work']:.2f}s",
              file=sys.stderr)  # fmt: skip
    t_ours = min(r["work"] for r in ours)
    t_peer = min(p["work"] + q["work"] for p, q in zip(peer, parse))
    t_ours_imp = min(r["work"] + r["import"] for r in ours)
    t_peer_imp = min(p["work"] + p["import"] + q["work"] + q["import"] for p, q in zip(peer, parse))
    result = {
        "model": str(model), "rounds": args.rounds,
        "trtdsl_load_model_s": t_ours, "trtdsl_median_s": statistics.median(r["work"] for r in ours),
        "peer_s": t_peer, "peer_load_tf2onnx_s": min(p["work"] for p in peer), "peer_onnx_parse_s": min(q["work"] for q in parse),
        "ratio": t_peer / t_ours, "trtdsl_with_imports_s": t_ours_imp, "peer_with_imports_s": t_peer_imp,
        "ratio_with_imports": t_peer_imp / t_ours_imp, "trtdsl_build_plan_s": ours[0]["build"],
        "trtdsl_peak_rss_mb": max(r["rss_mb"] for r in ours), "trtdsl_peak_rss_with_build_mb": ours[0]["rss_build_mb"],
        "peer_peak_rss_mb": max(p["rss_mb"] for p in peer), "onnx_parse_peak_rss_mb": max(q["rss_mb"] for q in parse),
        "trtdsl_layers": ours[0]["layers"], "onnx_parser_layers": parse[0]["layers"],
    }  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"ResNet50 .h5 -> TensorRT network definition ({args.rounds} alternating rounds, minimum):")
    print(f"  trtdsl.keras.load_model            {t_ours:7.2f} s   ({result['trtdsl_layers']} layers)")
    print(f"  tf_keras + tf2onnx + ONNX parser   {t_peer:7.2f} s   (load+convert {result['peer_load_tf2onnx_s']:.2f} s, "
          f"parse {result['peer_onnx_parse_s']:.2f} s; {result['onnx_parser_layers']} layers)")  # fmt: skip
    print(f"  ratio                              {result['ratio']:7.1f}x")
    print(
        f"  with imports: trtdsl {t_ours_imp:.2f} s, peer {t_peer_imp:.2f} s, ratio {result['ratio_with_imports']:.1f}x"
    )
    print(f"  trtdsl to a built plan (tensorrt_rtx, CPU): +{result['trtdsl_build_plan_s']:.1f} s")
    print(f"  peak RSS: trtdsl {result['trtdsl_peak_rss_mb']:.0f} MB (with the build "
          f"{result['trtdsl_peak_rss_with_build_mb']:.0f} MB), peer {result['peer_peak_rss_mb']:.0f} MB "
          f"(+ ONNX parse process {result['onnx_parse_peak_rss_mb']:.0f} MB)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
