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


def test_repr_is_one_short_line(blobs):
    r = repr(blobs)
    lo, hi = blobs.value_range()
    assert r == f"ImageSet('blobs': 60x1x12x12, 3 classes (c0, c1, c2), values [{lo:.3g}, {hi:.3g}])"
    assert str(blobs) == r
    big = ImageSet.create(torch.zeros(6, 3, 4, 4), [0, 1, 2, 3, 4, 5], [f"class {k}\nname" for k in range(6)])
    assert "\n" not in repr(big) and "6 classes (class 0 name, class 1 name, class 2 name, class 3 name, ...)" in repr(big)
    wide = ImageSet.create(torch.full((2, 1, 2, 2), -0.5), [0, 1], unbounded=True)
    assert repr(wide).endswith("values [-0.5, -0.5])")
    assert repr(blobs.subset([])).endswith("no values)")


def test_items_are_image_and_int_label_like_a_list(blobs):
    x, y = blobs[0]
    assert torch.equal(x, blobs.images[0]) and x.shape == (1, 12, 12)
    assert type(y) is int and y == 0
    assert blobs[-1][1] == 2 and torch.equal(blobs[-1][0], blobs.images[59])
    assert torch.equal(blobs[-60][0], blobs.images[0]) and blobs[np.int64(25)][1] == 1
    for bad in (60, -61, 10**12):
        with pytest.raises(IndexError, match="out of range"):
            blobs[bad]
    with pytest.raises(TypeError, match="subset"):
        blobs[1:3]
    assert len(list(blobs)) == 60  # iteration stops at the IndexError, as for a list


def test_a_dataloader_takes_the_set_as_it_is(blobs):
    from torch.utils.data import DataLoader

    batches = list(DataLoader(blobs, batch_size=16))
    assert [len(b[1]) for b in batches] == [16, 16, 16, 12]
    x, y = batches[0]
    assert x.shape == (16, 1, 12, 12) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(torch.cat([b[0] for b in batches]), blobs.images)
    assert torch.equal(torch.cat([b[1] for b in batches]), blobs.labels)
