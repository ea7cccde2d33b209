"""Weight-use reports: which weights a network left unused, grouped by layer, and layout hints."""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import did_you_mean


def _ignored(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


_DIGITS = re.compile(r"\d+")


def _parent(name: str) -> str:
    return re.split(r"[./][^./]*$", name)[0] if re.search(r"[./]", name) else ""


def _unused_report(left: list[str], used: list[str], missed: list[str]) -> str:
    """'layer4.1 (2: conv1.weight, bn1.bias), fc (2: weight, bias)' plus near matches."""
    groups: dict[str, list[str]] = {}
    for n in left:
        groups.setdefault(_parent(n), []).append(n)
    parts = []
    for parent, names in list(groups.items())[:12]:
        rel = [n[len(parent) + 1 :] if parent else n for n in names]
        shown = ", ".join(rel[:6]) + (", ..." if len(rel) > 6 else "")
        parts.append(f"{parent} ({len(names)}: {shown})" if parent else shown)
    text = "; ".join(parts) + (f"; ... ({len(groups) - 12} more groups)" if len(groups) > 12 else "") + "."
    near = []
    for n in left:
        # Names the network asked for and did not find are the likeliest intended ones.
        # A used name that differs only in numbers is a sibling block (layer1.0 / layer1.1), not a typo.
        close = (
            difflib.get_close_matches(n, missed, n=1, cutoff=0.75)
            or [
                m
                for m in difflib.get_close_matches(n, used, n=3, cutoff=0.85)
                if _DIGITS.sub("#", m) != _DIGITS.sub("#", n)
            ][:1]
        )
        if close:
            verb = "was looked for and is missing" if close[0] in missed else "was used"
            near.append(f"{n!r} is close to {close[0]!r}, which {verb}")
        if len(near) == 5:
            break
    if near:
        text += " Near matches: " + "; ".join(near) + "."
    return text


def _fmt_shape(shape: Sequence[int | None] | None) -> str:
    items = ["?" if s is None or s == -1 else str(s) for s in shape or ()]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _siblings(prefix: str, names: Mapping[str, str]) -> str:
    """When no key is close, list what exists under the block's prefix."""
    under = [k for k in names if k.startswith(prefix)] if prefix else []
    if not under:
        return ""
    shown = ", ".join(repr(k) for k in under[:6])
    return f" Keys under {prefix[:-1]!r}: {shown}{', ...' if len(under) > 6 else ''}."


def _suggest(name: str, names: Mapping[str, str]) -> str:
    """Near matches, preferring weights of the same layer: 'conv1.kernel' for 'conv1.weight'."""
    parent = re.split(r"[./][^./]*$", name)[0]
    siblings = [n for n in names if n != parent and re.split(r"[./][^./]*$", n)[0] == parent]
    if siblings and parent != name:
        close = difflib.get_close_matches(name, siblings, n=3, cutoff=0.0)
        return " Did you mean " + " or ".join(repr(m) for m in close) + "?"
    return did_you_mean(name, names)


def layout_hint(got: tuple[int, ...], want: tuple[int, ...]) -> str:
    """A sentence naming the layout helper when ``got`` is a known transposition of ``want``."""
    if len(got) == len(want) >= 3 and -1 not in want:
        if got == (*want[2:], want[1], want[0]):
            return (
                " It looks like a Keras HWIO kernel (spatial..., in, out); use trtdsl.weights.layout.keras_conv(kernel)"
                " (or keras_conv_transpose for a Conv2DTranspose kernel)."
            )
        if want[1] == 1 and got[:-2] == want[2:] and got[-2] * got[-1] == want[0]:
            return " It looks like a Keras depthwise kernel (spatial..., C, M); use trtdsl.weights.layout.keras_depthwise(kernel)."
    if len(got) == len(want) == 2 and got == want[::-1]:
        return " It looks like a Keras Dense kernel (in, out); use trtdsl.weights.layout.keras_dense(kernel)."
    if -1 not in want and int(np.prod(got)) == int(np.prod(want)):
        if sorted(got) == sorted(want):
            return " Same sizes in another order: a transposed layout? See trtdsl.weights.layout."
        return " Same number of elements: reshape it if the layout is right."
    return ""
