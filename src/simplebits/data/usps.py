"""USPS handwritten digits in the LIBSVM text format (``usps.bz2`` train 7291, ``usps.t.bz2`` test 2007).

Each line is ``LABEL 1:v1 2:v2 ... 256:v256``: LABEL 1..10 is digit LABEL-1, values in [-1, 1]
are a 16 x 16 gray image in row-major order, mapped to [0, 1] as (v + 1) / 2. Indices left out
(sparse lines) are 0, i.e. mid-gray. Plain and bz2/gzip-compressed files are read.
"""

from __future__ import annotations

import bz2
import gzip
import os
from pathlib import Path

import numpy as np

from ..errors import BadInputError, CorruptFileError, NotFoundError, check_input_size, max_input_bytes, reading

__all__ = ["read_usps", "write_usps"]

_SIDE = 16
_NFEAT = _SIDE * _SIDE


#: Text a compressed file may expand to: 64 MiB + 200 x its size (the real usps.bz2, ~6 MB, holds
#: ~20 MB of text; bzip2 can expand a run of one byte ~45 million times).
TEXT_BASE = 64 << 20
TEXT_RATIO = 200
#: Longest line accepted: 256 "index:value" pairs of up to ~60 characters.
MAX_LINE = 16 << 10
_BLOCK = 1 << 20  # text parsed at a time (whole lines): bounds the Python strings made at once
_IMAGE_BYTES = _NFEAT * 4  # one decoded image, float32


def _read_bytes(p: Path) -> bytes:
    """The file's bytes, decompressed (bz2/gzip by content) with a cap on the output."""
    size = p.stat().st_size
    with open(p, "rb") as fh:
        magic = fh.read(3)
    if magic != b"BZh" and magic[:2] != b"\x1f\x8b":
        check_input_size(size, p, "USPS text")
        return p.read_bytes()
    cap = min(max_input_bytes(), TEXT_BASE + TEXT_RATIO * size)
    parts, total = [], 0
    with (bz2.open if magic == b"BZh" else gzip.open)(p, "rb") as fh:
        while chunk := fh.read(1 << 20):
            total += len(chunk)
            if total > cap:
                raise CorruptFileError(
                    f"{p}: decompresses to more than {cap:,} bytes from {size:,}; a USPS file holds a few times its "
                    "compressed size of text: corrupt file or a decompression bomb (SIMPLEBITS_MAX_INPUT_BYTES caps it)"
                )
            parts.append(chunk)
    return b"".join(parts)


def _line_ends(text: bytes, p: Path) -> np.ndarray:
    """Offsets one past each line's end; the line count and longest line are checked first."""
    n = text.count(b"\n") + 1
    if n * _IMAGE_BYTES > max(TEXT_BASE, 2 * len(text)):
        raise CorruptFileError(
            f"{p}: {n:,} lines in {len(text):,} bytes of text would decode to {n * _IMAGE_BYTES:,} bytes of images; "
            "a USPS line is a whole 16x16 image (~2 KB of text): corrupt file"
        )
    check_input_size(n * _IMAGE_BYTES, p, "USPS images")
    ends = np.append(np.flatnonzero(np.frombuffer(text, np.uint8) == 10) + 1, len(text))
    lengths = np.diff(ends, prepend=0)
    if lengths.size and int(lengths.max()) > MAX_LINE + 1:
        i = int(lengths.argmax())
        raise CorruptFileError(f"{p}: line {i + 1} is {int(lengths[i]):,} bytes long, more than a USPS line ({MAX_LINE:,})")
    return ends


def _parse_sparse(lines: list[tuple[int, bytes]], p: Path) -> tuple[np.ndarray, np.ndarray]:
    x = np.zeros((len(lines), _NFEAT), dtype=np.float64)
    y = np.zeros(len(lines), dtype=np.float64)
    for i, (no, line) in enumerate(lines):
        parts = line.split()
        try:
            y[i] = float(parts[0])
            for tok in parts[1:]:
                k, v = tok.split(b":")
                j = int(k) - 1
                if not 0 <= j < _NFEAT:
                    raise ValueError(f"feature index {k.decode('ascii', 'replace')} outside 1..{_NFEAT}")
                x[i, j] = float(v)
        except (ValueError, IndexError) as e:
            raise CorruptFileError(f"{p}: line {no} is not 'label idx:value ...' ({e})") from None
    return x, y


def _parse_block(lines: list[tuple[int, bytes]], p: Path) -> tuple[np.ndarray, np.ndarray]:
    """(values float64 (n, 256), labels float64 (n,)) of whole lines; dense lines in one numpy call."""
    try:
        flat = np.array(b" ".join(ln for _, ln in lines).replace(b":", b" ").split(), dtype=np.float64)
        if flat.size == len(lines) * (1 + 2 * _NFEAT):
            rows = flat.reshape(len(lines), 1 + 2 * _NFEAT)
            if np.array_equal(rows[:, 1::2], np.broadcast_to(np.arange(1, _NFEAT + 1), (len(lines), _NFEAT))):
                return rows[:, 2::2], rows[:, 0]
    except ValueError:
        pass
    return _parse_sparse(lines, p)


def _check_values(x: np.ndarray, y: np.ndarray, p: Path) -> None:
    if not np.all(np.isfinite(x)) or x.min() < -1 - 1e-6 or x.max() > 1 + 1e-6:
        raise CorruptFileError(f"{p}: USPS values must lie in [-1, 1], found [{np.nanmin(x):.4g}, {np.nanmax(x):.4g}]")
    if not np.all(y == np.round(y)) or y.min() < 1 or y.max() > 10:
        raise CorruptFileError(f"{p}: USPS labels must be integers 1..10 (digit + 1), found {y.min():g}..{y.max():g}")


def read_usps(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a USPS LIBSVM file: returns (float32 (N, 16, 16) in [0, 1], int64 digits (N,)).

    Bounded before parsing: decompressed text (:data:`TEXT_BASE` + :data:`TEXT_RATIO` x the file
    size), lines (each at most :data:`MAX_LINE` bytes, 1 KiB of images per line at most 64 MiB +
    twice the text) and the input cap; parsed ~1 MiB of lines at a time.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"USPS file not found: {p}")
    with reading(p, "USPS file"):
        text = _read_bytes(p)
        if not text.isascii():
            raise CorruptFileError(f"{p}: not a USPS text file (non-ASCII bytes); expected lines 'label 1:v1 2:v2 ...'")
        ends = _line_ends(text, p)
        xs, ys, start, no = [], [], 0, 0
        while start < len(text):
            stop = int(ends[min(np.searchsorted(ends, start + _BLOCK), len(ends) - 1)])
            lines = []
            for line in text[start:stop].split(b"\n"):
                no += 1
                if line.strip() and not line.lstrip().startswith(b"#"):
                    lines.append((no, line))
            no -= 1  # the piece after the block's last newline is the next block's first line
            start = stop
            if lines:
                x, y = _parse_block(lines, p)
                _check_values(x, y, p)
                xs.append(((np.clip(x, -1.0, 1.0) + 1.0) / 2.0).astype(np.float32))
                ys.append(y.astype(np.int64) - 1)
        if not xs:
            raise CorruptFileError(f"{p}: empty USPS file")
        return np.concatenate(xs).reshape(-1, _SIDE, _SIDE), np.concatenate(ys)


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
