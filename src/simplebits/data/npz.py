"""``.npz`` files with arrays ``images`` and ``labels`` (and optionally ``classes``).

``images``: (N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3}; uint8 0-255 (other
integer types with values in 0-255 are taken as 8-bit) or float 0-1. A 4-D array is read as
channels-last when its last dimension is 1 or 3 and its second is not. ``labels``: N integers.
``classes``: N_classes strings. Read member by member with each ``.npy`` header checked against
its zip entry and the input cap before anything is allocated; never unpickles objects.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import BadInputError, CorruptFileError, NotFoundError, check_expansion, check_input_size, reading
from ..io import atomic_path
from .imageset import ImageSet

__all__ = ["read_npz", "load_npz", "save_npz"]


_CHUNK = 16 << 20
#: dtype kinds each array may hold: numbers for images and labels, strings for class names.
_KINDS = {"images": "biuf", "labels": "biuf", "classes": "US"}
_WHAT = {"images": "numbers (uint8 0-255 or float 0-1)", "labels": "integers", "classes": "strings"}


def _npy_header(fh, p: Path, key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, Fortran order, dtype) from the .npy header at the start of ``fh``, checked."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(fh)
    else:
        raise CorruptFileError(f"{p}: array {key!r} uses .npy format version {version}; re-save it with numpy.savez")
    if dtype.hasobject:
        raise BadInputError(
            f"{p}: array {key!r} holds Python objects, which simplebits does not unpickle; "
            "save numbers, and class names as a string array (numpy.array(names, dtype=str))"
        )
    if dtype.kind not in _KINDS.get(key, "biufUS") or dtype.itemsize == 0 or dtype.fields is not None:
        raise BadInputError(f"{p}: array {key!r} has dtype {dtype}; it must hold {_WHAT.get(key, 'numbers')}")
    if any(d < 0 for d in shape):
        raise CorruptFileError(f"{p}: array {key!r} declares a negative dimension {shape}; the file is corrupt")
    return tuple(shape), bool(fortran), dtype


def _read_member(zf: zipfile.ZipFile, key: str, p: Path) -> np.ndarray:
    """One array, its declared sizes checked against the zip entry and the input cap before reading."""
    info = zf.getinfo(f"{key}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        check_expansion(info.file_size, info.compress_size, p, f"array {key!r}")
    check_input_size(info.file_size, p, f"array {key!r}")
    with zf.open(info) as fh:
        shape, fortran, dtype = _npy_header(fh, p, key)
        nbytes = math.prod(shape) * dtype.itemsize
        if fh.tell() + nbytes != info.file_size:
            raise CorruptFileError(
                f"{p}: array {key!r} declares shape {shape} of {dtype} ({nbytes:,} bytes) but the file holds "
                f"{info.file_size - fh.tell():,} bytes for it; the file is corrupt, re-create it"
            )
        buf = bytearray(nbytes)
        view, got = memoryview(buf), 0
        while got < nbytes:
            k = fh.readinto(view[got : got + _CHUNK])
            if not k:
                raise CorruptFileError(f"{p}: array {key!r} is truncated ({got:,} of {nbytes:,} bytes); re-create the file")
            got += k
    arr = np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return arr.astype(dtype.newbyteorder("="), copy=False)


def _open_npz(p: Path) -> zipfile.ZipFile:
    with open(p, "rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise BadInputError(f"{p}: holds a single array (.npy); save an .npz with arrays 'images' and 'labels'")
    try:
        return zipfile.ZipFile(p)
    except zipfile.BadZipFile as e:
        raise CorruptFileError(f"{p}: not a readable .npz file, truncated or corrupt ({e})") from None


def _layout(images: np.ndarray, p: Path) -> np.ndarray:
    if images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = np.transpose(images, (0, 3, 1, 2))
    if images.ndim not in (3, 4):
        raise BadInputError(f"{p}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W); got shape {images.shape}")
    if images.dtype.kind in "iu" and images.dtype != np.uint8 and images.size:
        lo, hi = int(images.min()), int(images.max())
        if lo < 0 or hi > 255:
            raise BadInputError(
                f"{p}: integer images must hold 8-bit values 0..255, found range [{lo}, {hi}]; "
                "scale them to uint8 or to floats in [0, 1]"
            )
        images = images.astype(np.uint8)
    return np.ascontiguousarray(images)


def read_npz(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Read (images in N,[C,]H,W layout, labels, class names or None) from an npz file.

    Each array's .npy header is checked against its zip entry and the input cap before the array
    is read; object, structured and non-numeric arrays are refused (nothing is unpickled).
    """
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"npz file not found: {p}")
    if not p.is_file():
        raise BadInputError(f"{p} is not a file; expected an .npz holding 'images' and 'labels'")
    with reading(p, ".npz file"), _open_npz(p) as zf:
        keys = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
        missing = [k for k in ("images", "labels") if k not in keys]
        if missing:
            raise BadInputError(
                f"{p}: missing array(s) {', '.join(missing)}; found: {', '.join(keys[:20]) or 'none'} "
                "(expected 'images', 'labels' and optionally 'classes')"
            )
        total = sum(zf.getinfo(f"{k}.npy").file_size for k in ("images", "labels", "classes") if k in keys)
        check_input_size(total, p, "arrays")
        images = _read_member(zf, "images", p)
        labels = _read_member(zf, "labels", p)
        classes = None
        if "classes" in keys:
            c = _read_member(zf, "classes", p)
            if c.ndim != 1:
                raise BadInputError(f"{p}: 'classes' must be a 1-D array of strings, got {c.dtype} {c.shape}")
            classes = [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in c.tolist()]
        return _layout(images, p), labels, classes


def load_npz(path: str | os.PathLike) -> ImageSet:
    """Load an npz file as a validated :class:`ImageSet` (errors name the file and the problem)."""
    images, labels, classes = read_npz(path)
    return ImageSet.create(images, labels, classes, meta={"found_at": str(path)}, where=str(path))


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def save_npz(path: str | os.PathLike, images: Any, labels: Any, classes: Sequence[str] | None = None) -> None:
    """Write ``images``/``labels`` (and ``classes`` as a string array) to a compressed npz, atomically."""
    arrays = {"images": _np(images), "labels": _np(labels)}
    if classes is not None:
        arrays["classes"] = np.array([str(c) for c in classes], dtype=str)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
