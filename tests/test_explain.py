"""Post-hoc simplification (paper §5): losses, selection, classifier files, saliency, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from simplebits.cli.main import main
from simplebits.data.npz import save_npz
from simplebits.errors import BadInputError, CorruptFileError, MismatchError
from simplebits.explain import (
    expected_gradients, gate_gradients, grad_distance, kl, load_explained, make_explain_config, prediction_difference,
    select_images, simplify_posthoc,
)
from simplebits.models import create_model
from simplebits.train.checkpoint import ClassifierInfo, check_classifier_input, load_classifier, save_classifier


def _net(seed=0, channels=1, size=16, classes=3):
    return create_model("convnet", channels=channels, num_classes=classes, image_size=size, width=4, depth=2,
                        seed=seed).eval()


def _images(n=4, c=1, s=16, seed=0):
    return (torch.rand(n, c, s, s, generator=torch.Generator().manual_seed(seed)) * 255).round() / 255


# ------------------------------------------------------------------------ losses
def test_kl_is_zero_only_for_equal_predictions():
    a = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(kl(a, a), torch.zeros(5), atol=1e-6)
    assert bool((kl(a, a.flip(1)) > 0).all())


def test_gate_gradients_match_a_per_example_loop():
    net = _net()
    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = {k: v.detach() for k, v in net.named_buffers()}
    x, h = _images(3), torch.randn(3, 3, generator=torch.Generator().manual_seed(1))
    got = gate_gradients(net, params, buffers, 0.9, x, h)
    for i in range(3):
        gates = {k: torch.full_like(v, 0.9, requires_grad=True) for k, v in params.items()}
        out = torch.func.functional_call(net, ({k: params[k] * gates[k] for k in params}, buffers), (x[i : i + 1],))
        loss = kl(h[i : i + 1], out).sum()
        grads = torch.autograd.grad(loss, list(gates.values()))
        for (k, _), g in zip(gates.items(), grads):
            assert torch.allclose(got[k][i], g, atol=1e-5), k


def test_torchscript_path_gives_the_same_losses_and_input_gradients():
    net = _net()
    x = _images(3)
    ts = torch.jit.trace(_net(), x)  # same weights (same seed), traced
    h = net(x).detach()
    x_new = _images(3, seed=5).requires_grad_(True)
    from simplebits.explain import ForgettingLoss

    a = ForgettingLoss(net)(x, h, x_new, 0.9)
    ga = torch.autograd.grad(a["grad"] + a["pred"], x_new)[0]
    b = ForgettingLoss(ts)(x, h, x_new, 0.9)
    gb = torch.autograd.grad(b["grad"] + b["pred"], x_new)[0]
    assert float(a["grad"]) == pytest.approx(float(b["grad"]), abs=1e-4)
    assert float(a["pred"]) == pytest.approx(float(b["pred"]), abs=1e-5)
    assert torch.allclose(ga, gb, atol=1e-4)


def test_grad_distance_counts_only_negative_original_entries():
    g = torch.Generator().manual_seed(0)
    a = {"w": torch.randn(2, 10, generator=g)}
    assert float(grad_distance(a, a)) == pytest.approx(0.0, abs=1e-6)
    b = {"w": a["w"].clone()}
    b["w"][a["w"] >= 0] = 100.0  # entries where the original gradient is not negative do not count
    assert float(grad_distance(a, b)) == pytest.approx(0.0, abs=1e-6)
    assert float(grad_distance(a, {"w": -a["w"]})) == pytest.approx(2.0, abs=1e-5)


# ------------------------------------------------------------------------ selection, files
def test_select_images_errors_and_choice():
    labels = torch.tensor([0, 1, 2, 0, 1])
    preds = torch.tensor([0, 1, 0, 0, 2])
    assert select_images(preds, labels, "misclassified", None).tolist() == [2, 4]
    assert select_images(preds, labels, "3,1", None).tolist() == [3, 1]
    got = select_images(preds, labels, "correct", 2, seed=0)
    assert len(got) == 2 and set(got.tolist()) <= {0, 1, 3} and got.tolist() == sorted(got.tolist())
    with pytest.raises(BadInputError, match="larger than the 2 misclassified"):
        select_images(preds, labels, "misclassified", 3)
    with pytest.raises(BadInputError, match="no misclassified"):
        select_images(labels, labels, "misclassified", 1)
    with pytest.raises(BadInputError, match="0..4"):
        select_images(preds, labels, "7", None)


def test_classifier_files_round_trip_torchscript_and_refusals(tmp_path):
    net = _net()
    save_classifier(tmp_path / "c.safetensors", net, name="convnet", channels=1, image_size=16,
                    classes=["a", "b", "c"], options={"width": 4, "depth": 2})
    back, info = load_classifier(tmp_path / "c.safetensors")
    x = _images(2)
    assert torch.equal(back(x), net(x)) and info.classes == ("a", "b", "c") and info.channels == 1
    torch.jit.save(torch.jit.trace(net, x), str(tmp_path / "c.ts"))
    with pytest.raises(BadInputError, match="TorchScript files are programs.*--trust-code"):
        load_classifier(tmp_path / "c.ts")  # code: refused unless trusted
    ts, info2 = load_classifier(tmp_path / "c.ts", trust_code=True)
    assert info2.kind == "torchscript" and torch.allclose(ts(x), net(x), atol=1e-6)
    torch.save(net.state_dict(), tmp_path / "state.pt")  # a pickle: refused, never loaded
    with pytest.raises(CorruptFileError, match="does not unpickle"):
        load_classifier(tmp_path / "state.pt")
    (tmp_path / "junk.bin").write_bytes(b"not a model at all")
    with pytest.raises(CorruptFileError):
        load_classifier(tmp_path / "junk.bin")


def test_data_that_does_not_fit_the_density_model_is_clear():
    net = _net(size=40)
    with pytest.raises(MismatchError, match="40x40 but the density model takes 32x32"):
        simplify_posthoc(net, _images(2, s=40), config=make_explain_config(steps=1))


def test_default_lambda_depends_on_the_space():
    assert make_explain_config(space="latent").lambda_sim == 0.1
    assert make_explain_config(space="input").lambda_sim == 3.0
    assert make_explain_config(space="input", lambda_sim=0.5).lambda_sim == 0.5
    with pytest.raises(BadInputError):
        make_explain_config(steps=0)


def test_classifier_input_mismatch_is_clear():
    net = _net(channels=1, size=16, classes=3)
    info = ClassifierInfo("simplebits", "convnet", {}, 1, 16, ("a", "b", "c"))
    with pytest.raises(MismatchError, match="1x16x16"):
        check_classifier_input(net, info, _images(2, c=3), 3)
    with pytest.raises(MismatchError, match="3 classes|10 classes"):
        check_classifier_input(net, info, _images(2), 10)
    check_classifier_input(net, info, _images(2), 3)


# ------------------------------------------------------------------------ saliency
class _LeftHalf(nn.Module):
    """Logits from the left half of the image only."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(16 * 8, 3)

    def forward(self, x):
        return self.lin(x[:, 0, :, :8].flatten(1))


def test_saliency_maps_are_zero_where_the_classifier_does_not_look():
    torch.manual_seed(0)
    net = _LeftHalf()
    x, refs = _images(2), _images(20, seed=3)
    t = net(x).argmax(1)
    eg = expected_gradients(net, x, t, refs, samples=16)
    pda = prediction_difference(net, x, t, refs, window=4, stride=4, samples=4)
    assert eg.shape == (2, 16, 16) and pda.shape == (2, 16, 16)
    assert float(eg[:, :, 8:].abs().max()) == 0.0 and float(eg[:, :, :8].abs().max()) > 0
    assert float(pda[:, :, 8:].abs().max()) == 0.0 and float(pda[:, :, :8].abs().max()) > 0


def test_saliency_batching_changes_speed_not_the_maps():
    net = create_model("convnet", channels=1, num_classes=3, image_size=16, seed=0, width=8).eval()
    x, refs = _images(2), _images(20, seed=3)
    t = net(x).argmax(1)
    for fn, kw in ((expected_gradients, {"samples": 16}), (prediction_difference, {"samples": 4})):
        default, small = fn(net, x, t, refs, seed=1, **kw), fn(net, x, t, refs, seed=1, chunk=5, **kw)
        assert float(default.abs().max()) > 0
        torch.testing.assert_close(default, small, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------ optimisation
@pytest.mark.parametrize("space", ["latent", "input"])
def test_posthoc_outputs_and_determinism(space):
    net = _net()
    x = _images(3)
    cfg = make_explain_config(space=space, steps=3, batch_size=2)
    a = simplify_posthoc(net, x, config=cfg)
    b = simplify_posthoc(net, x, config=cfg)
    assert a.images.shape == x.shape and torch.equal(a.images, b.images)
    assert all(p.requires_grad for p in net.parameters())  # the classifier comes back trainable
    assert torch.equal(a.images * 255, (a.images * 255).round())
    assert a.bpd_orig.shape == (3,) and a.pred_sim.shape == (3,) and 0 <= a.agreement <= 1
    assert len(a.log) >= 2


def test_originals_the_density_model_does_not_fit_are_named():
    """16x16 uniform noise costs gray32 more bits than its raw values: the explanation's loss pulls by
    the flow's blind spots there, and the result says so in simplify's words; flat images do not."""
    from simplebits.data import ImageSet
    from simplebits.explain import explain

    net, cfg = _net(), make_explain_config(steps=1)
    res = simplify_posthoc(net, _images(3), config=cfg)
    assert res.blind_spots == 3 and res.summary()["blind_spots"] == 3 and res.summary()["density"] == "gray32"
    assert res.blind_spot_note("noise").startswith("3 of 3 images of noise cost gray32 8 bits or more per value")
    ok = simplify_posthoc(net, torch.full((3, 1, 16, 16), 0.5), config=cfg)
    assert ok.blind_spots == 0 and ok.blind_spot_note("flat") is None
    data = ImageSet(_images(4), torch.arange(4) % 3, ("a", "b", "c"), {"name": "noise"})
    s = explain(net, data, select="0,1,2,3", n=None, config=cfg, saliency=False, progress=False).summary()
    assert s["n"] == 4 and s["blind_spot_note"].startswith("4 of 4 images of noise cost gray32")


def test_non_finite_steps_are_skipped_and_a_diverged_explanation_names_the_fix(monkeypatch):
    """8x8 digits under gray32 once ended `simplebits explain` with "images contain NaN or infinite
    values" about the user's own, clean images: the flow's inverse overflowed on the latent path at
    step 118 and Adam carried the NaN into the result. A non-finite step is now skipped; steps that
    stay non-finite stop the run with what happened and what to do."""
    from simplebits.density import load_flow
    from simplebits.errors import DivergedError

    net, x, flow = _net(), _images(2), load_flow("gray32")
    decode, calls = flow.decode, {"n": 0}

    def flaky(z):  # NaN on calls 3-5 (steps 1 and 2: two decodes per step in latent space)
        calls["n"] += 1
        return decode(z) * float("nan") if 3 <= calls["n"] <= 5 else decode(z)

    monkeypatch.setattr(flow, "decode", flaky)
    res = simplify_posthoc(net, x, config=make_explain_config(steps=8), flow=flow)
    assert torch.isfinite(res.images).all() and torch.isfinite(res.bpd_sim).all()
    monkeypatch.setattr(flow, "decode", lambda z: decode(z) * float("nan"))
    with pytest.raises(DivergedError, match=r"20 steps in a row gave NaN.*step 19, latent space.*pass --space input"):
        simplify_posthoc(net, x, config=make_explain_config(steps=40), flow=flow)
    # non-finite from the last steps on, fewer than 20 of them: the same error, not NaN images
    def flaky_tail(z):
        calls["n"] += 1
        return decode(z) * float("nan") if calls["n"] > 10 else decode(z)

    calls["n"] = 0
    monkeypatch.setattr(flow, "decode", flaky_tail)
    with pytest.raises(DivergedError, match=r"3 steps in a row gave NaN.*step 7, latent space"):
        simplify_posthoc(net, x, config=make_explain_config(steps=8), flow=flow)


def test_posthoc_lowers_bpd_and_keeps_the_prediction_of_a_simple_classifier():
    """The left-half classifier needs only the left half: after optimisation the simplified
    images keep its predictions at a far lower bpd than the noise images they stand for."""
    torch.manual_seed(0)
    net = _LeftHalf()
    x = _images(4)
    res = simplify_posthoc(net, x, config=make_explain_config(space="input", steps=80, lr=0.1, lambda_sim=0.2))
    assert res.agreement == 1.0
    assert res.bpd_reduction > 0.3


# ------------------------------------------------------------------------ CLI
def _blob_npz(path, n=30, c=1):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    x = rng.random((n, c, 16, 16)).astype(np.float32) * 0.3
    for i, lab in enumerate(y):
        x[i, :, 5 * lab : 5 * lab + 5, 3:13] += 0.6
    save_npz(path, np.clip(x, 0, 1), y, classes=["a", "b", "c"])


def test_cli_train_classifier_and_explain(tmp_path, capsys):
    _blob_npz(tmp_path / "d.npz")
    clf = tmp_path / "clf.safetensors"
    assert main(["train-classifier", f"npz:{tmp_path / 'd.npz'}", "--out", str(clf), "--epochs", "2",
                 "--width", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["file"] == str(clf)
    out = tmp_path / "ex"
    assert main(["explain", str(clf), str(tmp_path / "d.npz"), "--select", "0,1,2", "--n", "2", "--steps", "2",
                 "--references", str(tmp_path / "d.npz"), "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n"] == 2 and (out / "figure.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "explained.safetensors").is_file() and (out / "explain.json").is_file()
    back = load_explained(out / "explained.safetensors")  # results read back whole
    assert back.posthoc.images.shape == (2, 1, 16, 16) and back.posthoc.config.steps == 2
    # 16x16 images padded to gray32's 32x32: both units (4x), read back with the results
    assert doc["bpd_orig_native"] == pytest.approx(4 * doc["bpd_orig"])
    assert doc["bpd_sim_native"] == pytest.approx(4 * doc["bpd_sim"])
    assert doc["units"]["padding_fraction"] == 0.75 and back.posthoc.units == doc["units"]
    assert back.expected_gradients.shape == (2, 16, 16) and back.indices.tolist() == doc["indices"]
    # a TorchScript classifier works the same way
    model, _ = load_classifier(clf)
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 16, 16)), str(tmp_path / "clf.ts"))
    assert main(["explain", str(tmp_path / "clf.ts"), str(tmp_path / "d.npz"), "--select", "0,1", "--n", "2",
                 "--steps", "2", "--no-saliency", "--out", str(tmp_path / "ex-ts"), "--json"]) == 2  # code: not trusted
    assert "--trust-code" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "clf.ts"), str(tmp_path / "d.npz"), "--select", "0,1", "--n", "2",
                 "--steps", "2", "--no-saliency", "--out", str(tmp_path / "ex-ts"), "--json", "--trust-code"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 2
    # --n larger than the selection, wrong channel count: one line, exit 2
    assert main(["explain", str(clf), str(tmp_path / "d.npz"), "--select", "0,1", "--n", "5", "--out", str(out)]) == 2
    assert "larger than the 2" in capsys.readouterr().err
    _blob_npz(tmp_path / "rgb.npz", c=3)
    assert main(["explain", str(clf), str(tmp_path / "rgb.npz"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1x16x16" in err
