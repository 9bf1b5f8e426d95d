"""File-format readers and registered data sources, on small real-format files made here."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from simplebits.data import list_sources, load_dataset
from simplebits.data.cifar import write_cifar_batch, write_cifar_meta
from simplebits.data.folder import load_image_files, load_image_folder
from simplebits.data.idx import find_idx_pair, read_idx, write_idx
from simplebits.data.npz import save_npz
from simplebits.data.svhn import write_svhn_mat
from simplebits.data.usps import read_usps, write_usps
from simplebits.errors import BadInputError, CorruptFileError, NotFoundError, UnknownNameError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _no_env_root(monkeypatch):
    monkeypatch.delenv("SIMPLEBITS_DATA", raising=False)


def _images(n, shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _labels(n, k=10):
    return np.arange(n) % k


def _make_idx(d: Path, n_train=20, n_test=10, *, gz=True, style="dash"):
    d.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    sep = "." if style == "dot" else "-"
    data = {}
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        x, y = _images(n, (28, 28), seed), _labels(n).astype(np.uint8)
        write_idx(d / f"{prefix}-images{sep}idx3-ubyte{ext}", x)
        write_idx(d / f"{prefix}-labels{sep}idx1-ubyte{ext}", y)
        data[prefix] = (x, y)
    return data


def _assert_imageset(ds, n, shape, num_classes):
    assert len(ds) == n
    assert tuple(ds.images.shape) == (n, *shape)
    assert ds.images.dtype == torch.float32 and ds.labels.dtype == torch.int64
    assert float(ds.images.min()) >= 0.0 and float(ds.images.max()) <= 1.0
    assert ds.num_classes == num_classes


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("gz,style,sub", [(True, "dash", ""), (False, "dash", ""), (False, "dot", ""), (True, "dash", "raw")])
def test_idx_round_trip(tmp_path, gz, style, sub):
    data = _make_idx(tmp_path / sub if sub else tmp_path, gz=gz, style=style)
    for split, key in (("train", "train"), ("test", "t10k")):
        ds = load_dataset(f"mnist:{split}", root=tmp_path)
        x, y = data[key]
        _assert_imageset(ds, len(y), (1, 28, 28), 10)
        assert torch.equal(ds.images, torch.from_numpy(x).float().div(255).unsqueeze(1))
        assert ds.labels.tolist() == y.tolist()
        assert ds.classes == tuple(str(i) for i in range(10))
        assert ds.meta["split"] == split and "found_at" in ds.meta


def test_idx_shared_root_and_generic_idx_source(tmp_path):
    _make_idx(tmp_path / "mnist", gz=True)
    assert len(load_dataset("mnist", root=tmp_path)) == 20  # --data-root DIR holding mnist/
    d = tmp_path / "letters"
    d.mkdir()
    write_idx(d / "emnist-letters-train-images-idx3-ubyte.gz", _images(26, (28, 28)))
    write_idx(d / "emnist-letters-train-labels-idx1-ubyte.gz", np.arange(26, dtype=np.uint8))
    ds = load_dataset(f"idx:{d}")
    assert ds.num_classes == 26 and len(ds) == 26


def test_idx_other_dtypes_round_trip(tmp_path):
    for arr in (np.arange(24, dtype=np.int16).reshape(2, 3, 4) - 5, np.linspace(0, 1, 6, dtype=np.float32)):
        write_idx(tmp_path / "a.idx", arr)
        back = read_idx(tmp_path / "a.idx")
        assert back.dtype == arr.dtype and np.array_equal(back, arr)


def _make_cifar10(d: Path, per_batch=4):
    d.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for i in range(1, 6):
        x, y = _images(per_batch, (3, 32, 32), seed=i), (np.arange(per_batch) + 2 * i) % 10
        write_cifar_batch(d / f"data_batch_{i}", x, y)
        xs.append(x)
        ys.append(y)
    xt, yt = _images(10, (3, 32, 32), seed=9), np.arange(10)
    write_cifar_batch(d / "test_batch", xt, yt)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    write_cifar_meta(d / "batches.meta", names)
    return np.concatenate(xs), np.concatenate(ys), xt, yt, names


@pytest.mark.parametrize("give_parent", [True, False])
def test_cifar10_round_trip(tmp_path, give_parent):
    folder = tmp_path / "cifar-10-batches-py"
    x, y, xt, yt, names = _make_cifar10(folder)
    root = tmp_path if give_parent else folder
    ds = load_dataset("cifar10", root=root)
    _assert_imageset(ds, 20, (3, 32, 32), 10)
    assert torch.equal(ds.images, torch.from_numpy(x).float() / 255)  # (3, 32, 32) planes, row-major
    assert ds.labels.tolist() == y.tolist() and ds.classes == tuple(names)
    te = load_dataset("cifar10:test", root=root)
    assert torch.equal(te.images, torch.from_numpy(xt).float() / 255) and te.labels.tolist() == yt.tolist()


def test_cifar100_round_trip(tmp_path):
    d = tmp_path / "cifar-100-python"
    x, y = _images(100, (3, 32, 32)), np.arange(100)[::-1].copy()
    write_cifar_batch(d / "train", x, y, label_key=b"fine_labels")
    write_cifar_batch(d / "test", x[:100], y, label_key=b"fine_labels")
    names = [f"class_{i:02d}" for i in range(100)]
    write_cifar_meta(d / "meta", names, key=b"fine_label_names")
    ds = load_dataset("cifar100:train", root=tmp_path)
    _assert_imageset(ds, 100, (3, 32, 32), 100)
    assert ds.labels.tolist() == y.tolist() and ds.classes[7] == "class_07"


def test_svhn_round_trip(tmp_path):
    x, y = _images(12, (3, 32, 32)), np.arange(12) % 10
    write_svhn_mat(tmp_path / "train_32x32.mat", x, y)
    import scipy.io

    raw = scipy.io.loadmat(str(tmp_path / "train_32x32.mat"))
    assert raw["X"].shape == (32, 32, 3, 12) and raw["y"].shape == (12, 1) and 0 not in raw["y"]  # real layout
    ds = load_dataset("svhn", root=tmp_path)
    _assert_imageset(ds, 12, (3, 32, 32), 10)
    assert torch.equal(ds.images, torch.from_numpy(x).float() / 255) and ds.labels.tolist() == y.tolist()


@pytest.mark.parametrize("compressed", [True, False])
def test_usps_round_trip(tmp_path, compressed):
    rng = np.random.default_rng(0)
    x, y = rng.random((15, 16, 16)), np.arange(15) % 10
    ext = ".bz2" if compressed else ""
    write_usps(tmp_path / f"usps{ext}", x, y)
    write_usps(tmp_path / f"usps.t{ext}", x[:10], y[:10])
    assert (tmp_path / f"usps{ext}").read_text(errors="replace").startswith("1 1:") != compressed
    ds = load_dataset("usps", root=tmp_path)
    _assert_imageset(ds, 15, (1, 16, 16), 10)
    assert np.allclose(ds.images[:, 0].numpy(), x, atol=1e-5) and ds.labels.tolist() == y.tolist()
    assert len(load_dataset("usps:test", root=tmp_path)) == 10


def test_usps_sparse_lines(tmp_path):
    (tmp_path / "u").write_text("3 1:1 256:-1\n1 2:0.5\n")  # left-out values are 0 -> gray 0.5
    x, y = read_usps(tmp_path / "u")
    assert y.tolist() == [2, 0] and x[0, 0, 0] == 1.0 and x[0, 15, 15] == 0.0 and x[0, 5, 5] == 0.5
    assert x[1, 0, 1] == 0.75


def _save_png(path: Path, arr: np.ndarray):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_image_folder_train_test_and_channels(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "ant"):
            for i in range(n):
                _save_png(tmp_path / split / cls / f"{i}.png", rng.integers(0, 256, (10, 12), dtype=np.uint8))
    (tmp_path / "train" / "cat" / ".DS_Store").write_bytes(b"junk")  # hidden: skipped
    ds = load_dataset(f"image-folder:{tmp_path}")
    _assert_imageset(ds, 6, (1, 10, 12), 2)
    assert ds.classes == ("ant", "cat") and ds.counts() == [3, 3]
    te = load_dataset(f"image-folder:{tmp_path}", split="test")
    assert len(te) == 4 and te.meta["split"] == "test"
    assert load_image_folder(tmp_path, channels=3).images.shape[1] == 3
    # one RGB image switches auto channels to 3
    _save_png(tmp_path / "train" / "ant" / "rgb.png", rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
    assert load_dataset(f"image-folder:{tmp_path}").images.shape[1:] == (3, 10, 12)


def test_image_folder_flat_and_image_files(tmp_path):
    a = np.full((8, 8, 3), 255, np.uint8)
    _save_png(tmp_path / "x" / "a.png", a)
    _save_png(tmp_path / "y" / "b.jpg", a)
    ds = load_dataset(f"image-folder:{tmp_path}")
    assert ds.classes == ("x", "y") and ds.images.shape == (2, 3, 8, 8)
    with pytest.raises(BadInputError, match="no test/"):
        load_dataset(f"image-folder:{tmp_path}", split="test")
    t = load_image_files([tmp_path / "x" / "a.png"], size=(4, 6))
    assert t.shape == (1, 3, 4, 6) and t.dtype == torch.float32 and torch.allclose(t, torch.ones_like(t))
    assert load_image_files([tmp_path / "x" / "a.png"], channels=1).shape == (1, 1, 8, 8)


def test_a_file_or_folder_is_named_by_its_path_in_every_table(tmp_path):
    # tables and JSON label a set by its name: a user's file was "data", whatever it was
    from simplebits.data.inputs import load_images

    save_npz(tmp_path / "mine.npz", torch.rand(4, 1, 6, 6), torch.tensor([0, 1, 0, 1]))
    assert load_images(str(tmp_path / "mine.npz")).name == str(tmp_path / "mine.npz")
    assert load_images(f"npz:{tmp_path / 'mine.npz'}").name == f"npz:{tmp_path / 'mine.npz'}"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("a", "b"):
            _save_png(tmp_path / "imgs" / split / cls / "0.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    assert load_images(str(tmp_path / "imgs")).name == str(tmp_path / "imgs" / "train")
    assert load_images(str(tmp_path / "imgs"), split="test").name == str(tmp_path / "imgs" / "test")


def test_transparent_images_say_the_alpha_channel_is_dropped(tmp_path):
    import warnings

    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    alpha = np.full((6, 6, 1), 255, np.uint8)
    (tmp_path / "c").mkdir()
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), mode="RGBA").save(tmp_path / "c" / "opaque.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fully opaque: nothing is lost, nothing said
        opaque = load_image_files([tmp_path / "c" / "opaque.png"])
    alpha[0, 0] = 0
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), mode="RGBA").save(tmp_path / "c" / "see-through.png")
    pal = Image.fromarray(np.arange(36, dtype=np.uint8).reshape(6, 6), mode="P")  # pixel (0, 0) is index 0
    pal.putpalette(list(range(256)) * 3)
    pal.save(tmp_path / "c" / "palette.png", transparency=0)  # a tRNS colour, no alpha band
    with pytest.warns(UserWarning, match=r"2 of 3 images .* transparent pixels; the alpha channel is dropped"):
        ds = load_dataset(f"image-folder:{tmp_path}")
    # the colour under the transparent pixel is what the file stores
    assert torch.equal(ds.images[2], opaque[0]) and ds.images.shape == (3, 3, 6, 6)


def test_cli_prints_the_packages_warnings_as_one_note_line(tmp_path, capsys):
    from PIL import Image

    from simplebits.cli.main import main

    a = np.random.default_rng(0).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    a[..., 3] = 128
    Image.fromarray(a, mode="RGBA").save(tmp_path / "half.png")
    assert main(["bpd", str(tmp_path / "half.png"), "--density", "none", "--codec", "png", "--json"]) == 0
    err = capsys.readouterr().err
    notes = [ln for ln in err.splitlines() if "alpha channel is dropped" in ln]
    assert len(notes) == 1 and notes[0].startswith("simplebits bpd: note: the image (") and "Warning" not in err, err


@pytest.mark.parametrize("layout", ["NHW", "NHWC3", "NHWC1", "NCHW3", "float"])
def test_npz_round_trip(tmp_path, layout):
    x = _images(6, (3, 8, 8))  # N, C, H, W
    store = {"NHW": x[:, 0], "NHWC3": x.transpose(0, 2, 3, 1), "NHWC1": x[:, :1].transpose(0, 2, 3, 1),
             "NCHW3": x, "float": x.astype(np.float32) / 255}[layout]
    y = np.array([0, 1, 2, 0, 1, 2])
    p = tmp_path / "d.npz"
    np.savez(p, images=store, labels=y, classes=np.array(["a", "b", "c"]))
    ds = load_dataset(f"npz:{p}")
    c = 1 if layout in ("NHW", "NHWC1") else 3
    _assert_imageset(ds, 6, (c, 8, 8), 3)
    expect = torch.from_numpy(x[:, :c]).float() / 255
    assert torch.allclose(ds.images, expect, atol=1e-6)
    assert ds.labels.tolist() == y.tolist() and ds.classes == ("a", "b", "c")


def test_save_npz_round_trip(tmp_path):
    imgs = torch.rand(4, 1, 5, 5)
    save_npz(tmp_path / "out.npz", imgs, torch.tensor([1, 0, 1, 0]), classes=["no", "yes"])
    ds = load_dataset(f"npz:{tmp_path / 'out.npz'}")
    assert torch.equal(ds.images, imgs) and ds.classes == ("no", "yes") and ds.labels.tolist() == [1, 0, 1, 0]
    assert sorted(os.listdir(tmp_path)) == ["out.npz"]  # no temp file left behind


# ------------------------------------------------------------------------------ real data
@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason=f"{FASHION_DIR} absent (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_real():
    tr = load_dataset("fashion-mnist")
    te = load_dataset("fashion-mnist:test")
    _assert_imageset(tr, 60000, (1, 28, 28), 10)
    _assert_imageset(te, 10000, (1, 28, 28), 10)
    assert tr.counts() == [6000] * 10 and te.counts() == [1000] * 10
    assert tr.classes[0] == "T-shirt/top" and tr.classes[9] == "Ankle boot"
    assert tr.meta["found_at"] == str(FASHION_DIR)


def test_mnist_5k_fixed_split():
    tr = load_dataset("mnist-5k:train")
    te = load_dataset("mnist-5k:test")
    _assert_imageset(tr, 4000, (1, 28, 28), 10)
    _assert_imageset(te, 1000, (1, 28, 28), 10)
    assert tr.counts() == [400] * 10 and te.counts() == [100] * 10
    again = load_dataset("mnist-5k", split="test")
    assert torch.equal(again.images, te.images) and torch.equal(again.labels, te.labels)
    assert float(tr.images.mean()) > 0.05  # real digits, not blank


def test_digits():
    tr, te = load_dataset("digits"), load_dataset("digits:test")
    assert len(tr) + len(te) == 1797 and tr.images.shape[1:] == (1, 8, 8)
    assert float(tr.images.max()) == 1.0 and tr.num_classes == 10


def test_registry_lists_sources():
    names = {s.name for s in list_sources()}
    assert {"fashion-mnist", "mnist", "mnist-5k", "digits", "cifar10", "cifar100", "svhn", "usps",
            "image-folder", "npz"} <= names
    assert all(s.description for s in list_sources())


# ------------------------------------------------------------------------------ bad input
def test_missing_directory(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist") as e:
        load_dataset("cifar10", root=tmp_path / "nope")
    assert "nope" in str(e.value) and "--data-root" in str(e.value)


def test_missing_file(tmp_path):
    _make_idx(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(NotFoundError, match="train-labels-idx1-ubyte"):
        load_dataset("mnist", root=tmp_path)
    with pytest.raises(NotFoundError, match="absent.npz"):
        load_dataset(f"npz:{tmp_path / 'absent.npz'}")
    with pytest.raises(NotFoundError, match="test_32x32.mat"):
        load_dataset("svhn:test", root=tmp_path)


def test_mnist_without_root_says_how_to_fix():
    with pytest.raises(NotFoundError, match="--data-root"):
        load_dataset("mnist")


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_idx(tmp_path, gz):
    _make_idx(tmp_path, gz=gz)
    f = tmp_path / f"train-images-idx3-ubyte{'.gz' if gz else ''}"
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="truncated") as e:
        load_dataset("mnist", root=tmp_path)
    assert f.name in str(e.value)


def test_idx_wrong_magic(tmp_path):
    _make_idx(tmp_path, gz=False)
    f = tmp_path / "train-images-idx3-ubyte"
    write_idx(f, np.zeros(20, np.uint8))  # a labels file (0x00000801) where images belong
    with pytest.raises(CorruptFileError, match="magic") as e:
        load_dataset("mnist", root=tmp_path)
    assert f.name in str(e.value) and "0x00000801" in str(e.value)
    f.write_bytes(b"GIF89a" + bytes(100))
    with pytest.raises(CorruptFileError, match="not an IDX file"):
        load_dataset("mnist", root=tmp_path)


def test_idx_ambiguous_files(tmp_path):
    _make_idx(tmp_path)
    write_idx(tmp_path / "kmnist-train-images-idx3-ubyte", _images(2, (28, 28)))
    with pytest.raises(BadInputError, match="several"):
        find_idx_pair(tmp_path, "train")


def test_truncated_cifar_pickle(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    _make_cifar10(d)
    f = d / "data_batch_3"
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="truncated or corrupt") as e:
        load_dataset("cifar10", root=tmp_path)
    assert "data_batch_3" in str(e.value)
    f.write_bytes(b"\x00garbage, not a pickle")
    with pytest.raises(CorruptFileError, match="data_batch_3"):
        load_dataset("cifar10", root=tmp_path)
    f.unlink()
    with pytest.raises(CorruptFileError, match="missing data_batch_3"):
        load_dataset("cifar10", root=tmp_path)


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_cifar_pickle_with_disallowed_global_is_refused(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    _make_cifar10(d)
    marker = tmp_path / "pwned"
    with open(d / "test_batch", "wb") as fh:
        pickle.dump({b"data": _Evil(f"touch {marker}"), b"labels": [0]}, fh, protocol=2)
    with pytest.raises(CorruptFileError, match="refusing") as e:
        load_dataset("cifar10:test", root=d)
    assert "system" in str(e.value) and "test_batch" in str(e.value)
    assert not marker.exists()


def test_corrupt_mat(tmp_path):
    f = tmp_path / "train_32x32.mat"
    f.write_bytes(b"MATLAB 5.0 MAT-file" + os.urandom(200))
    with pytest.raises(CorruptFileError, match="train_32x32.mat"):
        load_dataset("svhn", root=tmp_path)
    write_svhn_mat(f, _images(50, (3, 32, 32)), np.arange(50) % 10)
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="truncated or corrupt"):
        load_dataset("svhn", root=tmp_path)


def test_corrupt_usps(tmp_path):
    (tmp_path / "usps").write_text("1 1:0.5 2:zz\n")
    with pytest.raises(CorruptFileError, match="line 1"):
        load_dataset("usps", root=tmp_path)
    (tmp_path / "usps").write_text("11 1:0.5\n")
    with pytest.raises(CorruptFileError, match="1..10"):
        load_dataset("usps", root=tmp_path)


def _npz(tmp_path, **arrays):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    return f"npz:{p}"


def test_npz_missing_keys(tmp_path):
    spec = _npz(tmp_path, x=np.zeros((2, 4, 4)), y=np.zeros(2))
    with pytest.raises(BadInputError, match="missing array\\(s\\) images, labels; found: x, y"):
        load_dataset(spec)


def test_npz_nan_images(tmp_path):
    x = np.full((2, 4, 4), 0.5, np.float32)
    x[0, 1, 1] = np.nan
    with pytest.raises(BadInputError, match="NaN"):
        load_dataset(_npz(tmp_path, images=x, labels=np.array([0, 1])))


def test_npz_float_out_of_range(tmp_path):
    x = np.full((2, 4, 4), 3.0, np.float32)
    with pytest.raises(BadInputError, match=r"\[0, 1\]"):
        load_dataset(_npz(tmp_path, images=x, labels=np.array([0, 1])))


@pytest.mark.parametrize("lo, hi, fix", [
    (0.0, 255.0, "divide 8-bit data by 255"),
    (-1.0, 1.0, r"\(x \+ 1\) / 2"),  # tanh-scaled data (GAN outputs): 'divide by 255' was the wrong advice
    (-0.42, 2.8, "undo the normalisation"),  # mean/std-normalised
    (0.0, 1.004, "clip the small overshoot"),
])
def test_out_of_range_pixels_get_the_fix_for_how_they_were_scaled(tmp_path, lo, hi, fix):
    x = np.linspace(lo, hi, 32, dtype=np.float32).reshape(2, 4, 4)
    with pytest.raises(BadInputError, match=fix):
        load_dataset(_npz(tmp_path, images=x, labels=np.array([0, 1])))


def test_an_alpha_channel_in_an_array_is_named(tmp_path):
    x = np.zeros((2, 6, 6, 4), np.uint8)  # N, H, W, RGBA
    with pytest.raises(BadInputError, match=r"looks like 4 channels; keep the colour ones, images\[\.\.\., :3\]"):
        load_dataset(_npz(tmp_path, images=x, labels=np.array([0, 1])))


def test_npz_labels_out_of_range_and_non_integer(tmp_path):
    x = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(BadInputError, match="label 5 out of range for 2 classes"):
        load_dataset(_npz(tmp_path, images=x, labels=np.array([0, 1, 5]), classes=np.array(["a", "b"])))
    with pytest.raises(BadInputError, match="non-integer"):
        load_dataset(_npz(tmp_path, images=x, labels=np.array([0.0, 1.5, 1.0])))


def test_npz_class_with_zero_images(tmp_path):
    x = np.zeros((4, 4, 4), np.uint8)
    spec = _npz(tmp_path, images=x, labels=np.array([0, 1, 0, 1]), classes=np.array(["a", "b", "c"]))
    with pytest.raises(BadInputError, match="'c' have zero images"):
        load_dataset(spec)


def test_npz_truncated_and_object_arrays(tmp_path):
    spec = _npz(tmp_path, images=np.zeros((4, 4, 4), np.uint8), labels=np.arange(4))
    p = tmp_path / "bad.npz"
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="bad.npz"):
        load_dataset(spec)
    np.savez(p, images=np.zeros((2, 4, 4), np.uint8), labels=np.arange(2), classes=np.array(["a", 1], dtype=object))
    with pytest.raises(BadInputError, match="Python objects"):
        load_dataset(spec)


def test_image_folder_with_non_image_file(tmp_path):
    _save_png(tmp_path / "a" / "1.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "a" / "notes.txt").write_text("hello")
    with pytest.raises(BadInputError, match="notes.txt"):
        load_dataset(f"image-folder:{tmp_path}")
    (tmp_path / "a" / "notes.txt").unlink()
    (tmp_path / "a" / "fake.png").write_text("not really a png")
    with pytest.raises(BadInputError, match="fake.png"):
        load_dataset(f"image-folder:{tmp_path}")


def test_empty_image_folder(tmp_path):
    with pytest.raises(BadInputError, match="no images found"):
        load_dataset(f"image-folder:{tmp_path}")
    (tmp_path / "cls").mkdir()
    with pytest.raises(BadInputError, match="no images found"):
        load_dataset(f"image-folder:{tmp_path}")
    with pytest.raises(NotFoundError):
        load_dataset(f"image-folder:{tmp_path / 'absent'}")


def test_image_folder_mixed_sizes(tmp_path):
    _save_png(tmp_path / "a" / "small.png", np.zeros((4, 4), np.uint8))
    _save_png(tmp_path / "b" / "big.png", np.full((6, 8), 255, np.uint8))
    with pytest.raises(BadInputError, match="differ in size") as e:
        load_dataset(f"image-folder:{tmp_path}")
    msg = str(e.value)
    assert "small.png" in msg and "big.png" in msg and "--resize" in msg
    ds = load_image_folder(tmp_path, size=5)
    assert ds.images.shape == (2, 1, 5, 5)
    assert float(ds.images[0].max()) == 0.0 and float(ds.images[1].min()) == 1.0


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError) as e:
        load_dataset("fashoin-mnist")
    assert "fashion-mnist" in str(e.value) and "mnist-5k" in str(e.value)


def test_bad_split_name():
    with pytest.raises(BadInputError, match="no split 'validation'"):
        load_dataset("mnist-5k:validation")
    with pytest.raises(BadInputError, match="valid: train, test"):
        load_dataset("digits", split="val")
