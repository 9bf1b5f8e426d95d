"""The thread rule: small steps on one thread, the rest on torch's threads, an override, restored after."""

import pytest
import torch

from conftest import make_blobs
from simplebits.errors import BadInputError
from simplebits.models import create_model
from simplebits.train import get_protocol, predict_logits, train_classifier
from simplebits.train.threads import SMALL_WORK, threads_for, work_threads


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
    monkeypatch.setenv("SIMPLEBITS_THREADS", "3")
    assert threads_for(10, (8, 8)) == 3 and threads_for(256, (32, 32)) == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("SIMPLEBITS_THREADS", bad)
        with pytest.raises(BadInputError, match="SIMPLEBITS_THREADS"):
            threads_for(10, (8, 8))


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
