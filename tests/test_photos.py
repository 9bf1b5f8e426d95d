"""Natural-photo patches (the stand-in for CIFAR / Tiny Images) and their registered sources."""

from __future__ import annotations

import pytest
import torch

from simplebits.data import get_source, load_dataset
from simplebits.data.photos import MIN_PHOTOS, PHOTOS, TEST_PHOTOS, photo_files, photo_patches
from simplebits.errors import BadInputError

pytest.importorskip("skimage")  # the photos ship with scikit-image (found without importing it)

FORBIDDEN = {"page", "text", "horse", "logo", "chessboard_GRAY", "chessboard_RGB", "phantom", "cell"}


def test_shapes_range_dtype():
    ds = photo_patches(split="train", n=40, seed=1)
    assert ds.images.shape == (40, 3, 32, 32) and ds.images.dtype == torch.float32
    assert float(ds.images.min()) >= 0.0 and float(ds.images.max()) <= 1.0
    assert ds.labels.dtype == torch.int64 and len(ds.labels) == 40
    assert float(ds.images.std()) > 0.05  # real image content, not a constant
    assert ds.meta["flip_ok"] is True and "not a classification task" in ds.meta["note"]


def test_n_respected_and_other_size():
    for n in (1, 7, 50):
        assert len(photo_patches(split="test", n=n)) == n
    ds = photo_patches(split="test", n=9, size=16)
    assert ds.images.shape == (9, 3, 16, 16)
    big = photo_patches(split="test", n=3, size=64)  # enlarging crops is allowed
    assert big.images.shape == (3, 3, 64, 64)


def test_every_photo_used_when_n_allows():
    ds = photo_patches(split="train", n=3 * 13, seed=0)
    assert min(ds.counts()) >= 1


def test_deterministic_given_seed():
    a = photo_patches(split="train", n=30, seed=5)
    b = photo_patches(split="train", n=30, seed=5)
    c = photo_patches(split="train", n=30, seed=6)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


def test_train_test_photos_disjoint_and_only_real_photos():
    tr = photo_patches(split="train", n=60)
    te = photo_patches(split="test", n=30)
    used_tr = {tr.classes[i] for i in tr.labels.tolist()}
    used_te = {te.classes[i] for i in te.labels.tolist()}
    assert used_tr and used_te and not (used_tr & used_te)
    assert not (set(tr.classes) & set(te.classes))
    assert used_te <= TEST_PHOTOS and not (used_tr & TEST_PHOTOS)
    allowed = {name for name, _, _ in PHOTOS}
    assert set(tr.classes) | set(te.classes) <= allowed and not (allowed & FORBIDDEN)
    assert len(photo_files()) >= MIN_PHOTOS


def test_gray_variant_one_channel():
    g = photo_patches(split="test", n=12, channels=1, seed=2)
    rgb = photo_patches(split="test", n=12, channels=3, seed=2)
    assert g.images.shape == (12, 1, 32, 32)
    assert torch.equal(g.labels, rgb.labels)  # same crops, only the colour conversion differs
    luma = (rgb.images * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert float((luma - g.images).abs().mean()) < 0.02


def test_gray_photo_repeated_to_rgb():
    ds = photo_patches(split="train", n=26, seed=0)
    cam = ds.images[ds.labels == ds.classes.index("camera")]
    assert len(cam) and torch.equal(cam[:, 0], cam[:, 1]) and torch.equal(cam[:, 1], cam[:, 2])


def test_load_through_registry():
    ds = load_dataset("photo-patches:test")
    assert ds.images.shape == (2000, 3, 32, 32) and ds.meta["source"] == "photo-patches"
    assert ds.name == "photo-patches:test" and set(ds.classes) == TEST_PHOTOS
    gray = load_dataset("photo-patches-gray:test")
    assert gray.images.shape == (2000, 1, 32, 32)
    for name in ("photo-patches", "photo-patches-gray"):
        info = get_source(name)
        assert info.builtin and info.splits == ("train", "test") and info.description


@pytest.mark.parametrize("kw", [{"split": "val"}, {"n": 0}, {"n": 2.5}, {"size": 0}, {"channels": 2}, {"seed": -1}])
def test_bad_arguments(kw):
    with pytest.raises(BadInputError):
        photo_patches(**{"n": 4, **kw})
