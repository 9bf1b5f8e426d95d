"""The synthetic images being optimised: parametrisation, initialisation, multi-formation.

``pixels``: the parameter is the image in the data's normalised coordinates
    ``(x - mean) / std`` (per channel), as the reference code optimises it, so SGD with lr 0.1
    means what it means there; after every update it is clamped so that the image stays in
    [0, 1] (IDC clamps likewise; DC/DSA/DM do not: ``clamp=False`` in the config reproduces
    them, and the stored set is then unbounded).
``logits``: the SimpleBits parametrisation (REFERENCE.md §3): ``sigmoid(logits)`` rounded to the
    8-bit grid with a straight-through gradient, so the matched image is exactly the saved one.

Initialisation: ``noise`` (uniform [0, 1]), ``real`` (random real images of the class), ``mix``
(IDC: each stored image is a collage of f x f real images, each downscaled to 1/f of the side).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import ImageSet
from ..data.condensed import decode_images
from ..errors import BadInputError

__all__ = ["SyntheticSet", "class_indices", "check_ipc"]

_LOGIT_EPS = 1e-3


def class_indices(ds: ImageSet) -> list[torch.Tensor]:
    return [torch.nonzero(ds.labels == c).flatten() for c in range(ds.num_classes)]


def check_ipc(ds: ImageSet, ipc: int, factor: int) -> None:
    """IPC must be >= 1 and the real data must hold enough images of every class."""
    if isinstance(ipc, bool) or not isinstance(ipc, int) or ipc < 1:
        raise BadInputError(f"ipc must be an integer >= 1; got {ipc!r}")
    need = ipc * factor * factor
    counts = ds.counts()
    for c, n in enumerate(counts):
        if n == 0:
            raise BadInputError(f"class {ds.classes[c]!r} has no images in {ds.name}; every class needs at least one")
        if n < need:
            raise BadInputError(
                f"ipc {ipc} (x factor^2 = {need} real images to initialise) is more than class "
                f"{ds.classes[c]!r} holds ({n}) in {ds.name}; use a smaller --ipc"
            )


class SyntheticSet:
    """``C * ipc`` stored images, class-ordered, with a differentiable view."""

    def __init__(self, ds: ImageSet, *, ipc: int, factor: int = 1, param: str = "pixels", init: str = "real",
                 generator: torch.Generator) -> None:
        check_ipc(ds, ipc, factor)
        self.ipc, self.factor, self.param = ipc, factor, param
        self.num_classes = ds.num_classes
        c = ds.channels
        self.mean = ds.images.mean(dim=(0, 2, 3)).view(1, c, 1, 1)
        self.std = ds.images.std(dim=(0, 2, 3)).clamp_min(1e-3).view(1, c, 1, 1)
        self.labels = torch.arange(ds.num_classes).repeat_interleave(ipc)
        x = self._init_images(ds, init, generator)
        self.data = torch.nn.Parameter(self._to_param(x))

    # ------------------------------------------------------------------ init
    def _init_images(self, ds: ImageSet, init: str, g: torch.Generator) -> torch.Tensor:
        n = self.num_classes * self.ipc
        shape = (n, *ds.shape)
        if init == "noise":
            return torch.rand(shape, generator=g)
        idx = class_indices(ds)
        f = self.factor
        picks = []
        for c in range(self.num_classes):
            perm = idx[c][torch.randperm(len(idx[c]), generator=g)]
            picks.append(perm[: self.ipc * (f * f if init == "mix" else 1)])
        x = ds.images[torch.cat(picks)]
        if init == "real":
            return x.clone()
        # mix: f*f real images per stored image, each resized to (H/f, W/f), tiled row-major
        h, w = ds.shape[1], ds.shape[2]
        sh, sw = h // f, w // f
        small = F.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False, antialias=True)
        small = small.reshape(n, f, f, ds.channels, sh, sw).permute(0, 3, 1, 4, 2, 5)
        out = torch.zeros(shape)
        out[:, :, : sh * f, : sw * f] = small.reshape(n, ds.channels, sh * f, sw * f)
        return out.clamp(0, 1)

    def _to_param(self, x: torch.Tensor) -> torch.Tensor:
        if self.param == "logits":
            x = x.clamp(_LOGIT_EPS, 1 - _LOGIT_EPS)
            return torch.log(x) - torch.log1p(-x)
        return (x - self.mean) / self.std

    # ------------------------------------------------------------------ views
    def images(self) -> torch.Tensor:
        """Stored images in [0, 1], differentiable w.r.t. :attr:`data`."""
        if self.param == "logits":
            x255 = torch.sigmoid(self.data) * 255.0
            return ((torch.round(x255) - x255).detach() + x255) / 255.0
        return self.data * self.std + self.mean

    def decoded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) as the network sees them: multi-formation decoded when factor > 1."""
        x = self.images()
        if self.factor == 1:
            return x, self.labels
        return decode_images(x, self.factor), self.labels.repeat_interleave(self.factor**2)

    def class_slice(self, c: int) -> slice:
        k = self.ipc * self.factor**2
        return slice(c * k, (c + 1) * k)

    @torch.no_grad()
    def project(self) -> None:
        """Keep pixel parameters inside [0, 1] (no-op for logits)."""
        if self.param == "pixels":
            lo, hi = (0 - self.mean) / self.std, (1 - self.mean) / self.std
            self.data.copy_(torch.maximum(torch.minimum(self.data, hi), lo))

    @torch.no_grad()
    def final_images(self, clamp: bool = True) -> torch.Tensor:
        x = self.images().detach()
        return (x.clamp(0, 1) if clamp else x).clone()
