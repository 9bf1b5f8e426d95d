"""CutMix (Yun et al., 2019), seeded by a ``torch.Generator``.

A box of area about ``(1 - lam)`` of the image, one box for the whole batch, is cut from a
random permutation partner of each image and pasted in; ``lam`` is then set to the exact
fraction of the image that was NOT pasted over, so that
``cutmix_loss = lam * CE(y_a) + (1 - lam) * CE(y_b)`` weighs the labels by pixel area.

Randomness: ``lam ~ Beta(beta, beta)``. For ``beta == 1`` (the usual choice, Beta(1,1) is
Uniform(0,1)) ``lam`` is a uniform draw from the generator. For any other ``beta`` torch
has no generator-aware Beta/Gamma sampler, so one 63-bit integer is drawn from the
generator and seeds a ``numpy.random.default_rng`` that draws the Beta variate: the result
is still fully determined by the generator's state. The box centre and the permutation
are drawn from the generator directly. ``generator=None`` uses the global torch RNG.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from simplebits.errors import BadInputError, MismatchError

__all__ = ["cutmix", "cutmix_loss", "maybe_cutmix"]


def _gdev(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _check(x: torch.Tensor, y: torch.Tensor, beta: float) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise BadInputError(f"cutmix expects images of shape (N, C, H, W), got {shape}")
    if not isinstance(y, torch.Tensor) or y.dim() < 1 or y.shape[0] != x.shape[0]:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise MismatchError(f"cutmix: labels must have leading size {x.shape[0]}, got {got}")
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        raise BadInputError(f"cutmix: beta must be a positive number, got {beta!r}")


def _sample_lam(beta: float, generator: torch.Generator | None) -> float:
    gdev = _gdev(generator)
    if beta == 1.0:
        return float(torch.rand((), generator=generator, device=gdev, dtype=torch.float64))
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator, device=gdev))
    return float(np.random.default_rng(seed).beta(beta, beta))


def cutmix(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    beta: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """CutMix a batch; returns ``(x_mixed, y_a, y_b, lam)``.

    ``y_a`` is ``y``, ``y_b = y[perm]`` the partner labels, and ``lam`` (a float) the exact
    fraction of each image that is still its own. Differentiable w.r.t. ``x``.
    """
    _check(x, y, beta)
    n, _, h, w = x.shape
    gdev = _gdev(generator)
    lam = _sample_lam(float(beta), generator)
    perm = torch.randperm(n, generator=generator, device=gdev).to(x.device)
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy = int(torch.randint(h, (1,), generator=generator, device=gdev))
    cx = int(torch.randint(w, (1,), generator=generator, device=gdev))
    y0, y1 = max(cy - ch // 2, 0), min(cy - ch // 2 + ch, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx - cw // 2 + cw, w)
    area = max(y1 - y0, 0) * max(x1 - x0, 0)
    lam = 1.0 - area / float(h * w)
    if area == 0:
        return x, y, y[perm.to(y.device)], 1.0
    r = torch.arange(h, device=x.device).view(h, 1)
    c = torch.arange(w, device=x.device).view(1, w)
    box = ((r >= y0) & (r < y1) & (c >= x0) & (c < x1)).view(1, 1, h, w)
    x_mixed = torch.where(box, x[perm], x)
    return x_mixed, y, y[perm.to(y.device)], lam


def cutmix_loss(
    logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float
) -> torch.Tensor:
    """``lam * CE(logits, y_a) + (1 - lam) * CE(logits, y_b)`` (mean over the batch)."""
    lam = float(lam)
    loss = F.cross_entropy(logits, y_a)
    if lam >= 1.0:
        return loss
    return lam * loss + (1.0 - lam) * F.cross_entropy(logits, y_b)


def maybe_cutmix(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    prob: float,
    generator: torch.Generator | None = None,
    beta: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """CutMix with probability ``prob``; otherwise ``(x, y, y, 1.0)``.

    The coin is always drawn from ``generator`` first, so a run is reproducible.
    """
    if not (isinstance(prob, (int, float)) and 0.0 <= prob <= 1.0):
        raise BadInputError(f"maybe_cutmix: prob must be in [0, 1], got {prob!r}")
    _check(x, y, beta)
    coin = float(torch.rand((), generator=generator, device=_gdev(generator)))
    if coin >= prob:
        return x, y, y, 1.0
    return cutmix(x, y, generator=generator, beta=beta)
