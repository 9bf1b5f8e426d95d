"""Pictures of a condensed set (PIL only): the image grid and the class-difference overlay of
paper Fig. 7. Tiles and PNG files come from :mod:`simplebits.images`."""

from __future__ import annotations

import numpy as np
import torch

from ..data import ImageSet
from ..images import canvas, paste, save_png, to_uint8, upscale

__all__ = ["grid_image", "difference_image", "save_png"]

# the old private names, kept for callers that reach for them
_to_uint8 = to_uint8
_upscale = upscale


def grid_image(ds: ImageSet, *, max_per_class: int = 10, pad: int = 2, scale: int = 2) -> np.ndarray:
    """One column per class, up to ``max_per_class`` rows (stored images, not decoded)."""
    c, h, w = ds.shape
    rows = min(max_per_class, max(ds.counts()) if len(ds) else 1)
    cols = ds.num_classes
    out = canvas(rows, cols, (h * scale, w * scale), pad)
    for k in range(cols):
        idx = torch.nonzero(ds.labels == k).flatten()[:rows]
        for r, i in enumerate(idx.tolist()):
            paste(out, r, k, upscale(to_uint8(ds.images[i]), scale), pad)
    return out


def _colour(d: torch.Tensor) -> np.ndarray:
    """A signed (C, H, W) difference as an (H, W, 3) uint8 tile: red where it is positive, blue
    where negative (the mean over channels), scaled by its largest magnitude."""
    d = d.mean(0)  # (H, W) signed
    m = float(d.abs().max()) or 1.0
    pos, neg = (d.clamp_min(0) / m), (-d).clamp_min(0) / m
    rgb = torch.stack([1 - neg, 1 - pos - neg, 1 - pos], dim=-1).clamp(0, 1)
    return (rgb * 255).round().to(torch.uint8).cpu().numpy()


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
    _, h, w = ds.shape
    tile_hw = (h * scale, w * scale)
    if len(firsts) == 2:
        tiles = [to_uint8(x[0]), to_uint8(x[1]), _colour(x[0] - x[1])]
        out = canvas(1, 3, tile_hw, pad)
        for j, t in enumerate(tiles):
            paste(out, 0, j, upscale(t, scale), pad)
        return out
    mean = x.mean(0)
    out = canvas(2, len(firsts), tile_hw, pad)
    for j in range(len(firsts)):
        paste(out, 0, j, upscale(to_uint8(x[j]), scale), pad)
        paste(out, 1, j, upscale(_colour(x[j] - mean), scale), pad)
    return out
