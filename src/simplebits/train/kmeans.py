"""Batched k-means in torch (no extra dependency); shared by DREAM condensation and SSP pruning."""

from __future__ import annotations

import torch

from ..errors import BadInputError

__all__ = ["kmeans", "nearest_to_centres"]


def kmeans(x: torch.Tensor, k: int, *, iters: int = 20, generator: torch.Generator | None = None,
           tol: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on the rows of ``x`` (N, D) -> (centres (k, D), assignment (N,)).

    Initialisation: k-means++ seeding (first centre uniform, then proportional to the squared
    distance to the nearest chosen centre), drawn from ``generator``; an empty cluster keeps its
    previous centre. Distances are one batched ``cdist`` per iteration.
    """
    if x.dim() != 2:
        raise BadInputError(f"kmeans expects (N, D) features; got shape {tuple(x.shape)}")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise BadInputError(f"kmeans needs 1 <= k <= N; got k={k}, N={n}")
    x = x.float()
    first = int(torch.randint(n, (1,), generator=generator))
    centres = [x[first]]
    d2 = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:
            i = int(torch.randint(n, (1,), generator=generator))
        else:
            i = int(torch.multinomial((d2 / total).cpu(), 1, generator=generator))
        centres.append(x[i])
        d2 = torch.minimum(d2, ((x - x[i]) ** 2).sum(1))
    c = torch.stack(centres)
    assign = torch.zeros(n, dtype=torch.long, device=x.device)
    for _ in range(iters):
        assign = torch.cdist(x, c).argmin(1)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype).unsqueeze(1)
        new = torch.where(counts > 0, sums / counts.clamp_min(1), c)
        shift = (new - c).abs().max()
        c = new
        if shift <= tol:
            break
    assign = torch.cdist(x, c).argmin(1)
    return c, assign


def nearest_to_centres(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Index of the row of ``x`` nearest to each centre (k,)."""
    return torch.cdist(centres.float(), x.float()).argmin(1)
