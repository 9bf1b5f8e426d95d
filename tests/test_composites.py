"""Distractor data sets (SimpleBits §3.1) on tiny Fashion-MNIST / MNIST / CIFAR-10 files made here."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from simplebits.data import (
    clean_mnist,
    flip_allowed,
    interpolated,
    list_sources,
    load_dataset,
    mnist_base,
    mnist_noise,
    side_by_side,
    side_by_side_parts,
    stripes,
)
from simplebits.data.cifar import write_cifar_batch, write_cifar_meta
from simplebits.data.idx import write_idx
from simplebits.data.imageset import pad_to
from simplebits.data.photos import photo_patches
from simplebits.data.sources import FASHION_MNIST_CLASSES
from simplebits.errors import BadInputError, NotFoundError, UnknownNameError

COMPOSITES = ("side-by-side", "side-by-side-fashion", "mnist-noise", "interpolated", "interpolated-cifar",
              "stripes", "stripes-cifar")


@pytest.fixture(autouse=True)
def _no_env_root(monkeypatch):
    monkeypatch.delenv("SIMPLEBITS_DATA", raising=False)


def _write_idx_set(d: Path, n_train: int, n_test: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """IDX .gz files as MNIST and Fashion-MNIST ship them: images (N, 28, 28) uint8, labels uint8."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, split, n in (("train", "train", n_train), ("t10k", "test", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        write_idx(d / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", y)
        out[split] = (x, y)
    return out


@pytest.fixture
def fashion_root(tmp_path) -> Path:
    _write_idx_set(tmp_path / "fmnist", 40, 16, seed=1)
    return tmp_path / "fmnist"


@pytest.fixture
def cifar_root(tmp_path) -> Path:
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(2)
    for i in range(1, 6):
        write_cifar_batch(d / f"data_batch_{i}", rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8), np.arange(4) + i)
    write_cifar_batch(d / "test_batch", rng.integers(0, 256, (10, 3, 32, 32), dtype=np.uint8), np.arange(10))
    write_cifar_meta(d / "batches.meta", ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                          "ship", "truck"])
    return tmp_path


def _half(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=(32, 16), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


# -------------------------------------------------------------------------- registry
def test_registered_with_descriptions_and_flip_rules(fashion_root):
    infos = {s.name: s for s in list_sources()}
    for name in COMPOSITES:
        assert name in infos and infos[name].splits == ("train", "test") and "3.1" in infos[name].description
    assert flip_allowed(side_by_side(split="test", n=4, root=fashion_root)) is False
    assert flip_allowed(mnist_noise(split="test", n=4)) is False
    assert flip_allowed(stripes(split="test", n=4, root=fashion_root)) is True


def test_registry_loads_with_root_and_split_defaults_differ(fashion_root):
    tr = load_dataset("stripes:train", root=fashion_root)
    te = load_dataset("stripes", split="test", root=fashion_root)
    assert (len(tr), len(te)) == (40, 16) and tr.shape == (1, 28, 28)
    assert tr.meta["name"] == "stripes:train" and tr.meta["source"] == "stripes" and tr.classes == ("horizontal", "vertical")
    assert tr.meta["composite"]["seed"] == 0 and tr.meta["composite"]["period"] == 4
    sbs = load_dataset("side-by-side-fashion:test", root=fashion_root)
    assert sbs.classes == FASHION_MNIST_CLASSES and sbs.shape == (1, 32, 32)
    assert len(sbs) == 1000 and sbs.meta["composite"]["fashion_reused"]  # every mnist-5k test digit; 16 Fashion images

def test_train_and_test_draw_different_noise_for_the_same_seed():
    tr, te = mnist_noise(split="train", n=20, seed=0), mnist_noise(split="test", n=20, seed=0)
    both_bg = (clean_mnist(split="train", n=20).images == 0) & (clean_mnist(split="test", n=20).images == 0)
    assert not torch.equal(tr.images[both_bg], te.images[both_bg])


# ----------------------------------------------------------------------- side by side
def test_side_by_side_halves_labels_and_label_variants(fashion_root):
    n = 16
    ds, fashion_labels, on_right = side_by_side_parts(split="test", n=n, seed=3, root=fashion_root)
    digits = clean_mnist(split="test", n=n)
    fash = load_dataset("fashion-mnist:test", root=fashion_root)
    assert ds.images.shape == (n, 1, 32, 32) and ds.images.dtype == torch.float32
    assert ds.labels.tolist() == digits.labels.tolist() and ds.classes == tuple(map(str, range(10)))
    assert 0 < int(on_right.sum()) < n  # both sides occur
    d_half = _half(digits.images)
    r = on_right.view(-1, 1, 1, 1)
    left, right = ds.images[..., :16], ds.images[..., 16:]
    assert torch.allclose(torch.where(r, right, left), d_half, atol=1e-6)
    # the other half is a resized Fashion-MNIST image of the recorded class, each used once
    other = torch.where(r, left, right)
    dist = (other.flatten(1)[:, None] - _half(fash.images).flatten(1)[None]).abs().amax(-1)  # (n, len(fash))
    match = dist.argmin(1)
    assert float(dist.min(1).values.max()) < 1e-6 and match.unique().numel() == n
    assert fash.labels[match].tolist() == fashion_labels.tolist()

    by_digit = side_by_side(split="test", n=n, seed=3, root=fashion_root)
    by_fashion = side_by_side(split="test", n=n, seed=3, root=fashion_root, label="fashion")
    assert torch.equal(by_digit.images, by_fashion.images) and torch.equal(by_digit.images, ds.images)
    assert by_digit.labels.tolist() == digits.labels.tolist()
    assert by_fashion.labels.tolist() == fashion_labels.tolist() and by_fashion.classes == FASHION_MNIST_CLASSES
    assert by_digit.meta["composite"]["digits"] == "mnist-5k" and by_digit.meta["composite"]["seed"] == 3


def test_side_by_side_is_seeded(fashion_root):
    a = side_by_side(split="test", n=12, seed=0, root=fashion_root)
    b = side_by_side(split="test", n=12, seed=0, root=fashion_root)
    c = side_by_side(split="test", n=12, seed=1, root=fashion_root)
    assert a.images.numpy().tobytes() == b.images.numpy().tobytes()
    assert not torch.equal(a.images, c.images)
    assert torch.equal(a.labels, c.labels)  # the digits do not depend on the seed


# ------------------------------------------------------------------------ MNIST base
def test_mnist_base_prefers_full_mnist_under_root_not_root_itself(tmp_path, monkeypatch):
    fash = _write_idx_set(tmp_path / "fashion-mnist", 30, 12, seed=1)
    assert mnist_base(split="test", root=tmp_path).meta["mnist_base"] == "mnist-5k"
    assert mnist_base(split="test", root=tmp_path / "fashion-mnist").meta["mnist_base"] == "mnist-5k"  # not read as MNIST
    mn = _write_idx_set(tmp_path / "mnist", 30, 12, seed=5)
    base = mnist_base(split="test", root=tmp_path)
    assert base.meta["mnist_base"] == "mnist" and len(base) == 12
    assert torch.equal(base.images[:, 0], torch.from_numpy(mn["test"][0]).float() / 255)
    sbs = side_by_side(split="test", root=tmp_path)  # n=None: every MNIST test image
    assert len(sbs) == 12 and sbs.meta["composite"]["digits"] == "mnist"
    assert not np.array_equal(mn["test"][0], fash["test"][0])
    monkeypatch.setenv("SIMPLEBITS_DATA", str(tmp_path))
    assert mnist_base(split="train").meta["mnist_base"] == "mnist"
    (tmp_path / "other" / "mnist").mkdir(parents=True)
    with pytest.raises(NotFoundError, match="mnist"):  # a folder without the files is an error, not a fallback
        mnist_base(split="train", root=tmp_path / "other")


def test_clean_mnist_subset_is_fixed_shuffle_in_base_order():
    base = mnist_base(split="train")
    sub = clean_mnist(split="train", n=30)
    # every image is a base image, in increasing base position; mnist-5k is sorted by class
    pos = [int(((base.images - im).abs().flatten(1).amax(1) == 0).nonzero()[0]) for im in sub.images]
    assert pos == sorted(pos) and len(set(pos)) == 30
    assert sub.labels.unique().numel() > 3
    assert torch.equal(clean_mnist(split="train", n=30).images, sub.images)


# ------------------------------------------------------------------------ MNIST noise
def test_mnist_noise_keeps_digits_and_background_std():
    a = 0.5
    noisy = mnist_noise(split="test", n=40, seed=0, amplitude=a)
    clean = clean_mnist(split="test", n=40)
    assert noisy.images.shape == (40, 1, 28, 28) and noisy.labels.tolist() == clean.labels.tolist()
    assert bool((noisy.images >= clean.images).all())
    assert bool((noisy.images[clean.images == 1.0] == 1.0).all())  # saturated strokes stay
    bg = noisy.images[clean.images == 0]
    assert float(bg.max()) < a and abs(float(bg.std()) - a / math.sqrt(12)) < 0.005
    assert abs(float(bg.mean()) - a / 2) < 0.005
    again = mnist_noise(split="test", n=40, seed=0, amplitude=a)
    other = mnist_noise(split="test", n=40, seed=1, amplitude=a)
    assert noisy.images.numpy().tobytes() == again.images.numpy().tobytes()
    assert not torch.equal(noisy.images, other.images)
    full = load_dataset("mnist-noise:test")  # default amplitude 1: the noise covers [0, 1)
    assert len(full) == 1000 and full.meta["composite"]["amplitude"] == 1.0


# ----------------------------------------------------------------------- interpolated
def test_interpolated_photos_is_the_blend():
    alpha = 0.3
    ds = interpolated(split="test", n=10, seed=2, alpha=alpha)
    digits = clean_mnist(split="test", n=10)
    nat = photo_patches(split="test", n=10, channels=1, seed=2)
    assert ds.shape == (1, 32, 32) and ds.labels.tolist() == digits.labels.tolist()
    expect = alpha * pad_to(digits.images, (32, 32)) + (1 - alpha) * nat.images
    assert torch.allclose(ds.images, expect, atol=1e-6)
    assert ds.meta["composite"]["natural"] == "photo-patches-gray" and flip_allowed(ds) is False


def test_interpolated_cifar_is_rgb_blend_with_cifar_images(cifar_root):
    ds = load_dataset("interpolated-cifar:test", root=cifar_root)
    digits = clean_mnist(split="test")
    cif = load_dataset("cifar10:test", root=cifar_root)
    assert ds.shape == (3, 32, 32) and len(ds) == len(digits) and ds.labels.tolist() == digits.labels.tolist()
    nat = (ds.images - 0.5 * pad_to(digits.images, (32, 32))) / 0.5  # (n, 3, 32, 32), digit on all channels
    hits = (nat[:, None] - cif.images[None]).abs().flatten(2).amax(-1).min(1).values
    assert float(hits.max()) < 1e-5  # every natural part is a CIFAR-10 test image


# ---------------------------------------------------------------------------- stripes
def _stripe_part(ds, base_images):
    return (ds.images - 0.5 * base_images) / 0.5


def test_stripes_label_is_the_stripe_direction(fashion_root):
    ds = stripes(split="train", seed=4, root=fashion_root)  # n=None: the whole base split, in order
    base = load_dataset("fashion-mnist:train", root=fashion_root)
    s = _stripe_part(ds, base.images)[:, 0]  # (n, 28, 28)
    assert torch.allclose(s, s.round(), atol=1e-5)  # a {0, 1} square wave
    s = s.round()
    along_rows = s.var(dim=2).amax(1)  # variance within each row: zero for horizontal stripes
    along_cols = s.var(dim=1).amax(1)
    horizontal = ds.labels == 0
    assert bool((along_rows[horizontal] < 1e-8).all() and (along_cols[horizontal] > 0.2).all())
    assert bool((along_cols[~horizontal] < 1e-8).all() and (along_rows[~horizontal] > 0.2).all())
    assert ds.counts() == [20, 20]
    # period 4: two on, two off, with phases that vary between images
    profile = torch.where(horizontal.view(-1, 1), s[:, :, 0], s[:, 0, :])  # (n, 28)
    assert torch.equal(profile[:, :24], profile[:, 4:28]) and bool((profile[:, :4].sum(1) == 2).all())
    assert profile[:, :4].unique(dim=0).shape[0] > 1


def test_stripes_seeded_subset_and_cifar_channels(fashion_root, cifar_root):
    a = stripes(split="train", n=9, seed=0, root=fashion_root)
    b = stripes(split="train", n=9, seed=0, root=fashion_root)
    c = stripes(split="train", n=9, seed=1, root=fashion_root)
    assert a.images.numpy().tobytes() == b.images.numpy().tobytes() and not torch.equal(a.images, c.images)
    assert sorted(a.counts()) in ([4, 5],)
    rgb = stripes(split="test", n=6, base="cifar10", period=8, root=cifar_root)
    cif = load_dataset("cifar10:test", root=cifar_root)
    assert rgb.shape == (3, 32, 32) and rgb.meta["name"] == "stripes-cifar:test"
    for i in range(6):  # find each base image; the stripe part is the same on all channels
        cand = [_stripe_part(rgb, cif.images[j : j + 1])[i] for j in range(len(cif))]
        good = [x for x in cand if torch.allclose(x, x.round(), atol=1e-5)]
        assert len(good) == 1
        s = good[0]
        assert torch.allclose(s[0], s[1], atol=1e-5) and torch.allclose(s[1], s[2], atol=1e-5)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call,match", [
    (lambda r: mnist_noise(split="test", n=0), "n must be a positive integer"),
    (lambda r: mnist_noise(split="test", n=2.5), "n must be a positive integer"),
    (lambda r: mnist_noise(split="test", n=True), "n must be a positive integer"),
    (lambda r: mnist_noise(split="test", n=1001), r"n=1001 is more than the 1000 images"),
    (lambda r: mnist_noise(split="test", amplitude=0.0), r"amplitude must be a number in \(0, 1\]"),
    (lambda r: mnist_noise(split="test", amplitude=1.5), r"amplitude must be a number in \(0, 1\]"),
    (lambda r: interpolated(split="test", alpha=1.0), r"alpha must be a number in \(0, 1\)"),
    (lambda r: interpolated(split="test", alpha=0), r"alpha must be a number in \(0, 1\)"),
    (lambda r: stripes(split="test", period=3, root=r), "period must be an even integer >= 2"),
    (lambda r: stripes(split="test", period=0, root=r), "period must be an even integer >= 2"),
    (lambda r: stripes(split="test", period=30, root=r), "period=30 is larger than the 28x28"),
    (lambda r: stripes(split="test", n=17, root=r), r"n=17 is more than the 16 images"),
    (lambda r: side_by_side(split="valid", root=r), "split must be one of train, test"),
    (lambda r: mnist_noise(split="test", seed=-1), "seed must be an integer >= 0"),
])
def test_bad_arguments_say_what_is_valid(fashion_root, call, match):
    with pytest.raises(BadInputError, match=match):
        call(fashion_root)


@pytest.mark.parametrize("call,valid", [
    (lambda r: interpolated(split="test", natural="imagenet"), "cifar10, photos"),
    (lambda r: stripes(split="test", base="mnist", root=r), "cifar10, fashion-mnist"),
    (lambda r: side_by_side(split="test", root=r, label="digit"), "fashion, mnist"),
])
def test_unknown_names_list_valid_ones(fashion_root, call, valid):
    with pytest.raises(UnknownNameError, match=valid):
        call(fashion_root)


def test_missing_fashion_mnist_says_how_to_install(tmp_path):
    (tmp_path / "empty").mkdir()
    for spec in ("side-by-side:test", "side-by-side-fashion:train", "stripes:test"):
        with pytest.raises(NotFoundError, match="fashion-mnist.*(apt-get install|--data-root)"):
            load_dataset(spec, root=tmp_path / "empty")
    with pytest.raises(NotFoundError, match="cifar10"):
        load_dataset("stripes-cifar:test", root=tmp_path / "empty")
