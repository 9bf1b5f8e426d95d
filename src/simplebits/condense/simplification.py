"""The simplification term of SimpleBits condensation (paper Eq. 7, REFERENCE.md §3).

``loss = 10*C/(1+lam) * L_match + 2*lam/(1+lam) * mean bpd``

with ``L_match`` the matching loss averaged over the C classes, so ``C * L_match`` is the
class-summed loss the methods return (DC's convention). bpd is that of the stored images (for
multi-formation sets, the stored collages, which are what the file holds), under a Glow density
model, with uniform dequantisation noise drawn from the iteration's generator. With the logits
parametrisation the images are already on the 8-bit grid; pixel-parametrised images are rounded
with a straight-through gradient first.
"""

from __future__ import annotations

import torch

from ..density import bpd as bpd_fn
from ..density import default_flow, fit_images, load_flow, score_bpd
from ..errors import MismatchError

__all__ = ["BpdTerm", "combine"]


def combine(match_sum: torch.Tensor, mean_bpd: torch.Tensor | None, lam: float | None) -> torch.Tensor:
    """Total loss from the class-summed matching loss and the mean bpd (Eq. 7)."""
    if lam is None or mean_bpd is None:
        return match_sum
    return 10.0 / (1.0 + lam) * match_sum + 2.0 * lam / (1.0 + lam) * mean_bpd


class BpdTerm:
    """Mean bits per dimension of generated images under a density model, differentiable."""

    def __init__(self, spec: str | None, *, shape: tuple[int, int, int], device: torch.device) -> None:
        self.spec = spec or default_flow(shape[0])
        self.model = load_flow(self.spec, device=device)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        probe = torch.zeros(1, *shape, device=device)
        try:
            fit_images(probe, self.model)
        except MismatchError as e:
            raise MismatchError(
                f"density model {self.spec!r} does not fit images of shape {tuple(shape)}: {e}; "
                "choose --density for this data (simplebits train-flow makes one)"
            ) from None

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None,
                 straight_through: bool = False) -> torch.Tensor:
        x = fit_images(images, self.model)
        return bpd_fn(self.model, x, dequantize="uniform", straight_through=straight_through,
                      generator=generator).mean()

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> float:
        """Mean bpd for reports: the 8-bit images' dequantisation bound (the package's one reported
        bpd, :func:`~simplebits.density.score_bpd`): the expectation of what the loss term sees."""
        x = fit_images(images.clamp(0, 1), self.model)
        return float(score_bpd(self.model, x).mean())
