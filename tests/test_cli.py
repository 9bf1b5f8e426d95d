import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from simplebits.cli.main import main
from simplebits.data import list_sources


def _npz(path, n_per=4, classes=3, hw=12, seed=0):
    from conftest import make_blobs

    ds = make_blobs(n_per, classes, (1, hw, hw), seed)
    np.savez(path, images=(ds.images.numpy() * 255).astype(np.uint8), labels=ds.labels.numpy())
    return path


def test_data_list_json_has_every_source(capsys):
    assert main(["data", "list", "--json"]) == 0
    names = {d["name"] for d in json.loads(capsys.readouterr().out)}
    assert names == {s.name for s in list_sources()}
    assert {"fashion-mnist", "mnist", "mnist-5k", "digits", "cifar10", "cifar100", "svhn", "usps",
            "image-folder", "npz"} <= names


def test_data_show_counts(tmp_path, capsys):
    p = _npz(tmp_path / "d.npz")
    assert main(["data", "show", f"npz:{p}", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["counts"] == [4, 4, 4] and d["shape"] == [1, 12, 12]


@pytest.mark.parametrize(
    "argv,match",
    [
        (["data", "show", "nosuchdata"], "unknown data set 'nosuchdata'; valid:"),
        (["data", "show", "npz:/definitely/missing.npz"], "not found|does not exist|no such"),
        (["evaluate", "digits", "--ipc", "500"], "larger than class"),
        (["convert", "/definitely/missing.pt", "--out", "x.safetensors"], "not found"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert __import__("re").search(match, err, flags=__import__("re").I), err


@pytest.mark.parametrize("form", ["path", "npz:path"])
@pytest.mark.parametrize("command", [
    ["simplify"], ["simplify-baselines"], ["condense", "--ipc", "1", "--evaluate"],
])
def test_a_data_file_without_test_set_asks_for_test(tmp_path, capsys, command, form):
    # a user's own file has no test split to infer: one line that names --test, not "unknown data set 'x.npz'"
    p = _npz(tmp_path / "mine.npz")
    spec = str(p) if form == "path" else f"npz:{p}"
    out = tmp_path / ("out.safetensors" if command[0] == "condense" else "out")
    assert main([command[0], spec, *command[1:], "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pass --test DATASET" in err and "unknown data set" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("form", ["path", "npz:path"])
def test_test_set_may_be_a_plain_file(tmp_path, capsys, form):
    # --test takes what the training argument takes: a data set spec, a file or a folder
    train, test = _npz(tmp_path / "train.npz", n_per=2), _npz(tmp_path / "test.npz", n_per=3, seed=1)
    spec = str(test) if form == "path" else f"npz:{test}"
    assert main(["evaluate", str(train), "--test", spec, "--no-baseline", "--seeds", "1", "--device", "cpu",
                 "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert len(rep["accuracies"]) == 1 and 0 <= rep["accuracies"][0] <= 1
    assert main(["evaluate", str(train), "--test", str(tmp_path / "missing.npz"), "--no-baseline"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not found" in err, err


def _class_folder(root, n_per=3, classes=2, hw=12, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(n_per):
            Image.fromarray(rng.integers(0, 256, (hw, hw), dtype=np.uint8)).save(root / f"c{c}" / f"{i}.png")
    return root


@pytest.mark.parametrize("form", ["path", "image-folder:path"])
def test_test_set_may_be_a_flat_image_folder(tmp_path, capsys, form):
    # a folder of class subfolders named by --test is the test set itself, in either spelling; loading a
    # training spec's own test split from such a folder (what the pipeline does) is still refused
    from simplebits.data import load_dataset
    from simplebits.errors import BadInputError

    train = _class_folder(tmp_path / "train_imgs")
    test = _class_folder(tmp_path / "test_imgs", n_per=4, seed=1)
    spec = str(test) if form == "path" else f"image-folder:{test}"
    assert main(["evaluate", f"image-folder:{train}", "--test", spec, "--no-baseline", "--seeds", "1",
                 "--device", "cpu", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert len(rep["accuracies"]) == 1 and rep["accuracies"][0] in {k / 8 for k in range(9)}
    with pytest.raises(BadInputError, match="no test/ subfolder"):
        load_dataset(f"image-folder:{train}", split="test")


def test_default_test_split_for_registered_sets_and_train_test_folders(tmp_path):
    from simplebits.data.inputs import default_test_spec as _default_test

    assert _default_test("fashion-mnist") == "fashion-mnist:test"
    assert _default_test("mnist-5k:train") == "mnist-5k:test"
    # a folder laid out as train/ and test/, in either spelling: its test/ (the training side reads train/)
    _class_folder(tmp_path / "both" / "train")
    _class_folder(tmp_path / "both" / "test")
    for spec in (str(tmp_path / "both"), f"image-folder:{tmp_path / 'both'}"):
        assert _default_test(spec) == str(tmp_path / "both" / "test"), spec
    # never the training images themselves: a flat class folder, a file, a spec that already names the test split
    flat = _class_folder(tmp_path / "flat")
    for spec in ("x.npz", "/data/imgs", "npz:/data/x.npz", "idx:/data/train-images-idx3-ubyte", "image-folder:d",
                 str(flat), f"image-folder:{flat}", "fashion-mnist:test", "nosuchdata", "", None):
        assert _default_test(spec) is None, spec


def test_evaluate_draws_random_subsets_of_your_own_images(tmp_path, capsys):
    from conftest import make_blobs

    from simplebits.data.condensed import save_condensed

    # --ipc on a folder or an .npz path: the user's real images are a data set (it said "does not apply to a
    # file"); a train/test folder is tested on its test/ without --test; a condensed file with --ipc is refused
    root = tmp_path / "mine"
    _class_folder(root / "train", n_per=4)
    _class_folder(root / "test", n_per=3, seed=1)
    assert main(["evaluate", str(root), "--ipc", "1", "--seeds", "1", "--device", "cpu", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["test"] == str(root / "test") and rep["train"].startswith("random-real(") and rep["n_train"] == 2
    # the classifier to explain is tested on that test/ too (it had no test accuracy, and named as a folder
    # path the test set was "unknown data set")
    assert main(["train-classifier", f"image-folder:{root}", "--epochs", "1", "--out", str(tmp_path / "c.safetensors"),
                 "--device", "cpu", "--json"]) == 0
    acc = json.loads(capsys.readouterr().out)["test_accuracy"]
    assert acc is not None and any(abs(acc - k / 6) < 1e-6 for k in range(7))  # the 6 images of test/
    rng = np.random.default_rng(0)
    for name, n in (("tr.npz", 8), ("te.npz", 6)):
        np.savez(tmp_path / name, images=rng.integers(0, 256, (n, 12, 12), dtype=np.uint8),
                 labels=np.arange(n) % 2)
    assert main(["evaluate", str(tmp_path / "tr.npz"), "--test", str(tmp_path / "te.npz"), "--ipc", "2",
                 "--seeds", "1", "--device", "cpu", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ipc"] == 2 and any(abs(rep["accuracies"][0] - k / 6) < 1e-6 for k in range(7))  # 6 test images
    # an .npz has no test split of its own: asked for, not taken from the training images
    assert main(["evaluate", str(tmp_path / "tr.npz"), "--ipc", "1", "--device", "cpu"]) == 2
    assert "pass --test" in capsys.readouterr().err
    cond = tmp_path / "set.safetensors"
    save_condensed(cond, make_blobs(1, 2, (1, 12, 12), seed=2), method="dc")
    assert main(["evaluate", str(cond), "--ipc", "1", "--device", "cpu"]) == 2
    assert "is a condensed set: evaluate it without --ipc" in capsys.readouterr().err


def test_the_real_set_of_a_condensed_file_may_be_your_own_images(tmp_path, capsys):
    from conftest import make_blobs

    from simplebits.data.condensed import save_condensed

    # --real took only registered names ("unknown data set 'tr.npz'"); a folder or an .npz is what a user has
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tr.npz", images=rng.integers(0, 256, (8, 12, 12), dtype=np.uint8), labels=np.arange(8) % 2)
    np.savez(tmp_path / "te.npz", images=rng.integers(0, 256, (6, 12, 12), dtype=np.uint8), labels=np.arange(6) % 2)
    cond = tmp_path / "set.safetensors"
    save_condensed(cond, make_blobs(1, 2, (1, 12, 12), seed=2), method="dc")
    assert main(["evaluate", str(cond), "--real", str(tmp_path / "tr.npz"), "--test", str(tmp_path / "te.npz"),
                 "--seeds", "1", "--device", "cpu", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["baseline"]["train"] == f"random-real({tmp_path / 'tr.npz'}, ipc=1)"
    assert main(["evaluate", str(cond), "--real", str(cond), "--test", str(tmp_path / "te.npz"),
                 "--device", "cpu"]) == 2
    assert "is a condensed-set file" in capsys.readouterr().err


def test_no_traceback_from_the_installed_command(tmp_path):
    bad = tmp_path / "res_bad.pt"
    bad.write_bytes(b"garbage")
    r = subprocess.run([sys.executable, "-m", "simplebits.cli.main", "convert", str(bad), "--out",
                        str(tmp_path / "o.safetensors")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "o.safetensors").exists()


def test_convert_then_evaluate_with_baseline(tmp_path, capsys):
    from conftest import make_blobs

    ds = make_blobs(2, 3, (1, 12, 12), seed=3)
    mean, std = 0.1307, 0.3081
    torch.save({"data": [[(ds.images - mean) / std, ds.labels]]}, tmp_path / "res_DC_MNIST.pt")
    out = tmp_path / "c.safetensors"
    real, test = _npz(tmp_path / "real.npz", n_per=10), _npz(tmp_path / "test.npz", n_per=5, seed=1)
    assert main(["convert", str(tmp_path / "res_DC_MNIST.pt"), "--normalization", "mnist", "--out", str(out),
                 "--source", f"npz:{real}"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--test", f"npz:{test}", "--seeds", "1", "--device", "cpu", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ipc"] == 2 and len(rep["accuracies"]) == 1
    assert rep["baseline"]["ipc"] == 2 and rep["baseline"]["train"].startswith("random-real")


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("data", "evaluate", "convert", "demo"):
        assert cmd in out


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="argparse help layout differs between Python versions; docs are generated on 3.11")
def test_cli_reference_doc_is_current():
    from pathlib import Path

    from simplebits.cli.reference import cli_reference

    doc = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    assert doc.read_text() == cli_reference(), "regenerate: python -m simplebits.cli.reference > docs/cli.md"


def test_bad_flag_value_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "digits", "--protocol", "nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "invalid choice: 'nope'" in err and "quick" in err


