"""simplebits.images: tensors to 8-bit tiles, grids, and PNG files written atomically."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from simplebits.images import canvas, paste, save_figure, save_png, to_uint8, upscale


def test_to_uint8_clamps_rounds_and_repeats_gray():
    x = torch.tensor([[[-0.5, 0.0, 0.5 / 255, 1.5 / 255, 1.0, 7.0]]])  # (1, 1, 6)
    a = to_uint8(x)
    assert a.dtype == np.uint8 and a.shape == (1, 6, 3)
    assert a[0, :, 0].tolist() == [0, 0, 0, 2, 255, 255]  # round half to even, clamped
    assert (a[..., 0] == a[..., 2]).all()
    rgb = torch.rand(3, 4, 5)
    b = to_uint8(rgb)
    assert b.shape == (4, 5, 3) and b[1, 2, 0] == round(float(rgb[0, 1, 2]) * 255)


def test_upscale_is_nearest_neighbour():
    a = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    assert upscale(a, 1) is a
    b = upscale(a, 3)
    assert b.shape == (6, 9, 1) and (b[::3, ::3] == a).all() and (b[2, 8] == a[0, 2]).all()


def test_canvas_and_paste_place_tiles_on_white_with_padding():
    grid = canvas(2, 3, (4, 5), pad=2)
    assert grid.shape == (2 * 6 + 2, 3 * 7 + 2, 3) and (grid == 255).all()
    tile = np.zeros((4, 5, 3), np.uint8)
    paste(grid, 1, 2, tile, pad=2)
    assert (grid[8:12, 16:21] == 0).all() and int((grid == 0).sum()) == tile.size


def test_save_png_round_trips_and_leaves_no_temporary_files(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    save_png(path, arr)
    save_png(path, arr[:, ::-1].copy())  # replaced whole
    back = np.asarray(Image.open(path).convert("RGB"))
    assert (back == arr[:, ::-1]).all()
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_save_figure_writes_what_the_figure_renders(tmp_path):
    class Fig:  # anything with matplotlib's savefig(buf, format=..., **options)
        def savefig(self, buf: io.BytesIO, format: str, **kw):
            buf.write(f"{format} {sorted(kw.items())}".encode())

    save_figure(Fig(), tmp_path / "f.png", dpi=120)
    assert (tmp_path / "f.png").read_bytes() == b"png [('dpi', 120)]"


def test_the_figure_modules_use_the_one_writer():
    from simplebits import images
    from simplebits.condense import figures as cf
    from simplebits.simplify import figures as sf

    assert cf.save_png is images.save_png and sf.save_png is images.save_png
    assert cf._to_uint8 is images.to_uint8 and sf._to_uint8 is images.to_uint8
