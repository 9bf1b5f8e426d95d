"""Gradient-matching distances and the engine that computes per-class network gradients.

Distances (REFERENCE.md §3), between lists of per-parameter gradients of the real and the
synthetic batch of one class:

``layerwise`` (DC's default): each weight gradient reshaped to (out_channels, -1); the sum over
    rows of ``1 - cos``; 1-D parameters (biases, norm affine) contribute 0.
``mse``: squared distance of the flattened concatenations (IDC).
``cos``: ``1 - cos`` of the flattened concatenations.
``neg-product``: ``-<g_real, g_syn>`` of the concatenations (paper S11).

Speed. The reference computes each class's real gradient as one 256-image forward/backward of a
contiguous tensor in eager mode. :class:`GradientEngine` computes the same gradient (the mean loss
is a sum of per-image losses, so pieces can be summed) in cache-sized pieces of ``chunk`` images in
channels-last layout, optionally through ``torch.compile`` (fused norm/activation/pool kernels).
The synthetic side keeps eager autograd with ``create_graph`` (compiled graphs are not twice
differentiable). ``benchmarks/condense_speed.py`` measures both against a one-class-at-a-time
eager loop and checks the loss values agree.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnknownNameError

__all__ = ["DISTANCES", "distance", "matched_parameters", "GradientEngine"]

DISTANCES = ("layerwise", "mse", "cos", "neg-product")
_EPS = 1e-6


def _layerwise(gr: Sequence[torch.Tensor], gs: Sequence[torch.Tensor]) -> torch.Tensor:
    total = gs[0].new_zeros(())
    for a, b in zip(gr, gs):
        if a.dim() < 2:
            continue
        a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        cos = (a2 * b2).sum(-1) / (a2.norm(dim=-1) * b2.norm(dim=-1) + _EPS)
        total = total + (1.0 - cos).sum()
    return total


def distance(gr: Sequence[torch.Tensor], gs: Sequence[torch.Tensor], kind: str = "layerwise") -> torch.Tensor:
    """Distance between two gradient lists (same parameters, same order); differentiable in ``gs``."""
    if kind == "layerwise":
        return _layerwise(gr, gs)
    if kind not in DISTANCES:
        raise UnknownNameError("match distance", kind, DISTANCES)
    a = torch.cat([g.reshape(-1) for g in gr])
    b = torch.cat([g.reshape(-1) for g in gs])
    if kind == "mse":
        return ((a - b) ** 2).sum()
    if kind == "cos":
        return 1.0 - (a * b).sum() / (a.norm() * b.norm() + _EPS)
    return -(a * b).sum()  # neg-product


def matched_parameters(model: nn.Module, which: str = "all", kind: str = "layerwise") -> list[nn.Parameter]:
    """The parameters whose gradients are matched.

    ``all``: every trainable parameter (DC); with the layerwise distance the 1-D ones are left
    out, since they contribute 0 (this saves their double backward, not a change of the loss).
    ``conv``: the weights of the Conv2d layers only (IDC).
    """
    if which == "conv":
        return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    ps = [p for p in model.parameters() if p.requires_grad]
    if kind == "layerwise":
        ps = [p for p in ps if p.dim() >= 2]
    return ps


class GradientEngine:
    """Per-class gradients of the cross-entropy of one network, for matching.

    ``model`` is used in place (a runner re-initialises its weights each outer iteration, so a
    compiled graph is built once per input shape and reused).
    """

    def __init__(self, model: nn.Module, params: Sequence[nn.Parameter], *, chunk: int = 32,
                 compile: bool = False) -> None:
        self.model = model.to(memory_format=torch.channels_last)
        self.params = list(params)
        self.chunk = int(chunk)
        self._fast: Callable[[torch.Tensor], torch.Tensor] = self.model
        self._fast_embed: Callable[[torch.Tensor], torch.Tensor] | None = getattr(model, "embed", None)
        self.compiled = False
        if compile:
            try:
                self._fast = torch.compile(self.model, dynamic=False)
                if self._fast_embed is not None:
                    self._fast_embed = torch.compile(model.embed, dynamic=False)
                self.compiled = True
            except Exception as e:  # noqa: BLE001 - no compiler: same results, eager speed
                warnings.warn(f"torch.compile unavailable ({e}); condensing in eager mode", stacklevel=2)

    def pieces(self, n: int) -> list[tuple[int, int]]:
        k = max(1, -(-n // self.chunk))
        base, extra = divmod(n, k)  # at most two piece sizes -> at most two compiled shapes
        out, start = [], 0
        for i in range(k):
            size = base + (1 if i < extra else 0)
            out.append((start, start + size))
            start += size
        return out

    def _call_fast(self, fn_name: str, x: torch.Tensor) -> torch.Tensor:
        fn = self._fast if fn_name == "forward" else self._fast_embed
        try:
            return fn(x)
        except Exception as e:  # noqa: BLE001 - e.g. no C++ compiler for inductor
            if not self.compiled:
                raise
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {e}); continuing in eager mode",
                          stacklevel=3)
            self.compiled = False
            self._fast, self._fast_embed = self.model, getattr(self.model, "embed", None)
            return self._call_fast(fn_name, x)

    def real(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Gradient of the mean cross-entropy of (x, y) w.r.t. the matched parameters (detached)."""
        n = x.shape[0]
        grads: list[torch.Tensor] | None = None
        for a, b in self.pieces(n):
            xb = x[a:b].contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(self._call_fast("forward", xb), y[a:b], reduction="sum") / n
            g = torch.autograd.grad(loss, self.params)
            grads = list(g) if grads is None else [s + t for s, t in zip(grads, g)]
        assert grads is not None
        return [g.detach() for g in grads]

    def synthetic(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """The same gradient for synthetic images, differentiable w.r.t. ``x`` (create_graph)."""
        loss = F.cross_entropy(self.model(x.contiguous(memory_format=torch.channels_last)), y)
        return list(torch.autograd.grad(loss, self.params, create_graph=True))

    @torch.no_grad()
    def embed_real(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of real images (no graph), in pieces."""
        outs = [self._call_fast("embed", x[a:b].contiguous(memory_format=torch.channels_last))
                for a, b in self.pieces(x.shape[0])]
        return torch.cat(outs)

    def embed_synthetic(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.embed(x.contiguous(memory_format=torch.channels_last))
