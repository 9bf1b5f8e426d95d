"""USPS handwritten digits in the LIBSVM text format (``usps.bz2`` train 7291, ``usps.t.bz2`` test 2007).

Each line is ``LABEL 1:v1 2:v2 ... 256:v256``: LABEL 1..10 is digit LABEL-1, values in [-1, 1]
are a 16 x 16 gray image in row-major order, mapped to [0, 1] as (v + 1) / 2. Indices left out
(sparse lines) are 0, i.e. mid-gray. Plain and bz2/gzip-compressed files are read.
"""

from __future__ import annotations

import bz2
import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import BadInputError, CorruptFileError, NotFoundError

__all__ = ["read_usps", "write_usps"]

_SIDE = 16
_NFEAT = _SIDE * _SIDE


def _read_text(p: Path) -> str:
    with open(p, "rb") as fh:
        magic = fh.read(3)
    opener = bz2.open if magic == b"BZh" else gzip.open if magic[:2] == b"\x1f\x8b" else open
    try:
        with opener(p, "rb") as fh:
            raw = fh.read()
        return raw.decode("ascii")
    except (EOFError, OSError, zlib.error, ValueError) as e:
        raise CorruptFileError(f"{p}: cannot read USPS file, truncated or corrupt ({type(e).__name__}: {e})") from None


def _parse_sparse(lines: list[str], p: Path) -> tuple[np.ndarray, np.ndarray]:
    x = np.zeros((len(lines), _NFEAT), dtype=np.float64)
    y = np.zeros(len(lines), dtype=np.float64)
    for i, line in enumerate(lines):
        parts = line.split()
        try:
            y[i] = float(parts[0])
            for tok in parts[1:]:
                k, v = tok.split(":")
                j = int(k) - 1
                if not 0 <= j < _NFEAT:
                    raise ValueError(f"feature index {k} outside 1..{_NFEAT}")
                x[i, j] = float(v)
        except (ValueError, IndexError) as e:
            raise CorruptFileError(f"{p}: line {i + 1} is not 'label idx:value ...' ({e})") from None
    return x, y


def read_usps(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a USPS LIBSVM file: returns (float32 (N, 16, 16) in [0, 1], int64 digits (N,))."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"USPS file not found: {p}")
    lines = [ln for ln in _read_text(p).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise CorruptFileError(f"{p}: empty USPS file")
    x = y = None
    try:  # fast path: every line dense "label 1:v ... 256:v"
        flat = np.array(" ".join(lines).replace(":", " ").split(), dtype=np.float64)
        if flat.size == len(lines) * (1 + 2 * _NFEAT):
            rows = flat.reshape(len(lines), 1 + 2 * _NFEAT)
            if np.array_equal(rows[:, 1::2], np.broadcast_to(np.arange(1, _NFEAT + 1), (len(lines), _NFEAT))):
                x, y = rows[:, 2::2], rows[:, 0]
    except ValueError:
        pass
    if x is None:
        x, y = _parse_sparse(lines, p)
    if not np.all(np.isfinite(x)) or x.min() < -1 - 1e-6 or x.max() > 1 + 1e-6:
        raise CorruptFileError(f"{p}: USPS values must lie in [-1, 1], found [{np.nanmin(x):.4g}, {np.nanmax(x):.4g}]")
    if not np.all(y == np.round(y)) or y.min() < 1 or y.max() > 10:
        raise CorruptFileError(f"{p}: USPS labels must be integers 1..10 (digit + 1), found {y.min():g}..{y.max():g}")
    images = ((np.clip(x, -1.0, 1.0) + 1.0) / 2.0).astype(np.float32).reshape(-1, _SIDE, _SIDE)
    return images, y.astype(np.int64) - 1


def write_usps(path: str | os.PathLike, images, digits) -> None:
    """Write (N, 16, 16) images in [0, 1] and digits 0..9 as a LIBSVM USPS file (bz2 if ``.bz2``)."""
    a = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    if a.shape[1] != _NFEAT or a.min() < 0 or a.max() > 1:
        raise BadInputError("write_usps: images must be (N, 16, 16) floats in [0, 1]")
    d = np.asarray(digits).astype(np.int64).reshape(-1)
    idx = np.arange(1, _NFEAT + 1)
    lines = [f"{int(lab) + 1} " + " ".join(f"{j}:{v:.6g}" for j, v in zip(idx, row * 2 - 1)) for lab, row in zip(d, a)]
    data = ("\n".join(lines) + "\n").encode("ascii")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(bz2.compress(data) if p.name.endswith(".bz2") else data)
