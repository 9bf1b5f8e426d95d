"""SVHN cropped digits (``train_32x32.mat`` / ``test_32x32.mat``, MATLAB v5 files).

``X`` is H x W x C x N uint8, ``y`` is N x 1 with labels 1..10 where 10 means the digit 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import BadInputError, CorruptFileError, MismatchError, NotFoundError

__all__ = ["read_svhn_mat", "write_svhn_mat"]


def read_svhn_mat(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN ``.mat`` file: returns (uint8 (N, 3, 32, 32), int64 digits 0..9 (N,))."""
    import scipy.io

    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"SVHN file not found: {p}")
    try:
        m = scipy.io.loadmat(str(p), variable_names=["X", "y"])
    except NotImplementedError as e:  # MATLAB v7.3 = HDF5
        raise CorruptFileError(f"{p}: MATLAB v7.3 (HDF5) files are not supported ({e}); re-save with -v7") from None
    except Exception as e:  # noqa: BLE001 - scipy raises ValueError/TypeError/MatReadError/OSError...
        raise CorruptFileError(f"{p}: not a readable .mat file, truncated or corrupt ({type(e).__name__}: {e})") from None
    for k in ("X", "y"):
        if k not in m:
            raise CorruptFileError(f"{p}: no {k!r} variable; an SVHN file holds X (HxWxCxN) and y (Nx1)")
    x, y = m["X"], np.asarray(m["y"])
    if x.ndim != 4 or x.shape[2] not in (1, 3):
        raise CorruptFileError(f"{p}: X must have shape (H, W, C, N), got {x.shape}")
    if x.dtype != np.uint8:
        raise CorruptFileError(f"{p}: X must be uint8, got {x.dtype}")
    y = y.reshape(-1)
    if y.shape[0] != x.shape[3]:
        raise MismatchError(f"{p}: X holds {x.shape[3]} images but y holds {y.shape[0]} labels")
    if y.size and (y.dtype.kind not in "iuf" or not np.all(y == np.round(y)) or y.min() < 0 or y.max() > 10):
        raise CorruptFileError(f"{p}: y must hold integer labels 1..10 (10 = digit 0)")
    labels = y.astype(np.int64) % 10
    images = np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)))
    return images, labels


def write_svhn_mat(path: str | os.PathLike, images, digits) -> None:
    """Write uint8 (N, C, H, W) images and digits 0..9 in the SVHN layout (digit 0 stored as 10)."""
    import scipy.io

    a = np.asarray(images)
    if a.dtype != np.uint8 or a.ndim != 4:
        raise BadInputError(f"write_svhn_mat: images must be uint8 (N, C, H, W), got {a.dtype} {a.shape}")
    d = np.asarray(digits).astype(np.int64).reshape(-1)
    y = np.where(d == 0, 10, d).astype(np.uint8).reshape(-1, 1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"X": np.transpose(a, (2, 3, 1, 0)), "y": y})
