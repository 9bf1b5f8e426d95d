"""Bits per dimension under a density model (paper §2, REFERENCE.md §1).

``bpd(x) = -(log p(y) - D ln 256) / (D ln 2)`` with ``D = C H W`` and ``y`` the dequantised
image in Glow's range: ``y = x * 255/256 - 0.5 + u``. The ``- D ln 256`` turns the density of
``y`` into the probability mass of the 1/256-wide bin of the 8-bit image.

Dequantisation ``u``:
    ``"midpoint"`` (default, deterministic, for reports): ``u = 1/512``, the bin's centre;
    ``"uniform"``: ``u ~ U(0, 1/256)`` (training; an unbiased bound in expectation);
    ``"none"``: ``u = 0``.
``straight_through=True`` first rounds the image to the 8-bit grid with a straight-through
gradient, ``q = (round(255x) - 255x).detach() + 255x``, as the reference does when bpd is a loss
on a generated image (simplifier output, synthetic condensed image).
"""

from __future__ import annotations

import math

import torch

from ..errors import BadInputError
from ..progress import progress_bar

__all__ = ["preprocess", "bpd", "score_bpd", "logp_to_bpd", "bits_summary"]

_DEQUANT = ("midpoint", "uniform", "none")


def preprocess(
    images: torch.Tensor,
    *,
    dequantize: str = "midpoint",
    straight_through: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Images in [0, 1] -> Glow's range, dequantised. Differentiable in ``images``."""
    if dequantize not in _DEQUANT:
        raise BadInputError(f"unknown dequantize mode {dequantize!r}; valid: {', '.join(_DEQUANT)}")
    x = images
    if straight_through:
        x255 = x * 255.0
        x = ((torch.round(x255) - x255).detach() + x255) / 255.0
    y = x * (255.0 / 256.0) - 0.5
    if dequantize == "midpoint":
        y = y + 1.0 / 512.0
    elif dequantize == "uniform":
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device) / 256.0
        y = y + u
    return y


def logp_to_bpd(logp: torch.Tensor, dims: int) -> torch.Tensor:
    """Bits per dimension of the 8-bit image from the continuous log-density (nats)."""
    return -(logp - dims * math.log(256.0)) / (dims * math.log(2.0))


def bpd(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    dequantize: str = "midpoint",
    straight_through: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-image bits per dimension, shape (N,); differentiable w.r.t. ``images``.

    Parameters
    ----------
    model : a density model with ``log_prob(y)`` (e.g. :class:`~simplebits.density.glow.Glow`).
    images : (N, C, H, W) in [0, 1] on the model's device.
    dequantize : ``"midpoint"`` | ``"uniform"`` | ``"none"`` (see module docstring).
    straight_through : round to 8 bits with a straight-through gradient first (for losses).
    """
    if images.ndim != 4:
        raise BadInputError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    y = preprocess(images, dequantize=dequantize, straight_through=straight_through, generator=generator)
    dims = images.shape[1] * images.shape[2] * images.shape[3]
    return logp_to_bpd(model.log_prob(y), dims)


def score_bpd(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 500,
    dequantize: str = "midpoint",
    progress: bool | None = None,
) -> torch.Tensor:
    """bpd of many images without gradients, batched; returns a CPU tensor (N,).

    Validates that images are finite and in [0, 1] (a clear error otherwise).
    """
    if images.ndim != 4:
        raise BadInputError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise BadInputError("images contain NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0 or hi > 1:
        raise BadInputError(f"images must lie in [0, 1], found [{lo:.4g}, {hi:.4g}]")
    if hasattr(model, "check_input"):
        model.check_input(images)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    bar = progress_bar(images.shape[0], desc="bpd", enabled=progress, unit="img")
    with torch.inference_mode():
        for i in range(0, images.shape[0], batch_size):
            chunk = images[i : i + batch_size].to(device)
            out.append(bpd(model, chunk, dequantize=dequantize).float().cpu())
            bar.update(chunk.shape[0])
    bar.close()
    model.train(was_training)
    return torch.cat(out)


def bits_summary(values: torch.Tensor) -> dict[str, float]:
    """count, mean, median, population std, min, max of per-image bpd values."""
    v = values.double()
    return {"count": int(v.numel()), "mean": float(v.mean()), "median": float(v.median()),
            "std": float(v.std(unbiased=False)) if v.numel() > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max())}
