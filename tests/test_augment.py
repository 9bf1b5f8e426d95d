"""Tests for simplebits.augment (DSA and CutMix)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from simplebits.augment import (
    DSA,
    DSA_DEFAULT,
    DSA_IDC,
    DSAParams,
    cutmix,
    cutmix_loss,
    maybe_cutmix,
    parse_strategy,
)
from simplebits.errors import BadInputError, MismatchError

OPS = ["color", "crop", "cutout", "flip", "scale", "rotate"]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 8, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=gen(seed)) + 0.1  # no exact zeros


# ----------------------------------------------------------------------------- strategy
def test_parse_strategy():
    assert parse_strategy(DSA_DEFAULT) == tuple(OPS)
    assert parse_strategy(DSA_IDC) == ("color", "crop", "flip", "scale", "rotate")
    assert parse_strategy("none") == () and parse_strategy("") == ()
    assert parse_strategy("Flip_crop_flip") == ("flip", "crop")


def test_unknown_op_raises():
    with pytest.raises(BadInputError) as e:
        parse_strategy("color_zoom")
    assert "zoom" in str(e.value) and "rotate" in str(e.value) and "cutout" in str(e.value)
    with pytest.raises(BadInputError):
        DSA("crop__flip")


def test_none_strategy_is_identity():
    x = images(4)
    assert torch.equal(DSA("none")(x, generator=gen(0)), x)


# ----------------------------------------------------------------------------- determinism
def test_same_seed_same_output_different_seed_different():
    x = images(8)
    dsa = DSA()
    a = [dsa(x, generator=gen(s)) for s in range(6)]
    b = [dsa(x, generator=gen(s)) for s in range(6)]
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    # different seeds give different outputs (op or parameters differ)
    assert sum(not torch.equal(a[0], a[i]) for i in range(1, 6)) >= 4
    for op in OPS:
        d = DSA(op)
        assert torch.equal(d(x, generator=gen(1)), d(x, generator=gen(1)))
        assert not torch.equal(d(x, generator=gen(1)), d(x, generator=gen(2)))


def test_one_op_per_call_covers_all_ops():
    dsa = DSA()
    g = gen(0)
    seen = {dsa.sample(4, generator=g, device="cpu").op for _ in range(200)}
    assert seen == set(OPS)


# ----------------------------------------------------------------------------- siamese
@pytest.mark.parametrize("op", OPS)
def test_siamese_same_transform_any_batch_size(op):
    dsa = DSA(op)
    base = images(1, seed=3)
    for seed in range(3):
        p = dsa.sample(1, generator=gen(seed), device="cpu", siamese=True)
        assert p.siamese and p.n == 1
        out3 = dsa.apply(base.expand(3, -1, -1, -1).clone(), p)
        out7 = dsa.apply(base.expand(7, -1, -1, -1).clone(), p)
        assert out3.shape == (3, 3, 32, 32) and out7.shape == (7, 3, 32, 32)
        for o in (*out3, *out7):
            assert torch.equal(o, out3[0])
        # real batch vs synthetic batch whose single image is a copy of real[0]
        real = images(7, seed=4)
        syn = real[:1].clone()
        assert torch.allclose(dsa.apply(real, p)[0], dsa.apply(syn, p)[0], atol=1e-6)


@pytest.mark.parametrize("op", OPS)
def test_per_sample_params_differ_across_batch(op):
    dsa = DSA(op)
    x = images(1, seed=5).expand(16, -1, -1, -1).clone()
    p = dsa.sample(16, generator=gen(0), device="cpu")
    assert not p.siamese and p.n == 16
    out = dsa.apply(x, p)
    distinct = {tuple(o.flatten()[::7].tolist()) for o in out}
    assert len(distinct) >= 2


def test_per_sample_params_need_matching_batch():
    dsa = DSA("rotate")
    p = dsa.sample(4, generator=gen(0), device="cpu")
    with pytest.raises(MismatchError):
        dsa.apply(images(5), p)


# ----------------------------------------------------------------------------- op properties
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_and_gradient(op, dtype):
    dsa = DSA(op)
    x = images(6).to(dtype).requires_grad_(True)
    x0 = x.detach().clone()
    out = dsa(x, generator=gen(7))
    assert out.shape == x.shape and out.dtype == dtype
    w = torch.randn(out.shape, generator=gen(8)).to(dtype)
    (out * w).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
    assert torch.equal(x.detach(), x0)  # input untouched


@pytest.mark.parametrize("op", OPS)
def test_one_channel_28(op):
    x = images(5, c=1, h=28, w=28).requires_grad_(True)
    out = DSA(op)(x, generator=gen(2))
    assert out.shape == x.shape
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_color_one_channel_saturation_noop():
    x = images(4, c=1)
    p = DSA("color").sample(4, generator=gen(0), device="cpu")
    out = DSA("color").apply(x, p)
    y = x + p["brightness"].view(-1, 1, 1, 1)
    m = y.mean(dim=(1, 2, 3), keepdim=True)
    expect = (y - m) * p["contrast"].view(-1, 1, 1, 1) + m
    assert torch.allclose(out, expect, atol=1e-6)


def test_color_matches_sequential_definition():
    x = images(4).double()
    dsa = DSA("color")
    p = dsa.sample(4, generator=gen(1), device="cpu")
    b, s, c = (p[k].double().view(-1, 1, 1, 1) for k in ("brightness", "saturation", "contrast"))
    y = x + b
    m = y.mean(dim=1, keepdim=True)
    y = (y - m) * s + m
    m = y.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(dsa.apply(x, p), (y - m) * c + m, atol=1e-12)


def test_flip_twice_is_identity_and_flip_false_never_flips():
    x = images(8)
    dsa = DSA("flip")
    p = dsa.sample(8, generator=gen(0), device="cpu")
    assert p["flip"].any() and not p["flip"].all()
    assert torch.equal(dsa.apply(dsa.apply(x, p), p), x)
    no_flip = DSA(DSA_DEFAULT, flip=False)
    assert "flip" not in no_flip.ops
    g = gen(1)
    assert all(no_flip.sample(2, generator=g, device="cpu").op != "flip" for _ in range(100))
    assert torch.equal(DSA("flip", flip=False)(x, generator=gen(0)), x)


def test_crop_is_integer_shift_with_zero_padding():
    x = images(6)
    dsa = DSA("crop")
    out = dsa.apply(x, dsa.sample(6, generator=gen(3), device="cpu"))
    xp = F.pad(x, (4, 4, 4, 4))
    for i in range(6):
        hits = [
            (dy, dx)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            if torch.equal(out[i], xp[i, :, 4 + dy : 36 + dy, 4 + dx : 36 + dx])
        ]
        assert len(hits) == 1


def test_cutout_zeroes_a_half_size_square():
    x = images(16)
    out = DSA("cutout")(x, generator=gen(4))
    zero = (out == 0).all(dim=1)  # (n, h, w)
    for z in zero:
        rows, cols = z.any(1).sum().item(), z.any(0).sum().item()
        assert 1 <= rows <= 16 and 1 <= cols <= 16
        assert z.sum().item() == rows * cols  # a rectangle (square clipped by the border)
    assert (zero.sum(dim=(1, 2)) == 256).any()


def test_identity_affine_params():
    x = images(3)
    one = DSAParams("scale", {"scale": torch.ones(1, 2)}, siamese=True, n=1)
    zero = DSAParams("rotate", {"angle": torch.zeros(1)}, siamese=True, n=1)
    assert torch.allclose(DSA("scale").apply(x, one), x, atol=1e-5)
    assert torch.allclose(DSA("rotate").apply(x, zero), x, atol=1e-5)


def test_params_ranges():
    g = gen(0)
    c = DSA("color").sample(2000, generator=g, device="cpu")
    assert c["brightness"].min() >= -0.5 and c["brightness"].max() <= 0.5
    assert c["saturation"].min() >= 0 and c["saturation"].max() <= 2
    assert c["contrast"].min() >= 0.5 and c["contrast"].max() <= 1.5
    s = DSA("scale").sample(2000, generator=g, device="cpu")["scale"]
    assert s.min() >= 1 / 1.2 - 1e-6 and s.max() <= 1.2 + 1e-6
    a = DSA("rotate").sample(2000, generator=g, device="cpu")["angle"]
    assert a.abs().max() <= torch.pi / 12 + 1e-6


def test_bad_images_rejected():
    with pytest.raises(BadInputError):
        DSA()(torch.rand(3, 32, 32))
    with pytest.raises(BadInputError):
        DSA()(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


# ----------------------------------------------------------------------------- cutmix
def test_cutmix_lam_and_labels():
    n = 16
    x = images(n, seed=9)
    y = torch.arange(n)
    for seed in range(5):
        xm, ya, yb, lam = cutmix(x, y, generator=gen(seed))
        assert torch.equal(ya, y) and sorted(yb.tolist()) == list(range(n))
        assert 0.0 <= lam <= 1.0
        for i in range(n):
            j = int(yb[i])
            same = (xm[i] == x[i]).all(0)
            if j != i:
                # un-pasted area fraction is lam; the pasted pixels come from partner j
                assert abs(same.float().mean().item() - lam) < 1e-9
                assert torch.equal(xm[i][:, ~same], x[j][:, ~same])


def test_cutmix_deterministic_and_beta():
    x, y = images(8), torch.arange(8)
    for beta in (1.0, 0.5, 2.0):
        a = cutmix(x, y, generator=gen(3), beta=beta)
        b = cutmix(x, y, generator=gen(3), beta=beta)
        assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2]) and a[3] == b[3]
    lams = {cutmix(x, y, generator=gen(s))[3] for s in range(5)}
    assert len(lams) > 1
    with pytest.raises(BadInputError):
        cutmix(x, y, generator=gen(0), beta=0.0)
    with pytest.raises(MismatchError):
        cutmix(x, y[:3], generator=gen(0))


def test_cutmix_loss_and_gradient():
    x = images(8).requires_grad_(True)
    y = torch.arange(8) % 3
    xm, ya, yb, lam = cutmix(x, y, generator=gen(1))
    logits = torch.randn(8, 3, generator=gen(2))
    expect = lam * F.cross_entropy(logits, ya) + (1 - lam) * F.cross_entropy(logits, yb)
    assert torch.allclose(cutmix_loss(logits, ya, yb, lam), expect)
    assert torch.allclose(cutmix_loss(logits, ya, yb, 1.0), F.cross_entropy(logits, ya))
    xm.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_maybe_cutmix():
    x, y = images(8), torch.arange(8)
    xm, ya, yb, lam = maybe_cutmix(x, y, prob=0.0, generator=gen(0), beta=1.0)
    assert xm is x and torch.equal(ya, y) and torch.equal(yb, y) and lam == 1.0
    xm, ya, yb, lam = maybe_cutmix(x, y, prob=1.0, generator=gen(0), beta=1.0)
    assert lam < 1.0 and not torch.equal(xm, x)
    a = [maybe_cutmix(x, y, prob=0.5, generator=gen(s), beta=1.0)[3] for s in range(20)]
    b = [maybe_cutmix(x, y, prob=0.5, generator=gen(s), beta=1.0)[3] for s in range(20)]
    assert a == b and 1.0 in a and any(v < 1.0 for v in a)
    with pytest.raises(BadInputError):
        maybe_cutmix(x, y, prob=1.5, generator=gen(0), beta=1.0)
