"""Condensation: distances, the batched gradient engine against a one-class-at-a-time loop,
every method end to end on tiny data, the simplification term, resume and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_blobs
from PIL import Image

from simplebits.cli.main import main
from simplebits.condense import (
    GradientEngine,
    condense,
    derive_loops,
    distance,
    get_method,
    list_methods,
    make_config,
    matched_parameters,
    output_paths,
    starting_set,
)
from simplebits.data import ImageSet
from simplebits.data.condensed import decode, load_condensed
from simplebits.errors import BadInputError, DivergedError, MismatchError, UnknownNameError
from simplebits.io import read_metadata
from simplebits.models import create_model

TINY = {"net_options": {"width": 8}, "compile": False, "chunk": 4, "batch_real": 6, "batch_train": 8}


def cfg(method="dc", ipc=1, **kw):
    return make_config(method, ipc=ipc, preset="quick", **{**TINY, "iterations": 2, **kw})


# ----------------------------------------------------------------------------- distances
def test_layerwise_distance_is_zero_for_equal_gradients_and_ignores_biases():
    g = [torch.randn(4, 3, 3, 3), torch.randn(4), torch.randn(5, 6)]
    assert float(distance(g, [t.clone() for t in g], "layerwise")) == pytest.approx(0.0, abs=1e-5)
    h = [g[0], torch.randn(4), g[2]]  # only the bias differs
    assert float(distance(g, h, "layerwise")) == pytest.approx(0.0, abs=1e-5)
    opp = [-t for t in g]  # opposite directions: 1 - (-1) = 2 per row
    assert float(distance(g, opp, "layerwise")) == pytest.approx(2 * (4 + 5), rel=1e-4)


def test_flat_distances_match_their_definitions():
    a = [torch.randn(3, 2), torch.randn(3)]
    b = [torch.randn(3, 2), torch.randn(3)]
    fa, fb = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    assert float(distance(a, b, "mse")) == pytest.approx(float(((fa - fb) ** 2).sum()), rel=1e-5)
    assert float(distance(a, b, "cos")) == pytest.approx(float(1 - F.cosine_similarity(fa, fb, dim=0)), rel=1e-4)
    assert float(distance(a, b, "neg-product")) == pytest.approx(float(-(fa * fb).sum()), rel=1e-5)
    with pytest.raises(UnknownNameError):
        distance(a, b, "l3")


def test_loop_schedule_matches_dc_table_and_accepts_any_ipc():
    assert derive_loops(1) == (1, 1)
    assert derive_loops(10) == (10, 50)
    assert derive_loops(50) == (50, 10)
    assert derive_loops(20) == (20, 25)
    o, i = derive_loops(7)
    assert o == 7 and 1 <= i <= 50


# ----------------------------------------------------------------------------- the engine
def _reference_loss(net, params, reals, syn):
    """One class at a time, whole contiguous batches, eager: what the reference scripts do."""
    total = syn.new_zeros(())
    for c, xr in enumerate(reals):
        yr = torch.full((len(xr),), c)
        gr = [g.detach() for g in torch.autograd.grad(F.cross_entropy(net(xr), yr), params)]
        gs = torch.autograd.grad(F.cross_entropy(net(syn[c : c + 1]), torch.tensor([c])), params, create_graph=True)
        total = total + distance(gr, gs, "layerwise")
    return total


def test_batched_engine_gives_the_reference_loss_and_image_gradient():
    torch.manual_seed(0)
    reals = [torch.rand(10, 1, 16, 16) for _ in range(3)]
    syn = torch.rand(3, 1, 16, 16)
    net_a = create_model("convnet", channels=1, num_classes=3, image_size=16, width=16, seed=4)
    net_b = create_model("convnet", channels=1, num_classes=3, image_size=16, width=16, seed=4)
    xa = syn.clone().requires_grad_(True)
    ref = _reference_loss(net_a, matched_parameters(net_a), reals, xa)
    ref.backward()
    eng = GradientEngine(net_b, matched_parameters(net_b), chunk=3)  # pieces of 3+3+2+2, channels-last
    xb = syn.clone().requires_grad_(True)
    ours = sum(distance(eng.real(r, torch.full((10,), c)), eng.synthetic(xb[c : c + 1], torch.tensor([c])))
               for c, r in enumerate(reals))
    ours.backward()
    assert abs(float(ours.detach()) - float(ref.detach())) <= 1e-5 * abs(float(ref.detach()))
    assert float((xa.grad - xb.grad).norm() / xa.grad.norm()) < 1e-3


# ----------------------------------------------------------------------------- methods
# the tiny run of each method is its quick preset with TINY on top; a method that needs more to be
# tiny says so here (idc/dream: 2 image updates per network instead of 10)
FASTER = {"idc": {"outer_loop": 2}, "dream": {"outer_loop": 2, "dream_every": 1}}
# dc under every other distance, initialisation and network option
DC_VARIANTS = [
    ("dc", {"match": "mse", "init": "noise"}),
    ("dc", {"match": "cos", "net_options": {"width": 8, "norm": "none", "act": "elu"}}),
    ("dc", {"match": "neg-product"}),
    ("dc", {"match": "unrolled"}),
]


def smoke_cases() -> list[tuple[str, dict]]:
    """One tiny end-to-end run per registered method (read from the registry, so a method declared
    with register_method is run without an edit here), then dc's variants."""
    return [(m, FASTER.get(m, {})) for m in list_methods()] + DC_VARIANTS


@pytest.mark.parametrize("method,kw", smoke_cases())
def test_every_method_writes_a_condensed_set(tmp_path, method, kw):
    ds = make_blobs(12, 3, (1, 12, 12))
    out = tmp_path / "c.safetensors"
    r = condense(ds, cfg(method, ipc=2, **kw), out=out, progress=False)
    got = load_condensed(out)
    assert got.counts() == [2, 2, 2]
    assert got.images.min() >= 0 and got.images.max() <= 1
    meta = read_metadata(out)
    assert meta["method"] == method and meta["settings"]["ipc"] == 2 and meta["bpd"] == pytest.approx(r.bpd)
    assert meta["seconds_per_iteration"] > 0 and meta["peak_rss_mb"] > 0
    paths = output_paths(out)
    log = json.loads(paths["log"].read_text())
    assert len(log["iterations"]) == 2 and all(np.isfinite(e["match_loss"]) for e in log["iterations"])
    assert Image.open(paths["grid"]).size[0] > 0 and Image.open(paths["diff"]).size[0] > 0
    assert not paths["checkpoint"].exists()
    if get_method(method).trait("multi_formation", False):  # idc, dream: their presets' factor 2
        assert meta["factor"] == 2 and decode(got).counts() == [8, 8, 8]


def test_condensation_changes_the_images_and_lowers_the_matching_loss():
    ds = make_blobs(20, 3, (1, 12, 12), seed=1)
    r = condense(ds, cfg("dc", iterations=12, init="noise", seed=3), progress=False)
    first, last = r.log[0]["match_loss"], np.mean([e["match_loss"] for e in r.log[-3:]])
    assert last < first


def test_dsa_flip_is_off_for_digit_sources():
    from simplebits.condense.methods import make_method

    ds = make_blobs(6, 2, (1, 12, 12)).with_meta(source="mnist-5k")
    m = make_method(cfg("dsa"), ds, device=torch.device("cpu"))
    assert "flip" not in m.dsa.ops
    m2 = make_method(cfg("dsa"), ds.with_meta(source="fashion-mnist"), device=torch.device("cpu"))
    assert "flip" in m2.dsa.ops


def test_mix_init_is_a_collage_of_real_images():
    from simplebits.condense.synth import SyntheticSet

    ds = make_blobs(8, 2, (1, 12, 12))
    s = SyntheticSet(ds, ipc=1, factor=2, param="pixels", init="mix", generator=torch.Generator().manual_seed(0))
    x = s.images().detach()
    assert x.shape == (2, 1, 12, 12)
    # each 6x6 quadrant is a downscaled real image of the class: its bright bar survives
    assert float(x[0, :, :6, :6].max()) > 0.5 and float(x[1, :, 6:, 6:].max()) > 0.5


# ----------------------------------------------------------------------------- simplification
def test_simplification_term_lowers_bpd():
    ds = make_blobs(10, 2, (1, 28, 28), seed=2)
    base = dict(iterations=8, seed=1, init="real")
    r0 = condense(ds, cfg("dc", lambda_sim=0.0, **base), progress=False)
    r1 = condense(ds, cfg("dc", lambda_sim=50.0, **base), progress=False)
    assert r0.config.param == "logits" and r0.config.optimizer == "adam"
    assert r1.bpd < r0.bpd - 0.2, (r0.bpd, r1.bpd)
    # logits parametrisation: saved images lie on the 8-bit grid
    x = r1.images.images * 255
    assert torch.allclose(x, x.round(), atol=1e-3)


def test_a_density_model_that_does_not_fit_the_data_is_named(tmp_path, capsys, monkeypatch):
    """With the simplification term the density model's gradient is the loss: on data it codes in more
    bits than their raw values (uniform noise under gray32) condense says so, in simplify's words and
    count; smooth blobs and runs without the term get no note. Large sets are scored on a sample."""
    import simplebits.condense.simplification as simp

    g = torch.Generator().manual_seed(0)
    noise = ImageSet(torch.randint(0, 256, (8, 1, 28, 28), generator=g).float() / 255, torch.arange(8) % 2,
                     ("a", "b"), {"name": "noise"})
    r = condense(noise, cfg("dc", lambda_sim=1.0, iterations=1), progress=False)
    assert (r.blind_spots, r.blind_spots_scored) == (8, 8) and r.to_dict()["blind_spots"] == 8
    assert r.blind_spot_note.startswith("8 of 8 images of noise cost gray32 8 bits or more per value")
    plain = condense(noise, cfg("dc", iterations=1), progress=False)
    assert plain.blind_spots is None and plain.blind_spot_note is None  # no loss term: nothing pulls by them
    ok = condense(make_blobs(6, 2, (1, 28, 28), seed=4), cfg("dc", lambda_sim=1.0, iterations=1), progress=False)
    assert ok.blind_spots == 0 and ok.blind_spot_note is None
    monkeypatch.setattr(simp, "BLIND_SPOT_SAMPLE", 5)
    assert condense(noise, cfg("dc", lambda_sim=1.0, iterations=1), progress=False).blind_spots_scored == 5
    train = _npz(tmp_path / "noise.npz", noise)
    assert main(["condense", f"npz:{train}", "--ipc", "1", "--iterations", "1", "--width", "8", "--lambda-sim", "1",
                 "--no-compile", "--out", str(tmp_path / "s.safetensors"), "--device", "cpu"]) == 0
    assert "note: 5 of 5 images of" in capsys.readouterr().out
    assert read_metadata(tmp_path / "s.safetensors")["blind_spots"] == 5


def test_optimised_bpd_and_reported_bpd_are_one_measure():
    """The loss term is one seeded draw of the bound that score() reports: for the same images its
    mean over draws is the reported figure; a run's log and result carry both."""
    from simplebits.condense.simplification import BpdTerm

    ds = make_blobs(6, 2, (1, 28, 28), seed=4)
    term = BpdTerm(None, shape=(1, 28, 28), device=torch.device("cpu"))
    x = torch.round(ds.images[:8] * 255) / 255
    with torch.no_grad():
        draws = [float(term(x, generator=torch.Generator().manual_seed(s))) for s in range(48)]
    assert sum(draws) / len(draws) == pytest.approx(term.score(x), abs=0.01)
    r = condense(ds, cfg("dm", lambda_sim=100.0, iterations=3, seed=1, checkpoint_every=2), progress=False)
    assert [("bpd_reported" in e) for e in r.log] == [False, False, True]
    assert r.log[-1]["bpd_reported"] == pytest.approx(r.bpd, abs=1e-6)
    assert r.bpd_loss == r.log[-1]["bpd"] and abs(r.bpd_loss - r.bpd) < 0.5
    assert r.to_dict()["bpd_loss"] == r.bpd_loss
    plain = condense(ds, cfg("dm", iterations=2), progress=False)
    assert plain.bpd_loss is None and plain.log[-1]["bpd"] == pytest.approx(plain.bpd, abs=1e-6)


def test_density_model_must_fit_the_data():
    rgb = make_blobs(4, 2, (3, 12, 12))
    with pytest.raises(MismatchError, match="density model"):
        condense(rgb, cfg("dc", lambda_sim=1.0, density="gray32"), progress=False)
    big = make_blobs(4, 2, (1, 40, 40))
    with pytest.raises(MismatchError):
        condense(big, cfg("dc", lambda_sim=1.0), progress=False)


# ----------------------------------------------------------------------------- resume
def test_resume_gives_the_result_of_an_uninterrupted_run(tmp_path):
    ds = make_blobs(12, 3, (1, 12, 12), seed=5)
    c = cfg("dsa", ipc=2, iterations=5, checkpoint_every=2, seed=7)
    full = condense(ds, c, out=tmp_path / "full.safetensors", progress=False)

    def stop(entry):
        if entry["iteration"] == 2:  # after the checkpoint at 2, before the one at 4
            raise KeyboardInterrupt

    out = tmp_path / "part.safetensors"
    with pytest.raises(KeyboardInterrupt):
        condense(ds, c, out=out, progress=False, on_iteration=stop)
    assert output_paths(out)["checkpoint"].exists() and not out.exists()
    with pytest.raises(BadInputError, match="--resume"):
        condense(ds, c, out=out, progress=False)
    with pytest.raises(MismatchError, match="other settings"):
        condense(ds, cfg("dsa", ipc=2, iterations=5, checkpoint_every=2, seed=8), out=out, resume=True, progress=False)
    resumed = condense(ds, c, out=out, resume=True, progress=False)
    assert torch.equal(resumed.images.images, full.images.images)
    assert [e["match_loss"] for e in resumed.log] == pytest.approx([e["match_loss"] for e in full.log], rel=1e-6)


def test_same_seed_same_images():
    ds = make_blobs(10, 2, (1, 12, 12))
    a = condense(ds, cfg("dc", iterations=3, seed=2), progress=False)
    b = condense(ds, cfg("dc", iterations=3, seed=2), progress=False)
    assert torch.equal(a.images.images, b.images.images)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import simplebits.condense.methods as methods

    ds = make_blobs(8, 2, (1, 12, 12))
    real_distance = methods.distance
    calls = {"n": 0}

    def flaky(gr, gs, kind="layerwise"):
        calls["n"] += 1
        d = real_distance(gr, gs, kind)
        return d * float("nan") if calls["n"] > 2 * 3 else d  # 2 classes: NaN from iteration 3 on

    monkeypatch.setattr(methods, "distance", flaky)
    out = tmp_path / "n.safetensors"
    with pytest.raises(DivergedError, match="iteration 3.*last good checkpoint \\(iteration 2\\)"):
        condense(ds, cfg("dc", iterations=6, checkpoint_every=2), out=out, progress=False)
    assert output_paths(out)["checkpoint"].exists() and not out.exists()


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kw,match", [
    ({"ipc": 0}, "ipc"),
    ({"ipc": 50}, "more than class"),
    ({"lambda_sim": -1.0}, "lambda-sim"),
    ({"method": "nope"}, "unknown method"),
    ({"factor": 2}, "idc or dream"),
    ({"match": "l7"}, "match"),
])
def test_bad_settings_are_clear_errors(kw, match):
    ds = make_blobs(6, 2, (1, 12, 12))
    method = kw.pop("method", "dc")
    ipc = kw.pop("ipc", 1)
    with pytest.raises((BadInputError, UnknownNameError), match=match):
        condense(ds, cfg(method, ipc=ipc, **kw) if method == "dc" else make_config(method, ipc=ipc), progress=False)


def test_empty_class_is_a_clear_error():
    ds = make_blobs(6, 3, (1, 12, 12))
    keep = ds.labels != 1
    bad = ImageSet.create(ds.images[keep], ds.labels[keep], ds.classes, allow_empty_class=True)
    with pytest.raises(BadInputError, match="no images"):
        condense(bad, cfg("dc"), progress=False)


def test_factor_not_dividing_the_size_warns_and_still_decodes(tmp_path):
    ds = make_blobs(8, 2, (1, 13, 13))
    with pytest.warns(UserWarning, match="does not divide"):
        r = condense(ds, cfg("idc", factor=2, outer_loop=1), progress=False)
    assert decode(r.images).images.shape == (8, 1, 13, 13)


def test_engine_default_pieces_give_the_whole_batch_gradient():
    net = create_model("convnet", channels=1, num_classes=3, image_size=28, seed=0, width=8)
    params = matched_parameters(net)
    x, y = torch.rand(45, 1, 28, 28), torch.randint(0, 3, (45,))
    whole = torch.autograd.grad(F.cross_entropy(net(x), y), params)
    engine = GradientEngine(net, params)  # chunk 0: the training loop's pieces (45 -> 3 pieces of 15)
    assert len(engine.pieces(45, (28, 28))) == 3 and engine.layout == torch.contiguous_format
    for a, b in zip(whole, engine.real(x, y), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_classes_side_by_side_give_each_class_its_one_thread_gradient():
    """real_many/embed_many spread the classes over one-thread workers: every class gets exactly the
    bits of real()/embed_real() on one thread, for any number of workers, in class order."""
    net = create_model("convnet", channels=1, num_classes=5, image_size=16, seed=0, width=8)
    params = matched_parameters(net)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(24, 1, 16, 16, generator=g), torch.full((24,), c)) for c in range(5)]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = [GradientEngine(net, params).real(x, y) for x, y in batches]
        ref_emb = [GradientEngine(net, params).embed_real(x) for x, _ in batches]
    finally:
        torch.set_num_threads(before)
    auto = GradientEngine(net, params)
    assert auto.workers([x for x, _ in batches]) == min(before, 5)  # 24 images of 16x16: not small work
    assert auto.workers([x[:4] for x, _ in batches]) == 1  # small work: one class at a time
    for k in (2, 3):
        engine = GradientEngine(net, params, class_threads=k)
        assert engine.workers([x for x, _ in batches]) == k
        for a, b in zip(ref, engine.real_many(batches), strict=True):
            assert all(torch.equal(s, t) for s, t in zip(a, b, strict=True))
        for a, b in zip(ref_emb, engine.embed_many([x for x, _ in batches]), strict=True):
            assert torch.equal(a, b)
        engine.close()
    assert torch.get_num_threads() == before  # the workers' one thread does not leak into the caller


@pytest.mark.parametrize("method,kw", [("dc", {}), ("idc", {"factor": 2, "outer_loop": 1}), ("dm", {"init": "noise"})])
def test_starting_set_is_where_the_run_starts(method, kw):
    ds = make_blobs(10, 3, (1, 12, 12))
    c = cfg(method, iterations=1, lr_img=1e-12, **kw)  # a step too small to move a pixel
    start = starting_set(ds, c)
    if c.init == "noise":
        assert start is None  # nothing real to compare with: the random-real baseline is the reference
        return
    r = condense(ds, c, progress=False)
    assert start.meta["factor"] == r.images.meta["factor"] and torch.equal(start.labels, r.images.labels)
    torch.testing.assert_close(start.images, r.images.images, rtol=0, atol=1e-5)
    assert not torch.equal(start.images, starting_set(ds, cfg(method, seed=1, **kw)).images)  # the seed's draw


# ----------------------------------------------------------------------------- CLI
def _npz(path, ds):
    np.savez(path, images=(ds.images.numpy() * 255).astype(np.uint8), labels=ds.labels.numpy())
    return path


def test_cli_condense_json_and_evaluate(tmp_path, capsys):
    train = _npz(tmp_path / "train.npz", make_blobs(10, 3, (1, 12, 12)))
    test = _npz(tmp_path / "test.npz", make_blobs(5, 3, (1, 12, 12), seed=9))
    out = tmp_path / "set.safetensors"
    argv = ["condense", f"npz:{train}", "--ipc", "1", "--iterations", "2", "--width", "8", "--batch-real", "6",
            "--no-compile", "--out", str(out), "--evaluate", "quick", "--seeds", "1", "--test", f"npz:{test}",
            "--device", "cpu", "--json"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["method"] == "dc" and res["bpd"] > 0 and out.exists()
    ev = res["evaluation"]
    assert ev["protocol"] == "quick" and len(ev["accuracies"]) == 1 and ev["baseline"] is not None
    st = res["start"]  # real init: the starting images under the same protocol and seeds
    assert st["protocol"] == "quick" and st["seeds"] == ev["seeds"] and st["n_train"] == 3
    assert ("warnings" in res) == (ev["mean"] < st["mean"])


def test_cli_condense_warns_when_the_set_ends_below_its_start(tmp_path, capsys, monkeypatch):
    import simplebits.train as train_mod

    real_evaluate = train_mod.evaluate

    def rigged(ds, test, **kw):  # the condensed set scores 0, its starting images what they score
        rep = real_evaluate(ds, test, **kw)
        if ":start-" not in ds.name:
            rep.accuracies = [0.0 for _ in rep.accuracies]
        return rep

    monkeypatch.setattr(train_mod, "evaluate", rigged)
    train = _npz(tmp_path / "train.npz", make_blobs(10, 3, (1, 12, 12)))
    test = _npz(tmp_path / "test.npz", make_blobs(5, 3, (1, 12, 12), seed=9))
    argv = ["condense", f"npz:{train}", "--ipc", "1", "--iterations", "1", "--width", "8", "--batch-real", "6",
            "--no-compile", "--out", str(tmp_path / "s.safetensors"), "--evaluate", "quick", "--eval-seeds", "1",
            "--test", f"npz:{test}", "--json"]
    assert main(argv) == 0
    cap = capsys.readouterr()
    res = json.loads(cap.out)
    assert res["start"]["accuracies"][0] > 0 and len(res["warnings"]) == 1
    assert "--eval-seeds is deprecated, use --seeds" in cap.err  # the old spelling still works, for one release
    lines = [ln for ln in cap.err.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and "ends below the real-initialised images it started from" in lines[0]


@pytest.mark.parametrize("extra,match", [
    (["--ipc", "0"], "ipc"),
    (["--ipc", "1", "--lambda-sim", "-2"], "lambda"),
    (["--ipc", "1", "--factor", "3"], "idc or dream"),
    (["--ipc", "1", "--evaluate", "nope"], "protocol"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, extra, match):
    train = _npz(tmp_path / "train.npz", make_blobs(4, 2, (1, 12, 12)))
    assert main(["condense", f"npz:{train}", "--out", str(tmp_path / "o.safetensors"), "--no-compile", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and __import__("re").search(match, err, flags=2), err
    assert not (tmp_path / "o.safetensors").exists()


# ----------------------------------------------------------------------------- compile only where it pays
def test_presets_compile_only_runs_long_enough_to_pay(tmp_path, capsys):
    from simplebits.condense.config import COMPILE_MIN_ITERATIONS, compiles

    assert make_config("dc", preset="quick").compile == "auto" and compiles(make_config("dc", preset="quick"))
    short = make_config("dc", preset="quick", iterations=COMPILE_MIN_ITERATIONS - 1)
    assert not compiles(short) and compiles(make_config("dc", preset="quick", iterations=COMPILE_MIN_ITERATIONS))
    assert compiles(make_config("dm", preset="quick", iterations=2, compile=True))  # asked for: always
    assert not compiles(make_config("dc", preset="paper", compile=False))
    with pytest.raises(BadInputError, match="compile"):
        make_config("dc", compile="sometimes")
    # a short CLI run stays eager and says nothing about compiling; --compile and --no-compile exclude each other
    train = _npz(tmp_path / "train.npz", make_blobs(6, 2, (1, 12, 12)))
    argv = ["condense", f"npz:{train}", "--ipc", "1", "--iterations", "2", "--width", "8", "--batch-real", "6",
            "--out", str(tmp_path / "s.safetensors"), "--json"]
    assert main(argv) == 0
    assert "compil" not in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([*argv, "--compile", "--no-compile"])
    assert e.value.code == 2
