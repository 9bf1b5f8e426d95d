"""ConvNet's 2x2 average pooling from strided slices: the same bits as ``nn.AvgPool2d(2)``.

Every figure computed before the faster pooling must be reproduced to the bit: forward, backward,
the double backward of gradient matching (condense), ``vmap(grad)`` (explain), bf16 autocast,
and whole training runs.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from simplebits.models import create_model
from simplebits.models.convnet import AvgPool2x2


def _with_aten_pooling(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose AvgPool2x2 layers are ``nn.AvgPool2d(2)`` again (the reference)."""
    ref = copy.deepcopy(model)
    for i, layer in enumerate(ref.features):
        if isinstance(layer, AvgPool2x2):
            ref.features[i] = nn.AvgPool2d(2)
    return ref


def _convnet(hw=(28, 28), channels=1, seed=0, width=16):
    return create_model("convnet", channels=channels, num_classes=10, image_size=hw, seed=seed, width=width)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("shape", [(3, 8, 32, 32), (2, 5, 16, 10), (4, 8, 8)])
def test_forward_and_backward_bitwise_equal(dtype, shape):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g).to(dtype)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = AvgPool2x2()(a), F.avg_pool2d(b, 2)
    assert ya.dtype == yb.dtype == dtype and ya.shape == yb.shape
    assert torch.equal(ya, yb)
    go = torch.randn(ya.shape, generator=g).to(dtype)
    ya.backward(go)
    yb.backward(go)
    assert torch.equal(a.grad, b.grad)


@pytest.mark.parametrize("shape", [(2, 4, 7, 7), (2, 4, 9, 8)])
def test_odd_maps_keep_floor_mode(shape):
    x = torch.randn(shape, requires_grad=True)
    y = AvgPool2x2()(x)
    assert y.shape == F.avg_pool2d(x, 2).shape
    assert torch.equal(y, F.avg_pool2d(x, 2))


def test_the_convnet_uses_it_and_old_checkpoints_load():
    m = _convnet()
    pools = [layer for layer in m.features if isinstance(layer, AvgPool2x2)]
    assert len(pools) == 3
    ref = _with_aten_pooling(m)
    assert m.state_dict().keys() == ref.state_dict().keys()  # no parameters: same checkpoint keys
    m.load_state_dict(ref.state_dict())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_steps_give_the_same_weights(precision):
    m = _convnet(seed=3)
    ref = _with_aten_pooling(m)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(12, 1, 28, 28, generator=g), torch.randint(0, 10, (12,), generator=g)
    for model in (m, ref):
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for _ in range(4):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                out = model(x)
            loss = F.cross_entropy(out.float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for (name, p), q in zip(m.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), name


def test_double_backward_matches_gradient_matching():
    """dc's gradient matching differentiates the network's parameter gradients w.r.t. the images."""
    m = _convnet(hw=(16, 16), seed=1)
    ref = _with_aten_pooling(m)
    g = torch.Generator().manual_seed(2)
    x0, y = torch.rand(6, 1, 16, 16, generator=g), torch.randint(0, 10, (6,), generator=g)
    target = [torch.randn(p.shape, generator=g) for p in m.parameters()]
    grads_x = []
    for model in (m, ref):
        x = x0.clone().requires_grad_()
        gw = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()), create_graph=True)
        match = sum(((a - b) ** 2).sum() for a, b in zip(gw, target))
        grads_x.append(torch.autograd.grad(match, x)[0])
    assert grads_x[0].abs().sum() > 0
    assert torch.equal(grads_x[0], grads_x[1])


def test_vmap_of_grad_matches_explain():
    """explain computes per-image input gradients with ``vmap(grad(...))``."""
    m = _convnet(hw=(16, 16), seed=4)
    ref = _with_aten_pooling(m)
    g = torch.Generator().manual_seed(5)
    x, y = torch.rand(5, 1, 16, 16, generator=g), torch.randint(0, 10, (5,), generator=g)

    def per_image(model):
        params = {k: v.detach() for k, v in model.named_parameters()}

        def one(xi, yi):
            return F.cross_entropy(functional_call(model, params, (xi[None],)), yi[None])

        return vmap(grad(one))(x, y)

    a, b = per_image(m), per_image(ref)
    assert a.abs().sum() > 0
    assert torch.equal(a, b)



def test_a_traced_convnet_saves_and_loads_as_torchscript(tmp_path):
    """Users export classifiers with torch.jit.trace (explain reads TorchScript): the trace records
    ATen's avg_pool2d, so the file holds no Python function and gives the same outputs."""
    m = _convnet(seed=6).eval()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(7))
    traced = torch.jit.trace(m, x)
    path = tmp_path / "clf.pt"
    torch.jit.save(traced, str(path))
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        assert torch.equal(loaded(x), m(x))


def test_forward_mode_ad_matches():
    import torch.autograd.forward_ad as fwAD

    g = torch.Generator().manual_seed(8)
    x, t = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    tangents = []
    for pool in (AvgPool2x2(), nn.AvgPool2d(2)):
        with fwAD.dual_level():
            out = pool(fwAD.make_dual(x, t))
            tangents.append(fwAD.unpack_dual(out).tangent)
    assert torch.equal(tangents[0], tangents[1])


def test_compiled_convnet_records_atens_pooling():
    """Under torch.compile the module hands inductor avg_pool2d (compiled runs keep their bits):
    one graph, no break."""
    import torch._dynamo as dynamo

    m = _convnet(seed=9)
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(9))
    ops = []

    def backend(gm, example_inputs):
        ops.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    dynamo.reset()
    torch.compile(m, backend=backend)(x)
    dynamo.reset()
    assert sum("avg_pool2d" in o for o in ops) == 3
    assert dynamo.explain(m)(x).graph_break_count == 0
