"""A folder of class subfolders of images (custom / medical data), read with Pillow.

Layouts::

    DIR/<class>/<image>                   the folder is the data (split "train")
    DIR/train/<class>/<image>, DIR/test/<class>/<image>     the split picks the subfolder

Class names are the sorted subfolder names. Hidden files (``.xyz``) are skipped; any other
file that is not a readable image is an error naming it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from ..errors import BadInputError, CorruptFileError, NotFoundError
from .imageset import ImageSet

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder", "load_image_files", "list_image_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_JUNK = {"thumbs.db", "desktop.ini"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _visible(p: Path) -> bool:
    return not p.name.startswith(".") and p.name.lower() not in _JUNK


def _norm_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    try:
        h, w = (int(s) for s in size)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise BadInputError(f"size must be an int or (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise BadInputError(f"size must be positive, got {(h, w)}")
    return h, w


def _open(path: Path):
    from PIL import Image, ImageOps, UnidentifiedImageError

    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise BadInputError(
            f"{path} is not an image file (supported: {', '.join(e[1:] for e in IMAGE_EXTENSIONS)}); "
            "remove it or move it out of the data folder"
        )
    try:
        with Image.open(path) as src:
            src.load()
            im = ImageOps.exif_transpose(src) or src.copy()
        if im.mode in ("P", "PA"):  # palette: gray if the used colours are all gray
            im = im.convert("RGB")
            a = np.asarray(im)
            if np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]):
                im = im.convert("L")
        return im
    except UnidentifiedImageError:
        raise BadInputError(f"{path} is not an image Pillow can read; remove it from the data folder") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated / corrupt image data
        raise CorruptFileError(f"{path}: image is truncated or corrupt ({e})") from None


def _to_array(im, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """PIL image -> float32 (C, H, W) in [0, 1] (values outside stay for validation to report)."""
    from PIL import Image

    mode = im.mode
    if mode in _GRAY_MODES - {"1", "L", "LA"}:  # high bit depth gray
        a = np.asarray(im, dtype=np.float32)
        if mode != "F":
            a = a / 65535.0
        gray = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))  # mode "F"
        if size is not None:
            gray = gray.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        g = np.asarray(gray, dtype=np.float32)
        return (g[None] if channels == 1 else np.repeat(g[None], 3, axis=0)).copy()
    im = im.convert("L" if channels == 1 else "RGB")
    if size is not None:
        im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    a = np.asarray(im, dtype=np.float32) / 255.0
    return a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1))


def _stack(paths: Sequence[Path], images: list, channels: int | None, size) -> torch.Tensor:
    if channels is None:
        channels = 1 if all(im.mode in _GRAY_MODES for im in images) else 3
    if channels not in (1, 3):
        raise BadInputError(f"channels must be 1 or 3 (or None for auto), got {channels!r}")
    tsize = _norm_size(size)
    if tsize is None:
        first = images[0].size
        for p, im in zip(paths, images):
            if im.size != first:
                w0, h0 = first
                w1, h1 = im.size
                raise BadInputError(
                    f"images differ in size: {paths[0]} is {h0}x{w0} (HxW) but {p} is {h1}x{w1}; "
                    "pass a size to resize them all (CLI: --resize H[xW])"
                )
    arrs = [_to_array(im, channels, tsize) for im in images]
    return torch.from_numpy(np.stack(arrs))


def load_image_files(
    paths: Iterable[str | os.PathLike], *, channels: int | None = None, size: int | Sequence[int] | None = None
) -> torch.Tensor:
    """Read image files into a float32 tensor (N, C, H, W) in [0, 1].

    ``channels``: 1, 3 or None (1 if every image is grayscale, else 3). ``size``: None (all
    images must share one size) or H / (H, W) to resize with bilinear filtering.
    """
    ps = [Path(p) for p in paths]
    if not ps:
        raise BadInputError("no image files given")
    for p in ps:
        if not p.exists():
            raise NotFoundError(f"image file not found: {p}")
        if not p.is_file():
            raise BadInputError(f"{p} is not a file")
    return _stack(ps, [_open(p) for p in ps], channels, size)


def _pick_root(root: Path, split: str | None) -> tuple[Path, str]:
    if not root.exists():
        raise NotFoundError(f"image folder not found: {root}")
    if not root.is_dir():
        raise BadInputError(f"{root} is not a folder; expected a folder of class subfolders of images")
    if (root / "train").is_dir() or (root / "test").is_dir():
        use = split or "train"
        if not (root / use).is_dir():
            have = sorted(d.name for d in root.iterdir() if d.is_dir() and _visible(d))
            raise BadInputError(f"{root} has no {use}/ subfolder (found: {', '.join(have)})")
        return root / use, use
    if split not in (None, "train"):
        raise BadInputError(
            f"{root} has no {split}/ subfolder: it holds a single set (class subfolders); "
            f"load it as split 'train', or arrange it as {root}/train/<class>/ and {root}/test/<class>/"
        )
    return root, "train"


def list_image_folder(path: str | os.PathLike, *, split: str | None = None) -> tuple[list[Path], list[int], list[str], Path]:
    """Find (files, labels, class names, folder used) without reading the images."""
    base, _ = _pick_root(Path(path), split)
    class_dirs = sorted((d for d in base.iterdir() if d.is_dir() and _visible(d)), key=lambda d: d.name)
    files: list[Path] = []
    labels: list[int] = []
    empty = []
    for c, d in enumerate(class_dirs):
        found = sorted(
            f for f in d.rglob("*")
            if f.is_file() and all(_visible(Path(part)) for part in f.relative_to(d).parts)
        )
        if not found:
            empty.append(d.name)
        files += found
        labels += [c] * len(found)
    if not files:
        loose = [f.name for f in base.iterdir() if f.is_file() and _visible(f)][:3]
        hint = f" (files directly in it, e.g. {', '.join(loose)}, need class subfolders)" if loose else ""
        raise BadInputError(f"no images found in {base}{hint}; expected {base}/<class>/<image>.png")
    if empty:
        raise BadInputError(f"class folder(s) {', '.join(map(repr, empty))} in {base} hold no images")
    return files, labels, [d.name for d in class_dirs], base


def load_image_folder(
    path: str | os.PathLike,
    *,
    split: str | None = None,
    channels: int | None = None,
    size: int | Sequence[int] | None = None,
) -> ImageSet:
    """Load a folder of class subfolders as an :class:`ImageSet` (see module docstring)."""
    files, labels, classes, base = list_image_folder(path, split=split)
    images = _stack(files, [_open(f) for f in files], channels, size)
    _, use = _pick_root(Path(path), split)
    return ImageSet.create(images, labels, classes, meta={"found_at": str(base), "split": use}, where=str(base))
