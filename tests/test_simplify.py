"""SimpleBits during training: the unrolled step, the gated loss, skips, resume, files, baselines, CLI."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_blobs
from simplebits.cli.main import main
from simplebits.data import ImageSet
from simplebits.data.condensed import load_condensed
from simplebits.density import flow_digest
from simplebits.errors import BadInputError, DivergedError, MismatchError
from simplebits.simplify import (
    JointTrainer,
    apply_simplifier,
    gaussian_blur,
    jpeg,
    load_simplifier,
    make_simplify_config,
    simplify,
    simplify_baselines,
    tradeoff,
)
from simplebits.simplify import runner as runner_mod
from simplebits.train.seeding import generator

TINY = dict(epochs=2, batch_size=8, classifier_options={"width": 8}, simplifier_options={"ngf": 4, "downsamples": 2},
            retrain_epochs=1, finetune_epochs=1)


def tiny_cfg(**kw):
    return make_simplify_config(**{**TINY, **kw})


def data(n=12, k=2, seed=0):
    return make_blobs(n, k, (1, 16, 16), seed=seed)


# ------------------------------------------------------------------ the unrolled update
def _trainer(**kw):
    return JointTrainer(tiny_cfg(**kw), channels=1, image_hw=(16, 16), num_classes=2)


def test_adamw_unrolled_update_equals_torch_adamw_step():
    """theta' of the differentiable AdamW update is exactly what torch.optim.AdamW would do next."""
    tr = _trainer(inner="adamw", lr_clf=1e-2, wd_clf=1e-2)
    ds = data()
    x, y = ds.images[:8], ds.labels[:8]
    clf, opt = tr.classifier, tr.opt_clf
    for _ in range(2):  # give the optimiser non-trivial moments
        opt.zero_grad()
        nn.functional.cross_entropy(clf(x), y).backward()
        opt.step()
    params = dict(clf.named_parameters())
    loss = nn.functional.cross_entropy(clf(x), y)
    grads = torch.autograd.grad(loss, tuple(params.values()), create_graph=True)
    new = tr._inner_update(params, grads)
    clf2, opt2 = copy.deepcopy(clf), None
    opt2 = torch.optim.AdamW(clf2.parameters(), lr=1e-2, weight_decay=1e-2)
    opt2.load_state_dict(opt.state_dict())
    for p, g in zip(clf2.parameters(), grads):
        p.grad = g.detach().clone()
    opt2.step()
    for (k, v), p in zip(new.items(), clf2.parameters()):
        torch.testing.assert_close(v.detach(), p.detach(), rtol=1e-5, atol=1e-6, msg=k)


def test_sgd_unrolled_update_is_differentiable_in_the_simplified_batch():
    tr = _trainer(inner="sgd", inner_lr=0.1)
    ds = data()
    x_sim = ds.images[:8].clone().requires_grad_()
    params = dict(tr.classifier.named_parameters())
    loss = nn.functional.cross_entropy(tr.classifier(x_sim), ds.labels[:8])
    grads = torch.autograd.grad(loss, tuple(params.values()), create_graph=True)
    new = tr._inner_update(params, grads)
    for (k, p), g in zip(params.items(), grads):
        torch.testing.assert_close(new[k].detach(), (p - 0.1 * g).detach())
    after = torch.func.functional_call(tr.classifier, new, (ds.images[:8],))
    (gx,) = torch.autograd.grad(nn.functional.cross_entropy(after, ds.labels[:8]), x_sim)
    assert gx.abs().sum() > 0  # the original-data loss after the step reaches the simplified images


def test_bpd_gate_only_opens_below_the_loss_threshold(monkeypatch):
    """bpd is computed only for examples whose post-step loss is under bpd_gate."""
    tr = _trainer(lambda_sim=1.0, bpd_gate=1e-9)  # gate never opens: bpd never computed
    called = []
    monkeypatch.setattr(tr.density, "__call__", lambda *a, **k: called.append(1))
    ds = data()
    g = generator(0, "t")
    rec = tr.step(ds.images[:8], ds.labels[:8], g_aug=g, g_noise=g, dropout_seed=1)
    assert rec is not None and rec["gate_open"] == 0.0 and not called
    tr2 = _trainer(lambda_sim=1.0, bpd_gate=1e9)  # always open
    rec = tr2.step(ds.images[:8], ds.labels[:8], g_aug=g, g_noise=g, dropout_seed=1)
    assert rec["gate_open"] == 1.0 and rec["bpd_open"] > 0


class _NaNSimplifier(nn.Module):
    """Identity with a learnable scale that returns NaN on the calls listed in ``bad``."""

    def __init__(self, bad):
        super().__init__()
        self.a = nn.Parameter(torch.ones(()))
        self.bad, self.calls = bad, 0

    def forward(self, x):
        self.calls += 1
        out = (x * self.a).clamp(0, 1)
        return out * float("nan") if self.bad(self.calls) else out


def test_non_finite_steps_are_skipped_counted_and_stop_after_max_skips():
    ds = data(16)
    cfg = tiny_cfg(max_skips=3, epochs=1)
    tr = JointTrainer(cfg, channels=1, image_hw=(16, 16), num_classes=2, simplifier=_NaNSimplifier(lambda c: c % 2 == 0))
    before = copy.deepcopy(tr.classifier.state_dict())
    rec = tr.epoch(ds.images, ds.labels, epoch=0)
    assert rec["skipped_steps"] == 2  # 4 steps of 8, every second one NaN
    assert any(not torch.equal(before[k], v) for k, v in tr.classifier.state_dict().items())
    tr = JointTrainer(cfg, channels=1, image_hw=(16, 16), num_classes=2, simplifier=_NaNSimplifier(lambda c: True))
    with pytest.raises(DivergedError, match="3 joint steps in a row"):
        tr.epoch(ds.images, ds.labels, epoch=0)


# ------------------------------------------------------------------ bad input
def test_negative_lambda_one_class_and_density_mismatch_are_clear_errors():
    ds = data()
    with pytest.raises(BadInputError, match="lambda-sim"):
        simplify(ds, ds, lambdas=[-0.5], config=tiny_cfg())
    one = ImageSet.create(ds.images, torch.zeros(len(ds), dtype=torch.long), ["only"])
    with pytest.raises(BadInputError, match="one class"):
        simplify(one, one, config=tiny_cfg())
    rgb = ImageSet.create(ds.images.repeat(1, 3, 1, 1), ds.labels, ds.classes)
    with pytest.raises(MismatchError, match="does not fit"):
        simplify(rgb, rgb, config=tiny_cfg(density="gray32"))
    big = ImageSet.create(torch.rand(8, 1, 40, 40), torch.arange(8) % 2, 2)
    with pytest.raises(MismatchError, match="40x40"):
        simplify(big, big, config=tiny_cfg())


def test_own_flow_file_is_the_loss_and_the_measure_of_a_run(tmp_path):
    """``density=<flow file>`` (the density-model ablation, a user's own model) drives the run: the
    cell records that file and its digest, and its figures are that model's scores, not gray32's."""
    from simplebits.density import BpdTerm, Glow, GlowConfig, save_flow

    torch.manual_seed(0)
    flow = tmp_path / "own.safetensors"
    save_flow(flow, Glow(GlowConfig(channels=1, image_size=16, levels=2, steps=1, width=8)))
    train, test = data(12), data(6, seed=5)
    res = simplify(train, test, lambdas=[0.5], config=tiny_cfg(density=str(flow), epochs=1), progress=False)
    cell, made = res.cells[0], res.simplified["lam0.5-s0"].images
    assert cell["density"] == str(flow) and cell["weights"] == flow_digest(str(flow)) != flow_digest("gray32")
    own = BpdTerm(str(flow), shape=train.shape)
    assert cell["bpd"] == pytest.approx(float(own.score(made).mean()), abs=1e-6)
    assert cell["bpd_original"] == pytest.approx(float(own.score(train.images).mean()), abs=1e-6)
    shipped = float(BpdTerm(None, shape=train.shape).score(made).mean())
    assert abs(shipped - cell["bpd"]) > 0.1  # another model's figure, so the file really was used


# ------------------------------------------------------------------ lambda = 0 and the warm-up
def test_warmup_epochs_train_the_classifier_alone_and_are_capped_in_short_presets():
    """During the warm-up the simplifier stays the identity and the classifier learns; the quick
    preset's warm-up never takes a short run's only epoch; an explicit impossible one is an error."""
    assert make_simplify_config(preset="quick").warmup_epochs == 1
    assert make_simplify_config(preset="quick", epochs=1).warmup_epochs == 0
    assert make_simplify_config(preset="paper").warmup_epochs == 0
    with pytest.raises(BadInputError, match="warmup-epochs"):
        make_simplify_config(preset="quick", epochs=2, warmup_epochs=2)
    tr = _trainer(warmup_epochs=1, lambda_sim=1.0)
    ds = data(16)
    sim0 = copy.deepcopy(tr.simplifier.state_dict())
    clf0 = copy.deepcopy(tr.classifier.state_dict())
    rec = tr.epoch(ds.images, ds.labels, epoch=0)
    assert rec["warmup"] and rec["skipped_steps"] == 0
    assert all(torch.equal(v, tr.simplifier.state_dict()[k]) for k, v in sim0.items())
    assert not all(torch.equal(v, tr.classifier.state_dict()[k]) for k, v in clf0.items())
    rec = tr.epoch(ds.images, ds.labels, epoch=1)  # the joint epoch: now the simplifier learns
    assert not rec["warmup"]
    assert not all(torch.equal(v, tr.simplifier.state_dict()[k]) for k, v in sim0.items())


class _ExactIdentity(nn.Module):
    """A simplifier that returns its input exactly while its one parameter is 0."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x + self.a * (x - 0.5)


@pytest.mark.parametrize("relative", [True, False])
def test_relative_terms_give_the_identity_no_push_at_lambda_zero(relative):
    """With the classification terms relative to the originals', an exact identity has nothing
    to gain at lambda 0 (zero simplifier gradient); the paper's absolute terms push it."""
    ds = data(16)
    x, y = ds.images[:16], ds.labels[:16]
    cfg = tiny_cfg(lambda_sim=0.0, relative=relative, warmup_epochs=0)
    tr = JointTrainer(cfg, channels=1, image_hw=(16, 16), num_classes=2, simplifier=_ExactIdentity())
    for _ in range(3):  # a classifier with some training behind it
        tr.opt_clf.zero_grad()
        nn.functional.cross_entropy(tr.classifier(x), y).backward()
        tr.opt_clf.step()
    rec = tr.step(x, y, g_aug=generator(0, "a"), g_noise=generator(0, "n"), dropout_seed=1)
    assert rec is not None
    g = float(tr.simplifier.a.grad.abs())
    if relative:
        assert g < 1e-6 and rec["loss"] < 1e-6, (g, rec)
    else:
        assert g > 1e-4, (g, rec)


def test_no_unrolled_step_trains_the_simplifier_on_the_plain_classification_loss():
    """--no-unrolled (the ablation): at lambda 0 the simplifier's gradient is that of l(f(X_sim))
    under the classifier as it is, and the classifier takes the same AdamW step as on X_sim alone;
    with relative terms an exact identity gets no push."""
    ds = data(16)
    x, y = ds.images[:16], ds.labels[:16]
    for relative in (False, True):
        cfg = tiny_cfg(lambda_sim=0.0, relative=relative, warmup_epochs=0, unrolled=False)
        tr = JointTrainer(cfg, channels=1, image_hw=(16, 16), num_classes=2, simplifier=_ExactIdentity())
        ref = copy.deepcopy(tr.classifier)
        ref_opt = torch.optim.AdamW(ref.parameters(), lr=cfg.lr_clf, weight_decay=cfg.wd_clf)
        a = torch.zeros((), requires_grad=True)
        l_ref = nn.functional.cross_entropy(ref(x + a * (x - 0.5)), y)
        want = float(torch.autograd.grad(l_ref, a, retain_graph=True)[0])
        ref_opt.zero_grad()
        l_ref.backward()
        ref_opt.step()
        rec = tr.step(x, y, g_aug=generator(0, "a"), g_noise=generator(0, "n"), dropout_seed=1)
        assert rec is not None
        got = float(tr.simplifier.a.grad)
        if relative:
            assert abs(got) < 1e-6, got
        else:
            assert abs(want) > 1e-4 and got == pytest.approx(want, rel=1e-4, abs=1e-7), (got, want)
        for (k, p), q in zip(tr.classifier.named_parameters(), ref.parameters()):
            assert torch.allclose(p, q, atol=1e-6), k


def test_no_gate_counts_every_example_bpd():
    """--no-gated (the ablation): the bpd term is computed for every example, even where the gate
    (threshold bpd_gate) would keep it closed, and enters the loss with weight 1."""
    ds = data()
    g = generator(0, "t")
    x, y = ds.images[:8], ds.labels[:8]
    closed = _trainer(lambda_sim=1.0, bpd_gate=1e-9)
    assert closed.step(x, y, g_aug=g, g_noise=g, dropout_seed=1)["gate_open"] == 0.0
    for unrolled in (True, False):
        tr = _trainer(lambda_sim=1.0, bpd_gate=1e-9, gated=False, unrolled=unrolled)
        seen = []
        real = tr.density

        def spy(images, **kw):
            seen.append(images.shape[0])
            return real(images, **kw)

        tr.density = spy
        rec = tr.step(x, y, g_aug=generator(0, "t"), g_noise=generator(0, "t"), dropout_seed=1)
        assert rec["gate_open"] == 1.0 and seen == [8] and rec["bpd_open"] > 0


def test_ablation_switches_keep_earlier_digests_and_are_validated():
    """The switches at their defaults leave a run's settings digest as before (finished runs stay
    resumable); turned off they change it; a non-boolean value is a clear error."""
    from simplebits.simplify.config import config_from_dict

    # a run saved before the switches existed (its settings have neither key) keeps its digest
    saved = tiny_cfg().to_dict()
    assert "gated" not in saved and "unrolled" not in saved  # at their defaults, left out (stage keys hold)
    old_digest = hashlib.sha256(json.dumps({k: v for k, v in saved.items() if k not in (
        "epochs", "retrain_epochs", "finetune_epochs", "retrain_seeds")}, sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    assert config_from_dict(saved).digest() == tiny_cfg().digest() == old_digest
    base = tiny_cfg()
    assert len({base.digest(), tiny_cfg(gated=False).digest(), tiny_cfg(unrolled=False).digest()}) == 3
    off = tiny_cfg(gated=False, unrolled=False)
    assert config_from_dict(off.to_dict()) == off
    with pytest.raises(BadInputError, match="unrolled must be true or false"):
        tiny_cfg(unrolled="no")


@contextlib.contextmanager
def _interrupted_at_epoch(monkeypatch, at: int):
    """Joint training killed (KeyboardInterrupt) as epoch ``at`` starts, after the previous epoch's
    checkpoint; the real epoch is back when the block ends."""
    real_epoch = JointTrainer.epoch

    def dying(self, *a, epoch, **k):
        if epoch == at:
            raise KeyboardInterrupt
        return real_epoch(self, *a, epoch=epoch, **k)

    monkeypatch.setattr(JointTrainer, "epoch", dying)
    try:
        yield
    finally:
        monkeypatch.setattr(JointTrainer, "epoch", real_epoch)


def test_reinit_every_gives_the_simplifier_fresh_classifiers_and_resumes_to_the_same_result(tmp_path, monkeypatch):
    """--reinit-every N: every N-th joint epoch after the first starts from a newly initialised
    classifier (new optimiser) that first learns one pass from the simplified images alone; the
    schedule, the log and a run resumed at such an epoch are as documented."""
    cfg = tiny_cfg(epochs=5, warmup_epochs=1, reinit_every=2, lambda_sim=0.5)
    tr = JointTrainer(cfg, channels=1, image_hw=(16, 16), num_classes=2)
    assert [e for e in range(cfg.epochs) if tr.reinit_due(e)] == [3]
    assert [e for e in range(6) if JointTrainer(tiny_cfg(epochs=6, warmup_epochs=1, reinit_every=1), channels=1,
                                                image_hw=(16, 16), num_classes=2).reinit_due(e)] == [2, 3, 4, 5]
    assert not any(_trainer().reinit_due(e) for e in range(10))  # 0 (the default): never
    ds = data(16)
    for e in range(3):
        tr.epoch(ds.images, ds.labels, epoch=e)
    before, opt_before = tr.classifier, tr.opt_clf
    w_before = [p.detach().clone() for p in before.parameters()]
    fresh = JointTrainer(cfg, channels=1, image_hw=(16, 16), num_classes=2)
    fresh._new_classifier("classifier-init/3")
    init = [p.detach().clone() for p in fresh.classifier.parameters()]
    seen = []
    real_warm = JointTrainer.warmup_step

    def spy(self, x, y, **k):  # the re-warm pass starts from the fresh initialisation
        if not seen:
            seen.append([torch.equal(p, q) for p, q in zip(self.classifier.parameters(), init)])
        return real_warm(self, x, y, **k)

    monkeypatch.setattr(JointTrainer, "warmup_step", spy)
    rec = tr.epoch(ds.images, ds.labels, epoch=3)
    monkeypatch.setattr(JointTrainer, "warmup_step", real_warm)
    assert seen and all(seen[0])
    assert tr.classifier is not before and tr.opt_clf is not opt_before
    assert all(torch.equal(p, q) for p, q in zip(before.parameters(), w_before))  # the old one is left alone
    steps = int(next(iter(tr.opt_clf.state.values()))["step"])
    assert steps == 2 * (len(ds) // 8)  # batches of 8: one re-warm pass and one joint pass, nothing before
    assert rec["reinit"] is True and 0 <= rec["rewarm_acc_sim"] <= 1 and rec["rewarm_l_sim"] > 0
    assert "reinit" not in tr.epoch(ds.images, ds.labels, epoch=4)

    # a run interrupted before a re-initialising epoch resumes to the uninterrupted result
    train, test = data(12), data(6, seed=5)
    cfg = tiny_cfg(epochs=3, warmup_epochs=1, reinit_every=1)
    full = simplify(train, test, lambdas=[0.5], config=cfg, out=tmp_path / "a", progress=False)
    with _interrupted_at_epoch(monkeypatch, 2), pytest.raises(KeyboardInterrupt):
        simplify(train, test, lambdas=[0.5], config=cfg, out=tmp_path / "b", progress=False)
    resumed = simplify(train, test, lambdas=[0.5], config=cfg, out=tmp_path / "b", resume=True, progress=False)
    torch.testing.assert_close(resumed.simplified["lam0.5-s0"].images, full.simplified["lam0.5-s0"].images,
                               rtol=0, atol=0)
    assert [r.get("reinit", False) for r in full.cells[0]["log"]] == [False, False, True]


def _on_grid(ds):
    """``ds`` rounded to the 8-bit grid (as loaded image files are): the identity simplifier returns it unchanged."""
    return ImageSet(torch.round(ds.images * 255) / 255, ds.labels, ds.classes, dict(ds.meta))


def test_select_within_keeps_the_lowest_bpd_qualifying_epoch_and_leaves_the_training_alone(tmp_path, monkeypatch):
    """--select-within F: after every joint epoch the simplifier is checked on held-out training
    images; the cell keeps the checked state with the lowest held-out bpd among those whose transfer
    is within F of the originals'. The checks do not change the training, the kept simplifier is the
    chosen epoch's, and a run resumed mid-way chooses the same."""
    from simplebits.density import BpdTerm
    from simplebits.simplify.select import EpochSelector

    train, test = _on_grid(data(12)), _on_grid(data(6, seed=5))
    cfg = tiny_cfg(epochs=4, warmup_epochs=1, lambda_sim=2.0)
    plain = simplify(train, test, lambdas=[2.0], config=cfg, out=tmp_path / "plain", progress=False).cells[0]
    sel_cfg = tiny_cfg(epochs=4, warmup_epochs=1, lambda_sim=2.0, select_within=0.99)
    res = simplify(train, test, lambdas=[2.0], config=sel_cfg, out=tmp_path / "sel", progress=False)
    cell = res.cells[0]
    # the training is the same, epoch by epoch
    assert [r["bpd_probe"] for r in cell["log"]] == [r["bpd_probe"] for r in plain["log"]]
    assert [r["w"] for r in cell["log"]] == [r["w"] for r in plain["log"]]
    sel = cell["select"]
    # checked: the state before the first joint step (after the warm-up epoch 0), then every joint epoch
    assert [c["epoch"] for c in sel["checks"]] == [0, 1, 2, 3]
    first = sel["checks"][0]
    assert first["accuracy"] == sel["reference"] and first["qualifies"]  # the identity is the reference
    ok = [c for c in sel["checks"] if c["qualifies"]]
    assert sel["epoch"] == min(ok, key=lambda c: c["bpd"])["epoch"]
    assert all(c["qualifies"] == (c["accuracy"] >= sel["reference"] - 0.99 - 1e-9) for c in sel["checks"])
    # the saved simplifier is the chosen epoch's: it gives the chosen check's held-out bpd again
    density = BpdTerm(None, shape=train.shape)
    held = EpochSelector(train, sel_cfg, density).held_part.images
    assert sel["holdout"] == len(held) == 2
    saved = load_simplifier(tmp_path / "sel" / "lam2-s0" / "simplifier.safetensors")
    again = density.score(apply_simplifier(saved, held)).mean()
    assert float(again) == pytest.approx(sel["bpd"], abs=1e-6)
    if sel["epoch"] == 3:  # the last epoch chosen: the same set as the plain run
        assert cell["bpd"] == plain["bpd"]
    # resumed after epoch 2's checkpoint: the same checks, the same choice, the same set
    with _interrupted_at_epoch(monkeypatch, 2), pytest.raises(KeyboardInterrupt):
        simplify(train, test, lambdas=[2.0], config=sel_cfg, out=tmp_path / "b", progress=False)
    resumed = simplify(train, test, lambdas=[2.0], config=sel_cfg, out=tmp_path / "b", resume=True, progress=False)
    assert resumed.cells[0]["select"] == sel
    assert torch.equal(resumed.simplified["lam2-s0"].images, res.simplified["lam2-s0"].images)

    # nothing qualifies after the first joint step: the unsimplified state is kept, and said so
    real = EpochSelector._transfer

    def failing(self, fit_images):
        return real(self, fit_images) if torch.equal(fit_images, self.fit_part.images) else [0.0]

    monkeypatch.setattr(EpochSelector, "_transfer", failing)
    none = simplify(train, test, lambdas=[2.0], config=tiny_cfg(epochs=3, warmup_epochs=1, lambda_sim=2.0,
                                                                  select_within=0.0),
                    out=tmp_path / "none", progress=False)
    assert none.cells[0]["select"]["epoch"] == 0 and "unsimplified" in none.cells[0]["select"]["note"]
    assert torch.equal(none.simplified["lam2-s0"].images, train.images)  # the identity on the 8-bit grid


def test_select_within_is_validated_and_keeps_earlier_digests():
    from simplebits.density import BpdTerm
    from simplebits.simplify.select import EpochSelector

    base = tiny_cfg()
    assert "select_within" not in base.to_dict() and tiny_cfg(select_within=None).digest() == base.digest()
    assert tiny_cfg(select_within=0.05).digest() != base.digest()
    for bad in (-0.1, 1.0, True, float("nan")):
        with pytest.raises(BadInputError, match="select-within must be a fraction"):
            tiny_cfg(select_within=bad)
    with pytest.raises(BadInputError, match="retrain-epochs must be >= 1"):
        tiny_cfg(select_within=0.05, retrain_epochs=0)
    density = BpdTerm(None, shape=(1, 16, 16))

    def part(labels, seed):
        n = len(labels)
        images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 16, 16) / 255
        ds = ImageSet(images.contiguous(), torch.tensor(labels), ("a", "b"), {"name": "t"})
        sel = EpochSelector(ds, tiny_cfg(select_within=0.05, seed=seed), density)
        return [round(float(x) * 255) for x in sel.fit_part.images[:, 0, 0, 0]], \
            [round(float(x) * 255) for x in sel.held_part.images[:, 0, 0, 0]], sel.held_part.labels.tolist()

    with pytest.raises(BadInputError, match="class 1 has 1"):
        part([0, 0, 0, 1], 0)
    keep, held, held_labels = part([0] * 20 + [1] * 9, 3)
    assert held == sorted(held) and sorted(held_labels) == [0, 0, 1]  # 2 of 20, 1 of 9
    assert sorted(keep + held) == list(range(29))
    assert part([0] * 20 + [1] * 9, 3)[1] == held  # seeded


def test_select_seeds_checks_with_several_classifiers_and_keeps_their_mean(tmp_path, monkeypatch):
    """--select-seeds K: each check trains K fresh classifiers; its transfer (and the reference) is
    their mean, the first of them the one-classifier check's; the training is unchanged, a resumed
    run gives the same checks, and K = 1 keeps the earlier digest."""
    train, test = _on_grid(data(12)), _on_grid(data(6, seed=5))
    kw = dict(epochs=3, warmup_epochs=1, lambda_sim=2.0, select_within=0.99)
    one = simplify(train, test, lambdas=[2.0], config=tiny_cfg(**kw), out=tmp_path / "one", progress=False).cells[0]
    cfg = tiny_cfg(**kw, select_seeds=3)
    three = simplify(train, test, lambdas=[2.0], config=cfg, out=tmp_path / "three", progress=False).cells[0]
    assert [r["w"] for r in three["log"]] == [r["w"] for r in one["log"]]  # the checks leave the training alone
    sel = three["select"]
    assert sel["classifiers"] == 3 and len(sel["reference_runs"]) == 3
    assert sel["reference"] == pytest.approx(sum(sel["reference_runs"]) / 3)
    assert sel["reference_runs"][0] == one["select"]["reference"]
    from simplebits.cli.simplify import _selected_line

    assert "mean of 3 classifiers" in _selected_line(three) and "classifiers" not in _selected_line(one)
    for c, c1 in zip(sel["checks"][1:], one["select"]["checks"][1:]):
        assert len(c["accuracy_runs"]) == 3 and c["accuracy"] == pytest.approx(sum(c["accuracy_runs"]) / 3)
        assert c["accuracy_runs"][0] == c1["accuracy"] and c["bpd"] == c1["bpd"]
        assert c["qualifies"] == (c["accuracy"] >= sel["reference"] - 0.99 - 1e-9)
    with _interrupted_at_epoch(monkeypatch, 1), pytest.raises(KeyboardInterrupt):
        simplify(train, test, lambdas=[2.0], config=cfg, out=tmp_path / "b", progress=False)
    resumed = simplify(train, test, lambdas=[2.0], config=cfg, out=tmp_path / "b", resume=True, progress=False)
    assert resumed.cells[0]["select"] == sel
    base = tiny_cfg(select_within=0.05)
    assert "select_seeds" not in base.to_dict() and tiny_cfg(select_within=0.05, select_seeds=1).digest() == base.digest()
    assert tiny_cfg(select_within=0.05, select_seeds=2).digest() != base.digest()
    for bad in (0, 1.5, True):
        with pytest.raises(BadInputError, match="select-seeds must be an integer >= 1"):
            tiny_cfg(select_within=0.05, select_seeds=bad)
    with pytest.raises(BadInputError, match="set select-within as well"):
        tiny_cfg(select_seeds=2)


def test_backtrack_returns_to_the_last_state_that_passed_with_smaller_steps(tmp_path, monkeypatch):
    """--backtrack FACTOR: after a joint epoch whose check fails, the next epoch starts from the best
    state that passed (here the unsimplified one, as every joint epoch is made to fail), with the
    simplifier's learning rate times FACTOR; the log says so; a run resumed mid-way does the same."""
    from simplebits.simplify.select import EpochSelector

    real = EpochSelector._transfer

    def failing(self, fit_images):  # every simplified set fails; the originals are the reference
        return real(self, fit_images) if torch.equal(fit_images, self.fit_part.images) else [0.0]

    monkeypatch.setattr(EpochSelector, "_transfer", failing)
    seen = []  # the simplifier's weights as each joint epoch starts
    real_epoch = JointTrainer.epoch

    def spying(self, *a, epoch, **k):
        seen.append({n: p.detach().clone() for n, p in self.simplifier.named_parameters()})
        return real_epoch(self, *a, epoch=epoch, **k)

    monkeypatch.setattr(JointTrainer, "epoch", spying)
    train, test = _on_grid(data(12)), _on_grid(data(6, seed=5))
    cfg = tiny_cfg(epochs=4, warmup_epochs=1, lambda_sim=2.0, lr_sim=0.05, select_within=0.0, backtrack=0.5)
    res = simplify(train, test, lambdas=[2.0], config=cfg, out=tmp_path / "a", progress=False)
    log = res.cells[0]["log"]
    joint = [r for r in log if not r["warmup"]]
    assert [r["select_qualifies"] for r in joint] == [False, False, False]
    assert [r["backtrack_to"] for r in joint] == [0, 0, 0]  # the state before the first joint step
    assert [r["lr_sim"] for r in joint] == pytest.approx([cfg.lr_sim * 0.5 ** k for k in (1, 2, 3)])
    # epochs 2 and 3 start from the weights epoch 1 started from (the unsimplified state), not where it ended
    assert len(seen) == 4
    for later in seen[2:]:
        assert all(torch.equal(later[n], seen[1][n]) for n in seen[1])
    assert torch.equal(res.simplified["lam2-s0"].images, train.images)  # the kept state: the identity
    from simplebits.cli.simplify import _selected_line
    assert "went back 3 times after a failed check (simplifier learning rate now 0.00625)" in _selected_line(res.cells[0])
    # without backtrack the same failing run trains on: its second joint epoch starts where the first ended
    seen.clear()
    plain = tiny_cfg(epochs=4, warmup_epochs=1, lambda_sim=2.0, lr_sim=0.05, select_within=0.0)
    simplify(train, test, lambdas=[2.0], config=plain, out=tmp_path / "plain", progress=False)
    assert not all(torch.equal(seen[2][n], seen[1][n]) for n in seen[1])
    # resumed after epoch 2's checkpoint: the same log, learning rates included
    with _interrupted_at_epoch(monkeypatch, 2), pytest.raises(KeyboardInterrupt):
        simplify(train, test, lambdas=[2.0], config=cfg, out=tmp_path / "b", progress=False)
    resumed = simplify(train, test, lambdas=[2.0], config=cfg, out=tmp_path / "b", resume=True, progress=False)
    strip = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in resumed.cells[0]["log"]] == \
        [{k: v for k, v in r.items() if k not in strip} for r in log]


def test_backtrack_is_validated_and_keeps_earlier_digests():
    base = tiny_cfg(select_within=0.05)
    assert "backtrack" not in base.to_dict() and tiny_cfg(select_within=0.05, backtrack=None).digest() == base.digest()
    assert tiny_cfg(select_within=0.05, backtrack=0.5).digest() != base.digest()
    for bad in (0, 1.0, -0.5, True, float("nan")):
        with pytest.raises(BadInputError, match="backtrack must be a factor"):
            tiny_cfg(select_within=0.05, backtrack=bad)
    with pytest.raises(BadInputError, match="set select-within as well"):
        tiny_cfg(backtrack=0.5)


class _BlindSpot(nn.Module):
    """A density with a blind spot: the flow's log-density minus a steep well, so every image costs
    about 2e6 bpd with a gradient to match (what a simplified image inside a Glow blind spot sees)."""

    def __init__(self, flow):
        super().__init__()
        self.flow, self.config = flow, flow.config

    def log_prob(self, y):
        return self.flow.log_prob(y) - 1e8 * (y + 0.5).pow(2).flatten(1).sum(1)


def _escape_pair(escape_loss, blind):
    torch.manual_seed(0)
    tr = _trainer(lambda_sim=2.0, gated=False, escape_loss=escape_loss)  # every example's bpd counts
    if blind:
        tr.density.model = _BlindSpot(tr.density.model)
    ds = data(16)
    g = generator(0, "t")
    recs = [tr.step(ds.images[i:i + 8], ds.labels[i:i + 8], g_aug=g, g_noise=g, dropout_seed=i) for i in (0, 8)]
    return tr, recs


def test_escape_loss_bounds_a_blind_spot_and_leaves_other_runs_bit_for_bit():
    """--escape-loss: in a blind spot of the flow the bpd term is the raw escape (about 8 bpd) and the
    simplifier's optimiser is not flooded; below 8 bpd the run is the run without it, bit for bit."""
    cap = 8 + 10 / 256  # per model dimension of the 16x16 test images
    tr_b, recs_b = _escape_pair(False, blind=True)
    tr_e, recs_e = _escape_pair(True, blind=True)
    assert all(r["bpd_open"] > 1e4 for r in recs_b)
    assert all(8 < r["bpd_open"] <= cap + 1e-4 for r in recs_e) and all(r["loss"] < 10 for r in recs_e)
    v_b = max(float(s["exp_avg_sq"].max()) for s in tr_b.opt_sim.state.values())
    v_e = max(float(s["exp_avg_sq"].max()) for s in tr_e.opt_sim.state.values())
    assert v_b > 1e6 * v_e  # the moments a blind spot leaves behind freeze the simplifier's later steps
    plain, _ = _escape_pair(False, blind=False)
    esc, recs = _escape_pair(True, blind=False)
    assert all(r["bpd_open"] < 8 for r in recs)
    for (k, a), b in zip(plain.simplifier.state_dict().items(), esc.simplifier.state_dict().values()):
        assert torch.equal(a, b), k


def test_escape_loss_is_validated_and_keeps_earlier_digests():
    base = tiny_cfg()
    assert "escape_loss" not in base.to_dict() and tiny_cfg(escape_loss=False).digest() == base.digest()
    on = tiny_cfg(escape_loss=True)
    assert on.digest() != base.digest() and on.to_dict()["escape_loss"] is True
    from simplebits.simplify.config import config_from_dict

    assert config_from_dict(on.to_dict()).escape_loss is True
    with pytest.raises(BadInputError, match="escape_loss must be true or false"):
        tiny_cfg(escape_loss="yes")


def test_reinit_every_keeps_earlier_digests_and_is_validated():
    """0 (never, the default) leaves a run's settings and digest as before; a setting changes
    the digest; a negative or non-integer value is a clear error."""
    base = tiny_cfg()
    assert "reinit_every" not in base.to_dict()
    assert tiny_cfg(reinit_every=0).digest() == base.digest() != tiny_cfg(reinit_every=1).digest()
    from simplebits.simplify.config import config_from_dict

    assert config_from_dict(tiny_cfg(reinit_every=2).to_dict()).reinit_every == 2
    for bad in (-1, 1.5, True):
        with pytest.raises(BadInputError, match="reinit-every must be an integer >= 0"):
            tiny_cfg(reinit_every=bad)


def test_grad_floor_keeps_the_forward_and_gives_black_pixels_a_gradient(tmp_path):
    """grad_floor F: the simplifier's output is bit for bit the same, and the gradient through the
    output sigmoid is max(s (1 - s), F), so pixels at black (s (1 - s) ~ 1e-3 here, ~0 when saturated)
    still pass the loss's gradient to the simplifier; it is saved with the simplifier; 0 (the
    default) leaves the model and the preset's settings as they were."""
    from simplebits.models import create_model
    from simplebits.models.unet import CLAMP_EPS

    kw = dict(channels=1, num_classes=2, image_size=16, ngf=4, downsamples=2, seed=3)
    plain, floored = create_model("unet-simplifier", **kw), create_model("unet-simplifier", grad_floor=0.02, **kw)
    x = torch.zeros(4, 1, 16, 16)
    x[:, :, 4:8, 4:8] = 0.7  # a grey patch on black
    grads = []
    for sim in (plain, floored):
        sim.w.data.fill_(0.5)
        out = sim(x)
        (g,) = torch.autograd.grad(out.sum(), [sim.w])
        grads.append((out.detach(), g))
    assert torch.equal(grads[0][0], grads[1][0])  # the same forward bits
    with torch.no_grad():  # by hand: d sum(out) / dw = sum(max(s (1 - s), F) * unet(x))
        u = plain.unet(x)
        s = torch.sigmoid(torch.logit(x.clamp(CLAMP_EPS, 1 - CLAMP_EPS)) + 0.5 * u)
        want_plain, want_floor = (s * (1 - s) * u).sum(), ((s * (1 - s)).clamp(min=0.02) * u).sum()
    torch.testing.assert_close(grads[0][1], want_plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[1][1], want_floor, rtol=1e-5, atol=1e-6)
    black = torch.zeros(2, 1, 16, 16)  # where everything is black, the floor is what passes
    g_plain, g_floor = (torch.autograd.grad(sim(black).sum(), [sim.w])[0] for sim in (plain, floored))
    assert abs(float(g_floor)) > 5 * abs(float(g_plain)) > 0
    for bad in (-0.1, 0.3, True):
        with pytest.raises(BadInputError, match="grad_floor must be a number in"):
            create_model("unet-simplifier", grad_floor=bad, **kw)
    assert "grad_floor" not in make_simplify_config().simplifier_options
    cfg = tiny_cfg(simplifier_options={"ngf": 4, "downsamples": 2, "grad_floor": 0.05})
    simplify(data(12), data(6, seed=5), lambdas=[0.5], config=cfg, out=tmp_path / "f", progress=False)
    assert load_simplifier(tmp_path / "f" / "lam0.5-s0" / "simplifier.safetensors").grad_floor == 0.05
    tr = _npz(tmp_path / "train.npz", data(8))
    assert main(["simplify", f"npz:{tr}", "--test", f"npz:{tr}", "--lambda-sim", "1", "--epochs", "2", "--batch-size",
                 "8", "--width", "8", "--retrain-epochs", "1", "--grad-floor", "0.03", "--out", str(tmp_path / "c"),
                 "--device", "cpu"]) == 0
    sim = load_simplifier(tmp_path / "c" / "lam1-s0" / "simplifier.safetensors")
    preset = create_model("unet-simplifier", channels=1, num_classes=2, image_size=16,
                          **make_simplify_config().simplifier_options)
    assert sim.grad_floor == 0.03  # and the flag joins the preset's other simplifier options:
    assert [p.shape for p in sim.parameters()] == [p.shape for p in preset.parameters()]


def _digits(n: int) -> ImageSet:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images[:n], dtype=torch.float32).unsqueeze(1) / 16.0
    x = nn.functional.interpolate(x, size=16, mode="nearest")
    return ImageSet.create(x, torch.tensor(d.target[:n]), [str(k) for k in range(10)], {"name": "digits-16"})


def test_lambda_zero_is_the_identity_in_effect_with_the_warmup():
    """At lambda 0 nothing asks for simpler images: after a quick-preset run (classifier warm-up,
    classification terms relative to the originals') the simplified digits stay within 2% of the
    originals' bpd and closer to them pixel by pixel than under the paper's schedule and terms,
    which drift."""
    ds = _digits(800)
    base = dict(lambda_sim=0.0, epochs=4, batch_size=16, classifier_options={"width": 16},
                simplifier_options={"ngf": 8, "downsamples": 2, "ws": True})
    change = {}
    for name, kw in (("paper", {"warmup_epochs": 0, "relative": False}), ("quick", {})):
        tr = JointTrainer(make_simplify_config(preset="quick", **kw, **base), channels=1, image_hw=(16, 16),
                          num_classes=10)
        for e in range(4):
            tr.epoch(ds.images, ds.labels, epoch=e)
        sim = tr.simplify_images(ds.images)
        q = torch.round(ds.images * 255) / 255
        ratio = float(tr.density.score(sim).mean() / tr.density.score(q).mean())
        change[name] = (ratio, float((sim - q).abs().mean()))
    ratio, mad = change["quick"]
    assert abs(ratio - 1) <= 0.02, change
    assert mad < change["paper"][1], change


# ------------------------------------------------------------------ the runner
def test_originals_cache_keeps_each_first_seed_of_one_directory(tmp_path, monkeypatch):
    # runs from two first seeds into one directory: each finds its own originals again, none retrains them twice
    train, test = data(12), data(6, seed=5)
    real_retrain, calls = runner_mod.retrain, []

    def counted(*a, **kw):
        calls.append(kw["seed"])
        return real_retrain(*a, **kw)

    monkeypatch.setattr(runner_mod, "retrain", counted)
    got = {}
    for seed in (0, 1, 0, 1):
        n = len(calls)
        got.setdefault(seed, []).append(
            runner_mod.retrain_originals(train, test, tiny_cfg(seed=seed), out_dir=tmp_path))
        fresh = len(calls) > n
        assert fresh == (len(got[seed]) == 1), (seed, calls)
    assert got[0][0] == got[0][1] and got[1][0] == got[1][1]
    assert got[0][0]["retrain_runs"] != got[1][0]["retrain_runs"]  # other seeds, other classifiers
    entries = runner_mod.originals_entries(tmp_path / "originals.json")
    assert sorted(e["key"]["settings"]["seed"] for e in entries) == [0, 1]
    # a file from before "others" existed (one entry at the top level) still reads as that entry
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "originals.json").write_text(json.dumps(got[0][0]))
    assert runner_mod.originals_entries(tmp_path / "old" / "originals.json") == [got[0][0]]
    assert runner_mod.originals_entries(tmp_path / "missing.json") == []


def test_run_writes_files_that_read_back_and_resume_gives_the_uninterrupted_result(tmp_path, monkeypatch):
    train, test = data(12), data(6, seed=5)
    full = simplify(train, test, lambdas=[0.5], config=tiny_cfg(), out=tmp_path / "a", progress=False)
    cell = full.cells[0]
    d = tmp_path / "a" / "lam0.5-s0"
    assert {p.name for p in d.iterdir()} == {"result.json", "simplifier.safetensors", "classifier.safetensors",
                                             "simplified.safetensors", "grid.png", "examples.safetensors"}
    on_disk = load_condensed(d / "simplified.safetensors")
    meta = json.loads((d / "result.json").read_text())
    assert meta["bpd"] == pytest.approx(cell["bpd"]) and set(meta["accuracy"]) == {"joint", "retrain", "finetune", "retrain_runs"}
    assert all(0 <= meta["accuracy"][k] <= 1 for k in ("joint", "retrain", "finetune"))
    # every result carries the originals retrained the same way (same seeds, same loop)
    from simplebits.simplify import retrain

    orig = retrain(train, test, cfg=tiny_cfg(), seed=0)["accuracy"]
    assert cell["accuracy"]["retrain_original"] == pytest.approx(orig)
    summary = json.loads((tmp_path / "a" / "simplify.json").read_text())["summary"][0]
    assert summary["retrain_original"]["mean"] == pytest.approx(orig)
    assert json.loads((tmp_path / "a" / "originals.json").read_text())["retrain_runs"] == [pytest.approx(orig)]
    # the saved simplifier reproduces the saved simplified set (8-bit grid)
    sim = load_simplifier(d / "simplifier.safetensors")
    again = apply_simplifier(sim, train.class_ordered().images)
    torch.testing.assert_close(again, on_disk.images)
    assert torch.equal(torch.round(on_disk.images * 255), on_disk.images * 255)

    # interrupted after epoch 1's checkpoint, then resumed -> the same simplified images and figures
    with _interrupted_at_epoch(monkeypatch, 1), pytest.raises(KeyboardInterrupt):
        simplify(train, test, lambdas=[0.5], config=tiny_cfg(), out=tmp_path / "b", progress=False)
    assert (tmp_path / "b" / "lam0.5-s0" / "checkpoint.ckpt").exists()
    with pytest.raises(BadInputError, match="--resume"):
        simplify(train, test, lambdas=[0.5], config=tiny_cfg(), out=tmp_path / "b", progress=False)
    with pytest.raises(MismatchError, match="other settings"):
        simplify(train, test, lambdas=[0.5], config=tiny_cfg(lr_sim=0.1), out=tmp_path / "b", resume=True)
    resumed = simplify(train, test, lambdas=[0.5], config=tiny_cfg(), out=tmp_path / "b", resume=True, progress=False)
    torch.testing.assert_close(resumed.simplified["lam0.5-s0"].images, full.simplified["lam0.5-s0"].images,
                               rtol=0, atol=0)
    assert resumed.cells[0]["accuracy"] == cell["accuracy"] and resumed.cells[0]["bpd"] == cell["bpd"]
    assert not (tmp_path / "b" / "lam0.5-s0" / "checkpoint.ckpt").exists()
    # a finished cell is skipped; other settings are refused without --force
    calls = []
    monkeypatch.setattr(runner_mod, "JointTrainer", lambda *a, **k: calls.append(1))
    simplify(train, test, lambdas=[0.5], config=tiny_cfg(), out=tmp_path / "b", progress=False)
    assert not calls
    # a cell finished under an older bpd definition is re-scored (not retrained): its bpd is the current one
    res_file = tmp_path / "b" / "lam0.5-s0" / "result.json"
    old = json.loads(res_file.read_text())
    old.pop("bits")
    old["bpd"] = -0.37
    res_file.write_text(json.dumps(old))
    again = simplify(train, test, lambdas=[0.5], config=tiny_cfg(), out=tmp_path / "b", progress=False)
    assert not calls and again.cells[0]["bpd"] == pytest.approx(cell["bpd"], abs=1e-9)
    assert json.loads(res_file.read_text())["bits"] == runner_mod.BITS_DEFINITION
    # ... and so is one scored under other weights of its density model (a newer shipped gray32)
    old = json.loads(res_file.read_text())
    assert old["weights"] == flow_digest("gray32")
    res_file.write_text(json.dumps({**old, "weights": "0" * 16, "bpd": -0.37}))
    again = simplify(train, test, lambdas=[0.5], config=tiny_cfg(), out=tmp_path / "b", progress=False)
    assert not calls and again.cells[0]["bpd"] == pytest.approx(cell["bpd"], abs=1e-9)
    assert json.loads(res_file.read_text())["weights"] == flow_digest("gray32")
    with pytest.raises(MismatchError, match="--force"):
        simplify(train, test, lambdas=[0.5], config=tiny_cfg(lr_clf=0.01), out=tmp_path / "b", progress=False)


def test_mse_simplifier_lowers_bpd_when_lambda_is_large():
    """The S8 baseline's simplifier responds to its bpd weight (and needs no classifier)."""
    train = data(16)
    cfg = tiny_cfg(mode="mse", epochs=6, lr_sim=0.01, retrain_epochs=1)
    res = simplify(train, None, lambdas=[0.0, 1.0], config=cfg, progress=False)
    by = {c["lambda_sim"]: c for c in res.cells}
    assert by[1.0]["bpd"] < by[0.0]["bpd"] - 0.05
    assert by[1.0]["accuracy"]["joint"] is None


# ------------------------------------------------------------------ baselines
def test_blur_and_jpeg_baselines_simplify_and_validate():
    x = data().images
    b1, b2 = gaussian_blur(x, 0.5), gaussian_blur(x, 2.0)
    assert b1.shape == x.shape and (b2 - b2.mean()).abs().mean() < (b1 - b1.mean()).abs().mean()
    flat = torch.full((1, 1, 16, 16), 0.4)
    torch.testing.assert_close(gaussian_blur(flat, 1.5), torch.round(flat * 255) / 255)  # a flat image stays flat
    assert jpeg(x, 10).shape == x.shape
    with pytest.raises(BadInputError, match="sigma"):
        gaussian_blur(x, -1.0)


def test_baselines_and_tradeoff_files(tmp_path):
    train, test = data(12), data(6, seed=5)
    cfg = tiny_cfg(epochs=1)
    res = simplify_baselines(train, test, sigmas=[1.0, 2.0], qualities=[10], mse_lambdas=[0.01], config=cfg,
                             out=tmp_path / "base", progress=False)
    kinds = sorted((p["kind"], p["param"]) for p in res["points"])
    assert kinds == [("blur", 1.0), ("blur", 2.0), ("jpeg", 10), ("mse", 0.01)]
    blur = {p["param"]: p for p in res["points"] if p["kind"] == "blur"}
    assert blur[2.0]["bpd"] < res["bpd_original"]
    with pytest.raises(BadInputError, match="quality"):
        simplify_baselines(train, test, qualities=[0], mse_lambdas=[], config=cfg)
    simplify(train, test, lambdas=[0.0, 1.0], config=cfg, out=tmp_path / "sb", progress=False)
    doc = tradeoff([tmp_path / "sb", tmp_path / "base"], out=tmp_path / "plots")
    for name in ("tradeoff.png", "grids.png", "curves.png", "tradeoff.md", "tradeoff.json"):
        assert (tmp_path / "plots" / name).stat().st_size > 0
    assert "Gaussian blur" in doc["table"] and "λ=1" in doc["table"]
    # the originals are a point on the plot and a row of the table: their bpd and their accuracy retrained the
    # same way, as simplify recorded them (a simplified figure cannot be read without them)
    (name, d), = doc["datasets"].items()
    row = d["simplify"][0]
    assert d["originals"]["bpd"] == pytest.approx(row["bpd_original"]["mean"])
    assert d["originals"]["retrain"] == row["retrain_original"] and row["retrain_original"]["n"] >= 1
    assert f"| {name} | originals | - | {row['bpd_original']['mean']:.2f} |" in doc["table"]
    # their PNG figure too, from the simplify run itself (it was '-' without a baselines folder)
    from simplebits.density.compress import png_bpd

    sb_only = tradeoff([tmp_path / "sb"], out=tmp_path / "plots3")["datasets"][name]["originals"]
    assert sb_only["png_bpd"] == pytest.approx(float(png_bpd(train.images).mean()))
    assert row["png_bpd_original"]["mean"] == pytest.approx(sb_only["png_bpd"])
    # baselines alone: the originals' bpd and their accuracy retrained as the blur and JPEG points are; the
    # same retraining (settings, seed 0) as simplify's, so the same figure (it was None: nothing to read a
    # baseline's accuracy against)
    only = tradeoff([tmp_path / "base"], out=tmp_path / "plots2")
    o = only["datasets"][name]["originals"]
    assert o["bpd"] == pytest.approx(res["bpd_original"])
    assert res["retrain_original"]["n"] == 1 and o["retrain"] == res["retrain_original"]
    assert res["retrain_original"]["mean"] == pytest.approx(row["retrain_original"]["mean"])
    assert json.loads((tmp_path / "base" / "baselines.json").read_text())["retrain_original"] == res["retrain_original"]
    assert (tmp_path / "plots2" / "tradeoff.png").stat().st_size > 0


def test_baselines_retrain_the_originals_with_their_own_seeds(tmp_path, monkeypatch):
    """With several seeds, the originals are retrained with exactly the seeds of the blur and JPEG
    points (one classifier each); a second call reads them back from originals.json."""
    train, test = data(12), data(6, seed=5)
    cfg = tiny_cfg(epochs=1)
    seen = []
    real = runner_mod.retrain

    def spy(ds, *a, seed, **kw):
        seen.append((ds.name, seed))
        return real(ds, *a, seed=seed, **kw)

    monkeypatch.setattr(runner_mod, "retrain", spy)
    res = simplify_baselines(train, test, sigmas=[1.0], qualities=[], mse_lambdas=[], seeds=[3, 4], config=cfg,
                             out=tmp_path / "b", progress=False)
    assert sorted(seed for name, seed in seen if name == train.name) == [3, 4]
    blur = res["points"][0]
    assert blur["seeds"] == [3, 4] and res["retrain_original"]["n"] == 2
    assert res["retrain_original_runs"] == json.loads((tmp_path / "b" / "originals.json").read_text())["retrain_runs"]
    seen.clear()
    again = simplify_baselines(train, test, sigmas=[1.0], qualities=[], mse_lambdas=[], seeds=[3, 4], config=cfg,
                               out=tmp_path / "b", progress=False)
    assert seen == [] and again["retrain_original"] == res["retrain_original"]


def test_images_the_density_model_does_not_fit_are_named(tmp_path, capsys):
    """Uniform noise costs gray32 more bits than its raw 8-bit values (a blind spot); flat gray
    images cost it almost nothing. simplify and simplify-baselines count the first kind and say
    what to do (a density model trained on the data); the well-modelled set gets no note."""
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (6, 1, 32, 32), generator=g).float() / 255
    flat = torch.full((6, 1, 32, 32), 0.5) + 0.1 * (torch.arange(6).view(6, 1, 1, 1) % 2)
    x = torch.cat([noise, flat])
    mixed = ImageSet(x, torch.arange(12) % 2, ("a", "b"), {"name": "mixed"})
    res = simplify(mixed, None, lambdas=[0.0], config=tiny_cfg(epochs=1), progress=False, out=tmp_path / "s")
    assert res.blind_spots == 6 and res.cells[0]["blind_spots_original"] == 6
    doc = tradeoff([tmp_path / "s"], out=tmp_path / "t")  # the trade-off's bpd axis is that model's: it says so
    assert doc["datasets"]["mixed"]["blind_spot_note"] == res.blind_spot_note
    assert f"note: {res.blind_spot_note}" in (tmp_path / "t" / "tradeoff.md").read_text()
    assert res.blind_spot_note.startswith("6 of 12 images of mixed cost gray32 8 bits or more")
    assert "simplebits train-flow mixed" in res.blind_spot_note and res.to_dict()["blind_spots"] == 6
    fine = ImageSet(flat, torch.arange(6) % 2, ("a", "b"), {"name": "flat"})
    ok = simplify(fine, None, lambdas=[0.0], config=tiny_cfg(epochs=1), progress=False)
    assert ok.blind_spots == 0 and ok.blind_spot_note is None
    tr = _npz(tmp_path / "noise.npz", mixed)
    te = _npz(tmp_path / "te.npz", mixed)
    assert main(["simplify-baselines", str(tr), "--test", str(te), "--sigmas", "1", "--qualities", "none",
                 "--mse-lambdas", "none", "--out", str(tmp_path / "b"), "--epochs", "1", "--batch-size", "8",
                 "--width", "8", "--retrain-epochs", "1", "--device", "cpu"]) == 0
    assert re.search(r"note: 6 of 12 images of \S*noise.npz cost gray32", capsys.readouterr().out)


def test_padded_images_report_bpd_in_both_units(tmp_path, capsys):
    """8x8 images are 94% padding under gray32: every flow figure of simplify, its baselines and the
    trade-off table comes with the same bits per dimension of the images as given (16x the
    per-model-dimension figure), and the text says so."""
    tr = _npz(tmp_path / "train.npz", make_blobs(12, 2, (1, 8, 8), seed=0))
    te = _npz(tmp_path / "test.npz", make_blobs(6, 2, (1, 8, 8), seed=3))
    small = ["--epochs", "1", "--batch-size", "8", "--width", "8", "--ngf", "4", "--downsamples", "2",
             "--retrain-epochs", "1", "--device", "cpu"]
    assert main(["simplify", str(tr), "--test", str(te), "--lambda-sim", "1", "--out", str(tmp_path / "s"),
                 *small]) == 0
    text = capsys.readouterr().out
    assert "native orig" in text and "94% of the model's input is padding" in text
    doc = json.loads((tmp_path / "s" / "simplify.json").read_text())
    cell, row = doc["cells"][0], doc["summary"][0]
    assert doc["units"]["model_dims"] == 1024 and doc["units"]["native_dims"] == 64
    assert cell["bpd_native"] == pytest.approx(16 * cell["bpd"])
    assert cell["bpd_original_native"] == pytest.approx(16 * cell["bpd_original"])
    assert row["bpd_native"]["mean"] == pytest.approx(16 * row["bpd"]["mean"])
    assert main(["simplify-baselines", str(tr), "--test", str(te), "--sigmas", "1", "--qualities", "none",
                 "--mse-lambdas", "none", "--out", str(tmp_path / "b"), *small, "--json"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert b["bpd_original_native"] == pytest.approx(16 * b["bpd_original"])
    assert b["points"][0]["bpd_native"] == pytest.approx(16 * b["points"][0]["bpd"])
    # the originals' retrained accuracy is the simplify run's own (same retraining, same seed)
    assert b["retrain_original"]["mean"] == pytest.approx(row["retrain_original"]["mean"])
    t = tradeoff([tmp_path / "s", tmp_path / "b"], out=tmp_path / "t")["table"]
    assert "| native bpd |" in t.splitlines()[0]
    assert f"| originals | - | {cell['bpd_original']:.2f} | {16 * cell['bpd_original']:.2f} |" in t
    assert "train.npz: zero-padded 8x8 -> 32x32" in (tmp_path / "t" / "tradeoff.md").read_text()
    # images of the model's own size: one unit, no extra columns, no note
    tr32 = _npz(tmp_path / "t32.npz", make_blobs(8, 2, (1, 32, 32), seed=0))
    te32 = _npz(tmp_path / "e32.npz", make_blobs(4, 2, (1, 32, 32), seed=1))
    assert main(["simplify", str(tr32), "--test", str(te32), "--lambda-sim", "0", "--out", str(tmp_path / "s32"),
                 *small]) == 0
    text = capsys.readouterr().out
    assert "native" not in text and "padding" not in text


# ------------------------------------------------------------------ CLI
def _npz(path, ds):
    np.savez(path, images=(ds.images.numpy() * 255).astype(np.uint8), labels=ds.labels.numpy())
    return path


def test_cli_simplify_sweep_then_tradeoff(tmp_path, capsys):
    tr = _npz(tmp_path / "train.npz", data(8))
    te = _npz(tmp_path / "test.npz", data(4, seed=3))
    out = tmp_path / "run"
    argv = ["simplify", f"npz:{tr}", "--test", f"npz:{te}", "--lambda-sim", "0,1", "--epochs", "1", "--batch-size",
            "8", "--width", "8", "--ngf", "4", "--downsamples", "2", "--retrain-epochs", "1", "--out", str(out),
            "--device", "cpu", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "grad_floor" not in doc["cells"][0]["config"]["simplifier_options"]  # 0 unless asked: digests hold
    assert "select" not in doc["cells"][0] and "select_within" not in doc["cells"][0]["config"]
    assert [r["lambda_sim"] for r in doc["summary"]] == [0.0, 1.0]
    assert doc["cells"][0]["config"]["relative"] is True  # the quick preset's
    assert all(r["retrain_original"]["n"] == 1 for r in doc["summary"])
    assert (out / "simplify.json").exists() and (out / "lam1-s0" / "simplified.safetensors").exists()
    # --select-within: the kept epoch is in the JSON and in the table's text
    assert main(["simplify", f"npz:{tr}", "--test", f"npz:{te}", "--lambda-sim", "0.5", "--epochs", "2",
                 "--batch-size", "8", "--width", "8", "--ngf", "4", "--downsamples", "2", "--retrain-epochs", "1",
                 "--out", str(tmp_path / "sel"), "--device", "cpu", "--select-within", "0.5"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"lam0.5-s0: kept epoch \d of 1 checked \(held-out bpd [\d.]+, transfer", text), text
    assert json.loads((tmp_path / "sel" / "lam0.5-s0" / "result.json").read_text())["select"]["within"] == 0.5
    assert main(["tradeoff", str(out), "--out", str(tmp_path / "plots")]) == 0
    assert "λ=0" in capsys.readouterr().out and (tmp_path / "plots" / "tradeoff.png").exists()


def test_cli_baselines_resume_by_content_not_by_how_the_path_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _npz(tmp_path / "train.npz", data(8))
    _npz(tmp_path / "other.npz", data(8, seed=9))
    te = _npz(tmp_path / "test.npz", data(4, seed=3))
    base = ["--test", str(te), "--sigmas", "1", "--qualities", "none", "--mse-lambdas", "none", "--epochs", "1",
            "--batch-size", "8", "--width", "8", "--retrain-epochs", "1", "--out", "b", "--device", "cpu", "--json"]
    assert main(["simplify-baselines", "train.npz", *base]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["dataset"] == "train.npz"  # named by the path as given, not "data"
    # the same file written another way resumes (the point is kept, not retrained)
    assert main(["simplify-baselines", str(tmp_path / "train.npz"), *base]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["points"] == first["points"]
    # other images are refused, whatever their name
    assert main(["simplify-baselines", "other.npz", *base]) == 2
    assert "other settings or data" in capsys.readouterr().err


@pytest.mark.parametrize("extra,match", [
    (["--lambda-sim", "-1"], "lambda"),
    (["--lambda-sim", "x"], "numbers"),
    (["--epochs", "0"], "epochs"),
    (["--warmup-epochs", "4"], "warmup-epochs"),
    (["--grad-floor", "0.5"], "grad-floor"),
    (["--grad-floor", "-0.1"], "grad-floor"),
    (["--select-within", "1.5"], "select-within"),
    (["--backtrack", "0.5"], "select-within"),
    (["--select-within", "0.05", "--backtrack", "2"], "backtrack"),
    (["--select-seeds", "3"], "select-within"),
    (["--select-within", "0.05", "--select-seeds", "0"], "select-seeds"),
    (["--betas-sim", "0.5,1.2"], "betas-sim"),
    (["--betas-sim", "0.5"], "betas-sim"),
    (["--clip-sim", "0"], "clip-sim"),
    (["--gate-lr-mult", "-2"], "gate-lr-mult"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, extra, match):
    tr = _npz(tmp_path / "train.npz", data(4))
    assert main(["simplify", f"npz:{tr}", "--test", f"npz:{tr}", "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(match, err, flags=re.I), err
    assert not (tmp_path / "o" / "simplify.json").exists()


def test_cli_one_class_and_missing_dirs_exit_2(tmp_path, capsys):
    one = tmp_path / "one.npz"
    np.savez(one, images=np.zeros((4, 16, 16), np.uint8), labels=np.zeros(4, np.int64))
    assert main(["simplify", f"npz:{one}", "--test", f"npz:{one}", "--out", str(tmp_path / "o")]) == 2
    assert "one class" in capsys.readouterr().err
    assert main(["tradeoff", str(tmp_path / "nothing"), "--out", str(tmp_path / "p")]) == 2
    assert "not a directory" in capsys.readouterr().err
