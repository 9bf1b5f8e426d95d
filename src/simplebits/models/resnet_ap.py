"""ResNet-10-AP: a ResNet-10 that downsamples by average pooling instead of strided convs.

The cross-architecture network of IDC / YOCO evaluation.  Layout (``width`` = 64):

    stem   conv3x3(C -> 64) -> norm -> ReLU                      (full resolution)
    stage1 BasicBlock(64  -> 64)                                  (no downsampling)
    stage2 BasicBlock(64  -> 128, down)                           H/2
    stage3 BasicBlock(128 -> 256, down)                           H/4
    stage4 BasicBlock(256 -> 512, down)                           H/8
    global average pool -> linear(512 -> num_classes)

BasicBlock with downsampling (our exact choice, following IDC's ResNetAP block):

    main:     conv3x3 -> norm -> ReLU -> AvgPool2d(2) -> conv3x3 -> norm
    shortcut: AvgPool2d(2) -> conv1x1 -> norm        (identity when shape is unchanged)
    out = ReLU(main + shortcut)

IDC's shortcut is conv1x1 then pool; pooling first gives the same function (both are
linear and commute) at a quarter of the cost.  Pools use ``ceil_mode=True`` so odd sizes
keep their border (28 -> 14 -> 7 -> 4 instead of 7 -> 3): with no padding, a window that
runs past the edge averages only the pixels it covers.  Works for 16x16, 28x28, 32x32 and
any size >= 1.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .convnet import _check_input, _choice, _image_hw, _pos_int
from .registry import register_model

__all__ = ["ResNetAP", "BasicBlockAP", "NORMS"]

NORMS = ("instance", "batch", "none")


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "instance":
        return nn.GroupNorm(c, c, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(c)
    return nn.Identity()


def _conv(c_in: int, c_out: int, k: int, norm: str) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=norm == "none")


class BasicBlockAP(nn.Module):
    """Two conv3x3; downsampling by 2x2 average pooling after the first conv's ReLU."""

    def __init__(self, c_in: int, c_out: int, *, down: bool, norm: str):
        super().__init__()
        self.conv1, self.norm1 = _conv(c_in, c_out, 3, norm), _norm(norm, c_out)
        self.pool = nn.AvgPool2d(2, ceil_mode=True) if down else nn.Identity()
        self.conv2, self.norm2 = _conv(c_out, c_out, 3, norm), _norm(norm, c_out)
        self.relu = nn.ReLU()
        if down or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(2, ceil_mode=True) if down else nn.Identity(),
                _conv(c_in, c_out, 1, norm),
                _norm(norm, c_out),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(self.relu(self.norm1(self.conv1(x))))
        out = self.norm2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetAP(nn.Module):
    """ResNet-10-AP (one BasicBlock per stage, average-pool downsampling).

    Parameters
    ----------
    channels, num_classes, image_size:
        input channels, number of classes, ``H`` or ``(H, W)`` (recorded; any input size works).
    norm:
        ``instance`` (GroupNorm(c, c), default, as IDC), ``batch``, ``none``.
    width:
        channels of the stem and first stage (64); stages use width x (1, 2, 4, 8).
    """

    def __init__(
        self,
        *,
        channels: int,
        num_classes: int,
        image_size: int | tuple[int, int] = 32,
        norm: str = "instance",
        width: int = 64,
    ):
        super().__init__()
        self.channels = _pos_int("channels", channels)
        num_classes = _pos_int("num_classes", num_classes)
        width = _pos_int("width", width)
        norm = _choice("norm", norm, NORMS)
        self.image_hw = _image_hw(image_size)
        self.stem = nn.Sequential(_conv(self.channels, width, 3, norm), _norm(norm, width), nn.ReLU())
        widths = [width, 2 * width, 4 * width, 8 * width]
        blocks, c_in = [], width
        for i, c in enumerate(widths):
            blocks.append(BasicBlockAP(c_in, c, down=i > 0, norm=norm))
            c_in = c
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embed_dim = widths[-1]
        self.classifier = nn.Linear(self.embed_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 8*width): globally pooled features before the linear layer."""
        _check_input(x, self.channels, None, "resnet10-ap")  # any H, W works
        return self.pool(self.stages(self.stem(x))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


@register_model(
    "resnet10-ap",
    description="ResNet-10 with average-pool downsampling (IDC/YOCO cross-architecture); options norm, width",
)
def _resnet10_ap(*, channels: int, num_classes: int, image_size: int | tuple[int, int], **options: Any) -> nn.Module:
    return ResNetAP(channels=channels, num_classes=num_classes, image_size=image_size, **options)
