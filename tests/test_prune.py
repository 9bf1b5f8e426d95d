"""YOCO pruning: dynamics, scores, selection, the one-call API, the CLI and the comparison table."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from simplebits.cli.main import main
from simplebits.data import ImageSet
from simplebits.data.condensed import decode, import_condensed, load_condensed, save_condensed
from simplebits.errors import BadInputError, MismatchError, UnknownNameError
from simplebits.io import read_metadata
from simplebits.prune import (
    Dynamics,
    DynamicsConfig,
    ccs,
    epochs_needed,
    load_dynamics,
    prune,
    prune_set,
    record_dynamics,
    rule_names,
    score,
    ssp,
)
from simplebits.prune.table import parse_rule, prune_table
from simplebits.train import get_protocol

from conftest import make_blobs

# a tiny schedule: 8 epochs (lr steps at 2/3 and 5/6 as idc), LBPE window 4, top 2
CFG = DynamicsConfig(runs=2, epochs=8, stop_epoch=4, top_k=2)
FAST_EVAL = get_protocol("quick").with_overrides(epochs=15, max_steps=15)


def rules_under_test() -> list[str]:
    """The per-rule tests' parameters: every registered rule (a new rule is tested without an edit here)."""
    return rule_names()


def _dyn(logits: torch.Tensor, labels: torch.Tensor, schedule: int | None = None) -> Dynamics:
    """A hand-made Dynamics from (R, E, N, C) logits."""
    r, e, n, c = logits.shape
    correct = (logits.argmax(-1) == labels.view(1, 1, -1)).to(torch.uint8)
    return Dynamics(logits.half(), correct, logits[:, -1].softmax(-1).half(), torch.randn(r, n, 4).half(), labels,
                    {"config": {"schedule_epochs": schedule or e}})


@pytest.fixture(scope="module")
def cset() -> ImageSet:
    """A 'condensed' set: 3 classes x 6 images, class-ordered, with condensed metadata."""
    return make_blobs(6, 3, seed=1).with_meta(name="cset", source_dataset="blobs")


@pytest.fixture(scope="module")
def full_dyn(cset) -> Dynamics:
    return record_dynamics(cset, CFG, progress=False)


# ------------------------------------------------------------------------------------------
# scores


def _naive_lbpe(logits, labels, stop, k):
    out = []
    for r in range(logits.shape[0]):
        acc = [(logits[r, e].argmax(-1) == labels).float().mean().item() for e in range(stop)]
        epochs = sorted(range(stop), key=lambda e: (-acc[e], e))[:k]
        s = torch.zeros(labels.numel())
        for e in epochs:
            p = logits[r, e].softmax(-1)
            s += (p - torch.nn.functional.one_hot(labels, p.shape[-1]).float()).norm(dim=-1)
        out.append(s)
    return torch.stack(out)


def test_lbpe_sums_error_norm_over_the_most_accurate_epochs():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    logits = torch.randn(2, 12, 6, 3, generator=g) * 3
    d = _dyn(logits.half().float(), labels)
    got = score("lbpe", d, stop_epoch=8, top_k=3)
    assert got.shape == (2, 6)
    assert torch.allclose(got, _naive_lbpe(logits.half().float(), labels, 8, 3), atol=1e-4)
    # epochs after stop_epoch do not matter
    logits2 = logits.clone()
    logits2[:, 8:] = 100 * torch.randn(2, 4, 6, 3, generator=g)
    assert torch.allclose(score("lbpe", _dyn(logits2, labels), stop_epoch=8, top_k=3), got, atol=1e-3)


def test_logits_variant_differs_and_el2n_is_the_first_ten_epoch_mean():
    g = torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 1, 1])
    logits = (torch.randn(1, 12, 3, 2, generator=g) * 2).half().float()
    d = _dyn(logits, labels)
    oh = torch.nn.functional.one_hot(labels, 2).float()
    want = (logits[0, :10].softmax(-1) - oh).norm(dim=-1).mean(0)
    assert torch.allclose(score("el2n", d)[0], want, atol=1e-5)
    want_logit = (logits[0, :10] - oh).norm(dim=-1).mean(0)
    assert torch.allclose(score("el2n", d, logits=True)[0], want_logit, atol=1e-4)
    assert not torch.allclose(score("lbpe", d, stop_epoch=4, top_k=2), score("lbpe", d, stop_epoch=4, top_k=2, logits=True))


def test_aum_forgetting_entropy_by_hand():
    labels = torch.tensor([0, 1])
    # sample 0: correct, wrong, correct, wrong -> 2 forgetting events; sample 1 never learned -> 0
    logits = torch.tensor([[[[2.0, 0.0], [3.0, 0.0]],
                            [[0.0, 2.0], [3.0, 0.0]],
                            [[2.0, 0.0], [3.0, 0.0]],
                            [[0.0, 2.0], [3.0, 0.0]]]])
    d = _dyn(logits, labels)
    assert score("forgetting", d)[0].tolist() == [2.0, 0.0]
    p = logits[0].softmax(-1)
    margin0 = (p[:, 0, 0] - p[:, 0, 1]).mean()
    margin1 = (p[:, 1, 1] - p[:, 1, 0]).mean()
    aum = score("aum", d)[0]
    assert aum[0] == pytest.approx(-margin0.item(), abs=1e-3) and aum[1] == pytest.approx(-margin1.item(), abs=1e-3)
    assert score("aum", d, logits=True)[0][1] == pytest.approx(3.0, abs=1e-3)  # logit margin -3, negated
    uniform = Dynamics(logits.half(), d.correct, torch.full((1, 2, 2), 0.5).half(), torch.zeros(1, 2, 1).half(),
                       labels, d.meta)
    assert torch.allclose(score("entropy", uniform)[0], torch.full((2,), math.log(2)), atol=1e-3)


def test_full_training_scores_refuse_early_stopped_dynamics():
    d = _dyn(torch.randn(1, 5, 4, 2), torch.tensor([0, 1, 0, 1]), schedule=50)
    with pytest.raises(BadInputError, match="whole 50-epoch schedule"):
        score("aum", d)
    with pytest.raises(UnknownNameError, match="lbpe"):
        score("nope", d)


# ------------------------------------------------------------------------------------------
# selection


def test_balanced_keeps_exactly_ipc_f2_per_class_easiest_first_any_label_order():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([2, 0, 1, 0, 2, 1, 1, 0, 2, 2, 0, 1])  # not contiguous
    scores = torch.rand(12, generator=g)
    kept = prune(scores, labels, ipc=2, balanced=True, keep="easy")
    assert torch.bincount(labels[kept], minlength=3).tolist() == [2, 2, 2]
    for c in range(3):
        idx = (labels == c).nonzero().flatten()
        easiest = idx[scores[idx].argsort()[:2]]
        assert set(kept.tolist()) >= set(easiest.tolist())
    hard = prune(scores, labels, ipc=1, balanced=True, keep="hard")
    for c in range(3):
        idx = (labels == c).nonzero().flatten()
        assert int(idx[scores[idx].argmax()]) in hard.tolist()


def test_imbalanced_is_global_and_ties_keep_lower_index():
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    scores = torch.tensor([0.0, 0.0, 0.1, 0.5, 0.0, 0.9])
    kept = prune(scores, labels, ipc=1, balanced=False, keep="easy")  # 2 kept in total
    assert kept.tolist() == [0, 1]  # three zeros tie; index order decides
    assert prune(scores, labels, ipc=1, balanced=False, keep="hard").tolist() == [3, 5]


def test_factor_counts_decoded_images_and_unequal_classes_are_handled():
    labels = torch.tensor([0] * 4 + [1] * 16)  # unequal classes, factor 2: 4 decoded per stored image
    kept = prune(torch.arange(20.0), labels, ipc=1, factor=2)
    assert torch.bincount(labels[kept]).tolist() == [4, 4]
    with pytest.raises(BadInputError, match="class 0 holds 4 decoded image"):
        prune(torch.arange(20.0), labels, ipc=2, factor=2)


@pytest.mark.parametrize("kw, match", [
    ({"ipc": 3, "ipc_from": 3}, "nothing to prune: target IPC 3 >= the set's IPC 3"),
    ({"ipc": 0}, "positive integer"),
    ({"ipc": 1, "keep": "medium"}, "easy' or 'hard"),
])
def test_selection_bad_requests(kw, match):
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    with pytest.raises(BadInputError, match=match):
        prune(torch.rand(6), labels, **kw)


def test_nan_scores_are_refused():
    with pytest.raises(BadInputError, match="NaN"):
        prune(torch.tensor([0.0, float("nan"), 1.0, 2.0]), torch.tensor([0, 0, 1, 1]), ipc=1)


def test_ccs_cuts_the_hardest_and_stratifies_deterministically():
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(200, dtype=torch.long)
    labels[100:] = 1
    scores = torch.rand(200, generator=g)
    kept = ccs(scores, labels, ipc=20, beta=0.3, strata=10, seed=3)
    assert kept.numel() == 40 and kept.unique().numel() == 40
    cutoff = scores.sort(descending=True).values[59]  # the 60 hardest are cut
    assert (scores[kept] <= cutoff).all()
    assert torch.equal(kept, ccs(scores, labels, ipc=20, beta=0.3, strata=10, seed=3))
    assert not torch.equal(kept, ccs(scores, labels, ipc=20, beta=0.3, strata=10, seed=4))
    # coverage: the kept samples span the remaining score range, unlike keeping the easiest
    assert float(scores[kept].max()) > 0.5
    bal = ccs(scores, labels, ipc=5, beta=0.0, balanced=True, seed=0)
    assert torch.bincount(labels[bal]).tolist() == [5, 5]


def test_ccs_small_strata_are_taken_whole():
    scores = torch.tensor([0.0] * 18 + [0.95, 1.0])  # two samples alone in the top strata
    labels = torch.zeros(20, dtype=torch.long)
    labels[10:] = 1
    kept = ccs(scores, labels, ipc=3, beta=0.0, strata=10, seed=0)
    assert {18, 19} <= set(kept.tolist()) and kept.numel() == 6


def test_ssp_keeps_one_sample_per_centre():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    emb = torch.cat([c + 0.1 * torch.randn(5, 2, generator=g) for c in centres])
    labels = torch.tensor([0] * 5 + [1] * 5 + [2] * 5)
    kept = ssp(emb, labels, ipc=1, balanced=False, seed=0)
    assert kept.numel() == 3 and sorted(labels[kept].tolist()) == [0, 1, 2]  # one per cluster
    kept2 = ssp(emb, labels, ipc=2, balanced=True, seed=0)
    assert torch.bincount(labels[kept2]).tolist() == [2, 2, 2] and kept2.unique().numel() == 6


# ------------------------------------------------------------------------------------------
# dynamics


def test_early_stopped_runs_are_the_full_runs_cut_short(cset, full_dyn):
    early = record_dynamics(cset, DynamicsConfig(**{**CFG.__dict__, "epochs_run": 4}), progress=False)
    assert early.epochs == 4 and full_dyn.epochs == 8
    assert torch.equal(early.logits, full_dyn.logits[:, :4])
    s_early = score("lbpe", early, stop_epoch=4, top_k=2)
    assert torch.equal(s_early, score("lbpe", full_dyn, stop_epoch=4, top_k=2))
    assert torch.equal(s_early.argsort(dim=1, stable=True), score("lbpe", full_dyn, stop_epoch=4, top_k=2).argsort(dim=1, stable=True))
    assert full_dyn.logits.dtype == torch.float16 and full_dyn.complete and not early.complete


def test_same_seed_same_dynamics_and_runs_differ(cset, full_dyn):
    again = record_dynamics(cset, CFG, progress=False)
    assert torch.equal(again.logits, full_dyn.logits)
    assert not torch.equal(full_dyn.logits[0], full_dyn.logits[1])


def test_resume_after_a_killed_run_gives_the_uninterrupted_result(cset, full_dyn, tmp_path):
    path = tmp_path / "d.safetensors"
    record_dynamics(cset, DynamicsConfig(**{**CFG.__dict__, "runs": 1}), path=path, progress=False)  # "killed" after run 1
    assert load_dynamics(path).runs == 1
    resumed = record_dynamics(cset, CFG, path=path, resume=True, progress=False)
    assert torch.equal(resumed.logits, full_dyn.logits) and load_dynamics(path).runs == 2
    assert torch.equal(load_dynamics(path).embeddings, full_dyn.embeddings)


def test_dynamics_with_other_settings_or_set_are_refused(cset, full_dyn, tmp_path):
    path = tmp_path / "d.safetensors"
    full_dyn.save(path)
    with pytest.raises(MismatchError, match="record: recorded 'train', asked 'clean'"):
        prune_set(cset, ipc=2, rule="yoco", config=DynamicsConfig(**{**CFG.__dict__, "record": "clean"}),
                  runs=2, dynamics=path, progress=False)
    other = make_blobs(6, 3, seed=7)
    with pytest.raises(MismatchError, match="different set"):
        prune_set(other, ipc=2, rule="yoco", config=CFG, runs=2, dynamics=path, progress=False)
    early_cfg = DynamicsConfig(**{**CFG.__dict__, "epochs_run": 4})
    early = record_dynamics(cset, early_cfg, progress=False)
    with pytest.raises(MismatchError, match="hold 4 epoch.*need 8"):
        prune_set(cset, ipc=2, rule="aum", config=CFG, runs=2, dynamics=early, progress=False)
    # a file that is merely too short is recorded again, longer; its old epochs stay as they were
    early_path = tmp_path / "early.safetensors"
    early.save(early_path)
    res = prune_set(cset, ipc=2, rule="aum", config=CFG, runs=2, dynamics=early_path, progress=False)
    longer = load_dynamics(early_path)
    assert longer.epochs == 8 and torch.equal(longer.logits[:, :4], early.logits)
    # reuse works when everything matches
    res = prune_set(cset, ipc=2, rule="forgetting", config=CFG, runs=2, dynamics=path, progress=False)
    assert torch.equal(res.dynamics.logits, full_dyn.logits)


# ------------------------------------------------------------------------------------------
# the API on our files and on IDC data.pt, every rule


@pytest.mark.parametrize("rule", rules_under_test())
def test_every_rule_on_our_file_and_on_idc_data_pt(rule, cset, full_dyn, tmp_path):
    # our format
    path = tmp_path / "set.safetensors"
    save_condensed(path, cset, method="dm", source="blobs")
    ours = load_condensed(path)
    res = prune_set(ours, ipc=2, rule=rule, config=CFG, runs=2, dynamics=full_dyn, out=tmp_path / "p.safetensors",
                    progress=False)
    meta = read_metadata(tmp_path / "p.safetensors")
    assert meta["rule"] == rule and meta["ipc_from"] == 6 and meta["ipc_to"] == 2
    assert meta["parent"] == str(path) and len(meta["kept_indices"]) == len(res.indices)
    back = load_condensed(tmp_path / "p.safetensors")
    assert torch.equal(back.images, ours.images[res.indices])
    if res.settings["balanced"]:
        assert back.counts() == [2, 2, 2]
    else:
        assert len(back) == 6
    # IDC data.pt with factor 2: stored 12x12 collages, 4 decoded images each
    torch.save([cset.images[::2].clone(), cset.labels[::2].clone()], tmp_path / "data.pt")
    idc = import_condensed(tmp_path / "data.pt", factor=2)
    r2 = prune_set(idc, ipc=1, rule=rule, config=CFG, runs=1, progress=False)
    assert r2.factor == 2 and r2.ipc_from == 3 and len(r2.indices) == (12 if r2.settings["balanced"] else 12)
    assert r2.images.meta.get("factor", 1) == 1
    if r2.settings["balanced"]:
        assert r2.images.counts() == [4, 4, 4]
    assert torch.equal(r2.images.images, decode(idc).images[r2.indices])


def test_yoco_keeps_the_easy_samples_and_random_does_not_need_dynamics(cset, full_dyn):
    res = prune_set(cset, ipc=1, rule="yoco", config=CFG, runs=2, dynamics=full_dyn, progress=False)
    lb = score("lbpe", full_dyn, stop_epoch=4, top_k=2).mean(0)
    for c in range(3):
        idx = (cset.labels == c).nonzero().flatten()
        assert int(res.indices[c]) == int(idx[lb[idx].argmin()])
    r = prune_set(cset, ipc=1, rule="random", progress=False)
    assert r.dynamics is None and r.images.counts() == [1, 1, 1]


def test_unknown_rule_lists_the_rules(cset):
    with pytest.raises(UnknownNameError) as e:
        prune_set(cset, ipc=1, rule="lowest-loss", progress=False)
    for name in rules_under_test():
        assert name in str(e.value)
    with pytest.raises(BadInputError, match="unknown rule modifier"):
        parse_rule("yoco:sideways")


def test_kip_npz_is_read_nhwc_with_one_hot_labels(tmp_path, cset):
    x = cset.images.permute(0, 2, 3, 1).numpy()  # NHWC
    y = np.eye(3, dtype=np.float32)[cset.labels.numpy()] * 1.0 - 0.1  # centred one-hot as KIP
    np.savez(tmp_path / "kip.npz", images=x, labels=y)
    ds = import_condensed(tmp_path / "kip.npz", format="kip")
    assert ds.shape == cset.shape and torch.equal(ds.labels, cset.labels)


# ------------------------------------------------------------------------------------------
# CLI


def _write_set(tmp_path, ds) -> str:
    path = tmp_path / "set.safetensors"
    save_condensed(path, ds, method="dm", source="blobs")
    return str(path)


def test_cli_prune_json_and_dynamics_reuse(tmp_path, capsys, cset):
    f = _write_set(tmp_path, cset)
    dyn = str(tmp_path / "dyn.safetensors")
    common = ["--runs", "1", "--epochs", "8", "--stop-epoch", "4", "--top-k", "2", "--dynamics", dyn, "--json"]
    assert main(["prune", f, "--ipc", "2", "--out", str(tmp_path / "a.safetensors"), *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rule"] == "yoco" and out["counts"] == [2, 2, 2] and out["files"]["dynamics"] == dyn
    # what the pruned set costs to keep: in the JSON and in the file's own metadata
    from simplebits.io import read_metadata

    assert read_metadata(tmp_path / "a.safetensors")["storage"] == out["storage"]
    assert out["storage"]["n_images"] == 6 and out["storage"]["labels"]["kind"] == "hard"
    before = load_dynamics(dyn).logits.clone()
    assert before.shape[1] == 4  # yoco needs only the LBPE window
    assert main(["prune", f, "--ipc", "1", "--rule", "el2n", "--balanced", "--easy", "--out",
                 str(tmp_path / "b.safetensors"), *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["settings"]["balanced"] and out["settings"]["keep"] == "easy" and out["counts"] == [1, 1, 1]
    longer = load_dynamics(dyn).logits.clone()  # el2n needs 8 epochs here: recorded again, longer
    assert longer.shape[1] == 8 and torch.equal(longer[:, :4], before)
    mtime = os.path.getmtime(dyn)
    assert main(["prune", f, "--ipc", "1", "--out", str(tmp_path / "c.safetensors"), *common]) == 0
    capsys.readouterr()
    assert os.path.getmtime(dyn) == mtime  # long enough now: reused, not written again


@pytest.mark.parametrize("extra, match", [
    (["--ipc", "6"], "nothing to prune"),
    (["--ipc", "1", "--rule", "lowest-loss"], "unknown pruning rule"),
    (["--ipc", "1", "--rule", "aum", "--record", "clean"], "different settings"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, cset, full_dyn, extra, match):
    f = _write_set(tmp_path, cset)
    dyn = tmp_path / "dyn.safetensors"
    full_dyn.save(dyn)
    rc = main(["prune", f, "--out", str(tmp_path / "o.safetensors"), "--runs", "2", "--epochs", "8",
               "--stop-epoch", "4", "--top-k", "2", "--dynamics", str(dyn), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and match in err and len(err.strip().splitlines()) == 1


def test_cli_flags_are_the_settings_with_their_defaults_and_old_spellings_still_work(capsys):
    from simplebits.cli.main import build_parser
    from simplebits.cli.prune import PruneOptions, TableOptions, _config
    from simplebits.settings import overrides

    args = build_parser().parse_args(["prune", "set.safetensors", "--ipc", "1", "--out", "o.safetensors"])
    assert _config(args) == DynamicsConfig() and PruneOptions(**overrides(args, PruneOptions)) == PruneOptions()
    args = build_parser().parse_args(["prune-table", "set.safetensors", "--seed", "2", "--stop-epoch", "4",
                                      "--top-k", "2", "--epochs", "8", "--dynamics-protocol", "quick", "--protocol", "dc",
                                      "--ipc", "1,2"])
    assert _config(args) == DynamicsConfig(protocol="quick", epochs=8, stop_epoch=4, top_k=2, seed=2)
    opts = TableOptions(**overrides(args, TableOptions))
    assert opts.ipc == [1, 2] and opts.eval_protocol == "dc" and args.net == "convnet"  # two protocols, two dests
    assert capsys.readouterr().err == ""
    args = build_parser().parse_args(["prune-table", "set.safetensors", "--nets", "convnet,resnet10-ap"])
    assert args.net == "convnet,resnet10-ap" and "--nets is deprecated, use --net" in capsys.readouterr().err


def test_cli_class_too_small_for_balanced_target(tmp_path, capsys):
    ds = make_blobs(6, 3)
    keep = torch.cat([torch.arange(0, 6), torch.arange(6, 8), torch.arange(12, 18)])  # class 1 holds 2
    f = _write_set(tmp_path, ds.subset(keep))
    rc = main(["prune", f, "--ipc", "3", "--rule", "random", "--out", str(tmp_path / "o.safetensors")])
    err = capsys.readouterr().err
    assert rc == 2 and "class 1 holds 2" in err


# ------------------------------------------------------------------------------------------
# the comparison table


def test_prune_table_shape_resume_and_ablation_modifiers(tmp_path, cset, full_dyn, monkeypatch):
    test = make_blobs(5, 3, seed=9)
    out = tmp_path / "table.json"
    seen = []
    tab = prune_table(cset, test, ipcs=[1, 2], rules=["random", "yoco", "yoco:imbalanced:hard"], runs=2,
                      eval_seeds=1, protocol=FAST_EVAL, config=CFG, dynamics=full_dyn, out=out, progress=False,
                      on_cell=lambda *a: seen.append(a))
    assert tab.rules == ["random", "yoco", "yoco:imbalanced:hard"]
    for rule in tab.rules:
        for ipc in (1, 2):
            accs = tab.cells["convnet"][rule][str(ipc)]
            assert len(accs) == 2 and all(0 <= a <= 1 for a in accs)
    assert len(tab.full["convnet"]) == 2
    text = tab.format()
    assert "IPC_T" in text and "±" in text and "whole set (IPC_F 6)" in text
    md = tab.markdown().splitlines()
    assert "| IPC_T | random | yoco | yoco:imbalanced:hard |" in md and sum(line.startswith("| 1 |") for line in md) == 1
    saved = json.loads(out.read_text())
    assert saved["summary"]["convnet"]["yoco"]["1"].count("±") == 1
    # resume: nothing is trained again
    import simplebits.prune.table as table_mod

    monkeypatch.setattr(table_mod, "evaluate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    again = prune_table(cset, test, ipcs=[1, 2], rules=["random", "yoco", "yoco:imbalanced:hard"], runs=2,
                        eval_seeds=1, protocol=FAST_EVAL, config=CFG, dynamics=full_dyn, out=out, resume=True,
                        progress=False)
    assert again.cells == tab.cells


def test_prune_table_checks_every_request_before_training(cset):
    test = make_blobs(5, 3, seed=9)
    with pytest.raises(BadInputError, match="nothing to prune"):
        prune_table(cset, test, ipcs=[1, 6], rules=["yoco"], runs=1, eval_seeds=1, protocol=FAST_EVAL, config=CFG,
                    progress=False)
    with pytest.raises(UnknownNameError):
        prune_table(cset, test, ipcs=[1], rules=["yoco"], nets=["vgg99"], progress=False)


def test_cli_prune_table_prints_the_table_and_saves_every_cell(tmp_path, capsys, cset, full_dyn):
    f = _write_set(tmp_path, cset)
    dyn = tmp_path / "dyn.safetensors"
    full_dyn.save(dyn)
    test = make_blobs(4, 3, seed=9)
    np.savez(tmp_path / "test.npz", images=test.images.numpy(), labels=test.labels.numpy())
    out = tmp_path / "t.json"
    rc = main(["prune-table", f, "--ipc", "1", "--rules", "yoco,random", "--test", f"npz:{tmp_path / 'test.npz'}",
               "--runs", "1", "--eval-seeds", "1", "--epochs", "8", "--stop-epoch", "4", "--top-k", "2",
               "--dynamics", str(dyn), "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "yoco" in text and "random" in text and "±" in text and f"wrote {out}" in text
    saved = json.loads(out.read_text())
    assert set(saved["cells"]["convnet"]) == {"yoco", "random"} and len(saved["cells"]["convnet"]["yoco"]["1"]) == 1
    rc = main(["prune-table", f, "--rules", "yoco,best", "--test", "x"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown pruning rule 'best'" in err and len(err.strip().splitlines()) == 1


def test_shuffled_unequal_idc_file_is_pruned_per_class(tmp_path, cset):
    # an IDC-format file whose classes are interleaved and unequal (class 2 has 4 images, the others 6)
    keep = torch.tensor([0, 6, 12, 1, 7, 13, 2, 8, 14, 3, 9, 15, 4, 10, 5, 11])
    torch.save([cset.images[keep].clone(), cset.labels[keep].clone()], tmp_path / "data.pt")
    ds = import_condensed(tmp_path / "data.pt")
    assert ds.ipc() is None and ds.counts() == [6, 6, 4]
    res = prune_set(ds, ipc=3, rule="yoco", config=CFG, runs=1, progress=False)
    assert res.images.counts() == [3, 3, 3]
    assert all(int(ds.labels[i]) == int(res.images.labels[j]) for j, i in enumerate(res.indices.tolist()))
    with pytest.raises(BadInputError, match="class 2 holds 4"):
        prune_set(ds, ipc=5, rule="random", progress=False)


def test_cli_every_rule_on_an_idc_data_pt(tmp_path, capsys, cset):
    torch.save([cset.images[::2].clone(), cset.labels[::2].clone()], tmp_path / "data.pt")  # 3 per class, f=2
    dyn = str(tmp_path / "dyn.safetensors")
    cfg = DynamicsConfig(runs=1, epochs=8, stop_epoch=4, top_k=2)
    longest_first = sorted(rules_under_test(), key=lambda r: -epochs_needed([r], cfg))
    assert epochs_needed(longest_first[:1], cfg) == 8
    for rule in longest_first:
        out = tmp_path / f"{rule}.safetensors"
        rc = main(["prune", str(tmp_path / "data.pt"), "--factor", "2", "--ipc", "1", "--rule", rule, "--runs", "1",
                   "--epochs", "8", "--stop-epoch", "4", "--top-k", "2", "--dynamics", dyn, "--out", str(out), "--json"])
        got = json.loads(capsys.readouterr().out)
        assert rc == 0 and got["factor"] == 2 and got["kept"] == 12 and sum(got["counts"]) == 12
        meta = read_metadata(out)
        assert meta["rule"] == rule and meta["ipc_from"] == 3 and meta["parent_factor"] == 2 and meta["factor"] == 1
    assert load_dynamics(dyn).epochs == 8  # recorded once (by the first rule, the whole schedule), reused by the rest


def test_prune_table_cross_architecture(cset):
    test = make_blobs(4, 3, seed=9)
    tab = prune_table(cset, test, ipcs=[2], rules=["random"], nets=["convnet", "resnet10-ap"], runs=1, eval_seeds=1,
                      protocol=FAST_EVAL, progress=False)
    assert set(tab.cells) == {"convnet", "resnet10-ap"} and set(tab.full) == {"convnet", "resnet10-ap"}
    assert "resnet10-ap on" in tab.format()
