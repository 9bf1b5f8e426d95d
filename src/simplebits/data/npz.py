"""``.npz`` files with arrays ``images`` and ``labels`` (and optionally ``classes``).

``images``: (N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3}; uint8 0-255 (other
integer types with values in 0-255 are taken as 8-bit) or float 0-1. A 4-D array is read as
channels-last when its last dimension is 1 or 3 and its second is not. ``labels``: N integers.
``classes``: N_classes strings. Read with ``allow_pickle=False``: never unpickles objects.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import BadInputError, CorruptFileError, NotFoundError
from ..io import atomic_path
from .imageset import ImageSet

__all__ = ["read_npz", "load_npz", "save_npz"]


def _get(z: Any, key: str, p: Path) -> np.ndarray:
    try:
        return z[key]
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise BadInputError(
                f"{p}: array {key!r} holds Python objects, which simplebits does not unpickle; "
                "save numbers, and class names as a string array (numpy.array(names, dtype=str))"
            ) from None
        raise CorruptFileError(f"{p}: array {key!r} is corrupt ({e})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise CorruptFileError(f"{p}: array {key!r} is truncated or corrupt ({e}); re-create the file") from None


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
    """Read (images in N,[C,]H,W layout, labels, class names or None) from an npz file."""
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"npz file not found: {p}")
    if not p.is_file():
        raise BadInputError(f"{p} is not a file; expected an .npz holding 'images' and 'labels'")
    try:
        z = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        why = "not a NumPy .npz/.npy file" if "pickle" in str(e) else str(e)
        raise CorruptFileError(f"{p}: not a readable .npz file, truncated or corrupt ({why})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise BadInputError(f"{p}: holds a single array (.npy); save an .npz with arrays 'images' and 'labels'")
    with z:
        keys = list(z.files)
        missing = [k for k in ("images", "labels") if k not in keys]
        if missing:
            raise BadInputError(
                f"{p}: missing array(s) {', '.join(missing)}; found: {', '.join(keys) or 'none'} "
                "(expected 'images', 'labels' and optionally 'classes')"
            )
        images = _get(z, "images", p)
        labels = _get(z, "labels", p)
        classes = None
        if "classes" in keys:
            c = _get(z, "classes", p)
            if c.dtype.kind not in "US" or c.ndim != 1:
                raise BadInputError(f"{p}: 'classes' must be a 1-D array of strings, got {c.dtype} {c.shape}")
            classes = [x.decode() if isinstance(x, bytes) else str(x) for x in c.tolist()]
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
