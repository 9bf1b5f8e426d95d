"""Normalizer-free Wide-ResNet (NF-WRN-16-2), the SimpleBits classifier (REFERENCE.md §2).

Brock, De & Smith 2021, "Characterizing signal propagation to close the performance gap
in unnormalized ResNets".  No BatchNorm; instead:

* **Scaled weight standardisation** in every conv (:class:`WSConv2d`):
  ``W_hat = gain * (W - mean) / (std * sqrt(fan_in))``, mean and std per output channel over
  its fan-in (in_channels x kh x kw), ``std**2 * fan_in`` floored at ``eps = 1e-4``, learned
  per-output-channel ``gain`` initialised to 1.  Zero-mean rows remove any input mean and
  unit-norm rows keep the variance: a conv maps unit-variance inputs to unit variance.
* **Scaled activation** ``gamma * ELU(x)`` with ``gamma = 1.2716``: the constant the NFNets
  authors publish for ELU, ``1 / std(ELU(z))`` for ``z ~ N(0, 1)`` (estimated by sampling;
  the exact integral gives 1.27084, a 0.06% difference that does not matter).
* **Residual blocks** ``h_{i+1} = h_i + alpha * f_i(h_i * beta_i)`` with ``alpha = 0.2``
  and ``beta_i = 1 / sqrt(Var_i)``, where ``Var_i`` is the *expected* variance of ``h_i`` at
  init, tracked analytically while building the net:

      Var = 1                      after the stem
      for each block:
          beta = 1 / sqrt(Var)
          if the block has a projection shortcut (a transition: channels or stride change):
              Var = 1              # the shortcut is conv(act(h * beta)): unit variance
          Var = Var + alpha**2     # the residual branch adds alpha**2 * 1

  In code (NF-ResNet layout): ``a = gamma*ELU(h * beta)``; shortcut ``= h`` or, at a
  transition, ``WSConv1x1(a, stride)``; branch ``= WSConv3x3(dropout(gamma*ELU(WSConv3x3(a,
  stride))))``; output ``shortcut + alpha * branch``.

WRN-d-k: ``(d - 4) / 6`` blocks per group, 3 groups of widths 16k, 32k, 64k (32/64/128 for
k = 2), strides 1, 2, 2, after a 3x3 stem of 16 channels; then gamma*ELU, global average
pool, linear.  Dropout (0.3) sits between the two convs of each block, as in WRN.
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

__all__ = ["NFWideResNet", "NFBlock", "WSConv2d", "ScaledELU", "ELU_GAMMA"]

ELU_GAMMA = 1.2716004848480225  # 1/std(ELU(z)), z ~ N(0,1); NFNets' published constant


class WSConv2d(nn.Conv2d):
    """Conv2d with scaled weight standardisation and a learned per-output-channel gain."""

    def __init__(self, *args: Any, eps: float = 1e-4, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.gain = nn.Parameter(torch.ones(self.out_channels, 1, 1, 1))
        self.eps = eps
        nn.init.kaiming_normal_(self.weight)  # only the direction matters after standardising
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def standardized_weight(self) -> torch.Tensor:
        w = self.weight  # (out, in/groups, kh, kw)
        fan_in = w[0].numel()
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        scale = torch.rsqrt(torch.clamp(var * fan_in, min=self.eps))
        return (w - mean) * scale * self.gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.standardized_weight(), self.bias)


class ScaledELU(nn.Module):
    """``gamma * ELU(x)``: unit variance out for standard normal in."""

    def __init__(self, gamma: float = ELU_GAMMA):
        super().__init__()
        self.gamma = gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x) * self.gamma


class NFBlock(nn.Module):
    """Pre-activation NF residual block: ``shortcut + alpha * f(act(h * beta))``."""

    def __init__(self, c_in: int, c_out: int, *, stride: int, alpha: float, beta: float, dropout: float):
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.act = ScaledELU()
        self.conv1 = WSConv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = WSConv2d(c_out, c_out, 3, padding=1)
        self.has_projection = stride != 1 or c_in != c_out
        self.shortcut = WSConv2d(c_in, c_out, 1, stride=stride) if self.has_projection else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = self.act(h * self.beta)
        shortcut = self.shortcut(a) if self.shortcut is not None else h
        out = self.conv2(self.drop(self.act(self.conv1(a))))
        return shortcut + self.alpha * out


class NFWideResNet(nn.Module):
    """NF-WRN-depth-widen.

    Parameters
    ----------
    channels, num_classes, image_size:
        input channels, classes, ``H`` or ``(H, W)`` (recorded; any input size works).
    depth:
        6n + 4 (16 -> 2 blocks per group).
    widen:
        width multiplier k (2): group widths 16k, 32k, 64k.
    dropout:
        dropout probability between the two convs of each block (0.3).
    alpha:
        residual branch scale (0.2).
    """

    def __init__(
        self,
        *,
        channels: int,
        num_classes: int,
        image_size: int | tuple[int, int] = 32,
        depth: int = 16,
        widen: int = 2,
        dropout: float = 0.3,
        alpha: float = 0.2,
    ):
        super().__init__()
        self.channels = _pos_int("channels", channels)
        num_classes = _pos_int("num_classes", num_classes)
        depth = _pos_int("depth", depth, 10)
        widen = _pos_int("widen", widen)
        if (depth - 4) % 6:
            raise BadInputError(f"depth must be 6n + 4 (10, 16, 22, 28, ...); got {depth}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise BadInputError(f"dropout must be a number in [0, 1); got {dropout!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise BadInputError(f"alpha must be a positive number; got {alpha!r}")
        self.image_hw = _image_hw(image_size)
        n = (depth - 4) // 6

        self.stem = WSConv2d(self.channels, 16, 3, padding=1)
        blocks: list[NFBlock] = []
        expected_var, c_in = 1.0, 16
        for g, (c, stride) in enumerate(zip((16 * widen, 32 * widen, 64 * widen), (1, 2, 2))):
            for b in range(n):
                block = NFBlock(
                    c_in, c, stride=stride if b == 0 else 1, alpha=alpha,
                    beta=1.0 / math.sqrt(expected_var), dropout=float(dropout),
                )  # fmt: skip
                if block.has_projection:
                    expected_var = 1.0  # transition: shortcut starts from act(h * beta)
                expected_var += alpha**2
                blocks.append(block)
                c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.expected_var = expected_var  # of the last block's output, at init
        self.act = ScaledELU()
        self.embed_dim = c_in
        self.classifier = nn.Linear(c_in, num_classes)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 64k, H/4, W/4): output of the last block (before the final act)."""
        _check_input(x, self.channels, None, "nf-wrn")
        return self.blocks(self.stem(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 64k): gamma*ELU then global average pool."""
        return self.act(self.feature_map(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


@register_model(
    "nf-wrn-16-2",
    description="normalizer-free Wide-ResNet 16-2 (scaled WS convs, scaled ELU, alpha 0.2, dropout 0.3), "
    "the SimpleBits classifier; options depth, widen, dropout, alpha",
)
def _nf_wrn_16_2(*, channels: int, num_classes: int, image_size: int | tuple[int, int], **options: Any) -> nn.Module:
    return NFWideResNet(channels=channels, num_classes=num_classes, image_size=image_size, **options)
