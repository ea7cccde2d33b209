"""Dynamic dimensions and optimization profiles.

A dynamic dimension has a name and a (min, opt, max) range per profile. An
input shape is a tuple of ints and dimension names, so a dim shared by several
inputs is one name and always agrees. Every check here runs before TensorRT's
own, so the errors name the input and the dimension instead of a layer index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .errors import ProfileError, did_you_mean

Range = tuple[int, int, int]


@dataclass(frozen=True)
class Dim:
    """A named dynamic dimension, e.g. ``Dim("batch", 1, 8, 32)``."""

    name: str
    min: int | None = None
    opt: int | None = None
    max: int | None = None

    @property
    def range(self) -> Range | None:
        if self.min is None and self.opt is None and self.max is None:
            return None
        return check_range(self.name, (self.min, self.opt, self.max))


def check_range(dim: str, rng: Sequence[int | None]) -> Range:
    """Validate a (min, opt, max) triple; opt defaults to max when omitted."""
    if len(rng) == 2:
        rng = (rng[0], rng[1], rng[1])
    if len(rng) != 3:
        raise ProfileError(f"dim {dim!r}: range must be (min, opt, max), got {tuple(rng)}")
    lo, opt, hi = rng
    if opt is None:
        opt = hi
    if lo is None or hi is None:
        raise ProfileError(f"dim {dim!r}: range {tuple(rng)} needs both min and max")
    for v in (lo, opt, hi):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ProfileError(f"dim {dim!r}: range values must be non-negative ints, got {tuple(rng)}")
    if not lo <= opt <= hi:
        raise ProfileError(f"dim {dim!r}: range must satisfy min <= opt <= max, got min={lo} opt={opt} max={hi}")
    return (lo, opt, hi)


@dataclass
class Profile:
    """One optimization profile: a (min, opt, max) range for every dynamic dim."""

    ranges: dict[str, Range] = field(default_factory=dict)

    def shapes(self, shape: Sequence[int | str]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) concrete shapes of an input whose shape mixes ints and dim names."""
        out = []
        for i in range(3):
            out.append(tuple(d if isinstance(d, int) else self.ranges[d][i] for d in shape))
        return out[0], out[1], out[2]

    def admits(self, bindings: Mapping[str, int]) -> str | None:
        """None if every bound dim is in range, else a sentence naming the first that is not."""
        for dim, value in bindings.items():
            lo, _, hi = self.ranges[dim]
            if not lo <= value <= hi:
                return f"dim {dim!r} = {value} is outside {lo}..{hi}"
        return None


def bind_dims(specs: Mapping[str, Sequence[int | str]], shapes: Mapping[str, Sequence[int]]) -> dict[str, int]:
    """Match concrete input shapes against their declared shapes.

    Returns the value of every named dim, and raises ProfileError when an input
    is missing or extra, has the wrong rank, a fixed dim differs, or one dim name
    takes two values across inputs.
    """
    missing = [n for n in specs if n not in shapes]
    if missing:
        raise ProfileError(f"no shape given for input(s) {missing}; inputs are {list(specs)}")
    for n in shapes:
        if n not in specs:
            raise ProfileError(f"unknown input {n!r}; inputs are {list(specs)}.{did_you_mean(n, specs)}")
    values: dict[str, int] = {}
    where: dict[str, str] = {}
    for name, spec in specs.items():
        shape = tuple(int(s) for s in shapes[name])
        if len(shape) != len(spec):
            raise ProfileError(f"input {name!r}: expected rank {len(spec)} shape {_fmt(spec)}, got {shape}")
        for axis, (want, got) in enumerate(zip(spec, shape)):
            if isinstance(want, int):
                if want != got:
                    raise ProfileError(
                        f"input {name!r}: axis {axis} is fixed at {want}, got {got} (shape {shape}, expected {_fmt(spec)})"
                    )
            elif want in values and values[want] != got:
                raise ProfileError(
                    f"dim {want!r} must agree across inputs: {where[want]} has {values[want]}, "
                    f"input {name!r} axis {axis} has {got}"
                )
            else:
                values[want] = got
                where[want] = f"input {name!r} axis {axis}"
    return values


def select_profile(
    profiles: Sequence[Profile], specs: Mapping[str, Sequence[int | str]], shapes: Mapping[str, Sequence[int]]
) -> int:
    """Index of the first profile that admits ``shapes``; ProfileError naming the dims otherwise."""
    bindings = bind_dims(specs, shapes)
    if not bindings:
        return 0
    reasons = []
    for i, profile in enumerate(profiles):
        why = profile.admits(bindings)
        if why is None:
            return i
        reasons.append(f"profile {i}: {why}")
    got = ", ".join(f"{n} {tuple(shapes[n])}" for n in specs)
    raise ProfileError(f"shapes {got} are outside every profile: " + "; ".join(reasons))


def _fmt(spec: Sequence[int | str]) -> str:
    return "(" + ", ".join(str(d) for d in spec) + ")"


class DimsMixin:
    """The named dims and optimization profiles of :class:`trtdsl.Network` (``net.dim``, ``net.add_profile``)."""

    # Set by Network.__init__.
    dims: dict[str, Dim]
    input_specs: dict[str, tuple[int | str, ...]]
    _extra_profiles: list[dict[str, Range]]

    def dim(self, name: str, min: int | None = None, opt: int | None = None, max: int | None = None) -> Dim:
        """Declare a named dynamic dimension with its range in the first profile."""
        d = Dim(name, min, opt, max)
        if d.range is not None:
            check_range(name, (min, opt, max))
        if name in self.dims and self.dims[name].range not in (None, d.range) and d.range is not None:
            raise ProfileError(f"dim {name!r} is already declared with range {self.dims[name].range}, not {d.range}")
        if name not in self.dims or d.range is not None:
            self.dims[name] = d
        return self.dims[name]

    def add_profile(self, ranges: Mapping[str, Sequence[int]] | None = None, **kw: Sequence[int]) -> int:
        """Add another optimization profile; dims left out keep their first-profile range."""
        ranges = {**(ranges or {}), **kw}
        for dim, rng in ranges.items():
            if dim not in self.dims:
                raise ProfileError(
                    f"profile names unknown dim {dim!r}; declared dims: {list(self.dims)}.{did_you_mean(dim, self.dims)}"
                )
            ranges[dim] = check_range(dim, tuple(rng))
        self._extra_profiles.append(dict(ranges))
        return len(self._extra_profiles)

    def profiles(self) -> list[Profile]:
        """The optimization profiles, validated: every dynamic dim used by an input has a range."""
        used = {d for spec in self.input_specs.values() for d in spec if isinstance(d, str)}
        first: dict[str, tuple[int, int, int]] = {}
        for dim in sorted(used):
            rng = self.dims[dim].range
            if rng is None:
                users = [n for n, s in self.input_specs.items() if dim in s]
                raise ProfileError(
                    f"dim {dim!r} (used by input {users[0]!r}) has no range; declare one with "
                    f"net.dim({dim!r}, min, opt, max)"
                )
            first[dim] = rng
        return [Profile(first)] + [Profile({**first, **extra}) for extra in self._extra_profiles]
