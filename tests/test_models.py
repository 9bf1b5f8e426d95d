"""Every registered model, through the registry: shapes, gradients, seeds, errors, invariants.

Set DEVICE=cuda to run the same checks on a GPU.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from simplebits.errors import BadInputError, MismatchError, UnknownNameError
from simplebits.models import create_model, list_models

DEVICE = torch.device(os.environ.get("DEVICE", "cpu"))
MODELS = {m.name: m for m in list_models()}
# small widths where the default model is slow on a CPU; other models run with defaults
SMALL = {"unet-simplifier": {"ngf": 8}, "resnet10-ap": {"width": 16}}
SHAPES = [(1, 28, 28), (3, 32, 32)]
BATCH = 2


def build(name: str, shape: tuple[int, int, int], *, seed: int | None = 0, **options):
    c, h, w = shape
    opts = {**SMALL.get(name, {}), **options}
    return create_model(name, channels=c, num_classes=10, image_size=(h, w), seed=seed, **opts).to(DEVICE)


def batch(shape: tuple[int, int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(BATCH, *shape, generator=g)
    y = torch.randint(0, 10, (BATCH,), generator=g)
    return x.to(DEVICE), y.to(DEVICE)


def loss_of(name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if MODELS[name].kind == "simplifier":
        return ((out - 0.5) ** 2).sum()  # any target that is not the input
    return F.cross_entropy(out, y)


def assert_grads(model: torch.nn.Module, *, all_nonzero: bool) -> None:
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert params
    for n, p in params.items():
        assert p.grad is not None, f"no gradient reached {n}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient in {n}"
    nonzero = {n for n, p in params.items() if p.grad.abs().max() > 0}
    assert nonzero, "every gradient is zero"
    if all_nonzero:
        assert nonzero == set(params), f"zero gradient in {sorted(set(params) - nonzero)}"


# --------------------------------------------------------------------------- every model
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_shape_finite_and_gradients(name, shape):
    model = build(name, shape)
    x, y = batch(shape)
    out = model(x)
    want = (BATCH, *shape) if MODELS[name].kind == "simplifier" else (BATCH, 10)
    assert out.shape == want
    assert torch.isfinite(out).all()
    loss_of(name, model, x, y).backward()
    if MODELS[name].kind == "simplifier":
        # while w == 0 only w can learn: the UNet's own gradients are exactly zero
        assert model.w.grad is not None and model.w.grad.abs() > 0
        assert_grads(model, all_nonzero=False)
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            model.w.fill_(0.5)
        loss_of(name, model, x, y).backward()
    assert_grads(model, all_nonzero=True)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_seed_reproducible(name):
    def weights(seed):
        return [p.detach().cpu().clone() for p in build(name, SHAPES[0], seed=seed).parameters()]

    a, b, c = weights(1), weights(1), weights(2)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert any(not torch.equal(p, q) for p, q in zip(a, c))
    state = torch.get_rng_state()
    build(name, SHAPES[0], seed=3)
    assert torch.equal(state, torch.get_rng_state()), "seed= must not touch the global RNG"


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", sorted(n for n, m in MODELS.items() if m.kind == "classifier"))
def test_embed_feeds_classifier(name, shape):
    model = build(name, shape).eval()
    x, _ = batch(shape)
    with torch.no_grad():
        z = model.embed(x)
        assert z.shape == (BATCH, model.embed_dim)
        torch.testing.assert_close(model.classifier(z), model(x))


@pytest.mark.parametrize("name", sorted(n for n, m in MODELS.items() if m.kind == "simplifier"))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_simplifier_identity_at_init(name, shape):
    model = build(name, shape)
    x, _ = batch(shape)
    x = torch.cat([x, torch.zeros_like(x[:1]), torch.ones_like(x[:1])])  # include the clamp ends
    with torch.no_grad():
        out = model(x)
    assert out.shape == x.shape
    assert (out - x.clamp(1e-3, 1 - 1e-3)).abs().max() < 1e-5


# --------------------------------------------------------------------------- specific models
@pytest.mark.parametrize("size", [28, 32])
def test_convnet_reference_feature_size(size):
    model = build("convnet", (1, size, size))
    assert model.embed_dim == 128 * 4 * 4 == 2048
    x, _ = batch((1, size, size))
    assert model.embed(x).shape == (BATCH, 2048)


@pytest.mark.parametrize(
    "options, size",
    [({"depth": 2, "pool": "max", "norm": "batch", "act": "elu"}, (20, 24)),
     ({"depth": 4, "norm": "group", "act": "leakyrelu", "width": 12}, (16, 16)),
     ({"depth": 1, "pool": "none", "norm": "none", "width": 8}, (28, 28))],
)  # fmt: skip
def test_convnet_options_feature_size_matches_forward(options, size):
    model = build("convnet", (3, *size), **options)
    x = torch.rand(BATCH, 3, *size, device=DEVICE)
    assert model.features(x).flatten(1).shape[1] == model.embed_dim
    assert model(x).shape == (BATCH, 10)


def test_convnet_rejects_wrong_input_size():
    model = build("convnet", (1, 28, 28))
    with pytest.raises(MismatchError, match="28"):
        model(torch.rand(BATCH, 1, 32, 32, device=DEVICE))


@pytest.mark.parametrize("size", [16, 28, 32])
def test_resnet_ap_sizes(size):
    model = build("resnet10-ap", (1, size, size), width=64)
    x, _ = batch((1, size, size))
    assert model.embed(x).shape == (BATCH, 512)


def test_nf_wrn_structure_and_signal_propagation():
    model = build("nf-wrn-16-2", (3, 32, 32))
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert [b.conv2.out_channels for b in model.blocks] == [32, 32, 64, 64, 128, 128]
    assert [b.has_projection for b in model.blocks] == [True, False, True, False, True, False]
    # beta = 1/sqrt(expected var of the block's input); the var grows by 0.2**2 per block
    # and restarts at 1 after each transition: 1, 1.04, 1.08 | 1.04, 1.08 | 1.04
    want = [1.0, 1.04**-0.5, 1.08**-0.5, 1.04**-0.5, 1.08**-0.5, 1.04**-0.5]
    torch.testing.assert_close([b.beta for b in model.blocks], want)
    model.eval()  # dropout off: the bookkeeping is about the init-time signal
    h = model.stem(torch.randn(32, 3, 32, 32, device=DEVICE))
    variances = [h.var().item()]
    with torch.no_grad():
        for block in model.blocks:
            h = block(h)
            variances.append(h.var().item())
    assert all(0.5 < v < 2.0 for v in variances), variances
    assert abs(variances[-1] - model.expected_var) < 0.3, (variances, model.expected_var)


def test_nf_wrn_ws_conv_is_standardised():
    model = build("nf-wrn-16-2", (3, 32, 32))
    w = model.blocks[0].conv1.standardized_weight().flatten(1)
    torch.testing.assert_close(w.mean(1), torch.zeros(len(w), device=DEVICE), atol=1e-6, rtol=0)
    torch.testing.assert_close((w**2).sum(1), torch.ones(len(w), device=DEVICE), atol=1e-4, rtol=0)


@pytest.mark.parametrize("size", [(28, 28), (17, 40)])
def test_unet_pads_and_crops_any_size(size):
    model = build("unet-simplifier", (1, *size))
    with torch.no_grad():
        model.w.fill_(1.0)
        x = torch.rand(BATCH, 1, *size, device=DEVICE)
        out = model(x)
    assert out.shape == x.shape
    assert ((out > 0) & (out < 1)).all()
    assert not torch.allclose(out, x.clamp(1e-3, 1 - 1e-3))


# --------------------------------------------------------------------------- errors
def test_unknown_model_lists_names():
    with pytest.raises(UnknownNameError) as e:
        create_model("resnet-9000", channels=3)
    for name in MODELS:
        assert name in str(e.value)


@pytest.mark.parametrize(
    "name, options, match",
    [("convnet", {"norm": "layr"}, "instance"),
     ("convnet", {"act": "gelu"}, "leakyrelu"),
     ("convnet", {"pool": "min"}, "max"),
     ("convnet", {"width": 0}, "width"),
     ("resnet10-ap", {"norm": "group"}, "instance"),
     ("nf-wrn-16-2", {"depth": 15}, "6n"),
     ("nf-wrn-16-2", {"dropout": 1.5}, "dropout"),
     ("unet-simplifier", {"downsamples": -1}, "downsamples"),
     ("unet-simplifier", {"no_such_option": 1}, "no_such_option")],
)  # fmt: skip
def test_bad_option_raises(name, options, match):
    with pytest.raises(BadInputError, match=match):
        create_model(name, channels=1, image_size=28, **options)


def test_convnet_too_deep_for_image():
    with pytest.raises(BadInputError, match="too small"):
        create_model("convnet", channels=1, image_size=8, depth=4)
