import pytest
import torch

from simplebits.data import ImageSet
from simplebits.data.condensed import NORMALIZATIONS, decode, import_condensed, load_condensed, save_condensed
from simplebits.errors import BadInputError, CorruptFileError
from simplebits.io import read_metadata


def _set(n_per=2, c=1, hw=8, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_per * classes, c, hw, hw, generator=g)
    y = torch.arange(classes).repeat(n_per)  # interleaved labels: not class-ordered
    return ImageSet.create(x, y, [f"k{i}" for i in range(classes)])


def test_round_trip_is_class_ordered_with_metadata(tmp_path):
    ds = _set()
    p = tmp_path / "set.safetensors"
    save_condensed(p, ds, method="dc", source="fashion-mnist:train", factor=1, settings={"lr": 0.1}, seed=3, bpd=2.5)
    back = load_condensed(p)
    assert back.labels.tolist() == [0, 0, 1, 1, 2, 2]
    order = torch.sort(ds.labels, stable=True).indices
    assert torch.equal(back.images, ds.images[order])
    meta = read_metadata(p)
    for key in ("format", "source", "method", "ipc", "factor", "normalization", "settings", "seed", "version", "bpd"):
        assert key in meta
    assert meta["ipc"] == 2 and meta["bpd"] == 2.5 and meta["settings"] == {"lr": 0.1}
    assert back.meta["source_dataset"] == "fashion-mnist:train"


def test_decode_multiformation_splits_and_upsamples():
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, :2, :2] = 0.1  # top-left crop
    x[0, 0, :2, 2:] = 0.2  # top-right
    x[0, 0, 2:, :2] = 0.3
    x[0, 0, 2:, 2:] = 0.4
    ds = ImageSet.create(x, [0]).with_meta(factor=2)
    d = decode(ds)
    assert d.images.shape == (4, 1, 4, 4)
    assert d.labels.tolist() == [0, 0, 0, 0]
    for k, v in enumerate([0.1, 0.2, 0.3, 0.4]):
        assert torch.allclose(d.images[k], torch.full((1, 4, 4), v))
    # odd sizes: remainder rows/cols dropped, output keeps the full size
    d5 = decode(ImageSet.create(torch.rand(2, 1, 5, 5), [0, 1]), factor=2)
    assert d5.images.shape == (8, 1, 5, 5) and d5.labels.tolist() == [0] * 4 + [1] * 4


def test_import_dc_denormalises(tmp_path):
    ds = _set(c=3)
    mean, std = NORMALIZATIONS["cifar10"]
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    torch.save({"data": [[(ds.images - m) / s, ds.labels]], "accs_all_exps": {}}, tmp_path / "res_DC_CIFAR10.pt")
    got = import_condensed(tmp_path / "res_DC_CIFAR10.pt", normalization="cifar10")
    assert torch.allclose(got.images, ds.images, atol=1e-5)
    assert got.meta["format_in"] == "dc"
    with pytest.raises(BadInputError, match="normalised"):
        import_condensed(tmp_path / "res_DC_CIFAR10.pt")
    with pytest.raises(BadInputError, match="experiment 3 out of range"):
        import_condensed(tmp_path / "res_DC_CIFAR10.pt", normalization="cifar10", experiment=3)


def test_import_mtt_and_idc(tmp_path):
    ds = _set()
    (mean,), (std,) = NORMALIZATIONS["mnist"]
    torch.save((ds.images - mean) / std, tmp_path / "images_best.pt")
    torch.save(ds.labels.clone(), tmp_path / "labels_best.pt")
    got = import_condensed(tmp_path / "images_best.pt", normalization="mnist")
    assert torch.allclose(got.images, ds.images, atol=1e-5) and torch.equal(got.labels, ds.labels)
    torch.save([ds.images, ds.labels], tmp_path / "data.pt")
    idc = import_condensed(tmp_path / "data.pt", factor=2)
    assert idc.meta["factor"] == 2 and torch.equal(idc.images, ds.images)
    assert len(decode(idc)) == 4 * len(ds)


def test_imported_soft_labels_are_reduced_to_their_argmax_and_said_so(tmp_path, capsys):
    from simplebits.cli.main import main

    ds = _set()
    (mean,), (std,) = NORMALIZATIONS["mnist"]
    torch.save((ds.images - mean) / std, tmp_path / "images_best.pt")
    soft = torch.nn.functional.one_hot(ds.labels, ds.num_classes).float() * 3.0 + 0.1  # learned logits
    torch.save(soft, tmp_path / "labels_best.pt")
    got = import_condensed(tmp_path / "images_best.pt", normalization="mnist")
    assert torch.equal(got.labels, ds.labels) and got.meta["soft_labels_dropped"]
    torch.save(torch.nn.functional.one_hot(ds.labels, ds.num_classes).float(), tmp_path / "labels_best.pt")
    assert "soft_labels_dropped" not in import_condensed(tmp_path / "images_best.pt", normalization="mnist").meta
    torch.save(soft, tmp_path / "labels_best.pt")
    assert main(["convert", str(tmp_path / "images_best.pt"), "--normalization", "mnist",
                 "--out", str(tmp_path / "o.safetensors")]) == 0
    assert "soft labels were replaced by their argmax" in capsys.readouterr().out


def test_import_refuses_garbage(tmp_path):
    torch.save({"something": 1}, tmp_path / "res_x.pt")
    with pytest.raises(CorruptFileError, match="'data'"):
        import_condensed(tmp_path / "res_x.pt")
    (tmp_path / "data.pt").write_bytes(b"\x80\x04garbage")
    with pytest.raises(CorruptFileError):
        import_condensed(tmp_path / "data.pt")
    torch.save([torch.full((2, 1, 4, 4), float("nan")), torch.tensor([0, 1])], tmp_path / "nan.pt")
    with pytest.raises(BadInputError, match="NaN"):
        import_condensed(tmp_path / "nan.pt")
