"""Continual learning with condensed replay (paper S12), the printed-digits source, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from simplebits.cli.main import main
from simplebits.continual import (
    build_tasks, kd_loss, make_config, make_settings, masked_ce, run_continual,
)
from simplebits.continual import runner as runner_mod
from simplebits.data import load_dataset, real_subset
from simplebits.data.condensed import save_condensed
from simplebits.data.idx import write_idx
from simplebits.data.npz import save_npz
from simplebits.data.printed import printed_digits
from simplebits.data.svhn import write_svhn_mat
from simplebits.data.usps import write_usps
from simplebits.errors import BadInputError, MismatchError, UnknownNameError

TINY = dict(epochs=1, first_cycles=1, batch_size=16, replay_batch=8, model_options={"width": 8})


@pytest.fixture(autouse=True)
def _no_env_root(monkeypatch):
    monkeypatch.delenv("SIMPLEBITS_DATA", raising=False)


def _digit_npz(path, n=40, shape=(1, 12, 12), seed=0, classes=None, k=10):
    """A learnable 10-class set: class c lights row band c; written as a real .npz."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    y = np.arange(n) % k
    x = rng.random((n, c, h, w)).astype(np.float32) * 0.2
    for i, lab in enumerate(y):
        r = int(lab) % (h - 1)
        x[i, :, r : r + 2, :] += 0.7
    save_npz(path, np.clip(x, 0, 1), y, classes=classes or [str(i) for i in range(k)])
    return f"npz:{path}"


def _condensed(path, spec, ipc=1):
    ds = real_subset(load_dataset(spec), ipc, seed=0)
    save_condensed(path, ds, method="random", source=spec, bpd=2.5)
    return str(path)


# ------------------------------------------------------------------------ printed digits
def test_printed_digits_balanced_seeded_8bit():
    a = printed_digits(split="test", n=40)
    b = printed_digits(split="test", n=40)
    assert a.shape == (1, 28, 28) and a.counts() == [4] * 10 and a.classes == tuple("0123456789")
    assert torch.equal(a.images, b.images)  # same split, same images
    assert torch.equal(a.images * 255, (a.images * 255).round())  # on the 8-bit grid
    assert not torch.equal(printed_digits(split="train", n=40).images, a.images)  # splits differ
    # digits are drawn, not blank: every image has both a dark and a light part
    span = a.images.flatten(1).max(1).values - a.images.flatten(1).min(1).values
    assert float(span.min()) > 0.2
    with pytest.raises(BadInputError):
        printed_digits(split="extra")


# ------------------------------------------------------------------------ losses
def test_kd_loss_zero_for_equal_outputs_and_ignores_other_heads():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    mask = torch.zeros(6, 8, dtype=torch.bool)
    mask[:, :4] = True
    assert float(kd_loss(s, s, mask, 2.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(kd_loss(s, t, mask, 2.0)) > 0
    s2 = s.clone()
    s2[:, 4:] += 100.0  # outputs of another task's head do not count
    assert float(kd_loss(s2, t, mask, 2.0)) == pytest.approx(float(kd_loss(s, t, mask, 2.0)), rel=1e-5)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    assert float(masked_ce(s2, y, mask)) == pytest.approx(float(masked_ce(s, y, mask)), rel=1e-5)


# ------------------------------------------------------------------------ tasks and bad input
def test_one_task_unknown_name_and_duplicates(tmp_path):
    a = _digit_npz(tmp_path / "a.npz")
    cfg = make_config("quick", **TINY)
    with pytest.raises(BadInputError, match="at least two tasks"):
        build_tasks([a], cfg)
    with pytest.raises(UnknownNameError, match="no-such-set"):
        build_tasks([a, "no-such-set"], cfg)
    with pytest.raises(BadInputError, match="twice"):
        build_tasks([a, a], cfg)


def test_heads_shared_for_same_classes_else_per_task(tmp_path):
    a = _digit_npz(tmp_path / "a.npz", shape=(1, 8, 8))
    b = _digit_npz(tmp_path / "b.npz", shape=(3, 12, 12), seed=1)
    c = _digit_npz(tmp_path / "c.npz", seed=2, classes=[f"k{i}" for i in range(4)], k=4)
    cfg = make_config("quick", **TINY)
    seq = build_tasks([a, b], cfg)
    assert seq.head == "shared" and seq.num_outputs == 10 and seq.channels == 3 and seq.image_size == 12
    assert seq.tasks[0].train.shape == (3, 12, 12) and seq.tasks[0].native_shape == (1, 8, 8)
    seq2 = build_tasks([a, c], cfg)
    assert seq2.head == "per-task" and seq2.num_outputs == 14 and seq2.tasks[1].offset == 10
    assert seq2.mask()[1].nonzero().flatten().tolist() == list(range(10, 14))
    with pytest.raises(MismatchError, match="same number of classes"):
        build_tasks([a, c], cfg.with_overrides(head="shared"))


def test_replay_count_label_space_and_shape_checked(tmp_path):
    a = _digit_npz(tmp_path / "a.npz")
    b = _digit_npz(tmp_path / "b.npz", seed=1)
    c = _digit_npz(tmp_path / "c.npz", seed=2)
    good = _condensed(tmp_path / "a_cond.safetensors", a)
    cfg = make_config("quick", **TINY)
    with pytest.raises(MismatchError, match="1 file.*2 earlier task"):
        run_continual([a, b, c], make_settings([[good]]), config=cfg, seeds=[0])
    # a 4-class condensed set is not a set of a 10-class task
    other = _digit_npz(tmp_path / "o.npz", classes=[f"k{i}" for i in range(4)], k=4)
    wrong = _condensed(tmp_path / "o_cond.safetensors", other)
    with pytest.raises(MismatchError, match="not a condensed set of this task"):
        run_continual([a, b], make_settings([[wrong]]), config=cfg, seeds=[0])
    # same classes, wrong image size: the files were given in the wrong order or for another task
    big = _digit_npz(tmp_path / "big.npz", shape=(1, 16, 16))
    wrong_shape = _condensed(tmp_path / "big_cond.safetensors", big)
    with pytest.raises(MismatchError, match="task order"):
        run_continual([a, b], make_settings([[wrong_shape]]), config=cfg, seeds=[0])
    with pytest.raises(BadInputError, match="replay file not found"):
        run_continual([a, b], make_settings([[str(tmp_path / "missing.safetensors")]]), config=cfg, seeds=[0])
    with pytest.raises(BadInputError, match="nothing to run"):
        make_settings(None, no_replay=False)


# ------------------------------------------------------------------------ runs
def test_run_is_deterministic_shares_stage1_and_resumes(tmp_path, monkeypatch):
    a = _digit_npz(tmp_path / "a.npz", n=60)
    b = _digit_npz(tmp_path / "b.npz", n=60, seed=1)
    rep = _condensed(tmp_path / "a_cond.safetensors", a)
    cfg = make_config("quick", **TINY)
    settings = make_settings({"cond": [rep]}, no_replay=True, kd=(False, True))
    r1 = run_continual([a, b], settings, config=cfg, seeds=[0, 1], out=tmp_path / "out")
    assert [s.setting.label for s in r1.results] == ["no replay", "no replay + KD", "cond", "cond + KD"]
    for res in r1.results:
        assert sorted(res.acc) == [0, 1]
        assert len(res.acc[0]) == 2 and all(len(row) == 2 for row in res.acc[0])
        assert all(0.0 <= v <= 1.0 for row in res.acc[0] for v in row)
        # stage 1 sees no replay and no teacher: the same model for every setting
        assert res.acc[0][0] == r1.results[0].acc[0][0]
    assert r1.results[2].replay_bpd == pytest.approx(2.5) and r1.results[2].replay_images == 10
    # same seed, same result (fresh call, nothing resumed)
    r2 = run_continual([a, b], settings[2:3], config=cfg, seeds=[1])
    assert r2.results[0].acc[1] == r1.results[2].acc[1]
    # resume: every run is read back, nothing is trained
    monkeypatch.setattr(runner_mod, "train_stage", lambda *a, **k: pytest.fail("resume retrained a finished run"))
    r3 = run_continual([a, b], settings, config=cfg, seeds=[0, 1], out=tmp_path / "out", resume=True)
    assert [r.acc for r in r3.results] == [r.acc for r in r1.results]
    with pytest.raises(MismatchError, match="other config"):
        run_continual([a, b], settings, config=cfg.with_overrides(lr=0.05), seeds=[0], out=tmp_path / "out",
                      resume=True)


def test_a_stage_trains_through_the_one_loop_with_a_cosine_restarting_every_cycle(tmp_path, monkeypatch):
    from simplebits.models import create_model

    a = _digit_npz(tmp_path / "a.npz", n=60)
    b = _digit_npz(tmp_path / "b.npz", n=60, seed=1)
    cfg = make_config("quick", **{**TINY, "epochs": 2, "first_cycles": 2})
    seq = build_tasks([a, b], cfg)
    calls, real = [], runner_mod.train_loop

    def spy(model, **kw):
        calls.append(kw)
        return real(model, **kw)

    monkeypatch.setattr(runner_mod, "train_loop", spy)
    net = create_model("convnet", channels=seq.channels, num_classes=seq.num_outputs, image_size=seq.image_size,
                       seed=0, width=8)
    runner_mod.train_stage(net, seq, 0, cfg, seed=0, progress=False)
    kw = calls[0]
    cycle = cfg.epochs * -(-len(seq.tasks[0].train) // cfg.batch_size)
    lrs = [kw["lr"](s) for s in range(kw["steps"])]
    assert kw["steps"] == 2 * cycle and kw.get("image_hw") is None  # torch's threads and whole steps, as before
    assert lrs[0] == lrs[cycle] == cfg.lr and lrs[:cycle] == lrs[cycle:]  # the second cycle restarts at lr
    assert all(x > y for x, y in zip(lrs[: cycle - 1], lrs[1:cycle]))  # annealed within a cycle


def test_replay_slows_forgetting_on_conflicting_tasks(tmp_path):
    """Task B gives A's pictures (framed) other labels; without replay the shared head forgets
    A, with A's replay set (here a real subset) it keeps it and still learns B."""
    rng = np.random.default_rng(0)
    n, h, k = 160, 16, 4
    y = np.arange(n) % k
    x = rng.random((n, 1, h, h)).astype(np.float32) * 0.2
    for i, lab in enumerate(y):  # class c: bright quadrant c
        r, c = divmod(int(lab), 2)
        x[i, 0, r * 8 : r * 8 + 8, c * 8 : c * 8 + 8] += 0.8
    classes = [f"q{i}" for i in range(k)]
    save_npz(tmp_path / "a.npz", np.clip(x, 0, 1), y, classes=classes)
    # B: the same pictures in a bright frame (which tells them apart), labelled with the next
    # quadrant: a learner that forgets A just maps quadrant c to c+1
    xb = np.clip(x, 0, 1)
    xb[:, :, [0, -1], :] = 1.0
    xb[:, :, :, [0, -1]] = 1.0
    save_npz(tmp_path / "b.npz", xb, (y + 1) % k, classes=classes)
    a, b = f"npz:{tmp_path / 'a.npz'}", f"npz:{tmp_path / 'b.npz'}"
    rep = _condensed(tmp_path / "a_cond.safetensors", a, ipc=10)
    cfg = make_config("quick", epochs=8, first_cycles=1, batch_size=32, replay_batch=32, replay_dsa=None,
                      model_options={"width": 16})
    r = run_continual([a, b], make_settings({"replay": [rep]}, no_replay=True, kd=(False,)), config=cfg, seeds=[0])
    no_rep, with_rep = r.results[0].acc[0], r.results[1].acc[0]
    assert no_rep[0][0] > 0.9  # A is learned first
    assert with_rep[1][0] > no_rep[1][0] + 0.3  # replay keeps A
    assert with_rep[1][1] > 0.8  # and B is still learned


# ------------------------------------------------------------------------ the paper's sequence from files
def _paper_files(root):
    rng = np.random.default_rng(0)
    (root / "svhn").mkdir(parents=True)
    for split, n in (("train", 30), ("test", 20)):
        write_svhn_mat(root / "svhn" / f"{split}_32x32.mat", rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
                       np.arange(n) % 10)
    (root / "mnist").mkdir()
    for prefix, n in (("train", 30), ("t10k", 20)):
        write_idx(root / "mnist" / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    (root / "usps").mkdir()
    write_usps(root / "usps" / "usps.bz2", rng.random((30, 16, 16)), np.arange(30) % 10)
    write_usps(root / "usps" / "usps.t.bz2", rng.random((20, 16, 16)), np.arange(20) % 10)
    reps = []
    for name in ("svhn", "mnist"):
        ds = real_subset(load_dataset(name, root=root), 1, seed=0)
        save_condensed(root / f"{name}_ipc1.safetensors", ds, method="random", source=name)
        reps.append(str(root / f"{name}_ipc1.safetensors"))
    return reps


def test_paper_sequence_from_user_files_cli(tmp_path, capsys):
    reps = _paper_files(tmp_path)
    out = tmp_path / "out"
    code = main(["continual", "--tasks", "svhn,mnist,usps", "--replay", f"orig={','.join(reps)}", "--no-replay",
                 "--kd", "--seeds", "0", "--epochs", "1", "--first-cycles", "1", "--batch-size", "16", "--width", "8",
                 "--data-root", str(tmp_path), "--out", str(out), "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tasks"] == ["svhn", "mnist", "usps"] and doc["head"] == "shared"
    assert [s["label"] for s in doc["settings"]] == ["no replay + KD", "orig + KD"]
    acc = doc["settings"][1]["accuracy"]["0"]
    assert len(acc) == 3 and all(len(row) == 3 for row in acc)
    assert (out / "continual.json").is_file() and (out / "table.md").read_text().startswith("| setting")
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    a = _digit_npz(tmp_path / "a.npz")
    assert main(["continual", "--tasks", a, "--no-replay", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "at least two tasks" in err
    assert main(["continual", "--tasks", f"{a},nope", "--no-replay", "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["continual", "--tasks", f"{a},{a}x", "--out", str(tmp_path / "o")]) == 2
    assert "nothing to run" in capsys.readouterr().err
