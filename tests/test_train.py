import pytest
import torch

from conftest import make_blobs
from simplebits.train import evaluate, evaluate_real_subset, get_protocol, list_protocols
from simplebits.data import ImageSet
from simplebits.errors import MismatchError, UnknownNameError


def tiny(protocol="quick", **kw):
    # small network and few steps so the whole file stays fast on 2 cores
    return get_protocol(protocol).with_overrides(model_options={"width": 16}, **kw)


def test_protocols_registered_with_paper_settings():
    names = {p.name for p in list_protocols()}
    assert {"dc", "dsa", "idc", "quick"} <= names
    dc, idc = get_protocol("dc"), get_protocol("idc")
    assert (dc.epochs, dc.batch_size, dc.lr, dc.milestones, dc.dsa) == (300, 256, 0.01, (0.5,), None)
    assert (idc.epochs, idc.batch_size, idc.gamma, idc.cutmix_prob) == (1000, 64, 0.2, 0.5)
    assert get_protocol("quick").total_steps(100) == 300 and get_protocol("quick").total_steps(60000) == 300
    with pytest.raises(UnknownNameError, match="quick"):
        get_protocol("nope")


def test_training_learns_and_same_seed_same_accuracy():
    train, test = make_blobs(10, seed=0), make_blobs(10, seed=1)
    p = tiny(max_steps=40)
    r1 = evaluate(train, test, protocol=p, seeds=[0])
    r2 = evaluate(train, test, protocol=p, seeds=[0])
    assert r1.accuracies == r2.accuracies  # bit-identical on CPU
    assert r1.mean > 0.9  # the blobs are easy: training works


@pytest.mark.parametrize("proto", ["dsa", "idc"])
def test_augmented_protocols_run_and_are_deterministic(proto):
    train, test = make_blobs(6, seed=0), make_blobs(6, seed=1)
    p = tiny(proto, max_steps=6)
    a = evaluate(train, test, protocol=p, seeds=[3])
    b = evaluate(train, test, protocol=p, seeds=[3])
    assert a.accuracies == b.accuracies


def test_report_has_baseline_at_same_ipc():
    real, test = make_blobs(20, seed=0), make_blobs(5, seed=1)
    cond = make_blobs(2, seed=5).with_meta(name="cond")
    r = evaluate(cond, test, protocol=tiny(max_steps=5), seeds=2, baseline_from=real)
    assert r.baseline is not None and r.baseline.ipc == 2 and r.baseline.seeds == [0, 1]
    d = r.to_dict()
    assert set(d) >= {"mean", "std", "accuracies", "baseline", "protocol"}


def test_multiformation_baseline_counts_decoded_images():
    real, test = make_blobs(20, seed=0), make_blobs(5, seed=1)
    cond = make_blobs(1, seed=5).with_meta(factor=2)
    r = evaluate(cond, test, protocol=tiny(max_steps=3), seeds=1, baseline_from=real)
    assert r.n_train == 12 and r.baseline.ipc == 4


def test_random_subsets_differ_per_seed_and_mismatch_is_refused():
    real, test = make_blobs(20, seed=0), make_blobs(5, seed=1)
    r = evaluate_real_subset(real, test, ipc=1, protocol=tiny(max_steps=3), seeds=2)
    assert len(r.accuracies) == 2 and r.ipc == 1
    rgb = ImageSet.create(torch.rand(3, 3, 12, 12), [0, 1, 2])
    with pytest.raises(MismatchError, match="channel"):
        evaluate(rgb, test, protocol=tiny(max_steps=1), seeds=1)


@pytest.mark.parametrize("model", ["convnet", "resnet10-ap"])
def test_test_pass_batch_size_changes_speed_not_predictions(model):
    from simplebits.models import create_model
    from simplebits.train.loop import default_eval_batch, predict_logits

    g = torch.Generator().manual_seed(0)
    x = torch.rand(100, 1, 28, 28, generator=g)
    net = create_model(model, channels=1, num_classes=10, image_size=(28, 28), seed=0).eval()
    small = predict_logits(net, x)  # the CPU default: cache-sized batches
    assert default_eval_batch(torch.device("cpu")) < 100 <= default_eval_batch(torch.device("cuda"))
    one_batch = predict_logits(net, x, batch_size=1000)
    assert torch.equal(small.argmax(1), one_batch.argmax(1))
    assert torch.allclose(small, one_batch, rtol=0, atol=1e-5)


def test_compiled_training_is_the_same_training_and_deterministic():
    from simplebits.models import create_model
    from simplebits.train import train_classifier

    train = make_blobs(4, 2, (1, 8, 8))
    p = tiny(max_steps=4)

    def weights(compile):
        net = create_model("convnet", channels=1, num_classes=2, image_size=(8, 8), seed=0, width=8)
        train_classifier(net, train, protocol=p, seed=0, progress=False, compile=compile)
        return torch.cat([v.flatten() for v in net.state_dict().values()])

    eager, c1, c2 = weights(False), weights(True), weights(True)
    assert torch.equal(c1, c2)  # same seed, same bits, compiled too
    assert torch.allclose(c1, eager, atol=1e-4)  # the same training up to float rounding
    assert torch.equal(eager, weights(False))  # eager is deterministic as well
    # evaluate(compile=True) trains that way and reports like any evaluation
    rep = evaluate(train, make_blobs(3, 2, (1, 8, 8), seed=5), protocol=p.with_overrides(model_options={"width": 8}),
                   seeds=[0], compile=True)
    assert len(rep.accuracies) == 1 and 0.0 <= rep.mean <= 1.0


# ------------------------------------------------------------------ the one training loop's hooks
def _loop_net():
    from simplebits.models import create_model

    return create_model("convnet", channels=1, num_classes=2, image_size=(8, 8), seed=0, width=8)


def test_train_loop_calls_every_hook_and_trains_on_the_loss_hook():
    from simplebits.train.loop import Batch, predict_logits, train_loop

    train = make_blobs(5, 2, (1, 8, 8))  # 10 images: epochs of batches 4, 4, 2
    net = _loop_net()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    seen = {"epochs": [], "modes": [], "batches": [], "lrs": [], "losses": 0}

    def loss(out, data, piece):  # not the labels' loss: push every image towards class 0
        seen["losses"] += 1
        return out[:, 1].mean() - out[:, 0].mean()

    def on_epoch(epoch, model):
        seen["epochs"].append(epoch)
        seen["modes"].append(model.training)
        model.eval()  # an epoch hook may evaluate: the next epoch trains in train mode again

    def lr(step):
        seen["lrs"].append(step)
        return 0.1 / (step + 1)

    state = torch.random.get_rng_state()
    out = train_loop(net, n=10, batch_size=4, steps=7, optimizer=opt,
                     order=lambda e: torch.randperm(10, generator=torch.Generator().manual_seed(e)),
                     batch=lambda e, s, idx: Batch(train.images[idx], train.labels[idx]), loss=loss,
                     dropout_seed=0, lr=lr, on_epoch=on_epoch, progress=False,
                     on_batch=lambda e, idx, o: seen["batches"].append((e, idx.tolist(), tuple(o.shape))))
    assert out is net and not net.training
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is untouched
    assert seen["epochs"] == [0, 1, 2] and seen["modes"] == [True, True, True]  # the cut last epoch too
    assert seen["lrs"] == list(range(7)) and opt.param_groups[0]["lr"] == pytest.approx(0.1 / 7)
    assert seen["losses"] == 7  # one piece per step without image_hw
    assert [e for e, _, _ in seen["batches"]] == [0, 0, 0, 1, 1, 1, 2]
    assert [s for _, _, s in seen["batches"]] == [(4, 2), (4, 2), (2, 2)] * 2 + [(4, 2)]
    assert sorted(i for e, idx, _ in seen["batches"] if e == 0 for i in idx) == list(range(10))  # an epoch sees all
    assert bool((predict_logits(net, train.images).argmax(1) == 0).all())  # trained on the hook's loss


def test_train_loop_with_image_hw_runs_the_threads_rule_and_its_step_pieces():
    from simplebits.models import create_model
    from simplebits.train.loop import Batch, train_loop
    from simplebits.train.threads import step_pieces, threads_for

    x = torch.rand(48, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.arange(48) % 2
    pieces, threads = [], set()

    def loss(out, data, piece):
        pieces.append((piece.start, piece.stop))
        threads.add(torch.get_num_threads())
        return torch.nn.functional.cross_entropy(out, data.target[piece], reduction="sum") / data.x.shape[0]

    net = create_model("convnet", channels=1, num_classes=2, image_size=(28, 28), seed=0, width=8)
    train_loop(net, n=48, batch_size=48, steps=2, optimizer=torch.optim.SGD(net.parameters(), lr=0.01),
               order=lambda e: torch.arange(48), batch=lambda e, s, idx: Batch(x[idx], y[idx]), loss=loss,
               dropout_seed=0, image_hw=(28, 28), progress=False)
    want = step_pieces(48, (28, 28), "cpu")
    assert len(want) > 1 and pieces == want * 2  # each step's rows, in pieces, once
    assert threads == {threads_for(48, (28, 28), "cpu")}


def test_train_classifier_on_epoch_sees_every_epoch_and_stop_epoch_cuts_the_same_run():
    from simplebits.train import train_classifier

    train = make_blobs(5, 2, (1, 8, 8))
    p = tiny(epochs=4, max_steps=None, batch_size=4)  # 3 steps an epoch, 12 in all

    def run(protocol, **kw):
        net, epochs = _loop_net(), {}

        def on_epoch(e, m):
            epochs[e] = {k: v.clone() for k, v in m.state_dict().items()}

        train_classifier(net, train, protocol=protocol, seed=0, progress=False, on_epoch=on_epoch, **kw)
        return net, epochs

    (_, full), (cut, early) = run(p), run(p, stop_epoch=2)
    assert sorted(full) == [0, 1, 2, 3] and sorted(early) == [0, 1]
    assert all(torch.equal(v, full[1][k]) for k, v in cut.state_dict().items())  # the full run's first epochs
    _, partial = run(tiny(epochs=4, max_steps=7, batch_size=4))
    assert sorted(partial) == [0, 1, 2]  # 7 steps: two whole epochs and one step of the third
