import math

import pytest
import torch

from simplebits.data import ImageSet
from simplebits.density import (
    FlowTrainConfig,
    Glow,
    GlowConfig,
    TrainingDiverged,
    bpd,
    fit_images,
    load_flow,
    save_flow,
    score_bpd,
    train_flow,
)
from conftest import perturbed_glow
from simplebits.density.bpd import preprocess
from simplebits.errors import BadInputError, CorruptFileError, MismatchError


def _perturbed(cfg: GlowConfig, seed=0) -> Glow:
    return perturbed_glow(cfg, seed)


def check_forward_inverse(model: Glow, y: torch.Tensor, tol: float = 1e-4) -> None:
    eps, logp = model.encode(y)
    assert torch.isfinite(logp).all()
    assert [tuple(e.shape[1:]) for e in eps] == model.latent_shapes()
    back = model.decode(eps)
    assert (back - y).abs().max().item() < tol


@pytest.mark.parametrize("channels,size,levels", [(1, 8, 2), (3, 8, 3), (1, 32, 3)])
def test_round_trip(channels, size, levels):
    m = _perturbed(GlowConfig(channels=channels, image_size=size, levels=levels, steps=2, width=16))
    y = torch.rand(4, channels, size, size) - 0.5
    check_forward_inverse(m, y)


def test_log_prob_equals_brute_force_jacobian():
    torch.set_default_dtype(torch.float64)
    try:
        m = _perturbed(GlowConfig(channels=1, image_size=4, levels=2, steps=2, width=8), seed=1)
        y = torch.rand(1, 1, 4, 4) - 0.5

        def to_eps(flat):
            eps, _ = m.encode(flat.view(1, 1, 4, 4))
            return torch.cat([e.flatten() for e in eps])

        jac = torch.autograd.functional.jacobian(to_eps, y.flatten())
        eps = to_eps(y.flatten())
        expected = -0.5 * (eps**2).sum() - 0.5 * eps.numel() * math.log(2 * math.pi) + torch.linalg.slogdet(jac)[1]
        assert torch.allclose(m.log_prob(y)[0], expected, atol=1e-8)
    finally:
        torch.set_default_dtype(torch.float32)


class _StdNormal(torch.nn.Module):
    """A density with a known answer: y ~ N(0, I) per dimension."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def log_prob(self, y):
        return (-0.5 * y**2 - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)


def test_bpd_known_answer_and_modes():
    black = torch.zeros(2, 1, 4, 4)
    y = -0.5 + 1 / 512  # midpoint-dequantised black pixel in Glow's range
    per_dim_nats = 0.5 * y * y + 0.5 * math.log(2 * math.pi) + math.log(256)
    expected = per_dim_nats / math.log(2)
    got = bpd(_StdNormal(), black)
    assert torch.allclose(got, torch.full((2,), expected, dtype=got.dtype), atol=1e-5)
    g = torch.Generator().manual_seed(0)
    u = bpd(_StdNormal(), black, dequantize="uniform", generator=g)
    assert not torch.allclose(u, got) and torch.isfinite(u).all()
    with pytest.raises(BadInputError, match="dequantize"):
        bpd(_StdNormal(), black, dequantize="sometimes")


def test_straight_through_rounds_value_but_passes_gradient():
    m = _perturbed(GlowConfig(channels=1, image_size=8, levels=2, steps=1, width=8))
    x = (torch.rand(3, 1, 8, 8) * 0.98 + 0.01).requires_grad_(True)
    st = bpd(m, x, straight_through=True)
    rounded = bpd(m, torch.round(x.detach() * 255) / 255)
    assert torch.allclose(st, rounded, atol=1e-5)
    st.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    y = preprocess(x.detach(), dequantize="midpoint")
    assert float(y.min()) >= -0.5 and float(y.max()) <= 0.5


def test_same_seed_same_weights():
    cfg = GlowConfig(channels=1, image_size=8, levels=2, steps=2, width=8)
    torch.manual_seed(3)
    a = Glow(cfg).state_dict()
    torch.manual_seed(3)
    b = Glow(cfg).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_config_and_shape_errors():
    with pytest.raises(BadInputError, match="divisible"):
        GlowConfig(image_size=28, levels=3).validate()
    m = Glow(GlowConfig(channels=1, image_size=8, levels=2, steps=1, width=8))
    with pytest.raises(MismatchError, match=r"\(3, 8, 8\).*\(1, 8, 8\)"):
        m.log_prob(torch.zeros(1, 3, 8, 8))


def test_fit_images_pads_and_names_mismatch():
    m = Glow(GlowConfig(channels=1, image_size=32, levels=2, steps=1, width=8))
    x = torch.rand(2, 1, 28, 28)
    f = fit_images(x, m)
    assert f.shape == (2, 1, 32, 32) and torch.equal(f[:, :, 2:30, 2:30], x) and f[:, :, :2].abs().sum() == 0
    with pytest.raises(MismatchError, match="3 channel.*takes 1"):
        fit_images(torch.rand(2, 3, 32, 32), m)
    with pytest.raises(MismatchError, match="40x40.*32x32"):
        fit_images(torch.rand(2, 1, 40, 40), m)
    rgb = Glow(GlowConfig(channels=3, image_size=32, levels=2, steps=1, width=8))
    with pytest.raises(MismatchError, match="gray-to-rgb"):
        fit_images(x, rgb)
    assert fit_images(x, rgb, gray_to_rgb=True).shape == (2, 3, 32, 32)


def _tiny_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, 8, 8, generator=g) < 0.3).float() * 0.8
    return ImageSet.create(x, torch.zeros(n, dtype=torch.long), ["x"], {"name": "tiny"})


TINY = GlowConfig(channels=1, image_size=8, levels=2, steps=1, width=8)


def test_training_lowers_bpd_and_file_round_trips(tmp_path):
    out = tmp_path / "flow.safetensors"
    cfg = FlowTrainConfig(epochs=3, batch_size=16, lr=3e-3, warmup_steps=2, init_batch=32, test_images=32)
    model, log = train_flow(_tiny_data(), _tiny_data(32, 1), model_config=TINY, config=cfg, out=out, progress=False)
    assert log[-1]["train_bpd"] < log[0]["train_bpd"]
    assert (tmp_path / "flow.safetensors.log.json").exists()
    loaded = load_flow(out)
    x = _tiny_data(8, 2).images
    assert torch.allclose(score_bpd(loaded, x), score_bpd(model, x), atol=1e-5)


def test_resume_after_kill_gives_same_weights(tmp_path):
    cfg = FlowTrainConfig(epochs=2, batch_size=16, lr=3e-3, warmup_steps=2, init_batch=32, test_images=16)
    ref, _ = train_flow(_tiny_data(), None, model_config=TINY, config=cfg, out=tmp_path / "a.safetensors",
                        progress=False)

    def kill(entry, model):
        if entry["epoch"] == 1:
            raise KeyboardInterrupt  # the process dies after the first checkpoint

    with pytest.raises(KeyboardInterrupt):
        train_flow(_tiny_data(), None, model_config=TINY, config=cfg, out=tmp_path / "b.safetensors",
                   progress=False, on_epoch=kill)
    assert not (tmp_path / "b.safetensors").exists() and (tmp_path / "b.safetensors.ckpt").exists()
    resumed, log = train_flow(_tiny_data(), None, model_config=TINY, config=cfg, out=tmp_path / "b.safetensors",
                              resume=True, progress=False)
    assert [e["epoch"] for e in log] == [1, 2]
    a, b = ref.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = FlowTrainConfig(epochs=3, batch_size=16, lr=3e-3, warmup_steps=2, init_batch=32, test_images=16)
    out = tmp_path / "n.safetensors"

    def poison(entry, model):
        if entry["epoch"] == 1:
            with torch.no_grad():
                for p in model.parameters():
                    p.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match="epoch 2.*last good checkpoint"):
        train_flow(_tiny_data(), None, model_config=TINY, config=cfg, out=out, progress=False, on_epoch=poison)
    from simplebits.io import load_state

    st = load_state(str(out) + ".ckpt")
    assert st["epoch"] == 1 and all(torch.isfinite(v).all() for v in st["model"].values())
    assert not out.exists()


def test_model_file_errors(tmp_path):
    m = Glow(TINY)
    p = tmp_path / "m.safetensors"
    save_flow(p, m)
    assert load_flow(p).config == TINY
    data = p.read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError):
        load_flow(tmp_path / "t.safetensors")
    from simplebits.data.condensed import save_condensed

    save_condensed(tmp_path / "c.safetensors", _tiny_data(4), method="x")
    with pytest.raises(CorruptFileError, match="not a density model"):
        load_flow(tmp_path / "c.safetensors")
    (tmp_path / "junk.safetensors").write_text("hello")
    with pytest.raises(CorruptFileError):
        load_flow(tmp_path / "junk.safetensors")


def test_resume_with_more_epochs_extends_exactly(tmp_path):
    kw = dict(batch_size=16, lr=3e-3, warmup_steps=2, init_batch=32, test_images=16)
    ref, _ = train_flow(_tiny_data(), None, model_config=TINY, config=FlowTrainConfig(epochs=2, **kw),
                        out=tmp_path / "a.safetensors", progress=False)
    train_flow(_tiny_data(), None, model_config=TINY, config=FlowTrainConfig(epochs=1, **kw),
               out=tmp_path / "b.safetensors", progress=False, keep_checkpoint=True)
    ext, log = train_flow(_tiny_data(), None, model_config=TINY, config=FlowTrainConfig(epochs=2, **kw),
                          out=tmp_path / "b.safetensors", resume=True, progress=False, keep_checkpoint=True)
    assert len(log) == 2
    assert all(torch.equal(ref.state_dict()[k], ext.state_dict()[k]) for k in ref.state_dict())
    with pytest.raises(BadInputError, match="other settings"):
        train_flow(_tiny_data(), None, model_config=TINY, config=FlowTrainConfig(epochs=3, **{**kw, "lr": 1e-2}),
                   out=tmp_path / "b.safetensors", resume=True, progress=False)


def test_finished_run_removes_its_checkpoint_and_an_interrupted_one_is_never_discarded(tmp_path):
    kw = dict(batch_size=16, lr=3e-3, warmup_steps=2, init_batch=32, test_images=16)
    out = tmp_path / "f.safetensors"
    train_flow(_tiny_data(), None, model_config=TINY, config=FlowTrainConfig(epochs=1, **kw), out=out, progress=False)
    assert out.exists() and not (tmp_path / "f.safetensors.ckpt").exists()
    with pytest.raises(BadInputError, match="already finished"):
        train_flow(_tiny_data(), None, model_config=TINY, config=FlowTrainConfig(epochs=1, **kw), out=out,
                   resume=True, progress=False)
    # an interrupted run (a checkpoint without --resume) is refused, not deleted; restart=True starts over
    stale = tmp_path / "g.safetensors"
    train_flow(_tiny_data(), None, model_config=TINY, config=FlowTrainConfig(epochs=1, **kw), out=stale,
               progress=False, keep_checkpoint=True)
    stale.unlink()
    ckpt = tmp_path / "g.safetensors.ckpt"
    before = ckpt.read_bytes()
    with pytest.raises(BadInputError, match="interrupted run.*--resume"):
        train_flow(_tiny_data(), None, model_config=TINY, config=FlowTrainConfig(epochs=1, **kw), out=stale,
                   progress=False)
    assert ckpt.read_bytes() == before
    train_flow(_tiny_data(), None, model_config=TINY, config=FlowTrainConfig(epochs=1, **kw), out=stale,
               progress=False, restart=True)
    assert stale.exists() and not ckpt.exists()


# ----------------------------------------------------------------------------- the bpd term of a loss
def test_one_bpd_term_serves_condense_simplify_and_explain():
    """simplebits.density.BpdTerm: per-example, differentiable, seeded; score is the reported bpd;
    condense's mean form and simplify's old name are the same class."""
    from simplebits.condense.simplification import BpdTerm as CondenseTerm
    from simplebits.density import BpdTerm
    from simplebits.simplify.joint import DensityTerm

    assert DensityTerm is BpdTerm and issubclass(CondenseTerm, BpdTerm)
    term = BpdTerm(None, shape=(1, 28, 28), device="cpu")
    assert term.spec == "gray32" and not any(p.requires_grad for p in term.model.parameters())
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    each = term(x, generator=torch.Generator().manual_seed(1))
    again = term(x, generator=torch.Generator().manual_seed(1))
    assert each.shape == (3,) and torch.equal(each, again)
    (gx,) = torch.autograd.grad(each.sum(), x)
    assert gx.abs().sum() > 0  # straight-through rounding passes the gradient
    mean = CondenseTerm(None, shape=(1, 28, 28), device="cpu")(x, generator=torch.Generator().manual_seed(1),
                                                                  straight_through=True)
    assert torch.equal(mean, each.mean())
    torch.testing.assert_close(term.score(x.detach()), score_bpd(term.model, fit_images(x.detach(), term.model)))
    assert term.score(x[:0]).shape == (0,)


def test_bpd_term_takes_a_given_model_and_names_a_mismatch():
    from simplebits.density import BpdTerm

    model = perturbed_glow(TINY).train()
    term = BpdTerm(shape=(1, 6, 6), model=model)
    assert term.model is model and not model.training and term.spec == "Glow"
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(MismatchError, match=r"density model 'gray32' does not fit images of shape \(3, 28, 28\)"
                                            r": images have 3 channel\(s\) but the density model takes 1; "
                                            r"choose --density for this data \(rgb32, the shipped"):
        BpdTerm("gray32", shape=(3, 28, 28))
    # too large: the size a model must have (condense and simplify have no --resize, which bpd's message offers)
    with pytest.raises(MismatchError, match=r"train-flow YOUR_DATA --size 64 ") as e:
        BpdTerm("gray32", shape=(1, 64, 48))
    assert "--resize" not in str(e.value)
