"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, 2021).

Every op is differentiable with respect to the input images (arithmetic, masks that
multiply, ``gather`` and ``grid_sample``) and fully batched: no Python loop over images.

A strategy such as ``"color_crop_cutout_flip_scale_rotate"`` names the ops a call may use;
as in DSA, each call samples ONE of them (``color`` counts as one op) and applies it.

The ops and their parameters (images are assumed to lie roughly in [0, 1] or be
normalised; nothing is clamped):

``color``
    brightness ``x + b`` with ``b ~ U(-0.5, 0.5)``; then saturation: each pixel is mixed
    with its mean over channels, ``m + s (x - m)`` with ``s ~ U(0, 2)`` (a no-op for
    1-channel images); then contrast around the image mean (over C, H, W),
    ``m + c (x - m)`` with ``c ~ U(0.5, 1.5)``. The three are applied in that order.
``crop``
    translation by an integer shift per axis, uniform in ``[-r, r]`` with
    ``r = int(0.125 * size + 0.5)`` (4 pixels for 28 and 32), zero padding.
``cutout``
    zero a square (rectangle for non-square images) of ``int(0.5 * size + 0.5)`` pixels
    per side whose centre is uniform over the image; the part outside the image is dropped.
``flip``
    horizontal flip with probability 0.5.
``scale``
    independent x / y factors ``U(1/1.2, 1.2)`` of the sampling grid (``affine_grid`` +
    bilinear ``grid_sample``, zero padding).
``rotate``
    rotation by ``U(-15, 15)`` degrees (``affine_grid`` + ``grid_sample``).

Random parameters are drawn from the ``torch.Generator`` passed in (on the generator's
own device, CPU for a default generator) and then moved to the images' device, so the
same generator seed gives the same output. The size-dependent parameters (crop shift,
cutout centre) are stored as fractions in [0, 1) and turned into pixels at ``apply``
time, so a parameter set does not depend on the image size.

Siamese use (the same transform for the real and the synthetic batch of a class)::

    params = dsa.sample(1, generator=g, device=x.device, siamese=True)
    real_aug = dsa.apply(real, params)   # any batch size
    syn_aug = dsa.apply(syn, params)     # same transform
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
import torch.nn.functional as F

from simplebits.errors import BadInputError, MismatchError, UnknownNameError

__all__ = ["DSA", "DSAParams", "DSA_OPS", "parse_strategy"]

#: every op a strategy may name, in canonical order
DSA_OPS: tuple[str, ...] = ("color", "crop", "cutout", "flip", "scale", "rotate")

# DSA default hyper-parameters
_BRIGHTNESS = 1.0  # b ~ (U - 0.5) * 1.0
_SATURATION = 2.0  # s ~ U * 2
_CONTRAST = 0.5  # c ~ U + 0.5
_CROP = 0.125
_CUTOUT = 0.5
_FLIP_P = 0.5
_SCALE = 1.2
_ROTATE_DEG = 15.0


def parse_strategy(strategy: str) -> tuple[str, ...]:
    """Split a strategy like ``"color_crop_flip"`` into op names, validated.

    ``"none"`` and ``""`` give ``()`` (identity). Names are case-insensitive; repeats are
    kept once (first position wins). An unknown name raises
    :class:`~simplebits.errors.UnknownNameError` (a ``BadInputError``) listing the valid ops.
    """
    if not isinstance(strategy, str):
        raise BadInputError(
            f"DSA strategy must be a string such as 'color_crop_flip', got {type(strategy).__name__}"
        )
    s = strategy.strip().lower()
    if s in ("", "none"):
        return ()
    ops: list[str] = []
    for tok in s.split("_"):
        if tok not in DSA_OPS:
            raise UnknownNameError("DSA op", tok, DSA_OPS)
        if tok not in ops:
            ops.append(tok)
    return tuple(ops)


@dataclass(frozen=True, eq=False)
class DSAParams:
    """One sampled DSA transform: the op name and its parameter tensors.

    ``siamese=True``: one parameter set (leading dim 1) shared by every image of any batch;
    otherwise one set per image (leading dim ``n``, must equal the batch size).
    ``op == "none"`` is the identity (empty strategy).
    """

    op: str
    tensors: Mapping[str, torch.Tensor] = field(default_factory=dict)
    siamese: bool = False
    n: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "tensors", MappingProxyType(dict(self.tensors)))

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def to(self, device: torch.device | str) -> "DSAParams":
        """The same parameters on another device."""
        return DSAParams(
            self.op, {k: v.to(device) for k, v in self.tensors.items()}, self.siamese, self.n
        )

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in self.tensors.items())
        return f"DSAParams(op={self.op!r}, siamese={self.siamese}, n={self.n}, {shapes})"


def _as_generator_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


class DSA:
    """Differentiable Siamese Augmentation; see the module docstring for the ops.

    ``flip=False`` removes ``flip`` from the strategy (digits, where a mirrored 2 is not a 2).
    """

    def __init__(
        self, strategy: str = "color_crop_cutout_flip_scale_rotate", *, flip: bool = True
    ) -> None:
        ops = parse_strategy(strategy)
        if not flip:
            ops = tuple(o for o in ops if o != "flip")
        self.strategy = strategy
        self.flip = flip
        self.ops: tuple[str, ...] = ops

    def __repr__(self) -> str:
        return f"DSA(ops={'_'.join(self.ops) or 'none'!r})"

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        siamese: bool = False,
        op: str | None = None,
    ) -> DSAParams:
        """Draw one op (uniform over the strategy's ops) and its parameters.

        ``siamese=False``: ``n`` parameter sets, one per image of a batch of ``n``.
        ``siamese=True``: one set shared by every image of any batch (``n`` is ignored).
        ``op`` forces the op (it must be in the strategy) instead of drawing it.
        All random numbers come from ``generator`` (the global torch RNG if ``None``);
        the tensors are then moved to ``device`` (default CPU).
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise BadInputError(f"DSA.sample: n must be a positive int, got {n!r}")
        dev = torch.device(device) if device is not None else torch.device("cpu")
        if not self.ops:
            if op not in (None, "none"):
                raise BadInputError(f"DSA.sample: op {op!r} is not in an empty strategy")
            return DSAParams("none", {}, siamese, 1 if siamese else n)
        gdev = _as_generator_device(generator)
        if op is None:
            k = int(torch.randint(len(self.ops), (1,), generator=generator, device=gdev))
            op = self.ops[k]
        elif op not in self.ops:
            raise BadInputError(
                f"DSA.sample: op {op!r} is not in this strategy; ops: {', '.join(self.ops)}"
            )
        m = 1 if siamese else n

        def u(*shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=generator, device=gdev, dtype=torch.float32)

        if op == "color":
            t = {
                "brightness": (u(m) - 0.5) * _BRIGHTNESS,
                "saturation": u(m) * _SATURATION,
                "contrast": u(m) + _CONTRAST,
            }
        elif op == "crop":
            t = {"shift": u(m, 2)}  # fractions; (y, x)
        elif op == "cutout":
            t = {"centre": u(m, 2)}  # fractions; (y, x)
        elif op == "flip":
            t = {"flip": u(m) < _FLIP_P}
        elif op == "scale":
            t = {"scale": u(m, 2) * (_SCALE - 1.0 / _SCALE) + 1.0 / _SCALE}  # (sx, sy)
        elif op == "rotate":
            t = {"angle": (u(m) - 0.5) * 2.0 * math.radians(_ROTATE_DEG)}
        else:  # pragma: no cover - guarded by parse_strategy
            raise UnknownNameError("DSA op", op, DSA_OPS)
        return DSAParams(op, {k: v.to(dev) for k, v in t.items()}, siamese, m)

    # ------------------------------------------------------------------ applying
    def apply(self, x: torch.Tensor, params: DSAParams) -> torch.Tensor:
        """Apply a sampled transform to ``x`` (N, C, H, W); differentiable w.r.t. ``x``.

        The same ``params`` always give the same transform. Siamese params apply to a batch
        of any size; per-sample params need ``len(x) == params.n``.
        """
        return apply_params(x, params)

    def __call__(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None, siamese: bool = False
    ) -> torch.Tensor:
        """Sample one op with per-sample parameters (shared ones if ``siamese``) and apply it."""
        _check_images(x)
        return apply_params(
            x, self.sample(x.shape[0], generator=generator, device=x.device, siamese=siamese)
        )


# ---------------------------------------------------------------------------- ops
def _check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise BadInputError(f"DSA expects images of shape (N, C, H, W), got {shape}")
    if not x.is_floating_point():
        raise BadInputError(f"DSA expects floating-point images, got dtype {x.dtype}")


def apply_params(x: torch.Tensor, params: DSAParams) -> torch.Tensor:
    """Functional form of :meth:`DSA.apply`."""
    _check_images(x)
    if not isinstance(params, DSAParams):
        raise BadInputError(f"expected DSAParams, got {type(params).__name__}")
    b = x.shape[0]
    if not params.siamese and params.n != b:
        raise MismatchError(
            f"DSA params were sampled for {params.n} images but the batch has {b}; "
            "sample with n=len(x), or with siamese=True to share one transform"
        )
    t = {k: v.to(x.device) for k, v in params.tensors.items()}
    op = params.op
    if op == "none":
        return x
    if op == "color":
        return _color(x, t["brightness"], t["saturation"], t["contrast"])
    if op == "crop":
        return _crop(x, t["shift"])
    if op == "cutout":
        return _cutout(x, t["centre"])
    if op == "flip":
        return _flip(x, t["flip"])
    if op == "scale":
        s = t["scale"].to(x.dtype)
        zero = torch.zeros_like(s[:, 0])
        theta = torch.stack(
            [torch.stack([s[:, 0], zero, zero], 1), torch.stack([zero, s[:, 1], zero], 1)], 1
        )
        return _warp(x, theta)
    if op == "rotate":
        a = t["angle"].to(x.dtype)
        c, s, zero = torch.cos(a), torch.sin(a), torch.zeros_like(a)
        theta = torch.stack([torch.stack([c, -s, zero], 1), torch.stack([s, c, zero], 1)], 1)
        return _warp(x, theta)
    raise UnknownNameError("DSA op", op, DSA_OPS)


def _per_image(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(x.dtype).view(-1, 1, 1, 1)


def _color(x: torch.Tensor, b: torch.Tensor, s: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """brightness -> saturation -> contrast, folded into one affine map per pixel.

    Sequentially: ``x1 = x + b``; ``x2 = m1 + s (x1 - m1)`` with ``m1`` the channel mean
    of ``x1`` (skipped for one channel); ``x3 = M + c (x2 - M)`` with ``M`` the image mean
    of ``x2``, which equals the image mean of ``x1`` (saturation keeps it), ``mean(x) + b``.
    Hence ``x3 = c s x + [c s b + c (1 - s) m1 + (1 - c) M]``: one multiply-add.
    """
    b, s, c = _per_image(b, x), _per_image(s, x), _per_image(c, x)
    big_m = x.mean(dim=(1, 2, 3), keepdim=True) + b
    if x.shape[1] > 1:
        m1 = x.mean(dim=1, keepdim=True) + b  # (n, 1, h, w)
        cs = c * s
        offset = cs * b + (c - cs) * m1 + (1 - c) * big_m
    else:  # saturation is the identity on one channel
        cs = c
        offset = c * b + (1 - c) * big_m
    return torch.addcmul(offset, x, cs)


def _radius(size: int, ratio: float) -> int:
    return int(size * ratio + 0.5)


def _crop(x: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    n, ch, h, w = x.shape
    ry, rx = _radius(h, _CROP), _radius(w, _CROP)
    # integer shifts in [-r, r]; output (i, j) reads input (i + dy, j + dx), zero outside
    dy = (frac[:, 0] * (2 * ry + 1)).floor().long().clamp_(max=2 * ry) - ry
    dx = (frac[:, 1] * (2 * rx + 1)).floor().long().clamp_(max=2 * rx) - rx
    hp, wp = h + 2 * ry, w + 2 * rx
    xp = F.pad(x, (rx, rx, ry, ry))
    rows = torch.arange(h, device=x.device).view(1, h, 1) + (dy + ry).view(-1, 1, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + (dx + rx).view(-1, 1, 1)
    idx = (rows * wp + cols).view(-1, 1, h * w).expand(n, ch, h * w)
    return xp.reshape(n, ch, hp * wp).gather(2, idx).view(n, ch, h, w)


def _cutout(x: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    _, _, h, w = x.shape
    sh, sw = _radius(h, _CUTOUT), _radius(w, _CUTOUT)
    # centre uniform over [0, size] (even side) or [0, size - 1] (odd side), as in DSA
    cy = (frac[:, 0] * (h + 1 - sh % 2)).floor().long()
    cx = (frac[:, 1] * (w + 1 - sw % 2)).floor().long()
    top, left = (cy - sh // 2).view(-1, 1), (cx - sw // 2).view(-1, 1)
    r = torch.arange(h, device=x.device).view(1, h)
    c = torch.arange(w, device=x.device).view(1, w)
    in_r = (r >= top) & (r < top + sh)  # (m, h)
    in_c = (c >= left) & (c < left + sw)  # (m, w)
    keep = ~(in_r[:, :, None] & in_c[:, None, :])  # (m, h, w)
    return x * keep.unsqueeze(1).to(x.dtype)


def _flip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if mask.numel() == 1:  # shared decision
        return x.flip(3) if bool(mask) else x
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    theta = theta.expand(n, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
