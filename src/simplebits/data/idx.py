"""IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST), plain or gzip-compressed.

Format: a 4-byte magic ``0x00 0x00 TYPE NDIM``, then NDIM big-endian uint32 dimensions, then the
values in C order (big-endian for multi-byte types). Images are ``0x00000803`` (uint8, 3 dims
N,H,W), labels ``0x00000801`` (uint8, 1 dim N).
"""

from __future__ import annotations

import gzip
import math
import os
import re
from pathlib import Path

import numpy as np

from ..errors import BadInputError, CorruptFileError, MismatchError, NotFoundError, check_expansion, check_input_size, reading

__all__ = ["read_idx", "write_idx", "load_idx_pair", "find_idx_pair", "IMAGES_MAGIC", "LABELS_MAGIC"]

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

# IDX type byte -> numpy dtype (big-endian where it matters)
_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
          np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


_CHUNK = 16 << 20  # bytes read at a time from a gzip stream: never preallocate from its header


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _read_exact(fh, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = fh.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def _read_header(fh, p: Path, expect_magic: int | None) -> tuple[tuple[int, ...], np.dtype]:
    """Magic number and dimensions: (dims, big-endian dtype); errors name the file."""
    head = _read_exact(fh, 4)
    if len(head) < 4:
        raise CorruptFileError(f"{p}: too short to be an IDX file ({len(head)} bytes); re-download it")
    magic = int.from_bytes(head, "big")
    if head[0] != 0 or head[1] != 0 or head[2] not in _TYPES or head[3] == 0:
        raise CorruptFileError(f"{p}: not an IDX file (magic number 0x{magic:08X})")
    if expect_magic is not None and magic != expect_magic:
        raise CorruptFileError(
            f"{p}: wrong IDX magic number 0x{magic:08X}, expected 0x{expect_magic:08X} "
            f"({'images' if expect_magic == IMAGES_MAGIC else 'labels'}); is it the right file?"
        )
    ndim = head[3]
    dims_raw = _read_exact(fh, 4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise CorruptFileError(f"{p}: IDX header is truncated; re-download the file")
    dims = tuple(int.from_bytes(dims_raw[4 * i : 4 * i + 4], "big") for i in range(ndim))
    return dims, _TYPES[head[2]]


def _check_declared(p: Path, dims: tuple[int, ...], nbytes: int, gz: bool) -> None:
    """Refuse, before reading, a header whose size the file cannot hold (plain: exactly; gzip: ratio)."""
    check_input_size(nbytes, p, "IDX data")
    size = p.stat().st_size
    if not gz:
        body = size - (4 + 4 * len(dims))
        if body < nbytes:
            raise CorruptFileError(
                f"{p}: IDX file is truncated: header {dims} needs {nbytes:,} data bytes, found {body:,}; re-download it"
            )
        if body > nbytes:
            raise CorruptFileError(f"{p}: IDX file has data beyond the size its header {dims} gives; corrupt file")
    else:
        check_expansion(nbytes, size, p, f"the IDX header {dims}")


def _read_body(fh, p: Path, dims: tuple[int, ...], nbytes: int) -> bytearray:
    """Exactly ``nbytes`` data bytes, read in chunks; short or long data is an error."""
    buf = bytearray()
    try:
        while len(buf) < nbytes:
            chunk = fh.read(min(_CHUNK, nbytes - len(buf)))
            if not chunk:
                break
            buf += chunk
        extra = len(fh.read(1)) if len(buf) == nbytes else 0
    except EOFError:  # gzip: the compressed stream was cut
        extra = -1
    if len(buf) < nbytes or extra < 0:
        raise CorruptFileError(
            f"{p}: IDX file is truncated: header {dims} needs {nbytes:,} data bytes, found {len(buf):,}; re-download it"
        )
    if extra:
        raise CorruptFileError(f"{p}: IDX file has data beyond the size its header {dims} gives; corrupt file")
    return buf


def read_idx(path: str | os.PathLike, *, expect_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip detected from the content) into a native-endian numpy array.

    Raises :class:`NotFoundError` if absent and :class:`CorruptFileError` (naming the file) for a
    wrong magic number, a truncated/oversized body, a broken gzip stream or a header declaring more
    data than the file can hold (checked before anything is allocated).
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"IDX file not found: {p}")
    with reading(p, "IDX file"):
        gz = _is_gzip(p)
        with (gzip.open if gz else open)(p, "rb") as fh:
            dims, dtype = _read_header(fh, p, expect_magic)
            nbytes = math.prod(dims) * dtype.itemsize
            _check_declared(p, dims, nbytes, gz)
            buf = _read_body(fh, p, dims, nbytes)
        arr = np.frombuffer(buf, dtype=dtype).reshape(dims)
        return arr if dtype.itemsize == 1 else arr.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``)."""
    a = np.ascontiguousarray(np.asarray(array))
    if a.dtype not in _CODES:
        raise BadInputError(f"write_idx: unsupported dtype {a.dtype}")
    if a.ndim < 1 or a.ndim > 255:
        raise BadInputError(f"write_idx: unsupported number of dimensions {a.ndim}")
    header = bytes([0, 0, _CODES[a.dtype], a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    body = a.astype(a.dtype.newbyteorder(">"), copy=False).tobytes()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if p.name.endswith(".gz") else open
    with opener(p, "wb") as fh:
        fh.write(header)
        fh.write(body)


def load_idx_pair(images_path: str | os.PathLike, labels_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an images + labels IDX pair: returns (uint8 (N, H, W), int64 (N,))."""
    images = read_idx(images_path, expect_magic=IMAGES_MAGIC)
    labels = read_idx(labels_path, expect_magic=LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise MismatchError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels"
        )
    return images, labels.astype(np.int64)


_SPLIT_WORDS = {"train": ("train",), "test": ("t10k", "test")}


def _pattern(word: str, kind: str) -> re.Pattern[str]:
    dim = "3" if kind == "images" else "1"
    return re.compile(rf"(^|.*[-_.]){word}[-_.]{kind}[-_.]idx{dim}[-_.]ubyte(\.gz)?$", re.IGNORECASE)


def _candidate_dirs(directory: Path) -> list[Path]:
    return [d for d in (directory, directory / "raw") if d.is_dir()]


def find_idx_pair(directory: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """Find the images/labels IDX files of ``split`` ("train" or "test") in ``directory``.

    Accepts ``train-images-idx3-ubyte[.gz]``, ``train-images.idx3-ubyte``, ``t10k-...`` /
    ``test-...`` and prefixed names (``emnist-digits-train-...``); also looks in ``raw/``
    (torchvision's ``MNIST/raw`` layout). Prefers uncompressed files.
    """
    d = Path(directory)
    if not d.is_dir():
        raise NotFoundError(f"data folder not found: {d}")
    if split not in _SPLIT_WORDS:
        raise BadInputError(f"IDX data has splits train and test, not {split!r}")
    found: dict[str, Path] = {}
    for kind in ("images", "labels"):
        pats = [_pattern(w, kind) for w in _SPLIT_WORDS[split]]
        for sub in _candidate_dirs(d):
            hits = sorted(f for f in sub.iterdir() if f.is_file() and any(pt.match(f.name) for pt in pats))
            if not hits:
                continue
            bases = sorted({re.sub(r"\.gz$", "", h.name, flags=re.IGNORECASE) for h in hits})
            if len(bases) > 1:
                raise BadInputError(
                    f"{sub}: several {split} {kind} IDX files ({', '.join(bases)}); keep one set per folder"
                )
            plain = [h for h in hits if not h.name.lower().endswith(".gz")]
            found[kind] = (plain or hits)[0]
            break
    missing = [k for k in ("images", "labels") if k not in found]
    if missing:
        word = _SPLIT_WORDS[split][0]
        want = " and ".join(f"{word}-{k}-idx{3 if k == 'images' else 1}-ubyte[.gz]" for k in missing)
        raise NotFoundError(f"no {want} in {d}")
    return found["images"], found["labels"]
