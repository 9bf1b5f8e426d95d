"""The SimpleBits simplifier: a UNet wrapped residually so that it starts as the identity.

    out = sigmoid(logit(clamp(x, 1e-3, 1 - 1e-3)) + w * unet(x)),   w a scalar, w = 0 at init

(REFERENCE.md §2.)  At init the output equals the input up to the clamp; while ``w == 0`` the
UNet's own parameters receive zero gradient and only ``w`` learns, which then opens the path.

UNet layout (``ngf`` = 64, ``downsamples`` = D = 5, channel multiplier ``min(2**level, 8)``):

    in:      2x - 1 (maps [0, 1] to [-1, 1]); replicate-pad H, W up to a multiple of 2**D
    level 0: [conv3x3 -> affine -> ELU] x 2                           ngf,        H
    down l:  conv3x3 stride 2 -> affine -> ELU, conv3x3 -> affine -> ELU  ngf*m(l), H/2**l
    up l:    nearest x2, concat skip of level l-1, [conv3x3 -> affine -> ELU] x 2
    out:     conv1x1 -> C channels (unbounded: added to the logits), crop the padding off

"affine" is a learned per-channel scale and bias (init 1, 0), no normaliser.  Inner convs
are initialised N(0, g**2 / fan_in) with g = 1/sqrt(E[ELU(z)**2]) ~ 1.245 so activations
keep roughly their scale through the depth without a normaliser.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BadInputError
from .convnet import _check_input, _image_hw, _pos_int
from .registry import register_model

__all__ = ["UNet", "UNetSimplifier", "ChannelAffine", "CLAMP_EPS"]

CLAMP_EPS = 1e-3
_ELU_SECOND_MOMENT = 0.6449454  # E[ELU(z)**2], z ~ N(0, 1)


class ChannelAffine(nn.Module):
    """(N, C, H, W) -> x * scale[c] + bias[c]; the normaliser-free stand-in for BatchNorm."""

    def __init__(self, c: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _block(c_in: int, c_out: int, stride: int = 1, ws: bool = False) -> nn.Sequential:
    if ws:
        from .nf_wrn import WSConv2d

        conv = WSConv2d(c_in, c_out, 3, stride=stride, padding=1)
        with torch.no_grad():  # standardised rows have unit norm: gain g keeps ELU activations at scale
            conv.gain.fill_(1.0 / math.sqrt(_ELU_SECOND_MOMENT))
    else:
        conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        nn.init.normal_(conv.weight, std=1.0 / math.sqrt(_ELU_SECOND_MOMENT * conv.weight[0].numel()))
    nn.init.zeros_(conv.bias)
    return nn.Sequential(conv, ChannelAffine(c_out), nn.ELU())


class UNet(nn.Module):
    """UNet with ELU and per-channel affine; any input size (padded internally, cropped back)."""

    def __init__(self, *, channels: int, ngf: int = 64, downsamples: int = 5, max_mult: int = 8, ws: bool = False):
        super().__init__()
        b = lambda ci, co, stride=1: _block(ci, co, stride, ws)  # noqa: E731
        self.channels = _pos_int("channels", channels)
        ngf = _pos_int("ngf", ngf)
        self.downsamples = _pos_int("downsamples", downsamples, 0)
        max_mult = _pos_int("max_mult", max_mult)
        c = [ngf * min(2**level, max_mult) for level in range(self.downsamples + 1)]
        self.inc = nn.Sequential(b(self.channels, c[0]), b(c[0], c[0]))
        self.down = nn.ModuleList(
            nn.Sequential(b(c[lv - 1], c[lv], stride=2), b(c[lv], c[lv]))
            for lv in range(1, self.downsamples + 1)
        )
        # up[i] brings level i+1 back to level i
        self.up = nn.ModuleList(
            nn.Sequential(b(c[lv + 1] + c[lv], c[lv]), b(c[lv], c[lv])) for lv in range(self.downsamples)
        )
        self.out = nn.Conv2d(c[0], self.channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> (N, C, H, W) unbounded."""
        h, w = x.shape[-2:]
        m = 2**self.downsamples
        ph, pw = -h % m, -w % m
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)  # (left, right, top, bottom)
        y = 2 * x - 1
        if ph or pw:
            y = F.pad(y, pad, mode="replicate")
        skips = [self.inc(y)]
        for down in self.down:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for lv in reversed(range(self.downsamples)):
            y = F.interpolate(y, scale_factor=2, mode="nearest")
            y = self.up[lv](torch.cat([y, skips.pop()], dim=1))
        y = self.out(y)
        return y[..., pad[2] : pad[2] + h, pad[0] : pad[0] + w]


class UNetSimplifier(nn.Module):
    """``sigmoid(logit(clamp(x, eps, 1-eps)) + w * unet(x))``; identity at init (``w = 0``).

    Parameters
    ----------
    channels, image_size:
        input channels (1 or 3) and ``H`` or ``(H, W)`` (recorded; any size works).
    ngf:
        base width (64).
    downsamples:
        number of stride-2 levels (5); sizes not divisible by 2**downsamples are padded.
    max_mult:
        cap of the per-level channel multiplier (8: widths 64, 128, 256, 512, 512, 512).
    ws:
        scaled weight standardisation in the 3x3 convs (as in the NF-WRN classifier), off by
        default (the paper's UNet). With it a conv's output scale is set by its per-channel gain,
        not by the size of its weights, so Adam updates cannot grow the output multiplicatively
        through the depth (see docs/simplify.md: without it short, high-learning-rate runs blow
        the output up until every pixel saturates).
    grad_floor:
        a floor under the output sigmoid's derivative in the backward pass (0, the paper: none).
        The forward value is unchanged (the same bits); the gradient reaching the logit ``z`` is
        ``max(s (1 - s), grad_floor)`` times the output's, so a pixel driven to black (``z`` far
        below zero, where ``s (1 - s)`` is below 1e-6) can still be pulled back by the
        classification terms. A deviation against the black trap measured on the stripes set
        (docs/simplify.md, "Stripes at small lambda"): without it a simplifier that went black in
        the first joint epoch cannot leave black, whatever the loss says later.
    """

    def __init__(
        self,
        *,
        channels: int,
        image_size: int | tuple[int, int] = 32,
        ngf: int = 64,
        downsamples: int = 5,
        max_mult: int = 8,
        ws: bool = False,
        grad_floor: float = 0.0,
    ):
        super().__init__()
        if isinstance(grad_floor, bool) or not isinstance(grad_floor, (int, float)) or not 0 <= grad_floor <= 0.25:
            raise BadInputError(f"grad_floor must be a number in [0, 0.25] (the sigmoid's derivative is at most "
                                f"0.25); got {grad_floor!r}")
        self.grad_floor = float(grad_floor)
        self.image_hw = _image_hw(image_size)
        self.unet = UNet(channels=channels, ngf=ngf, downsamples=downsamples, max_mult=max_mult, ws=bool(ws))
        self.channels = self.unet.channels
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> (N, C, H, W) in (0, 1)."""
        _check_input(x, self.channels, None, "unet-simplifier")
        logits = torch.logit(x.clamp(CLAMP_EPS, 1 - CLAMP_EPS))
        z = logits + self.w * self.unet(x)
        out = torch.sigmoid(z)
        if self.grad_floor > 0 and torch.is_grad_enabled():
            # forward: + 0 exactly; backward: d out / dz = s (1 - s) + extra = max(s (1 - s), floor)
            extra = (self.grad_floor - out * (1 - out)).clamp(min=0).detach()
            out = out + extra * (z - z.detach())
        return out


@register_model(
    "unet-simplifier",
    description="SimpleBits simplifier: residual UNet (ELU, per-channel affine), identity at init; "
    "options ngf, downsamples, max_mult, ws, grad_floor",
    kind="simplifier",
)
def _unet_simplifier(
    *, channels: int, num_classes: int, image_size: int | tuple[int, int], **options: Any
) -> nn.Module:
    del num_classes  # a simplifier maps images to images
    return UNetSimplifier(channels=channels, image_size=image_size, **options)
