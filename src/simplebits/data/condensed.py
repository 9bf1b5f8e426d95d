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
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..errors import BadInputError, CorruptFileError, check_input_size, reading
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


MAX_CLASSES = 100_000
MAX_FACTOR = 64
MAX_SIDE = 4096
RANGES = ("[0, 1]", "unbounded")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    import math

    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_condensed(p: Path | str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Check a condensed-set file's metadata field by field and against its tensors.

    ``images`` float32 (N, C, H, W) with C 1 or 3, H and W 1..4096, finite, in [0, 1] unless
    ``range`` is ``"unbounded"`` (then ``value_range`` is the recorded [min, max]); ``labels``
    int64 (N,), non-decreasing (the writer stores classes contiguously), in [0, len(classes));
    ``classes`` 1..100000 names; ``counts`` the per-class counts of the labels; ``ipc`` their
    common value (null when they differ); ``shape`` [C, H, W]; ``factor`` 1..min(64, H, W);
    every class non-empty unless ``allow_empty_class``. Fields absent in older files are not
    required; a field present with a wrong type, range or value is refused."""
    def bad(msg: str) -> CorruptFileError:
        return CorruptFileError(f"{p}: {msg}; re-create the file")

    if meta.get("format") != FORMAT:
        raise CorruptFileError(f"{p} is a simplebits file but not a condensed set (format={str(meta.get('format'))[:60]!r})")
    if set(tensors) != {"images", "labels"}:
        raise bad(f"holds tensors {sorted(tensors)[:6]}, expected exactly 'images' and 'labels'")
    images, labels = tensors["images"], tensors["labels"]
    # in this order: a file with several problems is refused for the first one found
    _check_fields(meta, bad)
    _check_tensor_shapes(images, labels, bad)
    _check_pixel_values(images, meta, bad)
    counts = _check_labels(labels, meta, bad)
    _check_fields_against_tensors(meta, counts, images.shape, bad)


#: ``bad(msg)`` of :func:`check_condensed`: the error naming the file and the fix
_Bad = Callable[[str], CorruptFileError]


def _check_fields(meta: dict[str, Any], bad: _Bad) -> None:
    """The metadata fields on their own: types and ranges."""
    classes = meta.get("classes")
    if not isinstance(classes, list) or not 1 <= len(classes) <= MAX_CLASSES:
        raise bad(f"'classes' must be a list of 1..{MAX_CLASSES} class names")
    if not all(isinstance(c, str) and len(c) <= 1000 for c in classes):
        raise bad("'classes' holds something other than class names")
    factor = meta.get("factor", 1)
    if not _is_int(factor) or not 1 <= factor <= MAX_FACTOR:
        raise bad(f"'factor' is {str(factor)[:30]!r}, not an integer in 1..{MAX_FACTOR}")
    rng = meta.get("range", "[0, 1]")
    if rng is not None and rng not in RANGES:
        raise bad(f"'range' is {str(rng)[:30]!r}, not one of {', '.join(RANGES)}")
    allow_empty = meta.get("allow_empty_class", False)
    if not isinstance(allow_empty, bool):
        raise bad(f"'allow_empty_class' is {str(allow_empty)[:30]!r}, not true or false")
    for key in ("source", "method", "normalization", "version"):
        v = meta.get(key)
        if v is not None and (not isinstance(v, str) or len(v) > 10_000):
            raise bad(f"{key!r} is a {type(v).__name__}, not a string")
    for key in ("seed",):
        v = meta.get(key)
        if v is not None and not _is_int(v):
            raise bad(f"{key!r} is {str(v)[:30]!r}, not an integer")
    for key in ("bpd", "out_of_range_fraction"):
        v = meta.get(key)
        if v is not None and not _is_num(v):
            raise bad(f"{key!r} is {str(v)[:30]!r}, not a finite number")
    if "settings" in meta and meta["settings"] is not None and not isinstance(meta["settings"], dict):
        raise bad("'settings' is not an object")


def _check_tensor_shapes(images: torch.Tensor, labels: torch.Tensor, bad: _Bad) -> None:
    """float32 (N, C, H, W) images with C 1 or 3 and bounded sides; one int64 label per image."""
    if images.dtype != torch.float32 or images.ndim != 4:
        raise bad(f"'images' is {images.dtype} of shape {tuple(images.shape)}, expected float32 (N, C, H, W)")
    n, c, h, w = images.shape
    if n < 1 or c not in (1, 3) or not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise bad(f"'images' has shape {tuple(images.shape)}: expected N >= 1 images of 1 or 3 channels, sides 1..{MAX_SIDE}")
    if labels.dtype != torch.int64 or labels.ndim != 1 or labels.numel() != n:
        raise bad(f"'labels' is {labels.dtype} of shape {tuple(labels.shape)}, expected int64 ({n},), one per image")


def _check_pixel_values(images: torch.Tensor, meta: dict[str, Any], bad: _Bad) -> None:
    """Finite pixels in [0, 1]; an unbounded set's pixels span the ``value_range`` it records."""
    if not bool(torch.isfinite(images).all()):
        raise bad(f"'images' holds {int((~torch.isfinite(images)).sum())} NaN or infinite value(s)")
    lo, hi = float(images.min()), float(images.max())
    unbounded = meta.get("range", "[0, 1]") == "unbounded"
    if not unbounded and (lo < 0.0 or hi > 1.0):
        raise bad(f"pixel values must lie in [0, 1] (the file does not say it is unbounded) but span "
                  f"[{lo:.4g}, {hi:.4g}]")
    if unbounded:
        vr = meta.get("value_range")
        if not (isinstance(vr, list) and len(vr) == 2 and all(_is_num(v) for v in vr)):
            raise bad(f"'value_range' is {str(vr)[:40]!r}, not the [min, max] an unbounded set records")
        if abs(vr[0] - lo) > 1e-4 * max(1.0, abs(lo)) or abs(vr[1] - hi) > 1e-4 * max(1.0, abs(hi)):
            raise bad(f"'value_range' says [{vr[0]:.6g}, {vr[1]:.6g}] but the pixels span [{lo:.6g}, {hi:.6g}]")


def _check_labels(labels: torch.Tensor, meta: dict[str, Any], bad: _Bad) -> list[int]:
    """Labels within the classes, in class order, every class present unless
    ``allow_empty_class``; returns the images per class."""
    classes = meta["classes"]
    k = len(classes)
    if int(labels.min()) < 0 or int(labels.max()) >= k:
        raise bad(f"labels span {int(labels.min())}..{int(labels.max())}, outside 0..{k - 1} for {k} classes")
    if labels.numel() > 1 and bool((labels[1:] < labels[:-1]).any()):
        raise bad("labels are not in class order (the writer stores each class contiguously)")
    counts = torch.bincount(labels, minlength=k).tolist()
    if not meta.get("allow_empty_class", False) and min(counts) == 0:
        raise bad(f"class {classes[counts.index(0)]!r} has no image (and 'allow_empty_class' is not set)")
    return counts


def _check_fields_against_tensors(meta: dict[str, Any], counts: list[int], shape: torch.Size, bad: _Bad) -> None:
    """``counts``, ``ipc``, ``shape`` and ``factor`` agree with the tensors they describe."""
    n, c, h, w = shape
    if "counts" in meta and meta["counts"] != counts:
        mc = meta["counts"]
        raise bad(f"'counts' {str(mc)[:60]} disagree with the labels ({str(counts)[:60]})")
    if "ipc" in meta:
        ipc = meta["ipc"]
        want = counts[0] if len(set(counts)) == 1 else None
        if ipc is not None and (not _is_int(ipc) or ipc < 1):
            raise bad(f"'ipc' is {str(ipc)[:30]!r}, not a positive integer")
        if ipc != want:
            raise bad(f"'ipc' is {ipc} but the file holds {n} images in {len(counts)} classes "
                      f"(counts {str(counts)[:60]})")
    if "shape" in meta and meta["shape"] != [c, h, w]:
        raise bad(f"'shape' {str(meta['shape'])[:40]} disagrees with the images ({c}x{h}x{w})")
    factor = meta.get("factor", 1)
    if factor > min(h, w):
        raise bad(f"'factor' {factor} is too large for {h}x{w} images")
    if "out_of_range_fraction" in meta and meta["out_of_range_fraction"] is not None \
            and not 0.0 <= meta["out_of_range_fraction"] <= 1.0:
        raise bad("'out_of_range_fraction' is outside [0, 1]")


def load_condensed(path: str | os.PathLike) -> ImageSet:
    """Read a condensed-set file written by :func:`save_condensed` (every field checked by
    :func:`check_condensed`, against the tensors, before the set is built)."""
    tensors, meta = load_tensors(path)
    check_condensed(path, tensors, meta)
    with reading(path, "the condensed set"):
        # a pruned set chosen without class balance may legitimately leave a class empty
        ds = ImageSet.create(tensors["images"], tensors["labels"], [str(c) for c in meta["classes"]], where=str(path),
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
        with reading(p, "the condensed set"):
            images, labels = _read_kip(p)
            return _finish_import(p, "kip", images, labels, normalization=normalization, factor=factor,
                                  classes=classes, source=source, clamp=clamp)
    obj = torch_load_safe(p)
    with reading(p, "the condensed set"):
        fmt = detect_format(p, obj) if format == "auto" else format
        images, labels = _unpack_pt(p, obj, fmt, experiment=experiment, labels_path=labels_path)
        return _finish_import(p, fmt, images, labels, normalization=normalization, factor=factor, classes=classes,
                              source=source, clamp=clamp)


_IMAGE_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8)
_LABEL_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.float16, torch.bfloat16,
                 torch.float32, torch.float64)


def _check_loaded_tensor(p: Path, t: Any, what: str, dtypes: tuple, ndims: tuple[int, ...]) -> torch.Tensor:
    """A tensor from a foreign ``.pt`` file: a dense tensor of an expected dtype and rank whose
    size fits the input cap (checked before anything is converted or allocated)."""
    if isinstance(t, (list, tuple)) and what == "labels" and all(isinstance(v, int) and not isinstance(v, bool) for v in t):
        t = torch.tensor(t, dtype=torch.int64) if len(t) <= 10_000_000 else t
    if not isinstance(t, torch.Tensor):
        raise CorruptFileError(f"{p}: {what} are a {type(t).__name__}, not a tensor")
    if t.layout != torch.strided or t.is_quantized or t.device.type != "cpu":
        raise CorruptFileError(f"{p}: {what} are a {t.layout} tensor; expected a plain (dense) tensor")
    if t.dtype not in dtypes:
        raise CorruptFileError(f"{p}: {what} are {t.dtype}; expected one of {', '.join(str(d) for d in dtypes)}")
    if t.ndim not in ndims:
        raise CorruptFileError(f"{p}: {what} have shape {tuple(t.shape)}; expected {' or '.join(map(str, ndims))} dimensions")
    check_input_size(t.numel() * 4, p, what)
    if t.numel() == 0:
        raise CorruptFileError(f"{p}: {what} are empty (shape {tuple(t.shape)})")
    return t


def _unpack_pt(p: Path, obj: Any, fmt: str, *, experiment: int, labels_path: str | os.PathLike | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of a DC/DSA/DM, MTT or IDC ``.pt`` object, its structure checked."""
    if fmt == "dc":
        if not isinstance(obj, dict) or "data" not in obj:
            raise CorruptFileError(f"{p}: expected a DC/DSA/DM result dict with key 'data'")
        exps = obj["data"]
        if not isinstance(exps, (list, tuple)) or not exps:
            raise CorruptFileError(f"{p}: 'data' holds no experiments")
        if isinstance(experiment, bool) or not isinstance(experiment, int) or not 0 <= experiment < len(exps):
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
    images = _check_loaded_tensor(p, images, "images", _IMAGE_DTYPES, (4,))
    labels = _check_loaded_tensor(p, labels, "labels", _LABEL_DTYPES, (1, 2))
    if labels.shape[0] != images.shape[0]:
        raise CorruptFileError(f"{p}: {labels.shape[0]} labels for {images.shape[0]} images")
    if labels.is_floating_point() and not bool(torch.isfinite(labels).all()):
        raise CorruptFileError(f"{p}: labels contain NaN or infinite values")
    return images, labels


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
