"""A folder of class subfolders of images (custom / medical data), read with Pillow.

Layouts::

    DIR/<class>/<image>                   the folder is the data (split "train")
    DIR/train/<class>/<image>, DIR/test/<class>/<image>     the split picks the subfolder

Class names are the sorted subfolder names. Hidden files (``.xyz``) are skipped; any other
file that is not a readable image is an error naming it.
"""

from __future__ import annotations

import io
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from ..errors import BadInputError, CorruptFileError, NotFoundError, check_input_size, max_image_pixels, reading
from .imageset import ImageSet

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder", "load_image_files", "list_image_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_JUNK = {"thumbs.db", "desktop.ini"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_BAND = 256  # rows converted to float at a time


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


def _pixel_limit(path: Path, size: tuple[int, int] | None, cap: int) -> CorruptFileError:
    said = f"declares {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels" if size else "is a decompression bomb"
    return CorruptFileError(
        f"{path}: image {said}, more than the {cap:,}-pixel limit (a corrupt header, or a huge image: "
        "shrink it, or set SIMPLEBITS_MAX_IMAGE_PIXELS to allow it)"
    )


@contextmanager
def checked_image(path: Path):
    """Open ``path`` lazily with Pillow (header only) and refuse it, before any pixel is decoded,
    when its declared size is above :func:`max_image_pixels`; yields the open image. Every failure
    while the image is in use becomes one error naming the file."""
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise BadInputError(
            f"{path} is not an image file (supported: {', '.join(e[1:] for e in IMAGE_EXTENSIONS)}); "
            "remove it or move it out of the data folder"
        )
    cap = max_image_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and 2 * Image.MAX_IMAGE_PIXELS < cap:
        Image.MAX_IMAGE_PIXELS = cap  # SIMPLEBITS_MAX_IMAGE_PIXELS was raised: let Pillow follow
    with reading(path, "image"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap decides
                # from memory: a chunk length a damaged header declares (a 2.5 GB PNG IDAT in a 1 KB
                # file) then reads what the file holds instead of allocating what it claims
                check_input_size(path.stat().st_size, path, "image file")
                src = Image.open(io.BytesIO(path.read_bytes()))
        except UnidentifiedImageError:
            raise BadInputError(f"{path} is not an image Pillow can read; remove it from the data folder") from None
        except Image.DecompressionBombError:
            raise _pixel_limit(path, None, cap) from None
        with src:
            w, h = src.size
            if w * h > cap:
                raise _pixel_limit(path, (w, h), cap)
            if w < 1 or h < 1:
                raise CorruptFileError(f"{path}: image declares size {w}x{h}; the file is corrupt")
            yield src


def _orientation(src) -> int:
    """EXIF orientation (1 = upright) from the header; a PNG is not decoded to find it."""
    from PIL import Image

    if src.format == "PNG":  # Pillow's PNG getexif() decodes the image; an eXIf chunk before IDAT is in info
        raw = src.info.get("exif")
        if not raw:
            return 1
        exif = Image.Exif()
        exif.load(raw)
        return exif.get(0x0112, 1)
    return src.getexif().get(0x0112, 1)


def _decoded(src):
    """The decoded image, EXIF-rotated (``src`` itself when upright: use it inside the ``with``);
    a palette image as RGB, or L when its colours are all gray."""
    from PIL import ImageOps

    src.load()
    im = ImageOps.exif_transpose(src) if _orientation(src) != 1 else src
    if im.mode in ("P", "PA"):
        im = im.convert("RGB")
        a = np.asarray(im)
        if np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]):
            im = im.convert("L")
    return im


_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def _transparent(src) -> bool:
    """Whether an image shows any transparency (an alpha band or a tRNS colour below fully opaque);
    simplebits reads colour only, so such pixels keep whatever colour the file stores under them."""
    if src.mode in _ALPHA_MODES:
        return src.getchannel("A").getextrema()[0] < 255
    if "transparency" in src.info:
        return src.convert("RGBA").getchannel("A").getextrema()[0] < 255
    return False


def _alpha_note(paths: Sequence[Path], transparent: list[int]) -> str:
    n, k = len(paths), len(transparent)
    which = "the image" if n == 1 else f"{k} of {n} images"
    return (f"{which} ({paths[transparent[0]]}{', ...' if k > 1 else ''}) "
            f"{'has' if k == 1 else 'have'} transparent pixels; the alpha channel is dropped (colour is read as stored, "
            "not composited onto a background): flatten them first if the background matters")


def _probe(path: Path) -> tuple[tuple[int, int], bool]:
    """((width, height) after EXIF rotation, is gray) from the header; palette images are decoded."""
    with checked_image(path) as src:
        if src.mode in ("P", "PA"):
            im = _decoded(src)
            return im.size, im.mode in _GRAY_MODES
        w, h = src.size
        turned = _orientation(src) in (5, 6, 7, 8)  # EXIF orientations that swap the sides
        return ((h, w) if turned else (w, h)), src.mode in _GRAY_MODES


def _fill(out: np.ndarray, im, channels: int, size: tuple[int, int] | None) -> None:
    """Write PIL image ``im`` into ``out`` float32 (C, H, W) in [0, 1] (values outside stay for
    validation to report), one image's temporaries at a time."""
    from PIL import Image

    mode = im.mode
    if mode in _GRAY_MODES - {"1", "L", "LA"}:  # high bit depth gray
        a = np.asarray(im, dtype=np.float32)
        if mode != "F":
            a = a / 65535.0
        gray = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))  # mode "F"
        if size is not None:
            gray = gray.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        out[:] = np.asarray(gray, dtype=np.float32)[None]
        return
    want = "L" if channels == 1 else "RGB"
    if im.mode != want:
        im = im.convert(want)
    if size is not None:
        im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    w, h = im.size
    for y in range(0, h, _BAND):  # a band of rows at a time: no full-size uint8 copy beside ``out``
        a = np.asarray(im.crop((0, y, w, min(h, y + _BAND))))
        band = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        np.divide(band, np.float32(255.0), out=out[:, y : y + band.shape[1]], dtype=np.float32)


def _differ(first: Path, size0: tuple[int, int], other: Path, size1: tuple[int, int]) -> BadInputError:
    (w0, h0), (w1, h1) = size0, size1
    return BadInputError(
        f"images differ in size: {first} is {h0}x{w0} (HxW) but {other} is {h1}x{w1}; "
        "pass a size to resize them all (CLI: --resize H[xW])"
    )


def _read_images(paths: Sequence[Path], channels: int | None, size) -> torch.Tensor:
    """Headers first (size limit, equal sizes, channels), then one array for all, filled one
    decoded image at a time: float32 (N, C, H, W) in [0, 1]."""
    if channels is not None and channels not in (1, 3):
        raise BadInputError(f"channels must be 1 or 3 (or None for auto), got {channels!r}")
    tsize = _norm_size(size)
    probes = [_probe(p) for p in paths]
    if channels is None:
        channels = 1 if all(gray for _, gray in probes) else 3
    if tsize is None:
        first = probes[0][0]
        for p, (wh, _) in zip(paths, probes):
            if wh != first:
                raise _differ(paths[0], first, p, wh)
        tsize = (first[1], first[0])
        resize = None
    else:
        resize = tsize
        changed = [i for i, (wh, _) in enumerate(probes) if wh != (tsize[1], tsize[0])]
        if changed:  # every figure made of them is of the resized images: say so once per load
            n, k, (w, h) = len(paths), len(changed), probes[changed[0]][0]
            warnings.warn(f"{'the image' if n == 1 else f'{k} of {n} images'} ({paths[changed[0]]}: {h}x{w}"
                          f"{', ...' if k > 1 else ''}) {'was' if k == 1 else 'were'} resized to {tsize[0]}x{tsize[1]} "
                          "(bilinear); every figure is of the resized images, not of the files as stored",
                          UserWarning, stacklevel=3)
    out = np.empty((len(paths), channels, *tsize), dtype=np.float32)
    transparent: list[int] = []
    for i, p in enumerate(paths):
        with checked_image(p) as src:
            src.load()
            if _transparent(src):
                transparent.append(i)
            im = _decoded(src)
            if resize is None and im.size != (tsize[1], tsize[0]):
                raise _differ(paths[0], (tsize[1], tsize[0]), p, im.size)
            _fill(out[i], im, channels, resize)
            del im
    if transparent:
        warnings.warn(_alpha_note(paths, transparent), UserWarning, stacklevel=3)
    return torch.from_numpy(out)


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
    return _read_images(ps, channels, size)


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
            f"{root} has no {split}/ subfolder: it holds a single set (class subfolders), so it has no {split} "
            f"split; arrange it as {root}/train/<class>/ and {root}/test/<class>/, or name a separate folder "
            "as the test set where the command takes one (--test)"
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
    images = _read_images(files, channels, size)
    _, use = _pick_root(Path(path), split)
    return ImageSet.create(images, labels, classes, meta={"found_at": str(base), "split": use}, where=str(base))
