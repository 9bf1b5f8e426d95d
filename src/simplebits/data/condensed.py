"""Condensed-set files: our format, multi-formation decoding, and importers for other tools.

Our format
----------
One safetensors file: ``images`` float32 (N, C, H, W) in [0, 1], class-ordered, and ``labels``
int64 (N,), with a JSON document (see :func:`simplebits.io.save_tensors`) holding

``format`` ("simplebits.condensed/1"), ``classes``, ``source`` (data set spec), ``method``,
``ipc`` (stored images per class), ``factor`` (multi-formation factor f; each stored image
decodes into f*f training images), ``normalization`` (of the original file, if imported),
``settings``, ``seed``, ``version`` (package version) and ``bpd`` (if known).

Importers
---------
DC/DSA/DM ``res_*.pt`` (``{'data': [[images, labels], ...]}``, mean/std normalised), MTT
``images_best.pt`` + ``labels_best.pt`` (normalised), IDC/YOCO ``data.pt`` (``[images,
labels]``; DREAM writes the same), KIP ``.npz`` (NHWC images, one-hot or learned labels: the
argmax is kept). ``.pt`` files are read with ``torch.load(weights_only=True)`` and ``.npz`` with
``allow_pickle=False``; nothing is unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import BadInputError, CorruptFileError
from ..io import load_tensors, save_tensors, torch_load_safe
from .imageset import ImageSet

__all__ = [
    "FORMAT",
    "NORMALIZATIONS",
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
    """Write ``ds`` as a condensed-set file (atomic). Returns the metadata written."""
    if factor < 1:
        raise BadInputError(f"factor must be >= 1, got {factor}")
    ds = ds.class_ordered()
    meta: dict[str, Any] = {
        "format": FORMAT,
        "classes": list(ds.classes),
        "source": source or ds.meta.get("source_dataset") or ds.meta.get("name"),
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
                         allow_empty_class=bool(meta.get("allow_empty_class")))
    return ds.with_meta(
        name=str(path), condensed=meta, factor=int(meta.get("factor", 1)), source_dataset=meta.get("source")
    )


def decode(ds: ImageSet, factor: int | None = None) -> ImageSet:
    """Multi-formation decoding (IDC): split each image into f*f crops and upsample each
    crop to the full size (bilinear); labels repeated f*f times.

    (N, C, H, W) -> (N*f*f, C, H, W); order: image-major, then crop row, then crop column,
    so decoded sample ``i*f*f + k`` comes from stored image ``i``. When H or W is not a
    multiple of f, the last ``H % f`` rows / ``W % f`` columns are dropped before splitting
    (IDC crops with integer division the same way).
    """
    f = int(ds.meta.get("factor", 1) if factor is None else factor)
    if f == 1:
        return ds
    x = decode_images(ds.images, f).clamp_(0.0, 1.0)
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


def _denormalize(images: torch.Tensor, normalization: str | None, path: str) -> tuple[torch.Tensor, dict[str, Any]]:
    images = images.detach().float()
    if images.ndim != 4:
        raise BadInputError(f"{path}: images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):  # NHWC (e.g. KIP)
        images = images.permute(0, 3, 1, 2).contiguous()
    if not torch.isfinite(images).all():
        raise BadInputError(f"{path}: images contain NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if normalization is None:
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise BadInputError(
                f"{path}: pixel values span [{lo:.3g}, {hi:.3g}], outside [0, 1]: the images look mean/std-"
                f"normalised; pass normalization= one of {', '.join(k for k in NORMALIZATIONS if k != 'none')}"
            )
        normalization = "none"
    if normalization not in NORMALIZATIONS:
        raise BadInputError(f"unknown normalization {normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
    mean, std = NORMALIZATIONS[normalization]
    c = images.shape[1]
    if len(mean) not in (1, c):
        raise BadInputError(f"{path}: normalization {normalization!r} is for {len(mean)} channels, images have {c}")
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    x = images * s + m
    outside = float(((x < 0) | (x > 1)).float().mean())
    return x.clamp_(0.0, 1.0), {"normalization": normalization, "clamped_fraction": round(outside, 6)}


def _read_kip(p: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """KIP (Nguyen et al.) learned support sets: an .npz with arrays ``images`` (NHWC, float) and
    ``labels`` (one-hot or learned, real-valued), read by the .npz reader (``allow_pickle=False``)."""
    from .npz import read_npz

    images, labels, _ = read_npz(p)
    x = torch.from_numpy(images.astype("float32") / (255.0 if images.dtype == "uint8" else 1.0))
    return x, torch.from_numpy(labels)


def _labels_from(obj: Any, path: str) -> torch.Tensor:
    lab = torch.as_tensor(obj)
    if lab.ndim == 2:  # one-hot or soft labels (KIP, MTT learned labels): keep the argmax
        lab = lab.argmax(1)
    return lab


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
) -> ImageSet:
    """Read a condensed set written by simplebits or another tool into an :class:`ImageSet`.

    Parameters
    ----------
    format : 'auto' | 'simplebits' | 'dc' | 'mtt' | 'idc' | 'kip' (an .npz with NHWC images and
        one-hot labels).
    normalization : name in :data:`NORMALIZATIONS` used by the writing tool (required when the
        images are mean/std-normalised; values are denormalised then clamped to [0, 1]).
    factor : multi-formation factor of IDC/DREAM files (stored images are f*f collages).
    labels_path : MTT labels file (default: ``labels_best.pt`` beside the images file).
    experiment : which experiment of a DC ``res_*.pt`` file.
    """
    p = Path(path)
    if format == "simplebits" or (format == "auto" and p.suffix == ".safetensors"):
        return load_condensed(p)
    if format == "kip" or (format == "auto" and p.suffix.lower() == ".npz"):
        images, labels = _read_kip(p)
        x, norm_meta = _denormalize(images, normalization, str(p))
        ds = ImageSet.create(x, _labels_from(labels, str(p)), classes, where=str(p))
        meta = {"format_in": "kip", "factor": int(factor), "imported_from": str(p), **norm_meta}
        return ds.with_meta(name=str(p), source_dataset=source, **meta)
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
    x, norm_meta = _denormalize(images, normalization, where)
    y = _labels_from(labels, where)
    ds = ImageSet.create(x, y, classes, where=where)
    meta = {"format_in": fmt, "factor": int(factor), "imported_from": str(p), **norm_meta}
    return ds.with_meta(name=str(p), source_dataset=source, **meta)
