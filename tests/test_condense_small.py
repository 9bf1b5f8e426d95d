"""Condensation on small images: the matching network fits the image size, and no method ends
below the real images it started from (8x8, 16x16 and 28x28 real digits)."""

from __future__ import annotations

import math

import pytest
import torch

import simplebits as sb
from simplebits.condense import condense, fit_network, list_methods, make_config, starting_set
from simplebits.data import resize
from simplebits.models.convnet import fit_depth

from conftest import make_blobs


@pytest.mark.parametrize("size, depth", [(4, 1), (7, 1), (8, 2), (12, 2), (15, 2), (16, 3), ((16, 40), 3),
                                         (28, 3), (32, 3), (64, 3)])
def test_fit_depth_keeps_every_norm_on_4x4_or_more(size, depth):
    assert fit_depth(size, 3) == depth
    assert fit_depth(size, 2) == min(depth, 2)  # never deeper than asked


def test_fit_network_only_touches_small_default_convnets():
    cfg = make_config("dc", ipc=1)
    assert fit_network(cfg, (28, 28)) is cfg  # 28x28 / 32x32 runs: same config, same digest as before
    assert fit_network(cfg, (32, 32)) is cfg
    small = fit_network(cfg, (8, 8))
    assert small.net_options == {"depth": 2} and small.digest() != cfg.digest()
    explicit = make_config("dc", ipc=1, net_options={"depth": 3})
    assert fit_network(explicit, (8, 8)) is explicit  # the user's depth is respected
    other_norm = make_config("dc", ipc=1, net_options={"norm": "none"})
    assert fit_network(other_norm, (8, 8)) is other_norm


def test_condense_records_the_fitted_network():
    ds = make_blobs(8, 2, (1, 8, 8))
    res = condense(ds, method="dm", ipc=1, iterations=2, compile=False)
    assert res.config.net_options == {"depth": 2}
    assert res.to_dict()["config"]["net_options"] == {"depth": 2}


def test_condense_reports_bpd_in_both_units(tmp_path, capsys):
    """8x8 images are 94% padding under gray32: the set's bpd comes with the same bits per dimension
    of the images as given (16x), in the text with a note, the JSON and the file's metadata."""
    import json

    import numpy as np

    from simplebits.cli.main import main
    ds = make_blobs(8, 2, (1, 8, 8))
    np.savez(tmp_path / "d.npz", images=(ds.images.numpy() * 255).astype(np.uint8), labels=ds.labels.numpy())
    out = tmp_path / "c.safetensors"
    args = ["condense", str(tmp_path / "d.npz"), "--method", "dm", "--ipc", "1", "--iterations", "1", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "native bpd" in text and "94% of the model's input is padding" in text
    assert main([*args, "--force", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bpd_native"] == pytest.approx(16 * doc["bpd"]) and doc["units"]["native_dims"] == 64
    from simplebits.io import load_tensors

    assert load_tensors(out)[1]["bpd_native"] == pytest.approx(doc["bpd_native"])  # the file's JSON metadata
    # images of the model's own size: one unit
    res = condense(make_blobs(4, 2, (1, 32, 32)), method="dm", ipc=1, iterations=1, compile=False)
    assert res.bpd_native == pytest.approx(res.bpd) and res.units["note"] is None


# ---------------------------------------------------------------------------------------------
# never below the start, on real digits of three sizes


def _subset(ds: sb.ImageSet, per_class: int) -> sb.ImageSet:
    idx = torch.cat([torch.nonzero(ds.labels == c).flatten()[:per_class] for c in range(ds.num_classes)])
    return ds.subset(idx)


@pytest.fixture(scope="module")
def sizes() -> dict[str, tuple[sb.ImageSet, sb.ImageSet]]:
    digits = (sb.load_dataset("digits", split="train"), sb.load_dataset("digits", split="test"))
    mtrain = _subset(sb.load_dataset("mnist-5k", split="train"), 60)
    mtest = _subset(sb.load_dataset("mnist-5k", split="test"), 40)
    small = (resize(mtrain, 16, mode="bilinear"), resize(mtest, 16, mode="bilinear"))
    return {"8x8": digits, "16x16": small, "28x28": (mtrain, mtest)}


ITERATIONS = {"dc": 5, "dsa": 5, "dm": 20, "idc": 1}  # a method not named here: 5
# dream re-clusters its real batches with k-means at every update, the slowest method on a CPU; its
# matching is idc's, checked here
NOT_CHECKED = {"dream"}
PROTOCOL = sb.get_protocol("quick").with_overrides(name="quick-80", max_steps=80)
SEEDS = 3
_STARTS: dict[tuple, tuple[float, float]] = {}  # dc, dsa and dm start from the same real images


def _acc(ds: sb.ImageSet, test: sb.ImageSet) -> tuple[float, float]:
    r = sb.evaluate(ds, test, protocol=PROTOCOL, seeds=SEEDS, progress=False)
    return 100 * r.mean, 100 * r.std


def _start(size: str, train: sb.ImageSet, test: sb.ImageSet, cfg) -> tuple[float, float]:
    key = (size, cfg.init, cfg.factor, cfg.seed)
    if key not in _STARTS:
        _STARTS[key] = _acc(starting_set(train, cfg), test)
    return _STARTS[key]


def _below_start(result: tuple[float, float], start: tuple[float, float]) -> float:
    """Points the result ends below its start beyond noise (<= 0: not below)."""
    noise = max(3.0, 2.0 * math.sqrt((result[1] ** 2 + start[1] ** 2) / SEEDS))
    return start[0] - result[0] - noise


@pytest.mark.slow
@pytest.mark.parametrize("size", ["8x8", "16x16", "28x28"])
@pytest.mark.parametrize("method", [m for m in list_methods() if m not in NOT_CHECKED])
def test_condensation_never_ends_below_its_start(sizes, size, method):
    train, test = sizes[size]
    cfg = make_config(method, ipc=1, iterations=ITERATIONS.get(method, 5), compile=False,
                      outer_loop=3 if method == "idc" else None)
    start = _start(size, train, test, cfg)
    res = condense(train, cfg, progress=False)
    result = _acc(res.images, test)
    assert _below_start(result, start) <= 0, f"{method} {size}: {result[0]:.1f}% vs start {start[0]:.1f}%"


@pytest.mark.slow
def test_the_check_catches_the_old_depth3_wreck(sizes):
    # before the small-image rule every run matched with ConvNet-3; on 8x8 digits dc then ended far
    # below its start (13% vs 63%). The check above must see that, or it checks nothing.
    train, test = sizes["8x8"]
    cfg = make_config("dc", ipc=1, iterations=ITERATIONS["dc"], compile=False, net_options={"depth": 3})
    start = _start("8x8", train, test, cfg)
    result = _acc(condense(train, cfg, progress=False).images, test)
    assert _below_start(result, start) > 10
