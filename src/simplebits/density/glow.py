"""Glow (Kingma & Dhariwal 2018): a compact multi-scale normalising flow (REFERENCE.md §1).

Structure for L levels of K steps::

    for each level l = 1..L:
        squeeze            (B, C, H, W) -> (B, 4C, H/2, W/2)
        K x [ ActNorm -> invertible 1x1 conv (LU) -> affine coupling ]
        if l < L: split    half the channels leave as a latent, modelled by a Gaussian whose
                           mean / log-std a zero-initialised conv predicts from the other half
    top prior: Gaussian with a learned per-channel mean / log-std (zero-initialised)

The latents are returned *standardised* (``eps = (z - mean) / std``), so that decoding from
``eps = 0`` gives each scale's mode and ``eps ~ N(0, I)`` samples the model; Alg. 2 of the
paper optimises these per-scale latents. ``log_prob(y) = sum log N(eps; 0, I) + log|det dEps/dy|``.

Inputs ``y`` live in Glow's range [-0.5, 0.5] (see :mod:`simplebits.density.bpd` for the
mapping from images in [0, 1] and the dequantisation).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BadInputError, MismatchError

__all__ = ["GlowConfig", "Glow", "ActNorm", "InvConv1x1", "AffineCoupling"]

_LOG2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class GlowConfig:
    channels: int = 1  # image channels (1 gray, 3 RGB)
    image_size: int = 32  # H = W; must be divisible by 2**levels
    levels: int = 3  # L: number of squeeze levels
    steps: int = 8  # K: flow steps per level
    width: int = 128  # hidden channels of the coupling networks

    def validate(self) -> "GlowConfig":
        if self.channels not in (1, 3):
            raise BadInputError(f"Glow channels must be 1 or 3, got {self.channels}")
        if self.levels < 1 or self.steps < 1 or self.width < 1:
            raise BadInputError(f"Glow levels, steps and width must be >= 1, got {self}")
        if self.image_size % (2**self.levels):
            raise BadInputError(
                f"image size {self.image_size} is not divisible by 2**levels = {2**self.levels}; "
                "pad the images (e.g. 28 -> 32) or use fewer levels"
            )
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def squeeze(x: torch.Tensor) -> torch.Tensor:
    # (B, C, H, W) -> (B, 4C, H/2, W/2)
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c * 4, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    # (B, 4C, H, W) -> (B, C, 2H, 2W)
    b, c, h, w = x.shape
    x = x.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c // 4, h * 2, w * 2)


class ActNorm(nn.Module):
    """Per-channel affine ``y = (x + loc) * exp(logs)`` with data-dependent initialisation:
    the first training batch sets loc/logs so that each channel has zero mean, unit variance."""

    def __init__(self, channels: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def _init(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True)
        self.loc.copy_(-mean)
        self.logs.copy_(-torch.log(std + 1e-6))
        self.initialized.fill_(1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not bool(self.initialized):
            self._init(x)
        hw = x.shape[2] * x.shape[3]
        return (x + self.loc) * torch.exp(self.logs), hw * self.logs.sum().expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self.logs) - self.loc


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution, LU-parametrised: ``W = P L (U + diag(sign * exp(log_s)))``;
    ``log|det| = H W sum(log_s)``. Initialised from a random rotation."""

    def __init__(self, channels: int):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("l_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(torch.abs(s)))

    def weight(self) -> torch.Tensor:
        lower = self.lower * self.l_mask + self.eye
        upper = self.upper * self.l_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight()
        hw = x.shape[2] * x.shape[3]
        return F.conv2d(x, w[:, :, None, None]), hw * self.log_s.sum().expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        w_inv = torch.linalg.inv(self.weight())
        return F.conv2d(y, w_inv[:, :, None, None])


class ZeroConv2d(nn.Conv2d):
    """3x3 conv initialised to zero, so a coupling starts near the identity and a prior at N(0, I)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 3, padding=1)
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)


class AffineCoupling(nn.Module):
    """``xa, xb = split(x)``; ``shift, raw = NN(xa)``; ``yb = (xb + shift) * sigmoid(raw + 2)``.
    NN: conv3x3 -> ReLU -> conv1x1 -> ReLU -> zero-initialised conv3x3."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.ca = channels // 2
        cb = channels - self.ca
        self.net = nn.Sequential(
            nn.Conv2d(self.ca, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 1), nn.ReLU(inplace=True),
            ZeroConv2d(width, 2 * cb),
        )

    def _params(self, xa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(xa)
        return h[:, 0::2], h[:, 1::2] + 2.0  # shift, raw scale (interleaved channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xa, xb = x[:, : self.ca], x[:, self.ca :]
        shift, raw = self._params(xa)
        yb = (xb + shift) * torch.sigmoid(raw)
        return torch.cat([xa, yb], 1), F.logsigmoid(raw).flatten(1).sum(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        ya, yb = y[:, : self.ca], y[:, self.ca :]
        shift, raw = self._params(ya)
        return torch.cat([ya, yb / torch.sigmoid(raw) - shift], 1)


class FlowStep(nn.Module):
    def __init__(self, channels: int, width: int):
        super().__init__()
        self.actnorm = ActNorm(channels)
        self.invconv = InvConv1x1(channels)
        self.coupling = AffineCoupling(channels, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, a = self.actnorm(x)
        x, b = self.invconv(x)
        x, c = self.coupling(x)
        return x, a + b + c

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self.actnorm.inverse(self.invconv.inverse(self.coupling.inverse(y)))


def _gauss_logp(eps: torch.Tensor) -> torch.Tensor:
    return (-0.5 * (eps**2 + _LOG2PI)).flatten(1).sum(1)


class Glow(nn.Module):
    """Multi-scale Glow over images of shape (C, S, S) in Glow's range [-0.5, 0.5].

    ``encode(y) -> (eps_list, log_prob)``: standardised latents per scale (finest first) and
    the log-density of ``y`` in nats; ``decode(eps_list) -> y`` is the exact inverse.
    """

    def __init__(self, config: GlowConfig):
        super().__init__()
        self.config = config.validate()
        c = config.channels
        self.levels = nn.ModuleList()
        self.split_priors = nn.ModuleList()
        for lvl in range(config.levels):
            c *= 4
            self.levels.append(nn.ModuleList(FlowStep(c, config.width) for _ in range(config.steps)))
            if lvl < config.levels - 1:
                self.split_priors.append(ZeroConv2d(c - c // 2, 2 * (c // 2)))
                c = c - c // 2
        self.top_c = c
        self.top_prior = nn.Parameter(torch.zeros(1, 2 * c, 1, 1))  # learned per-channel mean, log-std

    # -- shapes ---------------------------------------------------------------------------------
    def latent_shapes(self) -> list[tuple[int, int, int]]:
        """Per-scale latent shapes (C, H, W), finest first, for one image."""
        c, s = self.config.channels, self.config.image_size
        out = []
        for lvl in range(self.config.levels):
            c, s = c * 4, s // 2
            if lvl < self.config.levels - 1:
                out.append((c // 2, s, s))
                c = c - c // 2
        out.append((c, s, s))
        return out

    def check_input(self, y: torch.Tensor) -> None:
        c, s = self.config.channels, self.config.image_size
        if y.ndim != 4 or y.shape[1] != c or y.shape[2] != s or y.shape[3] != s:
            raise MismatchError(
                f"images of shape {tuple(y.shape[1:])} do not fit this density model, which takes ({c}, {s}, {s})"
            )

    # -- flow -------------------------------------------------------------------------------------
    def encode(self, y: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        self.check_input(y)
        h = y
        logp = torch.zeros(y.shape[0], device=y.device, dtype=y.dtype)
        eps_list: list[torch.Tensor] = []
        for lvl, steps in enumerate(self.levels):
            h = squeeze(h)
            for step in steps:
                h, ld = step(h)
                logp = logp + ld
            if lvl < len(self.levels) - 1:
                keep, z = h[:, : h.shape[1] - h.shape[1] // 2], h[:, h.shape[1] - h.shape[1] // 2 :]
                mean, logs = self.split_priors[lvl](keep).chunk(2, 1)
                eps = (z - mean) * torch.exp(-logs)
                logp = logp + _gauss_logp(eps) - logs.flatten(1).sum(1)
                eps_list.append(eps)
                h = keep
        mean, logs = self.top_prior.chunk(2, 1)
        eps = (h - mean) * torch.exp(-logs)
        hw = h.shape[2] * h.shape[3]
        logp = logp + _gauss_logp(eps) - hw * logs.sum()
        eps_list.append(eps)
        return eps_list, logp

    def decode(self, eps_list: list[torch.Tensor]) -> torch.Tensor:
        if len(eps_list) != len(self.levels):
            raise MismatchError(f"expected {len(self.levels)} latents (one per scale), got {len(eps_list)}")
        mean, logs = self.top_prior.chunk(2, 1)
        h = eps_list[-1] * torch.exp(logs) + mean
        for lvl in range(len(self.levels) - 1, -1, -1):
            if lvl < len(self.levels) - 1:
                mean, logs = self.split_priors[lvl](h).chunk(2, 1)
                z = eps_list[lvl] * torch.exp(logs) + mean
                h = torch.cat([h, z], 1)
            for step in reversed(self.levels[lvl]):
                h = step.inverse(h)
            h = unsqueeze(h)
        return h

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """log p(y) in nats, shape (B,)."""
        return self.encode(y)[1]

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.log_prob(y)

    @torch.no_grad()
    def sample(self, n: int, *, temperature: float = 0.7, generator: torch.Generator | None = None) -> torch.Tensor:
        """Samples in Glow's range, shape (n, C, S, S)."""
        dev = self.top_prior.device
        eps = [temperature * torch.randn((n, *s), generator=generator).to(dev) for s in self.latent_shapes()]
        return self.decode(eps)
