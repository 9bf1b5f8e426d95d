"""DC's MNIST evaluation: the per-image crop / scale / rotate augmentation and the dc-mnist protocol."""

from __future__ import annotations

import pytest
import torch

from conftest import make_blobs
from simplebits.augment import DC_MNIST, DCAugment
from simplebits.condense import EVAL_PROTOCOL, eval_protocol_for
from simplebits.data import is_mnist
from simplebits.errors import BadInputError, UnknownNameError
from simplebits.train import evaluate, get_protocol
from simplebits.train.loop import _classifier_hooks


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def shifted(img: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """``img`` (C, H, W) read at (i + dy, j + dx), ``fill`` outside."""
    _, h, w = img.shape
    out = torch.full_like(img, fill)
    out[:, max(0, -dy):min(h, h - dy), max(0, -dx):min(w, w - dx)] = \
        img[:, max(0, dy):min(h, h + dy), max(0, dx):min(w, w + dx)]
    return out


def test_crop_is_an_integer_shift_filled_with_the_batch_mean():
    x = torch.rand(12, 1, 28, 28, generator=gen(0))
    y = DCAugment("crop")(x, generator=gen(1))
    fill = float(x.mean())
    seen = set()
    for i in range(len(x)):
        hits = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                if torch.allclose(y[i], shifted(x[i], dy, dx, fill), atol=1e-5)]
        assert len(hits) == 1, f"image {i} is not one shift of at most 4 pixels"
        seen.add(hits[0])
    assert len(seen) > 3  # each image draws its own shift


def test_one_op_per_image_and_each_op_is_used():
    x = torch.rand(64, 1, 16, 16, generator=gen(2))
    y = DCAugment(DC_MNIST)(x, generator=gen(3))
    changed = (y - x).flatten(1).abs().amax(1) > 1e-6
    assert changed.float().mean() > 0.8  # crop by (0, 0) is the only identity draw
    assert torch.isfinite(y).all() and y.shape == x.shape


def test_scale_and_rotate_keep_the_centre_and_stay_within_the_input_range():
    x = torch.zeros(8, 1, 29, 29)
    x[:, :, 14, 14] = 1.0  # a dot at the centre pixel stays there under scaling and rotation about the centre
    for op in ("scale", "rotate"):
        y = DCAugment(op)(x, generator=gen(4))
        assert (y[:, 0, 14, 14] > 0.5).all(), op
        assert float(y.min()) >= -1e-6 and float(y.max()) <= 1 + 1e-6


def test_same_generator_same_batch_and_other_seed_another():
    x = torch.rand(10, 1, 28, 28, generator=gen(5))
    a, b = DCAugment()(x, generator=gen(7)), DCAugment()(x, generator=gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, DCAugment()(x, generator=gen(8)))


def test_bad_strategy_and_bad_images_are_one_clear_error():
    with pytest.raises(UnknownNameError, match="crop"):
        DCAugment("crop_flip")
    with pytest.raises(BadInputError):
        DCAugment()(torch.rand(3, 28, 28))
    with pytest.raises(UnknownNameError):
        get_protocol("dc").with_overrides(dc_aug="warp")


def test_dc_mnist_protocol_is_dc_plus_the_augmentation_and_other_keys_do_not_move():
    dc, dcm = get_protocol("dc"), get_protocol("dc-mnist")
    assert dcm.dc_aug == DC_MNIST and dcm.augments and not dc.augments
    assert {k: v for k, v in dcm.to_dict().items() if k not in ("name", "description", "dc_aug")} == \
        {k: v for k, v in dc.to_dict().items() if k not in ("name", "description")}
    for name in ("dc", "dsa", "idc", "quick"):  # cache keys of every other protocol are as before
        assert "dc_aug" not in get_protocol(name).to_dict()


def test_training_batches_are_augmented_under_dc_mnist_only():
    train = make_blobs(4, seed=0)
    idx = torch.arange(len(train))

    def first_batch(name: str) -> torch.Tensor:
        hook, _ = _classifier_hooks(train, get_protocol(name), seed=0, device=torch.device("cpu"), teacher=None)
        return hook(0, 0, idx).x

    assert torch.equal(first_batch("dc"), train.images)
    assert not torch.equal(first_batch("dc-mnist"), train.images)
    assert torch.equal(first_batch("dc-mnist"), first_batch("dc-mnist"))  # from the seed's augmentation stream


def test_dc_mnist_evaluation_is_deterministic():
    train, test = make_blobs(6, seed=0), make_blobs(6, seed=1)
    p = get_protocol("dc-mnist").with_overrides(model_options={"width": 16}, max_steps=6)
    assert evaluate(train, test, protocol=p, seeds=[2]).accuracies == evaluate(train, test, protocol=p, seeds=[2]).accuracies


def test_the_dc_method_evaluates_mnist_with_dc_mnist_and_nothing_else_changes():
    mnist = make_blobs(2, seed=0).with_meta(source="mnist-5k")
    condensed = make_blobs(2, seed=0).with_meta(source_dataset="mnist:train")
    fashion = make_blobs(2, seed=0).with_meta(source="fashion-mnist")
    assert is_mnist(mnist) and is_mnist(condensed) and not is_mnist(fashion)
    assert eval_protocol_for("dc", mnist) == eval_protocol_for("dc", condensed) == "dc-mnist"
    assert eval_protocol_for("dc", fashion) == eval_protocol_for("dc") == "dc"
    for method in ("dsa", "dm", "idc"):
        assert eval_protocol_for(method, mnist) == EVAL_PROTOCOL[method]


def test_a_condensed_mnist_set_records_dc_mnist_as_its_protocol(tmp_path):
    from simplebits.condense import condense, make_config
    from simplebits.io import read_metadata

    tiny = dict(net_options={"width": 8}, compile=False, chunk=4, batch_real=6, iterations=1)
    for source, want in (("mnist-5k", "dc-mnist"), ("fashion-mnist", "dc")):
        real = make_blobs(6, 3, (1, 12, 12)).with_meta(name=f"{source}:train", source=source)
        out = tmp_path / f"{source}.safetensors"
        r = condense(real, make_config("dc", ipc=1, preset="quick", **tiny), out=out, progress=False)
        assert r.to_dict()["eval_protocol"] == want
        assert read_metadata(out)["eval_protocol"] == want
