import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simplebits.cli.main import main
from simplebits.density import Glow, GlowConfig, save_flow


@pytest.fixture
def tiny_model(tmp_path):
    import torch

    torch.manual_seed(0)
    p = tmp_path / "tiny.safetensors"
    save_flow(p, Glow(GlowConfig(channels=1, image_size=8, levels=2, steps=1, width=8)))
    return p


def _pngs(folder, n=3, size=8, mode="L", seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = (size, size) if mode == "L" else (size, size, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"im{i}.png")
    return folder


def test_bpd_on_folder_with_csv_and_json(tmp_path, tiny_model, capsys):
    folder = _pngs(tmp_path / "imgs")
    csv_path = tmp_path / "per.csv"
    assert main(["bpd", str(folder), "--density", str(tiny_model), "--per-image", str(csv_path),
                 "--codec", "png", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)[0]
    assert res["n"] == 3 and res["bpd"]["count"] == 3 and res["codec_bpd"]["mean"] > 0
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["input", "index", "label", "bpd", "bpd_native", "codec_bpd"] and len(rows) == 4
    # nothing was padded: both units agree; the JSON names the unit and how the bits were computed
    assert rows[1][3] == rows[1][4]
    assert res["unit"] == "bits per model dimension" and res["dequantize"] == "bound" and res["draws"] >= 1


def test_bpd_on_dataset_spec_and_codec_only(tmp_path, tiny_model, capsys):
    assert main(["bpd", "digits:test", "--density", str(tiny_model), "--max-images", "20"]) == 0
    out = capsys.readouterr().out
    assert "digits:test" in out and "20" in out
    assert main(["bpd", "digits", "--density", "none", "--codec", "jpeg", "--quality", "50", "--json"]) == 0
    q50 = json.loads(capsys.readouterr().out)[0]
    assert q50["codec"] == "jpeg"
    assert main(["bpd", "digits", "--density", "none", "--codec", "jpeg", "--json"]) == 0  # quality 75 unless given
    assert json.loads(capsys.readouterr().out)[0]["codec_bpd"]["mean"] > q50["codec_bpd"]["mean"]
    # a codec option without its codec was ignored in silence (the figure asked for was missing): one line, exit 2
    for extra, match in ((["--quality", "50"], "--quality sets the JPEG quality of --codec jpeg"),
                         (["--codec", "png", "--quality", "50"], "got --codec png"),
                         (["--subtract-overhead"], "--subtract-overhead applies to a --codec figure")):
        assert main(["bpd", "digits", "--density", str(tiny_model), "--max-images", "2", *extra]) == 2
        err = capsys.readouterr().err
        assert match in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "setup,extra,match",
    [
        ("not_image", [], "not an image"),
        ("empty", [], "no images"),
        ("mixed", [], "differ in size"),
        ("rgb", [], "3 channel.*takes 1 .*model of 3-channel images: rgb32"),
        ("big", [], "16x16.*8x8"),
        ("bad_model", [], "not a density model|not one written by simplebits"),
    ],
)
def test_bpd_bad_input_exits_2(tmp_path, tiny_model, capsys, setup, extra, match):
    import re

    folder = tmp_path / "in"
    model = str(tiny_model)
    if setup == "not_image":
        _pngs(folder)
        (folder / "notes.txt").write_text("hello")
    elif setup == "empty":
        folder.mkdir()
    elif setup == "mixed":
        _pngs(folder)
        Image.fromarray(np.zeros((10, 10), np.uint8), "L").save(folder / "odd.png")
    elif setup == "rgb":
        _pngs(folder, mode="RGB")
    elif setup == "big":
        _pngs(folder, size=16)
    elif setup == "bad_model":
        _pngs(folder)
        model = str(tmp_path / "bad.safetensors")
        from safetensors.numpy import save_file

        save_file({"x": np.zeros(3, np.float32)}, model)
    assert main(["bpd", str(folder), "--density", model, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(match, err), err


def test_mixed_sizes_work_with_resize(tmp_path, tiny_model, capsys):
    folder = _pngs(tmp_path / "in")
    Image.fromarray(np.zeros((10, 10), np.uint8), "L").save(folder / "odd.png")
    assert main(["bpd", str(folder), "--density", str(tiny_model), "--resize", "8", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["n"] == 4
    # the one image whose size changed is named: the figures are of the resized images
    assert "note: 1 of 4 images (" in captured.err and "odd.png: 10x10) was resized to 8x8" in captured.err
    # the spec spelling reads the same way (it ignored --resize and then asked for it: "pass a size ... --resize")
    (tmp_path / "cls" / "a").mkdir(parents=True)
    for p in folder.iterdir():
        p.rename(tmp_path / "cls" / "a" / p.name)
    assert main(["bpd", f"image-folder:{tmp_path / 'cls'}", "--density", str(tiny_model), "--resize", "8",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["n"] == 4
    # an array file is not resized: said, not silently ignored
    np.savez(tmp_path / "a.npz", images=np.zeros((2, 6, 6), np.uint8), labels=np.zeros(2, np.int64))
    assert main(["bpd", str(tmp_path / "a.npz"), "--density", str(tiny_model), "--resize", "8"]) == 0
    assert "--resize applies to image files and folders; these 6x6 images were scored as stored" in \
        capsys.readouterr().out


def test_train_flow_cli_then_score(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert main(["train-flow", "digits", "--out", str(out), "--size", "8", "--levels", "2", "--depth", "1",
                 "--width", "8", "--epochs", "1", "--batch-size", "64", "--json"]) == 0
    log = json.loads(capsys.readouterr().out)["log"]
    assert len(log) == 1 and np.isfinite(log[0]["test_bpd"])
    assert main(["bpd", "digits:test", "--density", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["bpd"]["mean"] > 0
    # the finished run's checkpoint is gone; resuming it says so in one line (exit 2)
    assert not Path(str(out) + ".ckpt").exists()
    assert main(["train-flow", "digits", "--out", str(out), "--size", "8", "--levels", "2", "--depth", "1",
                 "--width", "8", "--epochs", "1", "--batch-size", "64", "--resume", "--json"]) == 2
    assert "already finished" in capsys.readouterr().err


def test_train_flow_on_user_file_holds_out_a_share_and_writes_a_card(tmp_path, capsys):
    from simplebits.cli.train_flow import default_test_specs

    assert default_test_specs(["fashion-mnist", "mnist-5k:train", "npz:/x.npz", "digits:test"]) == [
        "fashion-mnist:test", "mnist-5k:test"]
    x = (np.random.default_rng(0).random((40, 8, 8)) < 0.3).astype(np.uint8) * 200
    np.savez(tmp_path / "d.npz", images=x, labels=np.zeros(40, np.int64))
    out = tmp_path / "m.safetensors"
    assert main(["train-flow", f"npz:{tmp_path / 'd.npz'}", "--out", str(out), "--size", "8", "--levels", "2",
                 "--depth", "1", "--width", "8", "--epochs", "1", "--batch-size", "16", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    # the training file is never scored as its own test: 10% of it is held out and scored instead
    assert np.isfinite(res["log"][0]["test_bpd"]) and out.exists()
    card = json.loads((tmp_path / "m.card.json").read_text())
    assert card["held_out"] == {"images": 4, "fraction": 0.1} and card["training_images"] == 36
    assert card["unit"] == "bits per model dimension" and "bound" in card["dequantize"]
    assert card["command"].startswith("simplebits train-flow npz:") and "--holdout 0.1" in card["command"]
    (name, bpd), = card["test_bpd_per_set"].items()
    assert "held-out" in name and abs(bpd - res["test_bpd"]) < 1e-6
    from simplebits.density import load_flow
    assert load_flow(out).card["test_bpd"] == res["test_bpd"]
    # 36 images at batch 16: 2 steps, inside the default 200-step warm-up: the learning rate stayed at 1%
    assert "reached only 1% of --lr" in res["note"] and "--warmup 1" in res["note"]
    assert main(["train-flow", f"npz:{tmp_path / 'd.npz'}", "--out", str(out), "--size", "8", "--levels", "2",
                 "--depth", "1", "--width", "8", "--epochs", "1", "--batch-size", "16", "--warmup", "2",
                 "--force"]) == 0
    assert "warm" not in capsys.readouterr().out  # a warm-up the run outlasts: nothing to say


def test_train_flow_on_a_train_test_folder_scores_its_test_folder(tmp_path, capsys):
    # a folder laid out as train/ and test/ has a test split of its own: every train/ image is trained on and
    # test/ is the held-out score (it held out 10% of train/ and never read test/)
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("test", 4)):
        for c in range(2):
            (tmp_path / "mine" / split / f"c{c}").mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(
                    tmp_path / "mine" / split / f"c{c}" / f"{i}.png")
    out = tmp_path / "m.safetensors"
    assert main(["train-flow", str(tmp_path / "mine"), "--out", str(out), "--size", "8", "--levels", "2",
                 "--depth", "1", "--width", "8", "--epochs", "1", "--batch-size", "8", "--json"]) == 0
    capsys.readouterr()
    card = json.loads((tmp_path / "m.card.json").read_text())
    assert card["held_out"] is None and card["training_images"] == 20
    assert card["test_sets"] == [str(tmp_path / "mine" / "test")]


def test_train_flow_init_fine_tunes_a_given_model_and_keeps_its_shape(tmp_path, capsys):
    """--init starts from a model's weights (its shape, not the shape options' defaults), records
    it in the card; a contradicting shape option or a missing model is one line, exit 2."""
    import torch

    from simplebits.density import flow_digest, load_flow

    tiny_model = tmp_path / "start.safetensors"  # a trained model (its ActNorm set from data)
    assert main(["train-flow", "digits", "--out", str(tiny_model), "--size", "8", "--levels", "2", "--depth", "1",
                 "--width", "8", "--epochs", "1", "--batch-size", "64", "--json"]) == 0
    capsys.readouterr()
    out = tmp_path / "ft.safetensors"
    # a learning rate so small that one epoch cannot move the weights: the result is the start
    assert main(["train-flow", "digits", "--init", str(tiny_model), "--out", str(out), "--epochs", "1",
                 "--lr", "1e-12", "--warmup", "1", "--batch-size", "64", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["model"] == {"channels": 1, "image_size": 8, "levels": 2, "steps": 1, "width": 8}
    start, tuned = load_flow(tiny_model).state_dict(), load_flow(out).state_dict()
    assert start.keys() == tuned.keys()
    assert all(torch.allclose(start[k].float(), tuned[k].float(), atol=1e-6) for k in start)
    card = json.loads((tmp_path / "ft.card.json").read_text())
    assert card["continued_from"]["model"] == str(tiny_model)
    assert card["continued_from"]["weights"] == flow_digest(tiny_model)
    assert f"--init {tiny_model}" in card["command"]
    # a fresh model of the same shape is far from those weights (so the check above can fail)
    fresh = tmp_path / "fresh.safetensors"
    assert main(["train-flow", "digits", "--out", str(fresh), "--size", "8", "--levels", "2", "--depth", "1",
                 "--width", "8", "--epochs", "1", "--lr", "1e-12", "--warmup", "1", "--batch-size", "64",
                 "--json"]) == 0
    capsys.readouterr()
    other = load_flow(fresh).state_dict()
    assert not all(torch.allclose(start[k].float(), other[k].float(), atol=1e-3) for k in start)
    assert main(["train-flow", "digits", "--init", str(tiny_model), "--depth", "4", "--out",
                 str(tmp_path / "x.safetensors"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "--depth 4 contradicts --init" in err and len(err.strip().splitlines()) == 1
    assert main(["train-flow", "digits", "--init", str(tmp_path / "missing.safetensors"), "--out",
                 str(tmp_path / "y.safetensors"), "--epochs", "1"]) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "y.safetensors").exists()
    # images larger than the model's input: what to do instead, not "--size 16" (which contradicts --init)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "big.npz", images=rng.integers(0, 256, (6, 16, 16), dtype=np.uint8), labels=np.arange(6) % 2)
    assert main(["train-flow", str(tmp_path / "big.npz"), "--init", str(tiny_model), "--out",
                 str(tmp_path / "z.safetensors"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "larger than the 8x8 input of --init" in err and "leave out --init; --size 16" in err
    # RGB images into a gray model: converted, and said (it was silent)
    np.savez(tmp_path / "rgb.npz", images=rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8),
             labels=np.arange(6) % 2)
    assert main(["train-flow", str(tmp_path / "rgb.npz"), "--init", str(tiny_model), "--out",
                 str(tmp_path / "g.safetensors"), "--epochs", "1", "--warmup", "1"]) == 0
    assert "3-channel images converted to gray for --init" in capsys.readouterr().err
    # gray and RGB files mixed without --channels: an RGB model, and a note that the gray ones were repeated
    assert main(["train-flow", f"{tmp_path / 'rgb.npz'},{tmp_path / 'big.npz'}", "--size", "16", "--levels", "2",
                 "--depth", "1", "--width", "8", "--out", str(tmp_path / "m.safetensors"), "--epochs", "1",
                 "--warmup", "1", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["model"]["channels"] == 3
    assert "big.npz: gray images repeated to RGB" in captured.err and "rgb.npz" not in captured.err


def test_bpd_names_its_units_and_padding(tmp_path, capsys):
    from simplebits.density import Glow, GlowConfig, save_flow
    import torch

    torch.manual_seed(0)
    model = tmp_path / "m32.safetensors"
    save_flow(model, Glow(GlowConfig(channels=1, image_size=32, levels=2, steps=1, width=8)))
    assert main(["bpd", "digits:test", "--density", str(model), "--max-images", "5", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)[0]
    assert res["model_dims"] == 1024 and res["native_dims"] == 64
    assert abs(res["bpd_native"]["mean"] - res["bpd"]["mean"] * 1024 / 64) < 1e-3
    assert main(["bpd", "digits:test", "--density", str(model), "--max-images", "5"]) == 0
    out = capsys.readouterr().out
    # the text says what was padded, how much, and that the file has no card
    assert "zero-padded 8x8 -> 32x32" in out and "94% of the model's input is padding" in out
    assert "no model card" in out and "native bpd" in out
    assert main(["bpd", "digits:test", "--density", str(model), "--max-images", "5", "--dequantize", "midpoint",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)[0]
    assert res["dequantize"] == "midpoint" and "draws" not in res
    assert main(["bpd", "digits:test", "--density", str(model), "--draws", "0"]) == 2


def test_train_flow_on_images_larger_than_its_size_says_which_size(tmp_path, capsys):
    np.savez(tmp_path / "big.npz", images=np.zeros((4, 64, 48), np.uint8), labels=np.zeros(4, np.int64))
    assert main(["train-flow", str(tmp_path / "big.npz"), "--out", str(tmp_path / "m.safetensors"),
                 "--epochs", "1", "--size", "32"]) == 2
    err = capsys.readouterr().err
    assert "larger than the target size 32" in err and "--size 64" in err and err.count("\n") == 1
    # a size no loader reads back is refused before any training, given or fitted to the data
    assert main(["train-flow", str(tmp_path / "big.npz"), "--out", str(tmp_path / "m.safetensors"),
                 "--size", "512"]) == 2
    assert "--size must be a power of two in 8..256, got 512" in capsys.readouterr().err
    np.savez(tmp_path / "huge.npz", images=np.zeros((2, 300, 20), np.uint8), labels=np.zeros(2, np.int64))
    assert main(["train-flow", str(tmp_path / "huge.npz"), "--out", str(tmp_path / "m.safetensors")]) == 2
    assert "need a 512x512 model, larger than the largest density model (256x256)" in capsys.readouterr().err


def test_train_flow_fits_its_size_to_the_data(tmp_path, capsys):
    """8x8 images padded to the old default 32x32 were 94% zeros; a model trained so coded sklearn's
    digits in 35 bits per value (10 epochs), and the blind-spot note's advice, train-flow on your data,
    did not lift it. The default size is now the data's, rounded up to a power of two."""
    from simplebits.density import load_flow

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d8.npz", images=(rng.random((20, 8, 8)) * 255).astype(np.uint8), labels=np.zeros(20, int))
    np.savez(tmp_path / "d28.npz", images=(rng.random((20, 28, 20)) * 255).astype(np.uint8), labels=np.zeros(20, int))
    small = ["--levels", "2", "--depth", "1", "--width", "8", "--epochs", "1", "--batch-size", "16"]
    for files, size in (("d8.npz", 8), ("d28.npz", 32), ("d8.npz,d28.npz", 32)):
        out = tmp_path / f"m{size}-{len(files)}.safetensors"
        spec = ",".join(str(tmp_path / f) for f in files.split(","))
        assert main(["train-flow", spec, "--out", str(out), *small]) == 0, files
        assert load_flow(out).config.image_size == size
        assert f"--size {size} " in json.loads(out.with_suffix("").with_suffix(".card.json").read_text())["command"]
    capsys.readouterr()
