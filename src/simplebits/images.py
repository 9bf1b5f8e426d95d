"""Pictures for people: tensors to 8-bit RGB tiles, tiles laid out on a white grid, PNG files.

A base module (stdlib, numpy, torch, PIL and :mod:`simplebits.io` only), so every figure of the
package (condensed-set grids, simplification grids, plots) draws and writes images one way.

The codecs' input conversion in :mod:`simplebits.density.compress` is deliberately not shared:
it feeds a measure, not a picture, so it refuses values outside [0, 1] instead of clamping them,
keeps the channel count and converts whole batches in numpy.
"""

from __future__ import annotations

import io as _io
import os
from typing import Any

import numpy as np
import torch

from .io import atomic_write_bytes

__all__ = ["to_uint8", "upscale", "canvas", "paste", "save_png", "save_figure"]


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3) uint8: clamped, rounded, gray repeated to RGB."""
    a = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def upscale(a: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement of an (H, W, ...) array by an integer ``scale``: pixels stay sharp."""
    return a.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else a


def canvas(rows: int, cols: int, tile_hw: tuple[int, int], pad: int) -> np.ndarray:
    """A white (H, W, 3) uint8 grid for ``rows`` x ``cols`` tiles of ``tile_hw``, ``pad`` pixels
    around and between them (fill it with :func:`paste`)."""
    h, w = tile_hw
    return np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)


def paste(grid: np.ndarray, row: int, col: int, tile: np.ndarray, pad: int) -> None:
    """Put an (h, w, 3) uint8 tile at ``(row, col)`` of a :func:`canvas` grid of such tiles."""
    h, w = tile.shape[:2]
    y0, x0 = pad + row * (h + pad), pad + col * (w + pad)
    grid[y0:y0 + h, x0:x0 + w] = tile


def save_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 array as PNG, atomically (a reader never sees half a file)."""
    from PIL import Image

    buf = _io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def save_figure(fig: Any, path: str | os.PathLike, **savefig: Any) -> None:
    """Write a matplotlib figure as PNG, atomically; ``savefig`` options (dpi, bbox_inches) pass on.
    Takes the figure, not matplotlib: this module does not import it."""
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", **savefig)
    atomic_write_bytes(path, buf.getvalue())
