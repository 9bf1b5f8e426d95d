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

from typing import TYPE_CHECKING

import torch

from ..density import term

if TYPE_CHECKING:
    from ..data import ImageSet

__all__ = ["BpdTerm", "combine", "BLIND_SPOT_SAMPLE"]

#: Real training images scored before a run with the simplification term, to say whether the density
#: model fits the data (:meth:`BpdTerm.blind_spots`): a seeded sample of this many (0.8 s under gray32).
BLIND_SPOT_SAMPLE = 500


def combine(match_sum: torch.Tensor, mean_bpd: torch.Tensor | None, lam: float | None) -> torch.Tensor:
    """Total loss from the class-summed matching loss and the mean bpd (Eq. 7)."""
    if lam is None or mean_bpd is None:
        return match_sum
    return 10.0 / (1.0 + lam) * match_sum + 2.0 * lam / (1.0 + lam) * mean_bpd


class BpdTerm(term.BpdTerm):
    """Mean bits per dimension of generated images under a density model, differentiable: the
    package's bpd term (:class:`simplebits.density.BpdTerm`, which loads, freezes and checks the
    model) in the form Eq. 7 takes, one number for the whole set."""

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None,
                 straight_through: bool = False) -> torch.Tensor:
        """The mean of the per-image term; logits-parametrised images are already on the 8-bit grid,
        so the straight-through rounding is the caller's choice (pixel parametrisation)."""
        return super().__call__(images, generator=generator, straight_through=straight_through).mean()

    def score(self, images: torch.Tensor) -> float:  # type: ignore[override]
        """Mean bpd for reports: the 8-bit images' dequantisation bound (the package's one reported
        bpd, :func:`~simplebits.density.score_bpd`): the expectation of what the loss term sees."""
        return float(super().score(images).mean())

    def blind_spots(self, real: "ImageSet", seed: int) -> tuple[int, int, str | None]:
        """(count, scored, note): how many of a seeded sample of up to :data:`BLIND_SPOT_SAMPLE` real
        images the model codes in 8 bits or more per value of the image as given
        (:func:`~simplebits.density.bpd.blind_spots`, the count simplify's note gives), and the one
        line saying so (None when there are none). On such images the term's gradient says little
        (issue #19: "as a loss such a model's gradients are dominated by its blind spots")."""
        from ..density.bpd import blind_spot_note, blind_spots
        from ..train.seeding import generator

        n = len(real)
        idx = torch.arange(n)
        if n > BLIND_SPOT_SAMPLE:
            idx = torch.randperm(n, generator=generator(seed, "blind-spots"))[:BLIND_SPOT_SAMPLE].sort().values
        values = super().score(real.images[idx])
        count = blind_spots(values, self.units(tuple(real.shape))["native_per_model"])
        return count, int(idx.numel()), blind_spot_note(count, int(idx.numel()), self.spec, real.name)
