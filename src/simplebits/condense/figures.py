"""Pictures of a condensed set (PIL only): the image grid and the class-difference overlay of
paper Fig. 7."""

from __future__ import annotations

import io as _io
import os

import numpy as np
import torch

from ..data import ImageSet
from ..io import atomic_write_bytes

__all__ = ["grid_image", "difference_image", "save_png"]


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3) uint8."""
    a = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def _upscale(a: np.ndarray, scale: int) -> np.ndarray:
    return a.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else a


def grid_image(ds: ImageSet, *, max_per_class: int = 10, pad: int = 2, scale: int = 2) -> np.ndarray:
    """One column per class, up to ``max_per_class`` rows (stored images, not decoded)."""
    c, h, w = ds.shape
    rows = min(max_per_class, max(ds.counts()) if len(ds) else 1)
    cols = ds.num_classes
    H, W = h * scale, w * scale
    out = np.full((rows * (H + pad) + pad, cols * (W + pad) + pad, 3), 255, np.uint8)
    for k in range(cols):
        idx = torch.nonzero(ds.labels == k).flatten()[:rows]
        for r, i in enumerate(idx.tolist()):
            y0, x0 = pad + r * (H + pad), pad + k * (W + pad)
            out[y0:y0 + H, x0:x0 + W] = _upscale(_to_uint8(ds.images[i]), scale)
    return out


def difference_image(ds: ImageSet, *, scale: int = 3, pad: int = 2) -> np.ndarray:
    """Where condensed images of different classes differ (paper Fig. 7).

    Two classes: [image of class 0 | image of class 1 | difference], the difference coloured red
    where class 0 is brighter and blue where class 1 is (gray images; for colour images the mean
    over channels). More classes: one column per class, [the class's first image | its difference
    to the mean of all classes' first images], in the same colours.
    """
    firsts = []
    for k in range(ds.num_classes):
        idx = torch.nonzero(ds.labels == k).flatten()
        if len(idx):
            firsts.append(ds.images[idx[0]])
    if not firsts:
        return np.full((8, 8, 3), 255, np.uint8)
    x = torch.stack(firsts)

    def colour(d: torch.Tensor) -> np.ndarray:
        d = d.mean(0)  # (H, W) signed
        m = float(d.abs().max()) or 1.0
        pos, neg = (d.clamp_min(0) / m), (-d).clamp_min(0) / m
        rgb = torch.stack([1 - neg, 1 - pos - neg, 1 - pos], dim=-1).clamp(0, 1)
        return (rgb * 255).round().to(torch.uint8).cpu().numpy()

    _, h, w = ds.shape
    H, W = h * scale, w * scale
    if len(firsts) == 2:
        tiles = [_to_uint8(x[0]), _to_uint8(x[1]), colour(x[0] - x[1])]
        out = np.full((H + 2 * pad, 3 * (W + pad) + pad, 3), 255, np.uint8)
        for j, t in enumerate(tiles):
            out[pad:pad + H, pad + j * (W + pad): pad + j * (W + pad) + W] = _upscale(t, scale)
        return out
    mean = x.mean(0)
    out = np.full((2 * (H + pad) + pad, len(firsts) * (W + pad) + pad, 3), 255, np.uint8)
    for j in range(len(firsts)):
        x0 = pad + j * (W + pad)
        out[pad:pad + H, x0:x0 + W] = _upscale(_to_uint8(x[j]), scale)
        out[2 * pad + H: 2 * pad + 2 * H, x0:x0 + W] = _upscale(colour(x[j] - mean), scale)
    return out


def save_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 array as PNG, atomically."""
    from PIL import Image

    buf = _io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
