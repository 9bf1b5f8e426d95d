"""How CPU work is sized. The thread rule: small steps on one thread, the rest on torch's threads, an
override, restored after. The piece rule: a training step cut into cache-sized pieces computes the
same step (up to float rounding), never for batch-norm models."""

import pytest
import torch

from conftest import make_blobs
from simplebits.errors import BadInputError
from simplebits.models import create_model
from simplebits.train import get_protocol, predict_logits, train_classifier
from simplebits.train.threads import (PIECE_PIXELS, SMALL_WORK, couples_batch, step_pieces, threads_for,
                                      work_threads)


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.delenv("SIMPLEBITS_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_small_steps_get_one_thread_large_ones_keep_torchs(two_threads):
    assert threads_for(10, (8, 8)) == 1  # 640 pixels: digits at IPC 1
    assert threads_for(SMALL_WORK // 64 - 1, (8, 8)) == 1
    assert threads_for(SMALL_WORK // 64, (8, 8)) == 2  # the threshold itself is "large"
    assert threads_for(10, (28, 28)) == 2  # Fashion-MNIST at IPC 1
    torch.set_num_threads(1)  # the user's own limit is never raised
    assert threads_for(256, (32, 32)) == 1


def test_env_override_and_bad_value(two_threads, monkeypatch):
    import simplebits.train.threads as threads

    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    monkeypatch.setenv("SIMPLEBITS_THREADS", "3")
    assert threads_for(10, (8, 8)) == 3 and threads_for(256, (32, 32)) == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("SIMPLEBITS_THREADS", bad)
        with pytest.raises(BadInputError, match="SIMPLEBITS_THREADS"):
            threads_for(10, (8, 8))


def test_more_threads_than_cores_is_honoured_with_one_note(two_threads, monkeypatch):
    import warnings

    import simplebits.train.threads as threads

    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "_WARNED_OVER", set())
    monkeypatch.setenv("SIMPLEBITS_THREADS", "100")
    with pytest.warns(UserWarning, match=r"SIMPLEBITS_THREADS=100 is more threads than the 2 core\(s\)"):
        assert threads_for(10, (8, 8)) == 100  # the number decides the bits: kept as set
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert threads_for(256, (32, 32)) == 100  # said once, not at every step
        monkeypatch.setenv("SIMPLEBITS_THREADS", "2")
        assert threads_for(10, (8, 8)) == 2  # within the cores: nothing said
    assert threads.usable_cores() >= 1


def test_work_threads_restores_the_count_even_on_error(two_threads):
    with work_threads(10, (8, 8)) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError):
        with work_threads(10, (8, 8)):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_training_and_test_pass_follow_the_rule(two_threads):
    train = make_blobs(4, 2, (1, 8, 8))  # 8 images of 8x8 per step: small work
    net = create_model("convnet", channels=1, num_classes=2, image_size=(8, 8), seed=0, width=8)
    seen = []
    p = get_protocol("quick").with_overrides(max_steps=3)
    train_classifier(net, train, protocol=p, seed=0, progress=False,
                     on_batch=lambda e, i, out: seen.append(torch.get_num_threads()))
    assert seen == [1, 1, 1] and torch.get_num_threads() == 2
    a = predict_logits(net, train.images)
    torch.set_num_threads(1)
    b = predict_logits(net, train.images)
    assert torch.equal(a, b)  # small inference ran on one thread either way: the same bits


def test_pieces_cover_the_step_in_near_equal_cache_sized_parts(monkeypatch):
    monkeypatch.delenv("SIMPLEBITS_PIECE_PIXELS", raising=False)
    for batch, hw in [(256, (28, 28)), (256, (32, 32)), (64, (28, 28)), (100, (16, 16)), (7, (28, 28))]:
        p = step_pieces(batch, hw)
        sizes = [b - a for a, b in p]
        assert p[0][0] == 0 and p[-1][1] == batch and all(p[i][1] == p[i + 1][0] for i in range(len(p) - 1))
        assert max(sizes) - min(sizes) <= 1
        assert max(sizes) * hw[0] * hw[1] <= max(PIECE_PIXELS, hw[0] * hw[1])
    assert len(step_pieces(256, (32, 32))) == 16
    assert step_pieces(256, (8, 8)) == [(0, 256)]  # small images: one piece
    assert step_pieces(256, (32, 32), "meta") == [(0, 256)]  # accelerators: whole steps
    assert step_pieces(256, (32, 32), coupled=True) == [(0, 256)]  # batch norm: whole steps
    assert step_pieces(1, (512, 512)) == [(0, 1)]


def test_piece_env_override_and_bad_value(monkeypatch):
    monkeypatch.setenv("SIMPLEBITS_PIECE_PIXELS", "0")
    assert step_pieces(256, (32, 32)) == [(0, 256)]
    monkeypatch.setenv("SIMPLEBITS_PIECE_PIXELS", str(64 * 32 * 32))
    assert len(step_pieces(256, (32, 32))) == 4
    for bad in ("-1", "lots"):
        monkeypatch.setenv("SIMPLEBITS_PIECE_PIXELS", bad)
        with pytest.raises(BadInputError, match="SIMPLEBITS_PIECE_PIXELS"):
            step_pieces(256, (32, 32))


def test_batch_norm_models_are_never_cut():
    assert couples_batch(create_model("convnet", channels=1, num_classes=2, image_size=8, seed=0, norm="batch"))
    assert not couples_batch(create_model("convnet", channels=1, num_classes=2, image_size=8, seed=0))


@pytest.mark.parametrize("protocol", ["quick", "idc"])  # idc: DSA + CutMix on the whole batch, then pieces
def test_a_step_in_pieces_is_the_whole_step(monkeypatch, protocol):
    train = make_blobs(20, 3, (1, 28, 28))  # 60 images of 28x28 per step: three pieces of 20

    def run(piece_pixels: str):
        monkeypatch.setenv("SIMPLEBITS_PIECE_PIXELS", piece_pixels)
        net = create_model("convnet", channels=1, num_classes=3, image_size=28, seed=0, width=16)
        seen = []
        p = get_protocol(protocol).with_overrides(max_steps=4, batch_size=60)
        train_classifier(net, train, protocol=p, seed=0, progress=False,
                         on_batch=lambda e, i, out: seen.append((i.clone(), out.clone())))
        return net, seen

    assert len(step_pieces(60, (28, 28))) == 3
    whole, seen_whole = run("0")
    cut, seen_cut = run("")
    for (i1, o1), (i2, o2) in zip(seen_whole, seen_cut, strict=True):
        assert torch.equal(i1, i2) and o1.shape == o2.shape == (60, 3)
        torch.testing.assert_close(o1, o2, rtol=1e-4, atol=1e-4)
    for (name, a), b in zip(whole.state_dict().items(), cut.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


# ------------------------------------------------------------------ OpenMP spin count (simplebits._openmp)
def test_spin_default_is_set_only_when_it_decides_anything():
    from simplebits._openmp import SPIN_DEFAULT, set_spin_default

    env: dict[str, str] = {}
    assert set_spin_default(env, modules={}) == str(SPIN_DEFAULT) and env["GOMP_SPINCOUNT"] == "1000"
    for given in ({"GOMP_SPINCOUNT": "5"}, {"OMP_WAIT_POLICY": "ACTIVE"}, {"SIMPLEBITS_SPINCOUNT": "keep"},
                  {"SIMPLEBITS_SPINCOUNT": "lots"}):  # the user's value wins; a bad choice never breaks the import
        env = dict(given)
        assert set_spin_default(env, modules={}) is None and env == given
    env = {}
    assert set_spin_default(env, modules={"torch": object()}) is None and env == {}  # too late: libgomp loaded
    env = {"SIMPLEBITS_SPINCOUNT": "0"}
    assert set_spin_default(env, modules={}) == "0" and env["GOMP_SPINCOUNT"] == "0"


def _python(code: str, **env_extra: str) -> str:
    import os
    import subprocess
    import sys

    unset = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "SIMPLEBITS_SPINCOUNT")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    r = subprocess.run([sys.executable, "-c", code], env={**env, **env_extra}, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


def test_importing_simplebits_first_sets_the_spin_count_for_torch():
    code = "import os, simplebits; print(os.environ.get('GOMP_SPINCOUNT'))"
    assert _python(code) == "1000"
    assert _python(code, GOMP_SPINCOUNT="7") == "7"
    assert _python("import os, torch, simplebits; print(os.environ.get('GOMP_SPINCOUNT'))") == "None"


def test_the_spin_count_never_changes_the_bits():
    """Two threads, libgomp's spin count at 0 and at 300,000: the same trained weights, bit for bit
    (the count decides when a waiting thread sleeps, not how the work is split)."""
    code = ("import hashlib, torch, torch.nn.functional as F\n"
            "from simplebits.models import create_model\n"
            "torch.set_num_threads(2)\n"
            "net = create_model('convnet', channels=1, num_classes=10, image_size=(28, 28), seed=0, width=16)\n"
            "opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)\n"
            "g = torch.Generator().manual_seed(0)\n"
            "x, y = torch.rand(32, 1, 28, 28, generator=g), torch.randint(0, 10, (32,), generator=g)\n"
            "for _ in range(5):\n"
            "    loss = F.cross_entropy(net(x), y); opt.zero_grad(); loss.backward(); opt.step()\n"
            "h = hashlib.sha256()\n"
            "for p in net.parameters(): h.update(p.detach().numpy().tobytes())\n"
            "print(torch.get_num_threads(), h.hexdigest())\n")
    a = _python(code, GOMP_SPINCOUNT="0", OMP_NUM_THREADS="2")
    b = _python(code, GOMP_SPINCOUNT="300000", OMP_NUM_THREADS="2")
    assert a.startswith("2 ") and a == b
