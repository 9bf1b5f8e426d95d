import numpy as np
import pytest
import torch

from simplebits.data import ImageSet, real_subset, resize, stratified_split, to_channels
from simplebits.errors import BadInputError


def test_create_accepts_uint8_and_float():
    a = ImageSet.create(np.full((4, 5, 5), 255, np.uint8), [0, 1, 0, 1])
    assert a.images.dtype == torch.float32 and a.shape == (1, 5, 5) and float(a.images.max()) == 1.0
    assert a.classes == ("0", "1")


@pytest.mark.parametrize(
    "images,labels,classes,match",
    [
        (torch.full((2, 1, 4, 4), float("nan")), [0, 1], None, "NaN"),
        (torch.full((2, 1, 4, 4), 1.5), [0, 1], None, r"\[0, 1\]"),
        (torch.full((2, 1, 4, 4), -0.1), [0, 1], None, r"\[0, 1\]"),
        (torch.zeros(2, 1, 4, 4), [0, 3], ["a", "b"], "out of range"),
        (torch.zeros(2, 1, 4, 4), [0.5, 1.0], None, "integer"),
        (torch.zeros(2, 1, 4, 4), [0, -1], None, "negative"),
        (torch.zeros(2, 1, 4, 4), [0, 0], ["a", "b"], "zero images"),
        (torch.zeros(2, 1, 4, 4), [0, 1, 1], None, "3 labels for 2 images"),
        (torch.zeros(2, 5, 4, 4), [0, 1], None, "channels"),
        (torch.zeros(2, 4), [0, 1], None, "shape"),
    ],
)
def test_bad_input_is_named(images, labels, classes, match):
    with pytest.raises(BadInputError, match=match):
        ImageSet.create(images, labels, classes)


def test_real_subset_exact_per_class_and_seeded(blobs):
    a = real_subset(blobs, 5, seed=1)
    b = real_subset(blobs, 5, seed=1)
    c = real_subset(blobs, 5, seed=2)
    assert a.counts() == [5, 5, 5]
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)
    with pytest.raises(BadInputError, match="larger than class"):
        real_subset(blobs, 21)
    with pytest.raises(BadInputError, match="positive"):
        real_subset(blobs, 0)


def test_stratified_split_is_disjoint_and_fixed(blobs):
    tr, te = stratified_split(blobs, test_fraction=0.25, seed=0)
    tr2, te2 = stratified_split(blobs, test_fraction=0.25, seed=0)
    assert len(tr) + len(te) == len(blobs)
    assert te.counts() == [5, 5, 5]
    assert torch.equal(te.images, te2.images)


def test_resize_pad_centres_and_interpolates(blobs):
    p = resize(blobs, 16)
    assert p.shape == (1, 16, 16)
    assert torch.equal(p.images[:, :, 2:14, 2:14], blobs.images)
    assert float(p.images[:, :, :2].abs().sum()) == 0.0
    back = resize(p, 12)  # crop back
    assert torch.equal(back.images, blobs.images)
    b = resize(blobs, 6, mode="bilinear")
    assert b.shape == (1, 6, 6) and 0 <= float(b.images.min()) and float(b.images.max()) <= 1
    with pytest.raises(BadInputError, match="resize mode"):
        resize(blobs, 8, mode="magic")


def test_to_channels(blobs):
    rgb = to_channels(blobs, 3)
    assert rgb.channels == 3 and torch.equal(rgb.images[:, 0], rgb.images[:, 2])
    gray = to_channels(rgb, 1)
    assert torch.allclose(gray.images, blobs.images, atol=1e-6)


def test_flip_is_off_for_digit_sources(blobs):
    from simplebits.data import flip_allowed

    assert flip_allowed(blobs.with_meta(source="fashion-mnist"))
    assert not flip_allowed(blobs.with_meta(source="mnist-5k"))
    assert not flip_allowed(blobs.with_meta(source_dataset="svhn:train"))
    assert flip_allowed(blobs.with_meta(source="mnist", flip_ok=True))
