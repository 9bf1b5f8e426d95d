"""The one in-memory data set type of simplebits and the operations every stage needs."""

from __future__ import annotations

import hashlib
import math
import operator
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BadInputError

__all__ = ["combine", "fingerprint", "flip_allowed", "is_mnist", "pad_to", "ImageSet", "validate_images", "validate_labels", "real_subset", "resize", "stratified_split", "to_channels", "UNBOUNDED"]

# ``meta["range"]`` of a set whose float values may leave [0, 1] (a condensed set imported from
# a tool that never clamps, e.g. DC/DSA/DM; or ``condense --no-clamp``).
UNBOUNDED = "unbounded"


#: Most classes a set may have: a label of 10**12 must not make 10**12 class names.
MAX_CLASSES = 1_000_000


def _as_tensor(x: Any, where: str, want: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray) and x.dtype.kind not in "biufc":
        raise BadInputError(f"{where}: dtype {x.dtype} is not numeric; {want}")
    try:
        return torch.as_tensor(x)
    except Exception as e:  # noqa: BLE001 - report any conversion problem as bad input
        msg = (str(e).strip().splitlines() or [""])[0][:160]
        raise BadInputError(f"{where}: cannot convert to a numeric array ({type(e).__name__}: {msg}); {want}") from None


def validate_images(images: Any, *, where: str = "images", unbounded: bool = False) -> torch.Tensor:
    """Check an image array and return float32 (N, C, H, W), in [0, 1] unless ``unbounded``.

    Accepts uint8 in [0, 255] (scaled), or float in [0, 1]. Anything else is refused with a
    message naming what is wrong: NaN, values out of range, wrong rank, no images or zero-size
    images. ``unbounded=True`` accepts finite float values outside [0, 1] (condensed sets from
    tools that do not clamp).
    """
    images = _as_tensor(images, where, "use uint8 (0-255) or float (0-1) pixels")
    if images.ndim == 3:  # (N, H, W) grayscale
        images = images.unsqueeze(1)
    if images.ndim != 4:
        raise BadInputError(f"{where}: expected shape (N, C, H, W) or (N, H, W), got {tuple(images.shape)}")
    if images.shape[1] not in (1, 3):
        c = images.shape[-1]
        hint = {2: "images[..., :1] (gray) of gray+alpha", 4: "images[..., :3] (RGB) of RGBA"}.get(c) \
            if images.shape[1] not in (2, 4) else None
        raise BadInputError(
            f"{where}: expected 1 or 3 channels (N, C, H, W, or N, H, W, C in files), got shape {tuple(images.shape)}"
            + (f": the last axis looks like {c} channels; keep the colour ones, {hint}, before loading" if hint
               else ""))
    if images.shape[0] == 0:
        raise BadInputError(f"{where}: no images (N = 0)")
    if images.numel() == 0:
        raise BadInputError(f"{where}: images of zero size, shape {tuple(images.shape)}; each image needs H, W >= 1")
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    if images.dtype == torch.bool or not (images.is_floating_point() or images.dtype in (torch.int16, torch.int32, torch.int64)):
        raise BadInputError(f"{where}: unsupported dtype {images.dtype}; use uint8 (0-255) or float (0-1)")
    images = images.float()
    lo, hi = float(images.min()), float(images.max())  # NaN propagates: no full-size temporaries
    if not (math.isfinite(lo) and math.isfinite(hi)):
        n_bad = int((~torch.isfinite(images)).sum())
        raise BadInputError(f"{where}: {n_bad} pixel values are NaN or infinite; clean the data first")
    if (lo < 0.0 or hi > 1.0) and not unbounded:
        if lo >= -0.01 and hi <= 1.01:
            fix = "clip the small overshoot with np.clip(x, 0, 1)"
        elif lo >= 0.0 and hi <= 255.0:
            fix = "divide 8-bit data by 255 or pass it as uint8"
        elif lo >= -1.0 and hi <= 1.0:
            fix = "data scaled to [-1, 1] maps to [0, 1] with (x + 1) / 2"
        else:
            fix = "undo the normalisation (x * std + mean, per channel) so that pixels lie in [0, 1]"
        raise BadInputError(f"{where}: float pixel values must lie in [0, 1], found range [{lo:.4g}, {hi:.4g}]; {fix}")
    return images.contiguous()


def _integral_labels(labels: torch.Tensor, where: str) -> torch.Tensor:
    """Labels of any numeric dtype -> int64; bool, complex and non-integral floats are refused."""
    if labels.dtype == torch.bool:
        raise BadInputError(f"{where}: labels must be integers, got bool")
    if labels.is_complex():
        raise BadInputError(f"{where}: labels must be integers, got {labels.dtype}")
    if labels.is_floating_point():
        if not torch.isfinite(labels).all() or not torch.equal(labels, labels.round()):
            raise BadInputError(f"{where}: labels must be integers, found non-integer values")
        if labels.numel() and float(labels.abs().max()) > 2.0**53:
            raise BadInputError(f"{where}: label {float(labels.abs().max()):.4g} is too large; labels must be 0..C-1")
    return labels.to(torch.int64)


def validate_labels(labels: Any, n: int, num_classes: int | None = None, *, where: str = "labels") -> torch.Tensor:
    """Check labels: integer (or integral floats), 1-D, one per image, in [0, num_classes).
    Returns int64 (N,)."""
    labels = _as_tensor(labels, where, "labels must be integers 0..C-1")
    labels = labels.reshape(-1) if labels.ndim == 2 and 1 in labels.shape else labels
    if labels.ndim != 1:
        raise BadInputError(f"{where}: expected a 1-D label vector, got shape {tuple(labels.shape)}")
    labels = _integral_labels(labels, where)
    if labels.numel() != n:
        raise BadInputError(f"{where}: {labels.numel()} labels for {n} images")
    if n and int(labels.min()) < 0:
        raise BadInputError(f"{where}: negative label {int(labels.min())}; labels must be 0..C-1")
    if num_classes is not None and n and int(labels.max()) >= num_classes:
        raise BadInputError(
            f"{where}: label {int(labels.max())} out of range for {num_classes} classes (valid 0..{num_classes - 1})"
        )
    return labels


def _classes_given(classes: Any, where: str) -> tuple[Any, int | None]:
    """(classes as a list, a count or None; how many that names) with a bad type or count refused."""
    if classes is None:
        return None, None
    if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
        if not 1 <= int(classes) <= MAX_CLASSES:
            raise BadInputError(f"{where}: {int(classes)} classes; a set has 1..{MAX_CLASSES:,} classes")
        return int(classes), int(classes)
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Iterable):
        raise BadInputError(f"{where}: classes must be a list of names or a count, got {type(classes).__name__}")
    names = list(classes)
    if not 1 <= len(names) <= MAX_CLASSES:
        raise BadInputError(f"{where}: {len(names)} class names; a set has 1..{MAX_CLASSES:,} classes")
    return names, len(names)


def _class_names(classes: Sequence[str] | int | None, labs: torch.Tensor, allow_empty_class: bool,
                 where: str) -> tuple[str, ...]:
    """Class names from ``classes`` (names, a count, or None: 0..max label), bounded before building."""
    if classes is None:
        k = int(labs.max()) + 1
        if k > labs.numel() and not allow_empty_class:
            raise BadInputError(
                f"{where}: labels go up to {k - 1} but there are only {labs.numel()} images, so some of the "
                f"{k} classes have zero images; labels must be 0..C-1 with every class present"
            )
        if k > MAX_CLASSES:
            raise BadInputError(f"{where}: label {k - 1} implies {k:,} classes; a set has at most {MAX_CLASSES:,}")
        classes = k
    if isinstance(classes, int):
        return tuple(str(i) for i in range(classes))
    return tuple(str(c) for c in classes)


@dataclass(frozen=True, eq=False, repr=False)
class ImageSet:
    """Images float32 (N, C, H, W) in [0, 1], int64 labels (N,), class names and provenance.

    Construct through :meth:`create` to validate; the bare constructor trusts its inputs
    (used internally after validation). A condensed set made by a tool that does not clamp
    (DC/DSA/DM write mean/std-normalised images that leave [0, 1] once denormalised) is kept
    as it is: ``create(..., unbounded=True)`` accepts finite values outside [0, 1] and marks
    ``meta["range"] = "unbounded"``. Training (evaluate, prune, continual replay) uses such
    values as they are; whatever needs pixels in [0, 1] (bpd, PNG files, a density model, a
    simplifier) calls :meth:`clamped` (and reports :meth:`out_of_range_fraction`) or
    :meth:`require_unit_range` (one clear error).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        images: Any,
        labels: Any,
        classes: Sequence[str] | int | None = None,
        meta: dict[str, Any] | None = None,
        *,
        allow_empty_class: bool = False,
        unbounded: bool = False,
        where: str = "data",
    ) -> "ImageSet":
        imgs = validate_images(images, where=f"{where} images", unbounded=unbounded)
        classes, n_named = _classes_given(classes, where)
        labs = validate_labels(labels, imgs.shape[0], n_named, where=f"{where} labels")
        classes = _class_names(classes, labs, allow_empty_class, where)
        if not allow_empty_class:
            counts = torch.bincount(labs, minlength=len(classes))
            empty = [classes[i] for i in range(len(classes)) if counts[i] == 0]
            if empty:
                raise BadInputError(
                    f"{where}: class(es) {', '.join(map(repr, empty[:5]))} have zero images; every class needs at least one"
                )
        meta = dict(meta or {})
        if unbounded and (float(imgs.min()) < 0.0 or float(imgs.max()) > 1.0):
            meta["range"] = UNBOUNDED
        return cls(imgs, labs, classes, meta)

    # -- basic facts -------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """``(image (C, H, W), label)`` of image ``i``, so that a ``torch.utils.data.DataLoader``
        takes the set as it is; negative ``i`` counts from the end, as for a list."""
        try:
            k = operator.index(i)
        except TypeError:
            raise TypeError(f"ImageSet indices must be integers, not {type(i).__name__}; "
                            "use .subset(indices) for several images") from None
        n = len(self)
        if not -n <= k < n:
            raise IndexError(f"image index {k} out of range for {self.name} ({n} images)")
        return self.images[k], int(self.labels[k])

    def __repr__(self) -> str:
        # one line: the dataclass default would print every pixel of the images tensor
        n, c, h, w = self.images.shape
        names = ", ".join(k[:20].replace("\n", " ") for k in self.classes[:4])
        names += ", ..." if self.num_classes > 4 else ""
        if self.images.numel():
            lo, hi = self.value_range()
            values = f"values [{lo:.3g}, {hi:.3g}]"
        else:
            values = "no values"
        return f"ImageSet({self.name!r}: {n}x{c}x{h}x{w}, {self.num_classes} classes ({names}), {values})"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def name(self) -> str:
        return str(self.meta.get("name", "data"))

    def counts(self) -> list[int]:
        """Images per class, in class order."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def ipc(self) -> int | None:
        """Images per class if every class holds the same number, else ``None``."""
        c = self.counts()
        return c[0] if len(set(c)) == 1 else None

    # -- value range (unbounded sets) --------------------------------------------------------
    @property
    def unbounded(self) -> bool:
        """True when the set was created unbounded and holds values outside [0, 1]."""
        return self.meta.get("range") == UNBOUNDED

    def value_range(self) -> tuple[float, float]:
        """(min, max) of the pixel values."""
        return float(self.images.min()), float(self.images.max())

    def out_of_range_fraction(self) -> float:
        """Fraction of values outside [0, 1] (what :meth:`clamped` changes); 0.0 for a bounded set.
        Computed from the values, so a set derived from an unbounded one (mixed, resized) still tells."""
        if self.images.numel() == 0:
            return 0.0
        return float(((self.images < 0) | (self.images > 1)).float().mean())

    def clamped(self) -> "ImageSet":
        """The [0, 1] view of an unbounded set (itself when bounded); ``meta["clamped_fraction"]``
        records the fraction of values that clamping changed."""
        frac = self.out_of_range_fraction()
        meta = {k: v for k, v in self.meta.items() if k != "range"}
        if frac == 0.0:
            return replace(self, meta=meta) if self.unbounded else self
        return replace(self, images=self.images.clamp(0.0, 1.0), meta={**meta, "clamped_fraction": round(frac, 6)})

    def require_unit_range(self, purpose: str) -> "ImageSet":
        """Return ``self`` when its values lie in [0, 1]; otherwise one clear error saying why
        ``purpose`` cannot take it and how to fix it."""
        frac = self.out_of_range_fraction()
        if frac > 0.0:
            lo, hi = self.value_range()
            raise BadInputError(
                f"{self.name} holds values outside [0, 1] (range [{lo:.3g}, {hi:.3g}], "
                f"{100 * frac:.1f}% of values; an unbounded set from a tool that does not "
                f"clamp); {purpose} needs images in [0, 1]: write a clamped copy with `simplebits convert FILE "
                "--clamp --out FILE.safetensors`"
            )
        return self

    # -- derived sets ------------------------------------------------------------------------
    def subset(self, indices: torch.Tensor | Sequence[int], **meta: Any) -> "ImageSet":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageSet(self.images[idx], self.labels[idx], self.classes, {**self.meta, **meta})

    def with_meta(self, **meta: Any) -> "ImageSet":
        return replace(self, meta={**self.meta, **meta})

    def class_ordered(self) -> "ImageSet":
        """Stable sort by label (the condensed-set file stores classes contiguously)."""
        order = torch.sort(self.labels, stable=True).indices
        return ImageSet(self.images[order], self.labels[order], self.classes, dict(self.meta))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n": len(self),
            "shape": list(self.shape),
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "counts": self.counts(),
            "meta": {k: v for k, v in self.meta.items() if isinstance(v, (str, int, float, bool, list, type(None)))},
        }


def real_subset(ds: ImageSet, ipc: int, seed: int = 0) -> ImageSet:
    """Random real subset with exactly ``ipc`` images per class, class-ordered, seeded.

    The baseline that every condensed set is compared with (DC/DSA protocol).
    """
    if not isinstance(ipc, int) or isinstance(ipc, bool) or ipc < 1:
        raise BadInputError(f"ipc must be a positive integer, got {ipc!r}")
    counts = ds.counts()
    small = [(ds.classes[c], n) for c, n in enumerate(counts) if n < ipc]
    if small:
        name, n = min(small, key=lambda t: t[1])
        raise BadInputError(
            f"ipc={ipc} is larger than class {name!r} holds ({n} images); choose ipc <= {min(counts)}"
        )
    g = torch.Generator().manual_seed(int(seed))
    picks = []
    for c in range(ds.num_classes):
        idx = torch.nonzero(ds.labels == c, as_tuple=False).flatten()
        picks.append(idx[torch.randperm(idx.numel(), generator=g)[:ipc]])
    out = ds.subset(torch.cat(picks))
    return out.with_meta(subset={"kind": "random-real", "ipc": ipc, "seed": int(seed), "parent": ds.name})


def stratified_split(ds: ImageSet, *, test_fraction: float = 0.2, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Seeded per-class split into (train, test) for sources that ship no split."""
    if not 0.0 < test_fraction < 1.0:
        raise BadInputError(f"test_fraction must be in (0, 1), got {test_fraction}")
    g = torch.Generator().manual_seed(int(seed))
    tr, te = [], []
    for c in range(ds.num_classes):
        idx = torch.nonzero(ds.labels == c, as_tuple=False).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        k = max(1, int(round(idx.numel() * test_fraction))) if idx.numel() > 1 else 0
        te.append(idx[:k])
        tr.append(idx[k:])
    tr_i, te_i = torch.sort(torch.cat(tr)).values, torch.sort(torch.cat(te)).values
    meta = {"split_seed": int(seed), "test_fraction": test_fraction}
    return ds.subset(tr_i, split="train", **meta), ds.subset(te_i, split="test", **meta)


def pad_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Centre (N, C, H, W) on a zero canvas of ``size``; centre-crop where the image is larger."""
    th, tw = size
    h, w = x.shape[-2:]
    top, left = (th - h) // 2, (tw - w) // 2
    x = F.pad(x, (max(left, 0), max(tw - w - left, 0), max(top, 0), max(th - h - top, 0)))
    hh, ww = x.shape[-2:]
    t0, l0 = (hh - th) // 2, (ww - tw) // 2
    return x[..., t0 : t0 + th, l0 : l0 + tw]


def resize(ds: ImageSet, size: int | tuple[int, int], *, mode: str = "pad") -> ImageSet:
    """Bring images to ``size`` (H, W).

    ``mode="pad"`` centres the image on a zero border (28x28 -> 32x32 adds 2 px each side, the
    choice used for the density models); a larger image is centre-cropped. ``mode="bilinear"``
    / ``"nearest"`` / ``"area"`` interpolate (antialiased when shrinking with bilinear).
    """
    th, tw = (size, size) if isinstance(size, int) else tuple(size)
    if th < 1 or tw < 1:
        raise BadInputError(f"target size must be positive, got {(th, tw)}")
    x = ds.images
    h, w = x.shape[-2:]
    if (h, w) == (th, tw):
        return ds
    if mode == "pad":
        x = pad_to(x, (th, tw))
    elif mode in ("bilinear", "nearest", "area", "bicubic"):
        kw = {"align_corners": False, "antialias": True} if mode in ("bilinear", "bicubic") else {}
        x = F.interpolate(x, size=(th, tw), mode=mode, **kw)
        if not ds.unbounded:  # antialiasing overshoots [0, 1] slightly; an unbounded set keeps its values
            x = x.clamp_(0.0, 1.0)
    else:
        raise BadInputError(f"unknown resize mode {mode!r}; valid: pad, bilinear, bicubic, nearest, area")
    return replace(ds, images=x.contiguous(), meta={**ds.meta, "resized": {"from": [h, w], "to": [th, tw], "mode": mode}})


def to_channels(ds: ImageSet, channels: int) -> ImageSet:
    """Repeat gray to RGB (as the paper does to use one RGB model) or average RGB to gray."""
    c = ds.channels
    if c == channels:
        return ds
    if c == 1 and channels == 3:
        x = ds.images.repeat(1, 3, 1, 1)
    elif c == 3 and channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        x = (ds.images * w).sum(1, keepdim=True)
    else:
        raise BadInputError(f"cannot convert {c} channels to {channels}")
    return replace(ds, images=x.contiguous(), meta={**ds.meta, "channels_from": c})


# Sources of digit images: a horizontal flip changes their meaning, so DSA drops the flip op
# for them (as the DSA reference does for MNIST-like data).
DIGIT_SOURCES = frozenset({"mnist", "mnist-5k", "digits", "printed-digits", "svhn", "usps", "idx"})


# MNIST itself: the DC paper evaluates MNIST with its own per-image augmentation (protocol dc-mnist)
MNIST_SOURCES = frozenset({"mnist", "mnist-5k"})


def source_names(ds: ImageSet) -> set[str]:
    """The data set names a set says it comes from (``meta['source']`` / ``meta['source_dataset']``,
    without the split): ``{"mnist-5k"}`` for ``mnist-5k:train`` and for a set condensed from it."""
    return {str(ds.meta.get(key) or "").split(":", 1)[0] for key in ("source", "source_dataset")} - {""}


def flip_allowed(ds: ImageSet) -> bool:
    """False for digit data (by ``meta['flip_ok']`` if set, else by the source's name)."""
    if "flip_ok" in ds.meta:
        return bool(ds.meta["flip_ok"])
    return not source_names(ds) & DIGIT_SOURCES


def is_mnist(ds: ImageSet) -> bool:
    """Whether ``ds`` is MNIST or drawn / condensed from it (by the source's name)."""
    return bool(source_names(ds) & MNIST_SOURCES)


def combine(
    sets: Sequence[ImageSet], *, channels: int, size: int, limit: int | None = None, seed: int = 0
) -> ImageSet:
    """Mix several sets into one unlabeled-by-class set (label = index of the source set), each
    converted to ``channels`` and zero-padded to ``size`` (for training a density model on a
    mixture). ``limit`` caps the images taken from each set (a seeded random choice)."""
    if not sets:
        raise BadInputError("no data sets to combine")
    fitted = []
    for s in sets:
        if s.shape[1] > size or s.shape[2] > size:
            big = max(s.shape[1], s.shape[2])
            raise BadInputError(f"{s.name}: images are {s.shape[1]}x{s.shape[2]}, larger than the target size {size}; "
                                f"use a size of at least {big} (train-flow: --size {big}; a multiple of 2^levels)")
        s = resize(to_channels(s, channels), size, mode="pad")
        if limit is not None and len(s) > limit:
            g = torch.Generator().manual_seed(seed)
            s = s.subset(torch.randperm(len(s), generator=g)[:limit])
        fitted.append(s)
    x = torch.cat([s.images for s in fitted])
    y = torch.cat([torch.full((len(s),), i, dtype=torch.long) for i, s in enumerate(fitted)])
    names = tuple(s.name for s in fitted)
    return ImageSet(x, y, names, {"name": "+".join(names), "combined": list(names)})


def fingerprint(ds: ImageSet) -> str:
    """sha256 (16 hex digits) of the images and labels: ties a derived file or result to the exact set."""
    h = hashlib.sha256()
    h.update(ds.images.detach().float().contiguous().cpu().numpy().tobytes())
    h.update(ds.labels.detach().long().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]
