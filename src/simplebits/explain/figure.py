"""The figure in the layout of paper Fig. 8: one row per image, columns original / simplified /
expected gradients / prediction difference, labelled with the true and predicted class. Saliency
maps are red where the pixel speaks for the predicted class and blue where it speaks against,
on a symmetric scale per map."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

from ..errors import NotFoundError
from ..images import save_figure

if TYPE_CHECKING:
    from .runner import ExplainResult

__all__ = ["explanation_figure"]


def _show(ax, img: torch.Tensor) -> None:
    a = img.detach().cpu().clamp(0, 1)
    if a.shape[0] == 1:
        ax.imshow(a[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(a.permute(1, 2, 0).numpy())


def explanation_figure(result: "ExplainResult", path: str | os.PathLike, *, max_rows: int = 32) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NotFoundError("the explanation figure needs matplotlib: pip install 'simplebits[plots]'") from None
    res = result.posthoc
    rows = min(max_rows, res.images.shape[0])
    maps = [("expected gradients", result.expected_gradients), ("prediction difference", result.prediction_difference)]
    maps = [(t, m) for t, m in maps if m is not None]
    cols = 2 + len(maps)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 1.9 * rows + 0.3), dpi=100, squeeze=False)
    names = result.classes

    def name(k: int) -> str:
        return names[k] if k < len(names) else str(k)

    for r in range(rows):
        y, po, ps = int(result.labels[r]), int(res.pred_orig[r]), int(res.pred_sim[r])
        _show(axes[r, 0], result.originals[r])
        axes[r, 0].set_title(f"#{int(result.indices[r])} true {name(y)}\npred {name(po)}, {float(res.bpd_orig[r]):.2f} bpd",
                             fontsize=7, color="black" if y == po else "crimson")
        _show(axes[r, 1], res.images[r])
        axes[r, 1].set_title(f"simplified\npred {name(ps)}, {float(res.bpd_sim[r]):.2f} bpd", fontsize=7,
                             color="black" if ps == po else "crimson")
        for k, (title, m) in enumerate(maps):
            v = m[r].detach().cpu()
            lim = float(v.abs().max()) or 1.0
            axes[r, 2 + k].imshow(v.numpy(), cmap="bwr", vmin=-lim, vmax=lim)
            axes[r, 2 + k].set_title(title, fontsize=7)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    height = 1.9 * rows + 0.3
    fig.suptitle(f"post-hoc simplification ({res.config.space} space, {res.config.steps} steps, "
                 f"lambda {res.config.lambda_sim:g}); red = for, blue = against the prediction", fontsize=8,
                 y=1 - 0.08 / height)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / height))
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return str(path)
