"""``trtdsl demo``: the main job, examples/main.py of a source checkout.

The demo needs the repository's weights/ and examples/ (trained weights, the
hand-written network, real digits), which a wheel does not ship; from a
checkout installed with ``pip install -e .`` it runs directly.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

from .errors import TrtdslError

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "main.py"


def cmd_demo(args: Any) -> int:
    if not SCRIPT.is_file():
        raise TrtdslError(
            f"trtdsl demo runs {SCRIPT} from a source checkout, which this installation lacks; "
            "clone the repository and install it with pip install -e '.[rtx]'"
        )
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise TrtdslError(f"--out {args.out!r} is not a folder")
    argv = ["--out", args.out, *(["--no-progress"] if args.no_progress else [])]
    argv += ["--models", *args.models] if args.models else []
    argv += ["--precisions", *args.precisions] if args.precisions else []
    main = runpy.run_path(str(SCRIPT), run_name="__trtdsl_demo__")["main"]
    return int(main(argv))


def _add_demo(p: Any) -> None:
    # The choices are the script's; repeated here so that bad input fails before any work.
    p.add_argument("--out", default="out", help="folder for plans, calibration caches, reports and golden outputs")
    p.add_argument("--models", nargs="+", choices=["digits_cnn", "keras"], help="default: both")
    p.add_argument("--precisions", nargs="+", choices=["fp32", "fp16", "int8", "fp8"], help="default: all four")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _register() -> None:
    from .cli import register

    register(
        "demo", "the main job: two digits models x FP32/FP16/INT8/FP8, built, run and checked", _add_demo, cmd_demo
    )


_register()
