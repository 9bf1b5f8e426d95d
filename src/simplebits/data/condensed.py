"""Condensed-set files: our format, multi-formation decoding, and importers for other tools.

Our format
----------
One safetensors file: ``images`` float32 (N, C, H, W), class-ordered, and ``labels``
int64 (N,), with a JSON document (see :func:`simplebits.io.save_tensors`) holding

``format`` ("simplebits.condensed/1"), ``classes``, ``source`` (the real data set spec it was
made from, e.g. ``fashion-mnist:train``, or null when unknown; never a file path: a file it came
from is ``imported_from`` or ``parent``), ``method``, ``ipc`` (stored images per class),
``factor`` (multi-formation factor f; each stored image decodes into f*f training images),
``range`` (``"[0, 1]"``, or ``"unbounded"`` when the tool that made the set did not clamp, with
``value_range`` and ``out_of_range_fraction``), ``normalization`` (of the original file, if
imported), ``settings``, ``seed``, ``version`` (package version) and ``bpd`` (if known).

A set is stored as the tool produced it: DC/DSA/DM never clamp their synthetic images, so once
denormalised they span e.g. [-0.47, 1.60]; clamping them would change what the network trains on
(the accuracy falls). Clamping is an explicit choice (``clamp=True``, ``convert --clamp``).

Importers
---------
DC/DSA/DM ``res_*.pt`` (``{'data': [[images, labels], ...]}``, mean/std normalised), MTT
``images_best.pt`` + ``labels_best.pt`` (normalised), IDC/YOCO ``data.pt`` (``[images,
labels]``; DREAM writes the same), KIP ``.npz`` (NHWC images, one-hot or learned labels: the
argmax is kept). ``.pt`` files are read with ``torch.load(weights_only=True)`` and ``.npz`` with
``allow_pickle=False``; nothing is unpickled.

When no ``normalization`` or ``source`` is given, :func:`infer_dataset` reads the data set from
the file's name and folders (DC/DSA/DM ``res_DC_FashionMNIST_ConvNet_1ipc.pt``, MTT
``logged_files/CIFAR10/<run>/images_best.pt``, IDC ``results/cifar10/<exp>/data.pt``) and checks
it against the contents (channels, size, classes); the contents alone decide when only one known
data set fits (e.g. 3x32x32 in 100 classes is CIFAR-100). What was inferred, and how, is kept
in the metadata (``inferred``) and said by ``convert``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import BadInputError, CorruptFileError
from ..io import load_tensors, save_tensors, torch_load_safe
from .imageset import ImageSet
from .registry import is_dataset_spec

__all__ = [
    "FORMAT",
    "NORMALIZATIONS",
    "infer_dataset",
    "save_condensed",
    "load_condensed",
    "decode_images",
    "decode",
    "import_condensed",
    "detect_format",
]

FORMAT = "simplebits.condensed/1"

# mean/std used by the public condensation code bases to normalise each data set
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "none": ((0.0,), (1.0,)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2861,), (0.3530,)),
    "usps": ((0.2469,), (0.2989,)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


# data sets that other tools' files are made from: (channels, side, classes), for checking a name
# against the contents and for telling a data set from the contents alone
KNOWN_DATASETS: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 10),
    "fashion-mnist": (1, 28, 10),
    "usps": (1, 16, 10),
    "svhn": (3, 32, 10),
    "cifar10": (3, 32, 10),
    "cifar100": (3, 32, 100),
    "tinyimagenet": (3, 64, 200),
}
# how the reference code bases spell them in file and folder names (lower case, '-' removed)
_ALIASES = {
    "mnist": "mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist", "fashion": "fashion-mnist",
    "usps": "usps", "svhn": "svhn", "cifar10": "cifar10", "cifar100": "cifar100",
    "tinyimagenet": "tinyimagenet", "tinyimagenet200": "tinyimagenet",
}


def _name_tokens(component: str) -> set[str]:
    return {t.replace("-", "") for t in re.split(r"[_\s.]+", component.lower()) if t}


def _fits(name: str, shape: tuple[int, ...], num_classes: int) -> bool:
    c, side, k = KNOWN_DATASETS[name]
    return tuple(shape) == (c, side, side) and num_classes <= k


def infer_dataset(path: str | os.PathLike, shape: tuple[int, ...], num_classes: int) -> tuple[str | None, str]:
    """The data set a foreign condensed-set file was made from, and how that was decided.

    Looks at the file's name, then up to three enclosing folders (nearest first), for one known
    data set name (``FashionMNIST``, ``cifar10``, ``CIFAR100``, ``svhn``, ...), and checks it
    against the images' (C, H, W) and the number of classes. Without a name, the contents decide
    when exactly one known data set fits. Returns ``(None, why)`` when it cannot tell.
    """
    p = Path(path)
    components = [p.stem] + [q.name for q in list(p.parents)[:3] if q.name]
    c, h, w = shape
    for comp in components:
        found = sorted({_ALIASES[t] for t in _name_tokens(comp) if t in _ALIASES})
        if len(found) > 1:
            return None, f"the name {comp!r} mentions {' and '.join(found)}"
        if found:
            name = found[0]
            if not _fits(name, shape, num_classes):
                fc, fs, fk = KNOWN_DATASETS[name]
                return None, (f"the name {comp!r} says {name} ({fc}x{fs}x{fs}, {fk} classes), but the file holds "
                              f"{c}x{h}x{w} images in {num_classes} classes")
            return name, f"from the name {comp!r}"
    fitting = [n for n in KNOWN_DATASETS if _fits(n, shape, num_classes) and KNOWN_DATASETS[n][2] == num_classes]
    if len(fitting) == 1:
        return fitting[0], f"from the contents ({c}x{h}x{w} images, {num_classes} classes)"
    if fitting:
        return None, f"{c}x{h}x{w} images in {num_classes} classes fit {' and '.join(fitting)}, and no name says which"
    return None, f"no known data set has {c}x{h}x{w} images in {num_classes} classes"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("simplebits")
    except Exception:  # noqa: BLE001 - running from a source tree without metadata
        return "0+unknown"


def save_condensed(
    path: str | os.PathLike,
    ds: ImageSet,
    *,
    method: str,
    source: str | None = None,
    factor: int = 1,
    settings: dict[str, Any] | None = None,
    seed: int | None = None,
    bpd: float | None = None,
    normalization: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``ds`` as a condensed-set file (atomic). Returns the metadata written.

    ``source`` (else ``ds.meta["source_dataset"]``, else the set's name when that is a data set
    spec) is recorded only when it names a data set; a file path is never recorded as the source
    (the file a set came from belongs in ``extra``: ``imported_from`` or ``parent``). An unbounded
    set (values outside [0, 1]) is written as it is, with ``range: "unbounded"``.
    """
    if factor < 1:
        raise BadInputError(f"factor must be >= 1, got {factor}")
    ds = ds.class_ordered()
    src = next((str(v) for v in (source, ds.meta.get("source_dataset"), ds.meta.get("name"))
                if v and is_dataset_spec(str(v))), None)
    frac = ds.out_of_range_fraction()
    range_meta: dict[str, Any] = {"range": "[0, 1]"}
    if frac > 0.0:
        lo, hi = ds.value_range()
        range_meta = {"range": "unbounded", "value_range": [round(lo, 6), round(hi, 6)],
                      "out_of_range_fraction": round(frac, 6)}
    meta: dict[str, Any] = {
        "format": FORMAT,
        "classes": list(ds.classes),
        "source": src,
        "method": method,
        "ipc": ds.ipc(),
        "counts": ds.counts(),
        "factor": int(factor),
        "shape": list(ds.shape),
        "normalization": normalization,
        "settings": settings or {},
        "seed": seed,
        "version": _version(),
        "bpd": bpd,
        **range_meta,
    }
    if extra:
        meta.update(extra)
    save_tensors(path, {"images": ds.images.float(), "labels": ds.labels.long()}, meta)
    return meta


def load_condensed(path: str | os.PathLike) -> ImageSet:
    """Read a condensed-set file written by :func:`save_condensed` (validated)."""
    tensors, meta = load_tensors(path)
    if meta.get("format") != FORMAT:
        raise CorruptFileError(f"{path} is a simplebits file but not a condensed set (format={meta.get('format')!r})")
    if "images" not in tensors or "labels" not in tensors:
        raise CorruptFileError(f"{path} lacks 'images' or 'labels'; re-create it")
    # a pruned set chosen without class balance may legitimately leave a class empty
    ds = ImageSet.create(tensors["images"], tensors["labels"], meta.get("classes"), where=str(path),
                         allow_empty_class=bool(meta.get("allow_empty_class")),
                         unbounded=meta.get("range") == "unbounded")
    return ds.with_meta(
        name=str(path), condensed=meta, factor=int(meta.get("factor", 1)), source_dataset=meta.get("source")
    )


def decode(ds: ImageSet, factor: int | None = None) -> ImageSet:
    """Multi-formation decoding (IDC): split each image into f*f crops and upsample each
    crop to the full size (bilinear); labels repeated f*f times.

    (N, C, H, W) -> (N*f*f, C, H, W); order: image-major, then crop row, then crop column,
    so decoded sample ``i*f*f + k`` comes from stored image ``i``. When H or W is not a
    multiple of f, the last ``H % f`` rows / ``W % f`` columns are dropped before splitting
    (IDC crops with integer division the same way). An unbounded set is not clamped.
    """
    f = int(ds.meta.get("factor", 1) if factor is None else factor)
    if f == 1:
        return ds
    x = decode_images(ds.images, f)
    if not ds.unbounded:
        x = x.clamp_(0.0, 1.0)  # bilinear rounding only; an unbounded set keeps its values
    labels = ds.labels.repeat_interleave(f * f)
    return ImageSet(x, labels, ds.classes, {**ds.meta, "factor": 1, "decoded_from_factor": f})


def decode_images(images: torch.Tensor, factor: int) -> torch.Tensor:
    """The tensor part of :func:`decode`, differentiable (condensation optimises through it):
    (N, C, H, W) -> (N*f*f, C, H, W), not clamped."""
    f = int(factor)
    if f < 1:
        raise BadInputError(f"factor must be >= 1, got {f}")
    if f == 1:
        return images
    n, c, h, w = images.shape
    sh, sw = h // f, w // f
    if sh < 1 or sw < 1:
        raise BadInputError(f"factor {f} is too large for {h}x{w} images")
    x = images[:, :, : sh * f, : sw * f]
    # (N, C, f*sh, f*sw) -> (N, f, f, C, sh, sw) -> (N*f*f, C, sh, sw)
    x = x.reshape(n, c, f, sh, f, sw).permute(0, 2, 4, 1, 3, 5).reshape(n * f * f, c, sh, sw)
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------
# importers


def detect_format(path: str | os.PathLike, obj: Any | None = None) -> str:
    """Guess the tool that wrote ``path``: 'simplebits', 'dc', 'mtt' or 'idc'."""
    name = Path(path).name
    if name.endswith(".safetensors"):
        return "simplebits"
    if name.startswith("res_") and name.endswith(".pt"):
        return "dc"
    if name.startswith("images_") and name.endswith(".pt"):
        return "mtt"
    if obj is not None:
        if isinstance(obj, dict) and "data" in obj:
            return "dc"
        if isinstance(obj, (list, tuple)) and len(obj) == 2:
            return "idc"
        if isinstance(obj, torch.Tensor):
            return "mtt"
    if name.endswith(".pt"):
        return "idc"
    raise BadInputError(f"cannot tell which tool wrote {path}; pass format= 'dc', 'mtt' or 'idc'")


def _as_nchw(images: torch.Tensor, path: str) -> torch.Tensor:
    images = images.detach().float()
    if images.ndim != 4:
        raise BadInputError(f"{path}: images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):  # NHWC (e.g. KIP)
        images = images.permute(0, 3, 1, 2).contiguous()
    if not torch.isfinite(images).all():
        raise BadInputError(f"{path}: images contain NaN or infinite values")
    return images


def _choose_normalization(images: torch.Tensor, labels: torch.Tensor, fmt: str, normalization: str | None,
                          source: str | None, path: str) -> tuple[str, dict[str, Any]]:
    """The normalisation to undo and what was inferred (``{}`` when the caller said both)."""
    if normalization is not None and source is not None:
        return normalization, {}
    num_classes = int(labels.max()) + 1 if labels.numel() else 0
    name, how = infer_dataset(path, tuple(images.shape[1:]), num_classes)
    inferred: dict[str, Any] = {"dataset": name, "how": how}
    if normalization is None:
        lo, hi = float(images.min()), float(images.max())
        outside = lo < -1e-3 or hi > 1 + 1e-3
        # DC/DSA/DM and MTT always save mean/std-normalised images; other tools by the values
        if name is not None and (fmt in ("dc", "mtt") or outside):
            normalization = name
            inferred["normalization"] = name
        elif outside:
            raise BadInputError(
                f"{path}: pixel values span [{lo:.3g}, {hi:.3g}], outside [0, 1]: the images look mean/std-"
                f"normalised, and the data set could not be told ({how}); pass --normalization (normalization= in Python) one of "
                f"{', '.join(k for k in NORMALIZATIONS if k != 'none')}"
            )
        else:
            normalization = "none"
    return normalization, inferred


def _denormalize(images: torch.Tensor, normalization: str, path: str, *, clamp: bool) -> tuple[torch.Tensor, dict[str, Any]]:
    """Undo mean/std normalisation. Values are kept as they are unless ``clamp``; the metadata
    says how many lie outside [0, 1] (``out_of_range_fraction``, or ``clamped_fraction``)."""
    if normalization not in NORMALIZATIONS:
        raise BadInputError(f"unknown normalization {normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
    mean, std = NORMALIZATIONS[normalization]
    c = images.shape[1]
    if len(mean) not in (1, c):
        raise BadInputError(f"{path}: normalization {normalization!r} is for {len(mean)} channels, images have {c}")
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    x = images * s + m
    outside = round(float(((x < 0) | (x > 1)).float().mean()), 6)
    if clamp:
        return x.clamp_(0.0, 1.0), {"normalization": normalization, "clamped_fraction": outside}
    return x, {"normalization": normalization, "out_of_range_fraction": outside}


def _read_kip(p: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """KIP (Nguyen et al.) learned support sets: an .npz with arrays ``images`` (NHWC, float) and
    ``labels`` (one-hot or learned, real-valued), read by the .npz reader (``allow_pickle=False``)."""
    from .npz import read_npz

    images, labels, _ = read_npz(p)
    x = torch.from_numpy(images.astype("float32") / (255.0 if images.dtype == "uint8" else 1.0))
    return x, torch.from_numpy(labels)


def _labels_from(obj: Any, path: str) -> tuple[torch.Tensor, bool]:
    """Class indices, and whether they were soft labels (not one-hot) reduced to their argmax."""
    lab = torch.as_tensor(obj)
    soft = False
    if lab.ndim == 2:  # one-hot or soft labels (KIP, MTT learned labels): keep the argmax
        f = lab.float()
        soft = bool(torch.isfinite(f).all()) and not bool(((f == 0) | (f == 1)).all() and (f.sum(1) == 1).all())
        lab = lab.argmax(1)
    return lab, soft


def import_condensed(
    path: str | os.PathLike,
    *,
    format: str = "auto",
    normalization: str | None = None,
    factor: int = 1,
    labels_path: str | os.PathLike | None = None,
    experiment: int = 0,
    classes: list[str] | None = None,
    source: str | None = None,
    clamp: bool = False,
) -> ImageSet:
    """Read a condensed set written by simplebits or another tool into an :class:`ImageSet`.

    Parameters
    ----------
    format : 'auto' | 'simplebits' | 'dc' | 'mtt' | 'idc' | 'kip' (an .npz with NHWC images and
        one-hot labels).
    normalization : name in :data:`NORMALIZATIONS` used by the writing tool. None: inferred
        (:func:`infer_dataset`; DC/DSA/DM and MTT files always hold normalised images, other
        files only when their values leave [0, 1]), else an error asks for it.
    factor : multi-formation factor of IDC/DREAM files (stored images are f*f collages).
    labels_path : MTT labels file (default: ``labels_best.pt`` beside the images file).
    experiment : which experiment of a DC ``res_*.pt`` file.
    source : the real data set spec the set was made from (kept as ``source_dataset``, the
        random-real baseline's data). None: ``NAME:train`` of the inferred data set, when known.
    clamp : clamp the denormalised values to [0, 1]. Default False: the set keeps the values the
        tool trained on (``meta["range"] == "unbounded"`` when some lie outside [0, 1]).
    """
    p = Path(path)
    if format == "simplebits" or (format == "auto" and p.suffix == ".safetensors"):
        ds = load_condensed(p)
        return ds.clamped() if clamp else ds
    if format == "kip" or (format == "auto" and p.suffix.lower() == ".npz"):
        images, labels = _read_kip(p)
        return _finish_import(p, "kip", images, labels, normalization=normalization, factor=factor,
                              classes=classes, source=source, clamp=clamp)
    obj = torch_load_safe(p)
    fmt = detect_format(p, obj) if format == "auto" else format
    where = str(p)
    if fmt == "dc":
        if not isinstance(obj, dict) or "data" not in obj:
            raise CorruptFileError(f"{p}: expected a DC/DSA/DM result dict with key 'data'")
        exps = obj["data"]
        if not isinstance(exps, (list, tuple)) or not exps:
            raise CorruptFileError(f"{p}: 'data' holds no experiments")
        if not 0 <= experiment < len(exps):
            raise BadInputError(f"{p}: experiment {experiment} out of range (file holds {len(exps)})")
        pair = exps[experiment]
        if not isinstance(pair, (list, tuple)) or len(pair) < 2:
            raise CorruptFileError(f"{p}: data[{experiment}] is not [images, labels]")
        images, labels = pair[0], pair[1]
    elif fmt == "mtt":
        images = obj if isinstance(obj, torch.Tensor) else None
        if images is None:
            raise CorruptFileError(f"{p}: expected a tensor of images (MTT images_best.pt)")
        lp = Path(labels_path) if labels_path else p.with_name(p.name.replace("images_", "labels_", 1))
        labels = torch_load_safe(lp)
    elif fmt == "idc":
        if not isinstance(obj, (list, tuple)) or len(obj) < 2:
            raise CorruptFileError(f"{p}: expected [images, labels] (IDC/YOCO data.pt)")
        images, labels = obj[0], obj[1]
    else:
        raise BadInputError(f"unknown format {fmt!r}; valid: auto, simplebits, dc, mtt, idc, kip")
    if not isinstance(images, torch.Tensor):
        raise CorruptFileError(f"{p}: images are not a tensor")
    return _finish_import(p, fmt, images, labels, normalization=normalization, factor=factor, classes=classes,
                          source=source, clamp=clamp)


def _finish_import(p: Path, fmt: str, images: Any, labels: Any, *, normalization: str | None, factor: int,
                   classes: list[str] | None, source: str | None, clamp: bool) -> ImageSet:
    where = str(p)
    x = _as_nchw(torch.as_tensor(images), where)
    y, soft = _labels_from(labels, where)
    ds0 = ImageSet.create(x, y, classes, where=where, unbounded=True)  # labels and classes checked first
    normalization, inferred = _choose_normalization(ds0.images, ds0.labels, fmt, normalization, source, where)
    x, norm_meta = _denormalize(ds0.images, normalization, where, clamp=clamp)
    if source is None and inferred.get("dataset") and is_dataset_spec(f"{inferred['dataset']}:train"):
        source = f"{inferred['dataset']}:train"
        inferred["source"] = source
    ds = ImageSet.create(x, ds0.labels, ds0.classes, where=where, unbounded=not clamp)
    meta = {"format_in": fmt, "factor": int(factor), "imported_from": where, **norm_meta}
    if soft:  # said in the import note: the stored soft labels are not used
        meta["soft_labels_dropped"] = True
    if inferred:
        meta["inferred"] = inferred
    return ds.with_meta(name=where, source_dataset=source, **meta)
