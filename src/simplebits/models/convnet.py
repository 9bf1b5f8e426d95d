"""ConvNet-3: the standard network of dataset condensation (Zhao & Bilen, DC/DSA/DM; IDC).

``depth`` x [conv3x3 ``width`` -> norm -> act -> pool 2], flatten, linear.  Defaults give
the reference ConvNet-3: width 128, instance norm (``GroupNorm(128, 128, affine=True)``),
ReLU, average pooling, a linear layer on 128*4*4 = 2048 features for 32x32 inputs.

28x28 inputs are treated as in the reference code: the first conv pads by 3 instead of 1,
so its output is 32x32 and the feature size equals the 32x32 case.  Any other size is
allowed; the feature size comes from a shape computation over the layers, not a table.

This module also holds the small validation helpers the other model files share.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BadInputError, MismatchError
from .registry import register_model

__all__ = ["ConvNet", "AvgPool2x2", "NORMS", "ACTS", "POOLS", "MIN_NORM_SIDE", "fit_depth"]

NORMS = ("instance", "batch", "group", "layer", "none")
ACTS = ("relu", "elu", "leakyrelu")
POOLS = ("avg", "max", "none")

# "group": the reference code's GroupNorm uses 4 groups; gcd keeps it valid for any width.
GROUPNORM_GROUPS = 4


# --------------------------------------------------------------------------- validation
def _choice(what: str, value: Any, valid: Sequence[str]) -> str:
    if not isinstance(value, str) or value.lower() not in valid:
        raise BadInputError(f"{what} must be one of {', '.join(valid)}; got {value!r}")
    return value.lower()


def _pos_int(what: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadInputError(f"{what} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _image_hw(image_size: Any) -> tuple[int, int]:
    """``32`` or ``(28, 28)`` -> ``(H, W)``."""
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        hw = (image_size, image_size)
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        hw = tuple(image_size)
    else:
        raise BadInputError(f"image_size must be an int or (height, width); got {image_size!r}")
    for v in hw:
        _pos_int("image_size", v)
    return int(hw[0]), int(hw[1])


def _check_input(x: torch.Tensor, channels: int, hw: tuple[int, int] | None, model: str) -> None:
    if x.dim() != 4 or x.shape[1] != channels or (hw is not None and tuple(x.shape[-2:]) != hw):
        want = f"(N, {channels}, {hw[0]}, {hw[1]})" if hw else f"(N, {channels}, H, W)"
        raise MismatchError(f"{model} expects input of shape {want}; got {tuple(x.shape)}")


# --------------------------------------------------------------------------- the model
def _norm(kind: str, c: int) -> nn.Module:
    if kind == "instance":
        return nn.GroupNorm(c, c, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "group":
        return nn.GroupNorm(math.gcd(GROUPNORM_GROUPS, c), c, affine=True)
    if kind == "layer":
        return nn.GroupNorm(1, c, affine=True)  # normalises over (C, H, W), per-channel affine
    return nn.Identity()


def _act(kind: str) -> nn.Module:
    return {"relu": nn.ReLU, "elu": nn.ELU, "leakyrelu": lambda: nn.LeakyReLU(0.01)}[kind]()


# --------------------------------------------------------------------------- pooling
def _pool2x2(x: torch.Tensor) -> torch.Tensor:
    """Mean of each 2x2 block of the last two (even) dims, summed in the order ATen's CPU
    ``avg_pool2d`` uses (row by row, from zero, in float32 for 16-bit floats), then divided by 4."""
    a = x[..., 0::2, 0::2]
    if x.dtype in (torch.bfloat16, torch.float16):
        a = a.float()
    s = a + x[..., 0::2, 1::2] + x[..., 1::2, 0::2] + x[..., 1::2, 1::2]
    return (s * 0.25).to(x.dtype)


def _unpool2x2(g: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`_pool2x2`: each value / 4 copied to its 2x2 block."""
    q = g * 0.25
    r = torch.stack((q, q), dim=-1).flatten(-2)  # (..., h, 2w)
    return torch.stack((r, r), dim=-2).flatten(-3, -2)  # (..., 2h, 2w)


class _Pool2x2(torch.autograd.Function):
    """2x2 / stride 2 average pooling. Its backward is :class:`_Unpool2x2`, whose backward is this
    pooling again, so every order of derivative sums in ATen's order (the double backward of
    gradient matching gives the same bits). No ``jvp`` (torch.compile cannot trace a Function that
    has one): under forward-mode AD the module uses ``F.avg_pool2d``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return _pool2x2(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        return _Unpool2x2.apply(g)


class _Unpool2x2(torch.autograd.Function):
    """The adjoint of :class:`_Pool2x2` (``avg_pool2d_backward``), differentiable by pooling."""

    generate_vmap_rule = True

    @staticmethod
    def forward(g: torch.Tensor) -> torch.Tensor:
        return _unpool2x2(g)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, gg: torch.Tensor) -> torch.Tensor:
        return _Pool2x2.apply(gg)


def _exporting() -> bool:
    """torch.export or torch.compile is tracing (inductor writes its own pooling kernel)."""
    compiler = getattr(torch, "compiler", None)
    for name in ("is_exporting", "is_compiling"):
        check = getattr(compiler, name, None)
        if check is not None and check():
            return True
    return False


def _transformed() -> bool:
    """A torch.func transform (vmap, grad, jvp) or forward-mode AD (dual tensors) is active."""
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    if active is not None and active():
        return True
    return getattr(torch.autograd.forward_ad, "_current_level", -1) >= 0


class AvgPool2x2(nn.Module):
    """``nn.AvgPool2d(2)`` computed from four strided slices on the CPU: the same bits forward
    and backward (tested), 1.5-4x faster on the ConvNet's 32x32 and 16x16 maps.

    ATen's CPU ``avg_pool2d`` walks each window with a general loop and its backward zero-fills
    and scatters; at the ConvNet's sizes that made pooling about a quarter of a float32 training
    step and more than a third of a bf16 one (benchmarks/pool_step.py). The slices add the same
    four values in the same order and scale by the same power of two, so nothing that was computed
    before changes. Odd-sized maps (the floor mode drops a row or column) and other devices use
    ``F.avg_pool2d`` itself. No parameters, so checkpoints of ``nn.AvgPool2d`` ConvNets load as
    before. A traced, scripted or exported ConvNet (``torch.jit.trace``, ONNX, ``torch.export``)
    records ``avg_pool2d`` itself, so the saved program needs nothing from simplebits; so does
    ``torch.compile`` (inductor generates its own pooling kernel; compiled runs keep their bits), and
    under ``torch.func`` transforms (``vmap``, ``grad``) and forward-mode AD it uses ``avg_pool2d``
    too (faster there, and it has the ``jvp``).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.jit.is_tracing() or torch.jit.is_scripting() or _exporting() or _transformed()
                or x.device.type != "cpu" or x.shape[-1] % 2 or x.shape[-2] % 2 or not x.is_floating_point()):
            # TorchScript/ONNX/export record ATen's op (a Python Function cannot be saved), and so
            # does torch.compile (so compiled runs keep their bits; inductor fuses it anyway); under
            # torch.func transforms (explain's vmap(grad)) the Function's generated vmap rule costs
            # more than it saves (measured 0.89x), and forward-mode AD needs ATen's jvp
            return F.avg_pool2d(x, 2)
        return _Pool2x2.apply(x)

    def extra_repr(self) -> str:
        return "kernel_size=2, stride=2"


class ConvNet(nn.Module):
    """ConvNet-D of dataset condensation.

    Parameters
    ----------
    channels, num_classes, image_size:
        input channels (1 or 3), number of classes, ``H`` or ``(H, W)`` of the input.
    width:
        channels of every conv (128 in the reference).
    depth:
        number of conv blocks (3 in the reference).
    norm:
        ``instance`` (GroupNorm(width, width), the reference default), ``batch``,
        ``group`` (GroupNorm(gcd(4, width), width), as the reference's "groupnorm"),
        ``layer`` (GroupNorm(1, width)), ``none``.
    act:
        ``relu`` (default), ``elu``, ``leakyrelu`` (slope 0.01).
    pool:
        ``avg`` (default), ``max`` (both 2x2, stride 2), ``none``.

    Convs carry a bias only where the following norm does not remove it (``none``,
    ``group``, ``layer``): before instance or batch norm a bias has no effect and would
    only add a parameter whose gradient is zero.
    """

    def __init__(
        self,
        *,
        channels: int,
        num_classes: int,
        image_size: int | tuple[int, int] = 32,
        width: int = 128,
        depth: int = 3,
        norm: str = "instance",
        act: str = "relu",
        pool: str = "avg",
    ):
        super().__init__()
        channels = _pos_int("channels", channels)
        num_classes = _pos_int("num_classes", num_classes)
        width = _pos_int("width", width)
        depth = _pos_int("depth", depth)
        norm = _choice("norm", norm, NORMS)
        act = _choice("act", act, ACTS)
        pool = _choice("pool", pool, POOLS)
        self.image_hw = _image_hw(image_size)
        self.channels = channels

        h, w = self.image_hw
        layers: list[nn.Module] = []
        c_in = channels
        for d in range(depth):
            pad = _first_pad((h, w)) if d == 0 else 1
            layers.append(nn.Conv2d(c_in, width, 3, padding=pad, bias=norm in ("none", "group", "layer")))
            h, w = h + 2 * pad - 2, w + 2 * pad - 2  # conv3x3 shape rule
            layers += [_norm(norm, width), _act(act)]
            if pool != "none":
                if h < 2 or w < 2:
                    raise BadInputError(
                        f"convnet: image_size {self.image_hw} is too small for depth {depth} with "
                        f"pooling (feature map {h}x{w} before pool {d + 1}); use a smaller depth"
                    )
                layers.append(AvgPool2x2() if pool == "avg" else nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c_in = width
        self.features = nn.Sequential(*layers)
        self.feature_shape = (width, h, w)  # (C, H, W) of the last feature map
        self.embed_dim = width * h * w
        self.classifier = nn.Linear(self.embed_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, embed_dim): flattened features before the linear layer."""
        _check_input(x, self.channels, self.image_hw, "convnet")
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, num_classes) logits."""
        return self.classifier(self.embed(x))


def _first_pad(hw: tuple[int, int]) -> int:
    """Padding of the first conv: 28x28 -> 32x32, as the reference; 1 otherwise."""
    return 3 if hw == (28, 28) else 1


#: the smallest feature-map side an instance norm may normalise over (4x4 = 16 values; see :func:`fit_depth`)
MIN_NORM_SIDE = 4


def fit_depth(image_size: int | tuple[int, int], depth: int = 3, *, min_side: int = MIN_NORM_SIDE) -> int:
    """The largest depth <= ``depth`` at which every conv block's norm sees a map of at least
    ``min_side`` x ``min_side`` (the last block's input side is ``side / 2**(depth-1)``).

    Why: an instance norm over a 2x2 map (ConvNet-3 on 8x8 images: 8 -> 4 -> 2) normalises 4
    values, so its output is close to a sign pattern and its input gradient scales with 1/sigma of
    those 4 values. Gradients through it are large and nearly unrelated between images: on
    ``digits`` the per-pixel gradient of DC's matching loss is 5.4 (rms, normalised coordinates)
    against 0.9 at depth 2 and 0.29 for Fashion-MNIST at depth 3, and the real and synthetic
    gradients stay near-orthogonal (1 - cos 0.78 per row of the first layer). Gradient matching
    then destroys its images (digits IPC 1: 13.6% against 62.7% for the images it started from)
    and distribution matching barely moves them. 8x8 -> 2, 16x16 and larger -> 3 (DC's own
    ConvNet-3 on 28x28/32x32 normalises 7x7/8x8 maps at its last block).
    """
    h, w = _image_hw(image_size)
    side = min(h, w) + 2 * _first_pad((h, w)) - 2  # the first conv's output side
    best = 1
    for d in range(1, depth + 1):
        if side // 2 ** (d - 1) >= min_side:
            best = d
    return best


@register_model(
    "convnet",
    description="ConvNet-3 of dataset condensation (conv3x3 128, instance norm, ReLU, avgpool) x depth; "
    "options width, depth, norm, act, pool",
)
def _convnet(*, channels: int, num_classes: int, image_size: int | tuple[int, int], **options: Any) -> nn.Module:
    return ConvNet(channels=channels, num_classes=num_classes, image_size=image_size, **options)
