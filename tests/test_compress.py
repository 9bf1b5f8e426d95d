"""Compressed-size bits per dimension (PNG / JPEG) and the JPEG round-trip baseline."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from simplebits.density.compress import (
    CODECS,
    PNG_MIN_OVERHEAD,
    codec_bpd,
    encode_jpeg,
    encode_png,
    jpeg_bpd,
    jpeg_header_bytes,
    jpeg_roundtrip,
    png_bpd,
    png_container_bytes,
)
from simplebits.errors import BadInputError, UnknownNameError


def _noise(n=4, c=1, hw=32, seed=0):
    return torch.rand(n, c, hw, hw, generator=torch.Generator().manual_seed(seed))


def _smooth(n=4, c=3, hw=32):
    ramp = torch.linspace(0, 1, hw)
    img = (ramp.view(1, 1, 1, hw) * 0.6 + ramp.view(1, 1, hw, 1) * 0.4).expand(n, c, hw, hw)
    return img.contiguous()


def _chunks(data: bytes) -> list[tuple[bytes, int]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    i, out = 8, []
    while i < len(data):
        length, ctype = struct.unpack(">I4s", data[i : i + 8])
        out.append((ctype, length))
        i += 12 + length
    assert i == len(data)
    return out


def test_black_much_smaller_than_noise():
    black = png_bpd(torch.zeros(2, 1, 32, 32))
    noise = png_bpd(_noise(2))
    assert black.shape == (2,) and black.dtype == torch.float64
    assert (black < 1.0).all() and (noise > 7.0).all() and (noise < 9.5).all()
    assert (png_bpd(_smooth(2, 1)) < noise).all()


def test_png_file_layout_and_overhead():
    for c in (1, 3):
        arr = (np.random.default_rng(c).random((32, 32, c)) * 255).astype(np.uint8)
        data = encode_png(arr)
        chunks = _chunks(data)
        assert [t for t, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]  # no extra chunks
        assert chunks[0][1] == 13 and chunks[2][1] == 0
        assert 8 + (12 + 13) + 12 + 12 == PNG_MIN_OVERHEAD == png_container_bytes(data)
        assert len(data) - chunks[1][1] == PNG_MIN_OVERHEAD
        with Image.open(io.BytesIO(data)) as im:
            assert im.mode == ("L" if c == 1 else "RGB")
            assert np.array_equal(np.asarray(im).reshape(32, 32, c), arr)  # lossless


def test_png_overhead_counts_every_idat():
    arr = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)  # > 64 KiB of IDAT
    data = encode_png(arr)
    n_idat = sum(t == b"IDAT" for t, _ in _chunks(data))
    assert n_idat > 1 and png_container_bytes(data) == 8 + 25 + 12 * n_idat + 12


@pytest.mark.parametrize("c", [1, 3])
def test_overhead_subtraction_equals_57_bytes(c):
    x = _noise(3, c)
    d = c * 32 * 32
    diff = png_bpd(x) - png_bpd(x, subtract_overhead=True)
    assert torch.allclose(diff, torch.full((3,), 57 * 8 / d, dtype=torch.float64))


def test_jpeg_quality_and_overhead():
    x = _noise(3, 3)
    lo, hi = jpeg_bpd(x, quality=10), jpeg_bpd(x, quality=95)
    assert (lo < hi).all()
    net = jpeg_bpd(x, quality=75, subtract_overhead=True)
    assert (net > 0).all() and (net < jpeg_bpd(x, quality=75)).all()
    # a flat image is almost all header: its scan data is tiny
    assert float(jpeg_bpd(torch.full((1, 3, 32, 32), 0.5), subtract_overhead=True)) < 0.1


def test_jpeg_header_parse():
    arr = np.full((32, 32, 3), 128, np.uint8)
    data = encode_jpeg(arr, 75)
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    sos = data.index(b"\xff\xda")
    (length,) = struct.unpack(">H", data[sos + 2 : sos + 4])
    assert jpeg_header_bytes(data) == sos + 2 + length + 2  # everything before the scan + EOI
    gray = encode_jpeg(arr[..., :1], 75)
    assert 0 < jpeg_header_bytes(gray) < len(gray)


def test_jpeg_roundtrip_shape_range():
    for c in (1, 3):
        x = _smooth(2, c)
        y = jpeg_roundtrip(x, 50)
        assert y.shape == x.shape and y.dtype == torch.float32
        assert float(y.min()) >= 0 and float(y.max()) <= 1
        assert float((y - x).abs().mean()) < 0.05
    noise = _noise(2, 3)
    assert float((jpeg_roundtrip(noise, 5) - noise).abs().mean()) > float((jpeg_roundtrip(noise, 95) - noise).abs().mean())


def test_deterministic_and_dispatch():
    x = _noise(3, 3, seed=4)
    assert torch.equal(png_bpd(x), png_bpd(x.clone()))
    assert torch.equal(jpeg_bpd(x, quality=30), jpeg_bpd(x, quality=30))
    assert torch.equal(jpeg_roundtrip(x, 30), jpeg_roundtrip(x, 30))
    assert torch.equal(codec_bpd(x, "png"), png_bpd(x))
    assert torch.equal(codec_bpd(x, "JPEG", quality=20, subtract_overhead=True), jpeg_bpd(x, quality=20, subtract_overhead=True))
    assert CODECS == ("jpeg", "png")
    # the same image gives the same bpd in any batch; uint8 input equals its float version
    assert float(png_bpd(x[1:2])) == float(png_bpd(x)[1])
    assert torch.equal(png_bpd((x * 255).round().to(torch.uint8)), png_bpd(x))


def test_bad_inputs():
    with pytest.raises(UnknownNameError, match="jpeg, png"):
        codec_bpd(_noise(1), "webp")
    with pytest.raises(BadInputError, match="quality"):
        codec_bpd(_noise(1), "png", quality=5)
    bad = {
        "shape": torch.rand(32, 32),
        "channels": torch.rand(1, 2, 8, 8),
        "empty": torch.rand(0, 1, 8, 8),
        "NaN": torch.full((1, 1, 8, 8), float("nan")),
        "range": torch.full((1, 1, 8, 8), 1.5),
        "dtype": torch.ones(1, 1, 8, 8, dtype=torch.int64),
    }
    for what, x in bad.items():
        for fn in (png_bpd, jpeg_bpd, lambda t: jpeg_roundtrip(t, 50)):
            with pytest.raises(BadInputError):
                fn(x)
    for q in (0, 101, 50.0, True):
        with pytest.raises(BadInputError, match="quality"):
            jpeg_bpd(_noise(1), quality=q)
