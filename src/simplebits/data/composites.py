"""Distractor data sets of SimpleBits (paper §3.1), built from other registered sources.

Each set hides the class signal among content that a classifier does not need, so that a
simplifier trained with SimpleBits should learn to remove the distractor:

``side-by-side`` / ``side-by-side-fashion``
    An MNIST digit and a Fashion-MNIST item, each resized to 32x16, side by side in a random
    order (1x32x32). Labelled by the digit, or (the same images) by the clothing class.
``mnist-noise``
    MNIST plus uniform noise: ``x = clamp(digit + amplitude * U(0, 1), 0, 1)`` (1x28x28).
``interpolated`` / ``interpolated-cifar``
    ``x = alpha * digit + (1 - alpha) * natural`` with the digit zero-padded to 32x32; the
    natural image is a gray photo patch (1x32x32) or a CIFAR-10 image (3x32x32, the digit
    repeated to RGB). Label = digit.
``stripes`` / ``stripes-cifar``
    ``x = 0.5 * image + 0.5 * stripes``: Fashion-MNIST (1x28x28) or CIFAR-10 (3x32x32) overlaid
    with horizontal or vertical square-wave stripes; binary label = stripe direction.

The MNIST base
--------------
:func:`mnist_base` uses the full ``mnist`` source when its IDX files are found in
``ROOT/mnist/`` (or ``ROOT/MNIST/``, or ``$SIMPLEBITS_DATA/mnist/``), else the built-in
``mnist-5k`` (4000/1000). ``ROOT`` itself is never read as MNIST, because a ``--data-root``
given for Fashion-MNIST holds files with the same names. ``meta["composite"]["digits"]`` says
which base was used.

With ``n`` given, the digits are the first ``n`` of a fixed shuffle of the base split (the same
for every ``seed``; the mnist-5k file is sorted by class, so its first rows would be all zeros),
kept in base order; :func:`clean_mnist` returns exactly these digits, image ``i`` for image
``i``. With ``n=None`` every digit of the split is used, in base order.

Randomness
----------
Every draw comes from ``numpy.random.default_rng([seed, split, purpose])``: the same arguments
give identical tensors, ``train`` and ``test`` differ for the same seed, and each purpose
(pairing, side, noise, direction, phase) has its own stream. No global RNG is touched.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BadInputError, NotFoundError, UnknownNameError
from .imageset import ImageSet, pad_to
from .registry import get_source, register_source

__all__ = [
    "mnist_base",
    "clean_mnist",
    "side_by_side_parts",
    "side_by_side",
    "mnist_noise",
    "interpolated",
    "stripes",
    "SIDE_LABELS",
    "NATURALS",
    "STRIPE_BASES",
    "STRIPE_CLASSES",
]

SPLITS = ("train", "test")
SIDE_LABELS = ("mnist", "fashion")
NATURALS = ("photos", "cifar10")
STRIPE_BASES = ("fashion-mnist", "cifar10")
STRIPE_CLASSES = ("horizontal", "vertical")
_DIGITS = tuple(str(i) for i in range(10))
_HALF = (32, 16)  # (H, W) of each half of a side-by-side image

# purpose codes: one independent random stream per use
_SUBSET, _PAIR, _SIDE, _NOISE, _DIRECTION, _PHASE = range(6)


# ------------------------------------------------------------------------------- checks
def _check_split(split) -> str:
    if split not in SPLITS:
        raise BadInputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


def _check_n(n) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or int(n) < 1:
        raise BadInputError(f"n must be a positive integer or None (all images), got {n!r}")
    return int(n)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise BadInputError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def _check_unit(name: str, value, *, closed_right: bool) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    v = float(value) if ok else float("nan")
    if not (0.0 < v < 1.0 or (closed_right and v == 1.0)):
        interval = "(0, 1]" if closed_right else "(0, 1)"
        raise BadInputError(f"{name} must be a number in {interval}, got {value!r}")
    return v


def _check_name(kind: str, value, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise UnknownNameError(kind, str(value), valid)
    return value


def _rng(seed: int, split: str, purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), purpose])


def _draw_pool(rng: np.random.Generator, pool: int, n: int) -> np.ndarray:
    """``n`` indices into ``pool`` items without replacement; only when ``n > pool`` is the pool
    reused, each item once per round (a fresh shuffle each round)."""
    if n <= pool:
        return rng.choice(pool, size=n, replace=False)
    rounds = -(-n // pool)
    return np.concatenate([rng.permutation(pool) for _ in range(rounds)])[:n]


def _take(ds: ImageSet, n: int | None, split: str, what: str) -> tuple[ImageSet, str]:
    """All of ``ds`` (n=None) or the first ``n`` of a fixed, seed-independent shuffle, in base order."""
    if n is None:
        return ds, "all"
    if n > len(ds):
        raise BadInputError(f"n={n} is more than the {len(ds)} images of {what} ({split}); choose n <= {len(ds)}")
    idx = np.sort(np.random.default_rng([0, SPLITS.index(split), _SUBSET]).permutation(len(ds))[:n])
    return ds.subset(torch.from_numpy(idx)), f"first {n} of a fixed shuffle, in base order"


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0.0, 1.0)


def _load(name: str, split: str, root) -> ImageSet:
    return get_source(name).loader(split=split, root=root)


# --------------------------------------------------------------------------- MNIST base
def _mnist_dirs(root) -> list[Path]:
    if root is not None:
        return [Path(root) / "mnist", Path(root) / "MNIST"]  # the mnist loader also looks in DIR/MNIST/, DIR/raw/
    env = os.environ.get("SIMPLEBITS_DATA")
    return [Path(env) / "mnist"] if env else []


def mnist_base(*, split: str = "train", root: str | os.PathLike | None = None) -> ImageSet:
    """The MNIST split the digit-based distractor sets are built on.

    Parameters
    ----------
    split : ``"train"`` or ``"test"``.
    root : the ``--data-root``; full MNIST is read from ``root/mnist/`` (or ``root/MNIST/``),
        else from ``$SIMPLEBITS_DATA/mnist/`` when ``root`` is None. ``root`` itself is not read
        as MNIST (it may hold Fashion-MNIST files of the same names).

    Returns
    -------
    ImageSet
        The full ``mnist`` split when one of those folders exists, else the built-in
        ``mnist-5k`` split (4000/1000). ``meta["mnist_base"]`` names which. A folder that exists
        but lacks the split's files raises :class:`NotFoundError` rather than falling back.
    """
    split = _check_split(split)
    dirs = [d for d in _mnist_dirs(root) if d.is_dir()]
    if not dirs:
        ds = _load("mnist-5k", split, None)
        return ds.with_meta(mnist_base="mnist-5k", name=f"mnist-5k:{split}", split=split)
    errors = []
    for d in dirs:
        try:
            ds = _load("mnist", split, d)
        except NotFoundError as e:
            errors.append(str(e))
            continue
        return ds.with_meta(mnist_base="mnist", name=f"mnist:{split}", split=split)
    raise NotFoundError(f"MNIST folder(s) {', '.join(map(str, dirs))} exist but hold no {split} IDX pair "
                        f"({'; '.join(errors)}); add the files or remove the folder to use mnist-5k")


def clean_mnist(*, split: str = "train", n: int | None = None, root: str | os.PathLike | None = None) -> ImageSet:
    """The clean digits behind ``mnist-noise`` / ``interpolated`` / ``side-by-side``, in their order.

    Image ``i`` here is the digit of image ``i`` of those sets built with the same ``split``,
    ``n`` and ``root`` (any seed), as 1x28x28. Use it for ground truth, e.g. the background mask
    ``clean_mnist(...).images == 0`` of ``mnist-noise``.
    """
    split, n = _check_split(split), _check_n(n)
    base = mnist_base(split=split, root=root)
    ds, how = _take(base, n, split, base.meta["mnist_base"])
    return ds.with_meta(subset=how)


def _composite_meta(kind: str, split: str, n: int, seed: int, *, name: str, flip_ok: bool, **params) -> dict:
    return {
        "name": f"{name}:{split}",
        "split": split,
        "flip_ok": flip_ok,
        "composite": {"kind": kind, "split": split, "n": n, "seed": seed, **params},
    }


# ------------------------------------------------------------------------- side by side
def side_by_side_parts(
    *, split: str = "train", n: int | None = None, seed: int = 0, root: str | os.PathLike | None = None
) -> tuple[ImageSet, torch.Tensor, torch.Tensor]:
    """Build the side-by-side images (paper §3.1) and return their parts for probing.

    For digit ``i`` of :func:`clean_mnist` a Fashion-MNIST image of the same split is drawn
    (seeded, without replacement while the split lasts); both are resized 28x28 -> 32x16
    (bilinear, antialiased, clamped to [0, 1]) and concatenated left/right, the digit on a
    seeded random side (p = 0.5 each).

    Parameters
    ----------
    split : ``"train"`` or ``"test"``.
    n : number of images; None = every digit of the MNIST base split.
    seed : the same (seed, split, n, root) gives identical tensors.
    root : ``--data-root`` holding Fashion-MNIST (and optionally ``mnist/``); see :func:`mnist_base`.

    Returns
    -------
    (ImageSet, LongTensor, BoolTensor)
        float32 (n, 1, 32, 32) images labelled by the digit (classes "0".."9"); the
        Fashion-MNIST label of each image (n,); whether the digit is the right half (n,).
    """
    split, n, seed = _check_split(split), _check_n(n), _check_seed(seed)
    digits = clean_mnist(split=split, n=n, root=root)
    fashion = _load("fashion-mnist", split, root)
    m = len(digits)
    pick = torch.from_numpy(_draw_pool(_rng(seed, split, _PAIR), len(fashion), m))
    on_right = torch.from_numpy(_rng(seed, split, _SIDE).random(m) < 0.5)

    d = _resize(digits.images, _HALF)  # (m, 1, 32, 16)
    f = _resize(fashion.images[pick], _HALF)
    r = on_right.view(-1, 1, 1, 1)
    x = torch.cat([torch.where(r, f, d), torch.where(r, d, f)], dim=3).contiguous()  # (m, 1, 32, 32)

    meta = _composite_meta(
        "side-by-side", split, m, seed, name="side-by-side", flip_ok=False,
        digits=digits.meta["mnist_base"], fashion="fashion-mnist", fashion_found_at=fashion.meta.get("found_at"),
        digit_subset=digits.meta["subset"], half_size=list(_HALF), resize="bilinear, antialias, clamp [0, 1]",
        pairing="seeded draw without replacement", fashion_reused=m > len(fashion), side="seeded, p(digit on the right) = 0.5",
    )
    ds = ImageSet.create(x, digits.labels, _DIGITS, meta, allow_empty_class=True, where=f"side-by-side:{split}")
    return ds, fashion.labels[pick].clone(), on_right


def side_by_side(
    *, split: str = "train", n: int | None = None, seed: int = 0, root: str | os.PathLike | None = None,
    label: str = "mnist",
) -> ImageSet:
    """Side-by-side MNIST | Fashion-MNIST images, 1x32x32 (paper §3.1); see :func:`side_by_side_parts`.

    Parameters
    ----------
    label : ``"mnist"`` (classes "0".."9") or ``"fashion"`` (Fashion-MNIST class names). The
        images are identical for both; only labels and classes differ.
    """
    label = _check_name("side-by-side label", label, SIDE_LABELS)
    ds, fashion_labels, _ = side_by_side_parts(split=split, n=n, seed=seed, root=root)
    if label == "mnist":
        return ds
    from .sources import FASHION_MNIST_CLASSES

    meta = {**ds.meta, "name": f"side-by-side-fashion:{ds.meta['split']}",
            "composite": {**ds.meta["composite"], "label": "fashion"}}
    return ImageSet(ds.images, fashion_labels, FASHION_MNIST_CLASSES, meta)


# --------------------------------------------------------------------------- MNIST noise
def mnist_noise(
    *, split: str = "train", n: int | None = None, seed: int = 0, amplitude: float = 1.0,
    root: str | os.PathLike | None = None,
) -> ImageSet:
    """MNIST with uniform noise: ``x = clamp(digit + amplitude * u, 0, 1)``, ``u ~ U(0, 1)`` per pixel.

    Parameters
    ----------
    split, n, root : as :func:`clean_mnist`; image ``i`` is the noisy version of its image ``i``.
    seed : seeds the noise (with the split).
    amplitude : noise scale in (0, 1]; on the background the noise has std ``amplitude / sqrt(12)``.

    Returns
    -------
    ImageSet
        float32 (n, 1, 28, 28), labels = digit, classes "0".."9".
    """
    split, n, seed = _check_split(split), _check_n(n), _check_seed(seed)
    amplitude = _check_unit("amplitude", amplitude, closed_right=True)
    digits = clean_mnist(split=split, n=n, root=root)
    u = torch.from_numpy(_rng(seed, split, _NOISE).random(tuple(digits.images.shape), dtype=np.float32))
    x = (digits.images + amplitude * u).clamp_(0.0, 1.0)
    meta = _composite_meta("mnist-noise", split, len(digits), seed, name="mnist-noise", flip_ok=False,
                           digits=digits.meta["mnist_base"], digit_subset=digits.meta["subset"],
                           amplitude=amplitude, noise="uniform [0, amplitude) per pixel, then clamp [0, 1]")
    return ImageSet.create(x, digits.labels, _DIGITS, meta, allow_empty_class=True, where=f"mnist-noise:{split}")


# -------------------------------------------------------------------------- interpolated
def interpolated(
    *, split: str = "train", n: int | None = None, seed: int = 0, alpha: float = 0.5, natural: str = "photos",
    root: str | os.PathLike | None = None,
) -> ImageSet:
    """MNIST blended with natural images: ``x = alpha * digit + (1 - alpha) * natural`` (paper §3.1).

    The digit is zero-padded 28x28 -> 32x32 (2 px each side).

    Parameters
    ----------
    split, n, root : as :func:`clean_mnist` (image ``i`` holds its digit ``i``); ``root`` also
        locates CIFAR-10.
    seed : seeds the choice of natural images (with the split).
    alpha : weight of the digit, in (0, 1).
    natural : ``"photos"``: built-in gray photo patches (``photo-patches-gray``, 1x32x32);
        ``"cifar10"``: CIFAR-10 images of the split (3x32x32, the digit repeated to RGB), drawn
        without replacement while the split lasts.

    Returns
    -------
    ImageSet
        float32 (n, 1 or 3, 32, 32), labels = digit, classes "0".."9".
    """
    split, n, seed = _check_split(split), _check_n(n), _check_seed(seed)
    alpha = _check_unit("alpha", alpha, closed_right=False)
    natural = _check_name("natural image source", natural, NATURALS)
    digits = clean_mnist(split=split, n=n, root=root)
    m = len(digits)
    d = pad_to(digits.images, (32, 32))
    if natural == "photos":
        from .photos import photo_patches

        nat = photo_patches(split=split, n=m, channels=1, seed=seed)  # already in a seeded random order
        nat_x, nat_name, how = nat.images, "photo-patches-gray", "photo_patches(split, n, channels=1, seed)"
    else:
        nat = _load("cifar10", split, root)
        pick = torch.from_numpy(_draw_pool(_rng(seed, split, _PAIR), len(nat), m))
        nat_x, nat_name, how = nat.images[pick], "cifar10", "seeded draw without replacement"
        d = d.repeat(1, 3, 1, 1)
    x = (alpha * d + (1.0 - alpha) * nat_x).clamp_(0.0, 1.0)
    name = "interpolated" if natural == "photos" else "interpolated-cifar"
    meta = _composite_meta("interpolated", split, m, seed, name=name, flip_ok=False,
                           digits=digits.meta["mnist_base"], digit_subset=digits.meta["subset"], natural=nat_name,
                           natural_found_at=nat.meta.get("found_at"), natural_draw=how, natural_reused=m > len(nat), alpha=alpha,
                           digit_padding="zero pad 28x28 -> 32x32")
    return ImageSet.create(x, digits.labels, _DIGITS, meta, allow_empty_class=True, where=f"{name}:{split}")


# ------------------------------------------------------------------------------- stripes
def _stripe_pattern(direction: torch.Tensor, phase: torch.Tensor, period: int, h: int, w: int) -> torch.Tensor:
    """(n,) direction (0 horizontal, 1 vertical) and phase -> (n, 1, h, w) square waves in {0, 1}."""
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    t = torch.where(direction.view(-1, 1, 1) == 0, rows, cols)  # horizontal bands vary with the row
    return (((t + phase.view(-1, 1, 1)) % period) < period // 2).float().unsqueeze(1)


def stripes(
    *, split: str = "train", n: int | None = None, seed: int = 0, period: int = 4, base: str = "fashion-mnist",
    root: str | os.PathLike | None = None,
) -> ImageSet:
    """Images overlaid with horizontal or vertical stripes; label = stripe direction (paper §3.1).

    ``x = 0.5 * image + 0.5 * s`` where ``s`` is a square wave of ``period`` pixels
    (``period / 2`` on, ``period / 2`` off) along the rows (horizontal stripes) or the columns
    (vertical stripes), with a seeded random phase per image, equal on every channel.

    Parameters
    ----------
    split : ``"train"`` or ``"test"``.
    n : number of images; None = the whole base split in order, else a seeded choice without
        replacement (kept in base order).
    seed : seeds the choice, the directions and the phases (with the split).
    period : even integer >= 2, at most the image side.
    base : ``"fashion-mnist"`` (1x28x28) or ``"cifar10"`` (3x32x32); read with ``root``.

    Returns
    -------
    ImageSet
        float32 (n, C, H, W), classes ("horizontal", "vertical"), balanced (a seeded permutation
        of n // 2 of each, the odd one out drawn).
    """
    split, n, seed = _check_split(split), _check_n(n), _check_seed(seed)
    if isinstance(period, bool) or not isinstance(period, (int, np.integer)) or period < 2 or period % 2:
        raise BadInputError(f"period must be an even integer >= 2 (pixels per on+off cycle), got {period!r}")
    period = int(period)
    base = _check_name("stripes base", base, STRIPE_BASES)
    src = _load(base, split, root)
    h, w = src.shape[1:]
    if period > min(h, w):
        raise BadInputError(f"period={period} is larger than the {h}x{w} images of {base}; choose period <= {min(h, w)}")
    if n is None:
        idx, how = torch.arange(len(src)), "all, in base order"
    elif n > len(src):
        raise BadInputError(f"n={n} is more than the {len(src)} images of {base} ({split}); choose n <= {len(src)}")
    else:
        idx = torch.from_numpy(np.sort(_rng(seed, split, _SUBSET).choice(len(src), size=n, replace=False)))
        how = "seeded draw without replacement, in base order"
    m = idx.numel()
    rd = _rng(seed, split, _DIRECTION)
    # m // 2 of each direction, the odd one out (odd m) drawn, then shuffled
    direction = rd.permutation(np.concatenate([np.arange(m - m % 2) % 2, rd.integers(0, 2, size=m % 2)]))
    direction = torch.from_numpy(direction.astype(np.int64))
    phase = torch.from_numpy(_rng(seed, split, _PHASE).integers(0, period, size=m))
    s = _stripe_pattern(direction, phase, period, h, w)
    x = (0.5 * src.images[idx] + 0.5 * s).clamp_(0.0, 1.0)  # (m, C, h, w); s broadcasts over channels
    name = "stripes" if base == "fashion-mnist" else "stripes-cifar"
    meta = _composite_meta("stripes", split, m, seed, name=name, flip_ok=True, base=base,
                           base_found_at=src.meta.get("found_at"), base_subset=how, period=period,
                           blend="0.5 * image + 0.5 * stripes", phase="seeded, uniform in 0..period-1",
                           direction="seeded balanced draw")
    return ImageSet.create(x, direction, STRIPE_CLASSES, meta, allow_empty_class=True, where=f"{name}:{split}")


# ---------------------------------------------------------------------------- registry
@register_source("side-by-side",
                 description="MNIST digit | Fashion-MNIST item, each resized to 32x16, random side, 1x32x32; "
                             "label = digit; needs Fashion-MNIST; MNIST from ROOT/mnist or mnist-5k (SimpleBits §3.1)")
def _side_by_side(*, split: str, root=None) -> ImageSet:
    return side_by_side(split=split, root=root, label="mnist")


@register_source("side-by-side-fashion",
                 description="the side-by-side images (same order) labelled by the Fashion-MNIST class "
                             "(SimpleBits §3.1)")
def _side_by_side_fashion(*, split: str, root=None) -> ImageSet:
    return side_by_side(split=split, root=root, label="fashion")


@register_source("mnist-noise", builtin=True,
                 description="MNIST + uniform noise: clamp(digit + U(0,1), 0, 1), 1x28x28; label = digit; "
                             "MNIST from ROOT/mnist or mnist-5k (SimpleBits §3.1)")
def _mnist_noise(*, split: str, root=None) -> ImageSet:
    return mnist_noise(split=split, root=root)


@register_source("interpolated", builtin=True,
                 description="0.5 * MNIST (padded to 32x32) + 0.5 * gray photo patch, 1x32x32; label = digit "
                             "(SimpleBits §3.1)")
def _interpolated(*, split: str, root=None) -> ImageSet:
    return interpolated(split=split, root=root, natural="photos")


@register_source("interpolated-cifar",
                 description="0.5 * MNIST (padded, RGB) + 0.5 * CIFAR-10 image, 3x32x32; label = digit; "
                             "needs CIFAR-10 files (SimpleBits §3.1)")
def _interpolated_cifar(*, split: str, root=None) -> ImageSet:
    return interpolated(split=split, root=root, natural="cifar10")


@register_source("stripes",
                 description="0.5 * Fashion-MNIST + 0.5 * horizontal or vertical stripes (period 4), 1x28x28; "
                             "label = stripe direction (SimpleBits §3.1)")
def _stripes(*, split: str, root=None) -> ImageSet:
    return stripes(split=split, root=root, base="fashion-mnist")


@register_source("stripes-cifar",
                 description="0.5 * CIFAR-10 + 0.5 * horizontal or vertical stripes (period 4), 3x32x32; "
                             "label = stripe direction; needs CIFAR-10 files (SimpleBits §3.1)")
def _stripes_cifar(*, split: str, root=None) -> ImageSet:
    return stripes(split=split, root=root, base="cifar10")
