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
    main = runpy.run_path(str(SCRIPT), run_name="__trtdsl_demo__")["main"]
    return int(main(args.argv))


def add_demo_parser(sub: Any) -> None:
    """Register ``demo``; its options (--out, --models, --precisions) are parsed by the script."""
    import argparse

    p = sub.add_parser(
        "demo", help="the main job: two digits models x FP32/FP16/INT8/FP8, built and checked", add_help=False
    )
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_demo)
