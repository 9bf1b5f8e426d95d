"""The bpd term of a loss: per-example bits per dimension of generated images under a frozen
density model, differentiable in the images.

One class serves every capability that optimises images towards fewer bits: condensation's
simplification term (paper Eq. 7), the simplifier's loss (S3) and post-hoc simplification
(Alg. 1/2). Each used to load, freeze and check its own copy of the model, so the checks and
the dequantisation could drift apart; here they are one.

The loss is one draw of uniform dequantisation noise (:func:`~simplebits.density.bpd`), from the
caller's generator so a seeded run repeats; the reported figure (:meth:`BpdTerm.score`) is the
package's one reported bpd, :func:`~simplebits.density.score_bpd`, the expectation of what the
loss sees.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import MismatchError, NotFoundError
from .bpd import bpd, escape_cap, score_bpd, units
from .store import default_flow, fit_images, flow_digest, load_flow

__all__ = ["BpdTerm"]


class BpdTerm:
    """Per-example bpd of generated images under a frozen density model, differentiable.

    Parameters
    ----------
    spec : a shipped model name or a flow file; ``None``: the shipped default for the channel count.
    shape : (C, H, W) of the images the term will see; checked against the model here, so a model
        that does not fit the data fails before any training.
    device : where a loaded model lives.
    model : an already loaded density model to use instead of loading ``spec`` (post-hoc
        simplification takes one from its caller); it is frozen and put in eval mode.
    """

    def __init__(self, spec: str | None = None, *, shape: tuple[int, int, int], device: str | torch.device = "cpu",
                 model: nn.Module | None = None) -> None:
        if model is None:
            self.spec = spec or default_flow(shape[0])
            model = load_flow(self.spec, device=device)
        else:
            self.spec = spec or getattr(model, "source", None) or type(model).__name__
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        try:
            fit_images(torch.zeros(1, *shape, device=device), self.model)
        except MismatchError:
            # said here rather than as bpd's message: these commands have no --resize, and the model is a choice
            c, h, w = shape
            cfg = getattr(self.model, "config", None)
            why, size, shipped = "", "", ""
            if cfg is not None and c != cfg.channels:
                why = f" images have {c} channel(s) but the density model takes {cfg.channels};"
                if c in (1, 3):
                    shipped = f"{default_flow(c)}, the shipped model of {c}-channel images, or "
            elif cfg is not None:
                why = (f" images are {h}x{w} but the density model takes {cfg.image_size}x{cfg.image_size} "
                       "(smaller ones are zero-padded);")
                size = f" --size {max(h, w)}"
            raise MismatchError(
                f"density model {self.spec!r} does not fit images of shape {tuple(shape)}:{why} choose --density for "
                f"this data ({shipped}a model from `simplebits train-flow YOUR_DATA{size} --out MODEL.safetensors`)"
            ) from None

    @property
    def weights(self) -> str | None:
        """Digest of the weights file behind :attr:`spec` (:func:`~simplebits.density.flow_digest`;
        None for a model given in memory that no file names): recorded with the figures it scores, so
        that figures made under other weights of the same name are re-scored."""
        try:
            return flow_digest(self.spec)
        except (OSError, NotFoundError):
            return None

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None,
                 straight_through: bool = True, escape: bool = False) -> torch.Tensor:
        """(N,) bpd of ``images`` in [0, 1] with uniform dequantisation, one draw from ``generator``.

        ``straight_through`` first rounds to the 8-bit grid with a straight-through gradient (what a
        saved image holds); images already on the grid (condensation's logits) may skip it.
        ``escape``: where the flow alone says more than 8 bpd, the reported figures' raw 8-bit escape
        instead (:func:`~simplebits.density.bpd.escape_cap`: bounded, no gradient out of a blind
        spot); elsewhere the flow's bpd bit for bit. Off for images that start above 8 bpd and must
        be pulled down (condensation from noise).
        """
        fitted = fit_images(images, self.model)
        b = bpd(self.model, fitted, dequantize="uniform", straight_through=straight_through, generator=generator)
        if escape:
            b = escape_cap(b, fitted.shape[1] * fitted.shape[2] * fitted.shape[3])
        return b

    def units(self, shape: tuple[int, int, int]) -> dict[str, Any]:
        """The units of this model's figures for images of ``shape`` (C, H, W):
        :func:`~simplebits.density.bpd.units` (dimensions, the factor from bits per model dimension
        to bits per dimension of the images as given, and a note when they differ)."""
        fitted = fit_images(torch.zeros(1, *shape), self.model)  # padding only: no model pass
        return units(tuple(shape), tuple(fitted.shape[1:]))

    @torch.no_grad()
    def score(self, images: torch.Tensor, *, batch_size: int = 128) -> torch.Tensor:
        """(N,) bpd for reports, per model dimension, deterministic, CPU: the 8-bit images'
        dequantisation bound (:func:`~simplebits.density.score_bpd`, which rounds to the grid)."""
        if images.shape[0] == 0:
            return torch.zeros(0)
        return score_bpd(self.model, fit_images(images.clamp(0, 1), self.model), batch_size=batch_size)
