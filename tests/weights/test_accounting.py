"""Which reads count as uses of a weight, and how unused weights are reported (WeightStore + build)."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import WeightError
from trtdsl import weights as W
from trtdsl.weights.store import DEFAULT_IGNORE, WeightStore, as_store


@pytest.fixture
def store(tmp_path):
    data = {
        "conv1.weight": np.ones((4, 3, 3, 3), np.float32),
        "bn1.weight": np.ones(4, np.float32),
        "bn1.num_batches_tracked": np.array(7, np.int64),
        "fc.weight": np.ones((2, 4), np.float32),
        "fc.bias": np.zeros(2, np.float32),
    }
    np.savez(tmp_path / "m.npz", **data)
    return W.load(tmp_path / "m.npz")


@pytest.mark.parametrize(
    "read",
    [
        lambda w: w["fc.weight"],
        lambda w: w.get("fc.weight"),
        lambda w: w.take("fc.weight"),
        lambda w: w.take("fc.weight", shape=(2, None)),
        lambda w: w.scope("fc")["weight"],
        lambda w: w.block("fc", "linear").take("weight"),
        lambda w: w.block("fc", "linear").optional("weight"),
    ],
    ids=["getitem", "get", "take", "take-shape", "scope-getitem", "block-take", "block-optional"],
)
def test_explicit_reads_by_name_count(store, read):
    read(store)
    assert "fc.weight" not in store.unused()


@pytest.mark.parametrize(
    "bulk",
    [
        list,
        lambda w: list(w.keys()),
        lambda w: list(w.items()),
        lambda w: list(w.values()),
        dict,
        lambda w: {**w},
        lambda w: {k: w[k] for k in w},
        lambda w: [w.shape(k) for k in w],
        lambda w: ["fc.weight" in w, len(w), w.nbytes, repr(w), w.summary(names=True)],
        lambda w: dict(w.scope("fc")),
    ],
    ids=["iter", "keys", "items", "values", "dict", "unpack", "comprehension", "shapes", "metadata", "scope-dict"],
)
def test_listing_or_copying_the_store_marks_nothing(store, bulk):
    bulk(store)
    assert len(store.unused()) == 4  # everything but the ignored counter
    with pytest.raises(WeightError, match=r"4 of 5 weights in m\.npz were not used"):
        store.check_all_used()


def test_bulk_copies_still_hold_the_arrays(store):
    copy = dict(store)
    np.testing.assert_array_equal(copy["fc.weight"], np.ones((2, 4)))
    assert sorted(copy) == sorted(store)


def test_num_batches_tracked_is_skipped_by_default_and_ignore_takes_patterns(store):
    assert "bn1.num_batches_tracked" not in store.unused()
    assert "*.num_batches_tracked" in DEFAULT_IGNORE
    store["conv1.weight"], store["bn1.weight"]
    with pytest.raises(WeightError, match=r"2 of 5 weights .*: fc \(2: weight, bias\)\."):
        store.check_all_used()
    store.check_all_used(ignore=["fc.*"])
    assert store.unused(ignore=["fc.w*"]) == ["fc.bias"]


def test_unused_report_groups_by_prefix_and_names_near_matches(tmp_path):
    names = {f"layer{i}.{j}.conv.weight": np.ones(2, np.float32) for i in (1, 2) for j in range(3)}
    names |= {"head.fc.wieght": np.ones(2, np.float32), "head.fc.bias": np.ones(2, np.float32)}
    w = as_store(names, "model")
    net_reads = [w.block(f"layer{i}.{j}", "block") for i in (1, 2) for j in range(2)]
    for b in net_reads:
        b.take("conv.weight")
    head = w.block("head.fc", "linear")
    assert head.optional("weight") is None  # the network looked for it: the typo is in the file
    head.take("bias")
    with pytest.raises(WeightError) as info:
        w.check_all_used("network 'm'")
    msg = str(info.value)
    assert msg.startswith("3 of 8 weights in model were not used by network 'm': layer1.2.conv (1: weight); ")
    assert "layer2.2.conv (1: weight); head.fc (1: wieght)." in msg
    assert "Near matches: 'head.fc.wieght' is close to 'head.fc.weight', which was looked for and is missing" in msg
    assert "layer1.1" not in msg.split("Near matches")[1], "sibling blocks are not near matches"
    assert "ignore=['pattern.*']" in msg


def test_a_plain_dict_becomes_an_in_memory_store_without_copies():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    w = as_store({"a": a}, "mine")
    assert isinstance(w, WeightStore) and w.format == "in-memory" and as_store(w) is w
    got = w.take("a", (2, 3))
    assert np.shares_memory(got, a) and not got.flags.writeable and a.flags.writeable
    with pytest.raises(WeightError, match=r"no weight 'b' in mine \(1 keys\)"):
        w["b"]
    with pytest.raises(WeightError, match=r"mine: weight names must be strings, got 3 \(int\)"):
        as_store({3: a}, "mine")
    with pytest.raises(WeightError, match=r"weight 'o' is not a numeric array \(dtype object\)"):
        as_store({"o": np.array([None], dtype=object)})
    with pytest.raises(WeightError, match=r"weights must be a WeightStore or a mapping .* got list"):
        as_store([a])
    assert w.get("missing") is None and w.get("missing", 5) == 5


def test_block_views_name_the_block_and_the_full_key():
    w = as_store({"enc.0.attn.in_proj_weight": np.ones((6, 2), np.float32)})
    outer = w.block("enc.0", "transformer_encoder_layer")
    inner = outer.block("attn", "multi_head_attention")
    with pytest.raises(WeightError, match=r"^multi_head_attention 'enc\.0\.attn' \(in transformer_encoder_layer "
                       r"'enc\.0'\): missing weight 'enc\.0\.attn\.out_proj\.weight' \(expected shape \(2, 2\)\)"):  # fmt: skip
        inner.take("out_proj.weight", (2, 2))
    with pytest.raises(trtdsl.ShapeError, match=r"weight 'enc\.0\.attn\.in_proj_weight' has shape \(6, 2\), "
                       r"expected \(6, 3\)"):  # fmt: skip
        inner.take("in_proj_weight", (6, 3))
    assert repr(inner).startswith("WeightStore(\"multi_head_attention 'enc.0.attn' (in transformer_encoder_layer")


def test_build_checks_weights_before_building_and_takes_ignore(tmp_path):
    w = as_store({"used": np.ones((1, 4), np.float32), "aux.head": np.ones(3, np.float32)}, "ckpt")
    net = trtdsl.Network("n")
    x = net.input("x", "float32", (1, 4))
    net.output(x + w["used"], "y")  # the README idiom: w[key] counts
    with pytest.raises(WeightError, match=r"1 of 2 weights in ckpt were not used by network 'n': aux \(1: head\)"):
        trtdsl.build(net, weights=w, progress=False)
    plan = trtdsl.build(net, weights=w, ignore_weights=["aux.*"], progress=False)
    assert plan.outputs["y"].shape == (1, 4)


def test_torchvision_resnet18_checkpoint_passes_the_strict_check_and_matches_torch(tmp_path):
    """A real torch.save state_dict (BatchNorm num_batches_tracked included), loaded with trtdsl.weights.load."""
    torch = pytest.importorskip("torch")
    tvm = pytest.importorskip("torchvision.models")
    from trtdsl import models, reference

    from ..layers._torch_util import close, randomize

    torch.manual_seed(0)
    model = randomize(tvm.resnet18(num_classes=10))
    torch.save(model.state_dict(), tmp_path / "resnet18.pth")
    w = W.load(tmp_path / "resnet18.pth")
    assert sum(k.endswith("num_batches_tracked") for k in w) == 20  # what used to fail the strict check
    net = trtdsl.Network("resnet18")
    x = net.input("images", "float32", (1, 3, 64, 64))
    net.output(models.resnet18(net, x, w), "logits")
    w.check_all_used()
    xv = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(xv))
    close(reference.run(net, {"images": xv})["logits"], want, rtol=1e-4, atol=1e-4)
    # ... and under build()'s strict check; an extra, unread tensor in the checkpoint is named.
    sd = model.state_dict() | {"fc.extra": torch.ones(3)}
    torch.save(sd, tmp_path / "extra.pth")
    w2 = W.load(tmp_path / "extra.pth")
    net2 = trtdsl.Network("resnet18")
    net2.output(models.resnet18(net2, net2.input("images", "float32", (1, 3, 64, 64)), w2), "logits")
    with pytest.raises(WeightError, match=r"1 of 123 weights in extra\.pth were not used by network 'resnet18': "
                       r"fc \(1: extra\)"):  # fmt: skip
        trtdsl.build(net2, weights=w2, progress=False)
