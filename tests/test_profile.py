"""Named dynamic dims, optimization profiles, and the checks that run before TensorRT's."""

from __future__ import annotations

import pytest

import trtdsl
from trtdsl import ProfileError
from trtdsl.profile import Profile, bind_dims, check_range, select_profile


def test_range_defaults_opt_to_max():
    assert check_range("batch", (1, None, 8)) == (1, 8, 8)
    assert check_range("batch", (1, 8)) == (1, 8, 8)


@pytest.mark.parametrize(
    "rng,match",
    [
        ((4, 2, 8), r"dim 'batch': range must satisfy min <= opt <= max, got min=4 opt=2 max=8"),
        ((1, 9, 8), r"min=1 opt=9 max=8"),
        ((None, 2, 8), r"needs both min and max"),
        ((-1, 2, 8), r"non-negative ints"),
        ((1, 2, 3, 4), r"range must be \(min, opt, max\)"),
    ],
)
def test_bad_ranges(rng, match):
    with pytest.raises(ProfileError, match=match):
        check_range("batch", rng)


SPECS = {"images": ("batch", 3, "h", "w"), "mask": ("batch", "h", "w")}


def test_bind_dims_agrees_across_inputs():
    assert bind_dims(SPECS, {"images": (2, 3, 8, 9), "mask": (2, 8, 9)}) == {"batch": 2, "h": 8, "w": 9}


def test_shared_dim_must_agree():
    with pytest.raises(
        ProfileError,
        match=r"dim 'batch' must agree across inputs: input 'images' axis 0 has 2, input 'mask' axis 0 has 3",
    ):
        bind_dims(SPECS, {"images": (2, 3, 8, 9), "mask": (3, 8, 9)})


def test_fixed_dim_and_rank_and_names():
    with pytest.raises(ProfileError, match=r"input 'images': axis 1 is fixed at 3, got 4"):
        bind_dims(SPECS, {"images": (2, 4, 8, 9), "mask": (2, 8, 9)})
    with pytest.raises(ProfileError, match=r"input 'mask': expected rank 3 shape \(batch, h, w\), got \(2, 8\)"):
        bind_dims(SPECS, {"images": (2, 3, 8, 9), "mask": (2, 8)})
    with pytest.raises(ProfileError, match=r"unknown input 'imgs'.*Did you mean 'images'"):
        bind_dims(SPECS, {"images": (2, 3, 8, 9), "mask": (2, 8, 9), "imgs": (1,)})
    with pytest.raises(ProfileError, match=r"no shape given for input\(s\) \['mask'\]"):
        bind_dims(SPECS, {"images": (2, 3, 8, 9)})


def test_select_profile_picks_first_admitting_and_explains_misses():
    profiles = [Profile({"batch": (1, 1, 4)}), Profile({"batch": (8, 16, 32)})]
    specs = {"x": ("batch", 3)}
    assert select_profile(profiles, specs, {"x": (3, 3)}) == 0
    assert select_profile(profiles, specs, {"x": (20, 3)}) == 1
    with pytest.raises(
        ProfileError,
        match=r"outside every profile: profile 0: dim 'batch' = 64 is outside 1..4; profile 1: dim 'batch' = 64 is outside 8..32",
    ):
        select_profile(profiles, specs, {"x": (64, 3)})


def test_network_profiles(trt):
    net = trtdsl.Network("p")
    batch = net.dim("batch", 1, 8, 32)
    net.input("a", "float32", (batch, 4))
    net.input("b", "float32", ("batch", "seq"))
    with pytest.raises(
        ProfileError,
        match=r"dim 'seq' \(used by input 'b'\) has no range; declare one with net.dim\('seq', min, opt, max\)",
    ):
        net.profiles()
    net.dim("seq", 1, 64, 128)
    net.add_profile(batch=(64, 64, 64))
    ps = net.profiles()
    assert [p.ranges for p in ps] == [
        {"batch": (1, 8, 32), "seq": (1, 64, 128)},
        {"batch": (64, 64, 64), "seq": (1, 64, 128)},
    ]
    assert ps[1].shapes(("batch", "seq")) == ((64, 1), (64, 64), (64, 128))
    with pytest.raises(ProfileError, match=r"profile names unknown dim 'bacth'.*Did you mean 'batch'"):
        net.add_profile(bacth=(1, 2, 3))
    with pytest.raises(ProfileError, match=r"already declared with range \(1, 8, 32\), not \(1, 2, 3\)"):
        net.dim("batch", 1, 2, 3)
