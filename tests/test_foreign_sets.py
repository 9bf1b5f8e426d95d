"""Condensed sets from other tools: values kept as the tool made them (no silent clamping), the
data set and normalisation inferred from the file, the random-real baseline's data found (or one
line naming the fix), and every consumer either using the values or saying why it cannot."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_blobs

from simplebits.cli.main import main
from simplebits.condense import condense, make_config
from simplebits.data import ImageSet
from simplebits.data.condensed import (
    NORMALIZATIONS,
    decode,
    import_condensed,
    infer_dataset,
    load_condensed,
    save_condensed,
)
from simplebits.errors import BadInputError
from simplebits.io import read_metadata, save_tensors
from simplebits.prune import prune_set
from simplebits.train import evaluate, get_protocol

FM_MEAN, FM_STD = NORMALIZATIONS["fashion-mnist"][0][0], NORMALIZATIONS["fashion-mnist"][1][0]


def _dc_like(ipc: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST-shaped images spanning [-0.5, 1.5] in pixel units, as DC's unclamped sets do."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(10 * ipc, 1, 28, 28, generator=g) * 2.0 - 0.5
    return x, torch.arange(10).repeat_interleave(ipc)


def _write_dc(path, x, y):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"data": [[(x - FM_MEAN) / FM_STD, y]], "accs_all_exps": {"ConvNet": [0.7]}}, path)
    return path


def test_infer_dataset_from_names_folders_and_contents():
    assert infer_dataset("res_DC_FashionMNIST_ConvNet_1ipc.pt", (1, 28, 28), 10)[0] == "fashion-mnist"
    assert infer_dataset("res_DSA_CIFAR10_ConvNet_10ipc.pt", (3, 32, 32), 10)[0] == "cifar10"
    assert infer_dataset("logged_files/CIFAR100/run-7/images_best.pt", (3, 32, 32), 100)[0] == "cifar100"
    assert infer_dataset("results/svhn/conv3in_grad_mse_ipc10/data.pt", (3, 32, 32), 10)[0] == "svhn"
    assert infer_dataset("out/data.pt", (3, 32, 32), 100)[0] == "cifar100"  # only one data set fits
    name, why = infer_dataset("out/data.pt", (1, 28, 28), 10)
    assert name is None and "mnist and fashion-mnist" in why  # ambiguous: never guessed
    name, why = infer_dataset("res_DC_CIFAR10_ConvNet_1ipc.pt", (1, 28, 28), 10)
    assert name is None and "says cifar10" in why  # a name that contradicts the contents is not trusted


def test_dc_file_keeps_its_values_round_trip_and_clamp_is_a_choice(tmp_path):
    x, y = _dc_like()
    f = _write_dc(tmp_path / "res_DC_FashionMNIST_ConvNet_1ipc.pt", x, y)
    ds = import_condensed(f)  # no normalization, no source: both inferred from the name
    assert ds.meta["normalization"] == "fashion-mnist" and ds.meta["source_dataset"] == "fashion-mnist:train"
    assert ds.unbounded and torch.allclose(ds.images, x, atol=1e-6)
    assert ds.meta["out_of_range_fraction"] == pytest.approx(float(((x < 0) | (x > 1)).float().mean()), abs=1e-5)
    save_condensed(tmp_path / "set.safetensors", ds, method="dc", source=ds.meta["source_dataset"])
    meta = read_metadata(tmp_path / "set.safetensors")
    assert meta["range"] == "unbounded" and meta["source"] == "fashion-mnist:train"
    assert meta["value_range"][0] < -0.4 and meta["value_range"][1] > 1.4
    back = load_condensed(tmp_path / "set.safetensors")
    assert torch.equal(back.images, ds.images) and back.unbounded
    clamped = import_condensed(f, clamp=True)
    assert not clamped.unbounded and float(clamped.images.min()) >= 0 and float(clamped.images.max()) <= 1
    assert clamped.meta["clamped_fraction"] == ds.meta["out_of_range_fraction"]
    # multi-formation decoding keeps an unbounded set's values too
    dec = decode(ds.with_meta(factor=2))
    assert float(dec.images.min()) < 0 and float(dec.images.max()) > 1


def test_a_bounded_set_still_refuses_values_outside_unit_range(tmp_path):
    # a file that does not say it is unbounded is validated as before (no silent acceptance)
    save_condensed(tmp_path / "ok.safetensors", make_blobs(2, 3, (1, 8, 8)), method="dc")
    from simplebits.io import load_tensors

    tensors, meta = load_tensors(tmp_path / "ok.safetensors")
    tensors["images"] = tensors["images"] * 3.0
    save_tensors(tmp_path / "bad.safetensors", tensors, meta)
    with pytest.raises(BadInputError, match=r"must lie in \[0, 1\]"):
        load_condensed(tmp_path / "bad.safetensors")


def test_convert_cli_says_what_it_inferred_and_what_became_of_the_values(tmp_path, capsys):
    x, y = _dc_like()
    f = _write_dc(tmp_path / "res_DC_FashionMNIST_ConvNet_1ipc.pt", x, y)
    out = tmp_path / "dc.safetensors"
    assert main(["convert", str(f), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "inferred data set fashion-mnist (from the name 'res_DC_FashionMNIST_ConvNet_1ipc')" in text
    assert "normalization fashion-mnist" in text and "source fashion-mnist:train" in text
    assert "stored unbounded" in text and "clamped" not in text.split("stored unbounded")[0]
    assert torch.allclose(load_condensed(out).images, x, atol=1e-6)
    out_c = tmp_path / "dc-clamped.safetensors"
    assert main(["convert", str(f), "--clamp", "--out", str(out_c), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["range"] == "[0, 1]" and doc["clamped_fraction"] > 0.4
    assert doc["inferred"]["normalization"] == "fashion-mnist" and doc["source"] == "fashion-mnist:train"
    # a --source that is not a data set is refused, one line
    assert main(["convert", str(f), "--source", str(f), "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--source takes a data set spec" in err and len(err.splitlines()) == 1


def _two_class_outside(n_per: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes told apart only by values above 1: left half 1.5 / right half 2.5, or the
    reverse. Clamped to [0, 1], every image is all ones and the classes cannot be told."""
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(2 * n_per, 1, 8, 8)
    x[:n_per, :, :, :4], x[:n_per, :, :, 4:] = 1.5, 2.5
    x[n_per:, :, :, :4], x[n_per:, :, :, 4:] = 2.5, 1.5
    x += 0.05 * torch.rand(x.shape, generator=g)
    return x, torch.arange(2).repeat_interleave(n_per)


def test_evaluate_trains_on_the_unclamped_values(tmp_path):
    x, y = _two_class_outside(5, seed=0)
    torch.save({"data": [[x, y]]}, tmp_path / "res_DC_toy.pt")
    out = tmp_path / "toy.safetensors"
    assert main(["convert", str(tmp_path / "res_DC_toy.pt"), "--normalization", "none", "--out", str(out)]) == 0
    xt, yt = _two_class_outside(20, seed=1)
    test = ImageSet.create(xt, yt, 2, {"name": "toy-test"}, unbounded=True)
    proto = get_protocol("quick").with_overrides(epochs=40, max_steps=40)
    kept = evaluate(load_condensed(out), test, protocol=proto, seeds=1, progress=False)
    cut = evaluate(load_condensed(out).clamped(), test, protocol=proto, seeds=1, progress=False)
    assert kept.accuracies[0] >= 0.9  # the network saw the values the tool made
    assert cut.accuracies[0] == pytest.approx(0.5)  # clamped, the two classes are the same image


def test_pruned_set_inherits_the_real_source_never_a_path(tmp_path):
    x, y = _dc_like(ipc=2)
    dc = import_condensed(_write_dc(tmp_path / "res_DC_FashionMNIST_ConvNet_2ipc.pt", x, y))
    prune_set(dc, ipc=1, rule="random", out=tmp_path / "pruned.safetensors", progress=False)
    meta = read_metadata(tmp_path / "pruned.safetensors")
    assert meta["source"] == "fashion-mnist:train" and meta["range"] == "unbounded"
    assert meta["parent"].endswith("res_DC_FashionMNIST_ConvNet_2ipc.pt")
    # a file whose data set cannot be told records none (not its own path) and says why
    torch.save([x, y], tmp_path / "data.pt")
    idc = import_condensed(tmp_path / "data.pt", normalization="none")
    assert idc.meta["source_dataset"] is None and "fit mnist and fashion-mnist" in idc.meta["inferred"]["how"]
    prune_set(idc, ipc=1, rule="random", out=tmp_path / "pruned2.safetensors", progress=False)
    assert read_metadata(tmp_path / "pruned2.safetensors")["source"] is None


def test_evaluate_without_a_known_source_names_the_fix(tmp_path, capsys):
    x, y = _dc_like()
    save_condensed(tmp_path / "new.safetensors", ImageSet.create(x, y, 10, unbounded=True), method="dc")
    tensors_meta = read_metadata(tmp_path / "new.safetensors")
    from simplebits.io import load_tensors

    tensors, _ = load_tensors(tmp_path / "new.safetensors")
    old = tmp_path / "old.safetensors"  # an earlier version recorded the parent file as the source
    save_tensors(old, tensors, {**tensors_meta, "source": "/data/res_DC_FashionMNIST_ConvNet_1ipc.pt"})
    for path, want in ((old, "the recorded source of"), (tmp_path / "new.safetensors", "does not record")):
        assert main(["evaluate", str(path), "--seeds", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and want in err
        assert "--real DATASET" in err and "--no-baseline" in err
    # without a baseline it still needs a test set, and says so
    assert main(["evaluate", str(old), "--no-baseline", "--seeds", "1"]) == 2
    assert "pass --test DATASET" in capsys.readouterr().err


def test_consumers_that_need_pixels_in_unit_range_clamp_with_a_note_or_refuse(tmp_path, capsys):
    x, y = _dc_like()
    f = _write_dc(tmp_path / "res_DC_FashionMNIST_ConvNet_1ipc.pt", x, y)
    out = tmp_path / "dc.safetensors"
    assert main(["convert", str(f), "--out", str(out), "--json"]) == 0
    frac = json.loads(capsys.readouterr().out)["out_of_range_fraction"]
    assert main(["bpd", str(out), "--json"]) == 0  # bits: scored on the clamped view, fraction beside it
    doc = json.loads(capsys.readouterr().out)[0]
    assert doc["clamped_fraction"] == pytest.approx(frac) and doc["bpd"]["mean"] > 0
    assert main(["bpd", str(out)]) == 0
    assert "its clamped view was scored" in capsys.readouterr().out
    # a density model cannot be trained on it: one line, the fix
    assert main(["train-flow", str(out), "--out", str(tmp_path / "flow.safetensors"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs images in [0, 1]" in err and "--clamp" in err
    ds = load_condensed(out)
    for purpose in ("SimpleBits", "explain"):
        with pytest.raises(BadInputError, match="outside"):
            ds.require_unit_range(purpose)
    assert ds.clamped().require_unit_range("explain") is not None


def test_condense_no_clamp_reproduces_dc_and_keeps_old_digests(tmp_path):
    blobs = make_blobs(6, 3, (1, 8, 8))
    tiny = {"net_options": {"width": 8}, "compile": False, "chunk": 4, "batch_real": 6, "iterations": 2, "lr_img": 20.0}
    free = condense(blobs, make_config("dc", ipc=1, clamp=False, **tiny), out=tmp_path / "free.safetensors",
                    progress=False)
    kept = condense(blobs, make_config("dc", ipc=1, **tiny), progress=False)
    assert float(kept.images.images.min()) >= 0 and float(kept.images.images.max()) <= 1
    assert free.images.unbounded and free.images.out_of_range_fraction() > 0
    meta = read_metadata(tmp_path / "free.safetensors")
    assert meta["range"] == "unbounded" and meta["settings"]["clamp"] is False
    # clamp=True (the default, and what every earlier version did) leaves digests and stage keys as they were
    assert "clamp" not in make_config("dc", ipc=1).to_dict()
    with pytest.raises(BadInputError, match="no-clamp"):
        make_config("dc", ipc=1, clamp=False, lambda_sim=1.0)


def test_continual_replay_uses_an_unbounded_set_as_it_is(tmp_path):
    from test_continual import _digit_npz

    from simplebits.continual import make_config as continual_config
    from simplebits.continual.tasks import build_tasks, load_replay
    from simplebits.data import load_dataset, real_subset

    a = _digit_npz(tmp_path / "a.npz", shape=(1, 8, 8))
    b = _digit_npz(tmp_path / "b.npz", shape=(1, 12, 12), seed=1)
    sub = real_subset(load_dataset(a), 1, seed=0)
    wild = ImageSet.create(sub.images * 3.0 - 1.0, sub.labels, sub.classes, unbounded=True)  # spans [-1, 2]
    save_condensed(tmp_path / "a_cond.safetensors", wild, method="dc", source=a)
    seq = build_tasks([a, b], continual_config("quick", epochs=1, model_options={"width": 8}))
    replay, _ = load_replay(tmp_path / "a_cond.safetensors", seq.tasks[0], seq)
    # brought to the sequence's 12x12 format without being cut to [0, 1]
    assert replay.shape == (1, 12, 12) and float(replay.images.min()) < -0.5 and float(replay.images.max()) > 1.5
