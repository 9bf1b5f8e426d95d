"""DC's per-image augmentation for evaluation training on MNIST (Zhao, Mopuri & Bilen 2021).

The DC paper trains its MNIST evaluation networks with a light augmentation that the other data
sets do not get; its published MNIST figures (91.7 / 97.4 / 98.8 % at IPC 1 / 10 / 50) were
measured with it. Unlike DSA it is not Siamese and not used during condensation: each image of a
training batch gets ONE op drawn uniformly from the strategy (``crop_scale_rotate`` in DC):

``crop``
    translation by an integer shift per axis, uniform in ``[-4, 4]`` pixels (DC pads by 4 and
    crops at a random offset);
``scale``
    independent height / width factors ``U(0.8, 1.2)`` about the centre (DC resizes to the
    new size and crops or pads back);
``rotate``
    rotation by ``U(-45, 45)`` degrees about the centre;
``noise``
    additive Gaussian noise of std 0.001.

Pixels that come from outside the image take the batch's per-channel mean, as in DC. All ops are
one batched ``affine_grid`` + bilinear ``grid_sample`` (integer crop shifts sample exactly at
pixel centres, so a crop moves values without blending them). Deviation from the DC code, on
purpose: scale and rotate interpolate bilinearly (DC: nearest-neighbour resizing and a cubic
spline rotation through scipy, one image at a time on the CPU); the scale factor is continuous
instead of a rounded new size. Random numbers come from the ``torch.Generator`` passed in, so
the same seed gives the same batches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from simplebits.errors import BadInputError, UnknownNameError

__all__ = ["DCAugment", "DC_AUG_OPS", "DC_MNIST"]

#: every op a strategy may name, in canonical order
DC_AUG_OPS: tuple[str, ...] = ("crop", "scale", "rotate", "noise")
#: the strategy DC evaluates MNIST with
DC_MNIST = "crop_scale_rotate"

_CROP_PX = 4
_SCALE = 0.2
_ROTATE_DEG = 45.0
_NOISE = 0.001


def _parse(strategy: str) -> tuple[str, ...]:
    if not isinstance(strategy, str) or not strategy.strip():
        raise BadInputError(f"DC augmentation strategy must be a string such as {DC_MNIST!r}, got {strategy!r}")
    ops: list[str] = []
    for tok in strategy.strip().lower().split("_"):
        if tok not in DC_AUG_OPS:
            raise UnknownNameError("DC augmentation op", tok, DC_AUG_OPS)
        if tok not in ops:
            ops.append(tok)
    return tuple(ops)


class DCAugment:
    """``DCAugment("crop_scale_rotate")(x, generator=g)``: one random op per image (module docstring)."""

    def __init__(self, strategy: str = DC_MNIST) -> None:
        self.ops = _parse(strategy)
        self.strategy = "_".join(self.ops)

    def __repr__(self) -> str:
        return f"DCAugment({self.strategy!r})"

    def __call__(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
            raise BadInputError("DC augmentation expects floating-point images of shape (N, C, H, W)")
        n, _, h, w = x.shape
        gdev = generator.device if generator is not None else torch.device("cpu")

        def u(*shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=generator, device=gdev, dtype=torch.float32)

        # every random number is drawn for every image, so an image's draws do not depend on the ops
        # the others got (and the stream advances by the same amount whatever the draws are)
        op = torch.randint(len(self.ops), (n,), generator=generator, device=gdev)
        shift = torch.randint(-_CROP_PX, _CROP_PX + 1, (n, 2), generator=generator, device=gdev).float()
        factor = 1.0 - _SCALE + 2.0 * _SCALE * u(n, 2)
        angle = (2.0 * u(n) - 1.0) * math.radians(_ROTATE_DEG)
        noise = torch.randn(x.shape, generator=generator, device=gdev) if "noise" in self.ops else None

        def chosen(name: str) -> torch.Tensor:
            return op == self.ops.index(name) if name in self.ops else torch.zeros(n, dtype=torch.bool, device=gdev)

        crop, scale, rotate = chosen("crop"), chosen("scale"), chosen("rotate")
        # theta maps output to input coordinates in [-1, 1] (align_corners=False): identity by default
        one, zero = torch.ones(n, device=gdev), torch.zeros(n, device=gdev)
        a, b, c, d, tx, ty = one, zero, zero, one, zero, zero
        # crop: output (i, j) reads input (i + dy, j + dx)
        tx = torch.where(crop, 2.0 * shift[:, 1] / w, tx)
        ty = torch.where(crop, 2.0 * shift[:, 0] / h, ty)
        # scale: an image enlarged by f reads input at (output / f) about the centre
        a = torch.where(scale, 1.0 / factor[:, 1], a)
        d = torch.where(scale, 1.0 / factor[:, 0], d)
        # rotate, in pixel units (normalised coordinates scale x by 2/w and y by 2/h)
        cos, sin = torch.cos(angle), torch.sin(angle)
        a = torch.where(rotate, cos, a)
        b = torch.where(rotate, -sin * h / w, b)
        c = torch.where(rotate, sin * w / h, c)
        d = torch.where(rotate, cos, d)
        theta = torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1)], 1).to(x.device, x.dtype)
        warped = crop | scale | rotate
        out = x
        if bool(warped.any()):
            mean = x.mean(dim=(0, 2, 3), keepdim=True)  # DC fills with the batch's per-channel mean
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            moved = F.grid_sample(x - mean, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + mean
            out = torch.where(warped.to(x.device).view(n, 1, 1, 1), moved, x)
        if noise is not None:
            noisy = chosen("noise").to(x.device).view(n, 1, 1, 1)
            out = torch.where(noisy, out + _NOISE * noise.to(x.device, x.dtype), out)
        return out
