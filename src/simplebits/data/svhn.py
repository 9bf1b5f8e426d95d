"""SVHN cropped digits (``train_32x32.mat`` / ``test_32x32.mat``, MATLAB v5 files).

``X`` is H x W x C x N uint8, ``y`` is N x 1 with labels 1..10 where 10 means the digit 0.

The file is read by a small MATLAB v5 parser of its own, not ``scipy.io.loadmat``: scipy's
reader looks up an element's data type code in a fixed table without checking it, so one
damaged byte (a truncated or corrupted download) crashes the process with a segmentation
fault. Here every tag is checked against the bytes present before it is used: the 128-byte
header, each element's declared size within the file, ``miCOMPRESSED`` elements inflated with
a cap (a declared size above ``SIMPLEBITS_MAX_EXPANSION`` x the compressed size, 100 by default,
is refused before inflating), and ``dims x itemsize`` equal to the data bytes.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import (BadInputError, CorruptFileError, MismatchError, NotFoundError, check_expansion, check_input_size,
                      reading)

__all__ = ["read_svhn_mat", "write_svhn_mat", "read_mat_arrays"]

_HEAD = 4096  # inflated bytes enough to hold a matrix's flags, dims and name
# MATLAB v5 data type codes -> numpy dtype (miINT8 ... miUINT64)
_MI = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_MI_INT8, _MI_INT32, _MI_UINT32, _MI_MATRIX, _MI_COMPRESSED, _MI_UTF8 = 1, 5, 6, 14, 15, 16
_NUMERIC_CLASSES = range(6, 16)  # mxDOUBLE_CLASS ... mxUINT64_CLASS
_CLASS_NAMES = {1: "cell array", 2: "struct", 3: "object", 4: "char array", 5: "sparse matrix"}


def _bad(p: Path, why: str) -> CorruptFileError:
    return CorruptFileError(f"{p}: truncated or corrupt .mat file ({why}); re-download it")


def _tag(buf, pos: int, end: int, order: str, p: Path) -> tuple[int, int, int, int]:
    """(data type, byte count, data start, next element) of the tag at ``pos``, inside ``[pos, end)``."""
    if pos + 8 > end:
        raise _bad(p, f"a data element at byte {pos} is cut off")
    a, b = struct.unpack_from(order + "II", buf, pos)
    if a >> 16:  # small data element: size in the upper 16 bits, data in the tag's last 4 bytes
        if a >> 16 > 4:
            raise _bad(p, f"a small data element at byte {pos} declares {a >> 16} bytes")
        return a & 0xFFFF, a >> 16, pos + 4, pos + 8
    if pos + 8 + b > end:
        raise _bad(p, f"an element at byte {pos} declares {b:,} bytes but only {end - pos - 8:,} remain")
    return a, b, pos + 8, pos + 8 + b + (-b % 8)


def _header(buf, pos: int, end: int, order: str, p: Path) -> tuple[int, int, tuple[int, ...], str, int]:
    """Array flags, dims and name of the miMATRIX content at ``pos``: (class, flags, dims, name, next)."""
    t, n, s, pos = _tag(buf, pos, end, order, p)
    if t != _MI_UINT32 or n != 8:
        raise _bad(p, "a matrix without its array flags")
    flags = struct.unpack_from(order + "I", buf, s)[0]
    t, n, s, pos = _tag(buf, pos, end, order, p)
    if t != _MI_INT32 or n % 4 or not 2 <= n // 4 <= 32:
        raise _bad(p, "a matrix without valid dimensions")
    dims = struct.unpack_from(f"{order}{n // 4}i", buf, s)
    if min(dims) < 0:
        raise _bad(p, f"negative dimensions {dims}")
    t, n, s, pos = _tag(buf, pos, end, order, p)
    if t not in (_MI_INT8, _MI_UTF8):
        raise _bad(p, "a matrix without a name")
    return flags & 0xFF, flags, dims, bytes(buf[s : s + n]).decode("latin1"), pos


def _numeric(buf, pos: int, end: int, order: str, p: Path, name: str, mclass: int, flags: int,
             dims: tuple[int, ...]) -> np.ndarray:
    """The real part of a numeric matrix; its byte count must equal dims x itemsize."""
    if mclass not in _NUMERIC_CLASSES:
        raise CorruptFileError(f"{p}: {name} is a {_CLASS_NAMES.get(mclass, f'class-{mclass} value')}, not a numeric array")
    if flags & 0x800:
        raise CorruptFileError(f"{p}: {name} is complex; SVHN arrays are real")
    t, n, s, _ = _tag(buf, pos, end, order, p)
    if t not in _MI:
        raise _bad(p, f"{name} has data type code {t}, not a numeric type")
    dtype = np.dtype(_MI[t]).newbyteorder(order)
    count = math.prod(dims)
    if count * dtype.itemsize != n:
        raise _bad(p, f"{name} declares {dims} of {dtype.name} ({count * dtype.itemsize:,} bytes) but holds {n:,}")
    arr = np.frombuffer(buf, dtype=dtype, count=count, offset=s).reshape(dims, order="F")
    return arr.astype(dtype.newbyteorder("="), copy=False)  # read-only view when already native


def _compressed(data: bytes, start: int, n: int, order: str, p: Path, want: frozenset[str]):
    """(name, array or None) of the matrix inside the miCOMPRESSED element at ``start``."""
    d = zlib.decompressobj()
    packed = memoryview(data)[start : start + n]
    inner = d.decompress(packed, _HEAD)
    if len(inner) < 8:
        raise _bad(p, "a compressed element is cut off")
    t, size = struct.unpack_from(order + "II", inner, 0)
    if t != _MI_MATRIX:
        raise _bad(p, f"a compressed element holds data type {t}, not a matrix")
    mclass, flags, dims, name, pos = _header(inner, 8, len(inner), order, p)
    if name not in want:
        return name, None
    check_expansion(size, n, p, f"the compressed variable {name}")
    rest = d.decompress(d.unconsumed_tail, 8 + size - len(inner)) if len(inner) < 8 + size else b""
    inner = inner + rest
    if len(inner) < 8 + size:
        raise _bad(p, f"{name} inflates to {len(inner) - 8:,} of its {size:,} bytes")
    return name, _numeric(inner, pos, 8 + size, order, p, name, mclass, flags, dims)


def _byte_order(data: bytes, p: Path) -> str:
    if len(data) < 128 or 0 in data[:4]:
        raise CorruptFileError(f"{p}: not a MATLAB v5 .mat file (too short, or a v4 file); re-save it with -v7")
    order = {b"IM": "<", b"MI": ">"}.get(bytes(data[126:128]))
    if order is None:
        raise CorruptFileError(f"{p}: not a MATLAB .mat file, truncated or corrupt (no byte-order mark); re-download it")
    version = struct.unpack_from(order + "H", data, 124)[0]
    if version == 0x0200:
        raise CorruptFileError(f"{p}: MATLAB v7.3 (HDF5) files are not supported; re-save with -v7")
    if version != 0x0100:
        raise CorruptFileError(f"{p}: unknown .mat version 0x{version:04X}, truncated or corrupt; re-download it")
    return order


def read_mat_arrays(path: str | os.PathLike, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The numeric arrays ``names`` of a MATLAB v5 file (others are skipped unread), checked as
    the module docstring says; the last of a repeated name wins. Arrays may be read-only views."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f".mat file not found: {p}")
    check_input_size(p.stat().st_size, p, ".mat file")
    want, found = frozenset(names), {}
    with reading(p, ".mat file"):
        data = p.read_bytes()
        order = _byte_order(data, p)
        pos = 128
        while pos < len(data):
            t, n, s, _ = _tag(data, pos, len(data), order, p)
            if n == 0:  # an empty matrix: nothing to read
                name, arr = "", None
            elif t == _MI_COMPRESSED:
                name, arr = _compressed(data, s, n, order, p, want)
            elif t == _MI_MATRIX:
                mclass, flags, dims, name, at = _header(data, s, s + n, order, p)
                arr = _numeric(data, at, s + n, order, p, name, mclass, flags, dims) if name in want else None
            else:
                raise _bad(p, f"unexpected data type {t} at byte {pos}")
            if arr is not None:
                found[name] = arr
            pos = s + n
    return found


def read_svhn_mat(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN ``.mat`` file: returns (uint8 (N, 3, 32, 32), int64 digits 0..9 (N,))."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"SVHN file not found: {p}")
    m = read_mat_arrays(p, ("X", "y"))
    for k in ("X", "y"):
        if k not in m:
            raise CorruptFileError(f"{p}: no {k!r} variable; an SVHN file holds X (HxWxCxN) and y (Nx1)")
    x, y = m["X"], m["y"]
    if x.ndim != 4 or x.shape[2] not in (1, 3):
        raise CorruptFileError(f"{p}: X must have shape (H, W, C, N), got {x.shape}")
    if x.dtype != np.uint8:
        raise CorruptFileError(f"{p}: X must be uint8, got {x.dtype}")
    y = y.reshape(-1)
    if y.shape[0] != x.shape[3]:
        raise MismatchError(f"{p}: X holds {x.shape[3]} images but y holds {y.shape[0]} labels")
    if y.size and (not np.all(y == np.round(y)) or y.min() < 0 or y.max() > 10):
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
