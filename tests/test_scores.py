"""Soft-label evaluation, DD-Ranking's scores (HLR, IOR, LRS, ARS) and storage bits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import make_blobs
from torch import nn

from simplebits.cli.main import main
from simplebits.density import storage_bits
from simplebits.density.compress import encode_png
from simplebits.errors import BadInputError, CorruptFileError, MismatchError
from simplebits.train import (
    EvaluationMemo,
    RankingReport,
    augmentation_robust_score,
    evaluate,
    full_data,
    get_protocol,
    hard_label_recovery,
    improvement_over_random,
    label_robust_score,
    ranking_scores,
    soft_label_loss,
    train_classifier,
)
from simplebits.train import fulldata as fulldata_mod
from simplebits.train import scores as scores_mod
from simplebits.train.checkpoint import save_classifier

TINY = get_protocol("quick").with_overrides(max_steps=40, batch_size=32)


# ----------------------------------------------------------------------------- the scores by hand
def test_scores_match_hand_computation():
    hlr = hard_label_recovery(0.90, 0.60)
    ior = improvement_over_random(0.70, 0.50)
    assert hlr == pytest.approx(0.30) and ior == pytest.approx(0.20)
    # alpha = 0.5 * 0.2 - 0.5 * 0.3 = -0.05; LRS = 100 (e^-0.05 - e^-1) / (e - e^-1)
    assert label_robust_score(hlr, ior) == pytest.approx(100 * (math.exp(-0.05) - math.exp(-1)) / (math.e - math.exp(-1)))
    assert label_robust_score(hlr, ior) == pytest.approx(24.8185, abs=1e-3)
    # beta = 0.5 (0.80 - 0.70) + 0.5 (0.60 - 0.55) = 0.075
    assert augmentation_robust_score(0.80, 0.70, 0.60, 0.55) == pytest.approx(
        100 * (math.exp(0.075) - math.exp(-1)) / (math.e - math.exp(-1)))
    # the ends of the scale: a set that recovers all and beats random by everything scores 100
    assert label_robust_score(0.0, 1.0, w=1.0) == pytest.approx(100.0)
    assert label_robust_score(1.0, 0.0, w=0.0) == pytest.approx(0.0)
    assert label_robust_score(0.3, 0.2, w=1.0) == pytest.approx(100 * (math.exp(0.2) - math.exp(-1)) / (math.e - math.exp(-1)))


def test_scores_refuse_percentages_and_bad_weights():
    with pytest.raises(BadInputError, match=r"in \[0, 1\]"):
        hard_label_recovery(87.6, 60.0)
    with pytest.raises(BadInputError, match="weight"):
        label_robust_score(0.1, 0.1, w=2.0)
    with pytest.raises(BadInputError, match="weight"):
        augmentation_robust_score(0.5, 0.5, 0.5, 0.5, gamma=float("nan"))


def test_report_scores_each_seed_then_averages():
    acc = {"full_hard": [0.9, 0.8], "set_hard": [0.6, 0.7], "set_any": [0.7, 0.6], "random_any": [0.5, 0.6],
           "set_aug": [0.7, 0.6], "random_aug": [0.5, 0.6], "set_no_aug": [0.6, 0.7], "random_no_aug": [0.6, 0.6]}
    rep = RankingReport("s", "quick", "hard", 1.0, [0, 1], acc)
    sc = rep.scores()
    assert sc["hlr"]["mean"] == pytest.approx(100 * (0.3 + 0.1) / 2)
    assert sc["hlr"]["std"] == pytest.approx(10.0)  # population std of 30 and 10 points
    assert sc["ior"]["mean"] == pytest.approx(10.0)
    per = [label_robust_score(0.3, 0.2), label_robust_score(0.1, 0.0)]
    assert sc["lrs"]["mean"] == pytest.approx(sum(per) / 2)
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["units"]["hlr"] == "accuracy points" and d["accuracies"]["full_hard"]["mean"] == pytest.approx(0.85)


# --------------------------------------------------------------------------------- soft labels
def test_soft_label_losses():
    torch.manual_seed(0)
    s, t = torch.randn(5, 4, requires_grad=True), torch.randn(5, 4)
    assert float(soft_label_loss(t.clone(), t, "kl", temperature=3.0)) == pytest.approx(0.0, abs=1e-6)
    kl = soft_label_loss(s, t, "kl", temperature=2.0, reduction="none")
    sce = soft_label_loss(s, t, "sce", temperature=2.0, reduction="none")
    pt = torch.softmax(t / 2.0, 1)
    entropy = -(pt * pt.log()).sum(1)
    assert torch.allclose(sce - kl, 4.0 * entropy, atol=1e-5)  # sce = kl + T^2 H(teacher)
    g_kl, = torch.autograd.grad(kl.sum(), s)
    g_sce, = torch.autograd.grad(sce.sum(), s)
    assert torch.allclose(g_kl, g_sce, atol=1e-6)  # so they train identically
    assert float(soft_label_loss(s, t, "mse").detach()) == pytest.approx(float(((s - t) ** 2).mean().detach()), rel=1e-6)
    with pytest.raises(BadInputError, match="shape"):
        soft_label_loss(s, t[:, :3], "kl")
    with pytest.raises(BadInputError, match="use one of"):
        soft_label_loss(s, t, "hinge")


class _Oracle(nn.Module):
    """Logits read off the bright square of make_blobs: class k's square starts at row 4k."""

    def __init__(self, perm=(0, 1, 2)):
        super().__init__()
        self.perm = list(perm)
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        rows = x.mean(dim=(1, 3))  # (N, H)
        z = torch.stack([rows[:, 4 * k : 4 * k + 3].mean(1) for k in range(3)], 1)
        return 20.0 * z[:, self.perm] + 0 * self.w


def test_a_soft_label_student_learns_the_teachers_labels_not_the_stored_ones():
    train, test = make_blobs(4, 3, seed=1), make_blobs(20, 3, seed=2)
    p = TINY.with_overrides(labels="kl", temperature=2.0)
    right = evaluate(train, test, protocol=p, seeds=1, teacher=_Oracle(), progress=False)
    # a teacher that swaps classes 0 and 1: the student follows it and misses those test images
    wrong = evaluate(train, test, protocol=p, seeds=1, teacher=_Oracle((1, 0, 2)), progress=False)
    assert right.mean >= 0.9
    assert wrong.mean <= 0.45
    assert right.protocol == "quick+kl(T=2)"


def test_soft_labels_need_a_teacher_and_hard_labels_refuse_one():
    train, test = make_blobs(2, 3), make_blobs(2, 3, seed=3)
    net = nn.Sequential(nn.Flatten(), nn.Linear(144, 3))
    with pytest.raises(BadInputError, match="teacher"):
        train_classifier(net, train, protocol=TINY.with_overrides(labels="kl"), seed=0, progress=False)
    with pytest.raises(BadInputError, match="teacher"):
        evaluate(train, test, protocol=TINY.with_overrides(labels="mse"), seeds=1, progress=False)
    with pytest.raises(BadInputError, match="hard labels"):
        evaluate(train, test, protocol=TINY, seeds=1, teacher=_Oracle(), progress=False)
    with pytest.raises(BadInputError, match="temperature"):
        TINY.with_overrides(labels="kl", temperature=0.0)
    with pytest.raises(BadInputError, match="labels"):
        TINY.with_overrides(labels="soft")


def test_a_teacher_of_another_label_space_or_size_is_refused():
    train, test = make_blobs(2, 3), make_blobs(2, 3, seed=3)
    p = TINY.with_overrides(labels="kl")
    four = nn.Sequential(nn.Flatten(), nn.Linear(144, 4))
    with pytest.raises(MismatchError, match="label space"):
        evaluate(train, test, protocol=p, seeds=1, teacher=four, progress=False)
    other_size = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with pytest.raises(MismatchError, match="images"):
        evaluate(train, test, protocol=p, seeds=1, teacher=other_size, progress=False)


def test_hard_label_protocol_dict_is_unchanged_by_the_label_fields():
    # every cache key built from a hard-label protocol stays what it was before soft labels existed
    d = get_protocol("quick").to_dict()
    assert "labels" not in d and "temperature" not in d
    assert get_protocol("quick").with_overrides(labels="sce", temperature=4.0).to_dict()["labels"] == "sce"


# ------------------------------------------------------------------------- full data and caching
def test_full_data_is_cached_per_seed_and_gives_the_teacher(tmp_path, monkeypatch):
    real, test = make_blobs(8, 3, seed=4), make_blobs(6, 3, seed=5)
    first = full_data(real, test, protocol=TINY, seeds=2, cache=tmp_path, progress=False)
    assert not first.cached and len(first.accuracies) == 2 and first.teacher_path.is_file()

    def boom(*a, **k):
        raise AssertionError("retrained a cached network")

    monkeypatch.setattr(fulldata_mod, "train_classifier", boom)
    again = full_data(real, test, protocol=TINY.with_overrides(labels="kl"), seeds=[0], cache=tmp_path)
    assert again.cached and again.accuracies == first.accuracies[:1]  # soft settings ignored, seed 0 shared
    t1, t2 = first.teacher(), again.teacher()
    x = real.images[:4]
    assert torch.equal(t1(x), t2(x)) and not any(q.requires_grad for q in t1.parameters())
    # a damaged entry is recomputed, not trusted
    (tmp_path / "full-data" / f"{first.key}.json").write_text("{not json")
    with pytest.raises(AssertionError, match="retrained"):
        full_data(real, test, protocol=TINY, seeds=[0], cache=tmp_path)


def test_ranking_scores_end_to_end_reuses_shared_runs(tmp_path):
    real, test = make_blobs(10, 3, seed=6), make_blobs(8, 3, seed=7)
    subset = real.subset(torch.tensor([0, 10, 20, 1, 11, 21]))
    rep = ranking_scores(subset, real, test, protocol=TINY, labels="hard", seeds=2, cache=tmp_path, progress=False)
    a = rep.accuracies
    assert a["set_hard"] == a["set_any"] == a["set_no_aug"]  # the quick protocol has no augmentation
    assert rep.settings["evaluations"] == 2 * 4  # set hard, set aug, random aug, random no aug
    assert a["full_hard"] == full_data(real, test, protocol=TINY, seeds=2, cache=tmp_path).accuracies
    sc = rep.scores()
    assert sc["hlr"]["mean"] == pytest.approx(100 * np.mean(np.subtract(a["full_hard"], a["set_hard"])))
    soft = ranking_scores(subset, real, test, protocol=TINY, labels="kl", seeds=1, cache=tmp_path, progress=False)
    assert soft.protocol == "quick+kl(T=1)" and soft.settings["teacher"].startswith("full-data network")
    assert soft.accuracies["set_hard"] == a["set_hard"][:1]  # same seed, same hard-label training
    uneven = real.subset(torch.tensor([0, 10, 20, 1]))
    with pytest.raises(BadInputError, match="unequal"):
        ranking_scores(uneven, real, test, protocol=TINY, seeds=1, cache=tmp_path)



def test_a_ranking_killed_after_some_evaluations_resumes_from_the_memo_file(tmp_path, monkeypatch):
    real, test = make_blobs(10, 3, seed=6), make_blobs(8, 3, seed=7)
    subset = real.subset(torch.tensor([0, 10, 20, 1, 11, 21]))
    path = tmp_path / "evals.json"
    calls = []
    real_evaluate = scores_mod.evaluate

    def dies_on_the_second(*a, **k):  # the run is killed while training its second evaluation's networks
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_evaluate(*a, **k)

    monkeypatch.setattr(scores_mod, "evaluate", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        ranking_scores(subset, real, test, protocol=TINY, seeds=2, cache=tmp_path, progress=False,
                       memo=EvaluationMemo(path))
    assert len(EvaluationMemo(path)) == 1  # the finished evaluation is on disk
    monkeypatch.setattr(scores_mod, "evaluate", real_evaluate)
    memo = EvaluationMemo(path)
    resumed = ranking_scores(subset, real, test, protocol=TINY, seeds=2, cache=tmp_path, progress=False, memo=memo)
    assert len(memo.reused) == 1 and len(memo) == 4
    fresh = ranking_scores(subset, real, test, protocol=TINY, seeds=2, cache=tmp_path, progress=False)
    assert resumed.accuracies == fresh.accuracies  # same seeds, same result: resuming changes nothing

    def boom(*a, **k):
        raise AssertionError("trained a network the memo holds")

    monkeypatch.setattr(scores_mod, "evaluate", boom)
    monkeypatch.setattr(scores_mod, "evaluate_real_subset", boom)
    again = EvaluationMemo(path)
    assert ranking_scores(subset, real, test, protocol=TINY, seeds=2, cache=tmp_path, progress=False,
                          memo=again).accuracies == fresh.accuracies and len(again.reused) == 4
    with pytest.raises(AssertionError, match="memo holds"):  # other seeds are another key: not served
        ranking_scores(subset, real, test, protocol=TINY, seeds=[5, 6], cache=tmp_path, progress=False, memo=again)
    assert all(k in again for k in list(again))  # its keys index it again


@pytest.mark.parametrize("text, match", [
    ("{not json", "evaluation memo is not valid JSON"),
    ("[" * 5000 + "]" * 5000, "evaluation memo is not valid JSON"),  # too deep for the parser
    ("[1, 2]", "evaluation memo is a JSON list"),
    ('{"format": "other", "runs": []}', "header"),
    ('{"format": "simplebits-evaluation-memo", "runs": [{"key": "k", "accuracies": [1.5]}]}', "entry 0"),
    ('{"format": "simplebits-evaluation-memo", "runs": [{"key": "k", "accuracies": [NaN]}]}', "entry 0"),
    ('{"format": "simplebits-evaluation-memo", "runs": [{"key": "k", "accuracies": []}]}', "entry 0"),
])
def test_a_damaged_evaluation_memo_is_refused_not_replaced(tmp_path, text, match):
    path = tmp_path / "evals.json"
    path.write_text(text)
    with pytest.raises(CorruptFileError, match=match):
        EvaluationMemo(path)
    assert path.read_text() == text  # left for the user to look at
    with pytest.raises(BadInputError, match="does not exist"):
        EvaluationMemo(tmp_path / "missing" / "evals.json")


# ------------------------------------------------------------------------------------ storage
def test_storage_bits_counts_files_labels_and_the_teacher():
    ds = make_blobs(3, 4, shape=(1, 16, 16), seed=8)
    st = storage_bits(ds)
    arr = np.rint(ds.images.numpy() * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    assert st["png_bits"] == 8 * sum(len(encode_png(a)) for a in arr)
    assert st["labels"]["bits"] == pytest.approx(12 * 2.0)  # log2(4) bits per image
    assert st["total_bits"] == pytest.approx(st["png_bits"] + 24.0)
    assert st["flow_bits"] > 0 and st["total_flow_bits"] == pytest.approx(st["flow_bits"] + 24.0)
    teacher = nn.Linear(10, 4)
    soft = storage_bits(ds, labels="soft", teacher=teacher)
    assert soft["labels"]["bits"] == 32 * 44 and soft["labels"]["stored_soft_bits"] == 32 * 12 * 4
    capped = storage_bits(ds, flow_limit=5)
    assert capped["flow_bits"] is None and "left out" in capped["flow_note"]
    with pytest.raises(BadInputError, match="teacher"):
        storage_bits(ds, labels="soft")


# ------------------------------------------------------------------------------------------ CLI
def _npz(path, n_per, seed):
    ds = make_blobs(n_per, 3, (1, 12, 12), seed)
    np.savez(path, images=(ds.images.numpy() * 255).astype(np.uint8), labels=ds.labels.numpy())
    return f"npz:{path}"


@pytest.mark.parametrize("argv,match", [
    (["--ipc", "1", "--scores", "--no-baseline"], "drop --no-baseline"),
    (["--scores"], "reduced set"),
    (["--ipc", "1", "--teacher", "t.safetensors"], "--soft-labels"),
    (["--ipc", "1", "--soft-labels", "kl", "--temperature", "-1"], "temperature"),
])
def test_cli_score_errors_are_one_line(argv, match, capsys, tmp_path):
    real = _npz(tmp_path / "r.npz", 4, 0)
    assert main(["evaluate", real, "--test", real, "--seeds", "1", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


def test_cli_teacher_of_another_label_space_exits_2(capsys, tmp_path):
    real = _npz(tmp_path / "r.npz", 4, 0)
    f = tmp_path / "t.safetensors"
    from simplebits.models import create_model

    save_classifier(f, create_model("convnet", channels=1, num_classes=5, image_size=(12, 12), seed=0),
                    name="convnet", channels=1, image_size=12, classes=[str(i) for i in range(5)])
    assert main(["evaluate", real, "--test", real, "--ipc", "1", "--seeds", "1", "--soft-labels", "kl",
                 "--teacher", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "label space" in err[0]


def test_cli_scores_json(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SIMPLEBITS_CACHE", str(tmp_path / "cache"))
    real, test = _npz(tmp_path / "r.npz", 6, 0), _npz(tmp_path / "t.npz", 4, 1)
    assert main(["evaluate", real, "--test", test, "--ipc", "1", "--seeds", "1", "--scores", "--soft-labels", "kl",
                 "--temperature", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    sc = out["scores"]
    assert set(sc["scores"]) == {"hlr", "ior", "lrs", "ars"} and sc["protocol"] == "quick+kl(T=4)"
    assert all(0 <= sc["scores"][k]["mean"] <= 100 for k in ("lrs", "ars"))
    assert out["storage"]["labels"]["kind"] == "soft" and out["storage"]["n_images"] == 3
    assert list((tmp_path / "cache" / "full-data").glob("*.safetensors"))


def test_cli_soft_label_evaluation_reports_the_teachers_bits(capsys, tmp_path):
    from simplebits.data.condensed import save_condensed
    from simplebits.models import create_model

    real = _npz(tmp_path / "r.npz", 4, 0)
    blobs = make_blobs(4, 3, (1, 12, 12), 0)
    save_condensed(tmp_path / "set.safetensors", blobs.subset(torch.tensor([0, 4, 8])), method="random-real")
    teacher = create_model("convnet", channels=1, num_classes=3, image_size=(12, 12), seed=0)
    save_classifier(tmp_path / "t.safetensors", teacher, name="convnet", channels=1, image_size=12,
                    classes=["c0", "c1", "c2"])
    assert main(["evaluate", str(tmp_path / "set.safetensors"), "--test", real, "--no-baseline", "--seeds", "1",
                 "--soft-labels", "sce", "--teacher", str(tmp_path / "t.safetensors"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"] == "quick+sce(T=1)" and out["n_train"] == 3
    params = sum(p.numel() for p in teacher.parameters())
    assert out["storage"]["labels"] == {**out["storage"]["labels"], "kind": "soft", "teacher_parameters": params}
    assert out["storage"]["total_bits"] == pytest.approx(out["storage"]["png_bits"] + 32 * params)


def test_cli_scores_without_a_known_real_set_exit_2(capsys, tmp_path):
    from simplebits.data.condensed import save_condensed

    test = _npz(tmp_path / "t.npz", 4, 1)
    save_condensed(tmp_path / "set.safetensors", make_blobs(1, 3, (1, 12, 12), 0), method="dm")  # no source
    for extra in (["--scores"], ["--soft-labels", "kl", "--no-baseline"]):
        assert main(["evaluate", str(tmp_path / "set.safetensors"), "--test", test, "--seeds", "1", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--real DATASET" in err[0], err
