"""Pictures of simplification: originals above simplified images (paper Fig. 3/4), the
accuracy-vs-bpd trade-off (Fig. 5, with the S8 baselines) and retraining learning curves (S7).

Image grids use PIL only (tiles and files from :mod:`simplebits.images`); plots use matplotlib
(Agg backend, imported on use).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch

from ..images import canvas, paste, save_figure, save_png, to_uint8, upscale

__all__ = ["comparison_grid", "save_png", "tradeoff_plot", "curves_plot", "pick_per_class"]

_to_uint8 = to_uint8  # the old private name, kept for callers that reach for it


def pick_per_class(labels: torch.Tensor, num_classes: int, per_class: int = 1) -> torch.Tensor:
    """Indices of the first ``per_class`` images of every class, class by class."""
    picks = [torch.nonzero(labels == c).flatten()[:per_class] for c in range(num_classes)]
    return torch.cat(picks) if picks else torch.zeros(0, dtype=torch.long)


def comparison_grid(originals: torch.Tensor, rows: Sequence[torch.Tensor], *, labels: torch.Tensor | None = None,
                    num_classes: int | None = None, indices: torch.Tensor | None = None, max_cols: int = 10,
                    scale: int = 2, pad: int = 2) -> np.ndarray:
    """Originals in the top row, each entry of ``rows`` (simplified versions of the same images,
    e.g. one per lambda) in a row below; one column per chosen image (default: one per class)."""
    if indices is None:
        if labels is not None and num_classes:
            indices = pick_per_class(labels, num_classes)[:max_cols]
        else:
            indices = torch.arange(min(max_cols, originals.shape[0]))
    all_rows = [originals[indices]] + [r[indices] for r in rows]
    c, h, w = originals.shape[1:]
    ncol = len(indices)
    out = canvas(len(all_rows), ncol, (h * scale, w * scale), pad)
    for r, imgs in enumerate(all_rows):
        for k in range(ncol):
            paste(out, r, k, upscale(to_uint8(imgs[k]), scale), pad)
    return out


def _savefig(fig: Any, path: str | os.PathLike) -> None:
    save_figure(fig, path, dpi=120, bbox_inches="tight")


_EVAL_STYLE = {"originals": ("k*", "originals (retrained the same way)"),
               "joint": ("o-", "jointly trained classifier"), "retrain": ("s-", "retrained on simplified set"),
               "finetune": ("^-", "joint classifier finetuned")}


def tradeoff_plot(series: dict[str, dict[str, list[dict[str, Any]]]], path: str | os.PathLike, *,
                  title: str = "accuracy vs bits per dimension") -> None:
    """Fig. 5: one panel per data set; per data set a line per evaluation (SimpleBits) and per
    baseline. ``series[dataset][line] = [{"bpd": x, "acc": y, "acc_std": s, "label": l}, ...]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(series))
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.0), squeeze=False)
    for ax, (ds, lines) in zip(axes[0], series.items()):
        for name, pts in lines.items():
            if name == "originals" and pts and all(p.get("acc") is None for p in pts):
                # baselines alone: the originals' bpd without an accuracy (nothing retrained them)
                ax.axvline(pts[0]["bpd"], color="k", linestyle=":", linewidth=1, label="originals' bpd")
                continue
            pts = sorted((p for p in pts if p.get("acc") is not None), key=lambda p: p["bpd"])
            if not pts:
                continue
            style, label = _EVAL_STYLE.get(name, ("d--", name))
            xs = [p["bpd"] for p in pts]
            ys = [100 * p["acc"] for p in pts]
            es = [100 * p.get("acc_std", 0.0) for p in pts]
            big = name == "originals"  # a star above the curves that pass through it
            ax.errorbar(xs, ys, yerr=es, fmt=style, label=label, capsize=2, markersize=10 if big else 4,
                        zorder=5 if big else 2)
            if name == "retrain":
                for p, x, y in zip(pts, xs, ys):
                    if p.get("label"):
                        ax.annotate(p["label"], (x, y), textcoords="offset points", xytext=(3, 4), fontsize=7)
        ax.set_title(ds)
        ax.set_xlabel("bits per dimension (Glow)")
        ax.set_ylabel("test accuracy on original images (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    _savefig(fig, path)
    plt.close(fig)


def curves_plot(curves: dict[str, dict[str, list[float]]], path: str | os.PathLike) -> None:
    """S7: test accuracy per retraining epoch, one line per lambda; one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(curves))
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 3.8), squeeze=False)
    for ax, (ds, lines) in zip(axes[0], curves.items()):
        for name, ys in lines.items():
            ax.plot(range(1, len(ys) + 1), [100 * y for y in ys], marker="o", markersize=3, label=name)
        ax.set_title(f"{ds}: retraining on simplified sets")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _savefig(fig, path)
    plt.close(fig)
