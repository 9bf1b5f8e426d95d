"""The reported bpd is a code length: the dequantisation bound, deterministic, in named units;
train-flow holds data out, stops early and writes a model card."""

import json

import pytest
import torch

from simplebits.data import ImageSet
from simplebits.density import (
    FlowTrainConfig,
    Glow,
    GlowConfig,
    bpd,
    load_flow,
    measure_bits,
    save_flow,
    score_bpd,
    set_bits,
    train_flow,
)
from conftest import perturbed_glow
from simplebits.density.store import SHIPPED, card_note, card_path
from simplebits.errors import BadInputError, NotFoundError

TINY = GlowConfig(channels=1, image_size=8, levels=2, steps=1, width=8)


def _perturbed(cfg: GlowConfig = TINY, seed: int = 0) -> Glow:
    return perturbed_glow(cfg, seed)


def _images(n=16, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, size, size), generator=g).float() / 255


def _checker(c):
    i = torch.arange(32)
    return ((i[:, None] + i[None]) % 2).float().expand(1, c, 32, 32).clone()


@pytest.mark.parametrize("name", SHIPPED)
def test_bound_is_never_negative_for_constant_and_checkerboard_images(name):
    m = load_flow(name)
    c = m.config.channels
    x = torch.cat([torch.zeros(1, c, 32, 32), torch.ones(1, c, 32, 32), torch.full((1, c, 32, 32), 0.5), _checker(c)])
    v = score_bpd(m, x)
    assert (v >= 0).all() and torch.isfinite(v).all()  # finite too: the raw escape bounds blind spots
    if name == "gray32":  # why midpoint is not the default: it is a density estimate, negative for black
        assert float(score_bpd(m, x[:1], dequantize="midpoint")[0]) < 0


def test_raw_escape_caps_blind_spots_and_costs_nothing_where_the_flow_is_good():
    m = load_flow("gray32")
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (6, 1, 32, 32), generator=g).float() / 255
    black = torch.zeros(2, 1, 32, 32)
    cap = 8 + 10 / 1024  # 8 bits per dimension stored raw, plus a 10-bit flag
    flow_noise = score_bpd(m, noise, escape=0)
    assert (flow_noise > cap).all()  # the flow alone codes noise worse than raw bytes
    assert torch.allclose(score_bpd(m, noise), torch.full((6,), cap), atol=1e-4)
    assert float(score_bpd(m, _checker(1), escape=0)[0]) > cap  # a blind spot (overflows to inf)
    assert float(score_bpd(m, _checker(1))[0]) == pytest.approx(cap, abs=1e-4)
    # where the flow codes well, the escape costs at most -log2(1 - 2^-10) / D bits per dimension
    assert torch.allclose(score_bpd(m, black), score_bpd(m, black, escape=0), atol=1e-5)
    b = measure_bits(m, torch.cat([noise, black]))
    s = b.summary()
    assert s["escaped"] == 6 and s["escape"] == 2**-10 and s["bpd_flow_alone"]["count"] == 8
    assert "6 of 8 images cost the flow no fewer bits than storing the model's input raw" in b.escape_note()
    assert "per dimension of the images as given" not in b.escape_note()  # nothing was padded
    assert measure_bits(m, black).escape_note() is None
    # padded images: the escape stores the padded input, and the note says what that is per native dimension
    padded = measure_bits(m, _checker(1)[:, :, 2:30, 2:30])  # a 28x28 blind spot, zero-padded to 32x32
    assert padded.escaped == 1 and "10.46 per dimension of the images as given" in padded.escape_note()
    assert float(padded.bpd_native[0]) == pytest.approx(cap * 1024 / 784, abs=1e-3)
    with pytest.raises(BadInputError, match="escape"):
        score_bpd(m, black, escape=1.0)


def test_bpd_and_simplify_count_the_same_blind_spots():
    """`simplebits bpd` and simplify's note once gave one folder 142 and 137 blind spots: the bpd note
    counted images whose flow-alone mean passed the escape's cap, simplify those whose reported figure is
    8 bpd or more, and the escape mixes per noise draw. One function counts both now."""
    from sklearn.datasets import load_digits

    from simplebits.density.bpd import blind_spots

    d = torch.tensor(load_digits().images[[117, 118, 153, 154]] / 16.0).float()
    a = torch.kron(d, torch.ones(4, 4))  # blocky 32x32 digits in three colours: rgb32 barely fits them
    x = torch.round(torch.stack([a, 1 - a, a / 2], 1) * 255) / 255
    b = measure_bits(load_flow("rgb32"), x)
    cap = 8 + 10 / 3072
    assert int((b.bpd_flow > cap).sum()) > blind_spots(b.bpd)  # the draws straddle the cap on some images
    assert b.escaped == blind_spots(b.bpd, 1.0)  # what simplify's note counts for images as given
    assert b.escape_note().startswith(f"{blind_spots(b.bpd)} of 4 images")


def test_a_few_blind_spots_are_outliers_not_a_model_that_does_not_fit():
    """A flow trained on 1,400 8x8 digits still coded 3 of them in more than 8 bits per value, and simplify
    then told the user that the model does not fit their data and to train one on it, which they had
    done. Below 5% of the images the note calls them outliers and names no fix."""
    from simplebits.density.bpd import BLIND_SPOT_SHARE, blind_spot_note

    few = blind_spot_note(3, 1400, "mine.safetensors", "npz:d.npz")
    assert few.startswith("3 of 1400 images of npz:d.npz (0.2%) cost mine.safetensors 8 bits or more per value")
    assert "outliers" in few and "train-flow" not in few and "does not fit this data" not in few
    many = blind_spot_note(70, 1400, "gray32", "npz:d.npz")
    assert BLIND_SPOT_SHARE == 0.05 and "does not fit this data" in many and "simplebits train-flow npz:d.npz" in many
    assert blind_spot_note(0, 1400, "gray32", "d") is None


def test_escape_loss_is_the_flow_below_8_bpd_bit_for_bit_and_bounded_without_gradient_above():
    """The simplifier's --escape-loss: a blind spot costs the raw escape (about 8 bpd, no gradient),
    never 1e9 bpd with a gradient to match; images the flow codes in under 8 bpd keep their loss
    and its gradient exactly."""
    from simplebits.density import BpdTerm
    from simplebits.density.bpd import escape_cap

    b = torch.tensor([0.5, 4.0, 7.999, 8.0, 8.001, 9.0, 1e3, 1e9], requires_grad=True)
    capped = escape_cap(b, 1024)
    capped.sum().backward()
    assert torch.equal(capped[:4], b[:4].detach()) and torch.equal(b.grad[:4], torch.ones(4))
    assert (capped[4:] > 8).all() and (capped[4:] <= 8 + 10 / 1024 + 1e-6).all()  # the raw escape's cost
    assert float(capped[4].detach()) == pytest.approx(8.001, abs=1e-5)  # continuous where the escape takes over
    assert b.grad[-3:].abs().max() < 1e-6  # no push from deep inside a blind spot
    assert torch.equal(escape_cap(b, 1024, 0.0), b)

    term = BpdTerm("gray32", shape=(1, 28, 28))
    x = torch.cat([torch.zeros(2, 1, 28, 28), torch.full((2, 1, 28, 28), 0.3)]).requires_grad_()
    plain = term(x, generator=torch.Generator().manual_seed(1))
    (g_plain,) = torch.autograd.grad(plain.sum(), x)
    esc = term(x, generator=torch.Generator().manual_seed(1), escape=True)
    (g_esc,) = torch.autograd.grad(esc.sum(), x)
    assert (plain < 8).all() and torch.equal(plain, esc) and torch.equal(g_plain, g_esc)
    chk = _checker(1)[:, :, :28, :28]  # a blind spot of gray32 (score above: the flow alone overflows)
    assert float(term(chk, generator=torch.Generator().manual_seed(1))[0]) > 1e3
    assert float(term(chk, generator=torch.Generator().manual_seed(1), escape=True)[0]) <= 8 + 10 / 1024 + 1e-6


def test_bound_is_deterministic_and_independent_of_batching():
    m, x = _perturbed(), _images(20)  # the flow alone (escape=0): this tiny model codes noise above 8 bpd
    a = score_bpd(m, x, seed=3, escape=0)
    assert torch.equal(a, score_bpd(m, x, seed=3, escape=0))
    assert torch.allclose(a, score_bpd(m, x, seed=3, batch_size=3, escape=0), atol=1e-6)
    # an image's figure does not depend on the images scored beside it
    assert torch.allclose(a[5:6], score_bpd(m, x[5:6], seed=3, escape=0), atol=1e-6)
    assert not torch.equal(a, score_bpd(m, x, seed=4, escape=0))


def test_stratified_draws_estimate_the_same_bound_with_less_spread():
    m, x = _perturbed(), _images(8)
    seeds = 150
    strat = torch.stack([score_bpd(m, x, draws=2, seed=s, escape=0) for s in range(seeds)]).double()
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        indep = torch.stack([torch.stack([bpd(m, x, dequantize="uniform", generator=g) for _ in range(2)]).mean(0)
                             for _ in range(seeds)]).double()
    # unbiased: both estimate E_u[-log p(x+u)]; the means over seeds agree within their standard errors
    se = ((strat.var(0) + indep.var(0)) / seeds).sqrt()
    assert ((strat.mean(0) - indep.mean(0)).abs() < 4 * se + 1e-6).all()
    assert strat.std(0).mean() < indep.std(0).mean()
    # more draws, less spread
    four = torch.stack([score_bpd(m, x, draws=4, seed=s, escape=0) for s in range(40)]).double()
    assert four.std(0).mean() < strat[:40].std(0).mean()


def test_measure_bits_reports_both_units_and_the_padding():
    m = _perturbed(GlowConfig(channels=1, image_size=16, levels=2, steps=1, width=8))
    x = _images(6, size=8)
    b = measure_bits(m, x)
    assert b.model_dims == 256 and b.native_dims == 64 and b.padding_fraction == pytest.approx(0.75)
    assert torch.allclose(b.bpd_native, b.bpd * 4, atol=1e-4)
    assert torch.allclose(b.bits, b.bpd * 256, atol=1e-3)
    assert "zero-padded 8x8 -> 16x16" in b.transform_note() and "75% of the model's input is padding" in b.transform_note()
    s = b.summary()
    assert s["unit"] == "bits per model dimension" and s["dequantize"] == "bound" and s["draws"] == b.draws
    same = measure_bits(m, _images(6, size=16))
    assert same.transform_note() is None and torch.equal(same.bpd, same.bpd_native)


def test_set_bits_scores_png_on_the_images_as_given():
    x = _images(4, size=8)
    r = set_bits(x)  # the shipped gray32 pads 8x8 to 32x32; PNG does not
    from simplebits.density.compress import png_bpd

    assert r["png_bpd"] == pytest.approx(float(png_bpd(x).double().mean()))
    assert r["native_dims"] == 64 and r["model_dims"] == 1024 and "padding" in r["note"]
    big = set_bits(torch.zeros(2, 1, 40, 40))  # does not fit: PNG still, flow None with the reason
    assert big["bpd"] is None and "40x40" in big["bpd_error"] and big["png_bpd"] > 0


@pytest.mark.parametrize("bad,kw,match", [
    (torch.full((2, 1, 8, 8), float("nan")), {}, "NaN"),
    (torch.full((2, 1, 8, 8), 1.5), {}, r"\[0, 1\]"),
    (torch.zeros(0, 1, 8, 8), {}, "no images"),
    (torch.zeros(2, 1, 8, 8), {"draws": 0}, "draws"),
    (torch.zeros(2, 1, 8, 8), {"dequantize": "uniform"}, "bound, midpoint"),
])
def test_bad_input_is_one_clear_error(bad, kw, match):
    with pytest.raises(BadInputError, match=match):
        score_bpd(_perturbed(), bad, **kw)


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, 8, 8, generator=g) < 0.3).float() * 0.8
    return ImageSet.create(x, torch.zeros(n, dtype=torch.long), ["x"], {"name": "tiny"})


def test_early_stopping_keeps_the_best_epoch_and_writes_a_card(tmp_path):
    # lr so small that nothing improves after epoch 1: stops after `patience` more epochs
    cfg = FlowTrainConfig(epochs=10, batch_size=16, lr=1e-12, warmup_steps=1, init_batch=32, test_images=32,
                          patience=2)
    out = tmp_path / "f.safetensors"
    _, log = train_flow(_data(), _data(32, 1), model_config=TINY, config=cfg, out=out, progress=False,
                        card={"trained_on": ["tiny"], "command": "test"})
    assert len(log) == 3
    card = json.loads(card_path(out).read_text())
    assert card["stopped_early"] and card["kept_epoch"] == 1 and card["epochs_run"] == 3
    assert card["test_bpd"] == log[0]["test_bpd"] and card["command"] == "test"
    assert load_flow(out).card["kept_epoch"] == 1


def test_resume_with_early_stopping_writes_the_same_model(tmp_path):
    cfg = FlowTrainConfig(epochs=3, batch_size=16, lr=3e-3, warmup_steps=2, init_batch=32, test_images=16, patience=1)
    ref, _ = train_flow(_data(), _data(16, 1), model_config=TINY, config=cfg, out=tmp_path / "a.safetensors",
                        progress=False)

    def kill(entry, model):
        if entry["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_flow(_data(), _data(16, 1), model_config=TINY, config=cfg, out=tmp_path / "b.safetensors",
                   progress=False, on_epoch=kill)
    resumed, _ = train_flow(_data(), _data(16, 1), model_config=TINY, config=cfg, out=tmp_path / "b.safetensors",
                            resume=True, progress=False)
    a, b = ref.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_flow_without_a_card_loads_with_a_note(tmp_path):
    p = tmp_path / "old.safetensors"
    save_flow(p, Glow(TINY))
    m = load_flow(p)
    assert m.card is None and "no model card" in card_note(m)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_carry_cards(name):
    m = load_flow(name)
    card = m.card
    assert card is not None and card_note(m) is None
    assert card["unit"] == "bits per model dimension" and "bound" in card["dequantize"]
    assert card["command"] and card["test_bpd_per_set"] and card["train_seconds"] > 0


def test_flow_identity_names_the_weights_so_a_file_written_again_is_a_new_model(tmp_path):
    """Cached bpd figures are keyed by the weights, not the name: a flow file that train-flow
    writes again under the same path gets a new digest; the same bytes keep theirs."""
    from simplebits.density import flow_digest, flow_identity

    p = tmp_path / "mine.safetensors"
    save_flow(p, _perturbed(seed=0))
    first = flow_identity(p, 1)
    assert first == {"model": str(p), "weights": flow_digest(p)} and len(first["weights"]) == 16
    save_flow(tmp_path / "copy.safetensors", _perturbed(seed=0))
    assert flow_digest(tmp_path / "copy.safetensors") == first["weights"]  # same weights, same digest
    save_flow(p, _perturbed(seed=1))  # trained again: same path, other weights
    assert flow_identity(p, 1)["weights"] != first["weights"]
    assert flow_identity(None, 1)["model"] == "gray32" and flow_identity("", 3)["model"] == "rgb32"
    with pytest.raises(NotFoundError, match="not found"):
        flow_digest(tmp_path / "missing.safetensors")
