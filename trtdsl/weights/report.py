"""Weight-use reports: which weights a network left unused, grouped by layer, and layout hints.

:class:`ReportMixin` gives :class:`~trtdsl.weights.WeightStore` its use check
(``unused``, ``check_all_used``, ``finish``) and its summary (``nbytes``,
``summary``, ``repr``); the functions below word the messages.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import WeightError, did_you_mean

log = logging.getLogger("trtdsl.weights")

# Known non-parameters a checkpoint carries beside its weights: torch's BatchNorm step
# counter (read by no inference network). fnmatch patterns over a view's names.
DEFAULT_IGNORE: tuple[str, ...] = ("num_batches_tracked", "*.num_batches_tracked", "*/num_batches_tracked")


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


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


class _BlockLabel:
    """How messages name a block's view: ``conv_bn_act 'layer1.0.conv1' (in residual_block 'layer1.0')``."""

    __slots__ = ("kind", "parent", "prefix")

    def __init__(self, kind: str, prefix: str, parent: _BlockLabel | None):
        self.kind, self.prefix, self.parent = kind, prefix, parent

    @property
    def own(self) -> str:
        return f"{self.kind} {self.prefix!r}" if self.prefix else self.kind

    @property
    def label(self) -> str:
        return f"{self.own} (in {self.parent.own})" if self.parent is not None else self.own


class ReportMixin:
    """The use check and summary of :class:`~trtdsl.weights.WeightStore` (see the module)."""

    # Set by WeightStore.__init__ (or block()); _names, _label and __len__ are WeightStore's.
    _src: Any
    _block: _BlockLabel | None
    strict: bool
    _names: dict[str, str]

    def unused(self, ignore: Sequence[str] = ()) -> list[str]:
        """Names in this view that no read has used, leaving out ``DEFAULT_IGNORE`` and ``ignore`` (fnmatch)."""
        patterns = (*DEFAULT_IGNORE, *ignore)
        used = self._src.used
        return [n for n, k in self._names.items() if k not in used and not _ignored(n, patterns)]

    def check_all_used(self, what: str = "the build", *, ignore: Sequence[str] = ()) -> None:
        """Raise :class:`WeightError` naming every weight of this view no read used, grouped by prefix.

        ``ignore``: fnmatch patterns of weights the network is not meant to read
        (``["aux_logits.*"]``); ``num_batches_tracked`` counters are always skipped.

        Example::

            w.check_all_used(ignore=["fc.*"])  # a headless backbone
        """
        left = self.unused(ignore)
        if left:
            used = [n for n, k in self._names.items() if k in self._src.used]
            raise WeightError(
                f"{len(left)} of {len(self)} weights in {self._label()} were not used by {what}: "
                + _unused_report(left, used, sorted(self._src.missed))
                + " Read each with w[name] or w.take(name), or pass ignore=['pattern.*'] for weights not meant to be used."
            )

    def finish(self, what: str = "the build", *, ignore: Sequence[str] = ()) -> None:
        """The hook a build calls when its last layer is added: an error for leftovers in strict mode, a log line otherwise."""
        if self.strict:
            self.check_all_used(what, ignore=ignore)
        elif self.unused(ignore):
            log.info("%d weights in %s were not used by %s", len(self.unused(ignore)), self._label(), what)

    # ------------------------------------------------------------- summary
    def _by_dtype(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for k in self._names.values():
            e = self._src.entries[k]
            n, b = out.get(e.dtype.name, (0, 0))
            out[e.dtype.name] = (n + 1, b + e.nbytes)
        return out

    @property
    def nbytes(self) -> int:
        """Total bytes of every weight in this view, from metadata only."""
        return sum(self._src.entries[k].nbytes for k in self._names.values())

    def summary(self, names: bool = False) -> str:
        """Counts, bytes and dtypes, optionally one line per weight (shape, dtype, used)."""
        lines = [f"{self._label()} ({self._src.fmt}): {len(self)} weights, {_fmt_bytes(self.nbytes)}"]
        for dt, (n, b) in sorted(self._by_dtype().items()):
            lines.append(f"  {dt:>9}: {n:6d} weights {_fmt_bytes(b):>10}")
        used = sum(1 for k in self._names.values() if k in self._src.used)
        lines.append(f"  used: {used} of {len(self)}")
        if names:
            width = max((len(n) for n in self._names), default=0)
            for n, k in self._names.items():
                e = self._src.entries[k]
                mark = "*" if k in self._src.used else " "
                lines.append(f"  {mark} {n:<{width}}  {e.dtype.name:>8}  {e.shape}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        dts = ", ".join(f"{dt}x{n}" for dt, (n, _) in sorted(self._by_dtype().items()))
        label = self._block.label if self._block else self._label()
        return f"WeightStore({label!r}, {len(self)} weights, {_fmt_bytes(self.nbytes)}, {dts or 'empty'})"
